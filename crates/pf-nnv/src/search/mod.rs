//! Complete search: parallel best-first branch and bound over input-box splits and ReLU phase
//! splits.
//!
//! Each node is a sub-box of one case of the property, plus ReLU phase assumptions (see
//! [`crate::phase`]). It is closed when its sub-domain is provably empty, when a single output
//! constraint is refuted by its sound bound, or when the LP over the back-substituted linear
//! lower bounds (and the phase rows) is infeasible *and* the LP's dual multipliers, re-checked
//! with outward rounding, certify it (so the simplex's own rounding can never close a node
//! wrongly; see [`crate::lpcert`]). It yields `sat` when a candidate point (box centre, LP
//! optimum, minimising corner, samples) re-evaluated on the network lies in the unsafe region.
//! It is also closed when the case's optimised joint bound is positive (see [`crate::alpha`]).
//! Otherwise it is split in two: along the input most responsible for the relaxation's
//! looseness while the box is large, on the highest-scoring unstable ReLU once it is small;
//! children reuse the parent's bounds (intersected). One node's processing lives in `node`.

mod node;

use std::collections::BinaryHeap;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::network::Network;
use crate::property::Property;
use node::{Node, NodeResult, Target, process, try_point};

/// Most worker threads a check starts, whatever the options say.
pub const MAX_THREADS: usize = 64;

/// Default of [`Options::phase_split_below`] (measured on ACAS Xu, see BENCHMARKS.md).
pub const DEFAULT_PHASE_SPLIT_BELOW: f64 = 1.0 / 128.0;

/// Default of [`Options::phase_split_unstable`].
pub const DEFAULT_PHASE_SPLIT_UNSTABLE: usize = 16;

/// Default of [`Options::alpha_iters`].
pub const DEFAULT_ALPHA_ITERS: usize = 20;

/// Default of [`Options::alpha_iters_warm`].
pub const DEFAULT_ALPHA_ITERS_WARM: usize = 5;

/// Default of [`Options::split_rule`]: input responsibility (see BENCHMARKS.md).
pub const DEFAULT_SPLIT_RULE: u8 = 2;

/// Default of [`Options::descend_depth`].
pub const DEFAULT_DESCEND_DEPTH: u32 = 6;

/// Rounds of the per-node descent (see [`Options::descend_depth`]).
pub(crate) const DESCEND_ROUNDS: usize = 20;

/// Search limits.
#[derive(Debug, Clone)]
pub struct Options {
    /// Wall-clock budget; when exceeded the verdict is `Unknown`.
    pub timeout: Duration,
    /// Worker threads (at least 1).
    pub threads: usize,
    /// Most open nodes kept in memory; beyond it the verdict is `Unknown`.
    pub max_open_nodes: usize,
    /// Random points tried per case before the search (falsification).
    pub samples: usize,
    /// Compare the widest-input split with the smear split by analysing both (see `process`).
    /// Off by default: on ACAS Xu it did not shrink the trees enough to pay for itself.
    pub lookahead: bool,
    /// Split on ReLU phases instead of inputs once the box's widest side, relative to the
    /// case's box, is at most this (0 disables phase splits; 1 or more uses them from the root).
    pub phase_split_below: f64,
    /// Also split on ReLU phases when at most this many ReLUs are unstable on the node (few
    /// phases left to enumerate, each leaf's LP exact once all are fixed).
    pub phase_split_unstable: usize,
    /// Steps of slope/multiplier optimisation of a case's joint bound (see [`crate::alpha`]) on
    /// a node without inherited parameters (0 disables the joint bound).
    pub alpha_iters: usize,
    /// Steps on a node that starts from its parent's optimised parameters.
    pub alpha_iters_warm: usize,
    /// Steps of slope optimisation per intermediate bound when tightening a node's unstable
    /// ReLUs ([`crate::alpha::tighten`]); 0 disables it.
    pub tighten_iters: usize,
    /// Tighten only nodes with at most this many unstable ReLUs (the cost grows with them).
    pub tighten_unstable: usize,
    /// Score phase splits on the joint bound's combination instead of summing over the rows.
    pub pick_joint: bool,
    /// Nodes shallower than this also run a short descent on the true violation margin from
    /// their LP point (a counterexample search; 0 disables it).
    pub descend_depth: u32,
    /// Input split rule: 0 the widest input the bounds depend on; 1 ReluVal's smear of the
    /// joint bound (coefficient times width); 2 the input most responsible for the unstable
    /// ReLUs' looseness ([`Analysis::input_responsibility`] summed over the scored rows).
    pub split_rule: u8,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(60),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_open_nodes: 4_000_000,
            samples: 2000,
            lookahead: false,
            phase_split_below: DEFAULT_PHASE_SPLIT_BELOW,
            phase_split_unstable: DEFAULT_PHASE_SPLIT_UNSTABLE,
            alpha_iters: DEFAULT_ALPHA_ITERS,
            alpha_iters_warm: DEFAULT_ALPHA_ITERS_WARM,
            tighten_iters: 0,
            tighten_unstable: 0,
            pick_joint: true,
            split_rule: DEFAULT_SPLIT_RULE,
            descend_depth: DEFAULT_DESCEND_DEPTH,
        }
    }
}

