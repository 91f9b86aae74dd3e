//! Sound reachtubes for plain ODE modes: interval Picard enclosures (a priori bounds over each
//! step) plus contraction bounds from logarithmic norms of the interval Jacobian over the
//! enclosure (the matrix measures of Fan & Mitra's on-the-fly discrepancy): if
//! `|x(t_k) - c(t_k)| <= r_k` then `|x(t) - c(t)| <= r_k e^{μ (t - t_k)}` on the step, where μ
//! bounds the log-norm of every Jacobian in the enclosure (Dahlquist; Söderlind, *The
//! logarithmic norm*, BIT 2006, Prop. 2.2). Two norms are tracked at once and each box is the
//! intersection of both balls: the max-norm (μ∞: row sums, tight for decoupled dimensions) and
//! the Euclidean norm (μ2 = largest eigenvalue of the symmetric part, bounded by Gershgorin
//! discs of the interval matrix `(J + Jᵀ)/2`; tight for rotations, where μ∞ counts the
//! skew-symmetric part twice).

use crate::deriv::derive;
use crate::expr::Expr;
use crate::interval::Iv;
use crate::model::{ModeDyn, time_grid};
use crate::ode::{OdeOpts, integrate};
use crate::reach::TubeBox;

/// Why no sound tube was computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SoundError {
    /// The radius grew until no a priori enclosure exists: a smaller initial box may succeed.
    #[error("sound mode: no a priori enclosure at t = {t} (blow-up; radius {r:.3e})")]
    NoEnclosure {
        /// Local time reached.
        t: f64,
        /// Tube radius (in units of the largest initial half-width).
        r: f64,
    },
    /// A Jacobian entry is unbounded over the enclosure: a smaller initial box may succeed.
    #[error("sound mode: Jacobian unbounded over the enclosure at t = {t}")]
    Unbounded {
        /// Local time reached.
        t: f64,
    },
    /// The method does not apply or the step budget ran out.
    #[error("{0}")]
    Other(String),
}

impl SoundError {
    /// Whether splitting the initial box may help.
    pub fn is_refinable(&self) -> bool {
        matches!(
            self,
            SoundError::NoEnclosure { .. } | SoundError::Unbounded { .. }
        )
    }
}

