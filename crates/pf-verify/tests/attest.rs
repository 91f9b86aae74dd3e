//! Signed attestations: round trip, forgery and mismatch.

mod common;

use common::*;
use pf_bundle::{Envelope, Sha256Digest, TrustPolicy};
use pf_verify::{
    AttestationError, GateConfig, PlanLimits, RunReport, sign_attestation, verify_attestation,
    verify_bundle,
};

fn passing_report() -> RunReport {
    let spec = spec_with(
        "  - name: run_command\n    kind: shell\n",
        &[("pinned", "m.bin", "m.sha", "run_command")],
    );
    let b = bundle(&spec, &[("m.bin", b"w"), ("m.sha", hex(b"w").as_bytes())]);
    let (engine, _) = digest_engine(1);
    let r = verify_bundle(
        &b,
        &engine,
        &PlanLimits::default(),
        &GateConfig::default(),
        &|_| {},
    )
    .expect("plan");
    assert!(r.passed, "{}", r.to_text());
    r
}

fn policy(keys: &[&ed25519_dalek::SigningKey]) -> TrustPolicy {
    TrustPolicy::new(
        1,
        keys.iter()
            .enumerate()
            .map(|(i, k)| (format!("k{i}"), k.verifying_key()))
            .collect(),
    )
    .expect("policy")
}

#[test]
fn signed_attestation_verifies_for_its_bundle() {
    let key = pf_bundle::keys::generate();
    let report = passing_report();
    let env = sign_attestation(&report, &key);
    let json = env.to_json();
    let parsed = Envelope::from_json(json.as_bytes()).expect("envelope");
    let v = verify_attestation(&parsed, &policy(&[&key]), &report.bundle_digest).expect("verify");
    assert_eq!(v.signers, vec!["k0".to_string()]);
    assert_eq!(v.predicate.obligations.len(), 1);
    assert_eq!(
        v.predicate.obligations[0].checker.as_deref(),
        Some("pf-digest")
    );
    assert_eq!(
        v.predicate.obligations[0]
            .input_digest
            .as_deref()
            .map(str::len),
        Some(64)
    );
}

#[test]
fn untrusted_key_is_rejected() {
    let report = passing_report();
    let env = sign_attestation(&report, &pf_bundle::keys::generate());
    let trusted = pf_bundle::keys::generate();
    let err = verify_attestation(&env, &policy(&[&trusted]), &report.bundle_digest)
        .expect_err("must be rejected");
    assert!(matches!(err, AttestationError::Signature(_)), "{err}");
}

#[test]
fn attestation_for_another_bundle_is_rejected() {
    let key = pf_bundle::keys::generate();
    let report = passing_report();
    let env = sign_attestation(&report, &key);
    let other = Sha256Digest::of(b"another bundle");
    let err = verify_attestation(&env, &policy(&[&key]), &other).expect_err("must be rejected");
    assert!(
        matches!(err, AttestationError::SubjectMismatch { .. }),
        "{err}"
    );
}

#[test]
fn edited_payload_breaks_the_signature() {
    let key = pf_bundle::keys::generate();
    let mut report = passing_report();
    report.passed = false;
    report.gates[0].passed = false;
    let mut env = sign_attestation(&report, &key);
    let text = String::from_utf8(env.payload.clone()).expect("utf8");
    env.payload = text
        .replace("\"passed\":false", "\"passed\":true")
        .into_bytes();
    let err = verify_attestation(&env, &policy(&[&key]), &report.bundle_digest)
        .expect_err("must be rejected");
    assert!(matches!(err, AttestationError::Signature(_)), "{err}");
}

#[test]
fn honestly_signed_failure_is_not_accepted() {
    let key = pf_bundle::keys::generate();
    let mut report = passing_report();
    report.gates[0].passed = false;
    report.gates[0].failures = vec!["capability x uncovered".into()];
    report.passed = false;
    let env = sign_attestation(&report, &key);
    let err = verify_attestation(&env, &policy(&[&key]), &report.bundle_digest)
        .expect_err("must be rejected");
    assert!(matches!(err, AttestationError::NotPassed(_)), "{err}");
}

#[test]
fn bundle_signature_is_not_a_verification_attestation() {
    // A statement with another predicate type (e.g. the bundle signature) must not pass.
    let key = pf_bundle::keys::generate();
    let report = passing_report();
    let stmt = pf_bundle::Statement::new(
        vec![pf_bundle::Subject::sha256("b.pfb", &report.bundle_digest)],
        pf_bundle::BUNDLE_PREDICATE_TYPE,
        serde_json::json!({"passed": true}),
    );
    let env = stmt.sign(&key);
    let err = verify_attestation(&env, &policy(&[&key]), &report.bundle_digest)
        .expect_err("must be rejected");
    assert!(matches!(err, AttestationError::Statement(_)), "{err}");
}
