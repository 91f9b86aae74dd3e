//! Canonical JSON (RFC 8785) of a spec and its SHA-256 digest.
//!
//! Two specs that mean the same (key order, quoting, comments, YAML style aside) have the same
//! canonical form, so the digest identifies the spec a bundle, proof or decision refers to.

use sha2::{Digest, Sha256};

use crate::model::AgentSpec;

/// The spec as RFC 8785 canonical JSON text.
pub fn canonical_json(spec: &AgentSpec) -> String {
    // Serialising our own model cannot fail: every field is a plain JSON-compatible type and
    // non-finite floats are rejected by lint before specs are used. Fall back to an explicit
    // marker rather than panicking, so a digest is still produced and can never collide with a
    // real spec's.
    serde_json_canonicalizer::to_string(spec)
        .unwrap_or_else(|e| format!("{{\"unserialisable\":{:?}}}", e.to_string()))
}

/// `sha256:<hex>` of the canonical JSON.
pub fn digest(spec: &AgentSpec) -> String {
    format!(
        "sha256:{}",
        hex::encode(Sha256::digest(canonical_json(spec).as_bytes()))
    )
}
