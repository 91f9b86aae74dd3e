//! Soundness property tests: on random small ReLU networks, sampled points always lie inside
//! the computed bounds, and `check` never contradicts exhaustive sampling.

#![allow(clippy::unwrap_used)]

use pf_nnv::alpha::{Params, joint_bound, joint_margin, optimise};
use pf_nnv::bounds::{Analysis, PhaseSplit, concrete_lower};
use pf_nnv::property::vnnlib::parse_vnnlib;
use pf_nnv::{Dense, Layer, Network, Options, Verdict, check};
use proptest::prelude::*;

fn net_strategy() -> impl Strategy<Value = (Network, Vec<f64>, Vec<f64>)> {
    (1usize..4, 1usize..3, 2usize..6).prop_flat_map(|(n_in, depth, width)| {
        let mut dims = vec![n_in];
        dims.extend(std::iter::repeat_n(width, depth));
        dims.push(2);
        let n_params: usize = dims.windows(2).map(|w| w[0] * w[1] + w[1]).sum();
        (
            proptest::collection::vec(-2.0f64..2.0, n_params),
            proptest::collection::vec((-1.0f64..1.0, 0.0f64..1.5), n_in),
        )
            .prop_map(move |(params, bx)| {
                let mut layers = Vec::new();
                let mut at = 0;
                for (k, w) in dims.windows(2).enumerate() {
                    let (cols, rows) = (w[0], w[1]);
                    let weights = params[at..at + rows * cols].to_vec();
                    at += rows * cols;
                    let bias = params[at..at + rows].to_vec();
                    at += rows;
                    layers.push(Layer::Dense(Dense::new(rows, cols, weights, bias).unwrap()));
                    if k + 2 < dims.len() {
                        layers.push(Layer::Relu);
                    }
                }
                let lo: Vec<f64> = bx.iter().map(|(c, _)| *c).collect();
                let hi: Vec<f64> = bx.iter().map(|(c, w)| c + w).collect();
                (Network::new(dims[0], layers, None).unwrap(), lo, hi)
            })
    })
}

fn points(lo: &[f64], hi: &[f64], n: usize, seed: u64) -> Vec<Vec<f64>> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            lo.iter()
                .zip(hi)
                .map(|(l, h)| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    let u = (s >> 11) as f64 / (1u64 << 53) as f64;
                    // Include the corners now and then.
                    match s % 7 {
                        0 => *l,
                        1 => *h,
                        _ => (l + (h - l) * u).clamp(*l, *h),
                    }
                })
                .collect()
        })
        .collect()
}

/// VNN-LIB text: the box `[lo, hi]` and the unsafe region `y0 >= y1 + t and y0 <= 3` (two
/// output constraints, so the LP is exercised).
fn two_constraint_property(net: &Network, lo: &[f64], hi: &[f64], t: f64) -> String {
    let mut text = String::new();
    for i in 0..net.input_dim {
        text += &format!("(declare-const X_{i} Real)\n");
    }
    text += "(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n";
    for i in 0..net.input_dim {
        text += &format!(
            "(assert (>= X_{i} {:e}))\n(assert (<= X_{i} {:e}))\n",
            lo[i], hi[i]
        );
    }
    text += &format!("(assert (>= Y_0 (+ Y_1 {t:e})))\n(assert (<= Y_0 3))\n");
    text
}

