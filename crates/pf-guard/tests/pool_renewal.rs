//! No upstream connection outlives a TLS rotation or the maximum connection age: when the
//! client certificate or the CA file is replaced on disk, the guard's next requests (within the
//! one-second check interval) go over new connections made with the new material, even while
//! an HTTP/2 connection made with the old one is open and busy; that connection finishes the
//! response it is streaming and is then closed. A certificate the upstream does not trust, or
//! a CA file that does not trust the upstream, makes the next requests fail (HTTP 502) at once
//! rather than when the old connection happens to close. A keep-alive HTTP/1.1 connection is
//! retired the same way once its pool is older than the maximum age.

mod common;
mod pki;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, Method, Request, Response, StatusCode};
use bytes::Bytes;
use common::{Fixture, Reply, post_mcp, serve};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use pf_guard::mcp_http::{McpHttpConfig, McpHttpProxy};
use pf_guard::metrics::ReasonLabels;
use pf_guard::tls_reload::CHECK_INTERVAL;
use pf_guard::upstream::{Upstream, UpstreamOptions, UpstreamTls};
use pki::{Ca, Leaf, server_config, wait_for};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use rustls::pki_types::CertificateDer;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_rustls::TlsAcceptor;

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// What the upstream saw of its connections.
#[derive(Default)]
struct Conns {
    /// Connections accepted (TLS handshake done); the n-th one is connection n.
    opened: AtomicUsize,
    /// Connections that have ended.
    closed: AtomicUsize,
    /// TLS handshakes the upstream refused.
    refused: AtomicUsize,
    /// Per request: its connection and the client certificate that connection presented.
    requests: Mutex<Vec<(usize, Option<CertificateDer<'static>>)>>,
    /// Lets the streamed answer of `/slow` finish.
    release: Notify,
}

impl Conns {
    fn last(&self) -> (usize, Option<CertificateDer<'static>>) {
        self.requests
            .lock()
            .expect("requests")
            .last()
            .cloned()
            .expect("a request arrived")
    }

    fn count(&self) -> usize {
        self.requests.lock().expect("requests").len()
    }
}

/// `…/slow` streams `first`, then `last` once released; anything else gets an MCP tool result.
async fn handle(
    req: Request<Incoming>,
    conn: usize,
    client: Option<CertificateDer<'static>>,
    conns: Arc<Conns>,
) -> Result<Response<Body>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    conns
        .requests
        .lock()
        .expect("requests")
        .push((conn, client));
    if parts.uri.path().ends_with("/slow") {
        let frames = futures_util::stream::unfold(0, move |step| {
            let conns = conns.clone();
            async move {
                match step {
                    0 => Some((Ok(Frame::data(Bytes::from("first\n"))), 1)),
                    1 => {
                        conns.release.notified().await;
                        Some((Ok(Frame::data(Bytes::from("last\n"))), 2))
                    }
                    _ => None,
                }
            }
        });
        return Ok(Response::new(StreamBody::new(frames).boxed_unsync()));
    }
    let id = serde_json::from_slice::<Value>(&body).map_or(Value::Null, |m| m["id"].clone());
    let answer = json!({"jsonrpc": "2.0", "id": id, "result":
        {"content": [{"type": "text", "text": "order ORD-123456 shipped"}], "isError": false}});
    Ok(Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(answer.to_string())).boxed_unsync())
        .expect("response"))
}

/// Serves one connection, HTTP/2 only or HTTP/1.1 only, counting its end.
async fn serve_connection<I>(
    io: I,
    h2: bool,
    client: Option<CertificateDer<'static>>,
    conns: Arc<Conns>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let id = conns.opened.fetch_add(1, Ordering::SeqCst) + 1;
    let state = conns.clone();
    let service = service_fn(move |req| handle(req, id, client.clone(), state.clone()));
    let io = TokioIo::new(io);
    if h2 {
        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(io, service)
            .await;
    } else {
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(io, service)
            .await;
    }
    conns.closed.fetch_add(1, Ordering::SeqCst);
}

/// An upstream on a loopback port: HTTP/2 only over TLS with `tls` (ALPN `h2` only), or plain
/// HTTP/1.1 without.
async fn upstream(tls: Option<rustls::ServerConfig>) -> (u16, Arc<Conns>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let conns = Arc::new(Conns::default());
    let acceptor = tls.map(|mut c| {
        c.alpn_protocols = vec![b"h2".to_vec()];
        TlsAcceptor::from(Arc::new(c))
    });
    let state = conns.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let (acceptor, conns) = (acceptor.clone(), state.clone());
            tokio::spawn(async move {
                let Some(acceptor) = acceptor else {
                    return serve_connection(tcp, false, None, conns).await;
                };
                match acceptor.accept(tcp).await {
                    Ok(tls) => {
                        let client = tls
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|c| c.first())
                            .map(|c| c.clone().into_owned());
                        serve_connection(tls, true, client, conns).await;
                    }
                    Err(_) => {
                        conns.refused.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
    });
    (port, conns)
}

/// Unwraps `Arc<ServerConfig>` from the shared test PKI helper.
fn owned(config: Arc<rustls::ServerConfig>) -> rustls::ServerConfig {
    Arc::unwrap_or_clone(config)
}

async fn call(proxy: SocketAddr) -> Reply {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "lookup_order", "arguments": {"order_id": "ORD-123456"}}});
    post_mcp(proxy, &body).await
}

