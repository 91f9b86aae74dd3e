//! `pf guard`'s TLS flags at start-up: the client certificate and key come in pairs, and a
//! missing, invalid or mismatched TLS file (upstream or alert webhook) stops the guard with an
//! error naming it before anything starts (no decision log, no listener). The handshakes
//! themselves are tested in `pf-guard` (tests/mcp_https.rs, tests/alert_https.rs).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn spec() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/support-agent/agent.yaml")
}

/// A CA, a certificate and its key from `pf admission certs`, in `dir/name/`.
fn certs(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let out = dir.join(name);
    let status = Command::new(env!("CARGO_BIN_EXE_pf"))
        .args(["admission", "certs", "--out"])
        .arg(&out)
        .output()
        .expect("pf admission certs runs");
    assert!(status.status.success(), "{status:?}");
    (out.join("ca.crt"), out.join("tls.crt"), out.join("tls.key"))
}

/// Runs `pf guard` with `args` and a decision log in `dir`; the guard must refuse to start.
fn refused(dir: &Path, args: &[&std::ffi::OsStr]) -> String {
    let log = dir.join("decisions.jsonl");
    let out: Output = Command::new(env!("CARGO_BIN_EXE_pf"))
        .arg("guard")
        .arg("--spec")
        .arg(spec())
        .arg("--log")
        .arg(&log)
        .args(args)
        .output()
        .expect("pf guard runs");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "the guard started: {stderr}");
    assert!(!log.exists(), "the decision log was opened: {stderr}");
    assert!(
        !dir.join("decisions.jsonl.salts").exists(),
        "the salt file was written: {stderr}"
    );
    stderr
}

fn os(s: &str) -> &std::ffi::OsStr {
    s.as_ref()
}

const UPSTREAM: [&str; 4] = [
    "--upstream",
    "https://127.0.0.1:1/mcp",
    "--listen",
    "127.0.0.1:0",
];

#[test]
fn client_certificate_and_key_come_in_pairs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_, cert, key) = certs(dir.path(), "a");
    let mut args: Vec<&std::ffi::OsStr> = UPSTREAM.iter().map(|s| os(s)).collect();
    args.extend([os("--upstream-client-cert"), cert.as_os_str()]);
    let err = refused(dir.path(), &args);
    assert!(err.contains("--upstream-client-key"), "{err}");
    let mut args: Vec<&std::ffi::OsStr> = UPSTREAM.iter().map(|s| os(s)).collect();
    args.extend([os("--upstream-client-key"), key.as_os_str()]);
    let err = refused(dir.path(), &args);
    assert!(err.contains("--upstream-client-cert"), "{err}");
}

#[test]
fn a_bad_client_key_stops_the_guard_before_it_starts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (ca, cert, _) = certs(dir.path(), "a");
    let (_, other_cert, other_key) = certs(dir.path(), "b");
    let missing = dir.path().join("missing.key");
    for (key, expected) in [
        (&other_key, "KeyMismatch"),
        (&other_cert, "no private key"),
        (&missing, "missing.key"),
    ] {
        let mut args: Vec<&std::ffi::OsStr> = UPSTREAM.iter().map(|s| os(s)).collect();
        args.extend([
            os("--upstream-ca"),
            ca.as_os_str(),
            os("--upstream-client-cert"),
            cert.as_os_str(),
            os("--upstream-client-key"),
            key.as_os_str(),
        ]);
        let err = refused(dir.path(), &args);
        assert!(err.contains("upstream TLS"), "{err}");
        assert!(err.contains(expected), "`{expected}` not in: {err}");
        assert!(
            err.contains(&*key.to_string_lossy()),
            "the key file is named: {err}"
        );
    }
}

#[test]
fn a_client_certificate_for_a_plain_http_upstream_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_, cert, key) = certs(dir.path(), "a");
    let args = [
        os("--upstream"),
        os("http://127.0.0.1:1/mcp"),
        os("--upstream-client-cert"),
        cert.as_os_str(),
        os("--upstream-client-key"),
        key.as_os_str(),
    ];
    let err = refused(dir.path(), &args);
    assert!(err.contains("https:// upstream"), "{err}");
}

#[test]
fn an_unusable_webhook_ca_file_stops_the_guard_before_it_starts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_, _, key) = certs(dir.path(), "a");
    let args = [
        os("--anomaly-learn"),
        os("10m"),
        os("--alert-webhook"),
        os("https://127.0.0.1:1/alerts"),
        os("--alert-webhook-ca"),
        key.as_os_str(),
        os("--"),
        os("true"),
    ];
    let err = refused(dir.path(), &args);
    assert!(
        err.contains("alert webhook TLS") && err.contains("no CERTIFICATE block"),
        "{err}"
    );
    assert!(err.contains(&*key.to_string_lossy()), "{err}");
    // The CA flag needs a webhook.
    let args = [
        os("--anomaly-learn"),
        os("10m"),
        os("--alert-webhook-ca"),
        key.as_os_str(),
        os("--"),
        os("true"),
    ];
    let err = refused(dir.path(), &args);
    assert!(err.contains("--alert-webhook"), "{err}");
}
