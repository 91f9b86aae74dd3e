//! Anomaly alerts as events: the per-session [`AnomalyMonitor`] around a [`Detector`], the JSON
//! alert event, and the optional [`Webhook`] that POSTs events without ever stalling the guard.
//!
//! The webhook has a bounded queue and one sender thread doing blocking HTTP/1.1 (ureq), over
//! rustls for `https://` URLs. Posting never blocks: when the queue is full the event is dropped
//! and `pf_guard_alert_webhook_failures_total{reason="queue_full"}` counts it; an unreachable
//! endpoint, a failed TLS handshake or a non-2xx answer is counted the same way (`unreachable`,
//! `tls`, `status`), never fatal. The decision log, not the webhook, is the durable record of an
//! alert.
//!
//! ureq keeps a connection open between events; it is dropped (with ureq's agent) before the
//! next event once the webhook's TLS files have been re-read ([`crate::tls_reload`]) or it is
//! older than [`WEBHOOK_MAX_CONN_AGE`], so no connection made with replaced material is reused.

use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::anomaly::{Anomaly, AnomalyMode, Detector};
use crate::metrics::{GuardMetrics, ReasonLabels};
use crate::tls::{ClientTls, TlsError};
use crate::tls_reload::{CHECK_INTERVAL, TlsWatch};

/// Events the webhook queue holds before new ones are dropped (and counted).
pub const WEBHOOK_QUEUE: usize = 256;
/// Time allowed to connect to the webhook endpoint.
pub const WEBHOOK_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Time allowed for one whole POST.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a connection to the webhook is reused before the next event opens a new one.
pub const WEBHOOK_MAX_CONN_AGE: Duration = Duration::from_secs(300);

/// Why a webhook could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// The URL is not an `http://` or `https://` URL with a host.
    #[error("alert webhook `{0}`: expected an http[s]://host[:port]/path URL")]
    Url(String),
    /// The TLS settings of an `https://` webhook are unusable.
    #[error("alert webhook TLS: {0}")]
    Tls(#[from] TlsError),
    /// The sender thread could not be started.
    #[error("alert webhook: cannot start the sender thread: {0}")]
    Thread(std::io::Error),
}

/// POSTs alert events as JSON to one URL from a background thread with a bounded queue.
pub struct Webhook {
    tx: Option<SyncSender<String>>,
    finished: Mutex<Receiver<()>>,
    metrics: Arc<GuardMetrics>,
}

impl Webhook {
    /// Starts the sender for `url` (`http://`, or `https://` checked against the platform's CA
    /// roots), counting failures in `metrics`.
    pub fn spawn(url: &str, metrics: Arc<GuardMetrics>) -> Result<Webhook, AlertError> {
        Self::spawn_with_tls(url, &ClientTls::default(), metrics)
    }

