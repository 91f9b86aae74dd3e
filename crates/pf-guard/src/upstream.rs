//! The HTTP client side of the proxies: one keep-alive connection pool to the upstream server
//! (plain HTTP through [`crate::h1pool`], HTTPS with rustls and h2c through hyper_util's), with
//! timeouts and body-size limits on everything the upstream sends back.
//!
//! An `https` upstream is offered HTTP/2 and HTTP/1.1 in ALPN (RFC 7301) and spoken to in the
//! one it picks; a server without ALPN gets HTTP/1.1. A plain `http` upstream gets HTTP/1.1, or
//! HTTP/2 with prior knowledge ("h2c", RFC 9113 §3.3) when [`UpstreamHttp::H2c`] says so.
//!
//! No connection takes new requests once the TLS files it was made with have been replaced on
//! disk, or once its pool is older than [`UpstreamOptions::max_conn_age`] ([`crate::pool`]).

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, Uri};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::metrics::ReasonLabels;
use crate::pool::{Connections, RenewingPool};
use crate::tls::{ClientTls, TlsError};
use crate::tls_reload::TlsWatch;

/// Why the upstream could not be used; every variant becomes an HTTP 502/504 for the client.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The upstream URL is not usable.
    #[error("invalid upstream URL `{url}`: {why}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// What is wrong.
        why: String,
    },
    /// Connecting or sending failed.
    #[error("upstream request failed: {0}")]
    Request(String),
    /// No answer in time.
    #[error("upstream did not answer within {0:?}")]
    Timeout(Duration),
    /// The answer body is larger than allowed.
    #[error("upstream body exceeds {0} bytes")]
    TooLarge(usize),
    /// Reading the answer body failed.
    #[error("reading the upstream body failed: {0}")]
    Body(String),
    /// The TLS settings are unusable (a CA file, client certificate or key missing, unreadable
    /// or invalid, or a key that is not the certificate's).
    #[error("upstream TLS: {0}")]
    Tls(#[from] TlsError),
    /// HTTP/2 with prior knowledge was asked for an `https` upstream, which negotiates HTTP/2
    /// in its TLS handshake instead.
    #[error(
        "h2c (HTTP/2 with prior knowledge) is for a plain http:// upstream; `{url}` is https, which is offered HTTP/2 in the TLS handshake (ALPN) anyway"
    )]
    H2cOverTls {
        /// The URL given.
        url: String,
    },
}

/// Which HTTP version the guard speaks to the upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UpstreamHttp {
    /// HTTP/1.1 to an `http` upstream; to an `https` one, HTTP/2 or HTTP/1.1 as the server
    /// picks in ALPN.
    #[default]
    Negotiated,
    /// HTTP/2 with prior knowledge over plain `http` (h2c), for HTTP/2-only local upstreams
    /// (gRPC-style servers); every connection starts with the HTTP/2 preface.
    H2c,
}

/// How long an idle HTTPS or h2c upstream connection is kept open.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// How long an idle plain-http upstream connection is reused. Shorter than the idle timeouts of
/// the servers a sidecar usually fronts (gunicorn 2 s, uvicorn and Node.js 5 s, the latter
/// announced and honoured anyway, see [`crate::h1pool`]): a request sent on a connection the
/// server is closing at that moment fails, and cannot be sent again (it may have run). Opening
/// a loopback connection again costs far less than that failure; under load connections are
/// never idle this long.
const PLAIN_IDLE_TIMEOUT: Duration = Duration::from_millis(1500);

/// How long a connection pool serves new requests before it is replaced, unless told otherwise.
pub const DEFAULT_MAX_CONN_AGE: Duration = Duration::from_secs(300);

/// How the guard runs its connections to the upstream.
#[derive(Debug, Clone)]
pub struct UpstreamOptions {
    /// Which HTTP version the guard speaks.
    pub http: UpstreamHttp,
    /// How long a pool's connections take new requests: an older pool is replaced at the next
    /// request (checked at most once a second), and its connections close once the requests
    /// they carry have finished. A bound on how long any connection, and the TLS material it
    /// was made with, stays in use.
    pub max_conn_age: Duration,
    /// Where pool replacements are counted (`reason` `tls_rotation` or `max_age`), e.g.
    /// `GuardMetrics::upstream_pool_renewals`.
    pub renewals: Option<Family<ReasonLabels, Counter>>,
}

