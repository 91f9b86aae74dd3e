//! Ed25519 keys: generation, PKCS#8 / SPKI PEM encoding, and key ids.
//!
//! The key id of a public key is the lowercase hex SHA-256 of its DER-encoded
//! SubjectPublicKeyInfo (RFC 8410 §4), i.e. of the bytes inside the `PUBLIC KEY` PEM. It is what
//! goes into the DSSE `keyid` field.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
pub use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::digest::Sha256Digest;

/// PEM label of a PKCS#8 private key (RFC 7468 §10).
const PRIVATE_LABEL: &str = "PRIVATE KEY";
/// PEM label of a SubjectPublicKeyInfo public key (RFC 7468 §13).
const PUBLIC_LABEL: &str = "PUBLIC KEY";

/// Why a key could not be loaded or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// No PEM block found, or it is garbled.
    #[error("{what}: not a PEM document ({detail})")]
    NotPem {
        /// What was being read.
        what: String,
        /// Decoder message.
        detail: String,
    },
    /// A PEM block of the wrong kind (e.g. a public key where a private key was expected).
    #[error("{what}: PEM label is {found:?}, expected {expected:?}")]
    WrongLabel {
        /// What was being read.
        what: String,
        /// Label found.
        found: String,
        /// Label expected.
        expected: &'static str,
    },
    /// Well-formed PEM but not an Ed25519 key (another algorithm, or bad DER).
    #[error("{what}: not an Ed25519 key ({detail})")]
    NotEd25519 {
        /// What was being read.
        what: String,
        /// Decoder message.
        detail: String,
    },
    /// A small-order public key, which would let anyone forge signatures under it.
    #[error("{what}: weak (small-order) Ed25519 public key")]
    WeakKey {
        /// What was being read.
        what: String,
    },
    /// File I/O.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
}

/// Generates a fresh key from the operating system's random source.
pub fn generate() -> SigningKey {
    SigningKey::generate(&mut rand_core::OsRng)
}

/// The key id: hex SHA-256 of the SPKI DER encoding.
pub fn key_id(key: &VerifyingKey) -> String {
    // Encoding a 32-byte Ed25519 key as SPKI cannot fail; the empty fallback is never hit.
    let der = key
        .to_public_key_der()
        .map(|d| d.into_vec())
        .unwrap_or_default();
    Sha256Digest::of(&der).to_hex()
}

/// Checks the PEM label before decoding so that mixing up files gives a clear message.
fn check_label(pem: &str, expected: &'static str, what: &str) -> Result<(), KeyError> {
    let (label, _) =
        ed25519_dalek::pkcs8::spki::der::pem::decode_vec(pem.as_bytes()).map_err(|e| {
            KeyError::NotPem {
                what: what.to_string(),
                detail: e.to_string(),
            }
        })?;
    if label != expected {
        return Err(KeyError::WrongLabel {
            what: what.to_string(),
            found: label.to_string(),
            expected,
        });
    }
    Ok(())
}

/// Parses a PKCS#8 `PRIVATE KEY` PEM; `what` names the source in errors.
pub fn signing_key_from_pem(pem: &str, what: &str) -> Result<SigningKey, KeyError> {
    check_label(pem, PRIVATE_LABEL, what)?;
    SigningKey::from_pkcs8_pem(pem).map_err(|e| KeyError::NotEd25519 {
        what: what.to_string(),
        detail: e.to_string(),
    })
}

/// Parses an SPKI `PUBLIC KEY` PEM; weak keys are rejected.
pub fn verifying_key_from_pem(pem: &str, what: &str) -> Result<VerifyingKey, KeyError> {
    check_label(pem, PUBLIC_LABEL, what)?;
    let key = VerifyingKey::from_public_key_pem(pem).map_err(|e| KeyError::NotEd25519 {
        what: what.to_string(),
        detail: e.to_string(),
    })?;
    if key.is_weak() {
        return Err(KeyError::WeakKey {
            what: what.to_string(),
        });
    }
    Ok(key)
}

/// Reads a private key file.
pub fn read_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    let text = read_text(path)?;
    signing_key_from_pem(&text, &path.display().to_string())
}

/// Reads a public key file.
pub fn read_verifying_key(path: &Path) -> Result<VerifyingKey, KeyError> {
    let text = read_text(path)?;
    verifying_key_from_pem(&text, &path.display().to_string())
}

/// Reads a small text file (keys are a few hundred bytes; 64 KiB is plenty).
fn read_text(path: &Path) -> Result<String, KeyError> {
    let io_err = |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let f = fs::File::open(path).map_err(io_err)?;
    let mut s = String::new();
    io::Read::read_to_string(&mut io::Read::take(f, 64 * 1024), &mut s).map_err(io_err)?;
    Ok(s)
}

/// PKCS#8 PEM of a private key.
pub fn signing_key_to_pem(key: &SigningKey) -> String {
    key.to_pkcs8_pem(LineEnding::LF)
        .map(|z| z.to_string())
        .unwrap_or_default()
}

/// SPKI PEM of a public key.
pub fn verifying_key_to_pem(key: &VerifyingKey) -> String {
    key.to_public_key_pem(LineEnding::LF).unwrap_or_default()
}

/// Paths written by [`write_key_pair`].
#[derive(Debug, Clone)]
pub struct KeyPairFiles {
    /// `NAME.key.pem`, PKCS#8, mode 0600.
    pub private: PathBuf,
    /// `NAME.pub.pem`, SPKI.
    pub public: PathBuf,
    /// Key id of the public key.
    pub key_id: String,
}

/// Generates a key pair and writes `NAME.key.pem` (0600) and `NAME.pub.pem` into `dir`.
/// Existing files are never overwritten.
pub fn write_key_pair(dir: &Path, name: &str) -> Result<KeyPairFiles, KeyError> {
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(KeyError::Io {
            path: dir.join(name),
            source: io::Error::new(
                io::ErrorKind::InvalidInput,
                "key name must be a plain file name",
            ),
        });
    }
    fs::create_dir_all(dir).map_err(|source| KeyError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let key = generate();
    let private = dir.join(format!("{name}.key.pem"));
    let public = dir.join(format!("{name}.pub.pem"));
    if public.exists() {
        return Err(KeyError::Io {
            path: public,
            source: io::Error::new(io::ErrorKind::AlreadyExists, "refusing to overwrite"),
        });
    }
    write_new(&private, signing_key_to_pem(&key).as_bytes(), 0o600)?;
    write_new(
        &public,
        verifying_key_to_pem(&key.verifying_key()).as_bytes(),
        0o644,
    )?;
    Ok(KeyPairFiles {
        private,
        public,
        key_id: key_id(&key.verifying_key()),
    })
}

/// Creates a new file with `mode` (Unix) and writes `bytes`.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyError> {
    let io_err = |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts.open(path).map_err(io_err)?;
    f.write_all(bytes).map_err(io_err)?;
    f.sync_all().map_err(io_err)
}
