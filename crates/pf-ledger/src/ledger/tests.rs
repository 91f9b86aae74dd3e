use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::merkle::{verify_consistency, verify_inclusion};
use crate::note::ALG_ED25519;
use crate::storage::file::FileStorage;

fn key() -> SignerKey {
    SignerKey::from_seed("test.example/log", ALG_ED25519, [5; 32]).expect("key")
}

fn config(dir: &std::path::Path) -> LedgerConfig {
    let mut c = LedgerConfig::new("test.example/log");
    c.max_delay = Duration::ZERO;
    c.index_file = Some(dir.join("index"));
    c
}

fn open(dir: &std::path::Path) -> Ledger {
    let s = FileStorage::open_writer(dir.join("log")).expect("storage");
    Ledger::open(Arc::new(s), key(), config(dir)).expect("open")
}

#[test]
fn appends_get_consecutive_indices_and_proofs_verify() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = open(dir.path());
    let mut roots = vec![];
    for i in 0..40u64 {
        let (idx, _) = l
            .append_record(
                serde_json::json!({"agent": format!("a{}", i % 3), "n": i}),
                &[],
            )
            .expect("append");
        assert_eq!(idx, i);
        if i % 9 == 0 {
            roots.push((l.size(), l.snapshot().root));
        }
    }
    for chunk in 0..8u64 {
        let entries = (0..70)
            .map(|i| {
                format!("{{\"agent\":\"a{}\",\"n\":{}}}", i % 3, 40 + chunk * 70 + i).into_bytes()
            })
            .collect();
        l.append_many(entries).expect("append");
        roots.push((l.size(), l.snapshot().root));
    }
    let size = l.size();
    let root = l.snapshot().root;
    for i in (0..size).step_by(7) {
        let p = l.inclusion_proof(i, size).expect("proof");
        let leaf = crate::hash::leaf_hash(&l.entry(i).expect("entry"));
        verify_inclusion(i, size, &leaf, &p.hashes, &root).expect("verifies");
    }
    for (old, old_root) in roots {
        let p = l.consistency_proof(old, size).expect("proof");
        verify_consistency(old, size, &old_root, &root, &p).expect("consistent");
        assert_eq!(l.root_at(old).expect("root"), old_root);
    }
    assert_eq!(l.find("agent:a1").len(), 13 + 8 * 23);
    assert_eq!(l.fsck().expect("fsck"), 600);
}

#[test]
fn reopen_recovers_state_and_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = {
        let l = open(dir.path());
        let entries = (0..300u64)
            .map(|i| format!("{{\"agent\":\"x\",\"n\":{i}}}").into_bytes())
            .collect();
        assert_eq!(
            l.append_many(entries).expect("append"),
            (0..300).collect::<Vec<_>>()
        );
        l.snapshot().root
    };
    let _ = std::fs::remove_file(dir.path().join("index"));
    let l = open(dir.path());
    assert_eq!(l.size(), 300);
    assert_eq!(l.snapshot().root, root);
    assert_eq!(l.find("agent:x").len(), 300);
    assert_eq!(l.append(b"{}".to_vec()).expect("append"), 300);
}

#[test]
fn corrupted_tiles_are_detected_not_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let l = open(dir.path());
        l.append_many(
            (0..700u64)
                .map(|i| format!("{{\"n\":{i}}}").into_bytes())
                .collect(),
        )
        .expect("append");
    }
    // Flip a byte in a full level-0 tile: reads touching it must fail, fsck must fail.
    let p = dir.path().join("log/tile/0/001");
    let mut b = std::fs::read(&p).expect("read");
    b[100] ^= 1;
    std::fs::write(&p, &b).expect("write");
    let l = open(dir.path());
    assert!(matches!(
        l.tile(&TileId::hashes(0, 1, 256)),
        Err(LedgerError::Damaged(_))
    ));
    assert!(l.inclusion_proof(300, 700).is_err());
    assert!(l.entry(300).is_err());
    assert!(matches!(l.fsck(), Err(LedgerError::Damaged(_))));
    drop(l);
    // Truncate the partial tile named by the checkpoint: open must refuse.
    let p = dir.path().join("log/tile/0/002.p/188");
    let b = std::fs::read(&p).expect("read");
    std::fs::write(&p, &b[..b.len() - 1]).expect("write");
    let s = FileStorage::open(dir.path().join("log")).expect("storage");
    assert!(matches!(
        Ledger::open(Arc::new(s), key(), config(dir.path())),
        Err(LedgerError::Damaged(_))
    ));
}

#[test]
fn wrong_key_or_origin_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(open(dir.path()));
    let other = SignerKey::from_seed("test.example/log", ALG_ED25519, [6; 32]).expect("key");
    let s = FileStorage::open(dir.path().join("log")).expect("storage");
    assert!(matches!(
        Ledger::open(Arc::new(s), other, config(dir.path())),
        Err(LedgerError::Checkpoint(_))
    ));
}

#[test]
fn served_tiles_match_what_the_store_holds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = open(dir.path());
    l.append_many(
        (0..300u64)
            .map(|i| format!("{{\"n\":{i}}}").into_bytes())
            .collect(),
    )
    .expect("append");
    for t in [
        "tile/0/000",
        "tile/0/001.p/44",
        "tile/1/000.p/1",
        "tile/entries/000",
        "tile/entries/001.p/44",
    ] {
        let id = TileId::parse(t).expect("path");
        let stored = std::fs::read(dir.path().join("log").join(t)).expect(t);
        assert_eq!(l.tile(&id).expect(t), stored, "{t}");
    }
    // Older partial widths are served as prefixes of the current tile.
    let narrower = l
        .tile(&TileId::parse("tile/entries/001.p/3").expect("path"))
        .expect("prefix");
    assert_eq!(
        parse_bundle(&TileId::entries(1, 3), &narrower)
            .expect("bundle")
            .len(),
        3
    );
    assert!(
        l.tile(&TileId::parse("tile/0/002.p/1").expect("path"))
            .is_err()
    );
    assert!(
        l.tile(&TileId::parse("tile/entries/001").expect("path"))
            .is_err()
    );
}
