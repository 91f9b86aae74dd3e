//! Output check on the largest AgentDojo tool output (workspace `list_files`, a 30 KB YAML drive
//! listing): field-level leaves, labelling (`record_output`) and the guard's `check_output`, with
//! marked-yaml (the old path) beside the fast block-YAML reader, in one run; the guard's check on
//! the answer's path, the labelling it does after the answer (`settle`), and both at once.
//!
//! `cargo bench -p pf-guard --bench output_check` (1000 rounds);
//! `PF_BENCH_SMOKE=1 cargo bench -p pf-guard --bench output_check` (50 rounds).

#[path = "../tests/agentdojo/replay.rs"]
mod replay;

use std::hint::black_box;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pf_guard::log::{Committer, DecisionRecord, DecisionSink, LogError};
use pf_guard::metrics::GuardMetrics;
use pf_guard::policy_enforcer::DEFER_LABELLING_BYTES;
use pf_guard::{Enforcer, PolicyEnforcer};
use pf_policy::fields::{YamlReader, structured_leaves_with};
use pf_policy::{Policy, record_output_with};
use replay::Mode;
use serde_json::Value;

struct DiscardSink;

impl DecisionSink for DiscardSink {
    fn submit(&self, _record: DecisionRecord) -> Result<(), LogError> {
        Ok(())
    }
}

/// Times `f` `rounds` times (after `rounds / 10` warm-up calls); `setup` runs untimed before each.
fn time<S>(rounds: usize, mut setup: impl FnMut() -> S, mut f: impl FnMut(S)) -> Vec<Duration> {
    for _ in 0..rounds / 10 {
        f(setup());
    }
    let mut out = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let s = setup();
        let t0 = Instant::now();
        f(s);
        out.push(t0.elapsed());
    }
    out
}

fn row(what: &str, old: &mut [Duration], new: &mut [Duration]) {
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let (o50, o99) = (replay::quantile(old, 0.5), replay::quantile(old, 0.99));
    let (n50, n99) = (replay::quantile(new, 0.5), replay::quantile(new, 0.99));
    println!(
        "{what:<28} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>7.1}x",
        us(o50),
        us(o99),
        us(n50),
        us(n99),
        us(o50) / us(n50).max(1e-3)
    );
}

fn main() -> ExitCode {
    let rounds = if std::env::var_os("PF_BENCH_SMOKE").is_some() {
        50
    } else {
        1000
    };
    let trace = match replay::load_trace(&replay::fixtures_dir(), "workspace") {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let policy: Arc<Policy> =
        match replay::compile_spec(&replay::specs_dir(), "workspace", Mode::Full) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
    let Some(call) = trace
        .user_tasks
        .iter()
        .flat_map(|t| &t.calls)
        .chain(trace.pairs.iter().flat_map(|p| &p.user_calls))
        .max_by_key(|c| c.output.len())
    else {
        eprintln!("error: no calls in the workspace trace");
        return ExitCode::FAILURE;
    };
    let (tool, text) = (call.function.as_str(), call.output.as_str());
    let output = Value::String(text.to_string());
    let fields: Vec<String> = match pf_spec::load(&replay::specs_dir().join("workspace.yaml")) {
        Ok(loaded) => loaded
            .spec
            .capabilities
            .iter()
            .filter(|c| c.name == tool)
            .flat_map(|c| c.output_fields.keys().cloned())
            .collect(),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listed = |k: &str| fields.iter().any(|f| f == k);
    let leaves = structured_leaves_with(&output, &listed, YamlReader::Fast).map_or(0, |l| l.len());
    println!(
        "Output check, AgentDojo workspace `{tool}` output: {} bytes, {leaves} leaves, {rounds} rounds",
        text.len()
    );
    println!(
        "{:<28} {:>10} {:>10} {:>10} {:>10} {:>8}",
        "", "marked p50", "marked p99", "fast p50", "fast p99", "p50"
    );
    println!(
        "{:<28} {:>10} {:>10} {:>10} {:>10}",
        "", "us", "us", "us", "us"
    );

    let leaves_of = |reader| {
        time(
            rounds,
            || (),
            |()| {
                black_box(structured_leaves_with(black_box(&output), &listed, reader));
            },
        )
    };
    let (mut old, mut new) = (
        leaves_of(YamlReader::MarkedYaml),
        leaves_of(YamlReader::Fast),
    );
    row("leaves", &mut old, &mut new);

    let record = |reader| {
        time(
            rounds,
            || policy.new_session(),
            |mut state| {
                record_output_with(&policy, &mut state, tool, black_box(&output), reader);
                black_box(&state);
            },
        )
    };
    let (mut old, mut new) = (record(YamlReader::MarkedYaml), record(YamlReader::Fast));
    row("record_output (labelling)", &mut old, &mut new);

    // The guard's output check (content checks, decision record), as the guard runs it (fast
    // reader): on the answer's path, then the labelling it leaves for after the answer, then
    // both at once (as before labelling was deferred).
    let enforcer = |defer_from: usize| {
        PolicyEnforcer::new(
            policy.clone(),
            "sha256:bench".into(),
            Arc::new(DiscardSink),
            Arc::new(GuardMetrics::default()),
            Committer::with_salt([0; 32]),
        )
        .with_deferred_labelling_from(defer_from)
    };
    let mut answer = time(
        rounds,
        || enforcer(DEFER_LABELLING_BYTES),
        |mut e| {
            black_box(e.check_output(Some(tool), black_box(text)));
        },
    );
    let mut settle = time(
        rounds,
        || {
            let mut e = enforcer(DEFER_LABELLING_BYTES);
            e.check_output(Some(tool), text);
            e
        },
        |mut e| {
            e.settle();
            black_box(&e);
        },
    );
    let mut at_once = time(
        rounds,
        || enforcer(usize::MAX),
        |mut e| {
            black_box(e.check_output(Some(tool), black_box(text)));
        },
    );
    for (what, samples) in [
        ("guard check_output (answer)", &mut answer),
        ("  then labelling (settle)", &mut settle),
        ("  both at once (before)", &mut at_once),
    ] {
        let p50 = replay::quantile(samples, 0.5);
        let p99 = replay::quantile(samples, 0.99);
        println!(
            "{what:<28} {:>10} {:>10} {:>10.1} {:>10.1}",
            "-",
            "-",
            p50.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6
        );
    }
    ExitCode::SUCCESS
}
