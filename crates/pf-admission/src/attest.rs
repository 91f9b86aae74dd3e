//! The verification-attestation check: does a valid attestation say this exact bundle digest was
//! verified? [`AttestationCheck`] is the seam the verification engine plugs into;
//! [`DsseAttestationCheck`] verifies a DSSE envelope carrying an in-toto Statement whose subject
//! is the bundle digest, signed k-of-n by keys of an attestor trust policy.

use pf_bundle::{Envelope, IN_TOTO_PAYLOAD_TYPE, Sha256Digest, Statement, TrustPolicy};

/// Predicate type of a Provability Fabric verification attestation.
pub const VERIFICATION_PREDICATE_TYPE: &str = "https://provability-fabric.dev/verification/v1";

/// Largest attestation accepted (bytes).
pub const MAX_ATTESTATION_SIZE: usize = 4 * 1024 * 1024;

/// Checks that `attestation` is a valid verification attestation for `bundle_digest`.
pub trait AttestationCheck: Send + Sync {
    /// `Ok(())` if the attestation holds for exactly this bundle; otherwise a one-line reason.
    fn check(&self, bundle_digest: &Sha256Digest, attestation: &[u8]) -> Result<(), String>;
}

/// Parses attestation bytes as a DSSE envelope, refusing more than [`MAX_ATTESTATION_SIZE`].
pub fn read_envelope(attestation: &[u8]) -> Result<Envelope, String> {
    if attestation.len() > MAX_ATTESTATION_SIZE {
        return Err(format!(
            "attestation is {} bytes (limit {MAX_ATTESTATION_SIZE})",
            attestation.len()
        ));
    }
    Envelope::from_json(attestation).map_err(|e| format!("attestation: {e}"))
}

/// DSSE + in-toto attestation check against a trust policy of attestor keys.
pub struct DsseAttestationCheck {
    policy: TrustPolicy,
    predicate_type: String,
}

impl DsseAttestationCheck {
    /// Checks attestations signed by `policy` (k-of-n) with the given predicate type.
    pub fn new(policy: TrustPolicy, predicate_type: &str) -> Self {
        Self {
            policy,
            predicate_type: predicate_type.to_string(),
        }
    }
}

impl AttestationCheck for DsseAttestationCheck {
    fn check(&self, bundle_digest: &Sha256Digest, attestation: &[u8]) -> Result<(), String> {
        let env = read_envelope(attestation)?;
        env.verify(IN_TOTO_PAYLOAD_TYPE, &self.policy)
            .map_err(|e| format!("attestation signatures: {e}"))?;
        let st: Statement<serde_json::Value> =
            Statement::from_payload(&env.payload, &self.predicate_type)
                .map_err(|e| format!("attestation statement: {e}"))?;
        if st
            .subject
            .iter()
            .any(|s| s.sha256_digest() == Some(*bundle_digest))
        {
            Ok(())
        } else {
            Err(format!(
                "attestation does not cover bundle sha256:{}",
                bundle_digest.to_hex()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pf_bundle::Subject;

    fn setup() -> (ed25519_dalek::SigningKey, DsseAttestationCheck) {
        let key = pf_bundle::keys::generate();
        let policy =
            TrustPolicy::new(1, vec![("verifier".into(), key.verifying_key())]).expect("policy");
        (
            key,
            DsseAttestationCheck::new(policy, VERIFICATION_PREDICATE_TYPE),
        )
    }

    fn attest(key: &ed25519_dalek::SigningKey, digest: &Sha256Digest, ptype: &str) -> Vec<u8> {
        Statement::new(
            vec![Subject::sha256("agent.pfb", digest)],
            ptype,
            serde_json::json!({"result": "verified"}),
        )
        .sign(key)
        .to_json()
        .into_bytes()
    }

    #[test]
    fn accepts_matching_digest_and_rejects_others() {
        let (key, check) = setup();
        let d = Sha256Digest::of(b"bundle");
        let att = attest(&key, &d, VERIFICATION_PREDICATE_TYPE);
        assert_eq!(check.check(&d, &att), Ok(()));
        let other = Sha256Digest::of(b"other");
        assert!(
            check
                .check(&other, &att)
                .expect_err("wrong digest")
                .contains("does not cover")
        );
    }

    #[test]
    fn rejects_untrusted_signer_wrong_type_and_garbage() {
        let (_key, check) = setup();
        let d = Sha256Digest::of(b"bundle");
        let stranger = pf_bundle::keys::generate();
        assert!(
            check
                .check(&d, &attest(&stranger, &d, VERIFICATION_PREDICATE_TYPE))
                .is_err()
        );
        let (key, check) = setup();
        assert!(
            check
                .check(&d, &attest(&key, &d, "https://example/other"))
                .is_err()
        );
        assert!(check.check(&d, b"not json").is_err());
        // Tampered payload: signature no longer valid.
        let mut env =
            Envelope::from_json(&attest(&key, &d, VERIFICATION_PREDICATE_TYPE)).expect("env");
        env.payload.push(b' ');
        assert!(check.check(&d, env.to_json().as_bytes()).is_err());
    }
}
