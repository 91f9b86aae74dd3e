//! The proxies in front of HTTP/2 upstreams: a hyper HTTP/2 server behind rustls that offers
//! only `h2` in ALPN (an h2-only server), and one speaking h2c with prior knowledge
//! (`UpstreamHttp::H2c`, `pf guard --upstream-h2c`). Allowed and denied MCP `tools/call`s, an
//! MCP answer streamed as server-sent events, and OpenAI chat completions (JSON and streamed)
//! pass through the guard's checks exactly as over HTTP/1.1; the upstream sees HTTP/2 requests
//! with `:authority` and no `Host` or connection-specific header. An https server that offers
//! only `http/1.1` still gets HTTP/1.1 with a `Host` header.

mod common;
mod pki;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, Method, Request, Response, StatusCode, Version};
use bytes::Bytes;
use common::{
    Fixture, assert_denied_for_domain, assert_lookup_allowed_and_redacted, post_mcp, result_text,
    send, serve, sse_data,
};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use pf_guard::mcp_http::{McpHttpConfig, McpHttpProxy};
use pf_guard::openai::{OpenAiConfig, OpenAiProxy};
use pf_guard::upstream::{Upstream, UpstreamError, UpstreamHttp, UpstreamOptions, UpstreamTls};
use pki::{Ca, server_config};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// What the upstream saw of one request.
#[derive(Clone, Debug)]
struct Seen {
    version: Version,
    /// The request target's authority (`:authority` in HTTP/2).
    authority: Option<String>,
    path: String,
    headers: HeaderMap,
    body: Value,
}

type Log = Arc<Mutex<Vec<Seen>>>;

type Body = UnsyncBoxBody<Bytes, Infallible>;

fn full(content_type: &str, body: String) -> Response<Body> {
    Response::builder()
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)).boxed_unsync())
        .expect("response")
}

