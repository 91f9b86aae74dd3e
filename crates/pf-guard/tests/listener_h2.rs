//! The guard's own listener speaks HTTP/2 with prior knowledge (h2c) beside HTTP/1.1 on the same
//! port, served as `pf guard` serves it (`pf_guard::http::serve_until`: `TCP_NODELAY`, graceful
//! shutdown). Over h2c an allowed MCP `tools/call` passes, a denied one is answered by the guard,
//! event streams (MCP and OpenAI) arrive as HTTP/2 DATA frames while the upstream is still
//! sending, and a shutdown lets an open stream finish.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{Method, Request, StatusCode, Version};
use axum::response::{IntoResponse, Response};
use common::{
    Fixture, Reply, assert_denied_for_domain, assert_lookup_allowed_and_redacted, h2c_client,
    result_text, send, send_with, serve, sse_data,
};
use http_body_util::{BodyExt, Full};
use pf_guard::mcp_http::{McpHttpConfig, McpHttpProxy};
use pf_guard::metrics::GuardMetrics;
use pf_guard::openai::{OpenAiConfig, OpenAiProxy};
use pf_guard::upstream::Upstream;
use serde_json::{Value, json};
use tokio::sync::{Notify, oneshot};

/// The upstream (plain HTTP/1.1): what it was asked, and a gate that holds the end of its
/// event streams until the test opens it.
#[derive(Clone, Default)]
struct Upstream1 {
    calls: Arc<Mutex<Vec<Value>>>,
    gate: Arc<Notify>,
}

/// An event stream: `first` at once, `rest` once the gate opens.
fn held_stream(gate: Arc<Notify>, first: String, rest: String) -> Response {
    let pieces = futures_util::stream::unfold(0u8, move |step| {
        let (gate, first, rest) = (gate.clone(), first.clone(), rest.clone());
        async move {
            match step {
                0 => Some((Ok::<_, std::io::Error>(Bytes::from(first)), 1)),
                1 => {
                    gate.notified().await;
                    Some((Ok(Bytes::from(rest)), 2))
                }
                _ => None,
            }
        }
    });
    (
        [("content-type", "text/event-stream")],
        Body::from_stream(pieces),
    )
        .into_response()
}

/// MCP at `/mcp`: `tools/call` answers with a card number (the guard redacts it), as JSON, or
/// for order `ORD-999999` as an event stream: a progress notification, then (gated) the answer.
async fn mcp(State(up): State<Upstream1>, body: Bytes) -> Response {
    let msg: Value = serde_json::from_slice(&body).unwrap_or_default();
    up.calls.lock().expect("calls").push(msg.clone());
    let name = msg["params"]["name"].as_str().unwrap_or_default();
    let answer = json!({"jsonrpc": "2.0", "id": msg["id"], "result": {"content": [{"type": "text",
        "text": format!("{name} done: card 4111 1111 1111 1111")}], "isError": false}});
    if msg["params"]["arguments"]["order_id"] == json!("ORD-999999") {
        let progress = json!({"jsonrpc": "2.0", "method": "notifications/progress",
            "params": {"progressToken": 1, "progress": 1}});
        return held_stream(
            up.gate.clone(),
            format!("id: e1\ndata: {progress}\n\n"),
            format!("id: e2\ndata: {answer}\n\n"),
        );
    }
    ([("content-type", "application/json")], answer.to_string()).into_response()
}

fn chunk(choice: u64, delta: Value, finish: Value) -> String {
    let c = json!({"id": "chatcmpl-2", "object": "chat.completion.chunk",
        "created": 1_700_000_000, "model": "m",
        "choices": [{"index": choice, "delta": delta, "finish_reason": finish}]});
    format!("data: {c}\n\n")
}

