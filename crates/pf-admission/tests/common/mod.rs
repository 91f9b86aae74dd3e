//! Shared test and benchmark setup: signed example bundles in a bundle store, an attestor key,
//! an `Admission` with a JSONL audit log, and an in-process HTTPS server plus client.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use pf_admission::attest::{DsseAttestationCheck, VERIFICATION_PREDICATE_TYPE};
use pf_admission::certs::{WebhookTarget, generate};
use pf_admission::policy::GuardConfig;
use pf_admission::server::{ServeOptions, serve, tls_config};
use pf_admission::{Admission, BundleStore, JsonlLog, Verifier};
use pf_bundle::{Envelope, Limits, Sha256Digest, Statement, Subject, TrustPolicy};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

/// The guard image used in tests (pinned).
pub fn guard_image() -> String {
    format!("ghcr.io/provability-fabric/pf@sha256:{}", "b".repeat(64))
}

pub fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// Builds the example agent's bundle and signs it with its `release` key.
pub fn build_signed(agent: &str) -> (Vec<u8>, Envelope) {
    let dir = examples_dir().join(agent);
    let spec_path = dir.join("agent.yaml");
    let loaded = pf_spec::load(&spec_path).expect("example spec");
    let files = loaded.spec.referenced_files();
    let built = pf_bundle::build_from_dir(
        &loaded.base_dir,
        &spec_path,
        &files,
        &loaded.spec.name,
        &loaded.spec.version,
        Limits::default(),
    )
    .expect("build bundle");
    let key = pf_bundle::keys::read_signing_key(&dir.join("keys/release.key.pem")).expect("key");
    let env = pf_bundle::sign_bundle(&built.bytes, &key, None, &Limits::default()).expect("sign");
    (built.bytes, env)
}

/// The example agent's trust policy: 1 of {release, platform}.
pub fn trust_policy(agent: &str) -> TrustPolicy {
    let keys = examples_dir().join(agent).join("keys");
    let k = |n: &str| {
        pf_bundle::keys::read_verifying_key(&keys.join(format!("{n}.pub.pem"))).expect("pub")
    };
    TrustPolicy::new(
        1,
        vec![
            ("release".into(), k("release")),
            ("platform".into(), k("platform")),
        ],
    )
    .expect("policy")
}

/// A verification attestation for `digest` signed by `key`.
pub fn attestation(key: &SigningKey, digest: &Sha256Digest) -> Vec<u8> {
    Statement::new(
        vec![Subject::sha256("bundle.pfb", digest)],
        VERIFICATION_PREDICATE_TYPE,
        serde_json::json!({"verifier": "test", "result": "passed"}),
    )
    .sign(key)
    .to_json()
    .into_bytes()
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub store: BundleStore,
    pub digest: Sha256Digest,
    pub attestor: SigningKey,
    pub audit_path: PathBuf,
    pub guard: GuardConfig,
    pub admission: Arc<Admission>,
    pub verifier: Arc<Verifier>,
}

pub fn guard() -> GuardConfig {
    GuardConfig {
        image: guard_image(),
        cpu: "200m".into(),
        memory: "128Mi".into(),
        upstream: "http://127.0.0.1:8080/mcp".into(),
    }
}

/// Store with the coding-agent bundle, its envelope and a valid attestation.
pub fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = BundleStore::new(&dir.path().join("store"));
    let (archive, env) = build_signed("coding-agent");
    let attestor = pf_bundle::keys::generate();
    let digest = Sha256Digest::of(&archive);
    store
        .put(&archive, &env, Some(&attestation(&attestor, &digest)))
        .expect("put");
    let att_policy =
        TrustPolicy::new(1, vec![("verifier".into(), attestor.verifying_key())]).expect("p");
    let verifier = Arc::new(Verifier::new(
        store.clone(),
        trust_policy("coding-agent"),
        Arc::new(DsseAttestationCheck::new(
            att_policy,
            VERIFICATION_PREDICATE_TYPE,
        )),
        Limits::default(),
    ));
    let audit_path = dir.path().join("audit.jsonl");
    let log = Arc::new(JsonlLog::open(&audit_path).expect("log"));
    let admission = Arc::new(Admission::new(Arc::clone(&verifier), guard(), log));
    Fixture {
        dir,
        store,
        digest,
        attestor,
        audit_path,
        guard: guard(),
        admission,
        verifier,
    }
}

/// A fixture review with the placeholders filled in.
pub fn review(name: &str, digest: &Sha256Digest) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let hex = digest.to_hex();
    std::fs::read_to_string(p)
        .expect("fixture")
        .replace("${BUNDLE_HEX16}", &hex[..16])
        .replace("${BUNDLE_HEX}", &hex)
        .replace("${GUARD_IMAGE}", &guard_image())
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub ca_pem: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = self.task.await;
    }
}