impl Default for UpstreamOptions {
    fn default() -> Self {
        UpstreamOptions {
            http: UpstreamHttp::default(),
            max_conn_age: DEFAULT_MAX_CONN_AGE,
            renewals: None,
        }
    }
}

/// How an `https` upstream's certificate is checked and which client certificate the guard
/// presents to it (mutual TLS): the guard's [`ClientTls`].
pub type UpstreamTls = ClientTls;

/// An upstream HTTP server reached through a connection pool.
#[derive(Clone, Debug)]
pub struct Upstream {
    base: Uri,
    pool: Arc<RenewingPool>,
    timeout: Duration,
}

impl Upstream {
    /// A pool for `url` (`http://` or `https://host:port/path`, platform CA roots); answers
    /// must start within `timeout`.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, UpstreamError> {
        Self::with_tls(url, timeout, &UpstreamTls::default())
    }

    /// As [`Upstream::new`], with the trust settings of `https` upstreams.
    pub fn with_tls(
        url: &str,
        timeout: Duration,
        tls: &UpstreamTls,
    ) -> Result<Self, UpstreamError> {
        Self::with_settings(url, timeout, tls, &UpstreamOptions::default())
    }

    /// As [`Upstream::with_tls`], with the connections run as `options` say.
    pub fn with_settings(
        url: &str,
        timeout: Duration,
        tls: &UpstreamTls,
        options: &UpstreamOptions,
    ) -> Result<Self, UpstreamError> {
        let http = options.http;
        let bad = |why: &str| UpstreamError::BadUrl {
            url: url.to_string(),
            why: why.to_string(),
        };
        let base: Uri = url.parse().map_err(|_| bad("not a URL"))?;
        let https = match base.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(bad("the scheme must be http or https")),
        };
        if base.authority().is_none() {
            return Err(bad("no host"));
        }
        if https && http == UpstreamHttp::H2c {
            return Err(UpstreamError::H2cOverTls {
                url: url.to_string(),
            });
        }
        // Roots and the client identity are only loaded for https upstreams (reading the
        // platform store takes time; a plain upstream has no use for them).
        let (config, watch) = if https {
            tls.watched_config()?
        } else {
            (crate::tls::trusting_nothing()?, TlsWatch::default())
        };
        let mut tcp = HttpConnector::new();
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(timeout));
        tcp.enforce_http(false);
        // ALPN offers h2 then http/1.1; the connection reports which one the server chose and
        // the pool speaks it (one multiplexed connection for h2, several for HTTP/1.1).
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(tcp.clone());
        let connections = if !https && http == UpstreamHttp::Negotiated {
            // Plain HTTP/1.1: our own pool, cheaper per request (crate::h1pool).
            Connections::Plain {
                connector: tcp,
                idle_timeout: PLAIN_IDLE_TIMEOUT,
            }
        } else {
            let mut builder = Client::builder(TokioExecutor::new());
            // The timer makes idle connections close after the idle timeout; without one,
            // hyper_util only drops them when it next looks for a connection to reuse.
            builder
                .pool_idle_timeout(IDLE_TIMEOUT)
                .pool_timer(TokioTimer::new())
                .http2_only(http == UpstreamHttp::H2c);
            Connections::Shared {
                builder: Box::new(builder),
                connector,
            }
        };
        let pool = RenewingPool::new(
            connections,
            watch,
            options.max_conn_age,
            options.renewals.clone(),
        );
        Ok(Upstream {
            base,
            pool: Arc::new(pool),
            timeout,
        })
    }

    /// The configured URL.
    pub fn base(&self) -> &Uri {
        &self.base
    }

    /// The time allowed for an answer to start (and for a JSON body to arrive).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The base URL with its path replaced by `path_and_query` (for path-forwarding proxies).
    pub fn with_path(&self, path_and_query: &str) -> Result<Uri, UpstreamError> {
        let mut parts = self.base.clone().into_parts();
        let prefix = self.base.path().trim_end_matches('/');
        let joined = format!("{prefix}{path_and_query}");
        parts.path_and_query = Some(joined.parse().map_err(|_| UpstreamError::BadUrl {
            url: joined.clone(),
            why: "invalid path".into(),
        })?);
        Uri::from_parts(parts).map_err(|e| UpstreamError::BadUrl {
            url: self.base.to_string(),
            why: e.to_string(),
        })
    }

    /// Sends a request; resolves when the answer's head has arrived.
    ///
    /// `headers` must hold no `Host` and no connection-specific field (`Connection`,
    /// `Keep-Alive`, `Transfer-Encoding`, ...): the pool sets `Host` from the URI on an HTTP/1.1
    /// connection and `:authority` on an HTTP/2 one, where those fields are malformed (RFC 9113
    /// §8.2.2, §8.3.1). The proxies only forward the header names they list.
    pub async fn send(
        &self,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .body(Full::new(body))
            .map_err(|e| UpstreamError::Request(e.to_string()))?;
        *req.headers_mut() = headers;
        match tokio::time::timeout(self.timeout, self.pool.request(req)).await {
            Err(_) => Err(UpstreamError::Timeout(self.timeout)),
            Ok(Err(e)) => Err(UpstreamError::Request(error_chain(&*e))),
            Ok(Ok(resp)) => Ok(resp),
        }
    }

    /// Reads a whole answer body, at most `limit` bytes, within the timeout.
    pub async fn read_body(&self, body: Incoming, limit: usize) -> Result<Bytes, UpstreamError> {
        let collect = Limited::new(body, limit).collect();
        match tokio::time::timeout(self.timeout, collect).await {
            Err(_) => Err(UpstreamError::Timeout(self.timeout)),
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
                Err(UpstreamError::TooLarge(limit))
            }
            Ok(Err(e)) => Err(UpstreamError::Body(e.to_string())),
            Ok(Ok(c)) => Ok(c.to_bytes()),
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Copies the named headers (when present) from `from` into a new map.
///
/// One pass over `from` comparing names (a request carries a handful of headers), rather than
/// one hashed lookup per wanted name.
pub fn pick_headers(from: &HeaderMap, names: &[HeaderName]) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(names.len());
    for (name, value) in from {
        if names.contains(name) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// Whether a `Content-Type` header value names `mime` (parameters ignored).
pub fn is_content_type(headers: &HeaderMap, mime: &str) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(mime))
}

