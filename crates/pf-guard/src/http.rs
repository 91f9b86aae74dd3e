//! The guard's own HTTP endpoints (`/metrics` in the Prometheus text format, `/healthz`) and
//! the serving loop of the HTTP proxies. Every listener speaks HTTP/1.1 and HTTP/2 with prior
//! knowledge (h2c, RFC 9113 §3.3) on the same port: a connection that opens with the HTTP/2
//! preface is served as HTTP/2 (hyper's default limits: 200 concurrent streams, 16 KiB of
//! headers, its reset-flood guards), any other as HTTP/1.1.

use std::sync::Arc;

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::metrics::GuardMetrics;

/// Routes for `/metrics` and `/healthz`.
pub fn router(metrics: Arc<GuardMetrics>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [(
                            CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        metrics.encode(),
                    )
                        .into_response()
                }
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
}

/// Serves the routes on `listener` until the task is dropped.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<GuardMetrics>,
) -> std::io::Result<()> {
    axum::serve(listener, router(metrics)).await
}

/// Serves a proxy's routes on `listener` until SIGINT or SIGTERM, then finishes open requests.
/// Accepted connections get `TCP_NODELAY` (a proxy answer must not wait for Nagle).
pub async fn serve_until_signal(
    listener: tokio::net::TcpListener,
    router: Router,
) -> std::io::Result<()> {
    serve_until(listener, router, shutdown_signal()).await
}

/// As [`serve_until_signal`], until `shutdown` resolves: then no new connection is accepted,
/// HTTP/1.1 connections close after their current request and HTTP/2 ones get a GOAWAY and
/// finish their open streams.
pub async fn serve_until(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(nodelay(listener), router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// `listener` with `TCP_NODELAY` set on every accepted connection.
pub fn nodelay(
    listener: tokio::net::TcpListener,
) -> impl axum::serve::Listener<Io = tokio::net::TcpStream, Addr = std::net::SocketAddr> {
    use axum::serve::ListenerExt;
    listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY on an accepted connection");
        }
    })
}

/// Resolves on Ctrl-C (SIGINT) or, on Unix, SIGTERM (what Kubernetes sends a sidecar).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use axum::serve::Listener;

    #[tokio::test]
    async fn accepted_connections_have_nodelay() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut listener = super::nodelay(listener);
        let _client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (accepted, _) = listener.accept().await;
        assert!(accepted.nodelay().expect("socket option"));
    }
}
