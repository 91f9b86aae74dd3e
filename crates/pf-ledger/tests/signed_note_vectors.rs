//! Conformance: the Go sumdb signed-note vector (keys, signed output, malformed keys).

use pf_ledger::note::{Note, SignerKey, VerifierKey, sign};
use serde_json::Value;

fn vector() -> Option<Value> {
    let p = pf_testkit::shared_path("vectors/tlog/signed-note.json")?;
    Some(serde_json::from_str(&std::fs::read_to_string(p).expect("read")).expect("json"))
}

#[test]
fn signer_reproduces_the_expected_signed_note() {
    let Some(v) = vector() else { return };
    let signer =
        SignerKey::parse(v["signer_key"].as_str().expect("signer")).expect("signer key parses");
    let vkey =
        VerifierKey::parse(v["verifier_key"].as_str().expect("vkey")).expect("verifier key parses");
    assert_eq!(signer.verifier(), vkey);
    assert_eq!(vkey.to_string(), v["verifier_key"].as_str().expect("vkey"));
    // Ed25519 is deterministic, so the signed note must match byte for byte.
    let note = sign(v["text"].as_str().expect("text"), &signer).expect("sign");
    assert_eq!(note.to_text(), v["signed_note"].as_str().expect("signed"));
    let parsed = Note::parse(v["signed_note"].as_str().expect("signed").as_bytes()).expect("parse");
    assert_eq!(
        parsed.verify(&[vkey]).expect("verifies"),
        vec!["PeterNeumann".to_string()]
    );
}

#[test]
fn malformed_verifier_keys_are_rejected() {
    let Some(v) = vector() else { return };
    let bad = v["bad_verifier_keys"].as_array().expect("list");
    assert!(!bad.is_empty());
    for k in bad {
        let k = k.as_str().expect("string");
        assert!(VerifierKey::parse(k).is_err(), "accepted malformed key {k}");
    }
}
