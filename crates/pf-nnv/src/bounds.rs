//! Sound bounds over an input box: interval propagation, tightened by DeepPoly/CROWN-style
//! back-substitution of linear relaxations (Singh et al., "An Abstract Domain for Certifying
//! Neural Networks", POPL 2019, §4; Zhang et al., "Efficient Neural Network Robustness
//! Certification with General Activation Functions", NeurIPS 2018).
//!
//! Soundness under rounding: every linear bound `g(x) >= lam . v + kappa` is kept valid for the
//! exact real-number network. When `lam` is pushed through a layer, the computed coefficients
//! differ from the exact ones by at most a dot-product error bound `e_c`; since each variable is
//! bounded by `|v_c| <= vmax_c` (from earlier sound bounds), the constant absorbs
//! `- sum_c e_c vmax_c`, and every constant update is rounded down (see [`crate::sound`]).

use crate::network::{Dense, Layer, Network};
use crate::sound::{add_down, add_up, box_max, box_min, dot_down, gamma, mul_down, mul_up};

/// Sound bounds of one vector of the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct Interval {
    /// Lower bounds.
    pub lo: Vec<f64>,
    /// Upper bounds.
    pub hi: Vec<f64>,
}

impl Interval {
    fn abs_max(&self) -> Vec<f64> {
        self.lo
            .iter()
            .zip(&self.hi)
            .map(|(l, h)| l.abs().max(h.abs()))
            .collect()
    }
}

/// A linear lower bound `g(x) >= coef . x + constant` valid over the whole box.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearBound {
    /// Coefficients over the network inputs.
    pub coef: Vec<f64>,
    /// Constant (already lowered to absorb rounding).
    pub constant: f64,
}

impl LinearBound {
    /// A sound lower bound of the linear bound's minimum over a box.
    pub fn min_over(&self, lo: &[f64], hi: &[f64]) -> f64 {
        add_down(box_min(&self.coef, lo, hi), self.constant)
    }
}

/// Bounds of every vector of the chain over one input box.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// `values[j]` bounds the input of layer `j`; `values[0]` is the box, the last the output.
    pub values: Vec<Interval>,
    /// The phase splits made the sub-domain provably empty (a split neuron's sound bounds
    /// exclude its assumed phase); `values` then stops at that layer.
    pub empty: bool,
    /// `scales[j]`: [`row_scale`] of dense layer `j` over `values[j]` (empty for a ReLU).
    scales: Vec<Vec<f64>>,
    /// `sens[j]`: for the pre-activation `values[j]` of a ReLU, per neuron the input
    /// coefficients (`n` each, neuron-major) of its back-substituted lower bound when it was
    /// unstable (first layer: its weight row); empty otherwise. Heuristics only.
    sens: Vec<Vec<f64>>,
}

/// A ReLU phase assumption of a branch-and-bound node: the pre-activation `values[layer][neuron]`
/// (the input of the ReLU at `net.layers[layer]`) is `>= 0` (active) or `<= 0` (inactive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhaseSplit {
    /// Index of the ReLU layer in `net.layers` (its input is `values[layer]`).
    pub layer: usize,
    /// Neuron within the layer.
    pub neuron: usize,
    /// `true`: pre-activation `>= 0`; `false`: `<= 0`.
    pub active: bool,
}

/// Interval image of a dense layer.
fn dense_interval(d: &Dense, v: &Interval) -> Interval {
    let mut lo = Vec::with_capacity(d.rows);
    let mut hi = Vec::with_capacity(d.rows);
    for r in 0..d.rows {
        let row = d.row(r);
        lo.push(add_down(box_min(row, &v.lo, &v.hi), d.bias[r]));
        hi.push(add_up(box_max(row, &v.lo, &v.hi), d.bias[r]));
    }
    Interval { lo, hi }
}

/// An upper bound of the exact sum of `n` non-negative terms whose computed sum is `sum`
/// (each term itself a rounded product): `sum / (1 - gamma_n) <= sum (1 + 2 gamma_n)`, plus
/// one underflow quantum per term (Higham, eq. 3.5).
fn nonneg_sum_up(n: usize, sum: f64) -> f64 {
    add_up(
        mul_up(sum, 1.0 + 2.0 * gamma(n + 1)),
        (n as f64 + 1.0) * 5e-324,
    )
}

