//! A joint, optimised bound of a property case's output constraints. A counterexample of a case
//! satisfies every row `c_m . y <= d_m`, hence `sum_m lambda_m (c_m . y - d_m) <= 0` for any
//! `lambda >= 0`: a node is closed as soon as one combination has a positive lower bound over
//! the box. The combination is back-substituted as a whole (tighter than combining per-row
//! bounds: where rows disagree in sign on a neuron, one relaxation serves the net coefficient),
//! and the lower slopes `alpha` of the unstable ReLUs (`relu(h) >= alpha h`, any alpha in
//! `[0, 1]`) are optimised together with `lambda` by projected gradient ascent (Xu et al., "Fast
//! and Complete: Enabling Complete Neural Network Verification with Rapid and Massively
//! Parallel Incomplete Verifiers", ICLR 2021, §3.1; Wang et al., "Beta-CROWN", NeurIPS 2021,
//! for the spec multipliers).
//!
//! The optimisation runs in plain f64 and is never trusted: the parameters it returns are
//! re-evaluated by the sound back-substitution ([`Analysis::lower_bound_alpha`]), and the
//! rounding of the combination itself is bounded (see [`joint_bound`]).

use crate::bounds::{Analysis, LinearBound, concrete_lower_from};
use crate::network::{Layer, Network};
use crate::sound::{add_up, dot_error, dot_up, mul_up};

/// Parameters of the joint bound: spec multipliers and per-ReLU lower slopes.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// One non-negative multiplier per output row (summing to 1).
    pub lambda: Vec<f64>,
    /// `alpha[j]`: lower slopes of the ReLU at `net.layers[j]` (empty for dense layers).
    pub alpha: Vec<Vec<f64>>,
}

impl Params {
    /// The given multipliers and the adaptive slopes of [`Analysis::lower_bound`] (1 where the
    /// neuron's upper bound is at least minus its lower bound, else 0).
    pub fn initial(net: &Network, analysis: &Analysis, lambda: Vec<f64>) -> Self {
        let alpha = net
            .layers
            .iter()
            .enumerate()
            .map(|(j, l)| match l {
                Layer::Relu => {
                    let v = &analysis.values[j];
                    v.lo.iter()
                        .zip(&v.hi)
                        .map(|(lo, hi)| if *hi >= -*lo { 1.0 } else { 0.0 })
                        .collect()
                }
                Layer::Dense(_) => Vec::new(),
            })
            .collect();
        Self { lambda, alpha }
    }
}

/// `sum_m lambda_m c_m`, the combined output coefficients.
fn combine(coefs: &[Vec<f64>], lambda: &[f64]) -> Vec<f64> {
    let n = coefs.first().map_or(0, Vec::len);
    let mut w = vec![0.0; n];
    for (c, l) in coefs.iter().zip(lambda) {
        for (wj, cj) in w.iter_mut().zip(c) {
            *wj += l * cj;
        }
    }
    w
}

/// The combined output coefficients `sum_m lambda_m c_m` (plain f64; for heuristics).
pub fn combined(coefs: &[Vec<f64>], lambda: &[f64]) -> Vec<f64> {
    combine(coefs, lambda)
}

/// The sound joint bound of a case: `(linear bound of w . y, threshold)`, where
/// `w = sum_m lambda_m c_m` as computed, such that every counterexample point of the node's
/// sub-domain satisfies `w . y <= threshold`, hence `linear(x) <= threshold`. The threshold
/// covers `lambda . d` rounded up plus the rounding of `w` times the output's magnitude.
pub fn joint_bound(
    net: &Network,
    analysis: &Analysis,
    coefs: &[Vec<f64>],
    rhs: &[f64],
    params: &Params,
) -> (LinearBound, f64, Vec<f64>) {
    let lambda: Vec<f64> = params.lambda.iter().map(|l| l.max(0.0)).collect();
    let w = combine(coefs, &lambda);
    let out = analysis.output();
    let mut slack = 0.0f64;
    for (j, _) in w.iter().enumerate() {
        let abs: f64 = coefs
            .iter()
            .zip(&lambda)
            .map(|(c, l)| (l * c[j]).abs())
            .sum();
        let ymax = out.lo[j].abs().max(out.hi[j].abs());
        slack = add_up(slack, mul_up(dot_error(coefs.len(), abs), ymax));
    }
    let threshold = add_up(dot_up(&lambda, rhs), slack);
    let linear = analysis.lower_bound_alpha(net, &w, &params.alpha);
    (linear, threshold, w)
}

