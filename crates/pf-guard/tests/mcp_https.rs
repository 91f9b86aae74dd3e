//! The MCP proxy in front of an `https` upstream (rustls): a private CA generated here and
//! trusted with `UpstreamTls::ca_file` (`pf guard --upstream-ca`), an upstream that requires a
//! client certificate (`UpstreamTls::client_cert`/`client_key`, `pf guard
//! --upstream-client-cert/--upstream-client-key`), and the failures that must fail closed with a
//! JSON-RPC error and a 502 (untrusted issuer, wrong host name, no or untrusted client
//! certificate).

mod common;
mod pki;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use common::{Fixture, post_mcp, serve};
use pf_guard::mcp_http::{McpHttpConfig, McpHttpProxy};
use pf_guard::upstream::{Upstream, UpstreamTls};
use pki::{Ca, Leaf, TlsListener, server_config};
use serde_json::{Value, json};

type Calls = Arc<Mutex<Vec<Value>>>;

/// A stateless MCP endpoint: answers `tools/call` with a text holding a card number.
async fn mcp_server(State(calls): State<Calls>, method: Method, body: Bytes) -> impl IntoResponse {
    if method != Method::POST {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let Ok(msg) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    calls.lock().expect("calls").push(msg.clone());
    let result = match msg["method"].as_str() {
        Some("tools/call") => json!({"content": [{"type": "text",
            "text": "order ORD-123456 paid with card 4111 1111 1111 1111"}], "isError": false}),
        Some("tools/list") => {
            json!({"tools": [{"name": "lookup_order", "inputSchema": {"type": "object"}}]})
        }
        _ => json!({}),
    };
    let answer = json!({"jsonrpc": "2.0", "id": msg["id"], "result": result});
    ([("content-type", "application/json")], answer.to_string()).into_response()
}

/// A CA and a serving certificate it signed for `names`.
fn make_pki(names: &[&str], ca_name: &str) -> (Ca, Leaf) {
    let ca = Ca::new(ca_name);
    let leaf = ca.server(names);
    (ca, leaf)
}

/// An MCP endpoint served over TLS with `config`.
struct TlsUpstream {
    port: u16,
    calls: Calls,
    failed_handshakes: Arc<std::sync::atomic::AtomicUsize>,
}

async fn serve_tls(config: Arc<rustls::ServerConfig>) -> TlsUpstream {
    let listener = TlsListener::bind(config).await;
    let port = listener.tcp.local_addr().expect("addr").port();
    let failed_handshakes = listener.failed_handshakes.clone();
    let calls = Calls::default();
    let router = Router::new().fallback(mcp_server).with_state(calls.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    TlsUpstream {
        port,
        calls,
        failed_handshakes,
    }
}

/// Serves the MCP endpoint over TLS with `leaf`'s certificate; returns its port and the calls
/// it receives.
async fn https_upstream(leaf: &Leaf) -> (u16, Calls) {
    let up = serve_tls(server_config(leaf, None)).await;
    (up.port, up.calls)
}

/// A guard proxy in front of `url` with `tls`.
async fn guard_with(fx: &Fixture, url: &str, tls: &UpstreamTls) -> SocketAddr {
    let upstream = Upstream::with_tls(url, Duration::from_secs(10), tls).expect("upstream");
    let proxy = McpHttpProxy::new(upstream, McpHttpConfig::default(), fx.enforcers());
    serve(proxy.router()).await
}

/// A guard proxy in front of `url`, trusting `ca_file` (or the platform roots).
async fn guard(fx: &Fixture, url: &str, ca_file: Option<&Path>) -> SocketAddr {
    let tls = UpstreamTls {
        ca_file: ca_file.map(Path::to_path_buf),
        ..UpstreamTls::default()
    };
    guard_with(fx, url, &tls).await
}

fn write_ca(dir: &tempfile::TempDir, pem: &str) -> std::path::PathBuf {
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, pem).expect("write CA file");
    path
}

async fn call(proxy: SocketAddr) -> common::Reply {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "lookup_order", "arguments": {"order_id": "ORD-123456"}}});
    post_mcp(proxy, &body).await
}