/// An event stream sent as `pieces`, 20 ms apart (separate DATA frames in HTTP/2).
fn streamed(pieces: Vec<String>) -> Response<Body> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    tokio::spawn(async move {
        for p in pieces {
            if tx.send(Bytes::from(p)).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let frames = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(StreamBody::new(frames).boxed_unsync())
        .expect("response")
}

/// The MCP endpoint (`/mcp`): `tools/call` answers with a card number, as JSON, or for order
/// `ORD-999999` as an event stream (a progress notification, then the answer split over two
/// frames).
fn mcp(msg: &Value) -> Response<Body> {
    let result = match msg["method"].as_str() {
        Some("tools/call") => json!({"content": [{"type": "text",
            "text": format!("{} done: card 4111 1111 1111 1111", msg["params"]["name"].as_str().unwrap_or(""))}],
            "isError": false}),
        Some("tools/list") => json!({"tools": [
            {"name": "lookup_order", "inputSchema": {"type": "object"}},
            {"name": "send_email", "inputSchema": {"type": "object"}}]}),
        _ => json!({}),
    };
    let answer = json!({"jsonrpc": "2.0", "id": msg["id"], "result": result});
    if msg["params"]["arguments"]["order_id"] == json!("ORD-999999") {
        let progress = json!({"jsonrpc": "2.0", "method": "notifications/progress",
            "params": {"progressToken": 1, "progress": 1}});
        let wire = format!("id: e1\ndata: {progress}\n\nid: e2\ndata: {answer}\n\n");
        let (a, b) = wire.split_at(wire.len() - 30);
        return streamed(vec![a.to_string(), b.to_string()]);
    }
    full("application/json", answer.to_string())
}

fn chunk(delta: Value, finish: Value) -> Value {
    json!({"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 1_700_000_000,
        "model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
}

/// The model (`/v1/chat/completions`): the last user message names the tool call it makes
/// (`lookup` or `mail eve`); `stream: true` answers in chunks.
fn chat(request: &Value) -> Response<Body> {
    let said = request["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default();
    let (name, args) = if said.contains("mail eve") {
        ("send_email", r#"{"to":"eve@evil.test"}"#)
    } else {
        ("lookup_order", r#"{"order_id":"ORD-123456"}"#)
    };
    let call =
        json!({"id": "c1", "type": "function", "function": {"name": name, "arguments": args}});
    if request["stream"] == json!(true) {
        let mut call = call;
        call["index"] = json!(0);
        let events = [
            chunk(
                json!({"role": "assistant", "content": "On it."}),
                Value::Null,
            ),
            chunk(json!({"tool_calls": [call]}), Value::Null),
            chunk(json!({}), json!("tool_calls")),
        ];
        let mut pieces: Vec<String> = events.iter().map(|e| format!("data: {e}\n\n")).collect();
        pieces.push("data: [DONE]\n\n".into());
        return streamed(pieces);
    }
    let answer = json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1_700_000_000,
        "model": "m", "choices": [{"index": 0, "finish_reason": "tool_calls",
        "message": {"role": "assistant", "content": null, "tool_calls": [call]}}]});
    full("application/json", answer.to_string())
}

/// Records the request and answers it as the MCP server or the model.
async fn handle(req: Request<Incoming>, log: Log) -> Result<Response<Body>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return Ok(full("text/plain", "not JSON".into()));
    };
    let seen = Seen {
        version: parts.version,
        authority: parts.uri.authority().map(|a| a.to_string()),
        path: parts.uri.path().to_string(),
        headers: parts.headers,
        body: body.clone(),
    };
    let path = seen.path.clone();
    log.lock().expect("log").push(seen);
    if parts.method != Method::POST {
        let mut r = full("text/plain", String::new());
        *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        return Ok(r);
    }
    Ok(match path.as_str() {
        "/v1/chat/completions" => chat(&body),
        _ => mcp(&body),
    })
}

/// How the test upstream frames HTTP on its connections.
#[derive(Clone, Copy)]
enum Serve {
    /// HTTP/2 only (after TLS with ALPN `h2`, or h2c with prior knowledge).
    H2,
    /// HTTP/1.1 only.
    H1,
}

/// An upstream on a loopback port: TLS with `tls` (its ALPN list decides what a client may
/// negotiate) or plain TCP, framing HTTP as `serve` says.
async fn upstream(tls: Option<rustls::ServerConfig>, serve: Serve) -> (u16, Log) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let log = Log::default();
    let acceptor = tls.map(|c| TlsAcceptor::from(Arc::new(c)));
    let seen = log.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let (acceptor, log) = (acceptor.clone(), seen.clone());
            tokio::spawn(async move {
                match acceptor {
                    Some(acceptor) => {
                        let Ok(tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        serve_connection(TokioIo::new(tls), log, serve).await;
                    }
                    None => serve_connection(TokioIo::new(tcp), log, serve).await,
                }
            });
        }
    });
    (port, log)
}

/// Serves one connection's requests with [`handle`].
async fn serve_connection<I>(io: I, log: Log, serve: Serve)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = service_fn(move |req| handle(req, log.clone()));
    let _ = match serve {
        Serve::H2 => {
            hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(io, service)
                .await
        }
        Serve::H1 => {
            hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await
        }
    };
}

/// An https upstream on 127.0.0.1 offering `alpn` only and serving as `serve` says, and the
/// guard's client to `path` on it, trusting its CA.
struct HttpsUpstream {
    port: u16,
    log: Log,
    client: Upstream,
    /// Holds the CA file (the client looks at it again while it runs).
    _dir: tempfile::TempDir,
}

async fn https_upstream(alpn: &[&[u8]], serve: Serve, path: &str) -> HttpsUpstream {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = Ca::new("h2 test CA");
    let mut config = (*server_config(&ca.server(&["127.0.0.1"]), None)).clone();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tls = UpstreamTls {
        ca_file: Some(ca.write(dir.path(), "ca.pem")),
        ..UpstreamTls::default()
    };
    let (port, log) = upstream(Some(config), serve).await;
    let client = Upstream::with_tls(
        &format!("https://127.0.0.1:{port}{path}"),
        Duration::from_secs(10),
        &tls,
    )
    .expect("upstream");
    HttpsUpstream {
        port,
        log,
        client,
        _dir: dir,
    }
}

async fn mcp_proxy(fx: &Fixture, upstream: Upstream) -> SocketAddr {
    let proxy = McpHttpProxy::new(upstream, McpHttpConfig::default(), fx.enforcers());
    serve(proxy.router()).await
}

