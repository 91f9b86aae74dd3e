//! Test support shared by the `pf-*` crates.
//!
//! Conformance tests read public vectors from `../shared/` beside the repository, and the
//! PostgreSQL tests use a throw-away cluster started by `.ci/run`. Where either is absent (a
//! user's clone) the tests skip with a visible message; under CI (`CI=true`) absence is a failure.

pub mod http;
pub mod net;
pub mod pki;

use std::path::PathBuf;

/// True when running under CI, where skipping is not allowed.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The workspace root (the directory holding the top `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    // This crate lives at <root>/crates/pf-testkit.
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// Path of `../shared/<rel>` beside the repository, or `None` (with a visible skip message).
///
/// Panics under CI when the shared folder is missing, so a misconfigured CI cannot pass by skipping.
pub fn shared_path(rel: &str) -> Option<PathBuf> {
    let root = workspace_root();
    let shared = root.join("..").join("shared");
    let p = shared.join(rel);
    if p.exists() {
        return Some(p);
    }
    if in_ci() {
        panic!("CI=true but shared test data is missing: {}", p.display());
    }
    eprintln!(
        "SKIPPED: shared test data not found at {} (clone ../shared beside the repo to run this test)",
        p.display()
    );
    None
}

/// Connection string of the throw-away test PostgreSQL (`PF_TEST_PG`), or `None` with a skip message.
///
/// Panics under CI when unset: `.ci/run` always starts a cluster.
pub fn postgres_url() -> Option<String> {
    match std::env::var("PF_TEST_PG") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if in_ci() {
                panic!("CI=true but PF_TEST_PG is not set; .ci/run must start PostgreSQL");
            }
            eprintln!("SKIPPED: PF_TEST_PG not set (see .ci/run for starting a local PostgreSQL)");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_root_holds_the_workspace_manifest() {
        let manifest = std::fs::read_to_string(workspace_root().join("Cargo.toml"))
            .expect("workspace Cargo.toml readable");
        assert!(manifest.contains("[workspace]"));
    }
}
