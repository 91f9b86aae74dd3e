//! Learning DryVR discrepancy functions from sampled traces (Fan, Qi, Mitra, Viswanathan,
//! *DryVR*, CAV 2017, §4): per dimension, an exponential `K e^{γt}` that bounds how far traces
//! started anywhere in the initial box stray from the centre trace, fitted so every sampled
//! trace lies under it; or a piecewise-exponential bound with one rate per sample interval.

use crate::problem::Bloating;

/// Floor for distances so logarithms stay finite.
const FLOOR: f64 = 1e-12;

/// Learn the per-dimension bloating radius `R[k][j]` for the whole initial box, from the centre
/// trace `c[k][j]`, other traces `xs[i][k][j]` (same time grid `ts`) and the box half-widths `r`.
/// Returns `None` when no trace differs from the centre in its initial state.
pub fn learn(
    method: Bloating,
    ts: &[f64],
    c: &[Vec<f64>],
    xs: &[Vec<Vec<f64>>],
    r: &[f64],
) -> Option<Vec<Vec<f64>>> {
    let n = r.len();
    let m = ts.len();
    // Normalised initial distance of each trace (max-norm scaled by the box half-widths).
    let mut used: Vec<(&Vec<Vec<f64>>, f64)> = Vec::new();
    for x in xs {
        if x.len() != m {
            continue;
        }
        let d0 = (0..n)
            .filter(|&j| r[j] > 0.0)
            .map(|j| (x[0][j] - c[0][j]).abs() / r[j])
            .fold(0.0, f64::max);
        if d0 > 1e-9 {
            used.push((x, d0));
        }
    }
    if used.is_empty() {
        return None;
    }
    // y[k][j] = max over traces of |x - c| / d0: the distance scaled to the full box.
    let mut y = vec![vec![0.0f64; n]; m];
    for (x, d0) in &used {
        for k in 0..m {
            for j in 0..n {
                let v = (x[k][j] - c[k][j]).abs() / d0;
                if v > y[k][j] {
                    y[k][j] = v;
                }
            }
        }
    }
    let global = fit_global(ts, &y);
    match method {
        Bloating::Global => Some(global),
        Bloating::Piecewise => {
            // The chain runs on max-norm distances over all dimensions: a per-dimension chain
            // explodes whenever one coordinate's distance crosses zero. Each dimension is then
            // capped by its own global fit (both bounds lie above every sample).
            let dist = |x: &Vec<Vec<f64>>, k: usize, d0: f64| {
                (0..n)
                    .map(|j| (x[k][j] - c[k][j]).abs())
                    .fold(0.0, f64::max)
                    / d0
            };
            // Floor relative to the initial spread (not the maximum, which a blow-up dominates).
            let eps = 1e-6 * (0..n).map(|q| y[0][q]).fold(0.0, f64::max).max(FLOOR);
            let mut out = vec![vec![0.0; n]; m];
            let mut rad = used
                .iter()
                .map(|(x, d0)| dist(x, 0, *d0))
                .fold(0.0, f64::max);
            for k in 0..m {
                if k > 0 {
                    let mut ratio: f64 = 0.0;
                    for (x, d0) in &used {
                        ratio = ratio.max((dist(x, k, *d0) + eps) / (dist(x, k - 1, *d0) + eps));
                    }
                    let env = used
                        .iter()
                        .map(|(x, d0)| dist(x, k, *d0))
                        .fold(0.0, f64::max);
                    let gmax = global[k].iter().copied().fold(0.0, f64::max);
                    rad = ((rad + eps) * ratio).min(gmax).max(env);
                }
                for j in 0..n {
                    out[k][j] = rad.min(global[k][j]).max(y[k][j]);
                }
            }
            Some(out)
        }
    }
}

