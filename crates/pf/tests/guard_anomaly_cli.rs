//! Anomaly detection end to end through `pf guard` and its demo MCP server: a first session's
//! decision log is learned with `pf guard baseline`; a second session under that baseline in
//! deny mode lets the learned sequence through, denies an unseen one in MCP's own form, logs the
//! alert and POSTs it to a webhook.

use std::io::{BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

mod common;

use common::{GuardSession as Session, support_spec};

impl Session {
    /// Sends a JSON-RPC request; its reply, which must answer `id`.
    fn request_checked(&mut self, id: u64, method: &str, params: Value) -> Value {
        let reply = self.request(id, method, params);
        assert_eq!(reply["id"], json!(id), "{reply}");
        reply
    }

    /// The normal workflow: search, look up the order, e-mail the customer.
    fn normal_workflow(&mut self) {
        self.request_checked(1, "initialize", json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}));
        for (id, tool, args) in [
            (2, "search_kb", json!({"query": "refund policy"})),
            (3, "lookup_order", json!({"order_id": "ORD-123456"})),
            (
                4,
                "send_email",
                json!({"to": "jane.roe@customers.example.com", "subject": "Your order", "body": "On its way."}),
            ),
        ] {
            let r =
                self.request_checked(id, "tools/call", json!({"name": tool, "arguments": args}));
            assert_eq!(r["result"]["isError"], json!(false), "{tool}: {r}");
        }
    }

    fn finish(mut self) {
        drop(self.stdin);
        let status = self.child.wait().expect("guard exits");
        assert!(status.success(), "{status:?}");
    }
}

fn records(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .expect("log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

/// Accepts one HTTP request, answers 204 and sends its body.
fn webhook_receiver() -> (String, mpsc::Receiver<Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/alerts", listener.local_addr().expect("addr"));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else {
            return;
        };
        let mut reader = BufReader::new(stream);
        if let Ok(Some(request)) = pf_testkit::http::read_message(&mut reader) {
            let _ = reader
                .get_mut()
                .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n");
            if let Ok(v) = serde_json::from_slice(&request.body) {
                let _ = tx.send(v);
            }
        }
    });
    (url, rx)
}

#[test]
fn a_baseline_learned_from_the_log_lets_normal_calls_through_and_denies_new_sequences() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pf = env!("CARGO_BIN_EXE_pf");

    // Session 1: normal traffic, no anomaly detection.
    let log1 = dir.path().join("normal.jsonl");
    let mut s = Session::start(&support_spec(), &log1, &[]);
    s.normal_workflow();
    s.finish();

    // Learn the baseline offline.
    let baseline = dir.path().join("baseline.json");
    let out = Command::new(pf)
        .args(["guard", "baseline", "--from"])
        .arg(&log1)
        .arg("-o")
        .arg(&baseline)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("learned 3 calls of 1 agent(s) in 1 session(s)"),
        "{said}"
    );
    let b: Value =
        serde_json::from_str(&std::fs::read_to_string(&baseline).expect("baseline")).expect("JSON");
    assert_eq!(b["format"], "pf-guard-baseline/1");
    assert_eq!(
        b["agents"]["support-agent"]["sequences"],
        json!([
            [null, null, "search_kb"],
            [null, "search_kb", "lookup_order"],
            ["search_kb", "lookup_order", "send_email"]
        ])
    );

    // Session 2: the same workflow passes; a refund after the e-mail was never seen.
    let (url, alerts) = webhook_receiver();
    let log2 = dir.path().join("guarded.jsonl");
    let mut s = Session::start(
        &support_spec(),
        &log2,
        &[
            "--anomaly-baseline",
            baseline.to_str().expect("utf-8"),
            "--anomaly-mode",
            "deny",
            "--alert-webhook",
            &url,
        ],
    );
    s.normal_workflow();
    let r = s.request_checked(
        5,
        "tools/call",
        json!({"name": "issue_refund", "arguments": {"order_id": "ORD-123456", "amount": 10}}),
    );
    let result = &r["result"];
    assert_eq!(result["isError"], json!(true), "{r}");
    assert_eq!(
        result["_meta"]["provability-fabric/reasons"],
        json!(["anomaly.unseen_sequence"]),
        "{r}"
    );
    assert!(
        result["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("lookup_order -> send_email -> issue_refund")),
        "{r}"
    );
    let alert = alerts
        .recv_timeout(Duration::from_secs(60))
        .expect("the webhook received the alert");
    assert_eq!(alert["reason"], "anomaly.unseen_sequence", "{alert}");
    assert_eq!(alert["tool"], "issue_refund", "{alert}");
    assert_eq!(alert["agent"], "support-agent", "{alert}");
    assert_eq!(alert["action"], "deny", "{alert}");
    s.finish();

    let logged: Vec<(String, String)> = records(&log2)
        .iter()
        .filter(|r| r["tool"] == "issue_refund")
        .map(|r| {
            (
                r["kind"].as_str().unwrap_or("").to_string(),
                r["effect"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        logged,
        vec![
            ("anomaly".to_string(), "deny".to_string()),
            ("call".to_string(), "deny".to_string())
        ]
    );
}

#[test]
fn anomaly_flags_without_a_baseline_or_learning_window_are_refused() {
    let spec =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/support-agent/agent.yaml");
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new(env!("CARGO_BIN_EXE_pf"))
        .args(["guard", "--spec", spec.to_str().expect("utf-8"), "--log"])
        .arg(dir.path().join("l.jsonl"))
        .args(["--anomaly-mode", "deny", "--", "true"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("need --anomaly-baseline"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