/// Sound lower bound of `min over the node of w . y` minus the threshold: positive closes it.
pub fn joint_margin(
    net: &Network,
    analysis: &Analysis,
    coefs: &[Vec<f64>],
    rhs: &[f64],
    params: &Params,
) -> (LinearBound, f64, f64) {
    let (linear, threshold, w) = joint_bound(net, analysis, coefs, rhs, params);
    let m = concrete_lower_from(analysis, &linear, &w) - threshold;
    (linear, threshold, m)
}

/// Plain-f64 value and gradient of the joint bound (minimum over the box of the
/// back-substituted `sum_m lambda_m (c_m . y - d_m)`), for the optimiser only.
#[allow(clippy::too_many_arguments)]
fn value_and_grad(
    net: &Network,
    analysis: &Analysis,
    from: usize,
    coefs: &[Vec<f64>],
    rhs: &[f64],
    p: &Params,
    g_alpha: &mut [Vec<f64>],
    g_lambda: &mut [f64],
) -> f64 {
    let layers = &net.layers[..from.min(net.layers.len())];
    let mut lam = combine(coefs, &p.lambda);
    let mut kappa: f64 = -p.lambda.iter().zip(rhs).map(|(l, d)| l * d).sum::<f64>();
    // Backward coefficient on each ReLU's output, by layer.
    let mut at: Vec<Vec<f64>> = vec![Vec::new(); layers.len()];
    for j in (0..layers.len()).rev() {
        match &layers[j] {
            Layer::Dense(d) => {
                let mut out = vec![0.0; d.cols];
                for (r, &l) in lam.iter().enumerate() {
                    if l == 0.0 {
                        continue;
                    }
                    kappa += l * d.bias[r];
                    for (o, &w) in out.iter_mut().zip(d.row(r)) {
                        *o += l * w;
                    }
                }
                lam = out;
            }
            Layer::Relu => {
                let v = &analysis.values[j];
                let mut out = vec![0.0; lam.len()];
                for (i, &l) in lam.iter().enumerate() {
                    let (lo, hi) = (v.lo[i], v.hi[i]);
                    if hi <= 0.0 || l == 0.0 {
                        continue;
                    }
                    if lo >= 0.0 {
                        out[i] = l;
                    } else if l > 0.0 {
                        out[i] = l * p.alpha[j][i];
                    } else {
                        let s = hi / (hi - lo);
                        out[i] = l * s;
                        kappa -= l * s * lo;
                    }
                }
                at[j] = lam;
                lam = out;
            }
        }
    }
    let (lo, hi) = (&analysis.values[0].lo, &analysis.values[0].hi);
    let x: Vec<f64> = (0..lo.len())
        .map(|i| if lam[i] >= 0.0 { lo[i] } else { hi[i] })
        .collect();
    let value = kappa + lam.iter().zip(&x).map(|(a, b)| a * b).sum::<f64>();
    // Forward through the same relaxation at the minimising corner: the relaxed value of each
    // pre-activation there is the bound's derivative with respect to its coefficient.
    let mut v = x;
    for (j, layer) in layers.iter().enumerate() {
        match layer {
            Layer::Dense(d) => v = d.apply(&v),
            Layer::Relu => {
                let b = &analysis.values[j];
                for (i, h) in v.iter_mut().enumerate() {
                    let (lo, hi) = (b.lo[i], b.hi[i]);
                    let l = at[j].get(i).copied().unwrap_or(0.0);
                    g_alpha[j][i] = 0.0;
                    if hi <= 0.0 {
                        *h = 0.0;
                    } else if lo >= 0.0 {
                    } else if l >= 0.0 {
                        g_alpha[j][i] = l * *h;
                        *h *= p.alpha[j][i];
                    } else {
                        *h = hi / (hi - lo) * (*h - lo);
                    }
                }
            }
        }
    }
    for ((g, c), d) in g_lambda.iter_mut().zip(coefs).zip(rhs) {
        *g = c.iter().zip(&v).map(|(a, b)| a * b).sum::<f64>() - d;
    }
    value
}

