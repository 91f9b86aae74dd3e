//! Batch verification agrees with one-by-one verification and isolates bad envelopes.

mod common;

use common::*;
use ed25519_dalek::SigningKey;
use pf_bundle::batch::{verify_bundles, verify_envelopes};
use pf_bundle::dsse::DsseError;
use pf_bundle::{
    Envelope, IN_TOTO_PAYLOAD_TYPE, Limits, TrustPolicy, VerifyError, sign_bundle, verify_bundle,
};
use proptest::prelude::*;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn policy() -> TrustPolicy {
    TrustPolicy::new(
        2,
        (1..=3)
            .map(|i| (format!("k{i}"), key(i).verifying_key()))
            .collect(),
    )
    .expect("policy")
}

/// `n` bundles (versions 1.0.i), each signed by keys 1 and 2.
fn corpus(n: usize) -> Vec<(Vec<u8>, Envelope)> {
    (0..n)
        .map(|i| {
            let b = sample_bundle_with(&format!("1.0.{i}"), &sample_files()[..1]);
            let mut env = sign_bundle(&b.bytes, &key(1), None, &Limits::default()).expect("sign");
            env.sign(&key(2));
            (b.bytes, env)
        })
        .collect()
}

fn one_by_one(items: &[(Vec<u8>, Envelope)]) -> Vec<Result<Vec<String>, String>> {
    items
        .iter()
        .map(|(a, e)| {
            verify_bundle(a, e, &policy(), &Limits::default())
                .map(|v| v.signers)
                .map_err(|e| e.to_string())
        })
        .collect()
}

fn batched(items: &[(Vec<u8>, Envelope)]) -> Vec<Result<Vec<String>, String>> {
    let refs: Vec<(&[u8], &Envelope)> = items.iter().map(|(a, e)| (a.as_slice(), e)).collect();
    verify_bundles(&refs, &policy(), &Limits::default())
        .into_iter()
        .map(|r| r.map(|v| v.signers).map_err(|e| e.to_string()))
        .collect()
}

#[test]
fn all_good_batch_verifies_every_bundle() {
    let items = corpus(12);
    let got = batched(&items);
    assert!(
        got.iter()
            .all(|r| r.as_ref().is_ok_and(|s| s == &["k1", "k2"])),
        "{got:?}"
    );
    assert_eq!(got, one_by_one(&items));
}

#[test]
fn one_bad_signature_fails_only_its_envelope() {
    let mut items = corpus(10);
    items[4].1.signatures[1].sig[5] ^= 1; // bob's signature on bundle 4
    items[7].1.payload_type = "text/plain".into();
    let refs: Vec<(&[u8], &Envelope)> = items.iter().map(|(a, e)| (a.as_slice(), e)).collect();
    let got = verify_bundles(&refs, &policy(), &Limits::default());
    for (i, r) in got.iter().enumerate() {
        match i {
            4 => assert!(
                matches!(
                    r,
                    Err(VerifyError::Dsse(DsseError::ThresholdNotMet {
                        valid: 1,
                        ..
                    }))
                ),
                "{r:?}"
            ),
            7 => assert!(
                matches!(r, Err(VerifyError::Dsse(DsseError::PayloadType { .. }))),
                "{r:?}"
            ),
            _ => assert!(r.is_ok(), "envelope {i}: {r:?}"),
        }
    }
    assert_eq!(batched(&items), one_by_one(&items));
}

#[test]
fn envelope_batch_checks_the_payload_type_per_envelope() {
    let items = corpus(3);
    let envs: Vec<&Envelope> = items.iter().map(|(_, e)| e).collect();
    let r = verify_envelopes(&envs, "application/other", &policy());
    assert!(
        r.iter()
            .all(|x| matches!(x, Err(DsseError::PayloadType { .. })))
    );
    let r = verify_envelopes(&envs, IN_TOTO_PAYLOAD_TYPE, &policy());
    assert!(r.iter().all(Result::is_ok));
}

#[test]
fn archive_swapped_between_batched_items_is_caught() {
    let mut items = corpus(4);
    let a0 = items[0].0.clone();
    items[1].0 = a0;
    let got = batched(&items);
    assert!(
        got[1]
            .as_ref()
            .is_err_and(|e| e.contains("does not match the signed subject digest")),
        "{got:?}"
    );
    assert!(got[0].is_ok() && got[2].is_ok() && got[3].is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Whatever subset of signatures is corrupted, batch and one-by-one give the same verdicts.
    #[test]
    fn batch_agrees_with_one_by_one(corrupt in proptest::collection::vec((0usize..6, 0usize..2, 0usize..64), 0..5)) {
        let mut items = corpus(6);
        for (env, sig, byte) in corrupt {
            items[env].1.signatures[sig].sig[byte] ^= 0x40;
        }
        prop_assert_eq!(batched(&items), one_by_one(&items));
    }
}