pub async fn start_server(admission: Arc<Admission>, opts: ServeOptions) -> TestServer {
    let g = generate(&WebhookTarget {
        service: "pf-admission".into(),
        namespace: "pf-system".into(),
        extra_names: vec!["localhost".into()],
        timeout_seconds: 10,
    })
    .expect("certs");
    let tls = tls_config(g.cert_pem.as_bytes(), g.key_pem.as_bytes()).expect("tls");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        serve(listener, tls, admission, opts, async {
            let _ = rx.await;
        })
        .await
        .expect("serve");
    });
    TestServer {
        addr,
        ca_pem: g.ca_pem,
        shutdown: Some(tx),
        task,
    }
}

/// A keep-alive HTTPS connection to the test server, in the HTTP version its handshake picked.
pub struct Conn {
    sender: Sender,
    /// The HTTP version of the last response.
    pub version: Option<http::Version>,
}

enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

/// A TLS connection to the test server offering `alpn` (nothing when empty).
pub async fn tls_connect(
    server: &TestServer,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(server.ca_pem.as_bytes()) {
        roots.add(c.expect("ca")).expect("add");
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("tls handshake")
}

/// An HTTP/1.1 connection offering no ALPN (the server then speaks HTTP/1.1).
pub async fn connect(server: &TestServer) -> Conn {
    connect_alpn(server, &[]).await
}

/// An HTTP/2 connection: ALPN `h2` only.
pub async fn connect_h2(server: &TestServer) -> Conn {
    connect_alpn(server, &[b"h2"]).await
}

/// A connection offering `alpn`, spoken in the protocol the server picked (HTTP/1.1 unless `h2`).
pub async fn connect_alpn(server: &TestServer, alpn: &[&[u8]]) -> Conn {
    let (sender, _) = connect_alpn_watched(server, alpn).await;
    sender
}

/// As [`connect_alpn`], with the client connection's task (it ends when the connection closes).
pub async fn connect_alpn_watched(
    server: &TestServer,
    alpn: &[&[u8]],
) -> (Conn, tokio::task::JoinHandle<()>) {
    let tls = tls_connect(server, alpn).await;
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
    let io = TokioIo::new(tls);
    let (sender, task) = if h2 {
        let (sender, conn) =
            hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                .await
                .expect("h2");
        let task = tokio::spawn(async move {
            let _ = conn.await;
        });
        (Sender::H2(sender), task)
    } else {
        let (sender, conn) = hyper::client::conn::http1::handshake(io).await.expect("h1");
        let task = tokio::spawn(async move {
            let _ = conn.await;
        });
        (Sender::H1(sender), task)
    };
    (
        Conn {
            sender,
            version: None,
        },
        task,
    )
}

impl Conn {
    /// A request for `path` as this connection's protocol writes it: `:authority` on HTTP/2,
    /// `Host` on HTTP/1.1.
    fn builder(&self, method: &str, path: &str) -> http::request::Builder {
        match self.sender {
            Sender::H1(_) => http::Request::builder()
                .method(method)
                .uri(path)
                .header("host", "localhost"),
            Sender::H2(_) => http::Request::builder()
                .method(method)
                .uri(format!("https://localhost{path}"))
                .version(http::Version::HTTP_2),
        }
    }

    async fn send(
        &mut self,
        req: http::Request<Full<Bytes>>,
    ) -> Result<http::Response<hyper::body::Incoming>, hyper::Error> {
        let resp = match &mut self.sender {
            Sender::H1(s) => {
                s.ready().await?;
                s.send_request(req).await?
            }
            Sender::H2(s) => {
                s.ready().await?;
                s.send_request(req).await?
            }
        };
        self.version = Some(resp.version());
        Ok(resp)
    }

    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Vec<u8>,
        content_type: Option<&str>,
    ) -> (u16, Vec<u8>) {
        let mut b = self.builder(method, path);
        if let Some(ct) = content_type {
            b = b.header("content-type", ct);
        }
        let req = b.body(Full::new(Bytes::from(body))).expect("request");
        let resp = self.send(req).await.expect("send");
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec();
        (status, body)
    }

    /// Like [`Conn::request`] for a JSON POST, but a connection error is returned instead of
    /// panicking.
    pub async fn try_request(&mut self, path: &str, body: Vec<u8>) -> Result<u16, hyper::Error> {
        let req = self
            .builder("POST", path)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("request");
        Ok(self.send(req).await?.status().as_u16())
    }

    pub async fn post(&mut self, path: &str, body: &str) -> (u16, Vec<u8>) {
        self.request(
            "POST",
            path,
            body.as_bytes().to_vec(),
            Some("application/json"),
        )
        .await
    }
}

/// Parses a review response: (allowed, message, patch JSON).
pub fn verdict(body: &[u8]) -> (bool, String, Option<serde_json::Value>) {
    let v: serde_json::Value = serde_json::from_slice(body).expect("response json");
    assert_eq!(v["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(v["kind"], "AdmissionReview");
    let r = &v["response"];
    let patch = r["patch"].as_str().map(|p| {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(p)
            .expect("b64");
        serde_json::from_slice(&bytes).expect("patch json")
    });
    (
        r["allowed"].as_bool().expect("allowed"),
        r["status"]["message"].as_str().unwrap_or("").to_string(),
        patch,
    )
}