#[tokio::test]
async fn https_upstream_signed_by_the_given_ca_is_proxied_and_checked() {
    let (pki, leaf) = make_pki(&["localhost", "127.0.0.1"], "pf-guard test CA");
    let (port, calls) = https_upstream(&leaf).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = write_ca(&dir, &pki.pem);
    let fx = Fixture::new();
    for host in ["localhost", "127.0.0.1"] {
        let proxy = guard(&fx, &format!("https://{host}:{port}/mcp"), Some(&ca)).await;
        let reply = call(proxy).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let v = reply.json();
        assert_eq!(v["id"], 7);
        let text = v["result"]["content"][0]["text"].as_str().expect("text");
        assert!(text.starts_with("order ORD-123456"), "{text}");
        assert!(
            !text.contains("4111 1111"),
            "the card number is redacted: {text}"
        );
    }
    let seen = calls.lock().expect("calls");
    assert_eq!(seen.len(), 2, "both calls reached the upstream over TLS");
    assert_eq!(seen[0]["params"]["name"], "lookup_order");
}

/// What a refused TLS upstream looks like to the client: a 502 with a JSON-RPC error for the
/// request, naming the certificate problem; the upstream never sees the call.
fn assert_fails_closed(reply: &common::Reply, calls: &Calls, why: &str) {
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{}", reply.text());
    let v = reply.json();
    assert_eq!(v["jsonrpc"], "2.0");
    assert_eq!(v["id"], 7);
    assert!(v.get("result").is_none());
    let msg = v["error"]["message"].as_str().expect("error message");
    assert!(msg.contains("MCP upstream unavailable"), "{msg}");
    assert!(msg.contains(why), "`{why}` not in: {msg}");
    assert!(calls.lock().expect("calls").is_empty());
}

#[tokio::test]
async fn untrusted_certificate_fails_closed_with_a_json_rpc_error() {
    let (_, leaf) = make_pki(&["localhost", "127.0.0.1"], "pf-guard test CA");
    let (port, calls) = https_upstream(&leaf).await;
    let fx = Fixture::new();
    let url = format!("https://127.0.0.1:{port}/mcp");
    // A different private CA: the upstream's issuer is unknown.
    let other = Ca::new("some other CA");
    let dir = tempfile::tempdir().expect("temp dir");
    let other_ca = write_ca(&dir, &other.pem);
    let proxy = guard(&fx, &url, Some(&other_ca)).await;
    let reply = call(proxy).await;
    assert_fails_closed(&reply, &calls, "certificate");
    assert!(reply.text().contains("UnknownIssuer"), "{}", reply.text());
    // The platform roots do not know the test CA either.
    let proxy = guard(&fx, &url, None).await;
    let reply = call(proxy).await;
    assert_fails_closed(&reply, &calls, "certificate");
    // The guard stays up: a later call still gets a protocol-correct answer.
    let reply = call(proxy).await;
    assert_fails_closed(&reply, &calls, "certificate");
}

#[tokio::test]
async fn certificate_for_another_host_fails_closed() {
    let (pki, leaf) = make_pki(&["mcp.example.com"], "pf-guard test CA");
    let (port, calls) = https_upstream(&leaf).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = write_ca(&dir, &pki.pem);
    let fx = Fixture::new();
    let proxy = guard(&fx, &format!("https://127.0.0.1:{port}/mcp"), Some(&ca)).await;
    let reply = call(proxy).await;
    assert_fails_closed(&reply, &calls, "certificate");
    assert!(
        reply.text().contains("not valid for name"),
        "{}",
        reply.text()
    );
}

#[test]
fn unusable_ca_files_are_refused_up_front() {
    let dir = tempfile::tempdir().expect("temp dir");
    let not_pem = dir.path().join("ca.txt");
    std::fs::write(&not_pem, "not a certificate\n").expect("write");
    let tls = UpstreamTls {
        ca_file: Some(not_pem.clone()),
        ..UpstreamTls::default()
    };
    let e = Upstream::with_tls("https://127.0.0.1:1/mcp", Duration::from_secs(1), &tls)
        .expect_err("a CA file without certificates is refused");
    assert!(e.to_string().contains("ca.txt"), "{e}");
    // Plain http upstreams never read the CA file.
    assert!(Upstream::with_tls("http://127.0.0.1:1/mcp", Duration::from_secs(1), &tls).is_ok());
}

/// An upstream that requires a client certificate from `client_ca`, its server certificate
/// from `server_ca`; and the guard's settings trusting `server_ca`.
struct MtlsSetup {
    dir: tempfile::TempDir,
    up: TlsUpstream,
    url: String,
    server_ca_file: std::path::PathBuf,
}

