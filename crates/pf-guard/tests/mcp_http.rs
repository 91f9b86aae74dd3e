//! Streamable HTTP MCP proxy against a small spec-conformant MCP server (MCP 2025-06-18
//! transports §2: sessions via `Mcp-Session-Id`, JSON or SSE answers, GET stream, DELETE).

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use common::{Fixture, Reply, dead_addr, send, serve, sse_data};
use pf_guard::mcp_http::{McpHttpConfig, McpHttpProxy};
use pf_guard::upstream::Upstream;
use serde_json::{Value, json};

const PROTOCOL: &str = "2025-06-18";

/// What the test server saw and how it answers.
#[derive(Default)]
struct ServerState {
    sse: bool,
    sessions: HashSet<String>,
    next: u64,
    calls: Vec<Value>,
    versions: Vec<Option<String>>,
    session_ids: Vec<Option<String>>,
}

type Shared = Arc<Mutex<ServerState>>;

fn tools() -> Value {
    json!({"tools": [
        {"name": "lookup_order", "inputSchema": {"type": "object"}},
        {"name": "search_kb", "inputSchema": {"type": "object"}},
        {"name": "send_email", "inputSchema": {"type": "object"}},
        {"name": "delete_everything", "inputSchema": {"type": "object"}},
    ]})
}

fn call_result(name: &str, args: &Value) -> Value {
    let text = match name {
        "lookup_order" => "order ORD-123456 paid with card 4111 1111 1111 1111".to_string(),
        // Long enough to be labelled after the answer is sent.
        "search_kb" if args["query"] == "all articles" => {
            let mut t = "Article: how to reset a password. Steps follow.\n".repeat(60);
            t.push_str("For refunds write to mallory@example.com");
            t
        }
        "search_kb" => "For refunds write to mallory@example.com".to_string(),
        other => format!("{other} done"),
    };
    json!({"content": [{"type": "text", "text": text}], "isError": false})
}

async fn mcp_server(
    State(state): State<Shared>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let session = header("mcp-session-id");
    let mut st = state.lock().expect("state");
    if method == Method::DELETE {
        return match session.filter(|s| st.sessions.remove(s)) {
            Some(_) => StatusCode::OK.into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        };
    }
    if method == Method::GET {
        if !st.sse {
            return StatusCode::METHOD_NOT_ALLOWED.into_response();
        }
        // A server-initiated stream: a notification, then the stream ends.
        let note = json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"});
        return (
            [("content-type", "text/event-stream")],
            format!("id: g1\ndata: {note}\n\n"),
        )
            .into_response();
    }
    let msg: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => return StatusCode::BAD_REQUEST.into_response(),
    };
    let accept = header("accept").unwrap_or_default();
    if !(accept.contains("application/json") && accept.contains("text/event-stream")) {
        return StatusCode::NOT_ACCEPTABLE.into_response();
    }
    let method_name = msg
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if method_name == "initialize" {
        st.next += 1;
        let id = format!("sess-{}", st.next);
        st.sessions.insert(id.clone());
        let result = json!({"jsonrpc": "2.0", "id": msg["id"], "result": {
            "protocolVersion": PROTOCOL, "capabilities": {"tools": {}},
            "serverInfo": {"name": "test-server", "version": "1"}}});
        return (
            [
                ("content-type", "application/json"),
                ("mcp-session-id", id.as_str()),
            ],
            result.to_string(),
        )
            .into_response();
    }
    match &session {
        Some(s) if st.sessions.contains(s) => {}
        Some(_) => return StatusCode::NOT_FOUND.into_response(),
        None => return StatusCode::BAD_REQUEST.into_response(),
    }
    st.versions.push(header("mcp-protocol-version"));
    st.session_ids.push(session);
    if let Value::Array(batch) = &msg {
        // 2025-03-26 batches: answer every request in one JSON array.
        let answers: Vec<Value> = batch.iter().filter_map(|m| answer(&mut st, m)).collect();
        return (
            [("content-type", "application/json")],
            Value::Array(answers).to_string(),
        )
            .into_response();
    }
    let Some(answer) = answer(&mut st, &msg) else {
        return StatusCode::ACCEPTED.into_response(); // a notification
    };
    if st.sse {
        // A priming event, a progress notification, then the answer split over two chunks.
        let progress = json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": 1, "progress": 1}});
        let wire = format!(
            "id: e0\ndata:\n\n: keep-alive\nid: e1\ndata: {progress}\n\nid: e2\ndata: {answer}\n\n"
        );
        let (a, b) = wire.split_at(wire.len() / 2);
        let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(Bytes::from(a.to_string())),
            Ok(Bytes::from(b.to_string())),
        ];
        return (
            [("content-type", "text/event-stream")],
            Body::from_stream(futures_util::stream::iter(chunks)),
        )
            .into_response();
    }
    ([("content-type", "application/json")], answer.to_string()).into_response()
}