async fn openai_proxy(fx: &Fixture, upstream: Upstream) -> SocketAddr {
    let proxy = OpenAiProxy::new(upstream, OpenAiConfig::default(), fx.enforcers());
    serve(proxy.router()).await
}

/// Sends a `tools/call` to the MCP proxy; returns the JSON-RPC answer (from JSON or from the
/// event stream) and the reply.
async fn tools_call(proxy: SocketAddr, id: u64, name: &str, args: Value) -> (Value, common::Reply) {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": name, "arguments": args}});
    let reply = post_mcp(proxy, &body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let answer = if reply
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/event-stream"))
    {
        sse_data(&reply.body)
            .into_iter()
            .find(|e| e.get("id").is_some())
            .expect("the answer is in the stream")
    } else {
        reply.json()
    };
    assert_eq!(answer["id"], json!(id), "{answer}");
    (answer, reply)
}

/// Every request the upstream saw came over HTTP/2, addressed by `:authority`, with no `Host`
/// or connection-specific header.
fn assert_h2(log: &Log, port: u16) {
    let seen = log.lock().expect("log");
    assert!(!seen.is_empty());
    for s in seen.iter() {
        assert_eq!(s.version, Version::HTTP_2, "{s:?}");
        assert_eq!(s.authority.as_deref(), Some(&*format!("127.0.0.1:{port}")));
        for name in [
            "host",
            "connection",
            "keep-alive",
            "transfer-encoding",
            "upgrade",
        ] {
            assert!(s.headers.get(name).is_none(), "{name} sent over h2: {s:?}");
        }
    }
}

/// An allowed call reaches the upstream and its answer is redacted (JSON and event stream); a
/// denied call is answered by the guard and never reaches the upstream.
async fn mcp_calls_through(proxy: SocketAddr, log: &Log) {
    let (answer, _) = tools_call(proxy, 1, "lookup_order", json!({"order_id": "ORD-123456"})).await;
    assert_lookup_allowed_and_redacted(&answer);

    let (answer, _) = tools_call(proxy, 2, "send_email", json!({"to": "eve@evil.test"})).await;
    assert_denied_for_domain(&answer);
    assert!(
        log.lock()
            .expect("log")
            .iter()
            .all(|s| s.body["params"]["name"] != "send_email"),
        "a denied call must not reach the upstream"
    );
}

#[tokio::test]
async fn mcp_proxy_speaks_http2_to_an_h2_only_https_upstream() {
    let HttpsUpstream {
        port,
        log,
        client: up,
        _dir,
    } = https_upstream(&[b"h2"], Serve::H2, "/mcp").await;
    let fx = Fixture::new();
    let proxy = mcp_proxy(&fx, up).await;
    mcp_calls_through(proxy, &log).await;

    // An answer streamed as server-sent events over HTTP/2 DATA frames.
    let args = json!({"order_id": "ORD-999999"});
    let (answer, reply) = tools_call(proxy, 3, "lookup_order", args).await;
    assert_eq!(reply.header("content-type"), Some("text/event-stream"));
    let events = sse_data(&reply.body);
    assert_eq!(
        events[0]["method"],
        json!("notifications/progress"),
        "{events:?}"
    );
    assert!(
        result_text(&answer).starts_with("lookup_order done"),
        "{answer}"
    );
    assert!(
        !result_text(&answer).contains("4111 1111"),
        "redacted: {answer}"
    );
    assert!(reply.text().contains("id: e2"), "event ids kept");

    assert_eq!(log.lock().expect("log").len(), 2, "two allowed calls");
    assert_h2(&log, port);
    assert_eq!(log.lock().expect("log")[0].path, "/mcp");
}

#[tokio::test]
async fn openai_proxy_speaks_http2_to_an_h2_only_https_upstream() {
    let HttpsUpstream {
        port,
        log,
        client: up,
        _dir,
    } = https_upstream(&[b"h2"], Serve::H2, "").await;
    let fx = Fixture::new();
    let proxy = openai_proxy(&fx, up).await;
    let url = format!("http://{proxy}/v1/chat/completions");
    let chat = |session: &'static str, said: &'static str, stream: bool| {
        let url = url.clone();
        async move {
            let body = json!({"model": "m", "stream": stream,
                "messages": [{"role": "user", "content": said}]});
            let headers = [
                ("content-type", "application/json"),
                ("authorization", "Bearer sk-test"),
                ("x-pf-session", session),
            ];
            send(Method::POST, &url, &headers, body.to_string()).await
        }
    };

    // Allowed: the tool call passes unchanged.
    let r = chat("s1", "lookup ORD-123456", false).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let calls = &r.json()["choices"][0]["message"]["tool_calls"];
    assert_eq!(
        calls[0]["function"]["name"],
        json!("lookup_order"),
        "{}",
        r.text()
    );

    // Denied: the call is removed and explained.
    let r = chat("s2", "mail eve", false).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let message = &r.json()["choices"][0]["message"];
    assert!(message.get("tool_calls").is_none(), "{message}");
    let explained = message["content"].as_str().unwrap_or_default();
    assert!(
        explained.contains("`send_email` was blocked") && explained.contains("domain_not_allowed"),
        "{explained}"
    );

    // Streamed: chunks arrive over HTTP/2 and are re-emitted after the check.
    let r = chat("s3", "lookup ORD-123456", true).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let out = sse_data(&r.body);
    assert_eq!(out.last(), Some(&json!("[DONE]")));
    let names: Vec<&Value> = out
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].as_array())
        .flatten()
        .map(|c| &c["function"]["name"])
        .collect();
    assert_eq!(names, [&json!("lookup_order")], "{out:?}");

    assert_eq!(log.lock().expect("log").len(), 3);
    assert_h2(&log, port);
    let seen = log.lock().expect("log");
    assert_eq!(seen[0].path, "/v1/chat/completions");
    assert_eq!(
        seen[0]
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer sk-test")
    );
}

