//! The guard's own HTTP endpoints: `/metrics` (Prometheus text format) and `/healthz`.

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
