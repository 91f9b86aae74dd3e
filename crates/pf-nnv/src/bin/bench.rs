//! ACAS Xu benchmark for `pf-nnv`: runs the VNN-COMP 2021 instances with a per-instance timeout
//! and compares each verdict with `expected_verdicts.csv`. A contradicting verdict is a failure
//! (exit code 1). `--smoke` runs a few easy instances with a short timeout, for CI.
//!
//! Usage: `pf-nnv-bench [--data DIR] [--timeout S] [--threads N] [--smoke] [--only a,b,...]
//! [--filter TEXT] [--csv OUT] [options]` where `--only` takes `net:prop` pairs such as `1_1:2`.
//! Search options: `--lookahead`; `--phase W` sets `Options::phase_split_below` (0 = input
//! splits only), `--unstable U` `Options::phase_split_unstable`; `--alpha N` / `--alpha-warm N`
//! `Options::alpha_iters` / `Options::alpha_iters_warm` (`--alpha 0` disables the optimised
//! joint bound); `--split R` `Options::split_rule`; `--pick-rows` clears
//! `Options::pick_joint`; `--tighten N` / `--tighten-unstable U` `Options::tighten_iters` /
//! `Options::tighten_unstable`.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use pf_nnv::{Options, Verdict, check, load_network, load_property};

struct Args {
    data: PathBuf,
    timeout: f64,
    threads: usize,
    smoke: bool,
    only: Option<Vec<String>>,
    filter: Option<String>,
    csv: Option<PathBuf>,
    lookahead: bool,
    phase: Option<f64>,
    unstable: Option<usize>,
    alpha: Option<usize>,
    alpha_warm: Option<usize>,
    tighten: Option<usize>,
    tighten_unstable: Option<usize>,
    pick_rows: bool,
    split_rule: Option<u8>,
}