    /// As [`Webhook::spawn`], with the TLS settings of an `https://` URL (a private CA file, a
    /// client certificate); they are read now, so a bad file is an error here, not at the first
    /// alert.
    pub fn spawn_with_tls(
        url: &str,
        tls: &ClientTls,
        metrics: Arc<GuardMetrics>,
    ) -> Result<Webhook, AlertError> {
        let (https, rest) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
            (Some(rest), _) => (false, rest),
            (_, Some(rest)) => (true, rest),
            _ => return Err(AlertError::Url(url.to_string())),
        };
        if rest.is_empty() || rest.starts_with('/') {
            return Err(AlertError::Url(url.to_string()));
        }
        let (connector, watch) = if https {
            let (config, watch) = tls.watched_config()?;
            (Some(Arc::new(RustlsConnector(Arc::new(config)))), watch)
        } else {
            (None, TlsWatch::default())
        };
        let mut client = WebhookClient::new(connector, watch);
        let (tx, rx) = mpsc::sync_channel::<String>(WEBHOOK_QUEUE);
        let (done_tx, finished) = mpsc::channel();
        let url = url.to_string();
        let counters = metrics.clone();
        std::thread::Builder::new()
            .name("pf-guard-webhook".into())
            .spawn(move || {
                for body in rx {
                    let result = client
                        .agent()
                        .post(&url)
                        .set("content-type", "application/json")
                        .send_string(&body);
                    let failure = match result {
                        Ok(_) => None,
                        Err(ureq::Error::Status(code, _)) => Some(("status", code.to_string())),
                        Err(e) if is_tls_failure(&e) => Some(("tls", e.to_string())),
                        Err(e) => Some(("unreachable", e.to_string())),
                    };
                    if let Some((reason, detail)) = failure {
                        tracing::warn!(url = %url, error = %detail, "alert webhook failed");
                        count(&counters, reason);
                    }
                }
                let _ = done_tx.send(());
            })
            .map_err(AlertError::Thread)?;
        Ok(Webhook {
            tx: Some(tx),
            finished: Mutex::new(finished),
            metrics,
        })
    }

    /// Queues an event; never blocks (a full queue drops the event and counts it).
    pub fn post(&self, event: &Value) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(event.to_string()) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                count(&self.metrics, "queue_full");
            }
        }
    }

    /// Stops taking events and waits up to `wait` for the queued ones to be sent.
    pub fn close(mut self, wait: Duration) {
        self.tx = None;
        if let Ok(finished) = self.finished.lock() {
            let _ = finished.recv_timeout(wait);
        }
    }
}

/// The webhook's ureq agent (and the connection it keeps), replaced when the TLS files it was
/// made with are re-read or it has been used for [`WEBHOOK_MAX_CONN_AGE`].
struct WebhookClient {
    connector: Option<Arc<RustlsConnector>>,
    watch: TlsWatch,
    agent: ureq::Agent,
    /// The TLS material's generation when `agent` was made.
    tls: u64,
    born: Instant,
}

impl WebhookClient {
    fn new(connector: Option<Arc<RustlsConnector>>, watch: TlsWatch) -> Self {
        WebhookClient {
            agent: Self::build(&connector),
            tls: watch.generation(),
            born: Instant::now(),
            connector,
            watch,
        }
    }

    fn build(connector: &Option<Arc<RustlsConnector>>) -> ureq::Agent {
        let mut agent = ureq::AgentBuilder::new()
            .timeout_connect(WEBHOOK_CONNECT_TIMEOUT)
            .timeout(WEBHOOK_TIMEOUT)
            .redirects(0);
        if let Some(connector) = connector {
            agent = agent.tls_connector(connector.clone());
        }
        agent.build()
    }

    /// The agent for the next event: a new one (whose first request connects anew) when the
    /// TLS files changed (looked at most once a second) or the current one is too old.
    fn agent(&mut self) -> &ureq::Agent {
        let tls = self.watch.refresh(CHECK_INTERVAL);
        if tls > self.tls || self.born.elapsed() >= WEBHOOK_MAX_CONN_AGE {
            // Dropping the old agent closes the connection it kept.
            self.agent = Self::build(&self.connector);
            self.tls = tls;
            self.born = Instant::now();
            tracing::info!(
                "alert webhook: new connection for the next event (TLS files rotated or connection too old)"
            );
        }
        &self.agent
    }
}

