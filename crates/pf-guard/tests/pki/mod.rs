//! Test PKI for the TLS integration tests: private CAs made with rcgen, the server and client
//! certificates they sign, and a TLS listener for `axum::serve`.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

pub use pf_testkit::pki::{Ca, Leaf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// A server configuration presenting `leaf`; with `client_ca`, a client certificate that
/// chains to it is required (mutual TLS).
pub fn server_config(leaf: &Leaf, client_ca: Option<&Ca>) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("protocol versions");
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca.cert.clone()).expect("client CA");
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(vec![leaf.cert.clone()], leaf.key.clone_key())
        .expect("server certificate");
    Arc::new(config)
}

/// The client certificate (leaf) each accepted connection presented, in order.
pub type Clients = Arc<std::sync::Mutex<Vec<Option<rustls::pki_types::CertificateDer<'static>>>>>;

/// A TLS listener for `axum::serve`; failed handshakes are skipped (and counted).
pub struct TlsListener {
    pub tcp: TcpListener,
    pub acceptor: TlsAcceptor,
    pub failed_handshakes: Arc<std::sync::atomic::AtomicUsize>,
    pub clients: Clients,
}

impl TlsListener {
    /// Listens on a free loopback port with `config`.
    pub async fn bind(config: Arc<rustls::ServerConfig>) -> TlsListener {
        TlsListener {
            tcp: TcpListener::bind("127.0.0.1:0").await.expect("bind"),
            acceptor: TlsAcceptor::from(config),
            failed_handshakes: Arc::default(),
            clients: Clients::default(),
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            match self.acceptor.accept(tcp).await {
                Ok(tls) => {
                    let leaf = tls.get_ref().1.peer_certificates().and_then(|c| c.first());
                    self.clients
                        .lock()
                        .expect("clients")
                        .push(leaf.map(|c| c.clone().into_owned()));
                    return (tls, addr);
                }
                Err(_) => {
                    self.failed_handshakes
                        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// Waits (up to 5 s) until `counter` reaches `n`, returning its value then; the server counts
/// a refused handshake a moment after the client has seen the refusal.
pub async fn wait_for(counter: &std::sync::atomic::AtomicUsize, n: usize) -> usize {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let now = counter.load(std::sync::atomic::Ordering::SeqCst);
        if now >= n || tokio::time::Instant::now() >= deadline {
            return now;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
