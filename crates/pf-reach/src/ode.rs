//! Adaptive Dormand–Prince RK5(4) integration with error control (Hairer, Nørsett & Wanner,
//! *Solving ODEs I*, §II.4–II.5: the DOPRI5 tableau and the standard step-size controller).

/// Tolerances and budgets for the integrator.
#[derive(Clone, Copy, Debug)]
pub struct OdeOpts {
    /// Relative tolerance.
    pub rtol: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// Maximum number of accepted + rejected steps over one call.
    pub max_steps: usize,
}

impl Default for OdeOpts {
    fn default() -> Self {
        OdeOpts {
            rtol: 1e-8,
            atol: 1e-10,
            max_steps: 2_000_000,
        }
    }
}

/// Why integration stopped.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OdeError {
    /// The derivative or the state became NaN or infinite.
    #[error("state or derivative became NaN/infinite at t = {t} (division by zero or blow-up)")]
    NonFinite {
        /// Time.
        t: f64,
    },
    /// The step budget ran out (typically a stiff system).
    #[error("step budget of {steps} exhausted at t = {t} (stiff or very fast dynamics)")]
    StepBudget {
        /// Steps used.
        steps: usize,
        /// Time reached.
        t: f64,
    },
    /// The step size fell below the resolution of time.
    #[error("step size underflow at t = {t}")]
    StepUnderflow {
        /// Time.
        t: f64,
    },
}

const C2: f64 = 1.0 / 5.0;
const C3: f64 = 3.0 / 10.0;
const C4: f64 = 4.0 / 5.0;
const C5: f64 = 8.0 / 9.0;
const A21: f64 = 1.0 / 5.0;
const A31: f64 = 3.0 / 40.0;
const A32: f64 = 9.0 / 40.0;
const A41: f64 = 44.0 / 45.0;
const A42: f64 = -56.0 / 15.0;
const A43: f64 = 32.0 / 9.0;
const A51: f64 = 19372.0 / 6561.0;
const A52: f64 = -25360.0 / 2187.0;
const A53: f64 = 64448.0 / 6561.0;
const A54: f64 = -212.0 / 729.0;
const A61: f64 = 9017.0 / 3168.0;
const A62: f64 = -355.0 / 33.0;
const A63: f64 = 46732.0 / 5247.0;
const A64: f64 = 49.0 / 176.0;
const A65: f64 = -5103.0 / 18656.0;
const B1: f64 = 35.0 / 384.0;
const B3: f64 = 500.0 / 1113.0;
const B4: f64 = 125.0 / 192.0;
const B5: f64 = -2187.0 / 6784.0;
const B6: f64 = 11.0 / 84.0;
// Error coefficients: b - b* (5th minus embedded 4th order weights).
const E1: f64 = 71.0 / 57600.0;
const E3: f64 = -71.0 / 16695.0;
const E4: f64 = 71.0 / 1920.0;
const E5: f64 = -17253.0 / 339200.0;
const E6: f64 = 22.0 / 525.0;
const E7: f64 = -1.0 / 40.0;
// Dense output (Hairer, Nørsett & Wanner, §II.6; the continuous extension of DOPRI5).
const D1: f64 = -12715105075.0 / 11282082432.0;
const D3: f64 = 87487479700.0 / 32700410799.0;
const D4: f64 = -10690763975.0 / 1880347072.0;
const D5: f64 = 701980252875.0 / 199316789632.0;
const D6: f64 = -1453857185.0 / 822651844.0;
const D7: f64 = 69997945.0 / 29380423.0;

/// Right-hand side `f(x, t, out)`.
pub type Rhs<'a> = dyn Fn(&[f64], f64, &mut [f64]) + 'a;

/// Integrate from `x0` at `times[0]` and return the state at every entry of `times`
/// (which must be increasing). Steps are chosen by error control alone; output times inside a
/// step are filled in with the method's 4th-order continuous extension, and the last step is
/// clamped to land on the last time.
pub fn integrate(
    f: &Rhs<'_>,
    x0: &[f64],
    times: &[f64],
    o: &OdeOpts,
) -> Result<Vec<Vec<f64>>, OdeError> {
    let mut out = Vec::with_capacity(times.len());
    match integrate_into(f, x0, times, &[], o, &mut out) {
        Ok(()) => Ok(out),
        Err(e) => Err(e),
    }
}

