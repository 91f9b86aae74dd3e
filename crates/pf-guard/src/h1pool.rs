//! Keep-alive HTTP/1.1 connections to a plain `http://` upstream (a sidecar's usual upstream: the
//! MCP server in the same pod), kept here rather than in hyper_util's legacy pool. Each request
//! takes the most recently used idle connection or opens one; hyper's own connection API does
//! the HTTP. Why by hand: in the proxy benchmark the guard, and a bare hyper forwarder, each
//! cost about 2 us less CPU per request with this pool than with hyper_util's (of ~35 and ~26;
//! crates/pf-guard/BENCHMARKS.md). hyper_util's checkout (a keyed, hashed pool, a
//! checkout-or-connect race, a waiter queue) is built for many hosts and HTTP/2 sharing, none of
//! which one plain upstream needs. HTTPS and HTTP/2 upstreams still go through hyper_util.
//!
//! - A connection carries one request at a time. It stays in the list while it carries one and
//!   is taken again once hyper reports it ready (the answer's body read to its end).
//! - A request that a reused connection closed before sending (the upstream's keep-alive timeout
//!   racing the request) is sent once more on a new connection, as hyper_util does. One already
//!   written when the close is found is not: a `tools/call` may have run, so the caller gets the
//!   error.
//! - Idle connections close after [`H1Pool::new`]'s `idle_timeout` (looked at every tenth of it
//!   by a task that runs while the pool holds connections, so an idle guard has no timer
//!   running), and all of them once the pool is dropped: idle ones at once, busy ones when their
//!   answer is done (hyper ends a connection whose sender is gone).
//! - An upstream that announces how long it keeps an idle connection (`Keep-Alive: timeout=N`,
//!   as Node.js servers do, with 5 s) has its connections retired before then (a second before,
//!   or at half of it if that is shorter): a request then never races the server's close, which
//!   would fail it once written.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

use axum::http::header::HOST;
use axum::http::uri::Authority;
use axum::http::{HeaderMap, HeaderValue, Request, Response, Uri};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::client::legacy::connect::HttpConnector;
use tower_service::Service;

/// Why a request could not be sent.
pub(crate) type SendError = Box<dyn std::error::Error + Send + Sync>;

/// A connection, when it last took a request, and how long the upstream keeps it idle.
struct Conn {
    sender: SendRequest<Full<Bytes>>,
    used: Instant,
    announced: Arc<Announced>,
}

impl Conn {
    /// Closed, or idle for `idle_timeout` (or the upstream's shorter reuse window) or longer.
    fn spent(&self, idle_timeout: Duration) -> bool {
        self.sender.is_closed()
            || (self.sender.is_ready()
                && self.used.elapsed() >= self.announced.reuse_window(idle_timeout))
    }
}

/// The idle timeout an upstream announced for a connection (`Keep-Alive: timeout=N`), in
/// seconds; `u64::MAX` until it announces one.
struct Announced(AtomicU64);

impl Announced {
    fn new() -> Arc<Self> {
        Arc::new(Announced(AtomicU64::new(u64::MAX)))
    }

    /// Notes the timeout `headers` announce, if they do.
    fn note(&self, headers: &HeaderMap) {
        if let Some(secs) = keep_alive_timeout(headers) {
            self.0.store(secs, Ordering::Relaxed);
        }
    }

    /// How long the connection may sit idle and still be reused: `idle_timeout`, or less when
    /// the upstream closes it sooner.
    fn reuse_window(&self, idle_timeout: Duration) -> Duration {
        match self.0.load(Ordering::Relaxed) {
            u64::MAX => idle_timeout,
            secs => {
                let announced = Duration::from_secs(secs);
                let before = announced
                    .saturating_sub(Duration::from_secs(1))
                    .max(announced / 2);
                before.min(idle_timeout)
            }
        }
    }
}

