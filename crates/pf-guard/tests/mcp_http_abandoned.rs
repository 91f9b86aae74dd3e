//! Calls abandoned halfway leave nothing waiting for an answer nobody reads. A client that goes
//! away: the guard still reads the server's answer (on an event stream or as JSON), checks and
//! logs it, and the call stops counting as in flight when the server is done. A server that
//! ends an event stream it cannot resume without answering: the client gets an error, and the
//! call stops counting as in flight.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use common::{Fixture, client, post_mcp, serve, sse_data};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use pf_guard::PolicyEnforcer;
use pf_guard::log::{Committer, MemorySink};
use pf_guard::mcp_http::{McpHttpConfig, McpHttpProxy};
use pf_guard::metrics::GuardMetrics;
use pf_guard::upstream::Upstream;
use serde_json::{Value, json};
use tokio::sync::Notify;

/// Answers a `tools/call` with an event stream: a priming event at once; once `go` is
/// notified, four progress notifications 50 ms apart, then the result (with a card number the
/// spec redacts).
async fn slow_server(State(go): State<Arc<Notify>>, body: Bytes) -> Response {
    let msg: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let id = msg["id"].clone();
    let events = futures_util::stream::unfold(0u8, move |step| {
        let (go, id) = (go.clone(), id.clone());
        async move {
            let event = match step {
                0 => "id: e0\ndata:\n\n".to_string(),
                1..=4 => {
                    if step == 1 {
                        go.notified().await;
                    } else {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    let progress = json!({"jsonrpc": "2.0", "method": "notifications/progress",
                        "params": {"progressToken": 1, "progress": step}});
                    format!("id: e{step}\ndata: {progress}\n\n")
                }
                5 => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let answer = json!({"jsonrpc": "2.0", "id": id, "result": {"content": [
                        {"type": "text", "text": "lookup_order done: card 4111 1111 1111 1111"}],
                        "isError": false}});
                    format!("id: e5\ndata: {answer}\n\n")
                }
                _ => return None,
            };
            Some((Ok::<_, std::io::Error>(Bytes::from(event)), step + 1))
        }
    });
    (
        [("content-type", "text/event-stream")],
        Body::from_stream(events),
    )
        .into_response()
}

