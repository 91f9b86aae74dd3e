//! The anomaly alert webhook over HTTPS: a receiver with a certificate from a private CA gets
//! the event when the webhook trusts that CA (`pf guard --alert-webhook-ca`), and one whose
//! certificate the webhook does not trust gets nothing while the failure is counted in
//! `pf_guard_alert_webhook_failures_total{reason="tls"}`.

mod pki;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use pf_guard::alert::Webhook;
use pf_guard::metrics::{GuardMetrics, ReasonLabels};
use pf_guard::tls::ClientTls;
use pf_guard::tls_reload::CHECK_INTERVAL;
use pki::{Ca, TlsListener, server_config, wait_for};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// A webhook receiver over TLS with `config`: its URL, the events it got (with their
/// content type), how many handshakes it refused, and the client certificate of each
/// connection it accepted.
struct Receiver {
    url: String,
    events: mpsc::UnboundedReceiver<(String, Value)>,
    failed_handshakes: Arc<std::sync::atomic::AtomicUsize>,
    clients: pki::Clients,
}

async fn receive(
    State(tx): State<mpsc::UnboundedSender<(String, Value)>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    match serde_json::from_slice(&body) {
        Ok(v) => {
            let _ = tx.send((content_type, v));
            StatusCode::NO_CONTENT
        }
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

async fn receiver(config: Arc<rustls::ServerConfig>) -> Receiver {
    let listener = TlsListener::bind(config).await;
    let port = listener.tcp.local_addr().expect("addr").port();
    let failed_handshakes = listener.failed_handshakes.clone();
    let clients = listener.clients.clone();
    let (tx, events) = mpsc::unbounded_channel();
    let router = Router::new()
        .route("/alerts", axum::routing::post(receive))
        .with_state(tx);
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Receiver {
        url: format!("https://127.0.0.1:{port}/alerts"),
        events,
        failed_handshakes,
        clients,
    }
}

fn failures(m: &GuardMetrics, reason: &str) -> u64 {
    m.webhook_failures
        .get_or_create(&ReasonLabels {
            reason: reason.into(),
        })
        .get()
}

/// Posts one event and waits (off the async runtime) until the sender has finished.
async fn post_and_close(hook: Webhook, event: Value) {
    tokio::task::spawn_blocking(move || {
        hook.post(&event);
        hook.close(Duration::from_secs(10));
    })
    .await
    .expect("sender closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_receiver_signed_by_the_given_ca_gets_the_event() {
    let ca = Ca::new("alerts CA");
    let mut rx = receiver(server_config(&ca.server(&["127.0.0.1"]), None)).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let tls = ClientTls {
        ca_file: Some(ca.write(dir.path(), "ca.pem")),
        ..ClientTls::default()
    };
    let m = Arc::new(GuardMetrics::default());
    let hook = Webhook::spawn_with_tls(&rx.url, &tls, m.clone()).expect("spawn");
    post_and_close(hook, json!({"type": "pf-guard.anomaly", "n": 1})).await;
    let (content_type, event) = tokio::time::timeout(Duration::from_secs(5), rx.events.recv())
        .await
        .expect("the event arrives")
        .expect("an event");
    assert_eq!(content_type, "application/json");
    assert_eq!(event, json!({"type": "pf-guard.anomaly", "n": 1}));
    for reason in ["tls", "unreachable", "status", "queue_full"] {
        assert_eq!(failures(&m, reason), 0, "{reason}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_https_receiver_gets_nothing_and_the_failure_is_counted() {
    let ca = Ca::new("alerts CA");
    let mut rx = receiver(server_config(&ca.server(&["127.0.0.1"]), None)).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let m = Arc::new(GuardMetrics::default());
    // Another private CA, then the platform roots: neither knows the receiver's issuer.
    let other = ClientTls {
        ca_file: Some(Ca::new("another CA").write(dir.path(), "other.pem")),
        ..ClientTls::default()
    };
    for tls in [other, ClientTls::default()] {
        let hook = Webhook::spawn_with_tls(&rx.url, &tls, m.clone()).expect("spawn");
        post_and_close(hook, json!({"n": 1})).await;
    }
    assert_eq!(failures(&m, "tls"), 2);
    assert_eq!(failures(&m, "unreachable"), 0);
    assert!(rx.events.try_recv().is_err(), "nothing was delivered");
    assert_eq!(wait_for(&rx.failed_handshakes, 2).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_for_another_host_name_is_not_trusted() {
    let ca = Ca::new("alerts CA");
    let mut rx = receiver(server_config(&ca.server(&["alerts.example.com"]), None)).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let tls = ClientTls {
        ca_file: Some(ca.write(dir.path(), "ca.pem")),
        ..ClientTls::default()
    };
    let m = Arc::new(GuardMetrics::default());
    let hook = Webhook::spawn_with_tls(&rx.url, &tls, m.clone()).expect("spawn");
    post_and_close(hook, json!({"n": 1})).await;
    assert_eq!(failures(&m, "tls"), 1);
    assert!(rx.events.try_recv().is_err(), "nothing was delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_requiring_a_client_certificate_gets_the_event_from_a_webhook_with_one() {
    let (server_ca, client_ca) = (Ca::new("alerts CA"), Ca::new("client CA"));
    let mut rx = receiver(server_config(
        &server_ca.server(&["127.0.0.1"]),
        Some(&client_ca),
    ))
    .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key) = client_ca.client("pf-guard").write(dir.path(), "guard");
    let tls = ClientTls {
        ca_file: Some(server_ca.write(dir.path(), "ca.pem")),
        client_cert: Some(cert),
        client_key: Some(key),
        ..ClientTls::default()
    };
    let m = Arc::new(GuardMetrics::default());
    let hook = Webhook::spawn_with_tls(&rx.url, &tls, m.clone()).expect("spawn");
    post_and_close(hook, json!({"n": 2})).await;
    let (_, event) = tokio::time::timeout(Duration::from_secs(5), rx.events.recv())
        .await
        .expect("the event arrives")
        .expect("an event");
    assert_eq!(event, json!({"n": 2}));
    assert_eq!(rx.failed_handshakes.load(Ordering::SeqCst), 0);
}

#[test]
fn unusable_webhook_tls_files_are_refused_at_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let not_pem = dir.path().join("ca.txt");
    std::fs::write(&not_pem, "not a certificate\n").expect("write");
    let tls = ClientTls {
        ca_file: Some(not_pem),
        ..ClientTls::default()
    };
    let m = Arc::new(GuardMetrics::default());
    let e = Webhook::spawn_with_tls("https://127.0.0.1:1/alerts", &tls, m.clone())
        .err()
        .expect("refused");
    assert!(e.to_string().contains("ca.txt"), "{e}");
    // A plain http webhook does not read TLS files.
    assert!(Webhook::spawn_with_tls("http://127.0.0.1:1/alerts", &tls, m).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_requiring_a_client_certificate_refuses_a_webhook_without_one() {
    let (server_ca, client_ca) = (Ca::new("alerts CA"), Ca::new("client CA"));
    let mut rx = receiver(server_config(
        &server_ca.server(&["127.0.0.1"]),
        Some(&client_ca),
    ))
    .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let tls = ClientTls {
        ca_file: Some(server_ca.write(dir.path(), "ca.pem")),
        ..ClientTls::default()
    };
    let m = Arc::new(GuardMetrics::default());
    let hook = Webhook::spawn_with_tls(&rx.url, &tls, m.clone()).expect("spawn");
    post_and_close(hook, json!({"n": 3})).await;
    // TLS 1.3: the refusal arrives as an alert after the client's side of the handshake.
    assert_eq!(
        failures(&m, "tls"),
        1,
        "unreachable: {}",
        failures(&m, "unreachable")
    );
    assert!(rx.events.try_recv().is_err(), "nothing was delivered");
    assert_eq!(wait_for(&rx.failed_handshakes, 1).await, 1);
}

/// Replaces `path` with `text`: written beside it, then renamed over it.
fn rotate(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

async fn next_event(rx: &mut Receiver) -> Value {
    tokio::time::timeout(Duration::from_secs(5), rx.events.recv())
        .await
        .expect("the event arrives")
        .expect("an event")
        .1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_client_certificate_is_not_sent_over_the_kept_webhook_connection() {
    let (server_ca, client_ca) = (Ca::new("alerts CA"), Ca::new("client CA"));
    let mut rx = receiver(server_config(
        &server_ca.server(&["127.0.0.1"]),
        Some(&client_ca),
    ))
    .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let first = client_ca.client("pf-guard");
    let (cert, key) = first.write(dir.path(), "guard");
    let tls = ClientTls {
        ca_file: Some(server_ca.write(dir.path(), "ca.pem")),
        client_cert: Some(cert.clone()),
        client_key: Some(key.clone()),
        ..ClientTls::default()
    };
    let m = Arc::new(GuardMetrics::default());
    let hook = Webhook::spawn_with_tls(&rx.url, &tls, m.clone()).expect("spawn");
    // Two events, one kept-alive connection.
    for n in [1, 2] {
        hook.post(&json!({ "n": n }));
        assert_eq!(next_event(&mut rx).await, json!({ "n": n }));
    }
    let seen = rx.clients.clone();
    let clients = move || seen.lock().expect("clients").clone();
    assert_eq!(clients(), [Some(first.cert.clone())]);

    // A certificate the receiver does not trust: the next event makes a new connection, which
    // the receiver refuses, rather than riding on the one made with the old certificate.
    let rogue = Ca::new("rogue CA").client("pf-guard");
    rotate(&key, &rogue.key_pem);
    rotate(&cert, &rogue.cert_pem);
    tokio::time::sleep(CHECK_INTERVAL + Duration::from_millis(200)).await;
    hook.post(&json!({"n": 3}));
    assert_eq!(wait_for(&rx.failed_handshakes, 1).await, 1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while failures(&m, "tls") == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(failures(&m, "tls"), 1);
    assert!(rx.events.try_recv().is_err(), "nothing was delivered");

    // A trusted certificate again: delivered over a connection presenting it.
    let fresh = client_ca.client("pf-guard");
    rotate(&key, &fresh.key_pem);
    rotate(&cert, &fresh.cert_pem);
    tokio::time::sleep(CHECK_INTERVAL + Duration::from_millis(200)).await;
    hook.post(&json!({"n": 4}));
    assert_eq!(next_event(&mut rx).await, json!({"n": 4}));
    assert_eq!(
        clients(),
        [Some(first.cert.clone()), Some(fresh.cert.clone())]
    );
    tokio::task::spawn_blocking(move || hook.close(Duration::from_secs(5)))
        .await
        .expect("closed");
}