/// Tighten the pre-activation bounds of the unstable ReLUs from the second ReLU layer on with
/// optimised slopes, layer by layer (alpha-CROWN's intermediate bounds), `iters` steps per
/// bound. Every new bound is re-computed soundly and only ever intersected with the old one;
/// the ReLU outputs are clamped to match. Marks the analysis empty when bounds cross. Returns
/// how many bounds improved.
pub fn tighten(net: &Network, analysis: &mut Analysis, iters: usize) -> usize {
    if analysis.empty {
        return 0;
    }
    let (lo, hi) = (analysis.values[0].lo.clone(), analysis.values[0].hi.clone());
    let mut improved = 0;
    let relus: Vec<usize> = (0..net.layers.len())
        .filter(|&j| matches!(net.layers[j], Layer::Relu))
        .collect();
    for &j in relus.iter().skip(1) {
        if j + 1 >= analysis.values.len() {
            break;
        }
        let width = analysis.values[j].lo.len();
        for i in 0..width {
            for sign in [1.0, -1.0] {
                let (l, h) = (analysis.values[j].lo[i], analysis.values[j].hi[i]);
                if l >= 0.0 || h <= 0.0 {
                    break;
                }
                let mut c = vec![0.0; width];
                c[i] = sign;
                let coefs = [c];
                let mut p = Params::initial(net, analysis, vec![1.0]);
                optimise_from(net, analysis, j, &coefs, &[0.0], &mut p, iters);
                let b = analysis
                    .lower_bound_alpha_from(net, j, &coefs[0], &p.alpha)
                    .min_over(&lo, &hi);
                let v = &mut analysis.values[j];
                if sign > 0.0 && b > v.lo[i] {
                    v.lo[i] = b;
                    improved += 1;
                } else if sign < 0.0 && -b < v.hi[i] {
                    v.hi[i] = -b;
                    improved += 1;
                }
            }
        }
        let (src, dst) = analysis.values.split_at_mut(j + 1);
        let (v, out) = (&src[j], &mut dst[0]);
        for i in 0..width {
            out.lo[i] = out.lo[i].max(v.lo[i].max(0.0));
            out.hi[i] = out.hi[i].min(v.hi[i].max(0.0));
            if v.lo[i] > v.hi[i] || out.lo[i] > out.hi[i] {
                analysis.empty = true;
                return improved;
            }
        }
    }
    improved
}

/// Euclidean projection onto the probability simplex (sort-based; Duchi et al., ICML 2008).
fn project_simplex(v: &mut [f64]) {
    if v.is_empty() {
        return;
    }
    let mut u: Vec<f64> = v.to_vec();
    u.sort_by(|a, b| b.total_cmp(a));
    let (mut cum, mut theta) = (0.0, 0.0);
    for (k, &uk) in u.iter().enumerate() {
        cum += uk;
        let t = (cum - 1.0) / (k + 1) as f64;
        if uk - t > 0.0 {
            theta = t;
        }
    }
    for x in v.iter_mut() {
        *x = (*x - theta).max(0.0);
    }
}

/// Optimise `params` in place for `iters` steps of projected Adam; keeps the best iterate seen
/// (by the plain-f64 value) and returns that value. `lambda` is left alone for one row.
pub fn optimise(
    net: &Network,
    analysis: &Analysis,
    coefs: &[Vec<f64>],
    rhs: &[f64],
    params: &mut Params,
    iters: usize,
) -> f64 {
    optimise_from(net, analysis, net.layers.len(), coefs, rhs, params, iters)
}

