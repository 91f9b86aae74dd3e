//! The DryVR verification loop: concrete hybrid simulations (counterexample search), per-mode
//! reachtubes (learned discrepancy or sound Lipschitz bounds), guard/transition handling over
//! the mode graph, unsafe-set checks, and refinement by partitioning the initial set.

mod explore;
mod run;
mod sample;
mod tube;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use crate::interval::Iv;
use crate::ode::OdeOpts;
use crate::problem::Problem;
use explore::{CellOutcome, check_cell};
pub use run::simulate_run;
pub use sample::{Rng, sample_points};

/// How reachtubes are computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Method {
    /// DryVR: discrepancy learned from sampled traces (probabilistic guarantee).
    Learned,
    /// Interval enclosures + Jacobian log-norm bound (ODE models only).
    Sound,
}

/// Options of [`check`].
#[derive(Clone, Debug)]
pub struct Options {
    /// Tube method.
    pub method: Method,
    /// Random samples per mode tube (besides the centre and up to 16 vertices).
    pub samples: usize,
    /// Maximum refinement depth (each level halves cells along their widest dimension).
    pub max_depth: usize,
    /// Maximum number of cells checked in total.
    pub max_cells: usize,
    /// Maximum transitions along one run (bounds cyclic mode graphs).
    pub max_transitions: usize,
    /// Maximum mode tubes computed per cell (over all runs, splits and window slices).
    pub max_entries: usize,
    /// Highest guard-window slicing level: a cell whose tube meets the unsafe set after a
    /// transition is re-checked with every guard window cut into 2, 4, ... `2^level` slices by
    /// transition time before its initial box is split.
    pub window_levels: u32,
    /// How often the entry box of one mode may be split when its tube meets the unsafe set.
    pub mode_splits: usize,
    /// Worker threads for refinement.
    pub threads: usize,
    /// Seed of the sampler.
    pub seed: u64,
    /// Learned radii are multiplied by `1 + margin`.
    pub margin: f64,
    /// Integrator settings.
    pub ode: OdeOpts,
    /// Stop refining (verdict `unknown`) once this much wall-clock time has passed.
    pub time_limit: Option<std::time::Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            method: Method::Learned,
            samples: 8,
            max_depth: 6,
            max_cells: 128,
            max_transitions: 200,
            max_entries: 4000,
            window_levels: 2,
            mode_splits: 4,
            threads: 2,
            seed: 0x5eed,
            margin: 0.1,
            ode: OdeOpts::default(),
            time_limit: None,
        }
    }
}

/// One box of a reachtube.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TubeBox {
    /// Local time (since the mode was entered).
    pub local: Iv,
    /// State box.
    pub x: Vec<Iv>,
}

/// A reachtube segment in one mode.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ModeTube {
    /// Vertex index.
    pub vertex: usize,
    /// Mode name.
    pub mode: String,
    /// Global time at which the mode may be entered.
    pub start: Iv,
    /// Boxes, consecutive in local time.
    pub boxes: Vec<TubeBox>,
}

/// A concrete simulated trace segment in one mode.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TraceSeg {
    /// Vertex index.
    pub vertex: usize,
    /// Mode name.
    pub mode: String,
    /// Global sample times.
    pub t: Vec<f64>,
    /// States.
    pub x: Vec<Vec<f64>>,
}

/// A counterexample: a simulated run whose last sample lies in the unsafe set.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Counterexample {
    /// Initial state.
    pub initial: Vec<f64>,
    /// The run, mode by mode; the last state of the last segment is unsafe.
    pub segments: Vec<TraceSeg>,
}

/// The answer.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(tag = "verdict", rename_all = "lowercase")]
pub enum Verdict {
    /// No reachtube box meets the unsafe set.
    Safe {
        /// Union of the tubes of all cells.
        tube: Vec<ModeTube>,
    },
    /// A simulation entered the unsafe set.
    Unsafe {
        /// The run.
        counterexample: Counterexample,
    },
    /// Undecided within the budget (or simulation failed).
    Unknown {
        /// Why.
        reason: String,
    },
}

impl Verdict {
    /// `safe`, `unsafe` or `unknown`.
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Safe { .. } => "safe",
            Verdict::Unsafe { .. } => "unsafe",
            Verdict::Unknown { .. } => "unknown",
        }
    }
}

/// Counters.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Stats {
    /// Mode simulations run.
    pub simulations: usize,
    /// Cells (initial-set partitions) checked.
    pub cells: usize,
    /// Deepest refinement level reached.
    pub depth: usize,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Largest box width over all tube boxes and dimensions (safe verdicts).
    pub max_width: f64,
}

/// Verdict with statistics.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Report {
    /// The verdict.
    #[serde(flatten)]
    pub verdict: Verdict,
    /// Counters.
    pub stats: Stats,
}