/// Like [`integrate`], but keeps the states reached before an error: returns the samples
/// computed so far (a prefix of `times`) and the error, if any.
pub fn integrate_partial(
    f: &Rhs<'_>,
    x0: &[f64],
    times: &[f64],
    o: &OdeOpts,
) -> (Vec<Vec<f64>>, Option<OdeError>) {
    integrate_partial_at(f, x0, times, &[], o)
}

/// Like [`integrate_partial`] for a right-hand side that may jump at the times in `breaks`
/// (time-only switches such as `step(t-5)`): steps land on each break, the step before it is
/// evaluated with left limits and the step after it restarts from right limits, so neither
/// the error estimate nor the dense output straddles a discontinuity.
pub fn integrate_partial_at(
    f: &Rhs<'_>,
    x0: &[f64],
    times: &[f64],
    breaks: &[f64],
    o: &OdeOpts,
) -> (Vec<Vec<f64>>, Option<OdeError>) {
    let mut out = Vec::with_capacity(times.len());
    let e = integrate_into(f, x0, times, breaks, o, &mut out).err();
    (out, e)
}

fn integrate_into(
    f: &Rhs<'_>,
    x0: &[f64],
    times: &[f64],
    breaks: &[f64],
    o: &OdeOpts,
    out: &mut Vec<Vec<f64>>,
) -> Result<(), OdeError> {
    let n = x0.len();
    let Some(&t0) = times.first() else {
        return Ok(());
    };
    let mut x = x0.to_vec();
    if x.iter().any(|v| !v.is_finite()) {
        return Err(OdeError::NonFinite { t: t0 });
    }
    out.push(x.clone());
    let mut t = t0;
    let mut k: Vec<Vec<f64>> = vec![vec![0.0; n]; 7];
    let mut tmp = vec![0.0; n];
    let mut xn = vec![0.0; n];
    f(&x, t, &mut k[0]);
    if k[0].iter().any(|v| !v.is_finite()) {
        return Err(OdeError::NonFinite { t });
    }
    // Initial step guess (Hairer's heuristic, simplified).
    let d0 = norm(&x, &x, o);
    let d1 = norm(&k[0], &x, o);
    let span = times.last().map_or(0.0, |&l| l - t0);
    let mut h = if d0 < 1e-5 || d1 < 1e-5 {
        1e-6
    } else {
        0.01 * d0 / d1
    };
    h = h.min(span.max(1e-12));
    let mut steps = 0usize;
    let end = times.last().copied().unwrap_or(t0);
    let mut next = 1; // next output time to fill
    let mut cont = vec![vec![0.0; n]; 5];
    while next < times.len() {
        steps += 1;
        if steps > o.max_steps {
            return Err(OdeError::StepBudget {
                steps: o.max_steps,
                t,
            });
        }
        let mut last = false;
        let mut at_break = false;
        let mut hh = h;
        let brk = breaks
            .iter()
            .copied()
            .filter(|&b| b > t + 1e-12 * t.abs().max(1.0) && b < end)
            .fold(f64::INFINITY, f64::min);
        if t + hh >= brk - 1e-12 * brk.abs().max(1.0) {
            hh = brk - t;
            at_break = true;
        } else if t + hh >= end - 1e-12 * end.abs().max(1.0) {
            hh = end - t;
            last = true;
        }
        // Stages at the end of a step that lands on a break take the left limit there.
        let t_end = if at_break {
            (t + hh).next_down()
        } else {
            t + hh
        };
        if last && hh <= 4.0 * f64::EPSILON * t.abs().max(1.0) {
            // Already at the end within rounding.
            while next < times.len() {
                out.push(x.clone());
                next += 1;
            }
            break;
        }
        stage(&x, &k[0], hh, &[A21], &mut tmp, &k);
        f(&tmp, t + C2 * hh, &mut k[1]);
        stage(&x, &k[0], hh, &[A31, A32], &mut tmp, &k);
        f(&tmp, t + C3 * hh, &mut k[2]);
        stage(&x, &k[0], hh, &[A41, A42, A43], &mut tmp, &k);
        f(&tmp, t + C4 * hh, &mut k[3]);
        stage(&x, &k[0], hh, &[A51, A52, A53, A54], &mut tmp, &k);
        f(&tmp, t + C5 * hh, &mut k[4]);
        stage(&x, &k[0], hh, &[A61, A62, A63, A64, A65], &mut tmp, &k);
        f(&tmp, t_end, &mut k[5]);
        for i in 0..n {
            xn[i] = x[i]
                + hh * (B1 * k[0][i] + B3 * k[2][i] + B4 * k[3][i] + B5 * k[4][i] + B6 * k[5][i]);
        }
        f(&xn, t_end, &mut k[6]);
        let mut err = 0.0f64;
        let mut finite = true;
        for i in 0..n {
            let e = hh
                * (E1 * k[0][i]
                    + E3 * k[2][i]
                    + E4 * k[3][i]
                    + E5 * k[4][i]
                    + E6 * k[5][i]
                    + E7 * k[6][i]);
            let sc = o.atol + o.rtol * x[i].abs().max(xn[i].abs());
            let r = e / sc;
            err += r * r;
            finite &= xn[i].is_finite() && k[6][i].is_finite();
        }
        err = (err / n.max(1) as f64).sqrt();
        if !finite || err.is_nan() {
            // Try a smaller step before giving up: NaN can come from too large a step.
            h = hh * 0.1;
            if h <= 1e-14 * t.abs().max(1.0) {
                return Err(OdeError::NonFinite { t });
            }
            continue;
        }
        if err > 1.0 {
            h = hh * (0.9 * err.powf(-0.2)).clamp(0.1, 1.0);
            if h <= 1e-14 * t.abs().max(1.0) {
                return Err(OdeError::StepUnderflow { t });
            }
            continue;
        }
        // Accepted: emit every output time in (t, t + hh] from the continuous extension.
        let t1 = if last {
            end
        } else if at_break {
            brk
        } else {
            t + hh
        };
        if next < times.len() && times[next] <= t1 {
            for i in 0..n {
                let dy = xn[i] - x[i];
                let bspl = hh * k[0][i] - dy;
                cont[0][i] = x[i];
                cont[1][i] = dy;
                cont[2][i] = bspl;
                cont[3][i] = dy - hh * k[6][i] - bspl;
                cont[4][i] = hh
                    * (D1 * k[0][i]
                        + D3 * k[2][i]
                        + D4 * k[3][i]
                        + D5 * k[4][i]
                        + D6 * k[5][i]
                        + D7 * k[6][i]);
            }
            while next < times.len() && (times[next] <= t1 || last) {
                let th = if last && next + 1 == times.len() {
                    1.0
                } else {
                    ((times[next] - t) / hh).clamp(0.0, 1.0)
                };
                let th1 = 1.0 - th;
                let y: Vec<f64> = (0..n)
                    .map(|i| {
                        cont[0][i]
                            + th * (cont[1][i]
                                + th1 * (cont[2][i] + th * (cont[3][i] + th1 * cont[4][i])))
                    })
                    .collect();
                out.push(if th == 1.0 { xn.clone() } else { y });
                next += 1;
            }
        }
        t = t1;
        x.copy_from_slice(&xn);
        if at_break {
            // Restart from the right limit after the switch.
            f(&x, t.next_up(), &mut k[0]);
            if k[0].iter().any(|v| !v.is_finite()) {
                return Err(OdeError::NonFinite { t });
            }
        } else {
            let (a, b) = k.split_at_mut(6);
            a[0].copy_from_slice(&b[0]);
        }
        let fac = if err == 0.0 {
            5.0
        } else {
            (0.9 * err.powf(-0.2)).clamp(0.2, 5.0)
        };
        h = hh * fac;
    }
    Ok(())
}

