//! `pf guard`'s TLS flags at start-up: the client certificate and key come in pairs, and a
//! missing, invalid or mismatched TLS file (upstream or alert webhook) stops the guard with an
//! error naming it before anything starts (no decision log, no listener). The upstream
//! handshakes themselves are tested in `pf-guard` (tests/mcp_https.rs, tests/upstream_h2.rs);
//! the alert webhook's client certificate is tested here end to end, against a receiver that
//! requires one.

mod webhook_pki;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use webhook_pki::{Ca, MtlsReceiver};

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

/// `--anomaly-learn 0s` and an https webhook at `url` (nothing listens on port 1).
fn webhook_args<'a>(url: &'a str, extra: &[&'a std::ffi::OsStr]) -> Vec<&'a std::ffi::OsStr> {
    let mut args = vec![
        os("--anomaly-learn"),
        os("0s"),
        os("--alert-webhook"),
        os(url),
    ];
    args.extend_from_slice(extra);
    args.extend([os("--"), os("true")]);
    args
}

#[test]
fn webhook_client_certificate_and_key_come_in_pairs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_, cert, key) = certs(dir.path(), "a");
    let url = "https://127.0.0.1:1/alerts";
    let err = refused(
        dir.path(),
        &webhook_args(url, &[os("--alert-webhook-client-cert"), cert.as_os_str()]),
    );
    assert!(err.contains("--alert-webhook-client-key"), "{err}");
    let err = refused(
        dir.path(),
        &webhook_args(url, &[os("--alert-webhook-client-key"), key.as_os_str()]),
    );
    assert!(err.contains("--alert-webhook-client-cert"), "{err}");
    // Both, but no webhook to present them to.
    let args = [
        os("--anomaly-learn"),
        os("0s"),
        os("--alert-webhook-client-cert"),
        cert.as_os_str(),
        os("--alert-webhook-client-key"),
        key.as_os_str(),
        os("--"),
        os("true"),
    ];
    let err = refused(dir.path(), &args);
    assert!(err.contains("--alert-webhook"), "{err}");
}

#[test]
fn a_bad_webhook_client_key_stops_the_guard_before_it_starts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_, cert, _) = certs(dir.path(), "a");
    let (_, other_cert, other_key) = certs(dir.path(), "b");
    let missing = dir.path().join("missing.key");
    for (key, expected) in [
        (&other_key, "KeyMismatch"),
        (&other_cert, "no private key"),
        (&missing, "missing.key"),
    ] {
        let extra = [
            os("--alert-webhook-client-cert"),
            cert.as_os_str(),
            os("--alert-webhook-client-key"),
            key.as_os_str(),
        ];
        let err = refused(
            dir.path(),
            &webhook_args("https://127.0.0.1:1/alerts", &extra),
        );
        assert!(err.contains("alert webhook TLS"), "{err}");
        assert!(err.contains(expected), "`{expected}` not in: {err}");
        assert!(
            err.contains(&*key.to_string_lossy()),
            "the key file is named: {err}"
        );
    }
    // A certificate file without a certificate is named too.
    let extra = [
        os("--alert-webhook-client-cert"),
        other_key.as_os_str(),
        os("--alert-webhook-client-key"),
        other_key.as_os_str(),
    ];
    let err = refused(
        dir.path(),
        &webhook_args("https://127.0.0.1:1/alerts", &extra),
    );
    assert!(err.contains("no CERTIFICATE block"), "{err}");
    assert!(err.contains(&*other_key.to_string_lossy()), "{err}");
}

#[test]
fn webhook_tls_files_for_a_plain_http_webhook_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (ca, cert, key) = certs(dir.path(), "a");
    let url = "http://127.0.0.1:1/alerts";
    let extra = [
        os("--alert-webhook-client-cert"),
        cert.as_os_str(),
        os("--alert-webhook-client-key"),
        key.as_os_str(),
    ];
    let err = refused(dir.path(), &webhook_args(url, &extra));
    assert!(
        err.contains("--alert-webhook-client-cert is for an https:// webhook"),
        "{err}"
    );
    let err = refused(
        dir.path(),
        &webhook_args(url, &[os("--alert-webhook-ca"), ca.as_os_str()]),
    );
    assert!(
        err.contains("--alert-webhook-ca is for an https webhook"),
        "{err}"
    );
}

