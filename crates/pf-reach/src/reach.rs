//! The DryVR verification loop: concrete hybrid simulations (counterexample search), per-mode
//! reachtubes (learned discrepancy or sound Lipschitz bounds), guard/transition handling over
//! the mode graph, unsafe-set checks, and refinement by partitioning the initial set.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use crate::discrepancy::learn;
use crate::interval::Iv;
use crate::ode::OdeOpts;
use crate::pred::Tri;
use crate::problem::{Dynamics, Problem};
use crate::sound::sound_tube;

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
    /// Maximum mode entries explored per cell (bounds cyclic mode graphs).
    pub max_transitions: usize,
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

// ------------------------------------------------------------------------- sampling

/// SplitMix64: a small deterministic generator for sampling initial states.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// Seeded generator.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Centre, up to 16 vertices, then `random` uniform points of the box.
fn sample_points(b: &[Iv], random: usize, rng: &mut Rng) -> Vec<Vec<f64>> {
    let mut pts = vec![b.iter().map(|i| i.mid()).collect::<Vec<_>>()];
    let free: Vec<usize> = (0..b.len()).filter(|&j| b[j].width() > 0.0).collect();
    if free.is_empty() {
        return pts;
    }
    let nv = if free.len() <= 4 {
        1usize << free.len()
    } else {
        16
    };
    for v in 0..nv {
        let mut p = pts[0].clone();
        for (bit, &j) in free.iter().enumerate() {
            let up = if free.len() <= 4 {
                (v >> bit) & 1 == 1
            } else {
                rng.next_f64() < 0.5
            };
            p[j] = if up { b[j].hi } else { b[j].lo };
        }
        pts.push(p);
    }
    for _ in 0..random {
        pts.push(
            b.iter()
                .map(|i| i.lo + i.width() * rng.next_f64())
                .collect(),
        );
    }
    pts
}

// ------------------------------------------------------------------------- simulation

