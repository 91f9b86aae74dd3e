//! `pf guard --upstream` as a process: a Streamable HTTP MCP proxy in front of a small MCP
//! server, serving several keep-alive clients at once on one thread and on two, refusing what
//! the spec forbids without asking the server, and logging every decision before it exits on
//! SIGTERM.

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

mod common;

use common::{stop_cleanly, support_spec};
use pf_testkit::http::read_message;
use pf_testkit::net::{free_loopback_addr, wait_listening};

/// An MCP server over Streamable HTTP (JSON answers) that answers every `tools/call` with a
/// text block naming the tool and its `order_id`; counts the calls it is sent.
fn mcp_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let counted = counted.clone();
            std::thread::spawn(move || {
                let mut writer = stream.try_clone().expect("clone");
                let mut reader = BufReader::new(stream);
                while let Ok(Some(request)) = read_message(&mut reader) {
                    let req: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
                    counted.fetch_add(1, Ordering::SeqCst);
                    let text = format!(
                        "{} {}: shipped",
                        req["params"]["name"].as_str().unwrap_or("?"),
                        req["params"]["arguments"]["order_id"]
                            .as_str()
                            .unwrap_or("?")
                    );
                    let answer = json!({"jsonrpc": "2.0", "id": req["id"], "result": {"content": [{"type": "text", "text": text}], "isError": false}}).to_string();
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                        answer.len()
                    );
                    if writer
                        .write_all(head.as_bytes())
                        .and_then(|()| writer.write_all(answer.as_bytes()))
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (addr, calls)
}

/// A keep-alive client of the guard's MCP endpoint.
struct Client {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        Client {
            writer: stream.try_clone().expect("clone"),
            reader: BufReader::new(stream),
        }
    }

    /// A `tools/call`: the HTTP status line and the JSON-RPC answer.
    fn call(&mut self, id: u64, tool: &str, args: Value) -> (String, Value) {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": args}}).to_string();
        let head = format!(
            "POST /mcp HTTP/1.1\r\nhost: guard\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        self.writer.write_all(head.as_bytes()).expect("write");
        self.writer.write_all(body.as_bytes()).expect("write");
        let answer = read_message(&mut self.reader)
            .expect("an answer")
            .expect("an answer");
        let body = serde_json::from_slice(&answer.body)
            .unwrap_or_else(|e| panic!("answer is not JSON ({e}): {:?}", answer.body));
        (answer.start, body)
    }
}

/// `pf guard` proxying `upstream` on a free loopback port, on `threads` threads; the process
/// and the address it serves once it accepts connections.
fn start_guard(upstream: SocketAddr, log: &Path, threads: &str) -> (Child, SocketAddr) {
    let addr = free_loopback_addr();
    let child = Command::new(env!("CARGO_BIN_EXE_pf"))
        .args(["guard", "--spec"])
        .arg(support_spec())
        .arg("--log")
        .arg(log)
        .args(["--upstream", &format!("http://{upstream}/mcp")])
        .args(["--listen", &addr.to_string(), "--threads", threads])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("pf guard starts");
    wait_listening(addr, "pf guard", Duration::from_secs(30));
    (child, addr)
}

const CLIENTS: u64 = 4;
const CALLS: u64 = 10;

fn concurrent_clients_are_served_and_every_decision_logged(threads: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("decisions.jsonl");
    let (upstream, calls) = mcp_server();
    let (mut guard, addr) = start_guard(upstream, &log, threads);

    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            std::thread::spawn(move || {
                let mut client = Client::connect(addr);
                for i in 0..CALLS {
                    let order = format!("ORD-{:06}", c * 1000 + i);
                    let (status, answer) =
                        client.call(i, "lookup_order", json!({ "order_id": order }));
                    assert!(status.contains(" 200 "), "{status}");
                    assert_eq!(answer["id"], json!(i), "{answer}");
                    let text = answer["result"]["content"][0]["text"].as_str();
                    assert_eq!(
                        text,
                        Some(format!("lookup_order {order}: shipped").as_str())
                    );
                }
                // A tool the spec does not have is refused in MCP's form.
                let (status, denied) =
                    client.call(CALLS, "delete_account", json!({"customer": "c1"}));
                assert!(status.contains(" 200 "), "{status}");
                assert_eq!(denied["result"]["isError"], json!(true), "{denied}");
            })
        })
        .collect();
    for c in clients {
        c.join().expect("client");
    }
    // The refused calls never reached the server.
    assert_eq!(calls.load(Ordering::SeqCst) as u64, CLIENTS * CALLS);

    stop_cleanly(&mut guard);

    let records: Vec<Value> = std::fs::read_to_string(&log)
        .expect("log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let count = |kind: &str, tool: &str, effect: &str| {
        records
            .iter()
            .filter(|r| r["kind"] == kind && r["tool"] == tool && r["effect"] == effect)
            .count() as u64
    };
    assert_eq!(count("call", "lookup_order", "allow"), CLIENTS * CALLS);
    assert_eq!(count("output", "lookup_order", "allow"), CLIENTS * CALLS);
    assert_eq!(count("call", "delete_account", "deny"), CLIENTS);
    assert_eq!(records.len() as u64, CLIENTS * (2 * CALLS + 1));
}

#[test]
fn one_thread_serves_concurrent_clients_and_logs_every_decision() {
    concurrent_clients_are_served_and_every_decision_logged("1");
}

#[test]
fn two_threads_serve_concurrent_clients_and_log_every_decision() {
    concurrent_clients_are_served_and_every_decision_logged("2");
}

#[test]
fn zero_threads_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new(env!("CARGO_BIN_EXE_pf"))
        .args(["guard", "--spec"])
        .arg(support_spec())
        .args(["--upstream", "http://127.0.0.1:9/mcp", "--threads", "0"])
        .current_dir(dir.path())
        .output()
        .expect("pf runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--threads"), "{err}");
    assert!(
        std::fs::read_dir(dir.path()).expect("dir").next().is_none(),
        "nothing may be written"
    );
}
