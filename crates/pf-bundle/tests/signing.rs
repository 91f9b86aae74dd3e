//! Signing and verification: the happy paths and every tamper the verifier must detect.

mod common;

use common::*;
use ed25519_dalek::SigningKey;
use pf_bundle::dsse::DsseError;
use pf_bundle::keys::{key_id, verifying_key_to_pem};
use pf_bundle::sign::{BundlePredicate, ManifestDigest};
use pf_bundle::{
    BUNDLE_PREDICATE_TYPE, Envelope, EnvelopeSignature, IN_TOTO_PAYLOAD_TYPE, Limits, OpenError,
    SignError, Statement, Subject, TrustPolicy, VerifyError, bundle_statement, open, sign_bundle,
    verify_bundle,
};

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// Policy trusting keys 1, 2, 3 with threshold `k`.
fn policy(k: usize) -> TrustPolicy {
    TrustPolicy::new(
        k,
        vec![
            ("alice".into(), key(1).verifying_key()),
            ("bob".into(), key(2).verifying_key()),
            ("carol".into(), key(3).verifying_key()),
        ],
    )
    .expect("policy")
}

fn signed_by(archive: &[u8], seeds: &[u8]) -> Envelope {
    let mut env: Option<Envelope> = None;
    for s in seeds {
        env = Some(sign_bundle(archive, &key(*s), env, &Limits::default()).expect("sign"));
    }
    env.expect("at least one signer")
}

fn verify(archive: &[u8], env: &Envelope, k: usize) -> Result<Vec<String>, VerifyError> {
    verify_bundle(archive, env, &policy(k), &Limits::default()).map(|v| v.signers)
}

#[test]
fn two_of_three_signed_bundle_verifies_and_names_its_signers() {
    let b = sample_bundle();
    let env = signed_by(&b.bytes, &[1, 3]);
    assert_eq!(
        verify(&b.bytes, &env, 2).expect("verifies"),
        ["alice", "carol"]
    );
    // The envelope survives its JSON wire form.
    let wire = Envelope::from_json(env.to_json().as_bytes()).expect("parse");
    assert_eq!(
        verify(&b.bytes, &wire, 2).expect("verifies"),
        ["alice", "carol"]
    );
}

