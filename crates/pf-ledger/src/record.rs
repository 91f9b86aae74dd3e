//! Decision records: canonical JSON (RFC 8785 JCS) entries, with sensitive fields replaced by
//! salted SHA-256 commitments so the log never holds the raw value while the holder of the
//! salt can later prove what it was.

use serde_json::{Map, Value};

use crate::hash::sha256;

/// Key of the object that stands in for a committed value: `{"$commitment": "sha256:<hex>"}`.
pub const COMMITMENT_KEY: &str = "$commitment";
/// Domain separator hashed before the salt, so commitments cannot collide with other hashes.
const COMMITMENT_DOMAIN: &[u8] = b"pf-ledger commitment v1\n";

/// Why a record could not be prepared or a commitment opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The record is not a JSON object.
    #[error("a decision record must be a JSON object")]
    NotAnObject,
    /// The bytes are not JSON.
    #[error("invalid JSON at line {line}, column {column}: {message}")]
    InvalidJson {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// Parser message.
        message: String,
    },
    /// A sensitive-field pointer does not name a field of the record.
    #[error("sensitive field {0:?} is not in the record")]
    NoSuchField(String),
    /// Canonicalisation failed (e.g. a non-finite number).
    #[error("cannot canonicalise record: {0}")]
    Canonical(String),
    /// The canonical entry exceeds the size limit.
    #[error("canonical record is {got} bytes, limit {limit}")]
    TooLarge {
        /// Size of the canonical form.
        got: usize,
        /// Limit.
        limit: usize,
    },
    /// An opening does not match the commitment found in the record.
    #[error("commitment at {0:?} does not match the opening")]
    OpeningMismatch(String),
}

/// The secret needed to prove a committed field: where it is, the salt and the raw value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Opening {
    /// JSON pointer (RFC 6901) of the field in the record.
    pub pointer: String,
    /// 32-byte salt, hex.
    pub salt: String,
    /// The original value.
    pub value: Value,
}

/// A record ready to append: canonical bytes plus the openings of its commitments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedRecord {
    /// RFC 8785 canonical JSON of the record with commitments in place.
    pub canonical: Vec<u8>,
    /// Openings, one per sensitive field, for the submitter to keep.
    pub openings: Vec<Opening>,
}

/// RFC 8785 canonical form of a JSON value.
pub fn canonicalize(v: &Value) -> Result<Vec<u8>, RecordError> {
    serde_json_canonicalizer::to_vec(v).map_err(|e| RecordError::Canonical(e.to_string()))
}

/// Parses JSON text, reporting line and column on error.
pub fn parse_json(bytes: &[u8]) -> Result<Value, RecordError> {
    serde_json::from_slice(bytes).map_err(|e| RecordError::InvalidJson {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })
}

/// The commitment `SHA-256(domain || salt || JCS(value))`, hex.
pub fn commitment(salt: &[u8; 32], value: &Value) -> Result<String, RecordError> {
    let mut m = COMMITMENT_DOMAIN.to_vec();
    m.extend_from_slice(salt);
    m.extend_from_slice(&canonicalize(value)?);
    Ok(hex::encode(sha256(&m)))
}

fn commitment_object(hex: &str) -> Value {
    let mut m = Map::new();
    m.insert(
        COMMITMENT_KEY.to_string(),
        Value::String(format!("sha256:{hex}")),
    );
    Value::Object(m)
}

fn pointer_of(field: &str) -> String {
    if field.starts_with('/') {
        field.to_string()
    } else {
        format!("/{}", field.replace('~', "~0").replace('/', "~1"))
    }
}

/// Replaces each sensitive field (a JSON pointer, or a top-level name) by a salted commitment
/// and canonicalises the record. Salts come from the operating system's random source.
pub fn prepare(
    record: Value,
    sensitive: &[&str],
    max_bytes: usize,
) -> Result<PreparedRecord, RecordError> {
    let mut record = record;
    if !record.is_object() {
        return Err(RecordError::NotAnObject);
    }
    let mut openings = Vec::new();
    for field in sensitive {
        let pointer = pointer_of(field);
        let slot = record
            .pointer_mut(&pointer)
            .ok_or_else(|| RecordError::NoSuchField(pointer.clone()))?;
        let mut salt = [0u8; 32];
        getrandom::getrandom(&mut salt)
            .map_err(|e| RecordError::Canonical(format!("no randomness: {e}")))?;
        let value = std::mem::take(slot);
        *slot = commitment_object(&commitment(&salt, &value)?);
        openings.push(Opening {
            pointer,
            salt: hex::encode(salt),
            value,
        });
    }
    let canonical = canonicalize(&record)?;
    if canonical.len() > max_bytes {
        return Err(RecordError::TooLarge {
            got: canonical.len(),
            limit: max_bytes,
        });
    }
    Ok(PreparedRecord {
        canonical,
        openings,
    })
}

