//! The guard's TLS client settings, shared by the upstream pool and the alert webhook: which CA
//! roots a server's chain must end in (the platform's, or a private CA file instead), and the
//! certificate the guard presents when the server asks for one (mutual TLS).
//!
//! Everything is read and checked when the client is built, so a missing, unreadable or
//! mismatched file stops the guard at start rather than failing requests later. The CA file and
//! the client certificate and key are then watched and re-read when they change
//! ([`crate::tls_reload`]), so rotated certificates apply without a restart: the upstream pool
//! and the webhook drop the connections made with the old files ([`crate::pool`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::metrics::ReasonLabels;
use crate::tls_reload::{ReloadingIdentity, ReloadingVerifier, TlsWatch};

/// Why a TLS client could not be built from its settings.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file has a malformed PEM section.
    #[error("{}: not PEM {what}: {why}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What the file should hold (`certificates`, `private key`).
        what: &'static str,
        /// The parser's complaint.
        why: String,
    },
    /// A certificate file has no `CERTIFICATE` block.
    #[error("{}: no CERTIFICATE block", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A CA file has certificates, none of which can be a trust anchor.
    #[error("{}: no usable CA certificate", path.display())]
    NoUsableCa {
        /// The file.
        path: PathBuf,
    },
    /// A key file has no private key block.
    #[error(
        "{}: no private key (expected a PEM `PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY` block)",
        path.display()
    )]
    NoPrivateKey {
        /// The file.
        path: PathBuf,
    },
    /// The key file holds a passphrase-protected key.
    #[error(
        "{}: the private key is encrypted, which the guard does not read; give it the key unencrypted (e.g. `openssl pkey -in KEY -out PLAIN.key`), in a file only the guard can read",
        path.display()
    )]
    EncryptedKey {
        /// The file.
        path: PathBuf,
    },
    /// Only one of the client certificate and its key was given.
    #[error(
        "a client certificate needs both the certificate chain and its private key; {missing} is missing"
    )]
    IncompleteIdentity {
        /// Which of the two is missing (`the certificate`, `the private key`).
        missing: &'static str,
    },
    /// The client key cannot be used with the client certificate (not its key, unsupported
    /// algorithm, unparsable certificate).
    #[error("client key {} does not fit certificate {}: {source}", key.display(), cert.display())]
    Identity {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls found.
        source: rustls::Error,
    },
    /// rustls refused the configuration (no protocol version in common with the provider).
    #[error("TLS configuration: {0}")]
    Config(rustls::Error),
}

/// How the guard's TLS client checks a server and identifies itself.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    /// PEM file of CA certificates to trust instead of the platform's roots (a private CA).
    pub ca_file: Option<PathBuf>,
    /// PEM certificate chain (leaf first) presented when the server asks for a client
    /// certificate; needs [`ClientTls::client_key`].
    pub client_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of [`ClientTls::client_cert`].
    pub client_key: Option<PathBuf>,
    /// Where a rotated file that cannot be used is counted (`reason` `client_identity` or
    /// `ca`), e.g. `GuardMetrics::tls_reload_failures`.
    pub reload_failures: Option<Family<ReasonLabels, Counter>>,
}

impl ClientTls {
    /// The configuration alone, for the tests of how the files are read.
    #[cfg(test)]
    fn client_config(&self) -> Result<rustls::ClientConfig, TlsError> {
        Ok(self.watched_config()?.0)
    }

