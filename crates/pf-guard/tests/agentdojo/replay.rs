//! AgentDojo replay: AgentDojo's ground-truth tool calls and the outputs its environments return,
//! replayed through the guard's [`PolicyEnforcer`] to measure false blocks on user tasks and blocks
//! of injection tasks (docs/guard.md, "AgentDojo replay").
//!
//! Shared by `tests/agentdojo.rs` (asserts the targets on the committed traces) and
//! `benches/agentdojo.rs` (prints the figures and per-decision latency); included with `#[path]`.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pf_guard::log::{Committer, DecisionRecord, DecisionSink, LogError};
use pf_guard::metrics::GuardMetrics;
use pf_guard::{CallOutcome, Enforcer, OutputOutcome, PolicyEnforcer};
use pf_policy::Policy;
use serde::Deserialize;
use serde_json::Value;

/// The trace format `agentdojo/export.py` writes.
pub const TRACE_FORMAT: &str = "pf-agentdojo-trace/1";
/// The four suites, in the order they are reported.
pub const SUITES: [&str; 4] = ["workspace", "slack", "travel", "banking"];
/// Largest trace accepted after decompression.
const MAX_TRACE_BYTES: u64 = 64 << 20;

/// One suite's exported traces.
#[derive(Debug, Deserialize)]
pub struct Trace {
    /// Always [`TRACE_FORMAT`].
    pub format: String,
    /// Suite name.
    pub suite: String,
    /// AgentDojo benchmark version (`v1.2.2`).
    pub benchmark_version: String,
    /// Version of the `agentdojo` package that produced the trace.
    pub agentdojo_version: String,
    /// The suite's tools and their argument names.
    pub tools: Vec<Tool>,
    /// User tasks in the default environment.
    pub user_tasks: Vec<UserTask>,
    /// Injection tasks in the default environment.
    pub injection_tasks: Vec<InjectionTask>,
    /// Attack runs: a user task in the injected environment, then an injection task.
    pub pairs: Vec<Pair>,
}

/// A tool of the suite.
#[derive(Debug, Deserialize)]
pub struct Tool {
    /// Tool name.
    pub name: String,
    /// Argument names.
    pub arguments: Vec<String>,
}

/// A ground-truth call and what the tool returned.
#[derive(Debug, Deserialize)]
pub struct Call {
    /// Tool name.
    pub function: String,
    /// JSON arguments.
    pub args: Value,
    /// The tool's output as AgentDojo shows it to the model.
    pub output: String,
    /// The tool's error, when it failed.
    #[serde(default)]
    pub error: Option<String>,
    /// In attack runs: the output carries the attacker's text.
    #[serde(default)]
    pub injected: bool,
}

/// A user task: the user's prompt and the ground-truth calls.
#[derive(Debug, Deserialize)]
pub struct UserTask {
    /// `user_task_N`.
    pub id: String,
    /// What the user asked.
    pub prompt: String,
    /// Injection vectors the ground truth shows the model.
    pub vectors: Vec<String>,
    /// Ground-truth calls.
    pub calls: Vec<Call>,
}

/// An injection task: the attacker's goal and its ground-truth calls.
#[derive(Debug, Deserialize)]
pub struct InjectionTask {
    /// `injection_task_N`.
    pub id: String,
    /// The attacker's goal.
    pub goal: String,
    /// Ground-truth calls (empty: not replayable).
    pub calls: Vec<Call>,
}

/// One attack run.
#[derive(Debug, Deserialize)]
pub struct Pair {
    /// The user task that ran in the injected environment.
    pub user_task: String,
    /// The injection task whose calls followed.
    pub injection_task: String,
    /// The user task's calls, with outputs that carry the injection.
    pub user_calls: Vec<Call>,
    /// The injection task's calls.
    pub injection_calls: Vec<Call>,
}

/// Why a trace could not be used.
#[derive(Debug)]
pub struct TraceError(pub String);

impl std::fmt::Display for TraceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Directory of the committed traces.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/agentdojo")
}

/// Directory of the per-suite specs.
pub fn specs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("agentdojo/specs")
}

