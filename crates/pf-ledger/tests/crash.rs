//! Crash safety: a child process appends and is killed with SIGKILL at random moments; after
//! every restart each acknowledged entry must be present at its index, and the tree verifies.

use std::collections::BTreeMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use pf_ledger::ledger::{Ledger, LedgerConfig};
use pf_ledger::note::{ALG_ED25519, SignerKey};
use pf_ledger::storage::file::FileStorage;

#[test]
fn kill_9_never_loses_an_acknowledged_entry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("log");
    // Kill points vary per run; the seed is printed so a failure can be replayed.
    let mut seed = std::env::var("PF_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    eprintln!("PF_CRASH_SEED={seed}");
    let mut next = move |lo: u64, hi: u64| {
        // xorshift64
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        lo + seed % (hi - lo)
    };
    let mut acked: BTreeMap<u64, String> = BTreeMap::new();
    let cycles = 30;
    for cycle in 0..cycles {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pf-ledger-crash-child"))
            .arg(&log)
            .arg(format!("c{cycle}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn child");
        std::thread::sleep(Duration::from_millis(next(50, 400)));
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("wait");
        let mut out = String::new();
        child
            .stdout
            .take()
            .expect("stdout")
            .read_to_string(&mut out)
            .expect("read stdout");
        let mut err = String::new();
        child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut err)
            .expect("read stderr");
        assert!(
            status.code().is_none(),
            "child exited by itself ({status}): {err}"
        );
        // A line cut by the kill has no trailing newline: it was never fully acknowledged.
        let complete = out.rfind('\n').map_or("", |i| &out[..i]);
        for line in complete.lines() {
            let (i, e) = line.split_once(' ').expect("index entry");
            let i: u64 = i.parse().expect("index");
            assert!(
                acked.insert(i, e.to_string()).is_none(),
                "index {i} acknowledged twice"
            );
        }

        // Restart: everything acknowledged so far is there, at its index, and fsck passes.
        let key = SignerKey::from_seed("crash.test/log", ALG_ED25519, [42; 32]).expect("key");
        let ledger = Ledger::open(
            Arc::new(FileStorage::open_writer(&log).expect("storage")),
            key,
            LedgerConfig::new("crash.test/log"),
        )
        .expect("reopen after kill");
        let size = ledger.size();
        if let Some((&last, _)) = acked.last_key_value() {
            assert!(
                size > last,
                "cycle {cycle}: size {size} but index {last} was acknowledged"
            );
        }
        for (&i, e) in &acked {
            assert_eq!(
                String::from_utf8(ledger.entry(i).expect("entry")).expect("utf8"),
                *e,
                "entry {i}"
            );
        }
        assert_eq!(ledger.fsck().expect("fsck"), size);
    }
    eprintln!("{} acknowledged entries over {cycles} kills", acked.len());
    assert!(
        acked.len() > 50,
        "too few acknowledged entries to mean anything: {}",
        acked.len()
    );
}
