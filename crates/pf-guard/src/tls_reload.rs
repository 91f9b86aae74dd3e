//! TLS files re-read when they change on disk, so a long-running guard picks up certificates
//! that cert-manager, a SPIFFE agent or an operator rotates, without a restart: the client
//! certificate and key ([`ReloadingIdentity`], a rustls `ResolvesClientCert`) and the CA file
//! ([`ReloadingVerifier`], a `ServerCertVerifier` around rustls's `WebPkiServerVerifier`).
//!
//! The files are looked at when the client that owns them is about to send (the upstream pool
//! before a request, the alert webhook before an event), through the configuration's
//! [`TlsWatch`], at most once per [`CHECK_INTERVAL`]: their modification time and length are
//! compared with those of the last read. A changed set is read and checked exactly as at start.
//! If the new files are unusable (a half-written pair, a key that is not the certificate's, a CA
//! file without a certificate), the last good material stays in use, the error is logged and
//! counted in `pf_guard_tls_reload_failures_total{reason}`, and the files are read again when
//! they next change. The guard never falls back to presenting no certificate or trusting nothing
//! new: the material in memory is what was last valid, and a server still decides whether it
//! accepts it (an expired certificate it refuses fails closed there).
//!
//! Every successful re-read bumps the watch's generation counter; the owner compares it with the
//! generation its connections were made at and drops them (`crate::pool`), so connections made
//! with replaced material take no new requests. Handshakes only read the material in memory:
//! re-reads happen where the owner can retire its connections in the same step.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::metrics::ReasonLabels;
use crate::tls::TlsError;

/// Shortest time between two looks at the files.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// What identifies a file's version without reading it: modification time and length (`None`
/// when it cannot be read).
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &PathBuf) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// A value read from files, read again when they change.
struct Watched<T> {
    /// What the value is, for the log and the failure counter (`client_identity`, `ca`).
    what: &'static str,
    paths: Vec<PathBuf>,
    load: Box<dyn Fn() -> Result<T, TlsError> + Send + Sync>,
    failures: Option<Family<ReasonLabels, Counter>>,
    /// Bumped at every successful re-read (shared by the files of one client configuration).
    generation: Arc<AtomicU64>,
    state: Mutex<State<T>>,
}

struct State<T> {
    /// The stamps of the files when they were last read (successfully or not).
    stamps: Vec<Stamp>,
    value: Arc<T>,
    checked: Instant,
}

impl<T> Watched<T> {
    /// Reads the value now; an error here is the caller's (at start, nothing is in use yet).
    fn new(
        what: &'static str,
        paths: Vec<PathBuf>,
        load: impl Fn() -> Result<T, TlsError> + Send + Sync + 'static,
        failures: Option<Family<ReasonLabels, Counter>>,
        generation: Arc<AtomicU64>,
    ) -> Result<Self, TlsError> {
        // Stamped before reading: a change during the read is seen at the next check.
        let stamps = paths.iter().map(stamp).collect();
        let value = Arc::new(load()?);
        Ok(Watched {
            what,
            paths,
            load: Box::new(load),
            failures,
            generation,
            state: Mutex::new(State {
                stamps,
                value,
                checked: Instant::now(),
            }),
        })
    }

    /// The value in use.
    fn value(&self) -> Arc<T> {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .value
            .clone()
    }

    /// Reads the files again if they changed since the last look and that look is at least
    /// `min_interval` old.
    fn refresh(&self, min_interval: Duration) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.checked.elapsed() < min_interval {
            return;
        }
        state.checked = Instant::now();
        let stamps: Vec<Stamp> = self.paths.iter().map(stamp).collect();
        if stamps == state.stamps {
            return;
        }
        state.stamps = stamps;
        match (self.load)() {
            Ok(value) => {
                tracing::info!(what = self.what, files = ?self.paths, "TLS files changed; reloaded");
                state.value = Arc::new(value);
                // Release: an owner that sees the new generation makes connections whose
                // handshakes read the new value (under the same lock).
                self.generation.fetch_add(1, Ordering::Release);
            }
            Err(e) => {
                tracing::error!(
                    what = self.what,
                    error = %e,
                    "TLS files changed but are unusable; keeping the previous ones"
                );
                if let Some(failures) = &self.failures {
                    failures
                        .get_or_create(&ReasonLabels {
                            reason: self.what.to_string(),
                        })
                        .inc();
                }
            }
        }
    }
}

/// The client certificate and key, re-read when their files change.
pub(crate) struct ReloadingIdentity(Watched<CertifiedKey>);

impl ReloadingIdentity {
    /// Reads the pair now (an unusable pair is an error naming the files).
    pub(crate) fn new(
        cert: PathBuf,
        key: PathBuf,
        provider: Arc<CryptoProvider>,
        failures: Option<Family<ReasonLabels, Counter>>,
        generation: Arc<AtomicU64>,
    ) -> Result<Self, TlsError> {
        let paths = vec![cert.clone(), key.clone()];
        let load = move || {
            let chain = crate::tls::read_certificates(&cert)?;
            let der = crate::tls::read_private_key(&key)?;
            // from_der checks that the key's public half is the leaf certificate's.
            CertifiedKey::from_der(chain, der, &provider).map_err(|source| TlsError::Identity {
                cert: cert.clone(),
                key: key.clone(),
                source,
            })
        };
        Ok(ReloadingIdentity(Watched::new(
            "client_identity",
            paths,
            load,
            failures,
            generation,
        )?))
    }
}

