//! One cell of the initial set through the mode graph (DryVR's verification loop for one
//! partition): a counterexample search by simulation, then per-mode reachtubes, guard windows,
//! transitions and unsafe checks, with DryVR-style local refinement.
//!
//! Two refinements are local to a cell. (1) When a mode's tube meets the unsafe set, its entry
//! box is split along its widest dimension and both halves are checked (DryVR refines the
//! initial set of the mode where the check fails). (2) Guard windows are sliced by transition
//! time: at slicing level `L` the boxes of a window form `2^L` consecutive groups, and each group
//! enters the next mode separately, with its own entry box (the hull of the reset images of its
//! boxes only) and its own entry-time interval. Every state that takes the transition does so in
//! some box of the window, so the slices together cover exactly what the whole window covers;
//! but states leaving early and late are no longer joined into one box. This matters for time
//! guards such as `And(t>5.0,t<=6.0)`: over a whole window every car's position box grows by the
//! distance it drives in that second, independently for each car, so after a few transitions
//! the boxes of two cars meet although no single run brings them close.

use std::sync::atomic::AtomicUsize;
use std::time::Instant;

use super::run::{simulate_run, step_of, time_cut};
use super::sample::{Rng, sample_points};
use super::tube::{TubeError, mode_tube};
use super::{Cell, Counterexample, ModeTube, Options, TubeBox};
use crate::interval::Iv;
use crate::pred::Tri;
use crate::problem::{Edge, Problem};

/// What checking one cell gave.
pub(crate) enum CellOutcome {
    /// Every tube avoids the unsafe set.
    Safe(Vec<ModeTube>),
    /// A simulated run enters the unsafe set.
    Unsafe(Counterexample),
    /// Inconclusive: why, and whether finer guard-window slices may help (a tube met the
    /// unsafe set after a transition).
    Refine { reason: String, slice: bool },
}

/// The result of exploring one mode entry and everything reachable from it.
enum Explored {
    Safe(Vec<ModeTube>),
    /// A tube meets the unsafe set; `after_transition` tells whether that tube was entered
    /// through a guard window (so slicing windows may separate it).
    Meets {
        reason: String,
        after_transition: bool,
    },
    /// A budget ran out (entries, consecutive transitions, time).
    OutOfBudget(String),
}

struct Explorer<'a> {
    p: &'a Problem,
    o: &'a Options,
    rng: Rng,
    sims: &'a AtomicUsize,
    deadline: Option<Instant>,
    entries: usize,
    /// Guard windows are cut into `2^level` slices.
    level: u32,
}

/// Check one cell at its window-slicing level, searching for counterexamples first unless
/// that already ran on its box.
pub(crate) fn check_cell(
    p: &Problem,
    c: &Cell,
    o: &Options,
    seed: u64,
    sims: &AtomicUsize,
    deadline: Option<Instant>,
) -> Result<CellOutcome, String> {
    let (cell, level) = (&c.b, c.level);
    let mut rng = Rng::new(seed);
    // 1. Counterexample search by concrete simulation.
    if !c.searched {
        for &v0 in &p.initial_vertices {
            for (i, x0) in sample_points(cell, 2, &mut rng).into_iter().enumerate() {
                let (segs, bad) = simulate_run(p, v0, &x0, o, &mut rng, sims, i > 0)?;
                if bad {
                    return Ok(CellOutcome::Unsafe(Counterexample {
                        initial: x0,
                        segments: segs,
                    }));
                }
            }
        }
    }
    // 2. Reachtubes over the mode graph.
    let mut ex = Explorer {
        p,
        o,
        rng,
        sims,
        deadline,
        entries: 0,
        level,
    };
    let mut tubes = Vec::new();
    for &v in &p.initial_vertices {
        match ex.entry(v, cell.to_vec(), Iv::point(0.0), 0, 0, false)? {
            Explored::Safe(t) => tubes.extend(t),
            Explored::Meets {
                reason,
                after_transition,
            } => {
                return Ok(CellOutcome::Refine {
                    reason,
                    slice: after_transition,
                });
            }
            Explored::OutOfBudget(reason) => {
                return Ok(CellOutcome::Refine {
                    reason,
                    slice: false,
                });
            }
        }
    }
    Ok(CellOutcome::Safe(tubes))
}