/// Compute a tube over local time `[0, horizon]` for a plain ODE mode from the initial box.
pub fn sound_tube(
    md: &ModeDyn,
    init: &[Iv],
    horizon: f64,
    step: f64,
    max_boxes: usize,
) -> Result<Vec<TubeBox>, SoundError> {
    if !md.is_plain() {
        return Err(SoundError::Other(
            "sound mode needs a plain ODE model (no hidden state)".into(),
        ));
    }
    let n = init.len();
    let rhs = &md.rhs;
    let mut jac: Vec<Vec<Expr>> = Vec::with_capacity(n);
    for f in rhs {
        let mut row = Vec::with_capacity(n);
        for j in 0..n {
            row.push(Expr::from_node(
                derive(&f.node, j).map_err(|e| SoundError::Other(e.to_string()))?,
            ));
        }
        jac.push(row);
    }
    let f_iv = |x: &[Iv], t: Iv| -> Vec<Iv> { rhs.iter().map(|e| e.eval_iv(x, t)).collect() };
    // Isotropic weights (the largest half-width in every dimension): anisotropic box-scaled
    // weights inflate the off-diagonal terms of the weighted log-norm by the aspect ratio.
    let wmax = init
        .iter()
        .map(|b| b.width() / 2.0)
        .fold(0.0, f64::max)
        .max(1e-12);
    let w: Vec<f64> = vec![wmax; n];
    let mut c: Vec<f64> = init.iter().map(|b| b.mid()).collect();
    // Radii in units of `wmax`: max-norm (the box itself) and Euclidean (its circumscribed ball).
    let mut r = 1.0f64;
    let mut r2 = init
        .iter()
        .map(|b| (b.width() / 2.0 / wmax).powi(2))
        .sum::<f64>()
        .sqrt();
    let tight = OdeOpts {
        rtol: 1e-11,
        atol: 1e-13,
        max_steps: 200_000,
    };
    let ts = time_grid(horizon, step);
    let mut out = Vec::with_capacity(ts.len());
    for k in 0..ts.len() - 1 {
        let (t0, t1) = (ts[k], ts[k + 1]);
        let mut seg: Option<Vec<Iv>> = None;
        let mut t = t0;
        let mut h = t1 - t0;
        let mut sub = 0;
        while t < t1 - 1e-12 * t1.abs().max(1.0) {
            sub += 1;
            if sub > max_boxes {
                return Err(SoundError::Other(
                    "sound mode: too many sub-steps (stiff dynamics)".into(),
                ));
            }
            h = h.min(t1 - t);
            let tiv = Iv::new(t, t + h);
            let rr = r.min(r2);
            let b: Vec<Iv> = (0..n)
                .map(|j| Iv::new(c[j] - rr * w[j], c[j] + rr * w[j]))
                .collect();
            let b = if k == 0 && t == t0 {
                intersect(&b, init).unwrap_or(b)
            } else {
                b
            };
            let cp: Vec<Iv> = c.iter().map(|&v| Iv::point(v)).collect();
            let encl = picard(&f_iv, &b, tiv, h).zip(picard(&f_iv, &cp, tiv, h));
            let Some((e, ce)) = encl else {
                if h < 1e-9 * (t1 - t0).max(1e-12) {
                    return Err(SoundError::NoEnclosure { t, r: r.min(r2) });
                }
                h /= 4.0;
                continue;
            };
            // Weighted logarithmic norm of the interval Jacobian over the enclosure.
            let mut mu = f64::NEG_INFINITY;
            for i in 0..n {
                let mut s = jac[i][i].eval_iv(&e, tiv).hi;
                for j in 0..n {
                    if j != i {
                        s += jac[i][j].eval_iv(&e, tiv).mag() * w[j] / w[i];
                    }
                }
                mu = mu.max(s);
            }
            // Euclidean log-norm: Gershgorin bound of the symmetric part.
            let jv: Vec<Vec<Iv>> = jac
                .iter()
                .map(|row| row.iter().map(|d| d.eval_iv(&e, tiv)).collect())
                .collect();
            let mut mu2 = f64::NEG_INFINITY;
            for (i, row) in jv.iter().enumerate() {
                let mut s = row[i].hi;
                for (j, col) in jv.iter().enumerate() {
                    if j != i {
                        s += 0.5 * row[j].add(col[i]).mag();
                    }
                }
                mu2 = mu2.max(s);
            }
            if !mu.is_finite() || !mu2.is_finite() {
                return Err(SoundError::Unbounded { t });
            }
            let f = |x: &[f64], tt: f64, d: &mut [f64]| {
                for (di, ex) in d.iter_mut().zip(rhs) {
                    *di = ex.eval(x, tt);
                }
            };
            let xs = integrate(&f, &c, &[t, t + h], &tight)
                .map_err(|e| SoundError::Other(e.to_string()))?;
            let cn = xs
                .last()
                .cloned()
                .ok_or_else(|| SoundError::Other("integration produced no state".into()))?;
            let rmax = (r * (mu.max(0.0) * h).exp()).min(r2 * (mu2.max(0.0) * h).exp());
            let around: Vec<Iv> = (0..n)
                .map(|j| Iv::new(ce[j].lo - rmax * w[j], ce[j].hi + rmax * w[j]))
                .collect();
            let piece = intersect(&e, &around).unwrap_or(e);
            seg = Some(match seg {
                None => piece,
                Some(s) => s.iter().zip(&piece).map(|(a, b)| a.hull(*b)).collect(),
            });
            // Numerical error of the centre step, charged to the radius (not rigorous; see docs).
            let num_err = (0..n)
                .map(|j| (1e-9 * (1.0 + cn[j].abs())) / w[j])
                .fold(0.0, f64::max);
            r = r * (mu * h).exp() + num_err;
            r2 = r2 * (mu2 * h).exp() + num_err * (n as f64).sqrt();
            c = cn;
            t += h;
            h *= 2.0;
        }
        if let Some(s) = seg {
            out.push(TubeBox {
                local: Iv::new(t0, t1),
                x: s,
            });
        }
    }
    Ok(out)
}

fn intersect(a: &[Iv], b: &[Iv]) -> Option<Vec<Iv>> {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let lo = x.lo.max(y.lo);
            let hi = x.hi.min(y.hi);
            (lo <= hi).then_some(Iv::new(lo, hi))
        })
        .collect()
}