fn stage(x: &[f64], k0: &[f64], h: f64, a: &[f64], out: &mut [f64], k: &[Vec<f64>]) {
    for i in 0..x.len() {
        let mut s = a[0] * k0[i];
        for (j, aj) in a.iter().enumerate().skip(1) {
            s += aj * k[j][i];
        }
        out[i] = x[i] + h * s;
    }
}

fn norm(v: &[f64], x: &[f64], o: &OdeOpts) -> f64 {
    let n = v.len().max(1) as f64;
    (v.iter()
        .zip(x)
        .map(|(a, b)| (a / (o.atol + o.rtol * b.abs())).powi(2))
        .sum::<f64>()
        / n)
        .sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(t1: f64, n: usize) -> Vec<f64> {
        (0..=n).map(|i| t1 * i as f64 / n as f64).collect()
    }

    #[test]
    fn exponential_decay_matches_closed_form() {
        let f = |x: &[f64], _t: f64, d: &mut [f64]| d[0] = -0.7 * x[0];
        let ts = grid(10.0, 100);
        let xs = integrate(&f, &[3.0], &ts, &OdeOpts::default()).unwrap_or_default();
        assert_eq!(xs.len(), ts.len());
        for (t, x) in ts.iter().zip(&xs) {
            let exact = 3.0 * (-0.7 * t).exp();
            assert!(
                (x[0] - exact).abs() < 1e-7 * (1.0 + exact),
                "t={t}: {} vs {exact}",
                x[0]
            );
        }
    }

    #[test]
    fn harmonic_oscillator_and_time_dependence() {
        let f = |x: &[f64], _t: f64, d: &mut [f64]| {
            d[0] = x[1];
            d[1] = -4.0 * x[0];
        };
        let ts = grid(20.0, 40);
        let xs = integrate(&f, &[1.0, 0.0], &ts, &OdeOpts::default()).unwrap_or_default();
        for (t, x) in ts.iter().zip(&xs) {
            assert!((x[0] - (2.0 * t).cos()).abs() < 1e-6, "t={t}");
            assert!((x[1] + 2.0 * (2.0 * t).sin()).abs() < 1e-6, "t={t}");
        }
        // x' = t cos(t)  =>  x = cos t + t sin t - 1
        let g = |_x: &[f64], t: f64, d: &mut [f64]| d[0] = t * t.cos();
        let ts = grid(6.0, 12);
        let xs = integrate(&g, &[0.0], &ts, &OdeOpts::default()).unwrap_or_default();
        for (t, x) in ts.iter().zip(&xs) {
            let e = (x[0] - (t.cos() + t * t.sin() - 1.0)).abs();
            assert!(e < 1e-6, "t={t}: error {e}");
        }
    }

    #[test]
    fn dense_output_is_accurate_between_steps() {
        // Smooth linear dynamics take steps much longer than the output grid: the samples in
        // between come from the continuous extension and must match the closed form.
        let f = |x: &[f64], _t: f64, d: &mut [f64]| {
            d[0] = x[1];
            d[1] = -x[0];
        };
        let ts = grid(30.0, 3000);
        let xs = integrate(&f, &[1.0, 0.0], &ts, &OdeOpts::default()).unwrap_or_default();
        assert_eq!(xs.len(), ts.len());
        for (t, x) in ts.iter().zip(&xs) {
            assert!(
                (x[0] - t.cos()).abs() < 1e-6,
                "t={t}: {} vs {}",
                x[0],
                t.cos()
            );
            assert!((x[1] + t.sin()).abs() < 1e-6, "t={t}");
        }
        // The last sample is the state at the last time exactly (no interpolation).
        assert!((xs[3000][0] - 30f64.cos()).abs() < 1e-6);
    }

    #[test]
    fn blow_up_and_budget_are_errors() {
        // x' = x^2 from 1 blows up at t = 1.
        let f = |x: &[f64], _t: f64, d: &mut [f64]| d[0] = x[0] * x[0];
        let r = integrate(&f, &[1.0], &[0.0, 2.0], &OdeOpts::default());
        assert!(r.is_err());
        // Stiff: x' = -1e7 (x - cos t) with a small budget.
        let g = |x: &[f64], t: f64, d: &mut [f64]| d[0] = -1e7 * (x[0] - t.cos());
        let o = OdeOpts {
            max_steps: 1000,
            ..OdeOpts::default()
        };
        assert!(matches!(
            integrate(&g, &[0.0], &[0.0, 10.0], &o),
            Err(OdeError::StepBudget { .. })
        ));
        let z = |x: &[f64], _t: f64, d: &mut [f64]| d[0] = 1.0 / (x[0] - x[0]);
        assert!(matches!(
            integrate(&z, &[1.0], &[0.0, 1.0], &OdeOpts::default()),
            Err(OdeError::NonFinite { .. })
        ));
    }
}
