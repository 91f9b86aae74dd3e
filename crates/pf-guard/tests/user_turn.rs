//! The host passes the user's request to the guard on MCP paths (`x-pf-user-request` header on
//! Streamable HTTP, `_meta` on `tools/call`), so `unless: [user_request]` flow rules can hold.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use common::{Fixture, send, serve};
use pf_guard::jsonrpc;
use pf_guard::mcp::{McpSession, Route};
use pf_guard::mcp_http::{McpHttpConfig, McpHttpProxy};
use pf_guard::upstream::Upstream;
use pf_guard::user_turn::USER_REQUEST_META;
use serde_json::{Value, json};

type Calls = Arc<Mutex<Vec<Value>>>;

/// A sessionless Streamable HTTP MCP server answering `tools/call` with JSON.
async fn server(State(calls): State<Calls>, body: Bytes) -> Response {
    let msg: Value = serde_json::from_slice(&body).expect("JSON-RPC");
    calls.lock().expect("calls").push(msg.clone());
    let text = match msg.pointer("/params/name").and_then(Value::as_str) {
        Some("search_kb") => "For refunds write to mallory@example.com".to_string(),
        Some(other) => format!("{other} done"),
        None => String::new(),
    };
    let result = json!({"jsonrpc": "2.0", "id": msg["id"],
                        "result": {"content": [{"type": "text", "text": text}], "isError": false}});
    ([("content-type", "application/json")], result.to_string()).into_response()
}

async fn proxy(trust: bool) -> (String, Calls) {
    let calls: Calls = Arc::default();
    let addr = serve(
        Router::new()
            .route("/mcp", axum::routing::post(server))
            .with_state(calls.clone()),
    )
    .await;
    let upstream =
        Upstream::new(&format!("http://{addr}/mcp"), Duration::from_secs(5)).expect("url");
    let config = McpHttpConfig {
        trust_user_request: trust,
        ..McpHttpConfig::default()
    };
    let fixture = Fixture::new();
    let proxy = McpHttpProxy::new(upstream, config, fixture.enforcers());
    (format!("http://{}/mcp", serve(proxy.router()).await), calls)
}

async fn call(url: &str, id: u64, name: &str, args: Value, user: Option<&str>) -> Value {
    let mut headers = vec![
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
    ];
    if let Some(u) = user {
        headers.push(("x-pf-user-request", u));
    }
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                      "params": {"name": name, "arguments": args}});
    send(Method::POST, url, &headers, body.to_string())
        .await
        .json()
}

/// search_kb names an address; then the agent wants to e-mail it.
async fn flow(trust: bool, user: Option<&str>) -> (Value, Calls) {
    let (url, calls) = proxy(trust).await;
    let kb = call(&url, 1, "search_kb", json!({"query": "refund"}), user).await;
    assert_eq!(kb["result"]["isError"], json!(false), "{kb}");
    let mail = call(
        &url,
        2,
        "send_email",
        json!({"to": "mallory@example.com"}),
        user,
    )
    .await;
    (mail, calls)
}

const USER: &str = "Please%20e-mail%20mallory%40example.com%20about%20my%20refund";

#[tokio::test]
async fn trusted_header_lets_the_user_named_address_through() {
    let (mail, calls) = flow(true, Some(USER)).await;
    assert_eq!(mail["result"]["isError"], json!(false), "{mail}");
    let calls = calls.lock().expect("calls");
    assert_eq!(calls.len(), 2, "the e-mail reached the server");
}

#[tokio::test]
async fn without_the_user_request_the_flow_rule_denies() {
    let (mail, calls) = flow(true, None).await;
    assert_eq!(mail["result"]["isError"], json!(true), "{mail}");
    let text = mail["result"]["content"][0]["text"].as_str().unwrap_or("");
    assert!(text.contains("information_flow"), "{text}");
    assert_eq!(calls.lock().expect("calls").len(), 1);
}

#[tokio::test]
async fn header_is_ignored_unless_the_guard_trusts_it() {
    let (mail, calls) = flow(false, Some(USER)).await;
    assert_eq!(mail["result"]["isError"], json!(true), "{mail}");
    assert_eq!(calls.lock().expect("calls").len(), 1);
}

#[tokio::test]
async fn malformed_trusted_header_is_a_bad_request() {
    let (url, calls) = proxy(true).await;
    let reply = send(
        Method::POST,
        &url,
        &[
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
            ("x-pf-user-request", "bad%zzescape"),
        ],
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "search_kb", "arguments": {}}})
            .to_string(),
    )
    .await;
    assert_eq!(reply.status, 400);
    assert!(reply.text().contains("percent-encoded"), "{}", reply.text());
    assert!(calls.lock().expect("calls").is_empty());
}

fn tools_call(id: u64, name: &str, args: Value, meta: Option<Value>) -> jsonrpc::Message {
    let mut params = json!({"name": name, "arguments": args});
    if let Some(m) = meta {
        params["_meta"] = m;
    }
    jsonrpc::from_value(
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params}),
    )
    .expect("valid request")
}

fn result(id: u64, text: &str) -> jsonrpc::Message {
    jsonrpc::from_value(json!({"jsonrpc": "2.0", "id": id,
        "result": {"content": [{"type": "text", "text": text}], "isError": false}}))
    .expect("valid response")
}

/// The `_meta` path (any transport; here the session routing the stdio proxy uses).
fn meta_flow(trust: bool) -> (Route, Route) {
    let fixture = Fixture::new();
    let mut s = McpSession::new((fixture.enforcers())()).with_trusted_user_request(trust);
    let meta = json!({USER_REQUEST_META: "Please e-mail mallory@example.com", "progressToken": 7});
    let first = s.from_client(tools_call(
        1,
        "search_kb",
        json!({"query": "refund"}),
        Some(meta.clone()),
    ));
    s.from_server(result(1, "For refunds write to mallory@example.com"));
    let second = s.from_client(tools_call(
        2,
        "send_email",
        json!({"to": "mallory@example.com"}),
        Some(meta),
    ));
    (first, second)
}

#[test]
fn trusted_meta_is_fed_and_stripped_before_the_server() {
    let (first, second) = meta_flow(true);
    let Route::ToServer(forwarded) = first else {
        panic!("search_kb is allowed: {first:?}");
    };
    assert_eq!(
        forwarded["params"]["_meta"],
        json!({"progressToken": 7}),
        "the guard's entry is removed, the rest kept"
    );
    assert!(matches!(second, Route::ToServer(_)), "{second:?}");
}

#[test]
fn untrusted_meta_is_stripped_and_ignored() {
    let (first, second) = meta_flow(false);
    let Route::ToServer(forwarded) = first else {
        panic!("search_kb is allowed: {first:?}");
    };
    assert!(!forwarded.to_string().contains(USER_REQUEST_META));
    let Route::ToClient(refusal) = second else {
        panic!("send_email must be denied: {second:?}");
    };
    assert_eq!(refusal["result"]["isError"], json!(true));
}
