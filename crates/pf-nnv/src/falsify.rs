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
    let n = lo.len();
    let mut rng = seed | 1;
    let mut best: Vec<(f64, Vec<f64>)> = Vec::new();
    for _ in 0..samples {
        let x: Vec<f64> = lo
            .iter()
            .zip(hi)
            .map(|(l, h)| (l + (h - l) * next_unit(&mut rng)).clamp(*l, *h))
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
    for (mut m, mut x) in best {
        let mut step: Vec<f64> = lo.iter().zip(hi).map(|(l, h)| (h - l) / 8.0).collect();
        for _ in 0..60 {
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
    }
    None
}