/// As [`optimise`], for rows over `values[from]` instead of the output.
pub fn optimise_from(
    net: &Network,
    analysis: &Analysis,
    from: usize,
    coefs: &[Vec<f64>],
    rhs: &[f64],
    params: &mut Params,
    iters: usize,
) -> f64 {
    let (b1, b2, eps) = (0.9, 0.999, 1e-8);
    let (lr_a, lr_l) = (0.1, 0.05);
    let mut g_alpha: Vec<Vec<f64>> = params.alpha.iter().map(|a| vec![0.0; a.len()]).collect();
    let mut m_a = g_alpha.clone();
    let mut v_a = g_alpha.clone();
    let k = params.lambda.len();
    let mut g_lambda = vec![0.0; k];
    let (mut m_l, mut v_l) = (vec![0.0; k], vec![0.0; k]);
    let mut best = f64::NEG_INFINITY;
    let mut best_params = params.clone();
    for t in 1..=iters.max(1) {
        let value = value_and_grad(
            net,
            analysis,
            from,
            coefs,
            rhs,
            params,
            &mut g_alpha,
            &mut g_lambda,
        );
        if value > best {
            best = value;
            best_params.clone_from(params);
        }
        if t == iters.max(1) || !value.is_finite() {
            break;
        }
        let c1 = 1.0 - f64::powi(b1, t as i32);
        let c2 = 1.0 - f64::powi(b2, t as i32);
        for ((a, g), (m, v)) in params
            .alpha
            .iter_mut()
            .flatten()
            .zip(g_alpha.iter().flatten())
            .zip(m_a.iter_mut().flatten().zip(v_a.iter_mut().flatten()))
        {
            *m = b1 * *m + (1.0 - b1) * g;
            *v = b2 * *v + (1.0 - b2) * g * g;
            *a = (*a + lr_a * (*m / c1) / ((*v / c2).sqrt() + eps)).clamp(0.0, 1.0);
        }
        if k > 1 {
            for ((l, g), (m, v)) in params
                .lambda
                .iter_mut()
                .zip(&g_lambda)
                .zip(m_l.iter_mut().zip(v_l.iter_mut()))
            {
                *m = b1 * *m + (1.0 - b1) * g;
                *v = b2 * *v + (1.0 - b2) * g * g;
                *l += lr_l * (*m / c1) / ((*v / c2).sqrt() + eps);
            }
            project_simplex(&mut params.lambda);
        }
    }
    *params = best_params;
    best
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::network::Dense;

    /// A small random-weight network (deterministic LCG), 2 inputs, two hidden layers of 8,
    /// 3 outputs.
    fn net(seed: u64) -> Network {
        let mut s = seed;
        let mut rnd = move || {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        };
        let mut dense = |rows: usize, cols: usize| {
            let w = (0..rows * cols).map(|_| rnd()).collect();
            let b = (0..rows).map(|_| 0.3 * rnd()).collect();
            Layer::Dense(Dense::new(rows, cols, w, b).unwrap())
        };
        let layers = vec![
            dense(8, 2),
            Layer::Relu,
            dense(8, 8),
            Layer::Relu,
            dense(3, 8),
        ];
        Network::new(2, layers, None).unwrap()
    }

    fn grid_min(n: &Network, w: &[f64], lo: &[f64], hi: &[f64]) -> f64 {
        let mut best = f64::INFINITY;
        for a in 0..=60 {
            for b in 0..=60 {
                let x = [
                    lo[0] + (hi[0] - lo[0]) * a as f64 / 60.0,
                    lo[1] + (hi[1] - lo[1]) * b as f64 / 60.0,
                ];
                let y = n.eval(&x);
                best = best.min(w.iter().zip(&y).map(|(c, v)| c * v).sum());
            }
        }
        best
    }

    #[test]
    fn tightening_never_loosens_and_keeps_every_sample_inside() {
        let mut improved = 0;
        for seed in 1..8u64 {
            let n = net(seed);
            let (lo, hi) = (vec![-1.0, -1.0], vec![1.0, 1.0]);
            let before = Analysis::run(&n, &lo, &hi);
            let mut after = before.clone();
            improved += tighten(&n, &mut after, 15);
            assert!(!after.empty);
            for (b, a) in before.values.iter().zip(&after.values) {
                for i in 0..b.lo.len() {
                    assert!(a.lo[i] >= b.lo[i] && a.hi[i] <= b.hi[i]);
                }
            }
            // Every sampled point's pre-activations lie inside the tightened bounds.
            for s in 0..=20 {
                for t in 0..=20 {
                    let x = [-1.0 + 0.1 * s as f64, -1.0 + 0.1 * t as f64];
                    let mut v = x.to_vec();
                    for (j, layer) in n.layers.iter().enumerate() {
                        let iv = &after.values[j];
                        for (i, x) in v.iter().enumerate() {
                            assert!(iv.lo[i] <= *x && *x <= iv.hi[i], "seed {seed} layer {j}");
                        }
                        v = match layer {
                            Layer::Dense(d) => d.apply(&v),
                            Layer::Relu => v.iter().map(|x| x.max(0.0)).collect(),
                        };
                    }
                }
            }
        }
        assert!(
            improved > 0,
            "tightening never improved a bound on 7 random networks"
        );
    }

    #[test]
    fn simplex_projection_lands_on_the_simplex() {
        let mut v = vec![0.9, 0.8, -0.3];
        project_simplex(&mut v);
        assert!((v.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(v.iter().all(|x| *x >= 0.0));
        assert!((v[0] - 0.55).abs() < 1e-12 && (v[1] - 0.45).abs() < 1e-12 && v[2] == 0.0);
    }

    #[test]
    fn optimised_bound_is_never_looser_and_never_crosses_the_sampled_minimum() {
        let coefs = vec![vec![-1.0, 1.0, 0.0], vec![-1.0, 0.0, 1.0]];
        let rhs = [0.0, 0.0];
        let mut improved = 0;
        for seed in 1..12u64 {
            let n = net(seed);
            let (lo, hi) = (vec![-1.0, -0.5], vec![0.5, 1.0]);
            let a = Analysis::run(&n, &lo, &hi);
            let init = Params::initial(&n, &a, vec![0.5, 0.5]);
            let (_, _, m0) = joint_margin(&n, &a, &coefs, &rhs, &init);
            let mut p = init.clone();
            optimise(&n, &a, &coefs, &rhs, &mut p, 40);
            let (_, _, m1) = joint_margin(&n, &a, &coefs, &rhs, &p);
            // Sound bounds differ from the plain ones by rounding only: allow 1e-9.
            assert!(m1 >= m0 - 1e-9, "seed {seed}: {m1} < {m0}");
            improved += usize::from(m1 > m0 + 1e-6);
            // Never above the true minimum of the combination (sampled on a grid).
            let w = combine(&coefs, &p.lambda);
            let truth = grid_min(&n, &w, &lo, &hi);
            assert!(
                m1 <= truth + 1e-12,
                "seed {seed}: bound {m1} above sample {truth}"
            );
            assert!(p.lambda.iter().all(|l| *l >= 0.0));
            assert!(p.alpha.iter().flatten().all(|a| (0.0..=1.0).contains(a)));
        }
        assert!(
            improved > 0,
            "optimisation never helped on 11 random networks"
        );
    }

    #[test]
    fn any_slopes_give_a_sound_bound() {
        // Arbitrary slopes (including out-of-range ones, which are clamped) never produce a
        // bound above the sampled minimum of each output.
        for seed in 1..6u64 {
            let n = net(seed);
            let (lo, hi) = (vec![-1.0, -1.0], vec![1.0, 1.0]);
            let a = Analysis::run(&n, &lo, &hi);
            let mut p = Params::initial(&n, &a, vec![1.0]);
            for (t, s) in p.alpha.iter_mut().flatten().enumerate() {
                *s = [0.3, -2.0, 0.7, 5.0, 0.5][t % 5];
            }
            for o in 0..3 {
                let mut c = vec![0.0; 3];
                c[o] = 1.0;
                let lb = a.lower_bound_alpha(&n, &c, &p.alpha);
                let m = lb.min_over(&lo, &hi);
                assert!(m <= grid_min(&n, &c, &lo, &hi) + 1e-12);
            }
        }
    }

    #[test]
    #[allow(clippy::needless_range_loop)]
    fn gradient_matches_finite_differences() {
        let n = net(3);
        let (lo, hi) = (vec![-1.0, -0.5], vec![0.5, 1.0]);
        let a = Analysis::run(&n, &lo, &hi);
        let coefs = vec![vec![-1.0, 1.0, 0.0], vec![-1.0, 0.0, 1.0]];
        let rhs = [0.1, -0.2];
        let mut p = Params::initial(&n, &a, vec![0.5, 0.5]);
        for s in p.alpha.iter_mut().flatten() {
            *s = 0.5;
        }
        let mut ga: Vec<Vec<f64>> = p.alpha.iter().map(|x| vec![0.0; x.len()]).collect();
        let mut gl = vec![0.0; 2];
        let f0 = value_and_grad(&n, &a, 5, &coefs, &rhs, &p, &mut ga, &mut gl);
        let mut scratch_a = ga.clone();
        let mut scratch_l = gl.clone();
        let h = 1e-7;
        let mut checked = 0;
        for j in 0..p.alpha.len() {
            for i in 0..p.alpha[j].len() {
                if ga[j][i] == 0.0 {
                    continue;
                }
                let mut q = p.clone();
                q.alpha[j][i] += h;
                let f1 =
                    value_and_grad(&n, &a, 5, &coefs, &rhs, &q, &mut scratch_a, &mut scratch_l);
                assert!(
                    ((f1 - f0) / h - ga[j][i]).abs() < 1e-4,
                    "alpha[{j}][{i}]: {} vs {}",
                    (f1 - f0) / h,
                    ga[j][i]
                );
                checked += 1;
            }
        }
        for m in 0..2 {
            let mut q = p.clone();
            q.lambda[m] += h;
            let f1 = value_and_grad(&n, &a, 5, &coefs, &rhs, &q, &mut scratch_a, &mut scratch_l);
            assert!(((f1 - f0) / h - gl[m]).abs() < 1e-4);
        }
        assert!(checked > 0);
    }
}
