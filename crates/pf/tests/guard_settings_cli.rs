//! `pf guard` checks every setting (upstream URL, CA file, flag combinations, listen
//! addresses, anomaly baseline) before it creates its decision log or starts anything: a bad
//! setting fails with a precise message and leaves no file behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn support_spec() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/support-agent/agent.yaml")
}

/// Runs `command` (a `pf guard` given `args`) and checks that it exits with an error soon;
/// one that starts serving instead is killed and the test fails.
fn refused(mut command: Command, args: &[&str]) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pf runs");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "{args:?} was accepted (still running): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    assert!(
        !out.status.success(),
        "{args:?} was accepted: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `pf guard --spec <support agent> --log decisions.jsonl ARGS` in an empty directory and
/// checks that it fails saying `expected`, before creating any file.
fn assert_refused_before_any_output(args: &[&str], expected: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut command = Command::new(env!("CARGO_BIN_EXE_pf"));
    command
        .current_dir(dir.path())
        .arg("guard")
        .arg("--spec")
        .arg(support_spec())
        .args(["--log", "decisions.jsonl"])
        .args(args);
    let out = refused(command, args);
    let err = String::from_utf8_lossy(&out.stderr);
    // Reports are wrapped (continuation lines start with `│`): compare the words.
    let words = |s: &str| {
        let words = s.split_whitespace().filter(|w| *w != "│");
        words.collect::<Vec<_>>().join(" ")
    };
    assert!(
        words(&err).contains(&words(expected)),
        "{args:?}: expected {expected:?} in\n{err}"
    );
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.is_empty(), "{args:?} left {left:?} behind");
}

#[test]
fn a_bad_upstream_url_is_refused_before_the_log_is_created() {
    assert_refused_before_any_output(
        &["--upstream", "not a url"],
        "invalid upstream URL `not a url`: not a URL",
    );
    assert_refused_before_any_output(
        &["--upstream", "ftp://127.0.0.1/mcp"],
        "invalid upstream URL `ftp://127.0.0.1/mcp`: the scheme must be http or https",
    );
}

#[test]
fn a_missing_upstream_ca_file_is_refused_before_the_log_is_created() {
    assert_refused_before_any_output(
        &[
            "--upstream",
            "https://127.0.0.1:9/mcp",
            "--upstream-ca",
            "missing-ca.pem",
        ],
        "upstream TLS: missing-ca.pem: No such file or directory",
    );
}

#[test]
fn conflicting_upstream_flags_are_refused_before_the_log_is_created() {
    assert_refused_before_any_output(
        &[
            "--upstream",
            "http://127.0.0.1:9/mcp",
            "--upstream-ca",
            "ca.pem",
        ],
        "--upstream-ca is for an https upstream, but `http://127.0.0.1:9/mcp` is plain http",
    );
    assert_refused_before_any_output(
        &[
            "--upstream",
            "http://127.0.0.1:9",
            "--openai",
            "--trust-user-request",
        ],
        "--trust-user-request is for MCP; an OpenAI-compatible upstream (--openai) carries the user's turn itself",
    );
    assert_refused_before_any_output(
        &[
            "--upstream",
            "http://127.0.0.1:9",
            "--openai",
            "--allow-origin",
            "https://app.example.com",
        ],
        "--allow-origin is for the MCP proxy, not with --openai",
    );
}

#[test]
fn addresses_that_cannot_be_listened_on_are_refused_before_the_log_is_created() {
    assert_refused_before_any_output(
        &[
            "--upstream",
            "http://127.0.0.1:9/mcp",
            "--listen",
            "not-an-address",
        ],
        "cannot listen on not-an-address",
    );
    let pf = env!("CARGO_BIN_EXE_pf");
    assert_refused_before_any_output(
        &["--metrics-addr", "nowhere", "--", pf, "guard", "demo-tools"],
        "cannot listen on nowhere",
    );
}

#[test]
fn a_missing_anomaly_baseline_is_refused_before_the_log_is_created() {
    let pf = env!("CARGO_BIN_EXE_pf");
    assert_refused_before_any_output(
        &[
            "--anomaly-baseline",
            "missing-baseline.json",
            "--",
            pf,
            "guard",
            "demo-tools",
        ],
        "missing-baseline.json",
    );
}

#[test]
fn a_directory_that_is_not_a_ledger_is_refused_before_anything_is_written_into_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pf = env!("CARGO_BIN_EXE_pf");
    let args = ["--ledger", ".", "--", pf, "guard", "demo-tools"];
    let mut command = Command::new(pf);
    command
        .current_dir(dir.path())
        .arg("guard")
        .arg("--spec")
        .arg(support_spec())
        .args(args);
    let out = refused(command, &args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("opening ledger ."), "{err}");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(left.is_empty(), "left {left:?} behind");
}

#[test]
fn a_commit_window_out_of_range_is_refused_before_the_log_is_created() {
    assert_refused_before_any_output(
        &["--log-commit-window-ms", "5000", "--", "true"],
        "invalid value '5000' for '--log-commit-window-ms <MS>': 5000 is not in 0..=1000",
    );
    assert_refused_before_any_output(
        &["--log-commit-window-ms", "soon", "--", "true"],
        "invalid value 'soon' for '--log-commit-window-ms <MS>'",
    );
}