fn split(cell: &[Iv], root: &[Iv]) -> (Vec<Iv>, Vec<Iv>) {
    let j = (0..cell.len())
        .max_by(|&a, &b| {
            let ra = cell[a].width() / root[a].width().max(f64::MIN_POSITIVE);
            let rb = cell[b].width() / root[b].width().max(f64::MIN_POSITIVE);
            ra.total_cmp(&rb)
        })
        .unwrap_or(0);
    let (mut a, mut b) = (cell.to_vec(), cell.to_vec());
    let m = cell[j].mid();
    a[j] = Iv::new(cell[j].lo, m);
    b[j] = Iv::new(m, cell[j].hi);
    (a, b)
}

/// Check `p`: safe (tube avoids the unsafe set), unsafe (a simulated run enters it), or unknown.
pub fn check(p: &Problem, o: &Options) -> Report {
    let start = Instant::now();
    let deadline = o.time_limit.map(|l| start + l);
    let sims = AtomicUsize::new(0);
    let mut stats = Stats::default();
    let mut frontier = vec![Cell {
        b: p.initial.clone(),
        level: 0,
        depth: 0,
        searched: false,
    }];
    let mut safe_tubes: Vec<ModeTube> = Vec::new();
    let root = p.initial.clone();
    let mut round = 0u64;
    let verdict = 'outer: loop {
        stats.cells += frontier.len();
        let results: Vec<Option<Result<CellOutcome, String>>> =
            run_parallel(&frontier, o.threads, |i, c| {
                check_cell(p, c, o, o.seed ^ (round << 32) ^ i as u64, &sims, deadline)
            });
        round += 1;
        let mut next = Vec::new();
        let mut reason = String::new();
        let mut exhausted = false;
        for (c, r) in frontier.iter().zip(results) {
            let Some(r) = r else {
                break 'outer Verdict::Unknown {
                    reason: "a worker thread failed".into(),
                };
            };
            match r {
                Err(e) => break 'outer Verdict::Unknown { reason: e },
                Ok(CellOutcome::Unsafe(cx)) => break 'outer Verdict::Unsafe { counterexample: cx },
                Ok(CellOutcome::Safe(t)) => safe_tubes.extend(t),
                Ok(CellOutcome::Refine { reason: why, slice }) => {
                    reason = why;
                    if slice && c.level < o.window_levels {
                        // Same cell, finer guard-window slices (no new counterexample search:
                        // the cell's sample runs were already simulated).
                        next.push(Cell {
                            level: c.level + 1,
                            searched: true,
                            ..c.clone()
                        });
                    } else if c.depth >= o.max_depth {
                        exhausted = true;
                    } else {
                        let (a, b) = split(&c.b, &root);
                        for b in [a, b] {
                            next.push(Cell {
                                b,
                                level: c.level,
                                depth: c.depth + 1,
                                searched: false,
                            });
                        }
                        stats.depth = stats.depth.max(c.depth + 1);
                    }
                }
            }
        }
        if next.is_empty() && !exhausted {
            break Verdict::Safe {
                tube: std::mem::take(&mut safe_tubes),
            };
        }
        if deadline.is_some_and(|d| Instant::now() > d) {
            break Verdict::Unknown {
                reason: format!("time limit reached after {} cells: {reason}", stats.cells),
            };
        }
        if exhausted || stats.cells + next.len() > o.max_cells {
            break Verdict::Unknown {
                reason: format!(
                    "refinement budget exhausted (depth {}, {} cells): {reason}",
                    stats.depth, stats.cells
                ),
            };
        }
        frontier = next;
    };
    stats.simulations = sims.load(Ordering::Relaxed);
    stats.seconds = start.elapsed().as_secs_f64();
    if let Verdict::Safe { tube } = &verdict {
        stats.max_width = tube
            .iter()
            .flat_map(|m| &m.boxes)
            .flat_map(|b| &b.x)
            .map(|i| i.width())
            .fold(0.0, f64::max);
    }
    Report { verdict, stats }
}

/// A cell of the initial set with its refinement state.
#[derive(Clone, Debug)]
pub(crate) struct Cell {
    /// The box.
    b: Vec<Iv>,
    /// Guard-window slicing level.
    level: u32,
    /// How often the initial box was split to get this cell.
    depth: usize,
    /// Whether the counterexample search already ran on this box.
    searched: bool,
}

/// Apply `f` to every item on up to `threads` workers. A result is `None` only if its worker
/// died (a panic): the caller must treat that as a failure, never as a verdict.
fn run_parallel<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(usize, &T) -> R + Sync,
) -> Vec<Option<R>> {
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    let work = || {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= items.len() {
                break;
            }
            let r = f(i, &items[i]);
            if let Ok(mut g) = out.lock() {
                g[i] = Some(r);
            }
        }
    };
    std::thread::scope(|s| {
        let mut started = 0;
        for _ in 0..threads.clamp(1, 64).min(items.len().max(1)) {
            // Mode-graph exploration recurses once per transition: give it room.
            let spawned = std::thread::Builder::new()
                .stack_size(64 << 20)
                .spawn_scoped(s, work);
            if spawned.is_ok() {
                started += 1;
            }
        }
        if started == 0 {
            work();
        }
    });
    match out.into_inner() {
        Ok(v) => v,
        Err(poisoned) => poisoned.into_inner(),
    }
}
