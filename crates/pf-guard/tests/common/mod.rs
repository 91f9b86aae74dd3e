//! Shared fixtures of the HTTP integration tests: a test spec, enforcers on it, a loopback
//! server helper and a small HTTP client.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderMap, Method, Request, StatusCode, Version};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use pf_guard::PolicyEnforcer;
use pf_guard::log::{Committer, MemorySink};
use pf_guard::metrics::GuardMetrics;

/// The spec every test enforces: lookup_order (redacts card numbers in its output),
/// search_kb (untrusted output), send_email (domain allow-list, untrusted recipients denied
/// unless the user wrote them), text_generation (redacts card numbers).
pub const SPEC: &str = r#"
name: http-test-agent
version: 1.0.0
capabilities:
  - name: text_generation
    constraints:
      max_length: 2000
      content_filter: { detectors: [card_number], action: redact }
  - name: lookup_order
    output_labels: [pii]
    constraints:
      arguments:
        type: object
        properties:
          order_id: { type: string, pattern: "^ORD-[0-9]{6}$" }
        required: [order_id]
        additionalProperties: false
      content_filter: { detectors: [card_number], action: redact }
  - name: search_kb
    output_labels: [untrusted]
    constraints:
      args:
        query: { max_length: 200 }
  - name: send_email
    constraints:
      args:
        to: { domains: [example.com], max_length: 254 }
policies:
  - name: no-untrusted-recipients
    type: information_flow
    deny_labels: [untrusted]
    sinks: [send_email.to]
    unless: [user_request]
"#;

/// A compiled policy and the sink its enforcers log to.
pub struct Fixture {
    pub policy: Arc<pf_policy::Policy>,
    pub sink: Arc<MemorySink>,
    pub metrics: Arc<GuardMetrics>,
}

impl Fixture {
    pub fn new() -> Self {
        let spec = pf_spec::parse_str("http-test-agent.yaml", SPEC).expect("test spec parses");
        let compiled = pf_policy::compile(&spec).expect("test spec compiles");
        Fixture {
            policy: Arc::new(compiled.policy),
            sink: Arc::new(MemorySink::default()),
            metrics: Arc::new(GuardMetrics::default()),
        }
    }

    /// A factory of enforcers (one per guard session).
    pub fn enforcers(&self) -> impl Fn() -> PolicyEnforcer + Send + Sync + 'static {
        let (policy, sink, metrics) =
            (self.policy.clone(), self.sink.clone(), self.metrics.clone());
        move || {
            PolicyEnforcer::new(
                policy.clone(),
                "sha256:test".into(),
                sink.clone(),
                metrics.clone(),
                Committer::with_salt([1; 32]),
            )
        }
    }
}

/// Serves `router` on a fresh loopback port.
pub async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    addr
}

/// A loopback port nothing listens on.
pub async fn dead_addr() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    listener.local_addr().expect("addr")
}

/// A response as the tests look at it.
pub struct Reply {
    pub version: Version,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A plain HTTP/1.1 client.
pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

/// A plain HTTP/2 client with prior knowledge (h2c, RFC 9113 §3.3): every connection starts
/// with the HTTP/2 preface.
pub fn h2c_client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(HttpConnector::new())
}

/// Sends one request and reads the whole answer.
pub async fn send(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Reply {
    send_with(&client(), method, url, headers, body).await
}

/// As [`send`], through `client`.
pub async fn send_with(
    client: &Client<HttpConnector, Full<Bytes>>,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Reply {
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(body.into())).expect("request");
    let resp = tokio::time::timeout(std::time::Duration::from_secs(20), client.request(req))
        .await
        .expect("answer in time")
        .expect("HTTP exchange");
    let (parts, body) = resp.into_parts();
    let body = tokio::time::timeout(std::time::Duration::from_secs(20), body.collect())
        .await
        .expect("body in time")
        .expect("body")
        .to_bytes();
    Reply {
        version: parts.version,
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// POSTs a JSON-RPC message to the MCP endpoint `http://{proxy}/mcp`, as a Streamable HTTP
/// client does (it accepts JSON or an event stream).
pub async fn post_mcp(proxy: SocketAddr, message: &serde_json::Value) -> Reply {
    send(
        Method::POST,
        &format!("http://{proxy}/mcp"),
        &[
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
        ],
        message.to_string(),
    )
    .await
}

/// The `data:` payloads of an event-stream body, parsed as JSON (`[DONE]` as a string).
pub fn sse_data(body: &[u8]) -> Vec<serde_json::Value> {
    let mut parser = pf_guard::sse::Parser::default();
    let mut events = Vec::new();
    parser.feed(body, &mut events).expect("valid event stream");
    events
        .into_iter()
        .filter(|e| !e.data.is_empty())
        .map(|e| serde_json::from_str(&e.data).unwrap_or(serde_json::Value::String(e.data)))
        .collect()
}

/// The text of an MCP tool result's first content block ("" when there is none).
pub fn result_text(answer: &serde_json::Value) -> &str {
    answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
}

/// The test spec's `lookup_order` answer came through, allowed, with its card number redacted.
pub fn assert_lookup_allowed_and_redacted(answer: &serde_json::Value) {
    assert_eq!(
        answer["result"]["isError"],
        serde_json::json!(false),
        "{answer}"
    );
    assert!(
        result_text(answer).starts_with("lookup_order done"),
        "{answer}"
    );
    assert!(
        !result_text(answer).contains("4111 1111"),
        "redacted: {answer}"
    );
}

/// A call was refused with an MCP error result naming `domain_not_allowed`.
pub fn assert_denied_for_domain(answer: &serde_json::Value) {
    assert_eq!(
        answer["result"]["isError"],
        serde_json::json!(true),
        "{answer}"
    );
    assert!(
        answer["result"]["_meta"]["provability-fabric/reasons"]
            .as_array()
            .is_some_and(|r| r.contains(&serde_json::json!("domain_not_allowed"))),
        "{answer}"
    );
}