/// A box `E` with `B + [0,h] F(E) ⊆ E`: then every solution from `B` stays in the returned box
/// over the step (Picard–Lindelöf operator on intervals).
fn picard(f: &dyn Fn(&[Iv], Iv) -> Vec<Iv>, b: &[Iv], t: Iv, h: f64) -> Option<Vec<Iv>> {
    let grow = |fe: &[Iv]| -> Vec<Iv> {
        b.iter()
            .zip(fe)
            .map(|(bi, fi)| Iv::new(bi.lo + h * fi.lo.min(0.0), bi.hi + h * fi.hi.max(0.0)))
            .collect()
    };
    let f0 = f(b, t);
    let mut e: Vec<Iv> = grow(&f0).iter().zip(b).map(|(a, bb)| a.hull(*bb)).collect();
    for _ in 0..12 {
        // Inflate so the fixed-point test can succeed.
        let infl: Vec<Iv> = e
            .iter()
            .map(|x| {
                Iv::new(
                    x.lo - 0.1 * x.width() - 1e-12 * (1.0 + x.lo.abs()),
                    x.hi + 0.1 * x.width() + 1e-12 * (1.0 + x.hi.abs()),
                )
            })
            .collect();
        let fe = f(&infl, t);
        if fe.iter().any(|v| !v.lo.is_finite() || !v.hi.is_finite()) {
            return None;
        }
        let cand = grow(&fe);
        if cand.iter().zip(&infl).all(|(c, i)| i.contains_iv(*c)) {
            return Some(cand);
        }
        e = cand.iter().zip(&infl).map(|(c, i)| c.hull(*i)).collect();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::Sym;

    #[test]
    fn sound_tube_encloses_exact_solution() {
        // x' = -x + sin(t) ... linear, exact flows stay inside.
        let res = |s: &str| match s {
            "x" => Some(Sym::Var(0)),
            "y" => Some(Sym::Var(1)),
            "t" => Some(Sym::Time),
            _ => None,
        };
        let rhs = vec![
            Expr::parse("y", &res).unwrap_or_else(|e| panic!("{e}")),
            Expr::parse("-x - 0.1*y", &res).unwrap_or_else(|e| panic!("{e}")),
        ];
        let md = ModeDyn::new(None, rhs, None);
        let init = [Iv::new(0.9, 1.1), Iv::new(-0.1, 0.1)];
        let tube = sound_tube(&md, &init, 5.0, 0.05, 10_000).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(tube.len(), 100);
        let f = |x: &[f64], _t: f64, d: &mut [f64]| {
            d[0] = x[1];
            d[1] = -x[0] - 0.1 * x[1];
        };
        let ts: Vec<f64> = (0..=100).map(|k| k as f64 * 0.05).collect();
        for x0 in [[0.9, -0.1], [1.1, 0.1], [0.9, 0.1], [1.1, -0.1], [1.0, 0.0]] {
            let xs = integrate(&f, &x0, &ts, &OdeOpts::default()).unwrap_or_default();
            for (k, b) in tube.iter().enumerate() {
                for (j, bj) in b.x.iter().enumerate() {
                    assert!(
                        bj.contains(xs[k][j]) && bj.contains(xs[k + 1][j]),
                        "k={k} j={j}"
                    );
                }
            }
        }
    }

    #[test]
    fn sound_tube_contracts_for_contracting_systems() {
        let res = |s: &str| match s {
            "x" => Some(Sym::Var(0)),
            _ => None,
        };
        let md = ModeDyn::new(
            None,
            vec![Expr::parse("-x - x^3", &res).unwrap_or_else(|e| panic!("{e}"))],
            None,
        );
        let tube = sound_tube(&md, &[Iv::new(0.9, 1.1)], 3.0, 0.1, 10_000)
            .unwrap_or_else(|e| panic!("{e}"));
        let last = &tube[tube.len() - 1];
        // Width shrinks at least like e^{-t}: 0.2 e^{-2.9} ~ 0.011.
        assert!(last.x[0].width() < 0.02, "{:?}", last.x);
        assert!(last.x[0].lo > 0.0);
    }

    #[test]
    fn rotation_does_not_inflate_the_tube() {
        // x' = y, y' = -x: the max-norm log-norm is 1 (the tube would grow like e^t, about
        // 22000x over 10 s); the Euclidean one is 0, so the tube keeps the initial ball's size.
        let res = |s: &str| match s {
            "x" => Some(Sym::Var(0)),
            "y" => Some(Sym::Var(1)),
            _ => None,
        };
        let rhs = vec![
            Expr::parse("y", &res).unwrap_or_else(|e| panic!("{e}")),
            Expr::parse("-x", &res).unwrap_or_else(|e| panic!("{e}")),
        ];
        let md = ModeDyn::new(None, rhs, None);
        let init = [Iv::new(0.9, 1.1), Iv::new(-0.1, 0.1)];
        let tube = sound_tube(&md, &init, 10.0, 0.05, 100_000).unwrap_or_else(|e| panic!("{e}"));
        let widest = tube
            .iter()
            .flat_map(|b| &b.x)
            .map(|i| i.width())
            .fold(0.0, f64::max);
        // Ball of radius 0.1 * sqrt(2), plus the motion within one sample interval.
        assert!(widest < 0.45, "{widest}");
    }
}
