//! One accepted TLS connection, served in the HTTP version its handshake negotiated (ALPN,
//! RFC 7301): HTTP/2 for `h2`, HTTP/1.1 for `http/1.1` or no ALPN. Each version gets the same
//! deadlines: a connection with no request in flight is closed after
//! [`ServeOptions::request_timeout`], whichever version it speaks.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::Service;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::server::TlsStream;

use super::ServeOptions;

/// ALPN name of HTTP/2 over TLS (RFC 9113 §3.2).
pub(super) const ALPN_H2: &[u8] = b"h2";
/// ALPN name of HTTP/1.1 (RFC 7301 §6).
pub(super) const ALPN_HTTP11: &[u8] = b"http/1.1";

/// Largest HTTP/2 header list a request may carry (`SETTINGS_MAX_HEADER_LIST_SIZE`, RFC 9113
/// §6.5.2); an AdmissionReview request's headers are a few hundred bytes.
pub const MAX_HEADER_LIST_BYTES: u32 = 16 * 1024;

/// Counts the requests in flight on one connection; a change wakes the idle watch.
#[derive(Clone)]
pub(super) struct Activity(Arc<watch::Sender<usize>>);

/// One request in flight; dropping it (answered, or cancelled by a reset stream) ends it.
pub(super) struct InFlight(Arc<watch::Sender<usize>>);

impl Activity {
    fn new() -> (Self, watch::Receiver<usize>) {
        let (tx, rx) = watch::channel(0);
        (Self(Arc::new(tx)), rx)
    }

    /// Marks a request as started until the returned guard is dropped.
    pub(super) fn begin(&self) -> InFlight {
        self.0.send_modify(|n| *n += 1);
        InFlight(Arc::clone(&self.0))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Resolves once no request has been in flight on the connection for `idle`.
async fn idle_for(requests: &mut watch::Receiver<usize>, idle: Duration) {
    loop {
        if requests.wait_for(|n| *n == 0).await.is_err() {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(idle) => return,
            changed = requests.changed() => if changed.is_err() { return },
        }
    }
}

/// Serves `tls` until the client closes it or it has been idle too long; `service` makes the
/// service for the connection from its [`Activity`].
pub(super) async fn serve<S>(
    tls: TlsStream<TcpStream>,
    opts: ServeOptions,
    service: impl FnOnce(Activity) -> S,
) where
    S: Service<Request<Incoming>, Response = Response<Full<Bytes>>, Error = Infallible>
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let h2 = tls.get_ref().1.alpn_protocol() == Some(ALPN_H2);
    let (activity, mut requests) = Activity::new();
    let service = service(activity);
    let io = TokioIo::new(tls);
    if !h2 {
        // hyper's header read timeout also runs while a keep-alive connection waits for its
        // next request, so it is the idle deadline of HTTP/1.1.
        let _ = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(opts.request_timeout)
            .serve_connection(io, service)
            .await;
        return;
    }
    // HTTP/2 has no header read timeout, and a client that answers pings keeps a connection
    // open forever; the idle watch closes it instead. Reset-flood limits (CVE-2023-44487) are
    // hyper's and h2's defaults.
    let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .max_concurrent_streams(opts.max_streams_per_connection.max(1))
        .max_header_list_size(MAX_HEADER_LIST_BYTES)
        .serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        () = idle_for(&mut requests, opts.request_timeout) => conn.as_mut().graceful_shutdown(),
    }
    // GOAWAY is sent; a client that neither finishes its streams nor closes within the request
    // timeout has its connection dropped (RFC 9113 §6.8).
    let _ = tokio::time::timeout(opts.request_timeout, conn).await;
}