/// The model at `/v1/chat/completions`: a streamed answer with two choices (`n: 2`). Choice 0,
/// text, finishes at once (the guard checks a choice once it is finished, then relays it);
/// choice 1, a `lookup_order` tool call, and `[DONE]` follow once the gate opens.
async fn chat(State(up): State<Upstream1>, body: Bytes) -> Response {
    let request: Value = serde_json::from_slice(&body).unwrap_or_default();
    up.calls.lock().expect("calls").push(request);
    let call = json!({"index": 0, "id": "c1", "type": "function",
        "function": {"name": "lookup_order", "arguments": r#"{"order_id":"ORD-123456"}"#}});
    let first = [
        chunk(
            0,
            json!({"role": "assistant", "content": "Looking it up."}),
            Value::Null,
        ),
        chunk(0, json!({}), json!("stop")),
    ]
    .concat();
    let rest = [
        chunk(
            1,
            json!({"role": "assistant", "tool_calls": [call]}),
            Value::Null,
        ),
        chunk(1, json!({}), json!("tool_calls")),
        "data: [DONE]\n\n".to_string(),
    ]
    .concat();
    held_stream(up.gate.clone(), first, rest)
}

async fn upstream() -> (SocketAddr, Upstream1) {
    let up = Upstream1::default();
    let addr = serve(
        Router::new()
            .route("/mcp", axum::routing::post(mcp))
            .route("/v1/chat/completions", axum::routing::post(chat))
            .with_state(up.clone()),
    )
    .await;
    (addr, up)
}

/// Serves `router` as `pf guard` does, until the returned sender fires or is dropped.
async fn guard_listener(
    router: Router,
) -> (
    SocketAddr,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(pf_guard::http::serve_until(listener, router, async {
        let _ = stopped.await;
    }));
    (addr, stop, task)
}

async fn mcp_guard(fx: &Fixture, up: SocketAddr) -> (SocketAddr, oneshot::Sender<()>) {
    let upstream =
        Upstream::new(&format!("http://{up}/mcp"), Duration::from_secs(10)).expect("url");
    let proxy = McpHttpProxy::new(upstream, McpHttpConfig::default(), fx.enforcers());
    let (addr, stop, _) = guard_listener(proxy.router()).await;
    (addr, stop)
}

const MCP_HEADERS: [(&str, &str); 2] = [
    ("content-type", "application/json"),
    ("accept", "application/json, text/event-stream"),
];

fn tools_call(id: u64, name: &str, args: Value) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": name, "arguments": args}})
    .to_string()
}

/// A `tools/call` over h2c; the answer must come back as HTTP/2.
async fn call_h2c(guard: SocketAddr, id: u64, name: &str, args: Value) -> (Value, Reply) {
    let reply = send_with(
        &h2c_client(),
        Method::POST,
        &format!("http://{guard}/mcp"),
        &MCP_HEADERS,
        tools_call(id, name, args),
    )
    .await;
    assert_eq!(reply.version, Version::HTTP_2);
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let answer = reply.json();
    assert_eq!(answer["id"], json!(id), "{answer}");
    (answer, reply)
}

#[tokio::test]
async fn mcp_tools_calls_over_h2c_are_allowed_and_denied_as_over_http1() {
    let (up_addr, up) = upstream().await;
    let fx = Fixture::new();
    let (guard, _stop) = mcp_guard(&fx, up_addr).await;

    let (answer, _) = call_h2c(guard, 1, "lookup_order", json!({"order_id": "ORD-123456"})).await;
    assert_lookup_allowed_and_redacted(&answer);

    let (answer, _) = call_h2c(guard, 2, "send_email", json!({"to": "eve@evil.test"})).await;
    assert_denied_for_domain(&answer);
    let names: Vec<Value> = up
        .calls
        .lock()
        .expect("calls")
        .iter()
        .map(|c| c["params"]["name"].clone())
        .collect();
    assert_eq!(
        names,
        [json!("lookup_order")],
        "the denied call stayed here"
    );

    // HTTP/1.1 on the same port still works, and decides the same way.
    let reply = send(
        Method::POST,
        &format!("http://{guard}/mcp"),
        &MCP_HEADERS,
        tools_call(3, "send_email", json!({"to": "eve@evil.test"})),
    )
    .await;
    assert_eq!(reply.version, Version::HTTP_11);
    assert_eq!(reply.json()["result"]["isError"], json!(true));
    let reply = send(
        Method::POST,
        &format!("http://{guard}/mcp"),
        &MCP_HEADERS,
        tools_call(4, "lookup_order", json!({"order_id": "ORD-123456"})),
    )
    .await;
    assert_eq!(reply.version, Version::HTTP_11);
    assert!(result_text(&reply.json()).starts_with("lookup_order done"));
}

/// Sends `body` over h2c and returns the response head and its body, to read frame by frame.
async fn open_h2c(
    url: &str,
    headers: &[(&str, &str)],
    body: String,
) -> hyper::Response<hyper::body::Incoming> {
    let mut req = Request::builder().method(Method::POST).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::from(body))).expect("request");
    tokio::time::timeout(Duration::from_secs(20), h2c_client().request(req))
        .await
        .expect("answer in time")
        .expect("HTTP exchange")
}

/// Reads `body` until `seen` holds for the bytes so far.
async fn read_until(
    body: &mut hyper::body::Incoming,
    got: &mut Vec<u8>,
    seen: impl Fn(&[u8]) -> bool,
) {
    while !seen(got) {
        let frame = tokio::time::timeout(Duration::from_secs(20), body.frame())
            .await
            .expect("a frame in time")
            .expect("the stream goes on")
            .expect("frame");
        if let Ok(data) = frame.into_data() {
            got.extend_from_slice(&data);
        }
    }
}

fn contains(hay: &[u8], needle: &str) -> bool {
    String::from_utf8_lossy(hay).contains(needle)
}