#[tokio::test]
async fn a_result_whose_client_left_is_still_checked_logged_and_released() {
    let go = Arc::new(Notify::new());
    let upstream = serve(Router::new().fallback(slow_server).with_state(go.clone())).await;
    let fixture = Fixture::new();
    let guard = guard_to(upstream, fixture.enforcers()).await;

    let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "lookup_order", "arguments": {"order_id": "ORD-000123"}}});
    let req = Request::post(format!("http://{guard}/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(Full::new(Bytes::from(call.to_string())))
        .expect("request");
    let resp = client().request(req).await.expect("answer head");
    let mut body = resp.into_body();
    let first = body.frame().await.expect("a frame").expect("frame");
    assert!(first.is_data(), "the priming event");
    // The client goes away before the answer; then the server goes on.
    drop(body);
    go.notify_one();

    let output = async {
        loop {
            let records = fixture.sink.records();
            if let Some(r) = records.iter().find(|r| r.kind == "output") {
                return r.clone();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let record = tokio::time::timeout(Duration::from_secs(10), output)
        .await
        .expect("the result is checked and logged although nobody reads it");
    assert_eq!(record.tool, "lookup_order");
    assert_eq!(record.effect, "redact", "{record:?}");
    let calls: Vec<_> = fixture
        .sink
        .records()
        .into_iter()
        .filter(|r| r.kind == "call")
        .collect();
    assert_eq!(calls.len(), 1, "{calls:?}");
}

/// Answers `tools/call`s with JSON: the first once `go` is notified, later ones at once.
async fn held_server(
    State(state): State<(Arc<Notify>, Arc<AtomicUsize>)>,
    body: Bytes,
) -> Response {
    let (go, seen) = state;
    let msg: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if seen.fetch_add(1, Ordering::SeqCst) == 0 {
        go.notified().await;
    }
    let answer = json!({"jsonrpc": "2.0", "id": msg["id"], "result": {"content": [
        {"type": "text", "text": "lookup_order done"}], "isError": false}});
    ([("content-type", "application/json")], answer.to_string()).into_response()
}

/// The test spec with one `lookup_order` call in flight at a time.
const ONE_AT_A_TIME: &str = r#"
name: one-at-a-time
version: 1.0.0
capabilities:
  - name: lookup_order
    constraints:
      max_concurrent: 1
"#;

/// A proxy enforcing [`ONE_AT_A_TIME`] in front of `upstream`, logging to `sink`.
fn one_at_a_time(
    upstream: std::net::SocketAddr,
    sink: Arc<MemorySink>,
) -> Arc<McpHttpProxy<PolicyEnforcer>> {
    let spec = pf_spec::parse_str("one.yaml", ONE_AT_A_TIME).expect("spec");
    let policy = Arc::new(pf_policy::compile(&spec).expect("compiles").policy);
    let enforcers = move || {
        PolicyEnforcer::new(
            policy.clone(),
            "sha256:test".into(),
            sink.clone(),
            Arc::new(GuardMetrics::default()),
            Committer::with_salt([1; 32]),
        )
    };
    proxy_to(upstream, enforcers)
}

/// A guard in front of the MCP endpoint of `upstream`, with sessions enforced by `enforcers`.
fn proxy_to(
    upstream: std::net::SocketAddr,
    enforcers: impl Fn() -> PolicyEnforcer + Send + Sync + 'static,
) -> Arc<McpHttpProxy<PolicyEnforcer>> {
    let url = format!("http://{upstream}/mcp");
    let upstream = Upstream::new(&url, Duration::from_secs(5)).expect("url");
    McpHttpProxy::new(upstream, McpHttpConfig::default(), enforcers)
}

/// [`proxy_to`], served on a fresh loopback port; its address.
async fn guard_to(
    upstream: std::net::SocketAddr,
    enforcers: impl Fn() -> PolicyEnforcer + Send + Sync + 'static,
) -> std::net::SocketAddr {
    serve(proxy_to(upstream, enforcers).router()).await
}

fn lookup(id: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": "lookup_order", "arguments": {}}})
}

#[tokio::test]
async fn a_call_whose_client_left_before_a_json_answer_is_finished_without_it() {
    let go = Arc::new(Notify::new());
    let seen = Arc::new(AtomicUsize::new(0));
    let upstream = serve(
        Router::new()
            .fallback(held_server)
            .with_state((go.clone(), seen.clone())),
    )
    .await;
    let sink = Arc::new(MemorySink::default());
    let guard = serve(one_at_a_time(upstream, sink.clone()).router()).await;

    // A client without a session id (all such share one guard session) sends a call and
    // leaves while the server works on it.
    let abandoned = tokio::spawn(async move { post_mcp(guard, &lookup(1)).await });
    while seen.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    abandoned.abort();
    let _ = abandoned.await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The server finishes the call.
    go.notify_one();
    tokio::time::sleep(Duration::from_millis(200)).await;

    // The next call is not refused as a second call in flight.
    let answer = post_mcp(guard, &lookup(2)).await.json();
    assert_eq!(answer["result"]["isError"], json!(false), "{answer}");
    assert_eq!(answer["result"]["content"][0]["text"], "lookup_order done");
    assert_eq!(seen.load(Ordering::SeqCst), 2);
    // The first call's answer was checked and logged although its client had left.
    let outputs = sink.records().iter().filter(|r| r.kind == "output").count();
    assert_eq!(outputs, 2);
}

/// Answers the first `tools/call` with an event stream that ends after a progress notification
/// (no event ids: it cannot be resumed), later ones with JSON.
async fn quitting_server(State(seen): State<Arc<AtomicUsize>>, body: Bytes) -> Response {
    let msg: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if seen.fetch_add(1, Ordering::SeqCst) == 0 {
        let progress = json!({"jsonrpc": "2.0", "method": "notifications/progress",
            "params": {"progressToken": 1, "progress": 1}});
        return (
            [("content-type", "text/event-stream")],
            format!("data: {progress}\n\n"),
        )
            .into_response();
    }
    let answer = json!({"jsonrpc": "2.0", "id": msg["id"], "result": {"content": [
        {"type": "text", "text": "lookup_order done"}], "isError": false}});
    ([("content-type", "application/json")], answer.to_string()).into_response()
}

#[tokio::test]
async fn a_stream_that_ends_unanswered_and_cannot_resume_gives_an_error_and_frees_the_call() {
    let seen = Arc::new(AtomicUsize::new(0));
    let upstream = serve(
        Router::new()
            .fallback(quitting_server)
            .with_state(seen.clone()),
    )
    .await;
    let sink = Arc::new(MemorySink::default());
    let guard = serve(one_at_a_time(upstream, sink).router()).await;

    let r = post_mcp(guard, &lookup(1)).await;
    let events = sse_data(&r.body);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["method"], "notifications/progress");
    assert_eq!(events[1]["id"], json!(1), "the client's own id");
    assert_eq!(events[1]["error"]["code"], json!(-32603));
    // The call no longer counts as in flight.
    let answer = post_mcp(guard, &lookup(2)).await.json();
    assert_eq!(answer["result"]["isError"], json!(false), "{answer}");
}

/// Sets its flag when dropped.
struct Dropped(Arc<std::sync::atomic::AtomicBool>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A server-initiated stream (GET) that never ends: a comment every 20 ms; `gone` is set when
/// the server stops sending it (its connection closed).
async fn endless_stream(State(gone): State<Arc<std::sync::atomic::AtomicBool>>) -> Response {
    let guard = Dropped(gone);
    let events = futures_util::stream::unfold(guard, |guard| async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Some((
            Ok::<_, std::io::Error>(Bytes::from_static(b": keep-alive\n\n")),
            guard,
        ))
    });
    (
        [("content-type", "text/event-stream")],
        Body::from_stream(events),
    )
        .into_response()
}

#[tokio::test]
async fn a_stream_nobody_reads_and_nothing_awaits_is_let_go() {
    let gone = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let upstream = serve(
        Router::new()
            .fallback(endless_stream)
            .with_state(gone.clone()),
    )
    .await;
    let fixture = Fixture::new();
    let guard = guard_to(upstream, fixture.enforcers()).await;
    let req = Request::get(format!("http://{guard}/mcp"))
        .header("accept", "text/event-stream")
        .body(Full::new(Bytes::new()))
        .expect("request");
    // The stream's head, then the client leaves (the keep-alive comments are not relayed: no
    // event reaches it).
    let resp = tokio::time::timeout(Duration::from_secs(10), client().request(req))
        .await
        .expect("in time")
        .expect("answer head");
    assert_eq!(resp.status(), 200);
    drop(resp);
    // The guard stops reading the upstream's stream, which then ends on the server's side.
    let let_go = async {
        while !gone.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), let_go)
        .await
        .expect("the upstream stream is closed once nobody reads it");
}
