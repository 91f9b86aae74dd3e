//! The local bundle store and the verification cache.
//!
//! The store is a directory of content-addressed files, named by the bundle's sha256 hex:
//! `<hex>.pfb` (the bundle), `<hex>.pfb.dsse.json` (its signature envelope) and
//! `<hex>.attestation.json` (its verification attestation). Nothing is fetched over the network
//! while admitting; a syncer (or `kubectl cp`, or a volume) fills the directory.
//! [`Verifier`] checks a bundle once (signatures k-of-n, attestation, spec parse) and caches the
//! result by digest; failures are not cached, so adding a missing attestation takes effect at once.
//! With a [`Reverify`] backend, a signed bundle that has no attestation yet is verified once by
//! the verification engine and the resulting attestation is written into the store.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use pf_bundle::{Envelope, Limits, OpenedBundle, Sha256Digest, TrustPolicy, verify_bundle};
use pf_spec::AgentSpec;

use crate::attest::{AttestationCheck, MAX_ATTESTATION_SIZE};

/// Checks a bundle's proof obligations when the store holds no attestation for it.
pub trait Reverify: Send + Sync {
    /// Runs the verification engine on `bundle`; returns a signed attestation (DSSE JSON bytes)
    /// when every gate passed, otherwise every reason.
    fn reverify(&self, bundle: &OpenedBundle) -> Result<Vec<u8>, String>;
}

/// Largest signature envelope read from the store (bytes).
pub const MAX_ENVELOPE_FILE: u64 = 4 * 1024 * 1024;

/// Parses `sha256:<64 lowercase hex>`.
pub fn parse_digest_ref(text: &str) -> Result<Sha256Digest, String> {
    let hex = text
        .strip_prefix("sha256:")
        .ok_or_else(|| format!("digest {text:?} must be written sha256:<64 hex>"))?;
    Sha256Digest::from_hex(hex).map_err(|e| e.to_string())
}

/// A directory of bundles, envelopes and attestations named by bundle digest.
#[derive(Debug, Clone)]
pub struct BundleStore {
    root: PathBuf,
}

impl BundleStore {
    /// A store rooted at `root`.
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    /// Path of the bundle with `digest`.
    pub fn bundle_path(&self, digest: &Sha256Digest) -> PathBuf {
        self.root.join(format!("{}.pfb", digest.to_hex()))
    }

    /// Path of the bundle's signature envelope.
    pub fn envelope_path(&self, digest: &Sha256Digest) -> PathBuf {
        self.root.join(format!("{}.pfb.dsse.json", digest.to_hex()))
    }

    /// Path of the bundle's verification attestation.
    pub fn attestation_path(&self, digest: &Sha256Digest) -> PathBuf {
        self.root
            .join(format!("{}.attestation.json", digest.to_hex()))
    }

    /// Writes a bundle, its envelope and optionally its attestation into the store.
    pub fn put(
        &self,
        archive: &[u8],
        envelope: &Envelope,
        attestation: Option<&[u8]>,
    ) -> std::io::Result<Sha256Digest> {
        let d = Sha256Digest::of(archive);
        std::fs::create_dir_all(&self.root)?;
        std::fs::write(self.bundle_path(&d), archive)?;
        std::fs::write(self.envelope_path(&d), envelope.to_json())?;
        if let Some(a) = attestation {
            std::fs::write(self.attestation_path(&d), a)?;
        }
        Ok(d)
    }
}

fn read_limited(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!("{what} not found in the bundle store ({})", path.display())
        } else {
            format!("{what}: cannot read {}: {e}", path.display())
        }
    })?;
    let mut buf = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("{what}: cannot read {}: {e}", path.display()))?;
    if buf.len() as u64 > limit {
        return Err(format!("{what} is larger than {limit} bytes"));
    }
    Ok(buf)
}

/// A bundle that passed signature and attestation checks.
#[derive(Debug)]
pub struct VerifiedAgent {
    /// Bundle digest.
    pub digest: Sha256Digest,
    /// The parsed spec inside the bundle.
    pub spec: AgentSpec,
    /// The spec file's bytes (mounted into the guard sidecar).
    pub spec_bytes: Vec<u8>,
    /// Names of the trusted keys that signed.
    pub signers: Vec<String>,
    /// sha256 of the attestation that admitted it.
    pub attestation_digest: Sha256Digest,
}

/// Verifies bundles from a store against a trust policy and an attestation check, with a cache.
pub struct Verifier {
    store: BundleStore,
    policy: TrustPolicy,
    attestation: Arc<dyn AttestationCheck>,
    reverify: Option<Arc<dyn Reverify>>,
    limits: Limits,
    cache: Mutex<HashMap<Sha256Digest, Arc<VerifiedAgent>>>,
}