/// Whether a request failed in TLS (handshake refused, certificate not trusted, an alert from
/// the server) rather than in reaching the host: somewhere in the error's chain is rustls's
/// error, which [`RustlsConnector`] and ureq's reader wrap in I/O errors (one inside another
/// when the server's alert arrives as the answer is read, as a TLS 1.3 client-certificate
/// refusal does).
fn is_tls_failure(e: &ureq::Error) -> bool {
    use std::error::Error;
    let mut cur: Option<&(dyn Error + 'static)> = e.source();
    // The chain is short; the bound only guards against a cycle.
    for _ in 0..8 {
        let Some(err) = cur else { return false };
        if err.is::<rustls::Error>() {
            return true;
        }
        // io::Error::source skips the error it wraps; get_ref is that error.
        cur = match err.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as &(dyn Error + 'static)),
            None => err.source(),
        };
    }
    false
}

/// The webhook sender's TLS: a rustls client connection over ureq's blocking socket (ureq's own
/// TLS feature would bring its own roots, webpki-roots, instead of the guard's trust settings).
struct RustlsConnector(Arc<rustls::ClientConfig>);

impl ureq::TlsConnector for RustlsConnector {
    fn connect(
        &self,
        dns_name: &str,
        mut io: Box<dyn ureq::ReadWrite>,
    ) -> Result<Box<dyn ureq::ReadWrite>, ureq::Error> {
        // ureq passes an IPv6 literal in its URL brackets; a server name has none.
        let host = dns_name
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(dns_name);
        let name = rustls::pki_types::ServerName::try_from(host.to_string())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let mut conn =
            rustls::ClientConnection::new(self.0.clone(), name).map_err(std::io::Error::other)?;
        // The socket already has ureq's deadline as its read and write timeouts.
        conn.complete_io(&mut io)?;
        if conn.is_handshaking() {
            // complete_io stops early only when the socket would not take more bytes.
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
        Ok(Box::new(TlsStream(rustls::StreamOwned::new(conn, io))))
    }
}

/// A TLS connection to the webhook, as ureq reads and writes it.
struct TlsStream(rustls::StreamOwned<rustls::ClientConnection, Box<dyn ureq::ReadWrite>>);

impl ureq::ReadWrite for TlsStream {
    fn socket(&self) -> Option<&std::net::TcpStream> {
        self.0.sock.socket()
    }
}

impl std::io::Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // A read first sends what earlier writes left buffered, so it sees their failures too.
        self.0.read(buf).map_err(|e| self.alert_instead(e))
    }
}

impl TlsStream {
    /// The server's alert instead of `e` when one is waiting to be read. A server that refuses
    /// the client after the handshake (TLS 1.3 client authentication) sends an alert and
    /// closes; sending the client's next bytes can then fail with a broken pipe or a reset
    /// first, which would hide why.
    fn alert_instead(&mut self, e: std::io::Error) -> std::io::Error {
        use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
        if !matches!(e.kind(), BrokenPipe | ConnectionReset | ConnectionAborted) {
            return e;
        }
        let stream = &mut self.0;
        if let Ok(1..) = stream.conn.read_tls(&mut stream.sock)
            && let Err(tls) = stream.conn.process_new_packets()
        {
            return std::io::Error::new(std::io::ErrorKind::InvalidData, tls);
        }
        e
    }
}

impl std::io::Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf).map_err(|e| self.alert_instead(e))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush().map_err(|e| self.alert_instead(e))
    }
}

impl std::fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsStream").finish_non_exhaustive()
    }
}

fn count(metrics: &GuardMetrics, reason: &str) {
    metrics
        .webhook_failures
        .get_or_create(&ReasonLabels {
            reason: reason.to_string(),
        })
        .inc();
}

/// The JSON alert event (webhook body; see docs/guard.md).
pub fn event(agent: &str, tool: &str, anomaly: &Anomaly, mode: AnomalyMode, ts_ms: u64) -> Value {
    let mut e = json!({
        "type": "pf-guard.anomaly",
        "ts_ms": ts_ms,
        "agent": agent,
        "tool": tool,
        "reason": anomaly.kind().code(),
        "action": mode.as_str(),
        "detail": anomaly.describe(),
    });
    match anomaly {
        Anomaly::UnseenSequence { gram } => e["sequence"] = json!(gram),
        Anomaly::RateSpike {
            key,
            count,
            threshold,
            mean,
        } => {
            e["rate"] = json!({"key": key, "count": count, "threshold": threshold, "mean": mean});
        }
    }
    e
}

/// One session's anomaly detection: the detector, what to do when it fires, where alerts go.
pub struct AnomalyMonitor {
    detector: Detector,
    mode: AnomalyMode,
    webhook: Option<Arc<Webhook>>,
}

impl AnomalyMonitor {
    /// A monitor that acts on `detector`'s findings as `mode` says.
    pub fn new(detector: Detector, mode: AnomalyMode, webhook: Option<Arc<Webhook>>) -> Self {
        AnomalyMonitor {
            detector,
            mode,
            webhook,
        }
    }

