//! The MCP proxy in front of an `https` upstream (rustls): a private CA generated here and
//! trusted with `UpstreamTls::ca_file` (`pf guard --upstream-ca`), and the failures that must
//! fail closed with a JSON-RPC error and a 502 (untrusted issuer, wrong host name).

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use common::{Fixture, send, serve};
use pf_guard::mcp_http::{McpHttpConfig, McpHttpProxy};
use pf_guard::upstream::{Upstream, UpstreamTls};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// A CA and a serving certificate it signed.
struct Pki {
    ca_pem: String,
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

fn make_pki(names: &[&str], ca_name: &str) -> Pki {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, ca_name);
    ca.distinguished_name = dn;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().expect("server key");
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut leaf = CertificateParams::new(names).expect("server params");
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = leaf.signed_by(&key, &issuer).expect("server certificate");
    Pki {
        ca_pem: ca_cert.pem(),
        cert: cert.der().clone(),
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    }
}

/// A TLS listener for `axum::serve`; failed handshakes are skipped.
struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

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

/// Serves the MCP endpoint over TLS with `pki`'s certificate; returns its port and the calls
/// it receives.
async fn https_upstream(pki: &Pki) -> (u16, Calls) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![pki.cert.clone()], pki.key.clone_key())
        .expect("server certificate");
    let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = tcp.local_addr().expect("addr").port();
    let listener = TlsListener {
        tcp,
        acceptor: TlsAcceptor::from(Arc::new(config)),
    };
    let calls = Calls::default();
    let router = Router::new().fallback(mcp_server).with_state(calls.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (port, calls)
}

/// A guard proxy in front of `url`, trusting `ca_file` (or the platform roots).
async fn guard(fx: &Fixture, url: &str, ca_file: Option<&Path>) -> SocketAddr {
    let tls = UpstreamTls {
        ca_file: ca_file.map(Path::to_path_buf),
    };
    let upstream = Upstream::with_tls(url, Duration::from_secs(10), &tls).expect("upstream");
    let proxy = McpHttpProxy::new(upstream, McpHttpConfig::default(), fx.enforcers());
    serve(proxy.router()).await
}

fn write_ca(dir: &tempfile::TempDir, pem: &str) -> std::path::PathBuf {
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, pem).expect("write CA file");
    path
}

async fn call(proxy: SocketAddr) -> common::Reply {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "lookup_order", "arguments": {"order_id": "ORD-123456"}}});
    send(
        Method::POST,
        &format!("http://{proxy}/mcp"),
        &[
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
        ],
        body.to_string(),
    )
    .await
}

#[tokio::test]
async fn https_upstream_signed_by_the_given_ca_is_proxied_and_checked() {
    let pki = make_pki(&["localhost", "127.0.0.1"], "pf-guard test CA");
    let (port, calls) = https_upstream(&pki).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = write_ca(&dir, &pki.ca_pem);
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
    let pki = make_pki(&["localhost", "127.0.0.1"], "pf-guard test CA");
    let (port, calls) = https_upstream(&pki).await;
    let fx = Fixture::new();
    let url = format!("https://127.0.0.1:{port}/mcp");
    // A different private CA: the upstream's issuer is unknown.
    let other = make_pki(&["localhost"], "some other CA");
    let dir = tempfile::tempdir().expect("temp dir");
    let other_ca = write_ca(&dir, &other.ca_pem);
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
    let pki = make_pki(&["mcp.example.com"], "pf-guard test CA");
    let (port, calls) = https_upstream(&pki).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = write_ca(&dir, &pki.ca_pem);
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
    };
    let e = Upstream::with_tls("https://127.0.0.1:1/mcp", Duration::from_secs(1), &tls)
        .err()
        .expect("a CA file without certificates is refused");
    assert!(e.to_string().contains("ca.txt"), "{e}");
    // Plain http upstreams never read the CA file.
    assert!(Upstream::with_tls("http://127.0.0.1:1/mcp", Duration::from_secs(1), &tls).is_ok());
}
