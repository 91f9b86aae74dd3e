//! TLS files rotated on disk while the guard runs: the upstream client's certificate and key
//! and its CA file are re-read when they change (checked at most once a second, before a
//! request), without a restart. A certificate from a CA the upstream does not trust stops the
//! calls; rotating back restores them; an unusable rotation keeps the previous material and is
//! counted in `pf_guard_tls_reload_failures_total`. (That the open connections are retired too
//! is tests/pool_renewal.rs; this upstream closes every connection after its answer.)

mod common;
mod pki;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use common::{Fixture, post_mcp, serve};
use pf_guard::mcp_http::{McpHttpConfig, McpHttpProxy};
use pf_guard::metrics::ReasonLabels;
use pf_guard::tls_reload::CHECK_INTERVAL;
use pf_guard::upstream::{Upstream, UpstreamTls};
use pki::{Ca, Leaf, TlsListener, server_config};
use serde_json::{Value, json};

/// A stateless MCP endpoint that closes every connection after its answer, so every call
/// makes a new TLS connection (and a new handshake) to it.
async fn mcp_server(State(calls): State<Arc<AtomicUsize>>, body: Bytes) -> impl IntoResponse {
    let Ok(msg) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    calls.fetch_add(1, Ordering::SeqCst);
    let answer = json!({"jsonrpc": "2.0", "id": msg["id"], "result":
        {"content": [{"type": "text", "text": "order ORD-123456 shipped"}], "isError": false}});
    (
        [
            ("content-type", "application/json"),
            ("connection", "close"),
        ],
        answer.to_string(),
    )
        .into_response()
}

/// An upstream presenting `leaf` that requires a client certificate from `client_ca`.
async fn mtls_upstream(leaf: &Leaf, client_ca: &Ca) -> (u16, Arc<AtomicUsize>) {
    let listener = TlsListener::bind(server_config(leaf, Some(client_ca))).await;
    let port = listener.tcp.local_addr().expect("addr").port();
    let calls = Arc::new(AtomicUsize::new(0));
    let router = Router::new()
        .fallback(axum::routing::post(mcp_server))
        .with_state(calls.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (port, calls)
}

async fn call(proxy: SocketAddr) -> common::Reply {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "lookup_order", "arguments": {"order_id": "ORD-123456"}}});
    post_mcp(proxy, &body).await
}

/// Replaces `path` with `text` the way rotating tools do: written beside it, then renamed over
/// it (a reader never sees half a file).
fn rotate(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

/// Waits past the check interval, so the next handshake looks at the files again.
async fn next_check() {
    tokio::time::sleep(CHECK_INTERVAL + Duration::from_millis(200)).await;
}

fn reload_failures(fx: &Fixture, reason: &str) -> u64 {
    fx.metrics
        .tls_reload_failures
        .get_or_create(&ReasonLabels {
            reason: reason.into(),
        })
        .get()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_client_certificates_and_ca_files_apply_to_new_connections_without_a_restart() {
    let (server_ca, client_ca, rogue_ca) = (
        Ca::new("upstream CA"),
        Ca::new("guards CA"),
        Ca::new("rogue CA"),
    );
    let (port, calls) = mtls_upstream(&server_ca.server(&["127.0.0.1"]), &client_ca).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let ca_file = server_ca.write(dir.path(), "ca.pem");
    let (cert, key) = client_ca.client("guard").write(dir.path(), "guard");
    let fx = Fixture::new();
    let tls = UpstreamTls {
        ca_file: Some(ca_file.clone()),
        client_cert: Some(cert.clone()),
        client_key: Some(key.clone()),
        reload_failures: Some(fx.metrics.tls_reload_failures.clone()),
    };
    let upstream = Upstream::with_tls(
        &format!("https://127.0.0.1:{port}/mcp"),
        Duration::from_secs(10),
        &tls,
    )
    .expect("upstream");
    let proxy =
        serve(McpHttpProxy::new(upstream, McpHttpConfig::default(), fx.enforcers()).router()).await;
    let ok = |reply: &common::Reply| {
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert_eq!(reply.json()["result"]["isError"], json!(false));
    };
    let refused = |reply: &common::Reply, why: &str| {
        assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{}", reply.text());
        assert!(
            reply.text().contains(why),
            "`{why}` not in {}",
            reply.text()
        );
    };
    ok(&call(proxy).await);

    // A certificate from a CA the upstream does not trust: new connections are refused.
    let rogue = rogue_ca.client("guard");
    rotate(&key, &rogue.key_pem);
    rotate(&cert, &rogue.cert_pem);
    next_check().await;
    refused(&call(proxy).await, "received fatal alert");
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // Back to a certificate of the trusted CA (a new one): calls go through again.
    let fresh = client_ca.client("guard");
    rotate(&key, &fresh.key_pem);
    rotate(&cert, &fresh.cert_pem);
    next_check().await;
    ok(&call(proxy).await);
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    // An unusable rotation (the key of another certificate) keeps the previous pair.
    rotate(&key, &rogue.key_pem);
    next_check().await;
    ok(&call(proxy).await);
    assert_eq!(reload_failures(&fx, "client_identity"), 1);
    // Its matching certificate completes the rotation, to the untrusted CA again.
    rotate(&cert, &rogue.cert_pem);
    next_check().await;
    refused(&call(proxy).await, "received fatal alert");
    rotate(&key, &fresh.key_pem);
    rotate(&cert, &fresh.cert_pem);
    next_check().await;
    ok(&call(proxy).await);

    // The CA file: another CA, and the upstream is no longer trusted; back, and it is.
    // A CA file without a certificate is unusable: the old roots stay.
    rotate(&ca_file, "not a certificate\n");
    next_check().await;
    ok(&call(proxy).await);
    assert_eq!(reload_failures(&fx, "ca"), 1);
    rotate(&ca_file, &Ca::new("another CA").pem);
    next_check().await;
    refused(&call(proxy).await, "UnknownIssuer");
    rotate(&ca_file, &server_ca.pem);
    next_check().await;
    ok(&call(proxy).await);
    assert_eq!(reload_failures(&fx, "client_identity"), 1);
}