/// Runs a stdio guard over `pf guard demo-tools` that flags its first call (`--anomaly-learn
/// 0s`, alert mode) and posts the alert to `url` with the `webhook` TLS flags; makes one call
/// and exits (the guard flushes the webhook queue at exit).
fn one_flagged_call(dir: &Path, url: &str, webhook: &[&std::ffi::OsStr]) {
    let pf = env!("CARGO_BIN_EXE_pf");
    let mut child = Command::new(pf)
        .arg("guard")
        .arg("--spec")
        .arg(spec())
        .arg("--log")
        .arg(dir.join("decisions.jsonl"))
        .args(["--anomaly-learn", "0s", "--alert-webhook", url])
        .args(webhook)
        .args(["--", pf, "guard", "demo-tools"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("pf guard starts");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "search_kb", "arguments": {"query": "refund policy"}}});
    writeln!(stdin, "{call}").expect("write");
    stdin.flush().expect("flush");
    let mut line = String::new();
    stdout.read_line(&mut line).expect("read");
    let reply: Value = serde_json::from_str(&line).expect("JSON reply");
    assert_eq!(
        reply["result"]["isError"],
        json!(false),
        "alert mode: {reply}"
    );
    drop(stdin);
    let status = child.wait().expect("guard exits");
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_receiver_requiring_client_certificates_gets_alerts_only_from_a_guard_presenting_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (server_ca, client_ca) = (Ca::new("alerts CA"), Ca::new("guards CA"));
    let receiver = MtlsReceiver::start(&server_ca.server(&["127.0.0.1"]), &client_ca);
    let ca_file = server_ca.write(dir.path(), "alerts-ca.pem");
    let (cert, key) = client_ca.client("guard").write(dir.path(), "guard");

    // With the client certificate: the receiver gets the alert.
    one_flagged_call(
        dir.path(),
        &receiver.url,
        &[
            os("--alert-webhook-ca"),
            ca_file.as_os_str(),
            os("--alert-webhook-client-cert"),
            cert.as_os_str(),
            os("--alert-webhook-client-key"),
            key.as_os_str(),
        ],
    );
    let alert = receiver
        .events
        .recv_timeout(Duration::from_secs(30))
        .expect("the receiver got the alert");
    assert_eq!(alert["type"], "pf-guard.anomaly", "{alert}");
    assert_eq!(alert["reason"], "anomaly.unseen_sequence", "{alert}");
    assert_eq!(alert["tool"], "search_kb", "{alert}");
    assert_eq!(receiver.refused(), 0);

    // Without one: the handshake is refused and nothing arrives.
    one_flagged_call(
        dir.path(),
        &receiver.url,
        &[os("--alert-webhook-ca"), ca_file.as_os_str()],
    );
    assert_eq!(
        receiver.wait_refused(1),
        1,
        "the receiver refused the guard"
    );
    assert!(
        receiver.events.try_recv().is_err(),
        "no alert without a client certificate"
    );

    // A certificate from a CA the receiver does not trust: refused as well.
    let (cert, key) = Ca::new("another CA")
        .client("guard")
        .write(dir.path(), "other");
    one_flagged_call(
        dir.path(),
        &receiver.url,
        &[
            os("--alert-webhook-ca"),
            ca_file.as_os_str(),
            os("--alert-webhook-client-cert"),
            cert.as_os_str(),
            os("--alert-webhook-client-key"),
            key.as_os_str(),
        ],
    );
    assert_eq!(receiver.wait_refused(2), 2);
    assert!(receiver.events.try_recv().is_err());
}

#[test]
fn h2c_for_an_https_upstream_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut args: Vec<&std::ffi::OsStr> = UPSTREAM.iter().map(|s| os(s)).collect();
    args.push(os("--upstream-h2c"));
    let err = refused(dir.path(), &args);
    assert!(
        err.contains("h2c") && err.contains("https://127.0.0.1:1/mcp"),
        "{err}"
    );
}

#[test]
fn a_zero_maximum_connection_age_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut args: Vec<&std::ffi::OsStr> = UPSTREAM.iter().map(|s| os(s)).collect();
    args.extend([os("--upstream-max-conn-age"), os("0")]);
    let err = refused(dir.path(), &args);
    assert!(
        err.contains("--upstream-max-conn-age") && err.contains("0"),
        "{err}"
    );
}