/// Per row of `d`, an upper bound of `sum_c |w_rc| max|v_c|` over the interval `v`, then (last
/// entry) one of `sum_c max|v_c|`: with them the rounding error of a whole back-substitution
/// step through `d` is bounded in `O(rows)`.
fn row_scale(d: &Dense, v: &Interval) -> Vec<f64> {
    let vmax = v.abs_max();
    let mut out: Vec<f64> = (0..d.rows)
        .map(|r| {
            let s: f64 = d.row(r).iter().zip(&vmax).map(|(w, m)| w.abs() * m).sum();
            nonneg_sum_up(d.cols, s)
        })
        .collect();
    out.push(nonneg_sum_up(d.cols, vmax.iter().sum()));
    out
}

/// Push a lower bound `lam . v_{j+1} + kappa` back through layer `j` to one over `v_j`;
/// `scale` is [`row_scale`] of a dense layer over `input` (unused for a ReLU). For a ReLU,
/// `alpha` (one slope per neuron, clamped to `[0, 1]`) replaces the adaptive choice of the
/// lower relaxation `relu(h) >= alpha h` of unstable neurons.
fn step_back(
    layer: &Layer,
    input: &Interval,
    scale: &[f64],
    lam: &[f64],
    kappa: f64,
    alpha: Option<&[f64]>,
) -> (Vec<f64>, f64) {
    match layer {
        Layer::Dense(d) => {
            let mut out = vec![0.0; d.cols];
            let mut weight = 0.0f64;
            for (r, &l) in lam.iter().enumerate() {
                if l == 0.0 {
                    continue;
                }
                for (o, &w) in out.iter_mut().zip(d.row(r)) {
                    *o += l * w;
                }
                weight += l.abs() * scale[r];
            }
            // Coefficient c is off by at most gamma_rows sum_r |l_r w_rc| (+ underflow), and
            // v_c by at most max|v_c|: summed over c that is gamma_rows sum_r |l_r| scale_r.
            let weight = nonneg_sum_up(d.rows, weight);
            let vsum = scale[d.rows];
            let err = add_up(
                mul_up(gamma(d.rows), weight),
                mul_up((d.rows as f64 + 1.0) * 5e-324, vsum),
            );
            let k = add_down(add_down(kappa, dot_down(lam, &d.bias)), -err);
            (out, k)
        }
        Layer::Relu => {
            let mut out = vec![0.0; lam.len()];
            let mut k = kappa;
            let mut err = 0.0f64;
            for (i, &l) in lam.iter().enumerate() {
                let (lo, hi) = (input.lo[i], input.hi[i]);
                if l == 0.0 || hi <= 0.0 {
                    continue;
                }
                if lo >= 0.0 {
                    out[i] = l;
                } else if l > 0.0 {
                    match alpha.and_then(|a| a.get(i)).map(|a| a.clamp(0.0, 1.0)) {
                        // relu(h) >= a h for any a in [0, 1]; the rounding of l * a is
                        // absorbed like that of the upper slope below.
                        Some(a) if a > 0.0 && a < 1.0 => {
                            let c = l * a;
                            out[i] = c;
                            err = add_up(
                                err,
                                mul_up(
                                    (c.abs() * (1.0 + 4.0 * crate::sound::U)).next_up() * gamma(1),
                                    lo.abs().max(hi.abs()),
                                ),
                            );
                        }
                        Some(a) => {
                            if a >= 1.0 {
                                out[i] = l;
                            }
                        }
                        // relu(h) >= alpha h for alpha in {0, 1}: exact coefficients.
                        None => {
                            if hi >= -lo {
                                out[i] = l;
                            }
                        }
                    }
                } else {
                    // relu(h) <= s (h - lo) with s >= hi / (hi - lo), rounded up.
                    let s = (hi / (hi - lo).next_down()).next_up();
                    let t = mul_up(-s, lo);
                    let c = l * s;
                    out[i] = c;
                    err = add_up(
                        err,
                        mul_up(
                            (c.abs() * (1.0 + 4.0 * crate::sound::U)).next_up() * gamma(1),
                            lo.abs().max(hi.abs()),
                        ),
                    );
                    k = add_down(k, mul_down(l, t));
                }
            }
            (out, add_down(k, -err))
        }
    }
}

