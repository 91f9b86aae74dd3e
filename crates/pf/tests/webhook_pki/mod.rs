//! Test PKI for the `pf guard` webhook tests: private CAs made with rcgen, the certificates they
//! sign, and a blocking HTTPS alert receiver that requires a client certificate (mutual TLS).

#![allow(dead_code)]

use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

pub use pf_testkit::pki::{Ca, Leaf};
use serde_json::Value;

/// An HTTPS alert receiver on a loopback port that presents `leaf` and requires a client
/// certificate chaining to its client CA; every POST body it accepts is sent as JSON on
/// `events`, every refused handshake counted.
pub struct MtlsReceiver {
    /// `https://127.0.0.1:PORT/alerts`.
    pub url: String,
    /// The JSON bodies received.
    pub events: mpsc::Receiver<Value>,
    refused: Arc<AtomicUsize>,
}

impl MtlsReceiver {
    /// Starts the receiver on a thread of its own (it lives as long as the test process).
    pub fn start(leaf: &Leaf, client_ca: &Ca) -> MtlsReceiver {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(client_ca.cert.clone()).expect("client CA");
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            roots.into(),
            provider.clone(),
        )
        .build()
        .expect("client verifier");
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![leaf.cert.clone()], leaf.key.clone_key())
            .expect("server certificate");
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("https://{}/alerts", listener.local_addr().expect("addr"));
        let (tx, events) = mpsc::channel();
        let refused = Arc::new(AtomicUsize::new(0));
        let counter = refused.clone();
        std::thread::spawn(move || {
            for tcp in listener.incoming().flatten() {
                if let Err(e) = serve_one(tcp, config.clone(), &tx) {
                    eprintln!("alert receiver: {e}");
                    counter.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        MtlsReceiver {
            url,
            events,
            refused,
        }
    }

    /// How many connections failed (handshake refused or request unreadable).
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }

    /// Waits (up to 10 s) until `n` connections have failed; returns the count then.
    pub fn wait_refused(&self, n: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.refused() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.refused()
    }
}

/// Completes the handshake (the client's certificate is checked here), reads one request and
/// answers 204.
fn serve_one(
    tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
    tx: &mpsc::Sender<Value>,
) -> std::io::Result<()> {
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let conn = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    let mut reader = BufReader::new(&mut tls);
    let request =
        pf_testkit::http::read_message(&mut reader)?.ok_or(std::io::ErrorKind::UnexpectedEof)?;
    drop(reader);
    tls.write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\ncontent-length: 0\r\n\r\n")?;
    tls.flush()?;
    tls.conn.send_close_notify();
    let _ = tls.conn.complete_io(&mut tls.sock);
    let event = serde_json::from_slice(&request.body).map_err(std::io::Error::other)?;
    let _ = tx.send(event);
    Ok(())
}