    /// Alert or deny.
    pub fn mode(&self) -> AnomalyMode {
        self.mode
    }

    /// The detector.
    pub fn detector(&self) -> &Detector {
        &self.detector
    }

    /// What is anomalous about a call to `tool` at `now` (not yet recorded).
    pub fn check(&mut self, tool: &str, now: Duration) -> Vec<Anomaly> {
        self.detector.check(tool, now)
    }

    /// Records that the call ran.
    pub fn record(&mut self, tool: &str, now: Duration) {
        self.detector.record(tool, now);
    }

    /// Sends an event to the webhook, if there is one.
    pub fn notify(&self, event: &Value) {
        if let Some(w) = &self.webhook {
            w.post(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;

    fn failures(m: &GuardMetrics, reason: &str) -> u64 {
        m.webhook_failures
            .get_or_create(&ReasonLabels {
                reason: reason.into(),
            })
            .get()
    }

    #[test]
    fn only_http_and_https_urls_with_a_host_are_accepted() {
        let m = Arc::new(GuardMetrics::default());
        for bad in [
            "https://",
            "https:///hook",
            "ftp://x",
            "http://",
            "http:///path",
            "x",
        ] {
            assert!(
                matches!(Webhook::spawn(bad, m.clone()), Err(AlertError::Url(_))),
                "{bad}"
            );
        }
        for good in ["http://127.0.0.1:9/a", "https://alerts.example/hook"] {
            let hook = Webhook::spawn(good, m.clone()).expect(good);
            hook.close(Duration::from_secs(1));
        }
    }

    #[test]
    fn a_dead_webhook_is_counted_not_fatal() {
        // A port that was just free: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let m = Arc::new(GuardMetrics::default());
        let hook =
            Webhook::spawn(&format!("http://127.0.0.1:{port}/alerts"), m.clone()).expect("spawn");
        hook.post(&json!({"n": 1}));
        hook.close(Duration::from_secs(10));
        assert_eq!(failures(&m, "unreachable"), 1);
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_blocking() {
        // A listener that accepts but never answers holds the sender on its first event.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/a", listener.local_addr().expect("addr"));
        let m = Arc::new(GuardMetrics::default());
        let hook = Webhook::spawn(&url, m.clone()).expect("spawn");
        for n in 0..WEBHOOK_QUEUE + 10 {
            hook.post(&json!({ "n": n }));
        }
        // At most one event is in flight; the queue holds WEBHOOK_QUEUE; the rest were dropped.
        assert!(
            failures(&m, "queue_full") >= 9,
            "{}",
            failures(&m, "queue_full")
        );
        drop(listener);
    }

    #[test]
    fn events_arrive_as_json_posts() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/alerts", listener.local_addr().expect("addr"));
        let m = Arc::new(GuardMetrics::default());
        let hook = Webhook::spawn(&url, m.clone()).expect("spawn");
        let anomaly = Anomaly::UnseenSequence {
            gram: vec![None, Some("a".into()), Some("b".into())],
        };
        hook.post(&event("agent-1", "b", &anomaly, AnomalyMode::Deny, 7));
        let (stream, _) = listener.accept().expect("accept");
        let mut reader = BufReader::new(stream);
        let request = pf_testkit::http::read_message(&mut reader)
            .expect("a request")
            .expect("a request");
        assert!(
            request.start.starts_with("POST /alerts HTTP/1.1"),
            "{request:?}"
        );
        assert!(
            request
                .header("content-type")
                .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/json")),
            "{request:?}"
        );
        let body: Value = serde_json::from_slice(&request.body).expect("json body");
        assert_eq!(body["reason"], "anomaly.unseen_sequence");
        assert_eq!(body["action"], "deny");
        assert_eq!(body["sequence"], json!([null, "a", "b"]));
        use std::io::Write;
        reader
            .get_mut()
            .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
            .expect("answer");
        drop(reader);
        hook.close(Duration::from_secs(10));
        assert_eq!(failures(&m, "status") + failures(&m, "unreachable"), 0);
    }
}