    /// The rustls client configuration (ring crypto, TLS 1.2 and 1.3): roots from the CA file
    /// or the platform, and the client certificate if one is configured; and the watch over
    /// the CA file and the client certificate and key, read now and again whenever the owner of
    /// the configuration refreshes the watch and they have changed (the watch's generation
    /// then says that connections made earlier hold replaced material).
    pub(crate) fn watched_config(&self) -> Result<(rustls::ClientConfig, TlsWatch), TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let generation = Arc::new(AtomicU64::new(0));
        // Read the identity first: a bad key is reported even when the roots are fine.
        let identity = self.identity(&provider, &generation)?.map(Arc::new);
        let builder = versions(provider.clone())?;
        let (builder, verifier) = match &self.ca_file {
            Some(path) => {
                let verifier = Arc::new(ReloadingVerifier::new(
                    path.clone(),
                    provider,
                    self.reload_failures.clone(),
                    generation.clone(),
                )?);
                let builder = builder
                    .dangerous()
                    .with_custom_certificate_verifier(verifier.clone());
                (builder, Some(verifier))
            }
            None => (builder.with_root_certificates(root_store(None)?), None),
        };
        let mut config = match &identity {
            None => builder.with_no_client_auth(),
            Some(identity) => builder.with_client_cert_resolver(identity.clone()),
        };
        if identity.is_some() || verifier.is_some() {
            // A resumed session skips both certificate checks (RFC 8446 §2.2): a connection
            // made after a rotation must not ride on a ticket from before it.
            config.resumption = rustls::client::Resumption::disabled();
        }
        Ok((config, TlsWatch::new(identity, verifier, generation)))
    }

    /// The client certificate and key, when both are configured.
    fn identity(
        &self,
        provider: &Arc<rustls::crypto::CryptoProvider>,
        generation: &Arc<AtomicU64>,
    ) -> Result<Option<ReloadingIdentity>, TlsError> {
        match (&self.client_cert, &self.client_key) {
            (None, None) => Ok(None),
            (Some(_), None) => Err(TlsError::IncompleteIdentity {
                missing: "the private key",
            }),
            (None, Some(_)) => Err(TlsError::IncompleteIdentity {
                missing: "the certificate",
            }),
            (Some(cert), Some(key)) => Ok(Some(ReloadingIdentity::new(
                cert.clone(),
                key.clone(),
                provider.clone(),
                self.reload_failures.clone(),
                generation.clone(),
            )?)),
        }
    }
}

/// A client that trusts no server, for a connector that is never asked for TLS (a plain
/// `http://` upstream), so the platform's roots are not read for nothing.
pub(crate) fn trusting_nothing() -> Result<rustls::ClientConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(versions(provider)?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth())
}

/// A client configuration with `provider`'s crypto and its safe protocol versions (TLS 1.2 and
/// 1.3), still to be told how servers are checked.
fn versions(
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<rustls::ConfigBuilder<rustls::ClientConfig, rustls::WantsVerifier>, TlsError> {
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)
}

