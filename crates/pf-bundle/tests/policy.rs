//! Trust policy and key loading errors.

use ed25519_dalek::SigningKey;
use pf_bundle::keys::{
    read_signing_key, read_verifying_key, signing_key_from_pem, signing_key_to_pem,
    verifying_key_from_pem, verifying_key_to_pem, write_key_pair,
};
use pf_bundle::{KeyError, PolicyError, TrustPolicy};

const P256_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg5TjhA5tM2GGeneF5
DQRZx6L95ov4/qCIJSym/i0OYlqhRANCAAQdqp218UWh6fY/3Mx5kGnIxbWzQ/EL
pApdlZnLQQU76mPWIdKUb2Qo/6vWz3jEspD5bJivf6lxvP0oT8yVwEXv
-----END PRIVATE KEY-----
";
const P256_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEHaqdtfFFoen2P9zMeZBpyMW1s0Px
C6QKXZWZy0EFO+pj1iHSlG9kKP+r1s94xLKQ+WyYr3+pcbz9KE/MlcBF7w==
-----END PUBLIC KEY-----
";

fn pem(seed: u8) -> String {
    verifying_key_to_pem(&SigningKey::from_bytes(&[seed; 32]).verifying_key())
}

#[test]
fn generated_key_pair_round_trips_and_private_file_is_0600() {
    let d = tempfile::tempdir().expect("tmp");
    let files = write_key_pair(d.path(), "release").expect("gen");
    let sk = read_signing_key(&files.private).expect("private");
    let vk = read_verifying_key(&files.public).expect("public");
    assert_eq!(sk.verifying_key(), vk);
    assert_eq!(files.key_id, pf_bundle::keys::key_id(&vk));
    assert_eq!(files.key_id.len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&files.private)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(
        write_key_pair(d.path(), "release").is_err(),
        "never overwrites"
    );
    assert!(write_key_pair(d.path(), "../escape").is_err());
}

#[test]
fn key_id_is_sha256_of_the_spki_der() {
    let vk = SigningKey::from_bytes(&[1; 32]).verifying_key();
    let text = verifying_key_to_pem(&vk);
    let b64: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64).expect("b64");
    assert_eq!(der.len(), 44, "RFC 8410 Ed25519 SPKI is 44 bytes");
    assert_eq!(
        pf_bundle::keys::key_id(&vk),
        pf_bundle::Sha256Digest::of(&der).to_hex()
    );
}

#[test]
fn private_and_public_pems_are_not_interchangeable() {
    let sk = SigningKey::from_bytes(&[5; 32]);
    let private = signing_key_to_pem(&sk);
    let public = pem(5);
    assert!(
        matches!(signing_key_from_pem(&public, "k"), Err(KeyError::WrongLabel { found, .. }) if found == "PUBLIC KEY")
    );
    assert!(
        matches!(verifying_key_from_pem(&private, "k"), Err(KeyError::WrongLabel { found, .. }) if found == "PRIVATE KEY")
    );
    assert_eq!(
        signing_key_from_pem(&private, "k").expect("ok").to_bytes(),
        sk.to_bytes()
    );
}

#[test]
fn garbled_and_foreign_keys_get_clear_errors() {
    assert!(matches!(
        signing_key_from_pem("hello", "k"),
        Err(KeyError::NotPem { .. })
    ));
    let garbled = pem(1).replace('A', "*");
    assert!(
        matches!(
            verifying_key_from_pem(&garbled, "k"),
            Err(KeyError::NotPem { .. })
        ),
        "{garbled}"
    );
    assert!(matches!(
        signing_key_from_pem(P256_PRIVATE, "k"),
        Err(KeyError::NotEd25519 { .. })
    ));
    assert!(matches!(
        verifying_key_from_pem(P256_PUBLIC, "k"),
        Err(KeyError::NotEd25519 { .. })
    ));
}

#[test]
fn small_order_public_key_is_rejected() {
    // The identity point (y = 1) encoded as an Ed25519 SPKI: 302a300506032b6570032100 || 01 00..00.
    let mut der = hex::decode("302a300506032b6570032100").expect("hex");
    let mut point = [0u8; 32];
    point[0] = 1;
    der.extend_from_slice(&point);
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &der);
    let text = format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n");
    assert!(matches!(
        verifying_key_from_pem(&text, "k"),
        Err(KeyError::WeakKey { .. })
    ));
}

#[test]
fn policy_errors_point_at_line_and_column() {
    let text = "{\n  \"threshold\": 1,\n  \"keys\": [ {\"name\": \"a\", \"pem\": 5} ]\n}";
    let r = TrustPolicy::from_json(text, std::path::Path::new("."), "trust.json");
    assert!(
        matches!(&r, Err(PolicyError::Parse { path, line: 3, .. }) if path == "trust.json"),
        "{r:?}"
    );
    let unknown = r#"{"threshold": 1, "keys": [], "treshold": 2}"#;
    let r = TrustPolicy::from_json(unknown, std::path::Path::new("."), "t");
    assert!(
        matches!(&r, Err(PolicyError::Parse { message, .. }) if message.contains("treshold")),
        "{r:?}"
    );
}

#[test]
fn policy_rejects_unmeetable_or_ambiguous_settings() {
    let keys = |n: u8| {
        (1..=n)
            .map(|i| {
                (
                    format!("k{i}"),
                    SigningKey::from_bytes(&[i; 32]).verifying_key(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert!(matches!(
        TrustPolicy::new(0, keys(2)),
        Err(PolicyError::ZeroThreshold)
    ));
    assert!(matches!(
        TrustPolicy::new(3, keys(2)),
        Err(PolicyError::ThresholdTooHigh {
            threshold: 3,
            keys: 2
        })
    ));
    let mut dup_name = keys(2);
    dup_name[1].0 = "k1".into();
    assert!(
        matches!(TrustPolicy::new(1, dup_name), Err(PolicyError::DuplicateName(n)) if n == "k1")
    );
    let mut dup_key = keys(2);
    dup_key[1].1 = dup_key[0].1;
    assert!(matches!(
        TrustPolicy::new(1, dup_key),
        Err(PolicyError::DuplicateKey { .. })
    ));
    let both =
        serde_json::json!({"threshold": 1, "keys": [{"name": "a", "pem": pem(1), "file": "x"}]})
            .to_string();
    assert!(matches!(
        TrustPolicy::from_json(&both, std::path::Path::new("."), "t"),
        Err(PolicyError::KeySource(_))
    ));
    let missing = serde_json::json!({"threshold": 1, "keys": [{"name": "a", "file": "nope.pem"}]})
        .to_string();
    assert!(matches!(
        TrustPolicy::from_json(&missing, std::path::Path::new("."), "t"),
        Err(PolicyError::Key { .. })
    ));
}