/// The `timeout` parameter of a `Keep-Alive` header (RFC 2068 §19.7.1.1), in seconds.
fn keep_alive_timeout(headers: &HeaderMap) -> Option<u64> {
    let value = headers.get("keep-alive")?.to_str().ok()?;
    value.split(',').find_map(|param| {
        let (name, secs) = param.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("timeout") {
            return None;
        }
        secs.trim().trim_matches('"').parse().ok()
    })
}

/// HTTP/1.1 connections to one plain-http upstream.
pub(crate) struct H1Pool {
    connector: HttpConnector,
    conns: Mutex<Vec<Conn>>,
    idle_timeout: Duration,
    sweeper: AtomicBool,
    /// The upstream's authority and its `Host` header value.
    host: OnceLock<(Authority, HeaderValue)>,
    /// Requests sent once more because a reused connection closed before sending them.
    retried: AtomicUsize,
}

impl H1Pool {
    /// A pool connecting with `connector` (its connect timeout and `TCP_NODELAY` apply); idle
    /// connections close after `idle_timeout`.
    pub(crate) fn new(connector: HttpConnector, idle_timeout: Duration) -> Arc<Self> {
        Arc::new(H1Pool {
            connector,
            conns: Mutex::new(Vec::new()),
            idle_timeout,
            sweeper: AtomicBool::new(false),
            host: OnceLock::new(),
            retried: AtomicUsize::new(0),
        })
    }