/// A validated counterexample.
#[derive(Debug, Clone, PartialEq)]
pub struct Counterexample {
    /// Network input (in the network's own input space).
    pub input: Vec<f64>,
    /// Network output at that input, computed in f64.
    pub output: Vec<f64>,
    /// Index of the property case it falls in.
    pub case: usize,
}

/// The answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The unsafe region is reachable: a re-checked counterexample.
    Sat {
        /// The witness.
        counterexample: Counterexample,
    },
    /// The unsafe region is unreachable: every branch was closed by a sound bound.
    Unsat,
    /// Undecided (time-out, memory limit, or splitting reached floating-point resolution).
    Unknown {
        /// Why.
        reason: String,
    },
}

/// Counters of one check.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Statistics {
    /// Boxes analysed.
    pub nodes: u64,
    /// Boxes closed.
    pub closed: u64,
    /// LPs solved.
    pub lp_solves: u64,
    /// Boxes closed by a re-checked LP dual certificate.
    pub certificates: u64,
    /// Nodes split on a ReLU phase (the rest of the splits are input splits).
    pub phase_splits: u64,
    /// Deepest split.
    pub max_depth: u32,
    /// Most open nodes at once.
    pub max_open: usize,
    /// Progress indicator: share of the search closed, counting each node as its box's share
    /// of its case's box (cases weighted equally), halved per phase split.
    pub closed_share: f64,
    /// Wall-clock time.
    pub elapsed: Duration,
}

/// Verdict with statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The answer.
    pub verdict: Verdict,
    /// How it was reached.
    pub stats: Statistics,
}

struct Shared {
    heap: BinaryHeap<Node>,
    in_flight: usize,
    result: Option<Verdict>,
    stuck: Option<String>,
    stats: Statistics,
}

/// Decide the property on the network. See [`Verdict`] for the guarantees of each answer.
pub fn check(net: &Network, prop: &Property, opts: &Options) -> Result<Outcome, crate::CheckError> {
    let start = Instant::now();
    let n_out = net.output_dim();
    if prop.input_dim != net.input_dim || prop.output_dim > n_out {
        return Err(crate::CheckError::DimensionMismatch {
            prop_inputs: prop.input_dim,
            prop_outputs: prop.output_dim,
            net_inputs: net.input_dim,
            net_outputs: n_out,
        });
    }
    let targets: Vec<Target<'_>> = prop
        .cases
        .iter()
        .map(|case| Target {
            case,
            coefs: case
                .outputs
                .iter()
                .map(|o| {
                    (0..n_out)
                        .map(|j| o.coef.get(j).copied().unwrap_or(0.0))
                        .collect()
                })
                .collect(),
        })
        .collect();
    let mut stats = Statistics::default();
    // Falsification first: cheap, and finds most easy counterexamples.
    for (idx, t) in targets.iter().enumerate() {
        if opts.samples == 0 {
            break;
        }
        let found = crate::falsify::falsify(
            net,
            &t.coefs,
            t.case,
            opts.samples,
            0x9e37_79b9_7f4a_7c15 ^ idx as u64,
        );
        if let Some(cex) = found.and_then(|x| try_point(net, t, idx, x)) {
            stats.elapsed = start.elapsed();
            return Ok(Outcome {
                verdict: Verdict::Sat {
                    counterexample: cex,
                },
                stats,
            });
        }
    }
    let heap: BinaryHeap<Node> = targets
        .iter()
        .enumerate()
        .map(|(case, t)| Node {
            case,
            lo: t.case.lower.clone(),
            hi: t.case.upper.clone(),
            priority: 0.0,
            depth: 0,
            parent: None,
            ready: false,
            splits: Vec::new(),
            params: None,
        })
        .collect();
    let shared = Mutex::new(Shared {
        heap,
        in_flight: 0,
        result: None,
        stuck: None,
        stats,
    });
    let wake = Condvar::new();
    let deadline = start + opts.timeout;
    std::thread::scope(|scope| {
        for _ in 0..opts.threads.clamp(1, MAX_THREADS) {
            scope.spawn(|| worker(net, &targets, opts, deadline, &shared, &wake));
        }
    });
    let shared = shared.into_inner().unwrap_or_else(|p| p.into_inner());

    let mut stats = shared.stats;
    stats.elapsed = start.elapsed();
    let verdict = match shared.result {
        // Defence in depth: re-validate the witness once more on the exact file semantics.
        Some(Verdict::Sat { counterexample }) => {
            let y = net.eval(&counterexample.input);
            if prop.violated_by(&counterexample.input, &y) {
                Verdict::Sat { counterexample }
            } else {
                Verdict::Unknown {
                    reason: "internal: counterexample failed re-validation".into(),
                }
            }
        }
        Some(v) => v,
        None => Verdict::Unknown {
            reason: "search ended without a verdict".into(),
        },
    };
    Ok(Outcome { verdict, stats })
}