/// Calls through `proxy` every 50 ms until `done` holds for a reply (at most 5 s: two check
/// intervals and handshakes); the reply.
async fn call_until(proxy: SocketAddr, done: impl Fn(&Reply) -> bool) -> Reply {
    let deadline = tokio::time::Instant::now() + 5 * CHECK_INTERVAL;
    loop {
        let reply = call(proxy).await;
        if done(&reply) || tokio::time::Instant::now() >= deadline {
            return reply;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ok(reply: &Reply) -> bool {
    reply.status == StatusCode::OK && reply.json()["result"]["isError"] == json!(false)
}

/// Replaces `path` with `text`: written beside it, then renamed over it.
fn rotate(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

fn rotate_identity(cert: &Path, key: &Path, to: &Leaf) {
    rotate(key, &to.key_pem);
    rotate(cert, &to.cert_pem);
}

fn counted(family: &Family<ReasonLabels, Counter>, reason: &str) -> u64 {
    family
        .get_or_create(&ReasonLabels {
            reason: reason.into(),
        })
        .get()
}

/// The guard's MCP proxy in front of `url`, sharing its connection pool with the upstream
/// handle returned (for requests sent directly).
async fn guard(fx: &Fixture, url: &str, tls: &UpstreamTls) -> (SocketAddr, Upstream) {
    let options = UpstreamOptions {
        renewals: Some(fx.metrics.upstream_pool_renewals.clone()),
        ..UpstreamOptions::default()
    };
    let up =
        Upstream::with_settings(url, Duration::from_secs(10), tls, &options).expect("upstream");
    let proxy =
        serve(McpHttpProxy::new(up.clone(), McpHttpConfig::default(), fx.enforcers()).router())
            .await;
    (proxy, up)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_client_certificate_retires_a_busy_http2_connection() {
    let (server_ca, client_ca, rogue_ca) = (
        Ca::new("upstream CA"),
        Ca::new("guards CA"),
        Ca::new("rogue CA"),
    );
    let server = server_config(&server_ca.server(&["127.0.0.1"]), Some(&client_ca));
    let (port, conns) = upstream(Some(owned(server))).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let first = client_ca.client("guard");
    let (cert, key) = first.write(dir.path(), "guard");
    let fx = Fixture::new();
    let tls = UpstreamTls {
        ca_file: Some(server_ca.write(dir.path(), "ca.pem")),
        client_cert: Some(cert.clone()),
        client_key: Some(key.clone()),
        reload_failures: Some(fx.metrics.tls_reload_failures.clone()),
    };
    let (proxy, up) = guard(&fx, &format!("https://127.0.0.1:{port}/mcp"), &tls).await;
    assert!(ok(&call(proxy).await));
    assert_eq!(conns.last(), (1, Some(first.cert.clone())));

    // Connection 1 is busy: an answer is still streaming on it.
    let slow = up
        .send(
            Method::GET,
            up.with_path("/slow").expect("path"),
            HeaderMap::new(),
            Bytes::new(),
        )
        .await
        .expect("slow answer");
    let mut slow = slow.into_body();
    let head = slow.frame().await.expect("a frame").expect("data");
    assert_eq!(head.into_data().expect("data"), "first\n");

    // Another certificate of the trusted CA: calls move to a new connection presenting it...
    let second = client_ca.client("guard");
    rotate_identity(&cert, &key, &second);
    let reply = call_until(proxy, |r| ok(r) && conns.last().0 != 1).await;
    assert!(ok(&reply), "{}", reply.text());
    assert_eq!(conns.last(), (2, Some(second.cert.clone())));
    // ...while the old one still carries the streamed answer to its end, and then closes.
    assert_eq!(conns.closed.load(Ordering::SeqCst), 0);
    conns.release.notify_one();
    let rest = slow.collect().await.expect("the rest").to_bytes();
    assert_eq!(rest, "last\n");
    assert_eq!(wait_for(&conns.closed, 1).await, 1, "connection 1 closed");
    assert!(ok(&call(proxy).await));
    assert_eq!(conns.last().0, 2, "the new connection is reused");

    // A certificate from a CA the upstream does not trust: the next calls fail closed, though
    // connection 2 was open and working; it is closed.
    rotate_identity(&cert, &key, &rogue_ca.client("guard"));
    let reply = call_until(proxy, |r| r.status != StatusCode::OK).await;
    // TLS 1.3: the refusal comes after the client's side of the handshake, as an alert or, when
    // the request is written first, a broken pipe; the upstream counts the refused handshake.
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{}", reply.text());
    assert_eq!(
        reply.json()["error"]["code"],
        json!(-32603),
        "{}",
        reply.text()
    );
    let delivered = conns.count();
    let again = call(proxy).await;
    assert_eq!(again.status, StatusCode::BAD_GATEWAY, "{}", again.text());
    assert_eq!(
        conns.count(),
        delivered,
        "nothing more reached the upstream"
    );
    assert_eq!(wait_for(&conns.closed, 2).await, 2, "connection 2 closed");
    assert!(wait_for(&conns.refused, 1).await >= 1);

    // Back to a trusted certificate: calls go through on a third connection.
    let third = client_ca.client("guard");
    rotate_identity(&cert, &key, &third);
    let reply = call_until(proxy, ok).await;
    assert!(ok(&reply), "{}", reply.text());
    assert_eq!(conns.last(), (3, Some(third.cert.clone())));
    let renewals = &fx.metrics.upstream_pool_renewals;
    assert_eq!(counted(renewals, "tls_rotation"), 3);
    assert_eq!(counted(renewals, "max_age"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_distrusted_ca_file_closes_the_open_connection_and_fails_closed() {
    let server_ca = Ca::new("upstream CA");
    let (port, conns) = upstream(Some(owned(server_config(
        &server_ca.server(&["127.0.0.1"]),
        None,
    ))))
    .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let ca_file = server_ca.write(dir.path(), "ca.pem");
    let fx = Fixture::new();
    let tls = UpstreamTls {
        ca_file: Some(ca_file.clone()),
        reload_failures: Some(fx.metrics.tls_reload_failures.clone()),
        ..UpstreamTls::default()
    };
    let (proxy, _) = guard(&fx, &format!("https://127.0.0.1:{port}/mcp"), &tls).await;
    assert!(ok(&call(proxy).await));
    let renewals = &fx.metrics.upstream_pool_renewals;

    // An unusable CA file changes nothing: the roots and the connection stay.
    rotate(&ca_file, "not a certificate\n");
    tokio::time::sleep(CHECK_INTERVAL + Duration::from_millis(200)).await;
    assert!(ok(&call(proxy).await));
    assert_eq!(counted(&fx.metrics.tls_reload_failures, "ca"), 1);
    assert_eq!(counted(renewals, "tls_rotation"), 0);
    assert_eq!(conns.last().0, 1);
    assert_eq!(conns.closed.load(Ordering::SeqCst), 0);

    // A CA file without the upstream's CA: the open connection is not used any more; the next
    // calls fail closed, and the connection is closed.
    rotate(&ca_file, &Ca::new("another CA").pem);
    let reply = call_until(proxy, |r| r.status != StatusCode::OK).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{}", reply.text());
    assert!(reply.text().contains("UnknownIssuer"), "{}", reply.text());
    assert_eq!(wait_for(&conns.closed, 1).await, 1, "connection 1 closed");

    // The upstream's CA again: a new connection.
    rotate(&ca_file, &server_ca.pem);
    let reply = call_until(proxy, ok).await;
    assert!(ok(&reply), "{}", reply.text());
    assert_eq!(conns.last().0, 2);
    assert_eq!(counted(renewals, "tls_rotation"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keep_alive_connection_is_retired_at_the_maximum_age() {
    let (port, conns) = upstream(None).await;
    let fx = Fixture::new();
    let options = UpstreamOptions {
        max_conn_age: Duration::from_secs(1),
        renewals: Some(fx.metrics.upstream_pool_renewals.clone()),
        ..UpstreamOptions::default()
    };
    let up = Upstream::with_settings(
        &format!("http://127.0.0.1:{port}/mcp"),
        Duration::from_secs(10),
        &UpstreamTls::default(),
        &options,
    )
    .expect("upstream");
    // A busy keep-alive connection: a request every 50 ms, until a second connection is made.
    let deadline = tokio::time::Instant::now() + 5 * CHECK_INTERVAL;
    while conns.opened.load(Ordering::SeqCst) < 2 && tokio::time::Instant::now() < deadline {
        let resp = up
            .send(
                Method::POST,
                up.base().clone(),
                HeaderMap::new(),
                Bytes::from_static(b"{}"),
            )
            .await
            .expect("answer");
        assert_eq!(resp.status(), StatusCode::OK);
        up.read_body(resp.into_body(), 1 << 16).await.expect("body");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(conns.opened.load(Ordering::SeqCst), 2);
    assert!(conns.count() > 10, "{} requests", conns.count());
    assert_eq!(
        wait_for(&conns.closed, 1).await,
        1,
        "the first connection closed"
    );
    let renewals = &fx.metrics.upstream_pool_renewals;
    assert_eq!(counted(renewals, "max_age"), 1);
    assert_eq!(counted(renewals, "tls_rotation"), 0);
}
