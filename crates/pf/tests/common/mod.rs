//! Helpers shared by the `pf` binary's integration tests.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// Runs the `pf` binary with `args` in `cwd`.
pub fn pf(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pf"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run pf")
}

/// Makes key pair `keys/ci.{key,pub}.pem` in `dir` and `trust.json`, a 1-of-1 policy of it.
pub fn ci_key_and_trust(dir: &Path) {
    let o = pf(&["key", "gen", "--out-dir", "keys", "--name", "ci"], dir);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::write(
        dir.join("trust.json"),
        r#"{"threshold": 1, "keys": [{"name": "ci", "file": "keys/ci.pub.pem"}]}"#,
    )
    .expect("trust");
}