impl Explorer<'_> {
    /// Explore vertex `v` entered with states `init` at global times `start`; `splits` counts
    /// how often this entry box was split already, `chain` the transitions before it.
    fn entry(
        &mut self,
        v: usize,
        init: Vec<Iv>,
        start: Iv,
        splits: usize,
        chain: usize,
        entered: bool,
    ) -> Result<Explored, String> {
        let (p, o) = (self.p, self.o);
        self.entries += 1;
        if self.entries > o.max_entries {
            return Ok(Explored::OutOfBudget(format!(
                "more than {} mode entries in one cell",
                o.max_entries
            )));
        }
        if chain > o.max_transitions {
            return Ok(Explored::OutOfBudget(format!(
                "more than {} transitions in one run (cyclic mode graph)",
                o.max_transitions
            )));
        }
        if self.deadline.is_some_and(|d| Instant::now() > d) {
            return Ok(Explored::OutOfBudget("time limit reached".into()));
        }
        let rem = p.horizon - start.lo;
        if rem <= 1e-9 {
            return Ok(Explored::Safe(Vec::new()));
        }
        let mode = &p.vertices[v];
        let span = time_cut(p, v, rem, step_of(p));
        let (boxes, failure) = match mode_tube(p, mode, &init, span, o, &mut self.rng, self.sims) {
            Ok(t) => t,
            Err(TubeError::Fatal(e)) => return Err(e),
            // Treated like a tube that meets the unsafe set: split the entry, then the cell.
            Err(TubeError::Blowup(reason)) => (Vec::new(), Some(reason)),
        };
        if boxes.is_empty() {
            let reason = failure.unwrap_or_else(|| "empty tube".into());
            if splits < o.mode_splits && init.iter().any(|i| i.width() > 0.0) {
                return self.split_entry(v, &init, start, splits, chain, entered);
            }
            return Ok(Explored::Meets {
                reason,
                after_transition: entered,
            });
        }
        // First window of each outgoing guard: (edge index, first box, end box exclusive).
        let outs: Vec<_> = p.edges.iter().filter(|e| e.from == v).collect();
        let mut windows: Vec<(usize, usize, usize)> = Vec::new();
        for (ei, e) in outs.iter().enumerate() {
            let mut s = None;
            for (k, b) in boxes.iter().enumerate() {
                let hit = e.guard.eval_box(&b.x, b.local) != Tri::False;
                match (s, hit) {
                    (None, true) => s = Some(k),
                    (Some(s0), false) => {
                        windows.push((ei, s0, k));
                        s = None;
                        break;
                    }
                    _ => {}
                }
            }
            if let Some(s0) = s {
                windows.push((ei, s0, boxes.len()));
            }
        }
        // DryVR's urgent semantics: the mode is left by the end of the earliest window.
        let trunc = windows
            .iter()
            .min_by_key(|w| w.1)
            .map_or(boxes.len(), |w| w.2);
        // The tube covers the whole remaining time only when no simulation failed; otherwise
        // it is usable only if a transition cuts it before the end.
        if let Some(e) = failure
            && trunc == boxes.len()
        {
            return Err(e);
        }
        let kept = &boxes[..trunc];
        let meets = kept.iter().any(|b| {
            p.unsafe_set
                .for_mode(mode)
                .any(|u| u.eval_box(&b.x, b.local) != Tri::False)
        });
        if meets {
            if splits < o.mode_splits && init.iter().any(|i| i.width() > 0.0) {
                return self.split_entry(v, &init, start, splits, chain, entered);
            }
            return Ok(Explored::Meets {
                reason: format!("tube meets the unsafe set in mode `{mode}`"),
                after_transition: entered,
            });
        }
        let mut tubes = vec![ModeTube {
            vertex: v,
            mode: mode.clone(),
            start,
            boxes: kept.to_vec(),
        }];
        for &(ei, s0, e0) in windows.iter().filter(|w| w.1 < trunc) {
            let e = outs[ei];
            let e0 = e0.min(trunc);
            let len = e0 - s0;
            let parts = (1usize << self.level.min(16)).min(len);
            // A window into a mode without outgoing edges is tried whole first: slicing it
            // multiplies the most expensive tubes (they run to the horizon) and is only needed
            // when the whole window fails.
            let leaf = !p.edges.iter().any(|x| x.from == e.to);
            if parts > 1 && leaf {
                let mark = tubes.len();
                match self.window(e, &boxes, s0, e0, start, chain)? {
                    Explored::Safe(t) => {
                        tubes.extend(t);
                        continue;
                    }
                    Explored::OutOfBudget(r) => return Ok(Explored::OutOfBudget(r)),
                    Explored::Meets { .. } => tubes.truncate(mark),
                }
            }
            for q in 0..parts {
                let (a, b) = (s0 + len * q / parts, s0 + len * (q + 1) / parts);
                match self.window(e, &boxes, a, b, start, chain)? {
                    Explored::Safe(t) => tubes.extend(t),
                    other => return Ok(other),
                }
            }
        }
        Ok(Explored::Safe(tubes))
    }

    /// Enter the target of edge `e` from the tube boxes `a..b` (a guard window or a slice of
    /// one): the entry box is the hull of their reset images, the entry time the hull of their
    /// global times.
    fn window(
        &mut self,
        e: &Edge,
        boxes: &[TubeBox],
        a: usize,
        b: usize,
        start: Iv,
        chain: usize,
    ) -> Result<Explored, String> {
        let mut nb: Option<Vec<Iv>> = None;
        for bx in &boxes[a..b] {
            let r = e.reset.apply_box(&bx.x, bx.local);
            nb = Some(match nb {
                None => r,
                Some(h) => h.iter().zip(&r).map(|(x, y)| x.hull(*y)).collect(),
            });
        }
        let Some(nb) = nb else {
            return Ok(Explored::Safe(Vec::new()));
        };
        if nb.iter().any(|i| !i.lo.is_finite() || !i.hi.is_finite()) {
            return Ok(Explored::OutOfBudget(
                "reset produced an unbounded box".into(),
            ));
        }
        let st = Iv::new(
            start.lo + boxes[a].local.lo,
            start.hi + boxes[b - 1].local.hi,
        );
        self.entry(e.to, nb, st, 0, chain + 1, true)
    }

    /// DryVR's per-mode refinement: split the entry box along its widest dimension and check
    /// both halves.
    fn split_entry(
        &mut self,
        v: usize,
        init: &[Iv],
        start: Iv,
        splits: usize,
        chain: usize,
        entered: bool,
    ) -> Result<Explored, String> {
        let j = (0..init.len())
            .max_by(|&a, &b| init[a].width().total_cmp(&init[b].width()))
            .unwrap_or(0);
        let m = init[j].mid();
        let (mut a, mut b) = (init.to_vec(), init.to_vec());
        a[j] = Iv::new(init[j].lo, m);
        b[j] = Iv::new(m, init[j].hi);
        let ra = self.entry(v, a, start, splits + 1, chain, entered)?;
        let Explored::Safe(mut ta) = ra else {
            return Ok(ra);
        };
        let rb = self.entry(v, b, start, splits + 1, chain, entered)?;
        let Explored::Safe(tb) = rb else {
            return Ok(rb);
        };
        ta.extend(tb);
        Ok(Explored::Safe(ta))
    }
}