    /// Sends `req` (with an absolute `http://` URI) on an idle connection or a new one; the
    /// answer's head.
    pub(crate) async fn request(
        self: Arc<Self>,
        req: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, SendError> {
        let (absolute, mut req) = self.origin_form(req)?;
        if let Some((mut sender, announced)) = self.checkout() {
            let sent = sender.try_send_request(req);
            self.keep(sender, announced.clone());
            match sent.await {
                Ok(resp) => {
                    announced.note(resp.headers());
                    return Ok(resp);
                }
                Err(mut e) => match e.take_message() {
                    // Never written: the connection was closing. Once more on a new one.
                    Some(back) => {
                        self.retried.fetch_add(1, Ordering::Relaxed);
                        req = back;
                    }
                    None => return Err(e.into_error().into()),
                },
            }
        }
        let mut sender = self.connect(absolute).await?;
        let sent = sender.send_request(req);
        let announced = Announced::new();
        self.keep(sender, announced.clone());
        let resp = sent.await?;
        announced.note(resp.headers());
        Ok(resp)
    }

    /// Turns an absolute-URI request into what HTTP/1.1 sends: the path in origin form and a
    /// `Host` header (RFC 9112 §3.2); the absolute URI is returned to connect with.
    fn origin_form(
        &self,
        mut req: Request<Full<Bytes>>,
    ) -> Result<(Uri, Request<Full<Bytes>>), SendError> {
        let uri = req.uri();
        let (Some(_), Some(authority)) = (uri.scheme(), uri.authority()) else {
            return Err(format!("not an absolute URI: {uri}").into());
        };
        // One upstream: its `Host` value is made once.
        let host = match self.host.get() {
            Some((a, v)) if a == authority => v.clone(),
            _ => {
                let v = HeaderValue::from_str(authority.as_str())?;
                let _ = self.host.set((authority.clone(), v.clone()));
                v
            }
        };
        let path = match uri.path_and_query() {
            Some(p) => Uri::from(p.clone()),
            None => Uri::from_static("/"),
        };
        let absolute = std::mem::replace(req.uri_mut(), path);
        req.headers_mut().insert(HOST, host);
        Ok((absolute, req))
    }

    /// Requests sent once more on a new connection so far.
    #[cfg(test)]
    fn retried(&self) -> usize {
        self.retried.load(Ordering::Relaxed)
    }

    /// Number of connections the pool holds (idle or busy).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Conn>> {
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The most recently used connection ready for a request, if any; closed and expired ones
    /// are dropped on the way.
    fn checkout(&self) -> Option<(SendRequest<Full<Bytes>>, Arc<Announced>)> {
        let mut conns = self.lock();
        let mut i = conns.len();
        while i > 0 {
            i -= 1;
            let c = &conns[i];
            if c.spent(self.idle_timeout) {
                conns.swap_remove(i);
                continue;
            }
            if c.sender.is_ready() {
                let c = conns.swap_remove(i);
                return Some((c.sender, c.announced));
            }
        }
        None
    }

    /// Puts a connection that has just taken a request back in the list.
    fn keep(self: &Arc<Self>, sender: SendRequest<Full<Bytes>>, announced: Arc<Announced>) {
        self.lock().push(Conn {
            sender,
            used: Instant::now(),
            announced,
        });
        // After the push: a sweeper that found the list empty has cleared the flag by now.
        if !self.sweeper.load(Ordering::Acquire) {
            self.start_sweeper();
        }
    }

    /// Opens a connection to the host of `uri` and runs it on the current runtime.
    async fn connect(self: &Arc<Self>, uri: Uri) -> Result<SendRequest<Full<Bytes>>, SendError> {
        // `HttpConnector` is always ready (its `poll_ready` returns `Ready` at once).
        let io = self.connector.clone().call(uri).await?;
        let (sender, conn) = http1::handshake(io).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }

    /// Starts the task that closes idle connections, unless it runs; it ends with the pool, or
    /// once the pool holds no connection.
    fn start_sweeper(self: &Arc<Self>) {
        if self.sweeper.swap(true, Ordering::AcqRel) {
            return;
        }
        let pool: Weak<H1Pool> = Arc::downgrade(self);
        let every = (self.idle_timeout / 10).max(Duration::from_millis(10));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(pool) = pool.upgrade() else {
                    return;
                };
                if !pool.sweep() {
                    return;
                }
            }
        });
    }

    /// Drops closed connections and those idle for longer than the idle timeout; `false` (and
    /// the sweeper's flag cleared, under the lock [`H1Pool::keep`] pushes under) when none is
    /// left.
    fn sweep(&self) -> bool {
        let timeout = self.idle_timeout;
        let mut conns = self.lock();
        conns.retain(|c| !c.spent(timeout));
        if conns.is_empty() {
            self.sweeper.store(false, Ordering::Release);
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pf_testkit::http::read_message;
    use std::io::{BufReader, Write};

    /// A keep-alive HTTP/1.1 server on loopback answering every request with its `Host` and
    /// request target; counts connections. `close_after`: it closes each connection after that
    /// many answers, the last one saying so (`connection: close`).
    fn server(close_after: usize) -> (String, Arc<AtomicUsize>) {
        server_with(close_after, "")
    }

    /// As [`server`], with `head` (header lines, each ending in CRLF) in every answer.
    fn server_with(close_after: usize, head: &'static str) -> (String, Arc<AtomicUsize>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                count.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    let mut w = stream.try_clone().expect("clone");
                    let mut r = BufReader::new(stream);
                    for n in 1..=close_after {
                        let Ok(Some(request)) = read_message(&mut r) else {
                            return;
                        };
                        let host = request.header("host").unwrap_or("");
                        let target = request.start.split(' ').nth(1).unwrap_or("");
                        let answer = format!("{host} {target}");
                        let close = if n == close_after {
                            "connection: close\r\n"
                        } else {
                            ""
                        };
                        let head = format!(
                            "HTTP/1.1 200 OK\r\n{head}{close}content-length: {}\r\n\r\n",
                            answer.len()
                        );
                        if w.write_all(head.as_bytes())
                            .and_then(|()| w.write_all(answer.as_bytes()))
                            .is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        (format!("http://{addr}"), accepted)
    }

    fn get(url: &str) -> Request<Full<Bytes>> {
        Request::builder()
            .uri(url)
            .body(Full::new(Bytes::new()))
            .expect("request")
    }

    async fn text(pool: &Arc<H1Pool>, url: &str) -> String {
        use http_body_util::BodyExt;
        let resp = pool.clone().request(get(url)).await.expect("answer");
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        String::from_utf8(body.to_vec()).expect("utf-8")
    }

    fn pool(idle: Duration) -> Arc<H1Pool> {
        H1Pool::new(HttpConnector::new(), idle)
    }

    #[tokio::test]
    async fn requests_go_in_origin_form_with_a_host_on_one_kept_alive_connection() {
        let (base, accepted) = server(usize::MAX);
        let pool = pool(Duration::from_secs(90));
        let authority = base.trim_start_matches("http://").to_string();
        for i in 0..5 {
            let answer = text(&pool, &format!("{base}/mcp?n={i}")).await;
            assert_eq!(answer, format!("{authority} /mcp?n={i}"));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "one connection, reused");
        assert_eq!(pool.len(), 1);
    }

    #[tokio::test]
    async fn a_connection_the_upstream_closed_is_replaced_without_failing_the_request() {
        // The server closes every connection after one answer.
        let (base, accepted) = server(1);
        let pool = pool(Duration::from_secs(90));
        for _ in 0..4 {
            assert!(text(&pool, &format!("{base}/x")).await.ends_with(" /x"));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 4);
    }

    /// The race the retry is for: the upstream closes a kept-alive connection, and the pool hands
    /// it out before the connection's task has looked at the close. The close and a wake-up of
    /// this test arrive in one poll of the runtime's I/O driver; the test (the runtime's main
    /// future) runs first, takes the connection, which still looks ready, and only then does the
    /// connection's task find the end of stream, with the request unsent.
    #[tokio::test(flavor = "current_thread")]
    async fn a_request_a_closing_connection_never_sent_goes_once_more_on_a_new_one() {
        use std::sync::mpsc;
        use tokio::io::AsyncReadExt;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let base = format!("http://{addr}");
        let (close_tx, close_rx) = mpsc::channel::<()>();
        let (closed_tx, closed_rx) = mpsc::channel::<()>();
        let served = Arc::new(AtomicUsize::new(0));
        let count = served.clone();
        std::thread::spawn(move || {
            // Counts a request before answering it, so the count is in by the time the answer is.
            let answer = |stream: &std::net::TcpStream| -> bool {
                let mut r = BufReader::new(stream);
                let mut w = stream;
                if !matches!(read_message(&mut r), Ok(Some(_))) {
                    return false;
                }
                count.fetch_add(1, Ordering::SeqCst);
                w.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .is_ok()
            };
            let mut incoming = listener.incoming().flatten();
            let Some(mut signal) = incoming.next() else {
                return;
            };
            // The first upstream connection: one answer (keep-alive), then, on cue, a byte on
            // the signal connection and a close without notice, in that order.
            let Some(stream) = incoming.next() else {
                return;
            };
            answer(&stream);
            let _ = close_rx.recv();
            let _ = signal.write_all(b"!");
            drop(stream);
            let _ = closed_tx.send(());
            // Later connections: answers until the client closes.
            for stream in incoming {
                while answer(&stream) {}
            }
        });
        let mut signal = tokio::net::TcpStream::connect(addr).await.expect("signal");
        let pool = pool(Duration::from_secs(90));
        assert_eq!(text(&pool, &format!("{base}/a")).await, "ok");
        close_tx.send(()).expect("server up");
        closed_rx.recv().expect("closed");
        // Both the byte and the close are here before the runtime polls its driver again.
        std::thread::sleep(Duration::from_millis(20));
        let mut byte = [0u8; 1];
        signal.read_exact(&mut byte).await.expect("signal");
        assert_eq!(text(&pool, &format!("{base}/b")).await, "ok");
        assert_eq!(
            pool.retried(),
            1,
            "taken from the pool, then sent on a new connection"
        );
        assert_eq!(served.load(Ordering::SeqCst), 2);
        assert_eq!(text(&pool, &format!("{base}/c")).await, "ok");
        assert_eq!(pool.retried(), 1, "the new connection is kept");
    }

    #[tokio::test]
    async fn concurrent_requests_each_get_a_connection() {
        let (base, accepted) = server(usize::MAX);
        let pool = pool(Duration::from_secs(90));
        let url = format!("{base}/c");
        let (a, b, c) = tokio::join!(text(&pool, &url), text(&pool, &url), text(&pool, &url));
        assert!(a.ends_with("/c") && b.ends_with("/c") && c.ends_with("/c"));
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
        // Afterwards they are reused, not multiplied.
        for _ in 0..3 {
            text(&pool, &url).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn idle_connections_close_after_the_idle_timeout() {
        let (base, accepted) = server(usize::MAX);
        let pool = pool(Duration::from_millis(200));
        text(&pool, &format!("{base}/i")).await;
        assert_eq!(pool.len(), 1);
        assert!(pool.sweeper.load(Ordering::Acquire), "a sweeper runs");
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(pool.len(), 0, "the sweeper closed it");
        assert!(
            !pool.sweeper.load(Ordering::Acquire),
            "and stopped: nothing is left to sweep"
        );
        text(&pool, &format!("{base}/i")).await;
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            2,
            "a new connection after the timeout"
        );
        assert!(pool.sweeper.load(Ordering::Acquire), "a sweeper runs again");
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(pool.len(), 0, "and closes the new connection in time");
    }

    #[tokio::test]
    async fn connections_are_retired_before_the_keep_alive_timeout_the_upstream_announces() {
        let idle = Duration::from_millis(600);
        // Announced 1 s: reused for half a second at most.
        let (base, accepted) = server_with(usize::MAX, "keep-alive: timeout=1\r\n");
        let short = pool(Duration::from_secs(90));
        text(&short, &format!("{base}/k")).await;
        text(&short, &format!("{base}/k")).await;
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "reused while fresh");
        tokio::time::sleep(idle).await;
        text(&short, &format!("{base}/k")).await;
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            2,
            "not reused after 600 ms"
        );
        // Announced 5 s (Node.js's default), or nothing announced: reused after the same wait.
        for head in ["Keep-Alive: timeout=5, max=1000\r\n", ""] {
            let (base, accepted) = server_with(usize::MAX, head);
            let kept = pool(Duration::from_secs(90));
            text(&kept, &format!("{base}/k")).await;
            tokio::time::sleep(idle).await;
            text(&kept, &format!("{base}/k")).await;
            assert_eq!(accepted.load(Ordering::SeqCst), 1, "{head:?}");
        }
    }

    #[test]
    fn the_keep_alive_timeout_is_read_from_the_header_and_garbage_is_ignored() {
        let timeout = |value: &str| {
            let mut h = HeaderMap::new();
            h.insert("keep-alive", HeaderValue::from_str(value).expect("value"));
            keep_alive_timeout(&h)
        };
        assert_eq!(timeout("timeout=5"), Some(5));
        assert_eq!(timeout("max=1000, Timeout = 30"), Some(30));
        assert_eq!(timeout("timeout=\"7\""), Some(7));
        assert_eq!(timeout("timeout=-1"), None);
        assert_eq!(timeout("timeout=soon"), None);
        assert_eq!(timeout("max=3"), None);
        assert_eq!(keep_alive_timeout(&HeaderMap::new()), None);
        let window = |secs: u64| {
            let a = Announced::new();
            a.0.store(secs, Ordering::Relaxed);
            a.reuse_window(Duration::from_secs(90))
        };
        assert_eq!(window(5), Duration::from_secs(4));
        assert_eq!(window(1), Duration::from_millis(500));
        assert_eq!(window(0), Duration::ZERO);
        assert_eq!(window(3600), Duration::from_secs(90), "never past our own");
        assert_eq!(
            Announced::new().reuse_window(Duration::from_secs(90)),
            Duration::from_secs(90)
        );
    }

    #[tokio::test]
    async fn a_relative_uri_is_an_error_not_a_panic() {
        let pool = pool(Duration::from_secs(90));
        let e = pool.request(get("/relative")).await.expect_err("refused");
        assert!(e.to_string().contains("not an absolute URI"), "{e}");
    }

    #[tokio::test]
    async fn an_unreachable_upstream_is_an_error() {
        let pool = pool(Duration::from_secs(90));
        assert!(pool.request(get("http://127.0.0.1:9/x")).await.is_err());
    }
}
