//! Corpus benchmark: checks every file of `../shared/vectors/lean/` (MANIFEST.tsv), prints
//! each verdict against the expected one, the counts, files/s, MB/s and the slowest file.
//!
//! `cargo bench -p pf-lean --bench corpus` (full run); `PF_LEAN_SMOKE=1` limits the run to
//! files under 20 KB (a few seconds, for CI); `PF_LEAN_FILTER=substr` selects files;
//! `PF_LEAN_THREADS=n` checks independent declarations on n threads.

use std::time::Instant;

use pf_lean::{Options, Verdict, check_export};

fn main() {
    let Some(dir) = pf_testkit::shared_path("vectors/lean") else {
        return;
    };
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.tsv")).expect("read MANIFEST.tsv");
    let smoke = std::env::var("PF_LEAN_SMOKE").is_ok();
    let filter = std::env::var("PF_LEAN_FILTER").ok();
    let verbose = std::env::var("PF_LEAN_VERBOSE").is_ok();
    let threads: usize = std::env::var("PF_LEAN_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(1);
    let opts = Options {
        threads,
        ..Options::default()
    };
    let (mut acc, mut rej, mut dec, mut wrong) = (0, 0, 0, 0);
    let (mut bytes, mut files) = (0usize, 0usize);
    let mut slowest = (0.0f64, String::new());
    let t0 = Instant::now();
    for row in manifest.lines().skip(1) {
        let cols: Vec<&str> = row.split('\t').collect();
        let (file, expected) = (cols[0], cols[1]);
        if filter.as_ref().is_some_and(|f| !file.contains(f.as_str())) {
            continue;
        }
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path).expect("read export");
        if smoke && text.len() > 20_000 {
            continue;
        }
        let t = Instant::now();
        let out = check_export(&text, &opts);
        let dt = t.elapsed().as_secs_f64();
        bytes += text.len();
        files += 1;
        if dt > slowest.0 {
            slowest = (dt, file.to_string());
        }
        let got = match &out.verdict {
            Verdict::Accept => "accept",
            Verdict::Reject { .. } => "reject",
            Verdict::Decline { .. } => "decline",
        };
        match got {
            "accept" => acc += 1,
            "reject" => rej += 1,
            _ => dec += 1,
        }
        // Disputed label (see docs/lean.md): the unmutated original of WrongTypes is well-typed.
        let disputed = file == "reject/rpylean__tests_examples_invalid_WrongTypes.orig.export";
        let bad = got != expected && got != "decline" && !disputed;
        if bad {
            wrong += 1;
        }
        if bad || verbose || got == "decline" || disputed {
            println!(
                "{} {file}: expected {expected}, got {got} {:?} ({dt:.3}s)",
                if bad { "WRONG" } else { "note " },
                out.verdict
            );
        }
    }
    let total = t0.elapsed().as_secs_f64();
    println!("files {files}: accept {acc}, reject {rej}, decline {dec}, wrong {wrong}");
    println!(
        "time {total:.2}s, {:.1} files/s, {:.2} MB/s; slowest {} ({:.3}s)",
        files as f64 / total,
        bytes as f64 / 1e6 / total,
        slowest.1,
        slowest.0
    );
    // Peak resident memory of the whole run (Linux).
    if let Ok(status) = std::fs::read_to_string("/proc/self/status")
        && let Some(line) = status.lines().find(|l| l.starts_with("VmHWM"))
    {
        println!("peak memory {}", line.trim_start_matches("VmHWM:").trim());
    }
}
