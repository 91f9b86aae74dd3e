//! Interoperability with the official Rust MCP SDK (`rmcp`). Over stdio rmcp is on both ends:
//! the server is the `rmcp_tools_server` example (run as a child process), the client is rmcp's
//! own client, and the guard's stdio proxy sits between them, as under
//! `pf guard --spec ... -- <server>`. Over Streamable HTTP the same tools are served by rmcp's
//! `StreamableHttpService` behind the guard's HTTP proxy, driven by a plain HTTP client.

mod common;
mod rmcp_tools;

use std::path::PathBuf;
use std::process::Stdio;

use common::Fixture;
use rmcp::model::{CallToolRequestParams, CallToolResult, ClientConfig};
use rmcp::{ClientHandler, ServiceExt};
use serde_json::{Value, json};
use tokio::io::BufReader;
use tokio::process::Command;

#[derive(Debug, Clone, Default)]
struct Client;

impl ClientHandler for Client {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::default()
    }
}

/// The example server binary; `cargo test`/`nextest` build examples with the tests, a lone
/// `--test rmcp_interop` run may not, so it is built on demand then.
fn server_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target profile dir");
    let bin = dir
        .join("examples")
        .join(format!("rmcp_tools_server{}", std::env::consts::EXE_SUFFIX));
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args(["build", "-p", "pf-guard", "--example", "rmcp_tools_server"])
            .status()
            .expect("run cargo");
        assert!(status.success(), "building the rmcp example server failed");
    }
    bin
}