fn parse_args() -> Result<Args, String> {
    let default =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors/nnv/acasxu");
    let mut a = Args {
        data: default,
        timeout: 116.0,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        smoke: false,
        only: None,
        filter: None,
        csv: None,
        lookahead: false,
        phase: None,
        unstable: None,
        alpha: None,
        alpha_warm: None,
        tighten: None,
        tighten_unstable: None,
        pick_rows: false,
        split_rule: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--data" => a.data = PathBuf::from(val()?),
            "--timeout" => a.timeout = val()?.parse().map_err(|e| format!("--timeout: {e}"))?,
            "--threads" => a.threads = val()?.parse().map_err(|e| format!("--threads: {e}"))?,
            "--smoke" => a.smoke = true,
            "--lookahead" => a.lookahead = true,
            "--unstable" => {
                a.unstable = Some(val()?.parse().map_err(|e| format!("--unstable: {e}"))?)
            }
            "--alpha" => a.alpha = Some(val()?.parse().map_err(|e| format!("--alpha: {e}"))?),
            "--alpha-warm" => {
                a.alpha_warm = Some(val()?.parse().map_err(|e| format!("--alpha-warm: {e}"))?)
            }
            "--pick-rows" => a.pick_rows = true,
            "--split" => a.split_rule = Some(val()?.parse().map_err(|e| format!("--split: {e}"))?),
            "--tighten" => a.tighten = Some(val()?.parse().map_err(|e| format!("--tighten: {e}"))?),
            "--tighten-unstable" => {
                a.tighten_unstable = Some(
                    val()?
                        .parse()
                        .map_err(|e| format!("--tighten-unstable: {e}"))?,
                )
            }
            "--phase" => a.phase = Some(val()?.parse().map_err(|e| format!("--phase: {e}"))?),
            "--only" => a.only = Some(val()?.split(',').map(str::to_string).collect()),
            "--filter" => a.filter = Some(val()?),
            "--csv" => a.csv = Some(PathBuf::from(val()?)),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.smoke {
        a.timeout = a.timeout.min(10.0);
        a.only.get_or_insert_with(|| {
            ["1_9:3", "2_1:2", "4_5:4", "2_4:1", "2_9:8"]
                .iter()
                .map(|s| s.to_string())
                .collect()
        });
    }
    Ok(a)
}

/// `ACASXU_run2a_1_9_batch_2000.onnx` + `prop_3.vnnlib` -> `1_9:3`.
fn short_name(onnx: &str, prop: &str) -> String {
    let net = onnx
        .trim_start_matches("ACASXU_run2a_")
        .trim_end_matches("_batch_2000.onnx");
    let p = prop.trim_start_matches("prop_").trim_end_matches(".vnnlib");
    format!("{net}:{p}")
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let read = |name: &str| {
        std::fs::read_to_string(args.data.join(name))
            .map_err(|e| format!("{}: {e}", args.data.join(name).display()))
    };
    let (instances, expected) = match (read("acasxu_instances.csv"), read("expected_verdicts.csv"))
    {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let expected: HashMap<String, String> = expected
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f.len() >= 3).then(|| (short_name(f[0], f[1]), f[2].to_string()))
        })
        .collect();
    let mut out = args
        .csv
        .as_ref()
        .and_then(|p| std::fs::File::create(p).ok());
    if let Some(f) = out.as_mut() {
        let _ = writeln!(f, "instance,verdict,expected,seconds,nodes");
    }
    let (mut solved, mut wrong, mut total, mut count) = (0usize, 0usize, 0.0f64, 0usize);
    let mut times = Vec::new();
    println!(
        "{:<8} {:<8} {:<8} {:>9} {:>10} {:>8} {:>8}",
        "instance", "verdict", "expected", "seconds", "nodes", "phase", "closed%"
    );
    for line in instances.lines() {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 2 || !f[0].ends_with(".onnx") {
            continue;
        }
        let name = short_name(f[0], f[1]);
        if args.only.as_ref().is_some_and(|o| !o.contains(&name))
            || args
                .filter
                .as_ref()
                .is_some_and(|t| !name.contains(t.as_str()))
        {
            continue;
        }
        let started = Instant::now();
        let net = load_network(&args.data.join("onnx").join(f[0]));
        let prop = load_property(&args.data.join("vnnlib").join(f[1]));
        let (net, prop) = match (net, prop) {
            (Ok(n), Ok(p)) => (n, p),
            (Err(e), _) => {
                eprintln!("{name}: model: {e}");
                continue;
            }
            (_, Err(e)) => {
                eprintln!("{name}: property: {e}");
                continue;
            }
        };
        let opts = Options {
            timeout: Duration::from_secs_f64(args.timeout),
            threads: args.threads,
            lookahead: args.lookahead,
            ..Options::default()
        };
        let opts = Options {
            phase_split_below: args.phase.unwrap_or(opts.phase_split_below),
            phase_split_unstable: args.unstable.unwrap_or(opts.phase_split_unstable),
            alpha_iters: args.alpha.unwrap_or(opts.alpha_iters),
            alpha_iters_warm: args.alpha_warm.unwrap_or(opts.alpha_iters_warm),
            tighten_iters: args.tighten.unwrap_or(opts.tighten_iters),
            pick_joint: opts.pick_joint && !args.pick_rows,
            split_rule: args.split_rule.unwrap_or(opts.split_rule),
            tighten_unstable: args.tighten_unstable.unwrap_or(opts.tighten_unstable),
            ..opts
        };
        let outcome = match check(&net, &prop, &opts) {
            Ok(o) => o,
            Err(e) => {
                eprintln!("{name}: {e}");
                continue;
            }
        };
        let secs = started.elapsed().as_secs_f64();
        let verdict = match &outcome.verdict {
            Verdict::Sat { .. } => "sat",
            Verdict::Unsat => "unsat",
            Verdict::Unknown { .. } => "unknown",
        };
        let exp = expected.get(&name).map_or("?", String::as_str);
        count += 1;
        if verdict != "unknown" {
            solved += 1;
            total += secs;
            times.push(secs);
            if exp != "?" && exp != verdict {
                wrong += 1;
                eprintln!("WRONG VERDICT on {name}: got {verdict}, expected {exp}");
            }
        }
        println!(
            "{name:<8} {verdict:<8} {exp:<8} {secs:>9.3} {:>10} {:>8} {:>8.3}",
            outcome.stats.nodes,
            outcome.stats.phase_splits,
            100.0 * outcome.stats.closed_share
        );
        if let Some(f) = out.as_mut() {
            let _ = writeln!(
                f,
                "{name},{verdict},{exp},{secs:.4},{}",
                outcome.stats.nodes
            );
        }
    }
    println!(
        "instances {count}, solved {solved}, wrong {wrong}, total time of solved {total:.1} s (timeout {} s, {} threads)",
        args.timeout, args.threads
    );
    if wrong > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
