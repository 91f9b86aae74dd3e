//! Concrete simulation: one mode from one state (ODE model or external simulator), and whole
//! hybrid runs through the mode graph, which is how counterexamples are found.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::sample::Rng;
use super::{Options, TraceSeg};
use crate::interval::Iv;
use crate::pred::Tri;
use crate::problem::{Dynamics, Problem};

/// Simulate one mode; on failure, the samples reached before it and the reason.
pub(crate) fn simulate(
    p: &Problem,
    mode: &str,
    x0: &[f64],
    horizon: f64,
    o: &Options,
) -> (Vec<f64>, Vec<Vec<f64>>, Option<String>) {
    match &p.dynamics {
        Dynamics::Ode(m) => {
            let (ts, xs, e) = m.simulate_partial(mode, x0, horizon, &o.ode);
            (ts, xs, e.map(|e| format!("simulating mode `{mode}`: {e}")))
        }
        Dynamics::External(s) => match s.simulate(mode, x0, horizon) {
            Ok((t, x)) => (t, x, None),
            Err(e) => (vec![], vec![], Some(e)),
        },
    }
}

/// The trace sample step of the problem's dynamics.
pub(crate) fn step_of(p: &Problem) -> f64 {
    match &p.dynamics {
        Dynamics::Ode(m) => m.step,
        Dynamics::External(s) => s.step,
    }
}

/// How long (local time, at most `rem`) the mode at vertex `v` needs to be simulated. When
/// every outgoing guard depends on time only (DryVR's `And(t>5.0,t<=6.0)`), each guard has the
/// same window on every trace and every tube, so the windows are known before simulating: the
/// tube is cut (DryVR's urgent semantics) at the end of the earliest-starting window, and runs
/// fire inside it, so nothing after its end is needed. Windows are found on the sample grid
/// `0, h, 2h, ...` that traces and tubes use, and one sample past the end is kept. A guard that
/// reads the state may open a window that starts earlier and ends later: then nothing is cut.
pub(crate) fn time_cut(p: &Problem, v: usize, rem: f64, h: f64) -> f64 {
    if h.is_nan() || h <= 0.0 {
        return rem;
    }
    let outs: Vec<_> = p.edges.iter().filter(|e| e.from == v).collect();
    if outs.is_empty() || outs.iter().any(|e| e.guard.uses_state()) {
        return rem;
    }
    let any = vec![Iv::entire(); p.variables.len()];
    // (start, end) of each guard's first window, in samples.
    let mut wins: Vec<(usize, usize)> = Vec::new();
    for e in outs {
        let mut start = None;
        // Scanning is bounded: a window more than a million samples away is not worth it.
        for k in 0..1_000_000usize {
            let t0 = k as f64 * h;
            if t0 >= rem {
                break;
            }
            let hit = e.guard.eval_box(&any, Iv::new(t0, t0 + h)) != Tri::False;
            match (start, hit) {
                (None, true) => start = Some(k),
                (Some(s), false) => {
                    wins.push((s, k));
                    start = None;
                    break;
                }
                _ => {}
            }
        }
        if start.is_some() {
            // The window runs to the end of the remaining time: nothing to cut.
            return rem;
        }
    }
    let Some(first) = wins.iter().map(|w| w.0).min() else {
        return rem;
    };
    let end = wins
        .iter()
        .filter(|w| w.0 == first)
        .map(|w| w.1)
        .max()
        .unwrap_or(first);
    rem.min((end + 1) as f64 * h)
}

fn seg_box(a: &[f64], b: &[f64]) -> Vec<Iv> {
    a.iter().zip(b).map(|(x, y)| Iv::new(*x, *y)).collect()
}