/// Reads `<dir>/<suite>.json.gz`.
pub fn load_trace(dir: &Path, suite: &str) -> Result<Trace, TraceError> {
    let path = dir.join(format!("{suite}.json.gz"));
    let file =
        std::fs::File::open(&path).map_err(|e| TraceError(format!("{}: {e}", path.display())))?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(file)
        .take(MAX_TRACE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| TraceError(format!("{}: {e}", path.display())))?;
    if text.len() as u64 > MAX_TRACE_BYTES {
        return Err(TraceError(format!(
            "{}: larger than {MAX_TRACE_BYTES} bytes",
            path.display()
        )));
    }
    let trace: Trace =
        serde_json::from_str(&text).map_err(|e| TraceError(format!("{}: {e}", path.display())))?;
    if trace.format != TRACE_FORMAT || trace.suite != suite {
        return Err(TraceError(format!(
            "{}: format {:?} suite {:?}, expected {TRACE_FORMAT:?} {suite:?}",
            path.display(),
            trace.format,
            trace.suite
        )));
    }
    Ok(trace)
}

/// Which parts of the spec the replay enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The whole spec.
    Full,
    /// Only the tool allow-list: argument constraints and policies removed.
    AllowListOnly,
    /// The whole spec but with `output_fields` removed (every output labelled whole).
    WholeOutputLabels,
}

/// Compiles `<specs>/<suite>.yaml` in `mode`; a lint or compiler warning is an error here.
pub fn compile_spec(dir: &Path, suite: &str, mode: Mode) -> Result<Arc<Policy>, TraceError> {
    let path = dir.join(format!("{suite}.yaml"));
    let loaded =
        pf_spec::load(&path).map_err(|e| TraceError(format!("{}: {e}", path.display())))?;
    if !loaded.warnings.is_empty() {
        return Err(TraceError(format!(
            "{}: lint warnings: {:?}",
            path.display(),
            loaded.warnings
        )));
    }
    let mut spec = loaded.spec;
    if mode == Mode::WholeOutputLabels {
        for cap in &mut spec.capabilities {
            cap.output_fields.clear();
        }
    }
    if mode == Mode::AllowListOnly {
        spec.policies.clear();
        for cap in &mut spec.capabilities {
            cap.constraints = None;
            cap.output_labels.clear();
            cap.output_fields.clear();
        }
    }
    let compiled = pf_policy::compile(&spec).map_err(|e| {
        let lines: Vec<String> = e.errors.iter().map(ToString::to_string).collect();
        TraceError(format!("{}: {e}: {}", path.display(), lines.join("; ")))
    })?;
    if mode == Mode::Full && !compiled.warnings.is_empty() {
        return Err(TraceError(format!(
            "{}: compiler warnings: {:?}",
            path.display(),
            compiled.warnings
        )));
    }
    Ok(Arc::new(compiled.policy))
}

/// A decision sink that keeps nothing (the replay measures the kernel, not the log writer).
struct DiscardSink;

impl DecisionSink for DiscardSink {
    fn submit(&self, _record: DecisionRecord) -> Result<(), LogError> {
        Ok(())
    }
}

/// A denied call (or withheld output) during a replay.
#[derive(Debug, Clone)]
pub struct Block {
    /// Index of the call in the replayed sequence.
    pub call: usize,
    /// Tool name.
    pub tool: String,
    /// Reason codes.
    pub codes: Vec<String>,
    /// The reasons as the model would read them.
    pub reason: String,
}

/// When a session labels the tool outputs it checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Labelling {
    /// As the guard does: large outputs after their answer is sent (`settle`, timed on its own).
    Guard,
    /// Every output inside `check_output`.
    AtOnce,
    /// Every output deferred and never settled by hand: each is labelled by the next decision.
    AtNextDecision,
}

/// Replays calls through one guard session; collects blocks and per-decision latencies.
pub struct Session {
    enforcer: PolicyEnforcer,
    labelling: Labelling,
    /// Latency of every `decide_call`.
    pub latencies: Vec<Duration>,
    /// Latency of every `check_output` (the check, and labelling unless it is deferred).
    pub output_latencies: Vec<Duration>,
    /// Latency of every deferred labelling (`settle`, after the answer is on its way).
    pub settle_latencies: Vec<Duration>,
    /// Whether an output carrying the attacker's text reached the agent.
    pub injection_delivered: bool,
}

