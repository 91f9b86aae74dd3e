//! Bundle signatures: the bundle predicate, signing, and verification of one bundle against a
//! trust policy (the checks `pf bundle verify` performs).

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

use crate::digest::Sha256Digest;
use crate::dsse::{DsseError, Envelope, IN_TOTO_PAYLOAD_TYPE};
use crate::intoto::{Statement, StatementError, Subject};
use crate::limits::Limits;
use crate::open::{OpenError, OpenedBundle, open};
use crate::trust::TrustPolicy;

/// predicateType of a bundle statement.
pub const BUNDLE_PREDICATE_TYPE: &str = "https://provability-fabric.dev/bundle/v1";

/// Digest of the bundle manifest, as an in-toto `DigestSet` restricted to sha256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestDigest {
    /// Hex SHA-256 of the manifest's canonical JSON.
    pub sha256: Sha256Digest,
}

/// Predicate of a bundle statement: what the signer vouches the bundle contains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BundlePredicate {
    /// Digest of the manifest.
    pub manifest_digest: ManifestDigest,
    /// Agent name from the spec.
    pub spec_name: String,
    /// Agent version from the spec.
    pub spec_version: String,
}

/// Why signing failed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The archive is not a valid bundle (it is opened and checked before signing).
    #[error("cannot sign an invalid bundle: {0}")]
    Open(#[from] OpenError),
    /// An existing envelope to add to is for a different statement.
    #[error(
        "the existing envelope is for a different bundle or statement; refusing to add a signature"
    )]
    DifferentStatement,
}

/// Why a bundle did not verify.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Envelope payload type or signature threshold.
    #[error(transparent)]
    Dsse(#[from] DsseError),
    /// Payload is not a bundle statement.
    #[error(transparent)]
    Statement(#[from] StatementError),
    /// A bundle statement has exactly one subject.
    #[error("bundle statement must have exactly one subject, found {0}")]
    SubjectCount(usize),
    /// The archive's sha256 is not the signed subject digest (different or modified bundle).
    #[error("bundle digest {actual} does not match the signed subject digest {signed}")]
    SubjectDigest {
        /// From the statement.
        signed: String,
        /// Of the archive.
        actual: Sha256Digest,
    },
    /// The archive itself is invalid.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The manifest in the archive is not the signed one.
    #[error("manifest digest {actual} does not match the signed {signed}")]
    ManifestDigest {
        /// From the predicate.
        signed: Sha256Digest,
        /// Of the archive's manifest.
        actual: Sha256Digest,
    },
    /// Name, version or subject name differ between statement and manifest.
    #[error("signed {field} {signed:?} does not match the bundle's {actual:?}")]
    SpecMismatch {
        /// Field.
        field: &'static str,
        /// From the statement.
        signed: String,
        /// From the manifest.
        actual: String,
    },
}

/// A bundle that passed every check.
#[derive(Debug, Clone)]
pub struct VerifiedBundle {
    /// The opened, digest-checked bundle.
    pub bundle: OpenedBundle,
    /// Names of the trusted keys whose signatures were valid.
    pub signers: Vec<String>,
}

/// The statement a signer of `bundle` signs.
pub fn bundle_statement(bundle: &OpenedBundle) -> Statement<BundlePredicate> {
    Statement::new(
        vec![Subject::sha256(
            &bundle.manifest.bundle_file_name(),
            &bundle.digest,
        )],
        BUNDLE_PREDICATE_TYPE,
        BundlePredicate {
            manifest_digest: ManifestDigest {
                sha256: bundle.manifest_digest,
            },
            spec_name: bundle.manifest.spec.name.clone(),
            spec_version: bundle.manifest.spec.version.clone(),
        },
    )
}

/// Opens and checks `archive`, then signs its statement with `key`. With `existing`, the
/// signature is added to that envelope (k-of-n signing) provided it carries the same statement.
pub fn sign_bundle(
    archive: &[u8],
    key: &SigningKey,
    existing: Option<Envelope>,
    limits: &Limits,
) -> Result<Envelope, SignError> {
    let bundle = open(archive, limits)?;
    let payload = bundle_statement(&bundle).to_payload();
    let mut env = match existing {
        Some(env) if env.payload_type == IN_TOTO_PAYLOAD_TYPE && env.payload == payload => env,
        Some(_) => return Err(SignError::DifferentStatement),
        None => Envelope::new(IN_TOTO_PAYLOAD_TYPE, payload),
    };
    env.sign(key);
    Ok(env)
}

/// Verifies `archive` against `envelope` and `policy`:
/// payload type exactly in-toto, at least k valid signatures by distinct trusted keys, a bundle
/// statement whose single subject digest is the archive's sha256, an archive that opens within
/// `limits` with every file matching the manifest, and a manifest digest, spec name, version and
/// subject name equal to the signed ones.
pub fn verify_bundle(
    archive: &[u8],
    envelope: &Envelope,
    policy: &TrustPolicy,
    limits: &Limits,
) -> Result<VerifiedBundle, VerifyError> {
    let signers = envelope.verify(IN_TOTO_PAYLOAD_TYPE, policy)?;
    check_statement(archive, envelope, signers, limits)
}

/// The checks after the signatures: statement, subject, archive contents, predicate.
pub(crate) fn check_statement(
    archive: &[u8],
    envelope: &Envelope,
    signers: Vec<String>,
    limits: &Limits,
) -> Result<VerifiedBundle, VerifyError> {
    let statement: Statement<BundlePredicate> =
        Statement::from_payload(&envelope.payload, BUNDLE_PREDICATE_TYPE)?;
    let [subject] = statement.subject.as_slice() else {
        return Err(VerifyError::SubjectCount(statement.subject.len()));
    };
    let actual = Sha256Digest::of(archive);
    if subject.sha256_digest() != Some(actual) {
        let signed = subject
            .digest
            .get("sha256")
            .cloned()
            .unwrap_or_else(|| "<none>".to_string());
        return Err(VerifyError::SubjectDigest { signed, actual });
    }
    let bundle = open(archive, limits)?;
    let p = &statement.predicate;
    if p.manifest_digest.sha256 != bundle.manifest_digest {
        return Err(VerifyError::ManifestDigest {
            signed: p.manifest_digest.sha256,
            actual: bundle.manifest_digest,
        });
    }
    let m = &bundle.manifest;
    for (field, signed, actual) in [
        ("spec name", &p.spec_name, &m.spec.name),
        ("spec version", &p.spec_version, &m.spec.version),
        ("subject name", &subject.name, &m.bundle_file_name()),
    ] {
        if signed != actual {
            return Err(VerifyError::SpecMismatch {
                field,
                signed: signed.clone(),
                actual: actual.clone(),
            });
        }
    }
    Ok(VerifiedBundle { bundle, signers })
}