/// Push a lower bound over `v_from` back to the network input.
fn back_to_input(
    net: &Network,
    values: &[Interval],
    scales: &[Vec<f64>],
    from: usize,
    lam: Vec<f64>,
    kappa: f64,
) -> LinearBound {
    let (mut lam, mut kappa) = (lam, kappa);
    for j in (0..from).rev() {
        (lam, kappa) = step_back(&net.layers[j], &values[j], &scales[j], &lam, kappa, None);
    }
    LinearBound {
        coef: lam,
        constant: kappa,
    }
}

impl Analysis {
    /// Bounds of every layer over the box `[lo, hi]`.
    pub fn run(net: &Network, lo: &[f64], hi: &[f64]) -> Self {
        Self::run_within(net, lo, hi, None)
    }

    /// As [`Analysis::run`], intersecting with `prior`: bounds computed for a box containing
    /// `[lo, hi]` (a parent in the search), which stay valid on the smaller box.
    pub fn run_within(net: &Network, lo: &[f64], hi: &[f64], prior: Option<&Analysis>) -> Self {
        Self::run_split(net, lo, hi, prior, &[])
    }

    /// As [`Analysis::run_within`], on the sub-domain of the box where every phase split holds:
    /// a split neuron's interval is clamped to its phase before later layers use it, so the
    /// bounds (and every linear bound built on them) hold on that sub-domain only.
    pub fn run_split(
        net: &Network,
        lo: &[f64],
        hi: &[f64],
        prior: Option<&Analysis>,
        splits: &[PhaseSplit],
    ) -> Self {
        let mut values = vec![Interval {
            lo: lo.to_vec(),
            hi: hi.to_vec(),
        }];
        let mut scales = Vec::with_capacity(net.layers.len());
        let n_in = lo.len();
        let mut sens = vec![Vec::new(); net.layers.len() + 1];
        for (j, layer) in net.layers.iter().enumerate() {
            let v = &values[j];
            scales.push(match layer {
                Layer::Dense(d) => row_scale(d, v),
                Layer::Relu => Vec::new(),
            });
            let next = match layer {
                Layer::Relu => Interval {
                    lo: v.lo.iter().map(|x| x.max(0.0)).collect(),
                    hi: v.hi.iter().map(|x| x.max(0.0)).collect(),
                },
                Layer::Dense(d) => {
                    let mut iv = dense_interval(d, v);
                    if let Some(p) = prior.and_then(|p| p.values.get(j + 1)) {
                        for i in 0..d.rows {
                            iv.lo[i] = iv.lo[i].max(p.lo[i]);
                            iv.hi[i] = iv.hi[i].min(p.hi[i]);
                        }
                    }
                    for s in splits.iter().filter(|s| s.layer == j + 1) {
                        let i = s.neuron;
                        if i >= d.rows {
                            continue;
                        }
                        if s.active {
                            iv.lo[i] = iv.lo[i].max(0.0);
                        } else {
                            iv.hi[i] = iv.hi[i].min(0.0);
                        }
                        if iv.lo[i] > iv.hi[i] {
                            values.push(iv);
                            return Self {
                                values,
                                scales,
                                sens,
                                empty: true,
                            };
                        }
                    }
                    // Tighten the neurons a ReLU will have to relax; the first layer's interval is
                    // already the exact range of an affine map over a box.
                    let relu_next = matches!(net.layers.get(j + 1), Some(Layer::Relu));
                    if relu_next && j == 0 {
                        sens[1].clone_from(&d.weights);
                    }
                    if relu_next && j > 0 {
                        let mut partial = values.clone();
                        partial.push(iv.clone());
                        for i in 0..d.rows {
                            if iv.lo[i] >= 0.0 || iv.hi[i] <= 0.0 {
                                continue;
                            }
                            let mut e = vec![0.0; d.rows];
                            e[i] = 1.0;
                            let low_b =
                                back_to_input(net, &partial, &scales, j + 1, e.clone(), 0.0);
                            let low = low_b.min_over(lo, hi);
                            let sj = &mut sens[j + 1];
                            if sj.is_empty() {
                                *sj = vec![0.0; d.rows * n_in];
                            }
                            sj[i * n_in..(i + 1) * n_in].copy_from_slice(&low_b.coef);
                            e[i] = -1.0;
                            let up = -back_to_input(net, &partial, &scales, j + 1, e, 0.0)
                                .min_over(lo, hi);
                            iv.lo[i] = iv.lo[i].max(low);
                            iv.hi[i] = iv.hi[i].min(up);
                            partial[j + 1].lo[i] = iv.lo[i];
                            partial[j + 1].hi[i] = iv.hi[i];
                        }
                    }
                    if iv.lo.iter().zip(&iv.hi).any(|(l, h)| l > h) {
                        // Sound bounds that cross: no point of the sub-domain reaches here.
                        values.push(iv);
                        return Self {
                            values,
                            scales,
                            sens,
                            empty: true,
                        };
                    }
                    iv
                }
            };
            values.push(next);
        }
        Self {
            values,
            scales,
            sens,
            empty: false,
        }
    }

