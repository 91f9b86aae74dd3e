//! Interoperability with an independent implementation: a key pair and signature produced by
//! OpenSSL 3.0 (`openssl genpkey -algorithm ed25519`, `openssl pkeyutl -sign -rawin` over the
//! PAE bytes written by hand with printf) load and verify here.

use pf_bundle::keys::{key_id, signing_key_from_pem, verifying_key_from_pem};
use pf_bundle::{DsseError, Envelope, EnvelopeSignature, IN_TOTO_PAYLOAD_TYPE, TrustPolicy};

const OPENSSL_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIGtyD092dViAgTplJYgVJfjK3nXfBIFb9TtF/1UyS4dF
-----END PRIVATE KEY-----
";
const OPENSSL_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAdm/rA7IZ4QYJMmh92+kjFbGleWWxDDHLO3N3sjm0WzY=
-----END PUBLIC KEY-----
";
/// `openssl pkeyutl -sign` over `DSSEv1 28 application/vnd.in-toto+json 13 {"hello":"x"}`.
const OPENSSL_SIG_B64: &str =
    "rBO3phQrlE0OMAEZXh7TMdDZ5C01h1Xal/a5GOzw97WGrzFBXpKeSyEXXDqVFHUPoXfLlUhNP01rQ2u9xjcWAQ==";
/// `openssl pkey -pubin -outform DER | sha256sum`.
const OPENSSL_SPKI_SHA256: &str =
    "78fea80f1d6ee822070620bea160c16ba6e64c67021fce64acde715920acc586";

#[test]
fn openssl_keys_load_and_key_id_is_the_spki_der_hash() {
    let sk = signing_key_from_pem(OPENSSL_PRIVATE, "openssl private").expect("pkcs8");
    let vk = verifying_key_from_pem(OPENSSL_PUBLIC, "openssl public").expect("spki");
    assert_eq!(sk.verifying_key(), vk);
    assert_eq!(key_id(&vk), OPENSSL_SPKI_SHA256);
}

#[test]
fn openssl_signature_over_pae_verifies_and_our_signature_matches_it() {
    let vk = verifying_key_from_pem(OPENSSL_PUBLIC, "openssl public").expect("spki");
    let policy = TrustPolicy::new(1, vec![("openssl".into(), vk)]).expect("policy");
    let json = format!(
        r#"{{"payloadType":"{IN_TOTO_PAYLOAD_TYPE}","payload":"eyJoZWxsbyI6IngifQ==","signatures":[{{"keyid":"{OPENSSL_SPKI_SHA256}","sig":"{OPENSSL_SIG_B64}"}}]}}"#
    );
    let env = Envelope::from_json(json.as_bytes()).expect("envelope");
    assert_eq!(env.payload, br#"{"hello":"x"}"#);
    assert_eq!(
        env.verify(IN_TOTO_PAYLOAD_TYPE, &policy).expect("verifies"),
        ["openssl"]
    );

    // Ed25519 is deterministic (RFC 8032 §5.1.6): signing the same PAE with the same key here
    // must give OpenSSL's exact bytes.
    let sk = signing_key_from_pem(OPENSSL_PRIVATE, "openssl private").expect("pkcs8");
    let mut ours = Envelope::new(IN_TOTO_PAYLOAD_TYPE, br#"{"hello":"x"}"#.to_vec());
    ours.sign(&sk);
    assert_eq!(ours.signatures, env.signatures);

    let mut wrong = env.clone();
    wrong.signatures = vec![EnvelopeSignature {
        keyid: OPENSSL_SPKI_SHA256.into(),
        sig: env.signatures[0].sig.clone(),
    }];
    wrong.payload = br#"{"hello":"y"}"#.to_vec();
    assert!(matches!(
        wrong.verify(IN_TOTO_PAYLOAD_TYPE, &policy),
        Err(DsseError::ThresholdNotMet { valid: 0, .. })
    ));
}
