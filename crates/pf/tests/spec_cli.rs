//! `pf spec ...` as a user runs it: exit codes, messages with file:line:col, files written.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn pf(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pf"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("pf runs")
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pf-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn lint_accepts_the_examples() {
    for ex in ["support-agent", "coding-agent", "braking-agent"] {
        let spec = examples().join(ex).join("agent.yaml");
        let out = pf(&["spec", "lint", spec.to_str().expect("utf-8 path")]);
        assert!(
            out.status.success(),
            "{ex}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn lint_reports_location_and_exits_1() {
    let dir = temp_dir("lint");
    let file = dir.join("agent.yaml");
    std::fs::write(
        &file,
        "name: a\nversion: 1.0.0\ncapabilities:\n  - name: x\n    knd: tool\n",
    )
    .expect("write");
    let out = pf(&["spec", "lint", "--short", file.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("agent.yaml:5:5: error: unknown field `knd`"),
        "{stdout}"
    );
    let out = pf(&["spec", "lint", file.to_str().expect("utf-8")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("did you mean `kind`?"), "{stderr}");
}

#[test]
fn lint_of_a_missing_file_fails_cleanly() {
    let out = pf(&["spec", "lint", "/nonexistent/agent.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read file"));
}

#[test]
fn init_writes_a_valid_spec_and_refuses_to_overwrite() {
    let dir = temp_dir("init");
    let file = dir.join("agent.yaml");
    let f = file.to_str().expect("utf-8");
    assert!(
        pf(&["spec", "init", f, "--name", "helper-bot"])
            .status
            .success()
    );
    assert!(pf(&["spec", "lint", f]).status.success());
    let again = pf(&["spec", "init", f]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
}

#[test]
fn fmt_output_has_the_same_digest() {
    let spec = examples().join("support-agent/agent.yaml");
    let s = spec.to_str().expect("utf-8");
    let digest = String::from_utf8(pf(&["spec", "digest", s]).stdout).expect("utf-8");
    assert!(digest.trim().starts_with("sha256:"));
    let formatted = pf(&["spec", "fmt", s]).stdout;
    // Formatted copy lives beside the original so its relative file references still resolve.
    let copy = examples()
        .join("support-agent")
        .join(format!(".fmt-{}.yaml", std::process::id()));
    std::fs::write(&copy, formatted).expect("write");
    let digest2 = String::from_utf8(pf(&["spec", "digest", copy.to_str().expect("utf-8")]).stdout)
        .expect("utf-8");
    let _ = std::fs::remove_file(&copy);
    assert_eq!(digest, digest2);
}

#[test]
fn schema_command_prints_the_committed_schema() {
    let out = pf(&["spec", "schema"]);
    let committed = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schema/agentspec.schema.json"),
    )
    .expect("schema file");
    assert_eq!(out.stdout, committed);
}