#[tokio::test]
async fn mcp_event_streams_reach_h2c_clients_as_they_are_sent() {
    let (up_addr, up) = upstream().await;
    let fx = Fixture::new();
    let (guard, _stop) = mcp_guard(&fx, up_addr).await;
    let resp = open_h2c(
        &format!("http://{guard}/mcp"),
        &MCP_HEADERS,
        tools_call(7, "lookup_order", json!({"order_id": "ORD-999999"})),
    )
    .await;
    assert_eq!(resp.version(), Version::HTTP_2);
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    let mut body = resp.into_body();
    let mut got = Vec::new();
    // The progress notification arrives while the upstream still holds the answer back.
    read_until(&mut body, &mut got, |b| {
        contains(b, "notifications/progress")
    })
    .await;
    assert!(!contains(&got, "lookup_order done"));
    up.gate.notify_one();
    read_until(&mut body, &mut got, |b| contains(b, "lookup_order done")).await;
    let rest = body.collect().await.expect("end of stream").to_bytes();
    got.extend_from_slice(&rest);
    let events = sse_data(&got);
    let answer = events
        .iter()
        .find(|e| e["id"] == json!(7))
        .expect("the answer is in the stream");
    assert!(
        !result_text(answer).contains("4111 1111"),
        "redacted: {answer}"
    );
}

#[tokio::test]
async fn openai_event_streams_reach_h2c_clients_checked() {
    let (up_addr, up) = upstream().await;
    let fx = Fixture::new();
    let upstream =
        Upstream::new(&format!("http://{up_addr}"), Duration::from_secs(10)).expect("url");
    let proxy = OpenAiProxy::new(upstream, OpenAiConfig::default(), fx.enforcers());
    let (guard, _stop, _) = guard_listener(proxy.router()).await;
    let body = json!({"model": "m", "stream": true, "n": 2,
        "messages": [{"role": "user", "content": "where is ORD-123456"}]});
    let resp = open_h2c(
        &format!("http://{guard}/v1/chat/completions"),
        &[
            ("content-type", "application/json"),
            ("authorization", "Bearer sk-test"),
            ("x-pf-session", "h2"),
        ],
        body.to_string(),
    )
    .await;
    assert_eq!(resp.version(), Version::HTTP_2);
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let mut got = Vec::new();
    // The finished choice is relayed before the upstream has finished the stream.
    read_until(&mut body, &mut got, |b| contains(b, "Looking it up.")).await;
    assert!(!contains(&got, "lookup_order"));
    up.gate.notify_one();
    let rest = body.collect().await.expect("end of stream").to_bytes();
    got.extend_from_slice(&rest);
    let out = sse_data(&got);
    assert_eq!(out.last(), Some(&json!("[DONE]")), "{out:?}");
    let called: Vec<&Value> = out
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].as_array())
        .flatten()
        .map(|c| &c["function"]["name"])
        .collect();
    assert_eq!(called, [&json!("lookup_order")], "{out:?}");
}

#[tokio::test]
async fn shutdown_lets_an_open_h2c_stream_finish_and_stops_the_listener() {
    let (up_addr, up) = upstream().await;
    let fx = Fixture::new();
    let upstream =
        Upstream::new(&format!("http://{up_addr}/mcp"), Duration::from_secs(10)).expect("url");
    let proxy = McpHttpProxy::new(upstream, McpHttpConfig::default(), fx.enforcers());
    let (guard, stop, served) = guard_listener(proxy.router()).await;
    let resp = open_h2c(
        &format!("http://{guard}/mcp"),
        &MCP_HEADERS,
        tools_call(9, "lookup_order", json!({"order_id": "ORD-999999"})),
    )
    .await;
    assert_eq!(resp.version(), Version::HTTP_2);
    let mut body = resp.into_body();
    let mut got = Vec::new();
    read_until(&mut body, &mut got, |b| {
        contains(b, "notifications/progress")
    })
    .await;
    stop.send(()).expect("server running");
    // No new connection is accepted, but the server waits for the open stream ...
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(tokio::net::TcpStream::connect(guard).await.is_err());
    assert!(!served.is_finished(), "waits for the open stream");
    // ... and the open stream still gets its answer, after which the server returns.
    up.gate.notify_one();
    let rest = body.collect().await.expect("end of stream").to_bytes();
    got.extend_from_slice(&rest);
    assert!(
        contains(&got, "lookup_order done"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    tokio::time::timeout(Duration::from_secs(10), served)
        .await
        .expect("server returned after the stream ended")
        .expect("task")
        .expect("serve");
}

#[tokio::test]
async fn metrics_and_healthz_answer_over_h2c() {
    let metrics = Arc::new(GuardMetrics::default());
    let (addr, _stop, _) = guard_listener(pf_guard::http::router(metrics)).await;
    let h2c = h2c_client();
    let health = send_with(
        &h2c,
        Method::GET,
        &format!("http://{addr}/healthz"),
        &[],
        "",
    )
    .await;
    assert_eq!(
        (health.version, health.status),
        (Version::HTTP_2, StatusCode::OK)
    );
    assert_eq!(health.text(), "ok\n");
    let m = send_with(
        &h2c,
        Method::GET,
        &format!("http://{addr}/metrics"),
        &[],
        "",
    )
    .await;
    assert_eq!((m.version, m.status), (Version::HTTP_2, StatusCode::OK));
    assert!(m.text().ends_with("# EOF\n"), "{}", m.text());
    let h1 = send(Method::GET, &format!("http://{addr}/healthz"), &[], "").await;
    assert_eq!((h1.version, h1.status), (Version::HTTP_11, StatusCode::OK));
}
