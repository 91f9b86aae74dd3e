//! Falsification: random sampling followed by projected finite-difference descent on the
//! violation margin `max_k (c_k . y - d_k)`. Cheap, incomplete, and only ever a source of
//! candidates: every point it returns is re-checked against the property as written.

use crate::network::Network;
use crate::property::Case;

/// How far a point is from the case's output region (<= 0 inside, up to strictness).
fn margin(net: &Network, coefs: &[Vec<f64>], case: &Case, x: &[f64]) -> f64 {
    let y = net.eval(x);
    coefs
        .iter()
        .zip(&case.outputs)
        .map(|(c, o)| c.iter().zip(&y).map(|(a, b)| a * b).sum::<f64>() - o.rhs)
        .fold(f64::NEG_INFINITY, f64::max)
}

/// xorshift64: deterministic samples, no dependency.
pub(crate) fn next_unit(state: &mut u64) -> f64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    (*state >> 11) as f64 / (1u64 << 53) as f64
}

/// Search the case's box for a point whose network output lies in the case; `None` if none found.
pub fn falsify(
    net: &Network,
    coefs: &[Vec<f64>],
    case: &Case,
    samples: usize,
    seed: u64,
) -> Option<Vec<f64>> {
    let (lo, hi) = (&case.lower, &case.upper);
    let mut rng = seed | 1;
    let mut best: Vec<(f64, Vec<f64>)> = Vec::new();
    for s in 0..samples {
        // Every other sample snaps each coordinate to a face of the box with probability 1/3:
        // the margin of a piecewise-linear network is often smallest on the boundary.
        let snap = s % 2 == 1;
        let x: Vec<f64> = lo
            .iter()
            .zip(hi)
            .map(|(l, h)| {
                let u = next_unit(&mut rng);
                if snap && u < 1.0 / 6.0 {
                    *l
                } else if snap && u > 5.0 / 6.0 {
                    *h
                } else {
                    (l + (h - l) * next_unit(&mut rng)).clamp(*l, *h)
                }
            })
            .collect();
        if case.contains(&x, &net.eval(&x)) {
            return Some(x);
        }
        let m = margin(net, coefs, case, &x);
        best.push((m, x));
        if best.len() > 64 {
            best.sort_by(|a, b| a.0.total_cmp(&b.0));
            best.truncate(8);
        }
    }
    best.sort_by(|a, b| a.0.total_cmp(&b.0));
    best.truncate(4);
    best.into_iter()
        .find_map(|(_, x)| descend(net, coefs, case, x, lo, hi, 60))
}

/// Projected finite-difference descent on the violation margin from `x` inside `[lo, hi]`
/// (`rounds` rounds of one step per input and direction, halving the steps when stuck);
/// returns the first point found inside the case.
pub fn descend(
    net: &Network,
    coefs: &[Vec<f64>],
    case: &Case,
    mut x: Vec<f64>,
    lo: &[f64],
    hi: &[f64],
    rounds: usize,
) -> Option<Vec<f64>> {
    let n = lo.len();
    let mut m = margin(net, coefs, case, &x);
    let mut step: Vec<f64> = lo.iter().zip(hi).map(|(l, h)| (h - l) / 8.0).collect();
    for _ in 0..rounds {
        // Finite-difference gradient sign of the margin, then a projected step against it.
        let mut moved = false;
        for i in 0..n {
            for dir in [-1.0, 1.0] {
                let mut cand = x.clone();
                cand[i] = (cand[i] + dir * step[i]).clamp(lo[i], hi[i]);
                let mc = margin(net, coefs, case, &cand);
                if mc < m {
                    if case.contains(&cand, &net.eval(&cand)) {
                        return Some(cand);
                    }
                    (m, x, moved) = (mc, cand, true);
                }
            }
        }
        if !moved {
            step.iter_mut().for_each(|s| *s /= 2.0);
        }
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::network::{Dense, Layer};
    use crate::property::marabou::parse_marabou;

    #[test]
    fn descent_reaches_a_corner_region_sampling_misses() {
        // y0 = x0 + x1 on [-1, 1]^2; the case y0 <= -1.99 holds only in a tiny corner.
        let d = Dense::new(1, 2, vec![1.0, 1.0], vec![0.0]).unwrap();
        let net = Network::new(2, vec![Layer::Dense(d)], None).unwrap();
        let p = parse_marabou("x0 >= -1\nx0 <= 1\nx1 >= -1\nx1 <= 1\ny0 <= -1.99\n").unwrap();
        let case = &p.cases[0];
        let coefs = vec![vec![1.0]];
        let x = descend(
            &net,
            &coefs,
            case,
            vec![0.5, 0.5],
            &case.lower,
            &case.upper,
            20,
        )
        .unwrap();
        assert!(case.contains(&x, &net.eval(&x)), "{x:?}");
        // And falsification finds it too (face-snapped samples).
        let f = falsify(&net, &coefs, case, 200, 7).unwrap();
        assert!(case.contains(&f, &net.eval(&f)));
        // Nothing is found where nothing exists.
        let q = parse_marabou("x0 >= -1\nx0 <= 1\nx1 >= -1\nx1 <= 1\ny0 <= -2.5\n").unwrap();
        let c = &q.cases[0];
        assert!(descend(&net, &coefs, c, vec![0.5, 0.5], &c.lower, &c.upper, 20).is_none());
        assert!(falsify(&net, &coefs, c, 200, 7).is_none());
    }
}