/// The answer to one message (`None` for a notification).
fn answer(st: &mut ServerState, msg: &Value) -> Option<Value> {
    let id = msg.get("id").cloned()?;
    let result = match msg.get("method").and_then(Value::as_str).unwrap_or("") {
        "tools/list" => tools(),
        "tools/call" => {
            st.calls.push(msg["params"].clone());
            call_result(
                msg["params"]["name"].as_str().unwrap_or(""),
                &msg["params"]["arguments"],
            )
        }
        _ => {
            return Some(
                json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "no such method"}}),
            );
        }
    };
    Some(json!({"jsonrpc": "2.0", "id": id, "result": result}))
}

struct Harness {
    url: String,
    server: Shared,
    proxy: Arc<McpHttpProxy<pf_guard::PolicyEnforcer>>,
    fixture: Fixture,
}

async fn harness(sse: bool) -> Harness {
    harness_with(sse, McpHttpConfig::default()).await
}

async fn harness_with(sse: bool, config: McpHttpConfig) -> Harness {
    let server: Shared = Arc::new(Mutex::new(ServerState {
        sse,
        ..ServerState::default()
    }));
    let upstream_addr = serve(
        Router::new()
            .fallback(mcp_server)
            .with_state(server.clone()),
    )
    .await;
    harness_to(&format!("http://{upstream_addr}/mcp"), server, config).await
}

async fn harness_to(upstream: &str, server: Shared, config: McpHttpConfig) -> Harness {
    let fixture = Fixture::new();
    let upstream = Upstream::new(upstream, Duration::from_secs(5)).expect("upstream url");
    let proxy = McpHttpProxy::new(upstream, config, fixture.enforcers());
    let addr = serve(proxy.clone().router()).await;
    Harness {
        url: format!("http://{addr}/mcp"),
        server,
        proxy,
        fixture,
    }
}

const ACCEPT: (&str, &str) = ("accept", "application/json, text/event-stream");
const CT: (&str, &str) = ("content-type", "application/json");

impl Harness {
    async fn initialize(&self) -> String {
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
        let r = send(Method::POST, &self.url, &[ACCEPT, CT], init.to_string()).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let session = r
            .header("mcp-session-id")
            .expect("session id passed through")
            .to_string();
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let r = self.post(&session, note).await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
        session
    }

    async fn post(&self, session: &str, msg: Value) -> Reply {
        let headers = [
            ACCEPT,
            CT,
            ("mcp-session-id", session),
            ("mcp-protocol-version", PROTOCOL),
        ];
        send(Method::POST, &self.url, &headers, msg.to_string()).await
    }

    /// Posts a request and returns its answer, from a JSON body or an event stream.
    async fn request(&self, session: &str, msg: Value) -> Value {
        let r = self.post(session, msg.clone()).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        if r.header("content-type")
            .is_some_and(|c| c.starts_with("text/event-stream"))
        {
            let events = sse_data(&r.body);
            events
                .into_iter()
                .find(|e| e.get("id") == msg.get("id"))
                .expect("answer in stream")
        } else {
            r.json()
        }
    }

    fn calls(&self) -> Vec<Value> {
        self.server.lock().expect("state").calls.clone()
    }
}

fn call(id: u64, name: &str, args: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": args}})
}

