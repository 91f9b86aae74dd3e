//! One behavioural suite run against every storage backend: appends and proofs, recovery on
//! reopen, refusal of commits that do not extend the current checkpoint.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use pf_ledger::hash::leaf_hash;
use pf_ledger::ledger::{Ledger, LedgerConfig};
use pf_ledger::merkle::{verify_consistency, verify_inclusion};
use pf_ledger::note::{ALG_ED25519, SignerKey};
use pf_ledger::storage::file::FileStorage;
use pf_ledger::storage::{Storage, StorageError};

fn key() -> SignerKey {
    SignerKey::from_seed("suite.test/log", ALG_ED25519, [21; 32]).expect("key")
}

fn cfg() -> LedgerConfig {
    let mut c = LedgerConfig::new("suite.test/log");
    c.max_delay = Duration::from_millis(1);
    c.max_batch = 100;
    c
}

fn entries(from: u64, n: u64) -> Vec<Vec<u8>> {
    (from..from + n)
        .map(|i| format!("{{\"n\":{i}}}").into_bytes())
        .collect()
}

fn suite(make: &dyn Fn() -> Arc<dyn Storage>) {
    // Appends get consecutive indices and every proof verifies.
    let (size1, root1) = {
        let l = Ledger::open(make(), key(), cfg()).expect("open");
        assert_eq!(
            l.append_many(entries(0, 700)).expect("append"),
            (0..700).collect::<Vec<_>>()
        );
        let size = l.size();
        let root = l.snapshot().root;
        for i in [0, 255, 256, 511, 699] {
            let p = l.inclusion_proof(i, size).expect("proof");
            verify_inclusion(
                i,
                size,
                &leaf_hash(&l.entry(i).expect("entry")),
                &p.hashes,
                &root,
            )
            .expect("inclusion");
        }
        (size, root)
    };
    // Reopening recovers the same tree and continues it.
    let l = Ledger::open(make(), key(), cfg()).expect("reopen");
    assert_eq!((l.size(), l.snapshot().root), (size1, root1));
    l.append_many(entries(700, 300)).expect("append more");
    let p = l.consistency_proof(size1, 1000).expect("consistency");
    verify_consistency(size1, 1000, &root1, &l.snapshot().root, &p).expect("consistent");
    assert_eq!(l.fsck().expect("fsck"), 1000);
    drop(l);
    // A commit that does not extend the current checkpoint is refused.
    let s = make();
    assert!(matches!(
        s.commit(999, &[], 1000, b"x\n1000\ny\n"),
        Err(StorageError::Conflict { found: 1000, .. })
    ));
}

#[test]
fn file_backend() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("log");
    suite(&|| Arc::new(FileStorage::open_writer(&path).expect("storage")) as Arc<dyn Storage>);
}

#[cfg(feature = "postgres")]
mod pg {
    use super::*;
    use pf_ledger::client::{LogSource, RemoteLog};
    use pf_ledger::storage::pg::PgStorage;

    fn unique(name: &str) -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!("{name}-{}-{nanos}", std::process::id())
    }

    #[test]
    fn postgres_backend() {
        let Some(url) = pf_testkit::postgres_url() else {
            return;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let log = unique("suite");
        let publish = dir.path().join("published");
        suite(&|| {
            Arc::new(
                PgStorage::connect(
                    &url,
                    &log,
                    Some(FileStorage::open(&publish).expect("files")),
                )
                .expect("pg"),
            ) as Arc<dyn Storage>
        });
        // Readers use the published files, not the database, and they verify.
        let remote = RemoteLog::open(LogSource::Dir(publish.clone()), &key().verifier())
            .expect("published log");
        assert_eq!(remote.size(), 1000);
        assert_eq!(remote.fsck().expect("fsck published"), 1000);
        // A publication cut short is repaired on connect.
        std::fs::remove_file(publish.join("checkpoint")).expect("remove");
        let s = PgStorage::connect(
            &url,
            &log,
            Some(FileStorage::open(&publish).expect("files")),
        )
        .expect("pg");
        assert!(RemoteLog::open(LogSource::Dir(publish), &key().verifier()).is_ok());
        s.destroy().expect("cleanup");
    }

    #[test]
    fn two_front_ends_share_one_log_without_forking() {
        let Some(url) = pf_testkit::postgres_url() else {
            return;
        };
        let log = unique("fronts");
        let a = Ledger::open(
            Arc::new(PgStorage::connect(&url, &log, None).expect("pg")),
            key(),
            cfg(),
        )
        .expect("a");
        let b = Ledger::open(
            Arc::new(PgStorage::connect(&url, &log, None).expect("pg")),
            key(),
            cfg(),
        )
        .expect("b");
        let mut seen = HashSet::new();
        for round in 0..20u64 {
            for idx in a.append_many(entries(round * 20, 10)).expect("a appends") {
                assert!(seen.insert(idx));
            }
            for idx in b
                .append_many(entries(round * 20 + 10, 10))
                .expect("b appends")
            {
                assert!(seen.insert(idx));
            }
        }
        assert_eq!(seen.len(), 400);
        assert_eq!(seen.iter().max(), Some(&399));
        drop((a, b));
        let c = Ledger::open(
            Arc::new(PgStorage::connect(&url, &log, None).expect("pg")),
            key(),
            cfg(),
        )
        .expect("c");
        assert_eq!(c.fsck().expect("fsck"), 400);
        let s = PgStorage::connect(&url, &log, None).expect("pg");
        s.destroy().expect("cleanup");
    }
}
