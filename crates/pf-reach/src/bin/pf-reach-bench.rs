//! Benchmark: run every DryVR problem in a directory, print verdict vs expected and time.
//! Usage: `pf-reach-bench [DIR] [--smoke] [--sound] [--growth] [--published] [--limit S]
//! [--seed N]`. `--smoke` runs only a few small problems (for CI); `--growth` prints the table
//! of time and tube width as the initial set grows, for the learned and the sound method;
//! `--published` compares with DryVR's published times (median of 3 runs).

use std::path::PathBuf;
use std::time::Instant;

use pf_reach::{Method, Options, Problem, check};

const SMOKE: &[&str] = &[
    "input_thermo.json",
    "input_vanderpol.json",
    "input_MergeUnsafe.json",
    "input_jetEngine.json",
];

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let smoke = args.iter().any(|a| a == "--smoke");
    let sound = args.iter().any(|a| a == "--sound");
    // `--limit SECS`: per-problem time limit (default 20 s).
    let limit = args
        .iter()
        .position(|a| a == "--limit")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s > 0.0)
        .unwrap_or(20.0);
    // `--seed N`: sampler seed (default: the library's).
    let seed = args
        .iter()
        .position(|a| a == "--seed")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(Options::default().seed);
    let dir = args
        .iter()
        .enumerate()
        .find(|(i, a)| {
            !a.starts_with("--")
                && (*i == 0 || !matches!(args[i - 1].as_str(), "--limit" | "--seed"))
        })
        .map(|(_, a)| a)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../../shared/vectors/reach/dryvr-inputs")
        });
    if args.iter().any(|a| a == "--growth") {
        growth(&dir);
        return std::process::ExitCode::SUCCESS;
    }
    if args.iter().any(|a| a == "--published") {
        published(&dir);
        return std::process::ExitCode::SUCCESS;
    }
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect(),
        Err(e) => {
            eprintln!("{}: {e}", dir.display());
            return std::process::ExitCode::FAILURE;
        }
    };
    files.sort();
    if smoke {
        files.retain(|p| p.file_name().is_some_and(|n| SMOKE.iter().any(|s| n == *s)));
    }
    let opts = Options {
        method: if sound {
            Method::Sound
        } else {
            Method::Learned
        },
        time_limit: Some(std::time::Duration::from_secs_f64(limit)),
        seed,
        ..Options::default()
    };
    let mut mismatches = 0;
    let total = Instant::now();
    println!("| problem | expected | verdict | time (s) | sims | cells | max width |");
    println!("|---|---|---|---|---|---|---|");
    for f in &files {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let stem = name.trim_end_matches(".json");
        let expected = if stem.ends_with("Unsafe") {
            "unsafe"
        } else if stem.ends_with("Safe") {
            "safe"
        } else {
            "—"
        };
        let t = Instant::now();
        match Problem::load(f) {
            Err(e) => println!(
                "| {name} | {expected} | error: {} | {:.3} | | | |",
                e.to_string()
                    .replace('|', "/")
                    .chars()
                    .take(150)
                    .collect::<String>(),
                t.elapsed().as_secs_f64()
            ),
            Ok(p) => {
                let r = check(&p, &opts);
                let v = r.verdict.label();
                if expected != "—" && v != expected {
                    mismatches += 1;
                }
                let why = match &r.verdict {
                    pf_reach::Verdict::Unknown { reason } => {
                        format!(" ({})", reason.chars().take(80).collect::<String>())
                    }
                    _ => String::new(),
                };
                println!(
                    "| {name} | {expected} | {v}{why} | {:.3} | {} | {} | {:.3e} |",
                    r.stats.seconds, r.stats.simulations, r.stats.cells, r.stats.max_width
                );
            }
        }
    }
    println!(
        "\ntotal {:.2} s, {} files, {mismatches} labelled mismatches",
        total.elapsed().as_secs_f64(),
        files.len()
    );
    if mismatches > 0 {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}

fn why(v: &pf_reach::Verdict) -> String {
    match v {
        pf_reach::Verdict::Unknown { reason } => {
            // The innermost cause is the informative part ("no a priori enclosure at t = ..").
            let tail = reason.rsplit(": ").next().unwrap_or(reason);
            format!("unknown ({})", tail.chars().take(60).collect::<String>())
        }
        o => o.label().to_string(),
    }
}

fn growth(dir: &std::path::Path) {
    println!(
        "| problem | scale | learned verdict | learned time (s) | learned max width | sound verdict | sound time (s) | sound max width |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for name in [
        "input_vanderpol.json",
        "input_jetEngine.json",
        "input_bruss.json",
        "input_thermo.json",
        "input_thermo_with_reset.json",
    ] {
        let Ok(base) = Problem::load(&dir.join(name)) else {
            continue;
        };
        for scale in [0.25, 0.5, 1.0, 2.0, 4.0] {
            // No unsafe set: every run yields a tube, whose width is what we measure.
            let mut p = base.clone();
            p.unsafe_set = Default::default();
            for b in &mut p.initial {
                let (m, w) = (b.mid(), b.width() / 2.0 * scale);
                *b = pf_reach::interval::Iv::new(m - w, m + w);
            }
            let one = Options {
                max_depth: 0,
                max_cells: 1,
                ..Options::default()
            };
            let l = check(&p, &one);
            let s = check(
                &p,
                &Options {
                    method: Method::Sound,
                    ..one.clone()
                },
            );
            println!(
                "| {name} | {scale} | {} | {:.3} | {:.3} | {} | {:.3} | {:.3} |",
                l.verdict.label(),
                l.stats.seconds,
                l.stats.max_width,
                why(&s.verdict),
                s.stats.seconds,
                s.stats.max_width
            );
        }
    }
}

/// DryVR's published total times (i7-6600U laptop), as quoted in the issue.
const PUBLISHED: &[(&str, &str, f64)] = &[
    ("Van der Pol", "input_vanderpol.json", 2.92),
    ("Lorenz", "input_lorentz.json", 1.07),
    ("Brusselator", "input_bruss.json", 3.02),
    ("jet engine", "input_jetEngine.json", 12.1),
    ("vehicle platoon 9-D", "input_vehicle_platoon_3.json", 4.28),
    ("ISS 25-D", "ISS.json", 243.6),
];

fn published(dir: &std::path::Path) {
    println!(
        "| problem | DryVR published (s) | pf-reach verdict | pf-reach median of 3 (s) | speed-up |"
    );
    println!("|---|---|---|---|---|");
    for (label, file, theirs) in PUBLISHED {
        let p = match Problem::load(&dir.join(file)) {
            Ok(p) => p,
            Err(e) => {
                println!("| {label} (`{file}`) | {theirs} | error: {e} | | |");
                continue;
            }
        };
        let mut times = Vec::new();
        let mut verdict = String::new();
        for _ in 0..3 {
            let r = check(&p, &Options::default());
            verdict = why(&r.verdict);
            times.push(r.stats.seconds);
        }
        times.sort_by(f64::total_cmp);
        let ours = times[1];
        println!(
            "| {label} (`{file}`) | {theirs} | {verdict} | {ours:.3} | {:.0}x |",
            theirs / ours.max(1e-9)
        );
    }
}