fn tool_names(list: &Value) -> Vec<String> {
    list["result"]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn tools_list_hides_tools_the_spec_does_not_allow() {
    for sse in [false, true] {
        let h = harness(sse).await;
        let s = h.initialize().await;
        let list = h
            .request(
                &s,
                json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
            )
            .await;
        assert_eq!(
            tool_names(&list),
            ["lookup_order", "search_kb", "send_email"],
            "sse={sse}"
        );
    }
}

#[tokio::test]
async fn allowed_call_reaches_the_server_and_its_result_is_redacted() {
    for sse in [false, true] {
        let h = harness(sse).await;
        let s = h.initialize().await;
        let answer = h
            .request(
                &s,
                call(2, "lookup_order", json!({"order_id": "ORD-123456"})),
            )
            .await;
        assert_eq!(h.calls().len(), 1, "sse={sse}");
        let text = answer["result"]["content"][0]["text"]
            .as_str()
            .expect("text");
        assert!(
            text.starts_with("order ORD-123456 paid with card "),
            "{text}"
        );
        assert!(
            !text.contains("4111 1111 1111 1111"),
            "card number must be redacted: {text}"
        );
        assert_eq!(answer["result"]["isError"], json!(false));
    }
}

#[tokio::test]
async fn denied_call_is_answered_locally_with_is_error() {
    let h = harness(false).await;
    let s = h.initialize().await;
    let answer = h
        .request(&s, call(3, "send_email", json!({"to": "eve@evil.test"})))
        .await;
    assert_eq!(answer["id"], json!(3));
    assert_eq!(answer["result"]["isError"], json!(true));
    let reasons = &answer["result"]["_meta"]["provability-fabric/reasons"];
    assert!(
        reasons
            .as_array()
            .is_some_and(|r| r.contains(&json!("domain_not_allowed"))),
        "{answer}"
    );
    assert!(
        h.calls().is_empty(),
        "a denied call must not reach the server"
    );
    let effects: Vec<_> = h.fixture.sink.records().iter().map(|r| r.effect).collect();
    assert!(effects.contains(&"deny"), "the deny is logged");
}

#[tokio::test]
async fn tool_output_labels_follow_values_into_later_calls() {
    let h = harness(true).await;
    let s = h.initialize().await;
    h.request(&s, call(4, "search_kb", json!({"query": "refunds"})))
        .await;
    let answer = h
        .request(
            &s,
            call(5, "send_email", json!({"to": "mallory@example.com"})),
        )
        .await;
    assert_eq!(answer["result"]["isError"], json!(true), "{answer}");
    assert_eq!(h.calls().len(), 1, "only search_kb reached the server");
}

#[tokio::test]
async fn labels_of_a_large_output_reach_the_next_call_over_json_and_sse() {
    for sse in [false, true] {
        let h = harness(sse).await;
        let s = h.initialize().await;
        let r = h
            .request(&s, call(4, "search_kb", json!({"query": "all articles"})))
            .await;
        let text = r["result"]["content"][0]["text"].as_str().unwrap_or("");
        assert!(
            text.len() >= pf_guard::policy_enforcer::DEFER_LABELLING_BYTES,
            "{r}"
        );
        let answer = h
            .request(
                &s,
                call(5, "send_email", json!({"to": "mallory@example.com"})),
            )
            .await;
        assert_eq!(
            answer["result"]["isError"],
            json!(true),
            "sse {sse}: {answer}"
        );
        assert_eq!(
            h.calls().len(),
            1,
            "sse {sse}: only search_kb reached the server"
        );
    }
}

#[tokio::test]
async fn sse_answers_keep_event_ids_and_notifications() {
    let h = harness(true).await;
    let s = h.initialize().await;
    let r = h
        .post(
            &s,
            json!({"jsonrpc": "2.0", "id": 6, "method": "tools/list"}),
        )
        .await;
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let text = r.text();
    for id in ["id: e0", "id: e1", "id: e2"] {
        assert!(text.contains(id), "{id} kept: {text}");
    }
    let events = sse_data(&r.body);
    assert_eq!(events[0]["method"], json!("notifications/progress"));
    assert_eq!(tool_names(&events[1]).len(), 3);
}

#[tokio::test]
async fn session_and_protocol_headers_pass_through_and_delete_ends_the_session() {
    let h = harness(true).await;
    let s = h.initialize().await;
    assert_eq!(h.proxy.session_count(), 1);
    h.request(
        &s,
        json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list"}),
    )
    .await;
    {
        let st = h.server.lock().expect("state");
        assert!(
            st.session_ids
                .iter()
                .all(|x| x.as_deref() == Some(s.as_str()))
        );
        assert!(st.versions.iter().all(|v| v.as_deref() == Some(PROTOCOL)));
    }
    let get = send(
        Method::GET,
        &h.url,
        &[("accept", "text/event-stream"), ("mcp-session-id", &s)],
        "",
    )
    .await;
    assert_eq!(get.status, StatusCode::OK);
    assert_eq!(
        sse_data(&get.body)[0]["method"],
        json!("notifications/tools/list_changed")
    );
    let del = send(Method::DELETE, &h.url, &[("mcp-session-id", &s)], "").await;
    assert_eq!(del.status, StatusCode::OK);
    assert_eq!(h.proxy.session_count(), 0);
    let after = h
        .post(
            &s,
            json!({"jsonrpc": "2.0", "id": 8, "method": "tools/list"}),
        )
        .await;
    assert_eq!(
        after.status,
        StatusCode::NOT_FOUND,
        "an ended session is unknown"
    );
}

#[tokio::test]
async fn a_full_guard_makes_room_by_dropping_a_long_idle_session_only() {
    let config = McpHttpConfig {
        max_sessions: 2,
        max_session_idle: Duration::from_millis(300),
        ..McpHttpConfig::default()
    };
    let h = harness_with(false, config).await;
    let list = |id: u64| json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"});
    let a = h.initialize().await;
    let b = h.initialize().await;
    // Full, and nobody idle long enough: a third session is refused.
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let refused = send(Method::POST, &h.url, &[ACCEPT, CT], init.to_string()).await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        refused.text().contains("none idle for"),
        "{}",
        refused.text()
    );
    // A goes quiet (its client left without DELETE); B stays in use.
    tokio::time::sleep(Duration::from_millis(400)).await;
    h.request(&b, list(1)).await;
    let c = h.initialize().await;
    assert_eq!(h.proxy.session_count(), 2);
    // A made room: the guard no longer knows it (404 tells its client to start again); B and C
    // go on.
    assert_eq!(h.post(&a, list(2)).await.status, StatusCode::NOT_FOUND);
    assert_eq!(tool_names(&h.request(&b, list(3)).await).len(), 3);
    assert_eq!(tool_names(&h.request(&c, list(4)).await).len(), 3);
}