/// Tolerance for comparing an f64 evaluation with exact-arithmetic bounds.
fn slack(v: f64) -> f64 {
    1e-12 * (1.0 + v.abs())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn sampled_points_stay_inside_all_layer_bounds((net, lo, hi) in net_strategy(), seed in any::<u64>()) {
        let a = Analysis::run(&net, &lo, &hi);
        for x in points(&lo, &hi, 200, seed) {
            let mut v = x.clone();
            for (j, layer) in net.layers.iter().enumerate() {
                v = match layer {
                    Layer::Dense(d) => d.apply(&v),
                    Layer::Relu => v.iter().map(|e| e.max(0.0)).collect(),
                };
                let b = &a.values[j + 1];
                for (i, &vi) in v.iter().enumerate() {
                    prop_assert!(b.lo[i] - slack(vi) <= vi && vi <= b.hi[i] + slack(vi), "layer {} neuron {}: {} not in [{}, {}]", j, i, vi, b.lo[i], b.hi[i]);
                }
            }
        }
    }

    #[test]
    fn linear_lower_bounds_hold_at_sampled_points((net, lo, hi) in net_strategy(), c0 in -2.0f64..2.0, c1 in -2.0f64..2.0, seed in any::<u64>()) {
        let a = Analysis::run(&net, &lo, &hi);
        let coef = [c0, c1];
        let lb = a.lower_bound(&net, &coef);
        let conc = concrete_lower(&net, &a, &coef);
        for x in points(&lo, &hi, 200, seed) {
            let y = net.eval(&x);
            let g = coef[0] * y[0] + coef[1] * y[1];
            let l: f64 = lb.coef.iter().zip(&x).map(|(c, v)| c * v).sum::<f64>() + lb.constant;
            prop_assert!(g + slack(g) >= l, "g={} < linear bound {}", g, l);
            prop_assert!(g + slack(g) >= conc, "g={} < concrete bound {}", g, conc);
        }
    }

    #[test]
    fn check_never_contradicts_sampling((net, lo, hi) in net_strategy(), seed in any::<u64>(), t in -1.0f64..1.0) {
        // Unsafe region: y0 >= y1 + t and y0 <= 3 (two constraints, so the LP is exercised).
        let prop = parse_vnnlib(&two_constraint_property(&net, &lo, &hi, t)).unwrap();
        let opts = Options { timeout: std::time::Duration::from_secs(20), threads: 2, samples: 0, ..Options::default() };
        let out = check(&net, &prop, &opts).unwrap();
        match &out.verdict {
            Verdict::Sat { counterexample } => {
                let y = net.eval(&counterexample.input);
                prop_assert!(prop.violated_by(&counterexample.input, &y));
            }
            Verdict::Unsat => {
                for x in points(&lo, &hi, 500, seed) {
                    let y = net.eval(&x);
                    prop_assert!(!prop.violated_by(&x, &y), "unsat but {:?} -> {:?} violates", x, y);
                }
            }
            Verdict::Unknown { reason } => prop_assert!(false, "small instance undecided: {}", reason),
        }
    }

    #[test]
    fn phase_splits_agree_with_input_splits((net, lo, hi) in net_strategy(), seed in any::<u64>(), delta in -0.05f64..0.05) {
        // Same property as above with the threshold near the sampled maximum of y0 - y1 (so
        // the bounds alone rarely decide), decided once by input splits only and once by ReLU
        // phase splits from the root (input splits only once every ReLU is fixed).
        let top = points(&lo, &hi, 300, seed ^ 0x5eed).iter().map(|x| { let y = net.eval(x); y[0] - y[1] }).fold(f64::NEG_INFINITY, f64::max);
        let t = top + delta;
        let prop = parse_vnnlib(&two_constraint_property(&net, &lo, &hi, t)).unwrap();
        let base = Options { timeout: std::time::Duration::from_secs(20), threads: 2, samples: 0, ..Options::default() };
        let inputs = check(&net, &prop, &Options { phase_split_below: 0.0, ..base.clone() }).unwrap();
        let phases = check(&net, &prop, &Options { phase_split_below: f64::INFINITY, ..base }).unwrap();
        let kind = |v: &Verdict| match v { Verdict::Sat { .. } => "sat", Verdict::Unsat => "unsat", Verdict::Unknown { .. } => "unknown" };
        prop_assert_eq!(kind(&inputs.verdict), kind(&phases.verdict));
        match &phases.verdict {
            Verdict::Sat { counterexample } => {
                let y = net.eval(&counterexample.input);
                prop_assert!(prop.violated_by(&counterexample.input, &y));
            }
            Verdict::Unsat => {
                for x in points(&lo, &hi, 500, seed) {
                    let y = net.eval(&x);
                    prop_assert!(!prop.violated_by(&x, &y), "unsat but {:?} -> {:?} violates", x, y);
                }
            }
            Verdict::Unknown { reason } => prop_assert!(false, "small instance undecided: {}", reason),
        }
    }

    #[test]
    fn phase_split_bounds_hold_on_their_sub_domain((net, lo, hi) in net_strategy(), picks in proptest::collection::vec((any::<usize>(), any::<usize>(), any::<bool>()), 1..4), seed in any::<u64>()) {
        // Random phase assumptions on ReLU layers; every sampled point that satisfies them must
        // lie inside the split analysis's bounds, and an `empty` verdict must have no such point.
        let relu_layers: Vec<usize> = (0..net.layers.len()).filter(|&j| matches!(net.layers[j], Layer::Relu)).collect();
        let a0 = Analysis::run(&net, &lo, &hi);
        let splits: Vec<PhaseSplit> = picks.iter().map(|&(l, n, active)| {
            let layer = relu_layers[l % relu_layers.len()];
            PhaseSplit { layer, neuron: n % a0.values[layer].lo.len(), active }
        }).collect();
        let a = Analysis::run_split(&net, &lo, &hi, Some(&a0), &splits);
        for x in points(&lo, &hi, 300, seed) {
            let mut v = x.clone();
            let mut trace = vec![v.clone()];
            for layer in &net.layers {
                v = match layer {
                    Layer::Dense(d) => d.apply(&v),
                    Layer::Relu => v.iter().map(|e| e.max(0.0)).collect(),
                };
                trace.push(v.clone());
            }
            // Points on the wrong side of an assumption (with a margin for rounding) are outside.
            let inside = splits.iter().all(|s| {
                let h = trace[s.layer][s.neuron];
                if s.active { h > slack(h) } else { h < -slack(h) }
            });
            if !inside { continue; }
            prop_assert!(!a.empty, "sub-domain called empty but {:?} satisfies {:?}", x, splits);
            for (j, b) in a.values.iter().enumerate() {
                for (i, &vi) in trace[j].iter().enumerate() {
                    prop_assert!(b.lo[i] - slack(vi) <= vi && vi <= b.hi[i] + slack(vi), "value {} neuron {}: {} not in [{}, {}]", j, i, vi, b.lo[i], b.hi[i]);
                }
            }
        }
    }

    #[test]
    fn optimised_joint_bound_holds_at_sampled_points((net, lo, hi) in net_strategy(), l0 in 0.0f64..1.0, t in -1.0f64..1.0, iters in 0usize..30, seed in any::<u64>()) {
        // Rows y0 - y1 <= t and -y0 <= 0.5, optimised from multipliers (l0, 1 - l0): wherever a
        // sampled point satisfies both rows, the sound joint bound must not exceed its threshold;
        // everywhere, w . y stays above the linear bound.
        let a = Analysis::run(&net, &lo, &hi);
        let coefs = vec![vec![1.0, -1.0], vec![-1.0, 0.0]];
        let rhs = [t, 0.5];
        let mut p = Params::initial(&net, &a, vec![l0, 1.0 - l0]);
        optimise(&net, &a, &coefs, &rhs, &mut p, iters);
        let (lb, threshold, w) = joint_bound(&net, &a, &coefs, &rhs, &p);
        let (_, _, margin) = joint_margin(&net, &a, &coefs, &rhs, &p);
        for x in points(&lo, &hi, 200, seed) {
            let y = net.eval(&x);
            let g = w[0] * y[0] + w[1] * y[1];
            let l: f64 = lb.coef.iter().zip(&x).map(|(c, v)| c * v).sum::<f64>() + lb.constant;
            prop_assert!(g + slack(g) >= l, "w.y={} < linear bound {}", g, l);
            let inside = y[0] - y[1] <= t && -y[0] <= 0.5;
            prop_assert!(!(inside && margin > 0.0), "closed, but {:?} satisfies both rows", x);
            if inside {
                prop_assert!(g <= threshold + slack(threshold));
            }
        }
    }

    #[test]
    fn split_rules_agree((net, lo, hi) in net_strategy(), seed in any::<u64>(), delta in -0.05f64..0.05) {
        // Threshold near the sampled maximum: the widest-side rule without the joint bound
        // (the previous search) and the default (joint bound, responsibility rule) agree.
        let top = points(&lo, &hi, 300, seed ^ 0x5eed).iter().map(|x| { let y = net.eval(x); y[0] - y[1] }).fold(f64::NEG_INFINITY, f64::max);
        let prop = parse_vnnlib(&two_constraint_property(&net, &lo, &hi, top + delta)).unwrap();
        let base = Options { timeout: std::time::Duration::from_secs(20), threads: 2, samples: 0, ..Options::default() };
        let old = check(&net, &prop, &Options { split_rule: 0, alpha_iters: 0, pick_joint: false, ..base.clone() }).unwrap();
        let new = check(&net, &prop, &base).unwrap();
        let kind = |v: &Verdict| match v { Verdict::Sat { .. } => "sat", Verdict::Unsat => "unsat", Verdict::Unknown { .. } => "unknown" };
        prop_assert_eq!(kind(&old.verdict), kind(&new.verdict));
    }
}