impl Verifier {
    /// A verifier over `store`.
    pub fn new(
        store: BundleStore,
        policy: TrustPolicy,
        attestation: Arc<dyn AttestationCheck>,
        limits: Limits,
    ) -> Self {
        Self {
            store,
            policy,
            attestation,
            reverify: None,
            limits,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Verifies bundles that have no attestation in the store with `backend` (once: the
    /// attestation it signs is written into the store and checked like any other).
    pub fn with_reverify(mut self, backend: Arc<dyn Reverify>) -> Self {
        self.reverify = Some(backend);
        self
    }

    /// The store.
    pub fn store(&self) -> &BundleStore {
        &self.store
    }

    /// Number of cached verified bundles.
    pub fn cached(&self) -> usize {
        self.cache.lock().map(|c| c.len()).unwrap_or(0)
    }

    /// Drops every cached result (call when the trust policy or attestor keys change).
    pub fn clear_cache(&self) {
        if let Ok(mut c) = self.cache.lock() {
            c.clear();
        }
    }

    /// Verifies the bundle with `digest`; on failure returns every failed check.
    /// With `expected_attestation`, the attestation file's sha256 must equal it.
    pub fn verify(
        &self,
        digest: &Sha256Digest,
        expected_attestation: Option<&Sha256Digest>,
    ) -> Result<Arc<VerifiedAgent>, Vec<String>> {
        let cached = self
            .cache
            .lock()
            .map_err(|_| vec!["internal error: verification cache poisoned".to_string()])?
            .get(digest)
            .cloned();
        if let Some(v) = cached
            && expected_attestation.is_none_or(|e| *e == v.attestation_digest)
        {
            return Ok(v);
        }
        let v = Arc::new(self.verify_uncached(digest, expected_attestation)?);
        self.cache
            .lock()
            .map_err(|_| vec!["internal error: verification cache poisoned".to_string()])?
            .insert(*digest, Arc::clone(&v));
        Ok(v)
    }

    fn verify_uncached(
        &self,
        digest: &Sha256Digest,
        expected_attestation: Option<&Sha256Digest>,
    ) -> Result<VerifiedAgent, Vec<String>> {
        let mut failed = Vec::new();
        let hex = digest.to_hex();
        // Signatures (k-of-n) over exactly this archive.
        let signed = read_limited(
            &self.store.bundle_path(digest),
            self.limits.max_archive_size,
            "bundle",
        )
        .and_then(|archive| {
            if Sha256Digest::of(&archive) != *digest {
                return Err(format!(
                    "bundle file in the store does not hash to sha256:{hex}"
                ));
            }
            let env_bytes = read_limited(
                &self.store.envelope_path(digest),
                MAX_ENVELOPE_FILE,
                "signature envelope",
            )?;
            let env =
                Envelope::from_json(&env_bytes).map_err(|e| format!("signature envelope: {e}"))?;
            verify_bundle(&archive, &env, &self.policy, &self.limits)
                .map_err(|e| format!("signature check failed: {e}"))
        });
        let signed = match signed {
            Ok(v) => Some(v),
            Err(e) => {
                failed.push(e);
                None
            }
        };
        // Verification attestation for exactly this digest (re-verified when missing and a
        // backend is configured; only for a correctly signed bundle).
        let att_path = self.store.attestation_path(digest);
        let stored = if att_path.exists() {
            None
        } else {
            match (&self.reverify, &signed) {
                (Some(backend), Some(v)) => Some(
                    backend
                        .reverify(&v.bundle)
                        .map_err(|r| format!("re-verification failed: {r}"))
                        .and_then(|bytes| {
                            pf_bundle::write_atomic(&att_path, &bytes)
                                .map(|()| bytes)
                                .map_err(|e| {
                                    format!(
                                        "cannot store the attestation {}: {e}",
                                        att_path.display()
                                    )
                                })
                        }),
                ),
                _ => None,
            }
        };
        let att = match stored {
            Some(result) => result,
            None => read_limited(
                &att_path,
                MAX_ATTESTATION_SIZE as u64,
                "verification attestation",
            ),
        }
        .and_then(|bytes| {
            let ad = Sha256Digest::of(&bytes);
            if let Some(e) = expected_attestation
                && *e != ad
            {
                return Err(format!(
                    "verification attestation digest is sha256:{}, the AgentDeployment names sha256:{}",
                    ad.to_hex(),
                    e.to_hex()
                ));
            }
            self.attestation
                .check(digest, &bytes)
                .map(|()| ad)
                .map_err(|r| format!("proof check failed: {r}"))
        });
        let att = match att {
            Ok(d) => Some(d),
            Err(e) => {
                failed.push(e);
                None
            }
        };
        let (Some(signed), Some(attestation_digest)) = (signed, att) else {
            return Err(failed);
        };
        let spec_bytes = signed.bundle.spec_bytes().to_vec();
        let text = std::str::from_utf8(&spec_bytes)
            .map_err(|_| vec!["bundle spec is not UTF-8".to_string()])?;
        let spec = pf_spec::parse_str("agent.yaml", text)
            .map_err(|e| vec![format!("bundle spec does not parse: {e}")])?;
        Ok(VerifiedAgent {
            digest: *digest,
            spec,
            spec_bytes,
            signers: signed.signers,
            attestation_digest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_refs_need_prefix_and_64_hex() {
        let h = "ab".repeat(32);
        assert!(parse_digest_ref(&format!("sha256:{h}")).is_ok());
        assert!(parse_digest_ref(&h).is_err());
        assert!(parse_digest_ref("sha256:abc").is_err());
        assert!(parse_digest_ref(&format!("sha256:{}", h.to_uppercase())).is_err());
    }
}