#[tokio::test]
async fn an_https_upstream_offering_only_http1_gets_http1_with_a_host_header() {
    let HttpsUpstream {
        port,
        log,
        client: up,
        _dir,
    } = https_upstream(&[b"http/1.1"], Serve::H1, "/mcp").await;
    let fx = Fixture::new();
    let proxy = mcp_proxy(&fx, up).await;
    mcp_calls_through(proxy, &log).await;
    let seen = log.lock().expect("log");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].version, Version::HTTP_11);
    assert_eq!(
        seen[0].headers.get("host").and_then(|v| v.to_str().ok()),
        Some(&*format!("127.0.0.1:{port}"))
    );
}

#[tokio::test]
async fn h2c_upstream_needs_prior_knowledge() {
    let (port, log) = upstream(None, Serve::H2).await;
    let url = format!("http://127.0.0.1:{port}/mcp");
    let fx = Fixture::new();

    // With prior knowledge the calls go through over HTTP/2.
    let up = Upstream::with_settings(
        &url,
        Duration::from_secs(10),
        &UpstreamTls::default(),
        &UpstreamOptions {
            http: UpstreamHttp::H2c,
            ..UpstreamOptions::default()
        },
    )
    .expect("upstream");
    let proxy = mcp_proxy(&fx, up).await;
    mcp_calls_through(proxy, &log).await;
    assert_eq!(log.lock().expect("log").len(), 1);
    assert_h2(&log, port);

    // Without it the guard speaks HTTP/1.1, which an h2c-only server cannot read: the call
    // fails closed with a JSON-RPC error and a 502.
    let up = Upstream::new(&url, Duration::from_secs(10)).expect("upstream");
    let proxy = mcp_proxy(&fx, up).await;
    let body = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
        "params": {"name": "lookup_order", "arguments": {"order_id": "ORD-123456"}}});
    let reply = post_mcp(proxy, &body).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{}", reply.text());
    assert_eq!(reply.json()["id"], json!(9));
    assert_eq!(log.lock().expect("log").len(), 1, "nothing new was read");
}

#[test]
fn h2c_is_refused_for_an_https_upstream() {
    let e = Upstream::with_settings(
        "https://127.0.0.1:9/mcp",
        Duration::from_secs(1),
        &UpstreamTls::default(),
        &UpstreamOptions {
            http: UpstreamHttp::H2c,
            ..UpstreamOptions::default()
        },
    )
    .expect_err("h2c over TLS is refused");
    assert!(matches!(e, UpstreamError::H2cOverTls { .. }), "{e:?}");
    assert!(e.to_string().contains("https://127.0.0.1:9/mcp"), "{e}");
}