    /// Output bounds.
    pub fn output(&self) -> &Interval {
        &self.values[self.values.len() - 1]
    }

    /// A linear lower bound of `coef . y` over the input box.
    pub fn lower_bound(&self, net: &Network, coef: &[f64]) -> LinearBound {
        back_to_input(
            net,
            &self.values,
            &self.scales,
            net.layers.len(),
            coef.to_vec(),
            0.0,
        )
    }

    /// As [`Analysis::lower_bound`], with the lower slopes of the unstable ReLUs given:
    /// `alphas[j]` holds one slope per neuron of the ReLU at `net.layers[j]` (empty for other
    /// layers or to keep the adaptive choice). Sound for any slopes (clamped to `[0, 1]`).
    pub fn lower_bound_alpha(
        &self,
        net: &Network,
        coef: &[f64],
        alphas: &[Vec<f64>],
    ) -> LinearBound {
        self.lower_bound_alpha_from(net, net.layers.len(), coef, alphas)
    }

    /// As [`Analysis::lower_bound_alpha`], for `coef . values[from]` (`from` = number of
    /// layers to push back through; `net.layers.len()` is the output).
    pub fn lower_bound_alpha_from(
        &self,
        net: &Network,
        from: usize,
        coef: &[f64],
        alphas: &[Vec<f64>],
    ) -> LinearBound {
        let (mut lam, mut kappa) = (coef.to_vec(), 0.0);
        for j in (0..from.min(net.layers.len())).rev() {
            let a = alphas.get(j).filter(|a| !a.is_empty()).map(Vec::as_slice);
            (lam, kappa) = step_back(
                &net.layers[j],
                &self.values[j],
                &self.scales[j],
                &lam,
                kappa,
                a,
            );
        }
        LinearBound {
            coef: lam,
            constant: kappa,
        }
    }

    /// A linear lower bound, over the input box, of `sign * values[layer][neuron]` (a
    /// pre-activation); `sign` is `1.0` or `-1.0`.
    pub fn neuron_bound(
        &self,
        net: &Network,
        layer: usize,
        neuron: usize,
        sign: f64,
    ) -> LinearBound {
        let mut e = vec![0.0; self.values[layer].lo.len()];
        e[neuron] = sign;
        back_to_input(net, &self.values, &self.scales, layer, e, 0.0)
    }

    /// Branching scores of the unstable ReLUs for the bound of `coef . y` (BaBSR-style,
    /// Bunel et al., "Branch and Bound for Piecewise Linear Neural Network Verification", JMLR
    /// 2020, §5.1): the back-substitution multiplier of the neuron times the intercept
    /// `hi (-lo) / (hi - lo)` of its triangle relaxation, i.e. how much of the bound's looseness
    /// the neuron's relaxation is responsible for. Returns `(layer, neuron, score)`.
    pub fn relu_scores(&self, net: &Network, coef: &[f64]) -> Vec<(usize, usize, f64)> {
        let mut out = Vec::new();
        let (mut lam, mut kappa) = (coef.to_vec(), 0.0);
        for j in (0..net.layers.len()).rev() {
            if matches!(net.layers[j], Layer::Relu) {
                let v = &self.values[j];
                for (i, &l) in lam.iter().enumerate() {
                    let (lo, hi) = (v.lo[i], v.hi[i]);
                    if lo < 0.0 && hi > 0.0 {
                        out.push((j, i, l.abs() * hi * (-lo) / (hi - lo)));
                    }
                }
            }
            (lam, kappa) = step_back(
                &net.layers[j],
                &self.values[j],
                &self.scales[j],
                &lam,
                kappa,
                None,
            );
        }
        out
    }