fn worker(
    net: &Network,
    targets: &[Target<'_>],
    opts: &Options,
    deadline: Instant,
    shared: &Mutex<Shared>,
    wake: &Condvar,
) {
    loop {
        let node = {
            let Ok(mut s) = shared.lock() else { return };
            loop {
                if s.result.is_some() {
                    return;
                }
                if Instant::now() >= deadline {
                    s.result = Some(Verdict::Unknown {
                        reason: format!("timeout after {:.1} s", opts.timeout.as_secs_f64()),
                    });
                    wake.notify_all();
                    return;
                }
                if let Some(node) = s.heap.pop() {
                    s.in_flight += 1;
                    break node;
                }
                if s.in_flight == 0 {
                    s.result = Some(match s.stuck.take() {
                        Some(reason) => Verdict::Unknown { reason },
                        None => Verdict::Unsat,
                    });
                    wake.notify_all();
                    return;
                }
                match wake.wait_timeout(s, Duration::from_millis(20)) {
                    Ok((g, _)) => s = g,
                    Err(_) => return,
                }
            }
        };
        let outcome = process(net, &targets[node.case], &node, opts);
        let Ok(mut s) = shared.lock() else { return };
        s.in_flight -= 1;
        s.stats.nodes += 1;
        s.stats.max_depth = s.stats.max_depth.max(node.depth);
        match outcome {
            NodeResult::Closed { certified, lp } => {
                s.stats.closed += 1;
                let t = &targets[node.case];
                let share: f64 = (0..node.lo.len())
                    .map(|i| {
                        let w = t.case.upper[i] - t.case.lower[i];
                        if w > 0.0 {
                            (node.hi[i] - node.lo[i]) / w
                        } else {
                            1.0
                        }
                    })
                    .product();
                s.stats.closed_share +=
                    share * 0.5f64.powi(node.splits.len().min(1000) as i32) / targets.len() as f64;
                s.stats.certificates += u64::from(certified);
                s.stats.lp_solves += u64::from(lp);
            }
            NodeResult::Found(cex, lp) => {
                s.stats.lp_solves += u64::from(lp);
                s.result = Some(Verdict::Sat {
                    counterexample: cex,
                });
            }
            NodeResult::Split(children, lp) => {
                s.stats.lp_solves += u64::from(lp);
                s.stats.phase_splits += u64::from(children[0].splits.len() > node.splits.len());
                if s.heap.len() + 2 > opts.max_open_nodes {
                    s.result = Some(Verdict::Unknown {
                        reason: format!("more than {} open nodes", opts.max_open_nodes),
                    });
                } else {
                    s.heap.extend(children);
                    s.stats.max_open = s.stats.max_open.max(s.heap.len());
                }
            }
            NodeResult::Stuck(reason) => {
                s.stuck.get_or_insert(reason);
            }
        }
        wake.notify_all();
    }
}