impl Session {
    /// A fresh guard session; `prompt` is the user's request (trusted text).
    pub fn new(policy: &Arc<Policy>, prompt: &str) -> Self {
        Self::with_labelling(policy, prompt, Labelling::Guard)
    }

    /// As [`Session::new`], labelling outputs as `labelling` says.
    pub fn with_labelling(policy: &Arc<Policy>, prompt: &str, labelling: Labelling) -> Self {
        let enforcer = PolicyEnforcer::new(
            policy.clone(),
            "sha256:agentdojo-replay".into(),
            Arc::new(DiscardSink),
            Arc::new(GuardMetrics::default()),
            Committer::with_salt([0; 32]),
        );
        let mut enforcer = match labelling {
            Labelling::Guard => enforcer,
            Labelling::AtOnce => enforcer.with_deferred_labelling_from(usize::MAX),
            Labelling::AtNextDecision => enforcer.with_deferred_labelling_from(0),
        };
        enforcer.user_request(prompt);
        Session {
            enforcer,
            labelling,
            latencies: Vec::new(),
            output_latencies: Vec::new(),
            settle_latencies: Vec::new(),
            injection_delivered: false,
        }
    }

    /// Replays `calls` in order: decide; when allowed, check (and label) the recorded output.
    /// A denied call's output is never seen. Returns the blocks.
    pub fn replay(&mut self, calls: &[Call]) -> Vec<Block> {
        let mut blocks = Vec::new();
        for (i, call) in calls.iter().enumerate() {
            let t0 = Instant::now();
            let outcome = self.enforcer.decide_call(&call.function, &call.args);
            self.latencies.push(t0.elapsed());
            if let CallOutcome::Deny { reason, codes } = outcome {
                blocks.push(Block {
                    call: i,
                    tool: call.function.clone(),
                    codes,
                    reason,
                });
                continue;
            }
            let t0 = Instant::now();
            let out = self
                .enforcer
                .check_output(Some(&call.function), &call.output);
            self.output_latencies.push(t0.elapsed());
            if self.labelling == Labelling::Guard && self.enforcer.unsettled() {
                let t0 = Instant::now();
                self.enforcer.settle();
                self.settle_latencies.push(t0.elapsed());
            }
            self.enforcer.finish_call(&call.function);
            if let OutputOutcome::Deny { reason, codes } = out {
                blocks.push(Block {
                    call: i,
                    tool: call.function.clone(),
                    codes,
                    reason,
                });
            } else if call.injected {
                self.injection_delivered = true;
            }
        }
        blocks
    }
}

/// A user task with at least one block (a false block: ground truth is what the user wanted).
#[derive(Debug, Clone)]
pub struct FalseBlock {
    /// User task id.
    pub task: String,
    /// Its blocks.
    pub blocks: Vec<Block>,
}

/// The figures for one suite.
#[derive(Debug, Default)]
pub struct SuiteReport {
    /// Suite name.
    pub suite: String,
    /// Number of user tasks.
    pub user_tasks: usize,
    /// User tasks with a blocked call.
    pub false_blocks: Vec<FalseBlock>,
    /// Number of injection tasks.
    pub injection_tasks: usize,
    /// Injection tasks without ground-truth calls.
    pub not_replayable: Vec<String>,
    /// Per replayable injection task: (pairs where it was stopped, pairs run). Stopped: one of
    /// its calls was denied, or no output carrying the attack reached the agent.
    pub injection_blocks: BTreeMap<String, (usize, usize)>,
    /// Pairs stopped because every output carrying the attack was withheld (a user-task call
    /// that would have returned it was denied), so the agent never saw the injection.
    pub pairs_not_delivered: usize,
    /// Attack pairs in which a user-task call was blocked (the attack was stopped earlier or the
    /// injected output made a user call look tainted).
    pub pairs_with_user_call_blocked: usize,
    /// Latency of every call decision in the run.
    pub latencies: Vec<Duration>,
    /// Latency of every output check in the run.
    pub output_latencies: Vec<Duration>,
    /// Latency of every deferred labelling in the run.
    pub settle_latencies: Vec<Duration>,
}

