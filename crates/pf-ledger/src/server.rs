//! `pf ledger serve`: the HTTP face of a ledger. `POST /add` appends a decision record;
//! `GET /checkpoint` and `GET /tile/...` serve the C2SP tlog-tiles resources (verified before
//! they are sent); `GET /proof/inclusion` and `GET /find` are conveniences for clients.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use crate::ledger::{Ledger, LedgerError};
use crate::record::{self, RecordError};
use crate::tiles::TileId;

/// Largest request body accepted by `POST /add` (the canonical entry limit is separate).
pub const MAX_BODY_BYTES: usize = 128 * 1024;

/// Builds the router for `ledger`.
pub fn router(ledger: Arc<Ledger>) -> Router {
    Router::new()
        .route("/add", post(add))
        .route("/checkpoint", get(checkpoint))
        .route("/tile/{*path}", get(tile))
        .route("/proof/inclusion", get(inclusion))
        .route("/find", get(find))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(ledger)
}

/// Serves `ledger` on `listener` until the future is dropped.
pub async fn serve(ledger: Arc<Ledger>, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    axum::serve(listener, router(ledger)).await
}

fn reject(status: StatusCode, reason: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({ "error": reason.into() }).to_string(),
    )
        .into_response()
}

fn ledger_error(e: &LedgerError) -> Response {
    match e {
        LedgerError::Record(RecordError::TooLarge { .. }) => {
            reject(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
        }
        LedgerError::Record(_) => reject(StatusCode::BAD_REQUEST, e.to_string()),
        LedgerError::OutOfRange { .. } => reject(StatusCode::NOT_FOUND, e.to_string()),
        LedgerError::Damaged(crate::verified::TileCheckError::OutOfRange(_)) => {
            reject(StatusCode::NOT_FOUND, e.to_string())
        }
        LedgerError::Overloaded => reject(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        // Damaged storage is never served: the client gets a 500 with the reason.
        _ => reject(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[derive(Deserialize)]
struct AddQuery {
    /// Comma-separated JSON pointers of fields to store as commitments.
    sensitive: Option<String>,
}

async fn add(
    State(ledger): State<Arc<Ledger>>,
    Query(q): Query<AddQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct
        .split(';')
        .next()
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
    {
        return reject(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json",
        );
    }
    let value = match record::parse_json(&body) {
        Ok(v) => v,
        Err(e) => return reject(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let sensitive: Vec<&str> = q
        .sensitive
        .as_deref()
        .map(|s| s.split(',').filter(|f| !f.is_empty()).collect())
        .unwrap_or_default();
    let prepared = match record::prepare(value, &sensitive, crate::tiles::MAX_ENTRY_BYTES) {
        Ok(p) => p,
        Err(e) => return ledger_error(&LedgerError::Record(e)),
    };
    match ledger.append_async(prepared.canonical).await {
        Ok(index) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            json!({ "index": index, "openings": prepared.openings }).to_string(),
        )
            .into_response(),
        Err(e) => ledger_error(&e),
    }
}

async fn checkpoint(State(ledger): State<Arc<Ledger>>) -> Response {
    let mut r = ledger.checkpoint().to_string().into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, max-age=1"),
    );
    r
}

async fn tile(State(ledger): State<Arc<Ledger>>, Path(path): Path<String>) -> Response {
    let id = match TileId::parse(&format!("tile/{path}")) {
        Ok(id) => id,
        Err(e) => return reject(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let l = ledger.clone();
    match tokio::task::spawn_blocking(move || l.tile(&id)).await {
        Ok(Ok(body)) => {
            let mut r = body.into_response();
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            );
            r
        }
        Ok(Err(e)) => ledger_error(&e),
        Err(e) => reject(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[derive(Deserialize)]
struct InclusionQuery {
    index: u64,
    size: Option<u64>,
}

async fn inclusion(State(ledger): State<Arc<Ledger>>, Query(q): Query<InclusionQuery>) -> Response {
    let size = q.size.unwrap_or_else(|| ledger.size());
    match ledger.inclusion_proof(q.index, size) {
        Ok(p) => {
            let hashes: Vec<String> = p.hashes.iter().map(|h| h.to_base64()).collect();
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                json!({ "index": p.index, "size": p.size, "hashes": hashes }).to_string(),
            )
                .into_response()
        }
        Err(e) => ledger_error(&e),
    }
}

#[derive(Deserialize)]
struct FindQuery {
    key: String,
}

async fn find(State(ledger): State<Arc<Ledger>>, Query(q): Query<FindQuery>) -> Response {
    let size = ledger.size();
    let mut hits = Vec::new();
    for index in ledger.find(&q.key).into_iter().take(1000) {
        match (ledger.entry(index), ledger.inclusion_proof(index, size)) {
            (Ok(e), Ok(p)) => hits.push(json!({
                "index": index,
                "entry": String::from_utf8_lossy(&e),
                "size": size,
                "proof": p.hashes.iter().map(|h| h.to_base64()).collect::<Vec<_>>(),
            })),
            (Err(e), _) | (_, Err(e)) => return ledger_error(&e),
        }
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        json!({ "key": q.key, "size": size, "hits": hits }).to_string(),
    )
        .into_response()
}