/// The watched TLS files behind one client configuration, for a connection pool that must not
/// keep using connections made with material that has since been replaced.
#[derive(Clone, Default)]
pub(crate) struct TlsWatch {
    identity: Option<Arc<ReloadingIdentity>>,
    verifier: Option<Arc<ReloadingVerifier>>,
    generation: Arc<AtomicU64>,
}

impl TlsWatch {
    /// A watch over `identity` and `verifier`, which must bump `generation` when they re-read
    /// their files.
    pub(crate) fn new(
        identity: Option<Arc<ReloadingIdentity>>,
        verifier: Option<Arc<ReloadingVerifier>>,
        generation: Arc<AtomicU64>,
    ) -> Self {
        TlsWatch {
            identity,
            verifier,
            generation,
        }
    }

    /// How many times the material has been replaced since start (one atomic load).
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Looks at the files, re-reading changed ones, unless they were looked at less than
    /// `min_interval` ago; the generation after. An owner that limits how often it calls this
    /// itself passes `Duration::ZERO`.
    pub(crate) fn refresh(&self, min_interval: Duration) -> u64 {
        if let Some(identity) = &self.identity {
            identity.0.refresh(min_interval);
        }
        if let Some(verifier) = &self.verifier {
            verifier.roots.refresh(min_interval);
        }
        self.generation()
    }
}

impl std::fmt::Debug for TlsWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsWatch")
            .field("identity", &self.identity)
            .field("verifier", &self.verifier)
            .field("generation", &self.generation())
            .finish()
    }
}

impl ResolvesClientCert for ReloadingIdentity {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.value())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

impl std::fmt::Debug for ReloadingIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingIdentity")
            .field("files", &self.0.paths)
            .finish_non_exhaustive()
    }
}

/// Server certificate checks against a CA file's certificates, re-read when the file changes.
pub(crate) struct ReloadingVerifier {
    roots: Watched<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ReloadingVerifier {
    /// Reads the CA file now (a file without a usable CA certificate is an error naming it).
    pub(crate) fn new(
        ca_file: PathBuf,
        provider: Arc<CryptoProvider>,
        failures: Option<Family<ReasonLabels, Counter>>,
        generation: Arc<AtomicU64>,
    ) -> Result<Self, TlsError> {
        let verifier_provider = provider.clone();
        let path = ca_file.clone();
        let load = move || {
            let roots = crate::tls::root_store(Some(&path))?;
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), verifier_provider.clone())
                .build()
                .map_err(|_| TlsError::NoUsableCa { path: path.clone() })
        };
        Ok(ReloadingVerifier {
            roots: Watched::new("ca", vec![ca_file], load, failures, generation)?,
            provider,
        })
    }
}

impl ServerCertVerifier for ReloadingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.roots.value().verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    // Handshake signatures depend on the certificate already verified, not on the roots.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

impl std::fmt::Debug for ReloadingVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingVerifier")
            .field("ca_file", &self.roots.paths)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate and its key written to `dir/name.{crt,key}`; the certificate.
    fn pair(dir: &std::path::Path, name: &str) -> (PathBuf, PathBuf, CertificateDer<'static>) {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec![format!("{name}.example")])
            .expect("params")
            .self_signed(&key)
            .expect("certificate");
        let (c, k) = (dir.join("guard.crt"), dir.join("guard.key"));
        std::fs::write(&c, cert.pem()).expect("write cert");
        std::fs::write(&k, key.serialize_pem()).expect("write key");
        (c, k, cert.der().clone())
    }

    fn leaf(identity: &ReloadingIdentity) -> CertificateDer<'static> {
        identity.resolve(&[], &[]).expect("an identity").cert[0].clone()
    }

    #[test]
    fn files_are_looked_at_again_only_after_the_interval_and_handshakes_never_reread() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (cert, key, first) = pair(dir.path(), "first");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let failures = Family::<ReasonLabels, Counter>::default();
        let generation = Arc::new(AtomicU64::new(0));
        let identity = Arc::new(
            ReloadingIdentity::new(
                cert,
                key.clone(),
                provider,
                Some(failures.clone()),
                generation.clone(),
            )
            .expect("a good pair"),
        );
        let watch = TlsWatch::new(Some(identity.clone()), None, generation);
        assert_eq!(leaf(&identity), first);
        let (_, _, second) = pair(dir.path(), "second");
        assert_eq!(
            watch.refresh(CHECK_INTERVAL),
            0,
            "within the interval: not re-read"
        );
        assert_eq!(leaf(&identity), first);
        std::thread::sleep(CHECK_INTERVAL + Duration::from_millis(100));
        assert_eq!(
            leaf(&identity),
            first,
            "a handshake does not look at the files"
        );
        assert_eq!(
            watch.refresh(CHECK_INTERVAL),
            1,
            "after it: the rotated pair"
        );
        assert_eq!(leaf(&identity), second);
        // A key file without a key keeps the pair in use and is counted once.
        std::fs::write(&key, "not a key\n").expect("write");
        assert_eq!(watch.refresh(Duration::ZERO), 1);
        assert_eq!(watch.refresh(Duration::ZERO), 1);
        assert_eq!(leaf(&identity), second);
        let reason = ReasonLabels {
            reason: "client_identity".into(),
        };
        assert_eq!(failures.get_or_create(&reason).get(), 1);
    }
}