impl SuiteReport {
    /// Injection tasks blocked in every pair they were run in.
    pub fn injection_tasks_blocked(&self) -> Vec<&str> {
        self.injection_blocks
            .iter()
            .filter(|(_, (blocked, run))| *run > 0 && blocked == run)
            .map(|(id, _)| id.as_str())
            .collect()
    }

    /// Replayable injection tasks that got through in at least one pair.
    pub fn injection_tasks_missed(&self) -> Vec<(&str, usize, usize)> {
        self.injection_blocks
            .iter()
            .filter(|(_, (blocked, run))| blocked != run)
            .map(|(id, (b, r))| (id.as_str(), *b, *r))
            .collect()
    }

    /// Pairs run and pairs in which the injection task was blocked.
    pub fn pairs(&self) -> (usize, usize) {
        self.injection_blocks
            .values()
            .fold((0, 0), |(b, r), (bb, rr)| (b + bb, r + rr))
    }
}

/// Replays one suite: every user task on its own, then every attack pair (or every
/// `pair_stride`-th pair, for a quick run).
pub fn replay_suite(policy: &Arc<Policy>, trace: &Trace, pair_stride: usize) -> SuiteReport {
    replay_suite_labelling(policy, trace, pair_stride, Labelling::Guard)
}

/// As [`replay_suite`], labelling outputs as `labelling` says.
pub fn replay_suite_labelling(
    policy: &Arc<Policy>,
    trace: &Trace,
    pair_stride: usize,
    labelling: Labelling,
) -> SuiteReport {
    let mut report = SuiteReport {
        suite: trace.suite.clone(),
        user_tasks: trace.user_tasks.len(),
        injection_tasks: trace.injection_tasks.len(),
        ..SuiteReport::default()
    };
    let mut prompts = BTreeMap::new();
    for task in &trace.user_tasks {
        prompts.insert(task.id.as_str(), task.prompt.as_str());
        let mut session = Session::with_labelling(policy, &task.prompt, labelling);
        let blocks = session.replay(&task.calls);
        report.latencies.append(&mut session.latencies);
        report
            .output_latencies
            .append(&mut session.output_latencies);
        report
            .settle_latencies
            .append(&mut session.settle_latencies);
        if !blocks.is_empty() {
            report.false_blocks.push(FalseBlock {
                task: task.id.clone(),
                blocks,
            });
        }
    }
    for task in &trace.injection_tasks {
        if task.calls.is_empty() {
            report.not_replayable.push(task.id.clone());
        } else {
            report.injection_blocks.insert(task.id.clone(), (0, 0));
        }
    }
    for pair in trace.pairs.iter().step_by(pair_stride.max(1)) {
        let prompt = prompts.get(pair.user_task.as_str()).copied().unwrap_or("");
        let mut session = Session::with_labelling(policy, prompt, labelling);
        if !session.replay(&pair.user_calls).is_empty() {
            report.pairs_with_user_call_blocked += 1;
        }
        let delivered = session.injection_delivered;
        let denied = !session.replay(&pair.injection_calls).is_empty();
        if !delivered && !denied {
            report.pairs_not_delivered += 1;
        }
        let blocked = denied || !delivered;
        report.latencies.append(&mut session.latencies);
        report
            .output_latencies
            .append(&mut session.output_latencies);
        report
            .settle_latencies
            .append(&mut session.settle_latencies);
        let entry = report
            .injection_blocks
            .entry(pair.injection_task.clone())
            .or_insert((0, 0));
        entry.1 += 1;
        if blocked {
            entry.0 += 1;
        }
    }
    report
}

/// The `q`-quantile of `samples` (sorted in place).
pub fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort_unstable();
    let idx = ((samples.len() - 1) as f64 * q).round() as usize;
    samples[idx.min(samples.len() - 1)]
}
