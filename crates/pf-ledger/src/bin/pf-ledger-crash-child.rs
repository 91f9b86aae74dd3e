//! Test helper for the crash test: appends to a ledger directory forever, printing each
//! acknowledged `index entry` line (flushed) so the parent can `kill -9` it at any point and
//! check that every acknowledged entry survived.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use pf_ledger::ledger::{Ledger, LedgerConfig};
use pf_ledger::note::{ALG_ED25519, SignerKey};
use pf_ledger::storage::file::FileStorage;

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(dir), Some(tag)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: pf-ledger-crash-child <dir> <tag>");
        return std::process::ExitCode::from(2);
    };
    match run(dir, tag) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crash child: {e}");
            std::process::ExitCode::from(1)
        }
    }
}

fn run(dir: &str, tag: &str) -> Result<(), Box<dyn std::error::Error>> {
    let key = SignerKey::from_seed("crash.test/log", ALG_ED25519, [42; 32])?;
    let mut cfg = LedgerConfig::new("crash.test/log");
    cfg.max_delay = Duration::from_millis(1);
    cfg.max_batch = 64;
    let ledger = Arc::new(Ledger::open(
        Arc::new(FileStorage::open_writer(dir)?),
        key,
        cfg,
    )?);
    // Several writers so batches mix entries from different callers.
    let mut handles = Vec::new();
    for w in 0..3 {
        let ledger = ledger.clone();
        let tag = tag.to_string();
        handles.push(std::thread::spawn(move || -> Result<(), String> {
            let mut n = 0u64;
            loop {
                let k = 1 + (n % 37) as usize;
                let entries: Vec<String> = (0..k)
                    .map(|i| format!("{{\"t\":\"{tag}-{w}-{}\"}}", n + i as u64))
                    .collect();
                n += k as u64;
                let idx = ledger
                    .append_many(entries.iter().map(|e| e.clone().into_bytes()).collect())
                    .map_err(|e| e.to_string())?;
                let mut out = std::io::stdout().lock();
                for (i, e) in idx.iter().zip(&entries) {
                    writeln!(out, "{i} {e}").map_err(|e| e.to_string())?;
                }
                out.flush().map_err(|e| e.to_string())?;
            }
        }));
    }
    for h in handles {
        h.join().map_err(|_| "writer panicked")??;
    }
    Ok(())
}