fn text(result: &CallToolResult) -> String {
    let v = serde_json::to_value(result).expect("serializable");
    v["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

fn args(v: Value) -> serde_json::Map<String, Value> {
    v.as_object().cloned().expect("object")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rmcp_client_and_server_through_the_guard() {
    let mut child = Command::new(server_binary())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start the rmcp server");
    let server_in = child.stdin.take().expect("stdin");
    let server_out = child.stdout.take().expect("stdout");

    // client -> guard and guard -> client pipes.
    let (client_write, guard_read) = tokio::io::duplex(64 * 1024);
    let (guard_write, client_read) = tokio::io::duplex(64 * 1024);
    let fixture = Fixture::new();
    let guard = tokio::spawn(pf_guard::stdio::proxy(
        (fixture.enforcers())(),
        BufReader::new(guard_read),
        guard_write,
        BufReader::new(server_out),
        server_in,
    ));

    let client = Client
        .serve((client_read, client_write))
        .await
        .expect("MCP handshake through the guard");

    let tools = client.list_all_tools().await.expect("tools/list");
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(
        names,
        vec!["lookup_order"],
        "delete_everything is not in the spec and is hidden"
    );

    let ok = client
        .call_tool(
            CallToolRequestParams::new("lookup_order")
                .with_arguments(args(json!({"order_id": "ORD-123456"}))),
        )
        .await
        .expect("allowed call");
    assert_ne!(ok.is_error, Some(true));
    let t = text(&ok);
    // The server's own answer, with the card number redacted by the spec's content filter.
    assert!(
        t.starts_with("order ORD-123456: shipped, paid with card "),
        "{t}"
    );
    assert!(!t.contains("4111 1111 1111 1111"), "{t}");

    let denied = client
        .call_tool(
            CallToolRequestParams::new("delete_everything")
                .with_arguments(args(json!({"reason": "because"}))),
        )
        .await
        .expect("a denial is a tool result, not a protocol error");
    assert_eq!(denied.is_error, Some(true));
    let t = text(&denied);
    assert!(t.starts_with("Denied by policy: "), "{t}");
    assert!(
        t.contains("delete_everything"),
        "the reason names the tool: {t}"
    );

    let bad = client
        .call_tool(
            CallToolRequestParams::new("lookup_order")
                .with_arguments(args(json!({"order_id": "not-an-order"}))),
        )
        .await
        .expect("policy denial");
    assert_eq!(bad.is_error, Some(true), "{}", text(&bad));

    client.cancel().await.expect("client closes");
    guard
        .await
        .expect("guard task")
        .expect("guard ends cleanly when the client closes");
    drop(child);

    let records = fixture.sink.records();
    let calls: Vec<(&str, &str)> = records
        .iter()
        .filter(|r| r.kind == "call")
        .map(|r| (r.tool.as_str(), r.effect))
        .collect();
    assert_eq!(
        calls,
        vec![
            ("lookup_order", "allow"),
            ("delete_everything", "deny"),
            ("lookup_order", "deny")
        ]
    );
}

/// The JSON-RPC messages of an answer, whether JSON or an event stream.
fn messages(reply: &common::Reply) -> Vec<Value> {
    if reply
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/event-stream"))
    {
        common::sse_data(&reply.body)
            .into_iter()
            .filter(Value::is_object)
            .collect()
    } else if reply.body.is_empty() {
        Vec::new()
    } else {
        vec![reply.json()]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rmcp_streamable_http_server_behind_the_guard() {
    use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
    use rmcp::transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService,
    };

    let service: StreamableHttpService<rmcp_tools::Tools, LocalSessionManager> =
        StreamableHttpService::new(
            || Ok(rmcp_tools::server()),
            Default::default(),
            StreamableHttpServerConfig::default(),
        );
    let server = common::serve(axum::Router::new().nest_service("/mcp", service)).await;
    let upstream = pf_guard::upstream::Upstream::new(
        &format!("http://{server}/mcp"),
        std::time::Duration::from_secs(10),
    )
    .expect("url");
    let fixture = Fixture::new();
    let proxy = pf_guard::mcp_http::McpHttpProxy::new(
        upstream,
        pf_guard::mcp_http::McpHttpConfig::default(),
        fixture.enforcers(),
    );
    let url = format!("http://{}/mcp", common::serve(proxy.router()).await);

    let mut session: Option<String> = None;
    let mut post = async |body: Value| {
        let mut headers = vec![
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
            ("mcp-protocol-version", "2025-06-18"),
        ];
        let sid = session.clone();
        if let Some(s) = &sid {
            headers.push(("mcp-session-id", s.as_str()));
        }
        let reply = common::send(axum::http::Method::POST, &url, &headers, body.to_string()).await;
        assert!(
            reply.status.is_success(),
            "{} {}",
            reply.status,
            reply.text()
        );
        if let Some(s) = reply.header("mcp-session-id") {
            session = Some(s.to_string());
        }
        messages(&reply)
    };

    let init = post(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "pf-guard-test", "version": "1"}}}),
    )
    .await;
    assert_eq!(
        init[0]["result"]["serverInfo"]["name"],
        json!("rmcp"),
        "{init:?}"
    );
    post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await;

    let list = post(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})).await;
    let names: Vec<&str> = list[0]["result"]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, vec!["lookup_order"], "{list:?}");

    let ok = post(json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "lookup_order", "arguments": {"order_id": "ORD-123456"}}}))
    .await;
    let result = &ok[0]["result"];
    assert_ne!(result["isError"], json!(true), "{ok:?}");
    let t = result["content"][0]["text"].as_str().expect("text");
    assert!(
        t.starts_with("order ORD-123456: shipped, paid with card "),
        "{t}"
    );
    assert!(!t.contains("4111 1111 1111 1111"), "{t}");

    let denied = post(json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call",
        "params": {"name": "delete_everything", "arguments": {"reason": "x"}}}))
    .await;
    assert_eq!(denied[0]["result"]["isError"], json!(true), "{denied:?}");
    let t = denied[0]["result"]["content"][0]["text"]
        .as_str()
        .expect("text");
    assert!(
        t.starts_with("Denied by policy: ") && t.contains("delete_everything"),
        "{t}"
    );
}
