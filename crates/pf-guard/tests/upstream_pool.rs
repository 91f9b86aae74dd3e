//! The upstream connection pool: keep-alive connections are reused, a connection the upstream
//! closes is replaced, concurrent requests each get a connection, and bodies stream through.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::IntoResponse;
use axum::serve::ListenerExt;
use bytes::Bytes;
use pf_guard::upstream::Upstream;

/// Serves `router` on loopback, counting accepted connections.
async fn serve_counting(router: Router) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let listener = listener.tap_io(move |_| {
        count.fetch_add(1, Ordering::SeqCst);
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (format!("http://{addr}/mcp"), accepted)
}

async fn echo(method: Method, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (StatusCode::OK, format!("{method} {host} {}", body.len()))
}

async fn post(up: &Upstream, body: &'static str) -> (StatusCode, String, HeaderMap) {
    let resp = up
        .send(
            Method::POST,
            up.base().clone(),
            HeaderMap::new(),
            Bytes::from_static(body.as_bytes()),
        )
        .await
        .expect("answer");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = up.read_body(resp.into_body(), 1 << 20).await.expect("body");
    (status, String::from_utf8_lossy(&body).into_owned(), headers)
}

#[tokio::test]
async fn sequential_requests_share_one_keep_alive_connection() {
    let (url, accepted) = serve_counting(Router::new().fallback(echo)).await;
    let up = Upstream::new(&url, Duration::from_secs(10)).expect("url");
    let port = url.trim_start_matches("http://127.0.0.1:");
    let port = port.trim_end_matches("/mcp");
    for _ in 0..20 {
        let (status, text, _) = post(&up, "hello").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(text, format!("POST 127.0.0.1:{port} 5"));
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn connections_the_upstream_closes_are_replaced() {
    let router = Router::new().fallback(|| async { ([("connection", "close")], "bye") });
    let (url, accepted) = serve_counting(router).await;
    let up = Upstream::new(&url, Duration::from_secs(10)).expect("url");
    for _ in 0..5 {
        let (status, text, headers) = post(&up, "x").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(text, "bye");
        assert_eq!(headers["connection"], "close");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn concurrent_requests_each_get_a_connection() {
    // The handler waits until all four requests are in, so they must be on four connections.
    let barrier = Arc::new(tokio::sync::Barrier::new(4));
    let seen = Arc::new(AtomicUsize::new(0));
    let router = Router::new().fallback(move || {
        let (barrier, seen) = (barrier.clone(), seen.clone());
        async move {
            if seen.fetch_add(1, Ordering::SeqCst) < 4 {
                barrier.wait().await;
                "together"
            } else {
                "again"
            }
        }
    });
    let (url, accepted) = serve_counting(router).await;
    let up = Upstream::new(&url, Duration::from_secs(20)).expect("url");
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let up = up.clone();
        tasks.push(tokio::spawn(async move { post(&up, "x").await.1 }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("task"), "together");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 4);
    // Afterwards the four idle connections are reused, not joined by new ones.
    for _ in 0..8 {
        assert_eq!(post(&up, "x").await.1, "again");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 4);
}