#[tokio::test]
async fn malformed_bodies_get_http_400_with_json_rpc_errors() {
    let h = harness(false).await;
    let s = h.initialize().await;
    let headers = [ACCEPT, CT, ("mcp-session-id", s.as_str())];
    let cases: [(&[u8], i64); 4] = [
        (b"{not json", -32700),
        (b"\xff\xfe", -32700),
        (br#"{"jsonrpc":"1.0","id":1,"method":"x"}"#, -32600),
        (b"[]", -32600),
    ];
    for (body, code) in cases {
        let r = send(Method::POST, &h.url, &headers, Bytes::from_static(body)).await;
        assert_eq!(
            r.status,
            StatusCode::BAD_REQUEST,
            "{}",
            String::from_utf8_lossy(body)
        );
        assert_eq!(r.json()["error"]["code"], json!(code));
    }
    let bad_args = h.request(&s, json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "lookup_order", "arguments": 3}})).await;
    assert_eq!(bad_args["error"]["code"], json!(-32602));
    let big = vec![b' '; pf_guard::jsonrpc::MAX_MESSAGE_BYTES + 1];
    let r = send(Method::POST, &h.url, &headers, big).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    let r = send(
        Method::POST,
        &h.url,
        &[ACCEPT, CT, ("mcp-session-id", "nope")],
        "{}",
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn batches_mix_local_denials_with_server_answers() {
    let h = harness(false).await;
    let s = h.initialize().await;
    let batch = json!([
        call(10, "send_email", json!({"to": "eve@evil.test"})),
        call(11, "lookup_order", json!({"order_id": "ORD-000001"})),
    ]);
    let r = h.post(&s, batch).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let answers = r.json();
    let answers = answers.as_array().expect("batch answer");
    assert_eq!(answers.len(), 2);
    let by_id = |id: u64| {
        answers
            .iter()
            .find(|a| a["id"] == json!(id))
            .expect("answered")
    };
    assert_eq!(by_id(10)["result"]["isError"], json!(true));
    assert_eq!(by_id(11)["result"]["isError"], json!(false));
    assert_eq!(h.calls().len(), 1);
}

#[tokio::test]
async fn upstream_down_gives_502_with_the_request_id() {
    let dead = dead_addr().await;
    let h = harness_to(
        &format!("http://{dead}/mcp"),
        Arc::default(),
        McpHttpConfig::default(),
    )
    .await;
    let r = send(
        Method::POST,
        &h.url,
        &[ACCEPT, CT],
        call(12, "lookup_order", json!({"order_id": "ORD-000001"})).to_string(),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    let body = r.json();
    assert_eq!(body["id"], json!(12));
    assert_eq!(body["error"]["code"], json!(-32603));
}

#[tokio::test]
async fn foreign_origins_and_unsupported_methods_are_refused() {
    let h = harness(false).await;
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string();
    let r = send(
        Method::POST,
        &h.url,
        &[ACCEPT, CT, ("origin", "http://evil.test")],
        list.clone(),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = send(
        Method::POST,
        &h.url,
        &[ACCEPT, CT, ("origin", "http://localhost:5173")],
        list,
    )
    .await;
    assert_ne!(
        r.status,
        StatusCode::FORBIDDEN,
        "loopback origins are allowed"
    );
    let r = send(Method::PUT, &h.url, &[], "").await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    let s = h.initialize().await;
    let get = send(
        Method::GET,
        &h.url,
        &[("accept", "text/event-stream"), ("mcp-session-id", &s)],
        "",
    )
    .await;
    assert_eq!(
        get.status,
        StatusCode::METHOD_NOT_ALLOWED,
        "a server without a GET stream says so"
    );
}

#[tokio::test]
async fn a_cancellation_the_guard_cannot_place_is_accepted_and_kept_from_the_server() {
    let h = harness(false).await;
    let s = h.initialize().await;
    let posts = || h.server.lock().expect("state").versions.len();
    let before = posts();
    // No request of this session awaits an answer under id 99: forwarded under the client's id
    // it could cancel another client's request.
    let cancel =
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 99}});
    let r = h.post(&s, cancel).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    assert!(r.body.is_empty());
    assert_eq!(posts(), before, "the server was not sent it");
}
