//! The guard's own HTTP endpoints (`/metrics` in the Prometheus text format, `/healthz`) and
//! the serving loop of the HTTP proxies.

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
    axum::serve(nodelay(listener), router)
        .with_graceful_shutdown(shutdown_signal())
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
