//! Trust policy: which public keys may sign, and how many distinct ones must (k of n).
//!
//! File format (JSON):
//! ```json
//! { "threshold": 2,
//!   "keys": [ { "name": "release-1", "pem": "-----BEGIN PUBLIC KEY-----\n..." },
//!             { "name": "release-2", "file": "keys/release-2.pub.pem" } ] }
//! ```
//! `file` paths are relative to the policy file's directory.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;
use serde::Deserialize;

use crate::keys::{KeyError, key_id, read_verifying_key, verifying_key_from_pem};

/// Largest policy file read, in bytes.
pub const MAX_POLICY_SIZE: u64 = 1024 * 1024;

/// A key the policy trusts.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    /// Human name (unique in the policy).
    pub name: String,
    /// Key id (see [`crate::keys::key_id`]).
    pub key_id: String,
    /// The key.
    pub key: VerifyingKey,
}

/// k-of-n trust policy.
#[derive(Debug, Clone)]
pub struct TrustPolicy {
    threshold: usize,
    keys: Vec<TrustedKey>,
}

/// Why a policy is invalid.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// JSON syntax or shape error.
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        /// Policy file (or `<inline>`).
        path: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// Threshold is zero.
    #[error("threshold must be at least 1")]
    ZeroThreshold,
    /// Threshold above the number of keys: could never be met.
    #[error("threshold {threshold} exceeds the {keys} listed keys")]
    ThresholdTooHigh {
        /// Threshold.
        threshold: usize,
        /// Key count.
        keys: usize,
    },
    /// Two keys with the same name.
    #[error("key name {0:?} is listed twice")]
    DuplicateName(String),
    /// The same key under two names (it would count twice toward the threshold).
    #[error("keys {first:?} and {second:?} are the same public key")]
    DuplicateKey {
        /// First name.
        first: String,
        /// Second name.
        second: String,
    },
    /// Neither or both of `pem` and `file`.
    #[error("key {0:?} must have exactly one of `pem` or `file`")]
    KeySource(String),
    /// A key failed to load.
    #[error("key {name:?}: {source}")]
    Key {
        /// Key name.
        name: String,
        /// Cause.
        source: KeyError,
    },
    /// Reading the policy file failed.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    threshold: usize,
    keys: Vec<KeyEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    name: String,
    #[serde(default)]
    pem: Option<String>,
    #[serde(default)]
    file: Option<String>,
}

impl TrustPolicy {
    /// Builds a policy from named keys, checking threshold and uniqueness.
    pub fn new(threshold: usize, keys: Vec<(String, VerifyingKey)>) -> Result<Self, PolicyError> {
        if threshold == 0 {
            return Err(PolicyError::ZeroThreshold);
        }
        if threshold > keys.len() {
            return Err(PolicyError::ThresholdTooHigh {
                threshold,
                keys: keys.len(),
            });
        }
        let mut out: Vec<TrustedKey> = Vec::with_capacity(keys.len());
        let mut names = BTreeSet::new();
        for (name, key) in keys {
            if !names.insert(name.clone()) {
                return Err(PolicyError::DuplicateName(name));
            }
            if key.is_weak() {
                return Err(PolicyError::Key {
                    name,
                    source: KeyError::WeakKey {
                        what: "policy".into(),
                    },
                });
            }
            if let Some(first) = out.iter().find(|k| k.key == key) {
                return Err(PolicyError::DuplicateKey {
                    first: first.name.clone(),
                    second: name,
                });
            }
            out.push(TrustedKey {
                key_id: key_id(&key),
                name,
                key,
            });
        }
        Ok(Self {
            threshold,
            keys: out,
        })
    }

    /// Parses policy JSON; `base` resolves `file` entries, `origin` names the source in errors.
    pub fn from_json(text: &str, base: &Path, origin: &str) -> Result<Self, PolicyError> {
        let file: PolicyFile = serde_json::from_str(text).map_err(|e| PolicyError::Parse {
            path: origin.to_string(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        let mut keys = Vec::with_capacity(file.keys.len());
        for k in file.keys {
            let key = match (&k.pem, &k.file) {
                (Some(pem), None) => {
                    verifying_key_from_pem(pem, &format!("{origin}: key {:?}", k.name))
                }
                (None, Some(f)) => read_verifying_key(&base.join(f)),
                _ => return Err(PolicyError::KeySource(k.name)),
            }
            .map_err(|source| PolicyError::Key {
                name: k.name.clone(),
                source,
            })?;
            keys.push((k.name, key));
        }
        Self::new(file.threshold, keys)
    }

    /// Reads a policy file.
    pub fn from_file(path: &Path) -> Result<Self, PolicyError> {
        let io_err = |source| PolicyError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut text = String::new();
        fs::File::open(path)
            .map_err(io_err)?
            .take(MAX_POLICY_SIZE)
            .read_to_string(&mut text)
            .map_err(io_err)?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_json(&text, base, &path.display().to_string())
    }

    /// Number of distinct trusted keys whose signatures are required.
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// The trusted keys.
    pub fn keys(&self) -> &[TrustedKey] {
        &self.keys
    }

    /// The trusted key with id `key_id`, with its index.
    pub fn key_by_id(&self, key_id: &str) -> Option<(usize, &TrustedKey)> {
        self.keys
            .iter()
            .enumerate()
            .find(|(_, k)| k.key_id == key_id)
    }
}
