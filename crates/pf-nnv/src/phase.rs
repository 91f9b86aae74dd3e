//! ReLU phase splitting for the branch and bound. A node may carry phase assumptions
//! (pre-activation `>= 0` or `<= 0`); its bounds are computed on the sub-domain where they hold
//! ([`Analysis::run_split`]), and each assumption also enters the node's LP as a row: the
//! back-substituted linear lower bound of `-h` (active) or `h` (inactive) must be `<= 0` at any
//! point of the sub-domain. A node is split on a ReLU when its input box is small relative to
//! the case's box (where input splits stop paying: the looseness left is in a few unstable
//! neurons) or when the box can no longer be halved; the neuron is the one with the largest
//! BaBSR-style score summed over the node's output constraints.

use crate::bounds::{Analysis, LinearBound, PhaseSplit};
use crate::network::Network;

/// The LP rows of a node's phase assumptions: `(bound, rhs, sound lower bound of bound - rhs)`.
pub fn split_rows(
    net: &Network,
    analysis: &Analysis,
    splits: &[PhaseSplit],
) -> Vec<(LinearBound, f64, f64)> {
    let (lo, hi) = (&analysis.values[0].lo, &analysis.values[0].hi);
    splits
        .iter()
        .map(|s| {
            let sign = if s.active { -1.0 } else { 1.0 };
            let g = analysis.neuron_bound(net, s.layer, s.neuron, sign);
            let m = g.min_over(lo, hi);
            (g, 0.0, m)
        })
        .collect()
}

/// The unstable ReLU to split next, by summed score over the output constraints `coefs`
/// (ties by position, for determinism); `None` when every ReLU is stable on the sub-domain.
pub fn pick(net: &Network, analysis: &Analysis, coefs: &[Vec<f64>]) -> Option<(usize, usize)> {
    let mut total: Vec<((usize, usize), f64)> = Vec::new();
    for c in coefs {
        for (layer, neuron, s) in analysis.relu_scores(net, c) {
            match total.iter_mut().find(|(k, _)| *k == (layer, neuron)) {
                Some((_, v)) => *v += s,
                None => total.push(((layer, neuron), s)),
            }
        }
    }
    total
        .into_iter()
        .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
        .map(|(k, _)| k)
}

/// The two children's assumption lists: the parent's plus the neuron inactive, then active.
pub fn branch(splits: &[PhaseSplit], (layer, neuron): (usize, usize)) -> [Vec<PhaseSplit>; 2] {
    [false, true].map(|active| {
        let mut v = splits.to_vec();
        v.push(PhaseSplit {
            layer,
            neuron,
            active,
        });
        v
    })
}

/// Widest side of the box relative to the widest side of the case's box (1 at the root). The
/// search halves the widest side first, so this falls by half every few input splits.
pub fn relative_width(lo: &[f64], hi: &[f64], root_lo: &[f64], root_hi: &[f64]) -> f64 {
    let widest = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(l, h)| h - l).fold(0.0, f64::max);
    let root = widest(root_lo, root_hi);
    if root > 0.0 {
        widest(lo, hi) / root
    } else {
        0.0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::network::{Dense, Layer};

    /// y = relu(x) - relu(-x) on x in [-1, 2]: one hidden layer of two neurons.
    fn net() -> Network {
        let d1 = Dense::new(2, 1, vec![1.0, -1.0], vec![0.0, 0.0]).unwrap();
        let d2 = Dense::new(1, 2, vec![1.0, -1.0], vec![0.0]).unwrap();
        Network::new(
            1,
            vec![Layer::Dense(d1), Layer::Relu, Layer::Dense(d2)],
            None,
        )
        .unwrap()
    }

    #[test]
    fn both_phases_of_an_unstable_neuron_make_the_output_exact() {
        let n = net();
        let root = Analysis::run(&n, &[-1.0], &[2.0]);
        let (layer, neuron) = pick(&n, &root, &[vec![1.0]]).unwrap();
        assert_eq!(layer, 1);
        let [off, on] = branch(&[], (layer, neuron));
        let a_off = Analysis::run_split(&n, &[-1.0], &[2.0], Some(&root), &off);
        let a_on = Analysis::run_split(&n, &[-1.0], &[2.0], Some(&root), &on);
        assert!(!a_off.empty && !a_on.empty);
        // Each child has one fewer unstable neuron than the root.
        assert_eq!(root.unstable(&n), 2);
        assert_eq!(a_off.unstable(&n), 1);
        assert_eq!(a_on.unstable(&n), 1);
    }

    #[test]
    fn a_phase_the_box_excludes_makes_the_sub_domain_empty() {
        let n = net();
        // On x in [0.5, 2] neuron 0 (x) is positive: assuming it inactive is infeasible.
        let s = [PhaseSplit {
            layer: 1,
            neuron: 0,
            active: false,
        }];
        assert!(Analysis::run_split(&n, &[0.5], &[2.0], None, &s).empty);
        assert!(!Analysis::run_split(&n, &[-0.5], &[2.0], None, &s).empty);
    }

    #[test]
    fn split_rows_hold_on_the_sub_domain() {
        let n = net();
        let s = [PhaseSplit {
            layer: 1,
            neuron: 0,
            active: true,
        }];
        let a = Analysis::run_split(&n, &[-1.0], &[2.0], None, &s);
        let rows = split_rows(&n, &a, &s);
        // Row: lower bound of -x <= 0, i.e. x >= 0 at every point of the sub-domain.
        let (g, rhs, _) = &rows[0];
        for x in [0.0, 0.5, 2.0] {
            assert!(g.coef[0] * x + g.constant <= *rhs + 1e-12);
        }
        // And it excludes the inactive part.
        assert!(g.constant - g.coef[0] > 0.0);
    }

    #[test]
    fn relative_width_is_one_at_the_root() {
        assert_eq!(
            relative_width(&[0.0, 1.0], &[2.0, 3.0], &[0.0, 1.0], &[2.0, 3.0]),
            1.0
        );
        assert_eq!(
            relative_width(&[0.0, 1.0], &[1.0, 1.5], &[0.0, 1.0], &[2.0, 3.0]),
            0.5
        );
    }
}
