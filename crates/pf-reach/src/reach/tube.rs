//! Reachtubes of one mode from a box of entry states: DryVR's learned-discrepancy bloating of
//! simulated traces, or the sound interval/log-norm enclosure for ODE models.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::run::simulate;
use super::sample::{Rng, sample_points};
use super::{Method, Options, TubeBox};
use crate::discrepancy::learn;
use crate::interval::Iv;
use crate::problem::{Dynamics, Problem};
use crate::sound::sound_tube;

/// A tube and, when a simulation failed part-way, the reason (the tube then covers only the
/// common prefix of the traces, usable up to a transition that happens before the failure).
pub(crate) type TubeResult = Result<(Vec<TubeBox>, Option<String>), TubeError>;

/// Why a mode has no tube.
#[derive(Debug)]
pub(crate) enum TubeError {
    /// Simulation or model failure: the verdict is `unknown` with this reason.
    Fatal(String),
    /// The bound blew up (sound mode): a smaller entry box may succeed.
    Blowup(String),
}

impl From<String> for TubeError {
    fn from(e: String) -> TubeError {
        TubeError::Fatal(e)
    }
}

/// DryVR's tube: simulate from the centre, the vertices and `o.samples` random points of
/// `init`, learn the discrepancy (DryVR §4) and bloat the centre trace. For each sample interval
/// the box is the hull of the two centre samples widened by the learned radius × (1 + margin),
/// joined with every sampled trace (so the tube never excludes a simulated behaviour).
fn learned_tube(
    p: &Problem,
    mode: &str,
    init: &[Iv],
    horizon: f64,
    o: &Options,
    rng: &mut Rng,
    sims: &AtomicUsize,
) -> TubeResult {
    let pts = sample_points(init, o.samples, rng);
    let mut runs = Vec::with_capacity(pts.len());
    let mut failure: Option<String> = None;
    for x0 in &pts {
        let (ts, xs, e) = simulate(p, mode, x0, horizon, o);
        sims.fetch_add(1, Ordering::Relaxed);
        if failure.is_none() {
            failure = e;
        }
        runs.push((ts, xs));
    }
    let m = runs
        .iter()
        .map(|(t, x)| t.len().min(x.len()))
        .min()
        .unwrap_or(0);
    if m < 2 {
        return Err(TubeError::Fatal(failure.unwrap_or_else(|| {
            "simulator returned fewer than two samples".into()
        })));
    }
    if failure.is_none() && runs.iter().any(|(t, _)| t.len() != m) {
        return Err(TubeError::Fatal(
            "simulator returned traces of different lengths for one mode".into(),
        ));
    }
    let (mut ts, mut c) = runs[0].clone();
    ts.truncate(m);
    c.truncate(m);
    let others: Vec<Vec<Vec<f64>>> = runs[1..].iter().map(|(_, x)| x[..m].to_vec()).collect();
    let r: Vec<f64> = init.iter().map(|b| b.width() / 2.0).collect();
    let rad = learn(p.bloating, &ts, &c, &others, &r);
    let n = init.len();
    let mut boxes = Vec::with_capacity(m.saturating_sub(1));
    for k in 0..m.saturating_sub(1) {
        let mut x: Vec<Iv> = (0..n)
            .map(|j| {
                let rr = rad.as_ref().map_or(0.0, |r| r[k][j].max(r[k + 1][j])) * (1.0 + o.margin);
                let iv = Iv::new(c[k][j], c[k + 1][j]);
                Iv::new(iv.lo - rr, iv.hi + rr)
            })
            .collect();
        for tr in &others {
            for j in 0..n {
                x[j] = x[j].hull(Iv::new(tr[k][j], tr[k + 1][j]));
            }
        }
        boxes.push(TubeBox {
            local: Iv::new(ts[k], ts[k + 1]),
            x,
        });
    }
    Ok((boxes, failure))
}

/// The tube of `mode` from `init` over local time `[0, horizon]` with the chosen method.
pub(crate) fn mode_tube(
    p: &Problem,
    mode: &str,
    init: &[Iv],
    horizon: f64,
    o: &Options,
    rng: &mut Rng,
    sims: &AtomicUsize,
) -> TubeResult {
    match (o.method, &p.dynamics) {
        (Method::Learned, _) => learned_tube(p, mode, init, horizon, o, rng, sims),
        (Method::Sound, Dynamics::Ode(m)) => {
            let md = m
                .mode(mode)
                .ok_or_else(|| TubeError::Fatal(format!("no dynamics for mode `{mode}`")))?;
            sims.fetch_add(1, Ordering::Relaxed);
            sound_tube(md, init, horizon, m.step, 1_000_000)
                .map(|b| (b, None))
                .map_err(|e| {
                    if e.is_refinable() {
                        TubeError::Blowup(e.to_string())
                    } else {
                        TubeError::Fatal(e.to_string())
                    }
                })
        }
        (Method::Sound, Dynamics::External(_)) => Err(TubeError::Fatal(
            "sound mode needs an ODE model, not an external simulator".into(),
        )),
    }
}