/// Per dimension, the line `ln R = a + γ t` above all points `(t_k, ln y_k)` minimising
/// `Σ_k (a + γ t_k)` (an LP in two variables, solved exactly on the upper convex hull).
fn fit_global(ts: &[f64], y: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let m = ts.len();
    let n = y.first().map_or(0, Vec::len);
    let mut out = vec![vec![0.0; n]; m];
    let tbar = ts.iter().sum::<f64>() / m.max(1) as f64;
    for j in 0..n {
        let pts: Vec<(f64, f64)> = (0..m).map(|k| (ts[k], y[k][j].max(FLOOR).ln())).collect();
        let (a, g) = upper_line(&pts, tbar);
        for k in 0..m {
            // Never below the data (guards against rounding in the hull).
            out[k][j] = (a + g * ts[k]).exp().max(y[k][j]);
        }
    }
    out
}

/// The supporting line of the upper hull of `pts` (sorted by x) that is lowest at `xbar`.
pub fn upper_line(pts: &[(f64, f64)], xbar: f64) -> (f64, f64) {
    let mut hull: Vec<(f64, f64)> = Vec::new();
    for &p in pts {
        // Collapse equal x to the highest point.
        if let Some(last) = hull.last_mut()
            && (last.0 - p.0).abs() <= 1e-15
        {
            {
                if p.1 > last.1 {
                    *last = p;
                    while hull.len() >= 3
                        && !turns_right(
                            hull[hull.len() - 3],
                            hull[hull.len() - 2],
                            hull[hull.len() - 1],
                        )
                    {
                        let l = hull.len();
                        hull.remove(l - 2);
                    }
                }
                continue;
            }
        }
        while hull.len() >= 2 && !turns_right(hull[hull.len() - 2], hull[hull.len() - 1], p) {
            hull.pop();
        }
        hull.push(p);
    }
    match hull.len() {
        0 => (0.0, 0.0),
        1 => (hull[0].1, 0.0),
        _ => {
            let mut i = 0;
            while i + 2 < hull.len() && hull[i + 1].0 < xbar {
                i += 1;
            }
            let (p, q) = (hull[i], hull[i + 1]);
            let g = (q.1 - p.1) / (q.0 - p.0);
            (p.1 - g * p.0, g)
        }
    }
}

fn turns_right(a: (f64, f64), b: (f64, f64), c: (f64, f64)) -> bool {
    (b.0 - a.0) * (c.1 - a.1) - (b.1 - a.1) * (c.0 - a.0) < 0.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_line_is_above_all_points() {
        let pts: Vec<(f64, f64)> = (0..50)
            .map(|k| {
                (
                    k as f64 * 0.1,
                    (k as f64 * 0.37).sin() - 0.2 * k as f64 * 0.1,
                )
            })
            .collect();
        let (a, g) = upper_line(&pts, 2.45);
        for (x, y) in &pts {
            assert!(a + g * x >= y - 1e-12);
        }
        // Touches the hull: some point is on the line.
        assert!(pts.iter().any(|(x, y)| (a + g * x - y).abs() < 1e-9));
    }

    #[test]
    fn learns_exponential_contraction() {
        // x' = -x: traces from c0 +- d differ by d e^{-t}; the learned bound must cover the box
        // (radius 1) and be close to e^{-t}.
        let ts: Vec<f64> = (0..=40).map(|k| k as f64 * 0.1).collect();
        let tr = |x0: f64| ts.iter().map(|t| vec![x0 * (-t).exp()]).collect::<Vec<_>>();
        let c = tr(5.0);
        let xs = vec![tr(5.5), tr(4.2), tr(5.9)];
        for method in [Bloating::Global, Bloating::Piecewise] {
            let r = learn(method, &ts, &c, &xs, &[1.0]).unwrap_or_default();
            assert_eq!(r.len(), ts.len());
            for (k, t) in ts.iter().enumerate() {
                let truth = (-t).exp();
                assert!(
                    r[k][0] >= truth * (1.0 - 1e-9),
                    "{method:?} t={t}: {} < {truth}",
                    r[k][0]
                );
                assert!(
                    r[k][0] <= truth * 1.01,
                    "{method:?} t={t}: {} too loose",
                    r[k][0]
                );
            }
        }
        assert!(learn(Bloating::Global, &ts, &c, std::slice::from_ref(&c), &[1.0]).is_none());
    }
}