/// The roots a server's chain must end in: `ca_file`'s certificates, else the platform's.
pub(crate) fn root_store(ca_file: Option<&Path>) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let (added, _) = roots.add_parsable_certificates(read_certificates(path)?);
            if added == 0 {
                return Err(TlsError::NoUsableCa {
                    path: path.to_path_buf(),
                });
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::warn!(error = %e, "could not load some platform CA certificates");
            }
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                tracing::warn!(
                    "no platform CA certificates found; https connections will fail until a CA file is given"
                );
            }
        }
    }
    Ok(roots)
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Every `CERTIFICATE` block of a PEM file (at least one).
pub(crate) fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(&read(path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_path_buf(),
            what: "certificates",
            why: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// The first private key of a PEM file.
pub(crate) fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    use rustls::pki_types::pem::Error;
    let pem = read(path)?;
    // PKCS#8 `ENCRYPTED PRIVATE KEY` blocks and OpenSSL's legacy `Proc-Type: 4,ENCRYPTED`
    // headers: named as such, rather than "no private key" or a base64 error.
    let encrypted = |marker: &[u8]| pem.windows(marker.len()).any(|w| w == marker);
    if encrypted(b"-----BEGIN ENCRYPTED PRIVATE KEY-----") || encrypted(b"Proc-Type: 4,ENCRYPTED") {
        return Err(TlsError::EncryptedKey {
            path: path.to_path_buf(),
        });
    }
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        Error::NoItemsFound => TlsError::NoPrivateKey {
            path: path.to_path_buf(),
        },
        e => TlsError::Pem {
            path: path.to_path_buf(),
            what: "private key",
            why: e.to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair};

    /// A self-signed certificate and its key, as PEM files in `dir` named `name.crt` and
    /// `name.key`.
    fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().expect("key");
        let cert = CertificateParams::new(vec![format!("{name}.example")])
            .expect("params")
            .self_signed(&key)
            .expect("certificate");
        let (cert_path, key_path) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&cert_path, cert.pem()).expect("write cert");
        std::fs::write(&key_path, key.serialize_pem()).expect("write key");
        (cert_path, key_path)
    }

    fn with_identity(cert: &Path, key: &Path, ca: &Path) -> ClientTls {
        ClientTls {
            ca_file: Some(ca.to_path_buf()),
            client_cert: Some(cert.to_path_buf()),
            client_key: Some(key.to_path_buf()),
            ..ClientTls::default()
        }
    }

    #[test]
    fn a_certificate_with_its_own_key_makes_a_client() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (cert, key) = self_signed(dir.path(), "client");
        let config = with_identity(&cert, &key, &cert)
            .client_config()
            .expect("a matching pair is accepted");
        assert!(config.client_auth_cert_resolver.has_certs());
    }

    #[test]
    fn a_key_of_another_certificate_is_refused_naming_both_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (cert, _) = self_signed(dir.path(), "client");
        let (_, other_key) = self_signed(dir.path(), "other");
        let e = with_identity(&cert, &other_key, &cert)
            .client_config()
            .expect_err("a mismatched key is refused");
        assert!(
            matches!(
                &e,
                TlsError::Identity {
                    source: rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch),
                    ..
                }
            ),
            "{e:?}"
        );
        let text = e.to_string();
        assert!(
            text.contains("other.key") && text.contains("client.crt"),
            "{text}"
        );
    }

    #[test]
    fn a_key_file_without_a_key_is_refused_naming_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (cert, _) = self_signed(dir.path(), "client");
        // A certificate where the key should be: PEM, but no key block.
        let e = with_identity(&cert, &cert, &cert)
            .client_config()
            .expect_err("no key");
        assert!(
            matches!(&e, TlsError::NoPrivateKey { path } if path == &cert),
            "{e:?}"
        );
        assert!(e.to_string().contains("client.crt: no private key"), "{e}");
        // Text that is not PEM at all.
        let junk = dir.path().join("junk.key");
        std::fs::write(&junk, "not a key\n").expect("write");
        let e = with_identity(&cert, &junk, &cert)
            .client_config()
            .expect_err("no key");
        assert!(
            matches!(&e, TlsError::NoPrivateKey { path } if path == &junk),
            "{e:?}"
        );
        // A missing file.
        let missing = dir.path().join("missing.key");
        let e = with_identity(&cert, &missing, &cert)
            .client_config()
            .expect_err("unreadable");
        assert!(
            matches!(&e, TlsError::Read { path, .. } if path == &missing),
            "{e:?}"
        );
        assert!(e.to_string().contains("missing.key"), "{e}");
    }

    #[test]
    fn a_truncated_key_block_is_a_pem_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (cert, key) = self_signed(dir.path(), "client");
        let text = std::fs::read_to_string(&key).expect("read key");
        let cut = text.replace("-----END PRIVATE KEY-----", "");
        std::fs::write(&key, cut).expect("write");
        let e = with_identity(&cert, &key, &cert)
            .client_config()
            .expect_err("truncated");
        assert!(
            matches!(
                &e,
                TlsError::Pem {
                    what: "private key",
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn half_an_identity_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (cert, key) = self_signed(dir.path(), "client");
        let only_cert = ClientTls {
            client_cert: Some(cert),
            ..ClientTls::default()
        };
        let e = only_cert.client_config().expect_err("no key");
        assert!(e.to_string().contains("the private key is missing"), "{e}");
        let only_key = ClientTls {
            client_key: Some(key),
            ..ClientTls::default()
        };
        let e = only_key.client_config().expect_err("no certificate");
        assert!(e.to_string().contains("the certificate is missing"), "{e}");
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (_, key) = self_signed(dir.path(), "ca");
        let tls = ClientTls {
            ca_file: Some(key.clone()),
            ..ClientTls::default()
        };
        let e = tls.client_config().expect_err("no CA");
        assert!(
            matches!(&e, TlsError::NoCertificate { path } if path == &key),
            "{e:?}"
        );
    }

    #[test]
    fn encrypted_keys_are_named_as_such() {
        let dir = tempfile::tempdir().expect("temp dir");
        let pkcs8 = dir.path().join("pkcs8.key");
        std::fs::write(
            &pkcs8,
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkq\n-----END ENCRYPTED PRIVATE KEY-----\n",
        )
        .expect("write");
        let legacy = dir.path().join("legacy.key");
        std::fs::write(
            &legacy,
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,0011223344556677\n\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\n",
        )
        .expect("write");
        for path in [&pkcs8, &legacy] {
            let e = read_private_key(path).expect_err("an encrypted key is refused");
            assert!(matches!(e, TlsError::EncryptedKey { .. }), "{e:?}");
            let msg = e.to_string();
            assert!(
                msg.contains("encrypted") && msg.contains(&*path.to_string_lossy()),
                "{msg}"
            );
        }
    }
}
