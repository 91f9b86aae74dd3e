//! The HTTPS server: rustls + hyper, HTTP/2 or HTTP/1.1 (keep-alive) as the client picks in
//! ALPN, routes `POST /validate`, `POST /mutate`, `GET /healthz`. Bodies are size-limited, every
//! request and TLS handshake is under a timeout, requests in flight are capped across all
//! connections, decisions run off the async threads, and every error is a response (a deny or a
//! 4xx/5xx, which the API server treats as a failure and, with `failurePolicy: Fail`, a deny).

mod connection;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

pub use connection::MAX_HEADER_LIST_BYTES;

use crate::review::{MAX_REVIEW_BYTES, decode_review, encode_response};
use crate::webhook::Admission;

/// Server limits.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// Largest request body (bytes).
    pub max_body: usize,
    /// Time allowed for the TLS handshake, for reading a request's headers, and for reading its
    /// body and deciding; also how long a connection may stay open with no request in flight.
    pub request_timeout: Duration,
    /// Most connections served at once; more wait in the accept queue. Also the most requests
    /// in flight across all connections (what HTTP/1.1 connections alone could carry).
    pub max_connections: usize,
    /// Most requests in flight on one HTTP/2 connection (`SETTINGS_MAX_CONCURRENT_STREAMS`,
    /// RFC 9113 §6.5.2); an HTTP/1.1 connection carries one at a time.
    pub max_streams_per_connection: u32,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            max_body: MAX_REVIEW_BYTES,
            request_timeout: Duration::from_secs(10),
            max_connections: 1024,
            max_streams_per_connection: 100,
        }
    }
}

/// Error setting up the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Certificate or key PEM unusable.
    #[error("TLS: {0}")]
    Tls(String),
    /// Socket error.
    #[error("listening: {0}")]
    Io(#[from] std::io::Error),
}

/// A rustls server configuration from PEM certificate chain and private key (ring provider,
/// TLS 1.2/1.3, ALPN `h2` then `http/1.1`).
pub fn tls_config(
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<rustls::ServerConfig>, ServerError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| ServerError::Tls(format!("certificate PEM: {e}")))?;
    if certs.is_empty() {
        return Err(ServerError::Tls(
            "no certificate in the certificate PEM".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| ServerError::Tls(format!("private key PEM: {e}")))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ServerError::Tls(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| ServerError::Tls(e.to_string()))?;
    cfg.alpn_protocols = vec![
        connection::ALPN_H2.to_vec(),
        connection::ALPN_HTTP11.to_vec(),
    ];
    Ok(Arc::new(cfg))
}

fn text(status: StatusCode, msg: impl Into<String>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(msg.into())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn json(body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

/// Handles one HTTP request (public so benchmarks and tests can drive it without sockets).
pub async fn handle(
    admission: Arc<Admission>,
    opts: ServeOptions,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let mutate = match (parts.method.clone(), parts.uri.path()) {
        (Method::GET, "/healthz") => return text(StatusCode::OK, "ok"),
        (Method::POST, "/validate") => false,
        (Method::POST, "/mutate") => true,
        (_, "/validate" | "/mutate") => {
            return text(
                StatusCode::METHOD_NOT_ALLOWED,
                "use POST with an AdmissionReview body",
            );
        }
        (_, p) => {
            return text(
                StatusCode::NOT_FOUND,
                format!("no route {p}; use /validate or /mutate"),
            );
        }
    };
    if let Some(ct) = parts.headers.get(http::header::CONTENT_TYPE)
        && !ct.to_str().is_ok_and(|s| s.starts_with("application/json"))
    {
        return text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json",
        );
    }
    if let Some(len) = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > opts.max_body as u64
    {
        return text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "body of {len} bytes is over the {}-byte limit",
                opts.max_body
            ),
        );
    }
    let bytes = match Limited::new(body, opts.max_body).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return text(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("body is over the {}-byte limit", opts.max_body),
                );
            }
            return text(StatusCode::BAD_REQUEST, format!("reading body: {e}"));
        }
    };
    let result = tokio::task::spawn_blocking(move || {
        let req = match decode_review(&bytes) {
            Ok(r) => r,
            Err(e) => return Err(e.to_string()),
        };
        let resp = if mutate {
            admission.mutate(&req)
        } else {
            admission.validate(&req)
        };
        Ok(encode_response(resp))
    })
    .await;
    match result {
        Ok(Ok(body)) => json(body),
        Ok(Err(msg)) => text(StatusCode::BAD_REQUEST, msg),
        Err(_) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error while deciding; denied",
        ),
    }
}

/// Serves HTTPS on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    admission: Arc<Admission>,
    opts: ServeOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ServerError> {
    let acceptor = TlsAcceptor::from(tls);
    let slots = Arc::new(Semaphore::new(opts.max_connections.max(1)));
    // HTTP/2 multiplexes requests, so connections alone no longer bound them.
    let requests = Arc::new(Semaphore::new(opts.max_connections.max(1)));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => return Ok(()),
            p = Arc::clone(&slots).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return Ok(()),
            },
        };
        let (tcp, _) = tokio::select! {
            () = &mut shutdown => return Ok(()),
            a = listener.accept() => match a {
                Ok(a) => a,
                // Per-connection accept errors (e.g. EMFILE, aborted) must not stop the server.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let admission = Arc::clone(&admission);
        let requests = Arc::clone(&requests);
        tokio::spawn(async move {
            let _permit = permit;
            let Ok(Ok(tls)) =
                tokio::time::timeout(opts.request_timeout, acceptor.accept(tcp)).await
            else {
                return;
            };
            connection::serve(tls, opts, |activity| {
                hyper::service::service_fn(move |req| {
                    let in_flight = activity.begin();
                    let admission = Arc::clone(&admission);
                    let requests = Arc::clone(&requests);
                    async move {
                        let _in_flight = in_flight;
                        let answer = async {
                            // `requests` is never closed; a closed one would deny, not panic.
                            let Ok(_slot) = requests.acquire().await else {
                                return text(
                                    StatusCode::SERVICE_UNAVAILABLE,
                                    "server shutting down; denied",
                                );
                            };
                            handle(admission, opts, req).await
                        };
                        let r = tokio::time::timeout(opts.request_timeout, answer).await;
                        Ok::<_, Infallible>(r.unwrap_or_else(|_| {
                            text(StatusCode::REQUEST_TIMEOUT, "request timed out; denied")
                        }))
                    }
                })
            })
            .await;
        });
    }
}

/// Binds `addr` and serves until Ctrl-C / SIGINT, on a new multi-threaded runtime.
pub fn run_blocking(
    addr: std::net::SocketAddr,
    tls: Arc<rustls::ServerConfig>,
    admission: Arc<Admission>,
    opts: ServeOptions,
) -> Result<(), ServerError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = TcpListener::bind(addr).await?;
        serve(listener, tls, admission, opts, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
    })
}