/// Simulate one mode; on failure, the samples reached before it and the reason.
fn simulate(
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

fn step_of(p: &Problem) -> f64 {
    match &p.dynamics {
        Dynamics::Ode(m) => m.step,
        Dynamics::External(s) => s.step,
    }
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
    while let Some((v, x, t0, segs)) = stack.pop() {
        let rem = p.horizon - t0;
        let mode = &p.vertices[v];
        if rem <= 1e-9 || segs.len() >= o.max_transitions || leaves >= 64 {
            leaves += 1;
            first.get_or_insert(segs);
            continue;
        }
        let (ts, xs, serr) = simulate(p, mode, &x, rem, o);
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

// ------------------------------------------------------------------------- tubes

fn learned_tube(
    p: &Problem,
    mode: &str,
    init: &[Iv],
    horizon: f64,
    o: &Options,
    rng: &mut Rng,
    sims: &AtomicUsize,
) -> Result<(Vec<TubeBox>, Option<String>), String> {
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
    // On a simulation failure, keep the common prefix: the caller may only use it up to a
    // transition that happens before the failure.
    let m = runs
        .iter()
        .map(|(t, x)| t.len().min(x.len()))
        .min()
        .unwrap_or(0);
    if m < 2 {
        return Err(failure.unwrap_or_else(|| "simulator returned fewer than two samples".into()));
    }
    if failure.is_none() && runs.iter().any(|(t, _)| t.len() != m) {
        return Err("simulator returned traces of different lengths for one mode".into());
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

fn mode_tube(
    p: &Problem,
    mode: &str,
    init: &[Iv],
    horizon: f64,
    o: &Options,
    rng: &mut Rng,
    sims: &AtomicUsize,
) -> Result<(Vec<TubeBox>, Option<String>), String> {
    match (o.method, &p.dynamics) {
        (Method::Learned, _) => learned_tube(p, mode, init, horizon, o, rng, sims),
        (Method::Sound, Dynamics::Ode(m)) => {
            let md = m
                .mode(mode)
                .ok_or_else(|| format!("no dynamics for mode `{mode}`"))?;
            sims.fetch_add(1, Ordering::Relaxed);
            sound_tube(md, init, horizon, m.step, 1_000_000).map(|b| (b, None))
        }
        (Method::Sound, Dynamics::External(_)) => {
            Err("sound mode needs an ODE model, not an external simulator".into())
        }
    }
}

enum CellOutcome {
    Safe(Vec<ModeTube>),
    Unsafe(Counterexample),
    Refine(String),
}

fn check_cell(
    p: &Problem,
    cell: &[Iv],
    o: &Options,
    seed: u64,
    sims: &AtomicUsize,
) -> Result<CellOutcome, String> {
    let mut rng = Rng::new(seed);
    // 1. Counterexample search by concrete simulation.
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
    // 2. Reachtube over the mode graph.
    let mut tubes = Vec::new();
    // Work items: vertex, entry box, global entry time, how often this entry box was split.
    let mut work: VecDeque<(usize, Vec<Iv>, Iv, usize)> = p
        .initial_vertices
        .iter()
        .map(|&v| (v, cell.to_vec(), Iv::point(0.0), 0))
        .collect();
    let mut entries = 0;
    while let Some((v, init, start, splits)) = work.pop_front() {
        entries += 1;
        if entries > o.max_transitions {
            return Ok(CellOutcome::Refine(format!(
                "more than {} mode entries (cyclic mode graph)",
                o.max_transitions
            )));
        }
        let rem = p.horizon - start.lo;
        if rem <= 1e-9 {
            continue;
        }
        let mode = &p.vertices[v];
        let (boxes, failure) = mode_tube(p, mode, &init, rem, o, &mut rng, sims)?;
        // First window of each outgoing guard.
        let outs: Vec<_> = p.edges.iter().filter(|e| e.from == v).collect();
        let mut windows: Vec<(usize, usize, usize)> = Vec::new(); // (edge idx in outs, start, end excl.)
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
        let trunc = windows
            .iter()
            .min_by_key(|w| w.1)
            .map_or(boxes.len(), |w| w.2);
        // A simulation failed: the tube is usable only if a transition cuts it before the end.
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
            // DryVR refines the entry set of the mode where the check fails: split it (along
            // its widest dimension) and check both halves, up to `mode_splits` times; beyond
            // that, the whole cell is refined.
            if splits < o.mode_splits && init.iter().any(|i| i.width() > 0.0) {
                let j = (0..init.len())
                    .max_by(|&a, &b| init[a].width().total_cmp(&init[b].width()))
                    .unwrap_or(0);
                let m = init[j].mid();
                let (mut a, mut b) = (init.clone(), init.clone());
                a[j] = Iv::new(init[j].lo, m);
                b[j] = Iv::new(m, init[j].hi);
                work.push_back((v, a, start, splits + 1));
                work.push_back((v, b, start, splits + 1));
                continue;
            }
            return Ok(CellOutcome::Refine(format!(
                "tube meets the unsafe set in mode `{mode}`"
            )));
        }
        for &(ei, s0, e0) in windows.iter().filter(|w| w.1 < trunc) {
            let e = outs[ei];
            let e0 = e0.min(trunc);
            let mut nb: Option<Vec<Iv>> = None;
            for b in &boxes[s0..e0] {
                let r = e.reset.apply_box(&b.x, b.local);
                nb = Some(match nb {
                    None => r,
                    Some(a) => a.iter().zip(&r).map(|(x, y)| x.hull(*y)).collect(),
                });
            }
            if let Some(nb) = nb {
                if nb.iter().any(|i| !i.lo.is_finite() || !i.hi.is_finite()) {
                    return Ok(CellOutcome::Refine(
                        "reset produced an unbounded box".into(),
                    ));
                }
                let st = Iv::new(
                    start.lo + boxes[s0].local.lo,
                    start.hi + boxes[e0 - 1].local.hi,
                );
                work.push_back((e.to, nb, st, 0));
            }
        }
        tubes.push(ModeTube {
            vertex: v,
            mode: mode.clone(),
            start,
            boxes: kept.to_vec(),
        });
    }
    Ok(CellOutcome::Safe(tubes))
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
    let sims = AtomicUsize::new(0);
    let mut stats = Stats::default();
    let mut frontier = vec![p.initial.clone()];
    let mut safe_tubes: Vec<ModeTube> = Vec::new();
    let root = p.initial.clone();
    let _ = step_of(p);
    let verdict = 'outer: loop {
        stats.cells += frontier.len();
        let results: Vec<Result<CellOutcome, String>> =
            run_parallel(&frontier, o.threads, |i, cell| {
                check_cell(
                    p,
                    cell,
                    o,
                    o.seed ^ ((stats.depth as u64) << 32) ^ i as u64,
                    &sims,
                )
            });
        let mut next = Vec::new();
        let mut reason = String::new();
        for (cell, r) in frontier.iter().zip(results) {
            match r {
                Err(e) => break 'outer Verdict::Unknown { reason: e },
                Ok(CellOutcome::Unsafe(cx)) => break 'outer Verdict::Unsafe { counterexample: cx },
                Ok(CellOutcome::Safe(t)) => safe_tubes.extend(t),
                Ok(CellOutcome::Refine(why)) => {
                    reason = why;
                    let (a, b) = split(cell, &root);
                    next.push(a);
                    next.push(b);
                }
            }
        }
        if next.is_empty() {
            break Verdict::Safe {
                tube: std::mem::take(&mut safe_tubes),
            };
        }
        if o.time_limit.is_some_and(|l| start.elapsed() > l) {
            break Verdict::Unknown {
                reason: format!("time limit reached after {} cells: {reason}", stats.cells),
            };
        }
        if stats.depth >= o.max_depth || stats.cells + next.len() > o.max_cells {
            break Verdict::Unknown {
                reason: format!(
                    "refinement budget exhausted (depth {}, {} cells): {reason}",
                    stats.depth, stats.cells
                ),
            };
        }
        stats.depth += 1;
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

fn run_parallel<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(usize, &T) -> R + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, 64).min(items.len().max(1)) {
            s.spawn(|| {
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
            });
        }
    });
    out.into_inner()
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .collect()
}
