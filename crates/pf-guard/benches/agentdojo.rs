//! AgentDojo replay benchmark: false blocks on user tasks, blocks of injection tasks, and
//! per-decision latency, per suite, with the full spec and with the tool allow-list alone.
//!
//! `cargo bench -p pf-guard --bench agentdojo` (all pairs);
//! `PF_AGENTDOJO_SMOKE=1 cargo bench -p pf-guard --bench agentdojo` replays every 10th attack pair.
//! Traces: `PF_AGENTDOJO_TRACES=DIR` (default: the committed fixtures).

#[path = "../tests/agentdojo/replay.rs"]
mod replay;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use replay::{Labelling, Mode, SUITES, SuiteReport};

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() -> ExitCode {
    let traces = std::env::var_os("PF_AGENTDOJO_TRACES")
        .map(PathBuf::from)
        .unwrap_or_else(replay::fixtures_dir);
    let stride = if std::env::var_os("PF_AGENTDOJO_SMOKE").is_some() {
        10
    } else {
        1
    };
    let specs = replay::specs_dir();
    println!(
        "AgentDojo replay (traces {}, pair stride {stride})",
        traces.display()
    );
    for mode in [Mode::Full, Mode::WholeOutputLabels, Mode::AllowListOnly] {
        println!("\n## {mode:?}");
        println!(
            "{:<10} {:>13} {:>16} {:>14} {:>14} {:>9} {:>9} {:>9} {:>10} {:>10}",
            "suite",
            "false blocks",
            "inj. blocked",
            "not replayable",
            "pairs blocked",
            "decisions",
            "p50 us",
            "p99 us",
            "out p50 us",
            "out p99 us"
        );
        let mut all: Vec<SuiteReport> = Vec::new();
        // Output checks with every output labelled inside the check (as before labelling
        // was deferred), for comparison.
        let mut at_once: Vec<Duration> = Vec::new();
        for suite in SUITES {
            let trace = match replay::load_trace(&traces, suite) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let policy = match replay::compile_spec(&specs, suite, mode) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let mut r = replay::replay_suite(&policy, &trace, stride);
            at_once.append(
                &mut replay::replay_suite_labelling(&policy, &trace, stride, Labelling::AtOnce)
                    .output_latencies,
            );
            let (pb, pr) = r.pairs();
            let replayable = r.injection_tasks - r.not_replayable.len();
            let n = r.latencies.len();
            let p50 = replay::quantile(&mut r.latencies, 0.5);
            let p99 = replay::quantile(&mut r.latencies, 0.99);
            let o50 = replay::quantile(&mut r.output_latencies, 0.5);
            let o99 = replay::quantile(&mut r.output_latencies, 0.99);
            println!(
                "{:<10} {:>9}/{:<3} {:>7}/{:<3}({:>2}) {:>14} {:>8}/{:<5} {:>9} {:>9.1} {:>9.1} {:>10.1} {:>10.1}",
                suite,
                r.false_blocks.len(),
                r.user_tasks,
                r.injection_tasks_blocked().len(),
                r.injection_tasks,
                replayable,
                r.not_replayable.len(),
                pb,
                pr,
                n,
                micros(p50),
                micros(p99),
                micros(o50),
                micros(o99)
            );
            all.push(r);
        }
        let users: usize = all.iter().map(|r| r.user_tasks).sum();
        let fb: usize = all.iter().map(|r| r.false_blocks.len()).sum();
        let inj: usize = all.iter().map(|r| r.injection_tasks).sum();
        let blocked: usize = all.iter().map(|r| r.injection_tasks_blocked().len()).sum();
        let nr: usize = all.iter().map(|r| r.not_replayable.len()).sum();
        let (pb, pr) = all
            .iter()
            .map(SuiteReport::pairs)
            .fold((0, 0), |(a, b), (c, d)| (a + c, b + d));
        let mut lat: Vec<Duration> = all.iter().flat_map(|r| r.latencies.clone()).collect();
        let n = lat.len();
        let p50 = replay::quantile(&mut lat, 0.5);
        let p99 = replay::quantile(&mut lat, 0.99);
        let mut out: Vec<Duration> = all
            .iter()
            .flat_map(|r| r.output_latencies.clone())
            .collect();
        let o50 = replay::quantile(&mut out, 0.5);
        let o99 = replay::quantile(&mut out, 0.99);
        println!(
            "{:<10} {:>9}/{:<3} {:>7}/{:<3}({:>2}) {:>14} {:>8}/{:<5} {:>9} {:>9.1} {:>9.1} {:>10.1} {:>10.1}",
            "total",
            fb,
            users,
            blocked,
            inj,
            inj - nr,
            nr,
            pb,
            pr,
            n,
            micros(p50),
            micros(p99),
            micros(o50),
            micros(o99)
        );
        let mut settle: Vec<Duration> = all
            .iter()
            .flat_map(|r| r.settle_latencies.clone())
            .collect();
        println!(
            "labelling of outputs >= {} bytes, done after the answer is sent (not in the output check above): {} outputs, p50 {:.1} us, p99 {:.1} us; output check with all labelling inside it (as before): p50 {:.1} us, p99 {:.1} us",
            pf_guard::policy_enforcer::DEFER_LABELLING_BYTES,
            settle.len(),
            micros(replay::quantile(&mut settle, 0.5)),
            micros(replay::quantile(&mut settle, 0.99)),
            micros(replay::quantile(&mut at_once, 0.5)),
            micros(replay::quantile(&mut at_once, 0.99))
        );
        for r in &all {
            for f in &r.false_blocks {
                for b in &f.blocks {
                    println!(
                        "  false block {}/{} call {} {}: {}",
                        r.suite, f.task, b.call, b.tool, b.reason
                    );
                }
            }
            for (id, b, run) in r.injection_tasks_missed() {
                println!(
                    "  injection not blocked {}/{id}: blocked in {b}/{run} pairs",
                    r.suite
                );
            }
            if !r.not_replayable.is_empty() {
                println!(
                    "  not replayable {}: {}",
                    r.suite,
                    r.not_replayable.join(", ")
                );
            }
        }
    }
    ExitCode::SUCCESS
}
