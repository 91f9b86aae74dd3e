//! in-toto Statement v1 (in-toto attestation framework, `spec/v1/statement.md`), generic over the
//! predicate so bundle signatures and verification attestations share one implementation.

use std::collections::BTreeMap;

use ed25519_dalek::SigningKey;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::digest::Sha256Digest;
use crate::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};

/// Value of `_type` for Statement v1.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";

/// Most subjects accepted in one statement.
pub const MAX_SUBJECTS: usize = 1024;

/// A software artifact the statement is about (`ResourceDescriptor` with name and digest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    /// Artifact name, e.g. `ai-agent-1.0.0.pfb`.
    pub name: String,
    /// Algorithm -> lowercase hex digest (`DigestSet`).
    pub digest: BTreeMap<String, String>,
}

impl Subject {
    /// A subject with a single sha256 digest.
    pub fn sha256(name: &str, digest: &Sha256Digest) -> Self {
        Self {
            name: name.to_string(),
            digest: BTreeMap::from([("sha256".to_string(), digest.to_hex())]),
        }
    }

    /// The sha256 entry of the digest set, if present and well-formed.
    pub fn sha256_digest(&self) -> Option<Sha256Digest> {
        self.digest
            .get("sha256")
            .and_then(|h| Sha256Digest::from_hex(h).ok())
    }
}

/// An in-toto Statement v1 with predicate `P`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement<P> {
    /// Always [`STATEMENT_TYPE`].
    #[serde(rename = "_type")]
    pub statement_type: String,
    /// What the statement is about.
    pub subject: Vec<Subject>,
    /// URI naming the predicate schema.
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    /// The claim.
    pub predicate: P,
}

/// Why a payload is not the expected statement.
#[derive(Debug, thiserror::Error)]
pub enum StatementError {
    /// Not a JSON statement.
    #[error("statement is not valid JSON of the expected shape: {0}")]
    Json(#[from] serde_json::Error),
    /// `_type` is not Statement v1.
    #[error("statement _type is {0:?}, expected {STATEMENT_TYPE:?}")]
    StatementType(String),
    /// `predicateType` differs from the one expected.
    #[error("predicateType is {found:?}, expected {expected:?}")]
    PredicateType {
        /// Found.
        found: String,
        /// Expected.
        expected: String,
    },
    /// No subject, or more than [`MAX_SUBJECTS`].
    #[error("statement has {0} subjects (1..={MAX_SUBJECTS} allowed)")]
    SubjectCount(usize),
}

impl<P: Serialize> Statement<P> {
    /// A statement about `subject` with the given predicate.
    pub fn new(subject: Vec<Subject>, predicate_type: &str, predicate: P) -> Self {
        Self {
            statement_type: STATEMENT_TYPE.to_string(),
            subject,
            predicate_type: predicate_type.to_string(),
            predicate,
        }
    }

    /// Compact JSON payload (deterministic: struct fields in declaration order, maps sorted).
    pub fn to_payload(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// An in-toto DSSE envelope carrying this statement, signed by `key`.
    pub fn sign(&self, key: &SigningKey) -> Envelope {
        let mut env = Envelope::new(IN_TOTO_PAYLOAD_TYPE, self.to_payload());
        env.sign(key);
        env
    }
}

impl<P: DeserializeOwned> Statement<P> {
    /// Parses a verified payload, checking `_type`, `predicateType` and the subject count before
    /// interpreting the predicate.
    pub fn from_payload(
        payload: &[u8],
        expected_predicate_type: &str,
    ) -> Result<Self, StatementError> {
        let raw: Statement<serde_json::Value> = serde_json::from_slice(payload)?;
        if raw.statement_type != STATEMENT_TYPE {
            return Err(StatementError::StatementType(raw.statement_type));
        }
        if raw.predicate_type != expected_predicate_type {
            return Err(StatementError::PredicateType {
                found: raw.predicate_type,
                expected: expected_predicate_type.to_string(),
            });
        }
        if raw.subject.is_empty() || raw.subject.len() > MAX_SUBJECTS {
            return Err(StatementError::SubjectCount(raw.subject.len()));
        }
        Ok(Statement {
            predicate: serde_json::from_value(raw.predicate)?,
            statement_type: raw.statement_type,
            subject: raw.subject,
            predicate_type: raw.predicate_type,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_json_uses_the_v1_field_names() {
        let s = Statement::new(
            vec![Subject::sha256("x", &Sha256Digest::of(b""))],
            "https://example/p",
            5u32,
        );
        let json = String::from_utf8(s.to_payload()).expect("utf8");
        assert_eq!(
            json,
            r#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"x","digest":{"sha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}}],"predicateType":"https://example/p","predicate":5}"#
        );
        let back: Statement<u32> =
            Statement::from_payload(json.as_bytes(), "https://example/p").expect("parse");
        assert_eq!(back, s);
    }

    #[test]
    fn wrong_types_and_empty_subjects_are_rejected() {
        let s = Statement::new(vec![], "https://example/p", 5u32).to_payload();
        assert!(matches!(
            Statement::<u32>::from_payload(&s, "https://example/p"),
            Err(StatementError::SubjectCount(0))
        ));
        let s = Statement::new(
            vec![Subject::sha256("x", &Sha256Digest::of(b""))],
            "https://example/p",
            5u32,
        )
        .to_payload();
        assert!(matches!(
            Statement::<u32>::from_payload(&s, "https://other"),
            Err(StatementError::PredicateType { .. })
        ));
        let v1 = String::from_utf8(s)
            .expect("utf8")
            .replace("Statement/v1", "Statement/v0.1");
        assert!(matches!(
            Statement::<u32>::from_payload(v1.as_bytes(), "https://example/p"),
            Err(StatementError::StatementType(_))
        ));
    }
}