/// Simulate concrete runs from `x0` in vertex `v0`, exploring every edge whose guard becomes
/// possible first (nondeterministic branching, at most 64 leaves). A transition fires at the
/// first sample interval where its guard may hold or, with `random_fire`, at a random sample of
/// that guard window. Returns the first run whose last state is unsafe, or the first run.
pub fn simulate_run(
    p: &Problem,
    v0: usize,
    x0: &[f64],
    o: &Options,
    rng: &mut Rng,
    sims: &AtomicUsize,
    random_fire: bool,
) -> Result<(Vec<TraceSeg>, bool), String> {
    let mut stack: Vec<(usize, Vec<f64>, f64, Vec<TraceSeg>)> =
        vec![(v0, x0.to_vec(), 0.0, Vec::new())];
    let mut first: Option<Vec<TraceSeg>> = None;
    let mut leaves = 0;
    let h = step_of(p);
    while let Some((v, x, t0, segs)) = stack.pop() {
        let rem = p.horizon - t0;
        let mode = &p.vertices[v];
        if rem <= 1e-9 || segs.len() >= o.max_transitions || leaves >= 64 {
            leaves += 1;
            first.get_or_insert(segs);
            continue;
        }
        let (ts, xs, serr) = simulate(p, mode, &x, time_cut(p, v, rem, h), o);
        sims.fetch_add(1, Ordering::Relaxed);
        if xs.is_empty() {
            return Err(serr.unwrap_or_else(|| "simulator returned no samples".into()));
        }
        let seg = |end: usize| TraceSeg {
            vertex: v,
            mode: mode.clone(),
            t: ts[..end].iter().map(|t| t + t0).collect(),
            x: xs[..end].to_vec(),
        };
        let bad = |k: usize| p.unsafe_set.for_mode(mode).any(|u| u.holds(&xs[k], ts[k]));
        // Guard windows: for each outgoing edge, the first run of sample intervals where it may hold.
        let mut wins: Vec<(usize, usize, usize)> = Vec::new();
        for (ei, e) in p.edges.iter().enumerate().filter(|(_, e)| e.from == v) {
            let mut start = None;
            for k in 0..xs.len().saturating_sub(1) {
                let hit = e
                    .guard
                    .eval_box(&seg_box(&xs[k], &xs[k + 1]), Iv::new(ts[k], ts[k + 1]))
                    != Tri::False;
                match (start, hit) {
                    (None, true) => start = Some(k),
                    (Some(s0), false) => {
                        wins.push((ei, s0, k));
                        start = None;
                        break;
                    }
                    _ => {}
                }
            }
            if let Some(s0) = start {
                wins.push((ei, s0, xs.len() - 1));
            }
        }
        let kmin = wins.iter().map(|w| w.1).min();
        let scan_to = kmin.map_or(xs.len(), |k| k + 1);
        if let Some(k) = (0..scan_to).find(|&k| bad(k)) {
            let mut s = segs;
            s.push(seg(k + 1));
            return Ok((s, true));
        }
        let Some(kmin) = kmin else {
            // A run that fails before any transition fires cannot be continued.
            if let Some(e) = serr {
                return Err(e);
            }
            leaves += 1;
            let mut s = segs;
            s.push(seg(xs.len()));
            first.get_or_insert(s);
            continue;
        };
        for &(ei, s0, e0) in wins.iter().filter(|w| w.1 == kmin).rev() {
            let e = &p.edges[ei];
            let fire = if random_fire && e0 > s0 + 1 {
                s0 + ((e0 - s0) as f64 * rng.next_f64()) as usize
            } else {
                s0
            } + 1;
            let fire = fire.min(xs.len() - 1);
            if let Some(k) = (scan_to..=fire).find(|&k| bad(k)) {
                let mut s = segs.clone();
                s.push(seg(k + 1));
                return Ok((s, true));
            }
            let y = e.reset.apply(&xs[fire], ts[fire], &mut || rng.next_f64());
            let mut s = segs.clone();
            s.push(seg(fire + 1));
            stack.push((e.to, y, t0 + ts[fire], s));
        }
    }
    Ok((first.unwrap_or_default(), false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_edges(g0: &str, g1: &str) -> Problem {
        let json = format!(
            r#"{{"vertex":["A","B"],"edge":[[0,1],[0,1]],"variables":["x"],
                "guards":["{g0}","{g1}"],"initialSet":[[0],[1]],
                "unsafeSet":"@Allmode:x>1000","timeHorizon":50,
                "dynamics":{{"step":0.05,"equations":{{"x":"1"}}}}}}"#
        );
        Problem::from_json_str(&json, "cut.json", None).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn time_only_guards_cut_the_simulation_after_the_first_window() {
        // The window's last sample interval is [6.0, 6.05]; one more is kept.
        let p = two_edges("And(t>5.0,t<=6.0)", "And(t>7.0,t<=8.0)");
        let cut = time_cut(&p, 0, 50.0, 0.05);
        assert!((cut - 6.1).abs() < 1e-9, "{cut}");
        // The earliest-starting window decides, even when it ends after another one.
        let p = two_edges("And(t>5.0,t<=6.0)", "And(t>2.0,t<=9.0)");
        let cut = time_cut(&p, 0, 50.0, 0.05);
        assert!((cut - 9.1).abs() < 1e-9, "{cut}");
        // A window beyond the remaining time, and a mode without edges, cut nothing.
        assert_eq!(time_cut(&p, 0, 1.0, 0.05), 1.0);
        assert_eq!(time_cut(&p, 1, 50.0, 0.05), 50.0);
    }

    #[test]
    fn a_state_guard_disables_the_cut() {
        // `x > 3` opens at t = 3 and may stay open past the time window: keep everything.
        let p = two_edges("And(t>5.0,t<=6.0)", "x>3");
        assert_eq!(time_cut(&p, 0, 50.0, 0.05), 50.0);
    }
}