#[test]
fn statement_is_in_toto_v1_about_the_archive_digest() {
    let b = sample_bundle();
    let env = signed_by(&b.bytes, &[1]);
    assert_eq!(env.payload_type, "application/vnd.in-toto+json");
    let v: serde_json::Value = serde_json::from_slice(&env.payload).expect("json");
    assert_eq!(v["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(
        v["predicateType"],
        "https://provability-fabric.dev/bundle/v1"
    );
    assert_eq!(v["subject"][0]["name"], "ai-agent-1.0.0.pfb");
    assert_eq!(v["subject"][0]["digest"]["sha256"], b.digest.to_hex());
    assert_eq!(
        v["predicate"]["manifestDigest"]["sha256"],
        b.manifest_digest.to_hex()
    );
    assert_eq!(v["predicate"]["specName"], "ai-agent");
    assert_eq!(v["predicate"]["specVersion"], "1.0.0");
    assert_eq!(env.signatures[0].keyid, key_id(&key(1).verifying_key()));
}

#[test]
fn threshold_not_met_with_one_of_two() {
    let b = sample_bundle();
    let env = signed_by(&b.bytes, &[2]);
    let r = verify(&b.bytes, &env, 2);
    assert!(
        matches!(
            &r,
            Err(VerifyError::Dsse(DsseError::ThresholdNotMet {
                valid: 1,
                required: 2,
                ..
            }))
        ),
        "{r:?}"
    );
}

#[test]
fn changed_byte_in_any_file_is_detected() {
    let b = sample_bundle();
    let env = signed_by(&b.bytes, &[1, 2]);
    let files = sample_files();
    for i in 0..files.len() {
        let mut tampered = files.clone();
        let last = tampered[i].1.len() - 1;
        tampered[i].1[last] ^= 0x01;
        let t = sample_bundle_with("1.0.0", &tampered);
        let r = verify(&t.bytes, &env, 2);
        assert!(
            matches!(&r, Err(VerifyError::SubjectDigest { .. })),
            "{}: {r:?}",
            files[i].0
        );
    }
    // The spec itself too.
    let mut bld = pf_bundle::BundleBuilder::new("ai-agent", "1.0.0").expect("builder");
    let mut spec = SPEC.to_vec();
    spec[0] = b'N';
    bld.spec(spec).expect("spec");
    for (p, bytes) in &files {
        bld.add_file(p, bytes.clone()).expect("add");
    }
    let t = bld.build().expect("build");
    assert!(matches!(
        verify(&t.bytes, &env, 2),
        Err(VerifyError::SubjectDigest { .. })
    ));
}

#[test]
fn changed_byte_in_the_archive_is_detected() {
    let b = sample_bundle();
    let env = signed_by(&b.bytes, &[1, 2]);
    for pos in [0, 10, b.bytes.len() / 2, b.bytes.len() - 1] {
        let mut t = b.bytes.clone();
        t[pos] ^= 0x80;
        let r = verify(&t, &env, 2);
        assert!(
            matches!(&r, Err(VerifyError::SubjectDigest { .. })),
            "byte {pos}: {r:?}"
        );
    }
}

#[test]
fn swapped_manifest_is_detected() {
    // Take bundle A's files with bundle B's manifest (other version): digest differs from the
    // signed subject, and even opening alone fails because the manifest lies about the spec.
    let a = sample_bundle();
    let env = signed_by(&a.bytes, &[1, 2]);
    let mut other = sample_files();
    other[2].1 = b"# sample AGENT\n".to_vec();
    let b = sample_bundle_with("1.0.0", &other);
    let b_manifest = b.manifest.to_canonical_json();
    let mut entries = vec![Raw::file("manifest.json", &b_manifest)];
    let opened_a = open(&a.bytes, &Limits::default()).expect("open");
    for (p, bytes) in &opened_a.files {
        entries.push(Raw::file(p, bytes));
    }
    let swapped = archive(&entries);
    assert!(matches!(
        verify(&swapped, &env, 2),
        Err(VerifyError::SubjectDigest { .. })
    ));
    assert!(
        matches!(open(&swapped, &Limits::default()), Err(OpenError::DigestMismatch { path, .. }) if path == "README.md")
    );
}

#[test]
fn statement_with_another_manifest_digest_is_rejected_even_when_signed_by_trusted_keys() {
    // A trusted signer signed a statement whose subject is right but whose predicate names
    // another manifest (a buggy or confused signer): the predicate check catches it.
    let b = sample_bundle();
    let mut stmt = bundle_statement(&open(&b.bytes, &Limits::default()).expect("open"));
    stmt.predicate.manifest_digest = ManifestDigest {
        sha256: pf_bundle::Sha256Digest::of(b"other manifest"),
    };
    let mut env = stmt.sign(&key(1));
    env.sign(&key(2));
    let r = verify(&b.bytes, &env, 2);
    assert!(
        matches!(&r, Err(VerifyError::ManifestDigest { .. })),
        "{r:?}"
    );
}

#[test]
fn signed_spec_name_version_and_subject_name_must_match_the_manifest() {
    let b = sample_bundle();
    let good = bundle_statement(&open(&b.bytes, &Limits::default()).expect("open"));
    let mut variants: Vec<(&str, Statement<BundlePredicate>)> = Vec::new();
    let mut s = good.clone();
    s.predicate.spec_name = "evil-agent".into();
    variants.push(("spec name", s));
    let mut s = good.clone();
    s.predicate.spec_version = "9.9.9".into();
    variants.push(("spec version", s));
    let mut s = good.clone();
    s.subject = vec![Subject::sha256("renamed.pfb", &b.digest)];
    variants.push(("subject name", s));
    for (field, stmt) in variants {
        let mut env = stmt.sign(&key(1));
        env.sign(&key(2));
        let r = verify(&b.bytes, &env, 2);
        assert!(
            matches!(&r, Err(VerifyError::SpecMismatch { field: f, .. }) if *f == field),
            "{field}: {r:?}"
        );
    }
}

#[test]
fn wrong_payload_type_is_rejected_before_signatures() {
    let b = sample_bundle();
    let mut env = signed_by(&b.bytes, &[1, 2]);
    env.payload_type = "application/json".into();
    let r = verify(&b.bytes, &env, 2);
    assert!(
        matches!(&r, Err(VerifyError::Dsse(DsseError::PayloadType { found, .. })) if found == "application/json"),
        "{r:?}"
    );
    // Even when trusted keys sign over the wrong type.
    let stmt = bundle_statement(&open(&b.bytes, &Limits::default()).expect("open"));
    let mut env = Envelope::new(
        "application/vnd.in-toto+json; charset=utf-8",
        stmt.to_payload(),
    );
    env.sign(&key(1));
    env.sign(&key(2));
    assert!(matches!(
        verify(&b.bytes, &env, 2),
        Err(VerifyError::Dsse(DsseError::PayloadType { .. }))
    ));
}

#[test]
fn wrong_predicate_type_is_rejected() {
    let b = sample_bundle();
    let mut stmt = bundle_statement(&open(&b.bytes, &Limits::default()).expect("open"));
    stmt.predicate_type = "https://slsa.dev/provenance/v1".into();
    let mut env = stmt.sign(&key(1));
    env.sign(&key(2));
    assert!(matches!(
        verify(&b.bytes, &env, 2),
        Err(VerifyError::Statement(_))
    ));
}

#[test]
fn envelope_of_another_bundle_is_rejected() {
    let a = sample_bundle();
    let b = sample_bundle_with("1.0.1", &sample_files());
    let env_a = signed_by(&a.bytes, &[1, 2]);
    let r = verify(&b.bytes, &env_a, 2);
    assert!(
        matches!(&r, Err(VerifyError::SubjectDigest { .. })),
        "{r:?}"
    );
}

#[test]
fn signature_transplanted_from_another_bundle_does_not_count() {
    let a = sample_bundle();
    let b = sample_bundle_with("1.0.1", &sample_files());
    let env_a = signed_by(&a.bytes, &[1, 2]);
    // B's envelope has B's statement; carol signed B, alice's and bob's signatures come from A.
    let mut env_b = signed_by(&b.bytes, &[3]);
    env_b.signatures.extend(env_a.signatures.iter().cloned());
    let r = verify(&b.bytes, &env_b, 2);
    assert!(
        matches!(
            &r,
            Err(VerifyError::Dsse(DsseError::ThresholdNotMet {
                valid: 1,
                ..
            }))
        ),
        "{r:?}"
    );
}

#[test]
fn modified_payload_invalidates_every_signature() {
    let b = sample_bundle();
    let mut env = signed_by(&b.bytes, &[1, 2]);
    let text = String::from_utf8(env.payload.clone())
        .expect("utf8")
        .replace("1.0.0", "1.0.1");
    env.payload = text.into_bytes();
    let r = verify(&b.bytes, &env, 1);
    assert!(
        matches!(
            &r,
            Err(VerifyError::Dsse(DsseError::ThresholdNotMet {
                valid: 0,
                ..
            }))
        ),
        "{r:?}"
    );
}

#[test]
fn duplicate_signatures_by_one_key_count_once() {
    let b = sample_bundle();
    let mut env = signed_by(&b.bytes, &[1]);
    let dup = env.signatures[0].clone();
    env.signatures.push(dup.clone());
    env.signatures.push(EnvelopeSignature {
        keyid: String::new(),
        sig: dup.sig.clone(),
    });
    // A second, different valid signature by the same key cannot exist for Ed25519 (deterministic),
    // so also re-add it under a forged key id of another trusted key: it must not verify there.
    env.signatures.push(EnvelopeSignature {
        keyid: key_id(&key(2).verifying_key()),
        sig: dup.sig,
    });
    let r = verify(&b.bytes, &env, 2);
    assert!(
        matches!(
            &r,
            Err(VerifyError::Dsse(DsseError::ThresholdNotMet {
                valid: 1,
                ..
            }))
        ),
        "{r:?}"
    );
}

#[test]
fn unknown_keys_are_ignored() {
    let b = sample_bundle();
    let env = signed_by(&b.bytes, &[1, 2, 9]);
    assert_eq!(
        verify(&b.bytes, &env, 2).expect("two trusted suffice"),
        ["alice", "bob"]
    );
    let only_unknown = signed_by(&b.bytes, &[8, 9]);
    assert!(matches!(
        verify(&b.bytes, &only_unknown, 1),
        Err(VerifyError::Dsse(DsseError::ThresholdNotMet {
            valid: 0,
            ..
        }))
    ));
    let r = verify(&b.bytes, &env, 3);
    assert!(
        matches!(
            &r,
            Err(VerifyError::Dsse(DsseError::ThresholdNotMet {
                valid: 2,
                required: 3,
                ..
            }))
        ),
        "{r:?}"
    );
}

#[test]
fn empty_key_id_is_tried_against_every_trusted_key() {
    let b = sample_bundle();
    let mut env = signed_by(&b.bytes, &[3]);
    env.signatures[0].keyid.clear();
    assert_eq!(verify(&b.bytes, &env, 1).expect("verifies"), ["carol"]);
}

#[test]
fn malformed_signature_bytes_are_ignored_not_fatal() {
    let b = sample_bundle();
    let mut env = signed_by(&b.bytes, &[1]);
    env.signatures.push(EnvelopeSignature {
        keyid: key_id(&key(2).verifying_key()),
        sig: vec![1, 2, 3],
    });
    assert_eq!(
        verify(&b.bytes, &env, 1).expect("alice suffices"),
        ["alice"]
    );
}

#[test]
fn co_signing_refuses_an_envelope_for_another_bundle() {
    let a = sample_bundle();
    let b = sample_bundle_with("1.0.1", &sample_files());
    let env_a = signed_by(&a.bytes, &[1]);
    let r = sign_bundle(&b.bytes, &key(2), Some(env_a), &Limits::default());
    assert!(matches!(r, Err(SignError::DifferentStatement)));
}

#[test]
fn signing_refuses_an_invalid_archive() {
    let r = sign_bundle(b"garbage", &key(1), None, &Limits::default());
    assert!(matches!(r, Err(SignError::Open(_))));
}

#[test]
fn signing_is_deterministic_so_co_signers_agree_on_the_payload() {
    let b = sample_bundle();
    let e1 = signed_by(&b.bytes, &[1]);
    let e2 = signed_by(&b.bytes, &[1]);
    assert_eq!(e1, e2);
    assert_eq!(e1.payload_type, IN_TOTO_PAYLOAD_TYPE);
    let s: Statement<BundlePredicate> =
        Statement::from_payload(&e1.payload, BUNDLE_PREDICATE_TYPE).expect("statement");
    assert_eq!(s.subject[0].sha256_digest(), Some(b.digest));
}

#[test]
fn policy_file_with_inline_and_file_keys_loads() {
    let d = tempfile::tempdir().expect("tmp");
    std::fs::create_dir(d.path().join("keys")).expect("mkdir");
    std::fs::write(
        d.path().join("keys/bob.pub.pem"),
        verifying_key_to_pem(&key(2).verifying_key()),
    )
    .expect("write");
    let json = serde_json::json!({
        "threshold": 2,
        "keys": [
            {"name": "alice", "pem": verifying_key_to_pem(&key(1).verifying_key())},
            {"name": "bob", "file": "keys/bob.pub.pem"}
        ]
    });
    let path = d.path().join("trust.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&json).expect("json")).expect("write");
    let p = TrustPolicy::from_file(&path).expect("policy");
    assert_eq!(p.threshold(), 2);
    assert_eq!(
        p.keys().iter().map(|k| k.name.as_str()).collect::<Vec<_>>(),
        ["alice", "bob"]
    );
    let b = sample_bundle();
    let env = signed_by(&b.bytes, &[1, 2]);
    assert!(verify_bundle(&b.bytes, &env, &p, &Limits::default()).is_ok());
}
