//! Attestation: the run's aggregate result as an in-toto Statement v1 about the bundle digest,
//! signed in a DSSE envelope (both from `pf-bundle`), and its verification for `pf bundle
//! verify` and the admission controller.

use ed25519_dalek::SigningKey;
use pf_bundle::{
    DsseError, Envelope, IN_TOTO_PAYLOAD_TYPE, Sha256Digest, Statement, StatementError, Subject,
    TrustPolicy,
};
use serde::{Deserialize, Serialize};

use crate::engine::ObligationResult;
use crate::gates::GateResult;
use crate::report::RunReport;

/// in-toto predicate type of a verification result.
pub const VERIFICATION_PREDICATE_TYPE: &str = "https://provability-fabric.dev/verification/v1";

/// Name and version of the engine that produced an attestation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verifier {
    /// Always `pf-verify`.
    pub name: String,
    /// Crate version.
    pub version: String,
}

/// The verified spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecId {
    /// Agent name.
    pub name: String,
    /// Spec version.
    pub version: String,
}

/// The predicate: per-obligation results, gate results and the overall decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerificationPredicate {
    /// Engine identity.
    pub verifier: Verifier,
    /// Spec identity.
    pub spec: SpecId,
    /// Each obligation: checker, version, input digest, verdict, time.
    pub obligations: Vec<ObligationResult>,
    /// Each gate's outcome.
    pub gates: Vec<GateResult>,
    /// True when every gate passed.
    pub passed: bool,
}

impl VerificationPredicate {
    /// The predicate for a finished run.
    pub fn from_report(report: &RunReport) -> Self {
        Self {
            verifier: Verifier {
                name: "pf-verify".into(),
                version: env!("CARGO_PKG_VERSION").into(),
            },
            spec: SpecId {
                name: report.spec_name.clone(),
                version: report.spec_version.clone(),
            },
            obligations: report.results.clone(),
            gates: report.gates.clone(),
            passed: report.passed,
        }
    }
}

/// Builds the statement for `report` (subject: the bundle, by its sha256) and signs it.
pub fn sign_attestation(report: &RunReport, key: &SigningKey) -> Envelope {
    let statement = Statement::new(
        vec![Subject::sha256(
            &format!("{}-{}.pfb", report.spec_name, report.spec_version),
            &report.bundle_digest,
        )],
        VERIFICATION_PREDICATE_TYPE,
        VerificationPredicate::from_report(report),
    );
    statement.sign(key)
}

/// Why an attestation is not accepted.
#[derive(Debug, thiserror::Error)]
pub enum AttestationError {
    /// Envelope malformed, wrong payload type, or not signed by enough trusted keys.
    #[error("attestation signature: {0}")]
    Signature(#[from] DsseError),
    /// Payload is not a verification statement.
    #[error("attestation statement: {0}")]
    Statement(#[from] StatementError),
    /// The statement is about something else.
    #[error("attestation is about {found}, not this bundle ({expected})")]
    SubjectMismatch {
        /// Subject digests found.
        found: String,
        /// The bundle's digest.
        expected: String,
    },
    /// The statement says verification did not pass.
    #[error("attestation records a failed verification: {0}")]
    NotPassed(String),
}

/// An attestation that passed every check.
#[derive(Debug, Clone)]
pub struct VerifiedAttestation {
    /// Names of the trusted keys that signed.
    pub signers: Vec<String>,
    /// The predicate.
    pub predicate: VerificationPredicate,
}

/// Verifies an attestation for the bundle with digest `bundle_digest`.
///
/// Checks, in order: the DSSE signatures against `policy` (k of n) with the in-toto payload
/// type; the statement type and predicate type; that the single subject is the bundle digest;
/// that the run passed, every gate passed, there was at least one gate, and `passed` agrees with
/// the gates. Only then is the predicate returned.
pub fn verify_attestation(
    envelope: &Envelope,
    policy: &TrustPolicy,
    bundle_digest: &Sha256Digest,
) -> Result<VerifiedAttestation, AttestationError> {
    let signers = envelope.verify(IN_TOTO_PAYLOAD_TYPE, policy)?;
    let statement: Statement<VerificationPredicate> =
        Statement::from_payload(&envelope.payload, VERIFICATION_PREDICATE_TYPE)?;
    let digests: Vec<Option<Sha256Digest>> = statement
        .subject
        .iter()
        .map(Subject::sha256_digest)
        .collect();
    if digests.len() != 1 || digests[0].as_ref() != Some(bundle_digest) {
        return Err(AttestationError::SubjectMismatch {
            found: digests
                .iter()
                .map(|d| d.map_or_else(|| "<no sha256>".to_string(), |d| d.to_hex()))
                .collect::<Vec<_>>()
                .join(", "),
            expected: bundle_digest.to_hex(),
        });
    }
    let p = statement.predicate;
    if p.gates.is_empty() {
        return Err(AttestationError::NotPassed("no gates recorded".into()));
    }
    let failed: Vec<&str> = p
        .gates
        .iter()
        .filter(|g| !g.passed || !g.failures.is_empty())
        .map(|g| g.gate.as_str())
        .collect();
    if !p.passed || !failed.is_empty() {
        return Err(AttestationError::NotPassed(if failed.is_empty() {
            "passed is false".into()
        } else {
            format!("gates failed: {}", failed.join(", "))
        }));
    }
    Ok(VerifiedAttestation {
        signers,
        predicate: p,
    })
}