/// Checks that `record` (as logged) holds at `opening.pointer` the commitment to
/// `opening.value` under `opening.salt`: the proof that the logged field had that value.
pub fn verify_opening(record: &Value, opening: &Opening) -> Result<(), RecordError> {
    let mismatch = || RecordError::OpeningMismatch(opening.pointer.clone());
    let logged = record
        .pointer(&opening.pointer)
        .and_then(|v| v.get(COMMITMENT_KEY))
        .and_then(Value::as_str)
        .and_then(|s| s.strip_prefix("sha256:"))
        .ok_or_else(mismatch)?;
    let salt: [u8; 32] = hex::decode(&opening.salt)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(mismatch)?;
    if commitment(&salt, &opening.value)? == logged {
        Ok(())
    } else {
        Err(mismatch())
    }
}

/// Secondary-index keys of a logged record: `agent:<id>`, `bundle:<digest>` and
/// `commitment:<hex>` for every commitment anywhere in it.
pub fn index_keys(record: &Value) -> Vec<String> {
    let mut keys = Vec::new();
    if let Some(a) = record.get("agent").and_then(Value::as_str) {
        keys.push(format!("agent:{a}"));
    }
    if let Some(b) = record.get("bundle_digest").and_then(Value::as_str) {
        keys.push(format!("bundle:{b}"));
    }
    let mut stack = vec![record];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(m) => {
                if let Some(c) = m
                    .get(COMMITMENT_KEY)
                    .and_then(Value::as_str)
                    .and_then(|s| s.strip_prefix("sha256:"))
                {
                    keys.push(format!("commitment:{c}"));
                }
                stack.extend(m.values());
            }
            Value::Array(a) => stack.extend(a.iter()),
            _ => {}
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_form_sorts_keys_and_formats_numbers_per_rfc8785() {
        // RFC 8785 §3.2.2/§3.2.3: keys sorted by UTF-16 code units, ES6 number formatting.
        let v = json!({"b": 1, "a": [1e21, 0.1, -0.0, 1.5e-7], "\u{20ac}": "x", "\r": "y"});
        let s = String::from_utf8(canonicalize(&v).expect("jcs")).expect("utf8");
        assert_eq!(
            s,
            "{\"\\r\":\"y\",\"a\":[1e+21,0.1,0,1.5e-7],\"b\":1,\"\u{20ac}\":\"x\"}"
        );
    }

    #[test]
    fn sensitive_fields_become_commitments_that_open() {
        let r = json!({"agent": "a1", "args": {"email": "x@example.com"}, "decision": "deny"});
        let p = prepare(r, &["/args/email"], 65535).expect("prepare");
        let logged = parse_json(&p.canonical).expect("json");
        assert!(!String::from_utf8_lossy(&p.canonical).contains("x@example.com"));
        assert_eq!(p.openings.len(), 1);
        verify_opening(&logged, &p.openings[0]).expect("opens");
        let mut wrong = p.openings[0].clone();
        wrong.value = json!("y@example.com");
        assert!(verify_opening(&logged, &wrong).is_err());
        let keys = index_keys(&logged);
        assert!(keys.contains(&"agent:a1".to_string()));
        assert!(keys.iter().any(|k| k.starts_with("commitment:")));
    }

    #[test]
    fn bad_input_is_rejected_with_position() {
        assert!(matches!(
            prepare(json!([1]), &[], 100),
            Err(RecordError::NotAnObject)
        ));
        assert!(matches!(
            prepare(json!({"a": 1}), &["b"], 100),
            Err(RecordError::NoSuchField(_))
        ));
        assert!(matches!(
            prepare(json!({"a": "long"}), &[], 5),
            Err(RecordError::TooLarge { .. })
        ));
        assert!(matches!(
            parse_json(b"{\n  \"a\": }"),
            Err(RecordError::InvalidJson { line: 2, .. })
        ));
    }
}
