//! Conformance: every transparency-dev Merkle vector; a verifier accepts exactly `wantErr: false`.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use pf_ledger::hash::Hash;
use pf_ledger::merkle::{
    verify_consistency_bytes, verify_inclusion_bytes, verify_subtree_inclusion,
};
use serde_json::Value;

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read vector dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "json") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn b64(v: &Value) -> Vec<u8> {
    B64.decode(v.as_str().unwrap_or("")).expect("vector base64")
}

fn proof(v: &Value) -> Vec<Vec<u8>> {
    v.as_array()
        .map(|a| a.iter().map(b64).collect())
        .unwrap_or_default()
}

fn run(kind: &str, check: impl Fn(&Value) -> bool) -> usize {
    let Some(dir) = pf_testkit::shared_path(&format!("vectors/tlog/merkle/{kind}")) else {
        return 0;
    };
    let mut failures = Vec::new();
    let all = files(&dir);
    for f in &all {
        let v: Value =
            serde_json::from_str(&std::fs::read_to_string(f).expect("read")).expect("json");
        let want_ok = !v["wantErr"].as_bool().expect("wantErr");
        if check(&v) != want_ok {
            failures.push(format!("{} (want ok={want_ok})", f.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases wrong:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
    all.len()
}

#[test]
fn inclusion_vectors() {
    let n = run("inclusion", |v| {
        verify_inclusion_bytes(
            v["leafIdx"].as_u64().expect("leafIdx"),
            v["treeSize"].as_u64().expect("treeSize"),
            &b64(&v["leafHash"]),
            &proof(&v["proof"]),
            &b64(&v["root"]),
        )
        .is_ok()
    });
    assert!(n == 0 || n > 50, "too few inclusion vectors: {n}");
}

#[test]
fn consistency_vectors() {
    let n = run("consistency", |v| {
        verify_consistency_bytes(
            v["size1"].as_u64().expect("size1"),
            v["size2"].as_u64().expect("size2"),
            &b64(&v["root1"]),
            &b64(&v["root2"]),
            &proof(&v["proof"]),
        )
        .is_ok()
    });
    assert!(n == 0 || n > 50, "too few consistency vectors: {n}");
}

#[test]
fn subtree_inclusion_vectors() {
    run("subtreeinclusion", |v| {
        let (Some(leaf), Some(root)) = (
            Hash::from_slice(&b64(&v["leafHash"])),
            Hash::from_slice(&b64(&v["root"])),
        ) else {
            return false;
        };
        let Some(p) = proof(&v["proof"])
            .iter()
            .map(|p| Hash::from_slice(p))
            .collect::<Option<Vec<_>>>()
        else {
            return false;
        };
        verify_subtree_inclusion(
            v["leafIdx"].as_u64().expect("leafIdx"),
            v["start"].as_u64().expect("start"),
            v["end"].as_u64().expect("end"),
            &leaf,
            &p,
            &root,
        )
        .is_ok()
    });
}