/// `application/json` as a header value.
pub const JSON: HeaderValue = HeaderValue::from_static("application/json");
/// `text/event-stream` as a header value.
pub const EVENT_STREAM: HeaderValue = HeaderValue::from_static("text/event-stream");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picked_headers_keep_every_value_of_the_wanted_names_only() {
        use axum::http::header::{ACCEPT, AUTHORIZATION, COOKIE};
        let mut from = HeaderMap::new();
        from.append(ACCEPT, HeaderValue::from_static("application/json"));
        from.append(ACCEPT, HeaderValue::from_static("text/event-stream"));
        from.append(COOKIE, HeaderValue::from_static("secret=1"));
        from.append(AUTHORIZATION, HeaderValue::from_static("Bearer t"));
        let out = pick_headers(&from, &[ACCEPT, AUTHORIZATION]);
        assert_eq!(out.len(), 3);
        let accepts: Vec<_> = out.get_all(ACCEPT).iter().collect();
        assert_eq!(accepts, ["application/json", "text/event-stream"]);
        assert_eq!(out[AUTHORIZATION], "Bearer t");
        assert!(out.get(COOKIE).is_none());
    }

    #[test]
    fn upstream_urls_are_checked_and_joined() {
        assert!(Upstream::new("ftp://api.example.com", Duration::from_secs(1)).is_err());
        assert!(Upstream::new("not a url", Duration::from_secs(1)).is_err());
        assert!(Upstream::new("https://api.example.com/mcp", Duration::from_secs(1)).is_ok());
        let missing = UpstreamTls {
            ca_file: Some(std::path::PathBuf::from("/nonexistent/ca.pem")),
            ..UpstreamTls::default()
        };
        let e = Upstream::with_tls("https://127.0.0.1:9/", Duration::from_secs(1), &missing)
            .expect_err("a missing CA file is an error");
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
        let up = Upstream::new("http://127.0.0.1:9/base/", Duration::from_secs(1)).expect("url");
        assert_eq!(
            up.with_path("/v1/chat/completions")
                .expect("join")
                .to_string(),
            "http://127.0.0.1:9/base/v1/chat/completions"
        );
    }
}