    /// Per input, its share of the looseness of the bound of `coef . y`: each unstable ReLU's
    /// [`Analysis::relu_scores`] score spread over the inputs in proportion to
    /// `|a_d| (hi_d - lo_d)`, where `a` holds the input coefficients of the neuron's linear
    /// bound (what shrinks its interval when the input's side is halved). A heuristic for
    /// choosing the input to split; all zero when nothing is known.
    pub fn input_responsibility(&self, net: &Network, coef: &[f64]) -> Vec<f64> {
        let (lo, hi) = (&self.values[0].lo, &self.values[0].hi);
        let n = lo.len();
        let mut out = vec![0.0; n];
        for (layer, neuron, score) in self.relu_scores(net, coef) {
            let Some(a) = self
                .sens
                .get(layer)
                .and_then(|s| s.get(neuron * n..(neuron + 1) * n))
            else {
                continue;
            };
            let parts: Vec<f64> = (0..n).map(|d| a[d].abs() * (hi[d] - lo[d])).collect();
            let total: f64 = parts.iter().sum();
            if total > 0.0 && total.is_finite() {
                for (o, p) in out.iter_mut().zip(&parts) {
                    *o += score * p / total;
                }
            }
        }
        out
    }

    /// Number of ReLU neurons whose input bounds straddle zero.
    pub fn unstable(&self, net: &Network) -> usize {
        net.layers
            .iter()
            .enumerate()
            .filter(|(_, l)| matches!(l, Layer::Relu))
            .map(|(j, _)| {
                self.values[j]
                    .lo
                    .iter()
                    .zip(&self.values[j].hi)
                    .filter(|(l, h)| **l < 0.0 && **h > 0.0)
                    .count()
            })
            .sum()
    }
}

/// `min over the box of coef . y` is at least this (sound).
pub fn concrete_lower(net: &Network, analysis: &Analysis, coef: &[f64]) -> f64 {
    concrete_lower_from(analysis, &analysis.lower_bound(net, coef), coef)
}

/// As [`concrete_lower`], reusing an already back-substituted linear bound of `coef . y`.
pub fn concrete_lower_from(analysis: &Analysis, linear: &LinearBound, coef: &[f64]) -> f64 {
    let (lo, hi) = (&analysis.values[0].lo, &analysis.values[0].hi);
    // The interval bound may be better when the relaxation is loose.
    let out = analysis.output();
    linear.min_over(lo, hi).max(box_min(coef, &out.lo, &out.hi))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::network::Dense;

    #[test]
    fn responsibility_goes_to_the_input_the_unstable_neurons_depend_on() {
        // Hidden neurons depend on x0 only (x1 has a zero weight everywhere), both unstable
        // on the box; the output mixes them with opposite signs so both are scored.
        let d1 = Dense::new(2, 2, vec![1.0, 0.0, -2.0, 0.0], vec![0.1, 0.2]).unwrap();
        let d2 = Dense::new(2, 2, vec![1.0, 1.0, -1.0, 0.5], vec![0.0, 0.3]).unwrap();
        let d3 = Dense::new(1, 2, vec![1.0, -1.0], vec![0.0]).unwrap();
        let net = Network::new(
            2,
            vec![
                Layer::Dense(d1),
                Layer::Relu,
                Layer::Dense(d2),
                Layer::Relu,
                Layer::Dense(d3),
            ],
            None,
        )
        .unwrap();
        let a = Analysis::run(&net, &[-1.0, -5.0], &[1.0, 5.0]);
        assert!(a.unstable(&net) > 0);
        let r = a.input_responsibility(&net, &[1.0]);
        assert!(r[0] > 0.0, "{r:?}");
        assert_eq!(r[1], 0.0, "{r:?}");
    }
}