async fn mtls_upstream(server_ca: &Ca, client_ca: &Ca) -> MtlsSetup {
    let leaf = server_ca.server(&["127.0.0.1"]);
    let up = serve_tls(server_config(&leaf, Some(client_ca))).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let server_ca_file = server_ca.write(dir.path(), "server-ca.pem");
    let url = format!("https://127.0.0.1:{}/mcp", up.port);
    MtlsSetup {
        dir,
        up,
        url,
        server_ca_file,
    }
}

impl MtlsSetup {
    /// The guard's settings presenting `client` (written to this setup's directory).
    fn tls(&self, client: Option<&Leaf>) -> UpstreamTls {
        let (client_cert, client_key) = match client {
            Some(leaf) => {
                let (c, k) = leaf.write(self.dir.path(), "guard-client");
                (Some(c), Some(k))
            }
            None => (None, None),
        };
        UpstreamTls {
            ca_file: Some(self.server_ca_file.clone()),
            client_cert,
            client_key,
            ..UpstreamTls::default()
        }
    }
}

#[tokio::test]
async fn upstream_requiring_a_client_certificate_accepts_the_guards() {
    let (server_ca, client_ca) = (Ca::new("server CA"), Ca::new("client CA"));
    let setup = mtls_upstream(&server_ca, &client_ca).await;
    let fx = Fixture::new();
    let tls = setup.tls(Some(&client_ca.client("pf-guard")));
    let proxy = guard_with(&fx, &setup.url, &tls).await;
    let reply = call(proxy).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let v = reply.json();
    assert_eq!(v["id"], 7);
    let text = v["result"]["content"][0]["text"].as_str().expect("text");
    assert!(
        text.starts_with("order ORD-123456") && !text.contains("4111 1111"),
        "relayed and checked: {text}"
    );
    assert_eq!(setup.up.calls.lock().expect("calls").len(), 1);
    assert_eq!(
        setup
            .up
            .failed_handshakes
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}

#[tokio::test]
async fn upstream_requiring_a_client_certificate_refuses_a_guard_without_one() {
    let (server_ca, client_ca) = (Ca::new("server CA"), Ca::new("client CA"));
    let setup = mtls_upstream(&server_ca, &client_ca).await;
    let fx = Fixture::new();
    let proxy = guard_with(&fx, &setup.url, &setup.tls(None)).await;
    let reply = call(proxy).await;
    assert_fails_closed(&reply, &setup.up.calls, "CertificateRequired");
    assert!(
        pki::wait_for(&setup.up.failed_handshakes, 1).await >= 1,
        "the upstream refused the handshake"
    );
    // The guard stays up and keeps failing closed.
    let reply = call(proxy).await;
    assert_fails_closed(&reply, &setup.up.calls, "CertificateRequired");
}

#[tokio::test]
async fn upstream_refuses_a_client_certificate_from_a_ca_it_does_not_trust() {
    let (server_ca, client_ca) = (Ca::new("server CA"), Ca::new("client CA"));
    let setup = mtls_upstream(&server_ca, &client_ca).await;
    let fx = Fixture::new();
    let stranger = Ca::new("a CA the upstream does not know").client("pf-guard");
    let proxy = guard_with(&fx, &setup.url, &setup.tls(Some(&stranger))).await;
    let reply = call(proxy).await;
    assert_fails_closed(&reply, &setup.up.calls, "received fatal alert: UnknownCA");
}

#[test]
fn a_bad_client_key_is_refused_up_front_naming_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = Ca::new("client CA");
    let (cert, key) = ca.client("pf-guard").write(dir.path(), "guard");
    let (_, other_key) = ca.client("someone else").write(dir.path(), "other");
    let build = |client_key: &Path| {
        let tls = UpstreamTls {
            ca_file: Some(ca.write(dir.path(), "ca.pem")),
            client_cert: Some(cert.clone()),
            client_key: Some(client_key.to_path_buf()),
            ..UpstreamTls::default()
        };
        Upstream::with_tls("https://127.0.0.1:1/mcp", Duration::from_secs(1), &tls)
            .err()
            .map(|e| e.to_string())
    };
    assert_eq!(build(&key), None, "the certificate's own key is accepted");
    let e = build(&other_key).expect("another certificate's key is refused");
    assert!(
        e.contains("other.key") && e.contains("guard.crt") && e.contains("KeyMismatch"),
        "{e}"
    );
    let e = build(&cert).expect("a certificate is not a key");
    assert!(e.contains("guard.crt: no private key"), "{e}");
    let e = build(&dir.path().join("absent.key")).expect("a missing key file is refused");
    assert!(e.contains("absent.key"), "{e}");
}
