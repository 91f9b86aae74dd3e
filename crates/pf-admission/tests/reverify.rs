//! A signed bundle without a stored attestation is verified once by the re-verify backend; its
//! attestation lands in the store and is checked like any other. Unsigned bundles never reach
//! the backend, and a backend failure denies with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{attestation, build_signed, trust_policy};
use pf_admission::attest::{DsseAttestationCheck, VERIFICATION_PREDICATE_TYPE};
use pf_admission::{BundleStore, Reverify, Verifier};
use pf_bundle::{Limits, OpenedBundle, TrustPolicy};

/// Signs an attestation for the bundle it is given, or refuses; counts its calls.
struct Backend {
    key: pf_bundle::keys::SigningKey,
    refuse: Option<String>,
    calls: AtomicUsize,
}

impl Reverify for Backend {
    fn reverify(&self, bundle: &OpenedBundle) -> Result<Vec<u8>, String> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match &self.refuse {
            Some(r) => Err(r.clone()),
            None => Ok(attestation(&self.key, &bundle.digest)),
        }
    }
}

fn setup(
    refuse: Option<&str>,
) -> (
    tempfile::TempDir,
    Verifier,
    Arc<Backend>,
    pf_bundle::Sha256Digest,
) {
    let dir = tempfile::tempdir().expect("tmp");
    let store = BundleStore::new(&dir.path().join("store"));
    let (archive, env) = build_signed("coding-agent");
    let digest = store.put(&archive, &env, None).expect("put");
    let key = pf_bundle::keys::generate();
    let attestors = TrustPolicy::new(1, vec![("verifier".into(), key.verifying_key())]).expect("p");
    let backend = Arc::new(Backend {
        key,
        refuse: refuse.map(str::to_string),
        calls: AtomicUsize::new(0),
    });
    let verifier = Verifier::new(
        store,
        trust_policy("coding-agent"),
        Arc::new(DsseAttestationCheck::new(
            attestors,
            VERIFICATION_PREDICATE_TYPE,
        )),
        Limits::default(),
    )
    .with_reverify(backend.clone());
    (dir, verifier, backend, digest)
}

#[test]
fn missing_attestation_is_produced_once_stored_and_checked() {
    let (_dir, verifier, backend, digest) = setup(None);
    let agent = verifier
        .verify(&digest, None)
        .expect("admitted after re-verification");
    assert_eq!(agent.digest, digest);
    let stored = std::fs::read(verifier.store().attestation_path(&digest)).expect("stored");
    assert_eq!(
        pf_bundle::Sha256Digest::of(&stored),
        agent.attestation_digest
    );
    // Cached, and after a cache clear the stored attestation is read: no second run.
    verifier.verify(&digest, None).expect("cached");
    verifier.clear_cache();
    verifier.verify(&digest, None).expect("from the store");
    assert_eq!(backend.calls.load(Ordering::SeqCst), 1);
}

#[test]
fn backend_failures_deny_and_unsigned_bundles_never_reach_it() {
    let (_dir, verifier, backend, digest) = setup(Some("all_proved: gate_nnv: refuted"));
    let failed = verifier.verify(&digest, None).expect_err("denied");
    assert!(
        failed
            .iter()
            .any(|f| f.contains("re-verification failed") && f.contains("refuted")),
        "{failed:?}"
    );
    assert!(!verifier.store().attestation_path(&digest).exists());
    // Break the signature: the envelope no longer matches, so the backend is not asked.
    std::fs::write(verifier.store().envelope_path(&digest), b"{}").expect("corrupt");
    let calls = backend.calls.load(Ordering::SeqCst);
    let failed = verifier.verify(&digest, None).expect_err("denied");
    assert!(
        failed.iter().any(|f| f.contains("signature envelope")),
        "{failed:?}"
    );
    assert_eq!(backend.calls.load(Ordering::SeqCst), calls);
}
