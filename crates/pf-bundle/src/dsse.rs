//! DSSE envelopes (Dead Simple Signing Envelope, secure-systems-lab/dsse `envelope.md` and
//! `protocol.md`), signed with Ed25519 and verified against a k-of-n [`TrustPolicy`].
//!
//! Nothing here is specific to bundles: any payload type can be signed, so the verification
//! engine signs its attestations with the same code.

use std::collections::BTreeSet;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::keys::key_id;
use crate::trust::TrustPolicy;

/// Payload type of an in-toto statement (in-toto attestation spec, `envelope.md`).
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// Largest envelope accepted, in bytes.
pub const MAX_ENVELOPE_SIZE: usize = 4 * 1024 * 1024;

/// Most signatures accepted in one envelope.
pub const MAX_SIGNATURES: usize = 64;

/// Pre-Authentication Encoding (DSSE `protocol.md`):
/// `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, LEN as ASCII decimal without leading zeros.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + payload_type.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// One signature of an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeSignature {
    /// Key id hint (see [`crate::keys::key_id`]); empty means "try every trusted key".
    pub keyid: String,
    /// Raw signature bytes (64 for Ed25519).
    pub sig: Vec<u8>,
}

/// A DSSE envelope with its payload decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Media type of the payload, e.g. [`IN_TOTO_PAYLOAD_TYPE`].
    pub payload_type: String,
    /// The payload bytes (base64 only on the wire).
    pub payload: Vec<u8>,
    /// Signatures over `pae(payload_type, payload)`.
    pub signatures: Vec<EnvelopeSignature>,
}

/// Why an envelope is unreadable or does not verify.
#[derive(Debug, thiserror::Error)]
pub enum DsseError {
    /// Over [`MAX_ENVELOPE_SIZE`].
    #[error("envelope is {0} bytes, limit {MAX_ENVELOPE_SIZE}")]
    TooLarge(usize),
    /// JSON syntax or shape.
    #[error("envelope JSON {line}:{column}: {message}")]
    Json {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A base64 field does not decode.
    #[error("envelope field `{0}` is not valid base64")]
    Base64(&'static str),
    /// Over [`MAX_SIGNATURES`].
    #[error("envelope has {0} signatures, limit {MAX_SIGNATURES}")]
    TooManySignatures(usize),
    /// Payload type is not the one expected (checked before any signature, DSSE `protocol.md`).
    #[error("payload type is {found:?}, expected {expected:?}")]
    PayloadType {
        /// Found.
        found: String,
        /// Expected.
        expected: String,
    },
    /// Fewer distinct trusted keys signed than the policy requires.
    #[error("{valid} valid signature(s) from distinct trusted keys, policy requires {required}{}", if signers.is_empty() { String::new() } else { format!(" (valid: {})", signers.join(", ")) })]
    ThresholdNotMet {
        /// Distinct trusted keys with a valid signature.
        valid: usize,
        /// Policy threshold.
        required: usize,
        /// Names of those keys.
        signers: Vec<String>,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireSignature {
    #[serde(default)]
    keyid: String,
    sig: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WireEnvelope {
    payload_type: String,
    payload: String,
    signatures: Vec<WireSignature>,
}

const PAD_INDIFFERENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, PAD_INDIFFERENT);
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, PAD_INDIFFERENT);

/// DSSE `envelope.md`: readers accept both standard and URL-safe base64.
fn decode_b64(s: &str, field: &'static str) -> Result<Vec<u8>, DsseError> {
    STANDARD_LENIENT
        .decode(s)
        .or_else(|_| URL_SAFE_LENIENT.decode(s))
        .map_err(|_| DsseError::Base64(field))
}

impl Envelope {
    /// An unsigned envelope.
    pub fn new(payload_type: &str, payload: Vec<u8>) -> Self {
        Self {
            payload_type: payload_type.to_string(),
            payload,
            signatures: Vec::new(),
        }
    }

    /// The bytes signatures cover.
    pub fn pae(&self) -> Vec<u8> {
        pae(&self.payload_type, &self.payload)
    }

    /// Adds a signature by `key`, replacing an earlier one with the same key id.
    pub fn sign(&mut self, key: &SigningKey) {
        let keyid = key_id(&key.verifying_key());
        let sig = key.sign(&self.pae()).to_bytes().to_vec();
        self.signatures.retain(|s| s.keyid != keyid);
        self.signatures.push(EnvelopeSignature { keyid, sig });
    }

    /// JSON wire form (standard base64, pretty-printed).
    pub fn to_json(&self) -> String {
        let b64 = base64::engine::general_purpose::STANDARD;
        let wire = WireEnvelope {
            payload_type: self.payload_type.clone(),
            payload: b64.encode(&self.payload),
            signatures: self
                .signatures
                .iter()
                .map(|s| WireSignature {
                    keyid: s.keyid.clone(),
                    sig: b64.encode(&s.sig),
                })
                .collect(),
        };
        serde_json::to_string_pretty(&wire).unwrap_or_default()
    }

    /// Parses the JSON wire form, with size and signature-count limits.
    pub fn from_json(bytes: &[u8]) -> Result<Self, DsseError> {
        if bytes.len() > MAX_ENVELOPE_SIZE {
            return Err(DsseError::TooLarge(bytes.len()));
        }
        let wire: WireEnvelope = serde_json::from_slice(bytes).map_err(|e| DsseError::Json {
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        if wire.signatures.len() > MAX_SIGNATURES {
            return Err(DsseError::TooManySignatures(wire.signatures.len()));
        }
        let payload = decode_b64(&wire.payload, "payload")?;
        let signatures = wire
            .signatures
            .into_iter()
            .map(|s| {
                Ok(EnvelopeSignature {
                    keyid: s.keyid,
                    sig: decode_b64(&s.sig, "signatures[].sig")?,
                })
            })
            .collect::<Result<_, DsseError>>()?;
        Ok(Self {
            payload_type: wire.payload_type,
            payload,
            signatures,
        })
    }

    /// Verifies against `policy`; returns the names of the distinct trusted keys that signed.
    ///
    /// Unknown key ids are ignored, several signatures by one key count once, and the payload
    /// type must equal `expected_type` exactly. Only after this succeeds may the payload be parsed.
    pub fn verify(
        &self,
        expected_type: &str,
        policy: &TrustPolicy,
    ) -> Result<Vec<String>, DsseError> {
        self.check_type(expected_type)?;
        let msg = self.pae();
        let mut valid = BTreeSet::new();
        for c in self.candidates(policy) {
            let key = &policy.keys()[c.key].key;
            if !valid.contains(&c.key) && verify_one(key, &msg, &c.sig) {
                valid.insert(c.key);
            }
        }
        tally(policy, &valid)
    }

    pub(crate) fn check_type(&self, expected: &str) -> Result<(), DsseError> {
        if self.payload_type != expected {
            return Err(DsseError::PayloadType {
                found: self.payload_type.clone(),
                expected: expected.to_string(),
            });
        }
        Ok(())
    }

    /// (trusted key index, signature) pairs worth checking: signatures whose key id names a
    /// trusted key, or every trusted key for an empty key id. Malformed signatures are dropped.
    pub(crate) fn candidates(&self, policy: &TrustPolicy) -> Vec<Candidate> {
        let mut out: Vec<Candidate> = Vec::new();
        for s in &self.signatures {
            let Ok(sig) = Signature::from_slice(&s.sig) else {
                continue;
            };
            let keys: Vec<usize> = if s.keyid.is_empty() {
                (0..policy.keys().len()).collect()
            } else {
                policy
                    .key_by_id(&s.keyid)
                    .map(|(i, _)| i)
                    .into_iter()
                    .collect()
            };
            for key in keys {
                if !out.iter().any(|c| c.key == key && c.sig == sig) {
                    out.push(Candidate { key, sig });
                }
            }
        }
        out
    }
}

/// A signature to check against one trusted key.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    pub(crate) key: usize,
    pub(crate) sig: Signature,
}

/// Every 32-byte encoding of a small-order Edwards point: the eight torsion points with either
/// sign bit, plus the non-canonical encodings `p` and `p + 1` (y = 0 and y = 1 written as y + p;
/// only y < 19 has such an encoding). Computed once from curve25519-dalek's `EIGHT_TORSION`.
fn small_order_encodings() -> &'static [[u8; 32]] {
    static SET: std::sync::OnceLock<Vec<[u8; 32]>> = std::sync::OnceLock::new();
    SET.get_or_init(|| {
        let mut out = Vec::with_capacity(20);
        for p in curve25519_dalek::constants::EIGHT_TORSION {
            let c = p.compress().to_bytes();
            let mut flipped = c;
            flipped[31] ^= 0x80;
            out.extend([c, flipped]);
        }
        // p = 2^255 - 19 (little-endian), and p + 1.
        let mut p = [0xffu8; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        let mut p1 = p;
        p1[0] = 0xee;
        for mut e in [p, p1] {
            out.push(e);
            e[31] |= 0x80;
            out.push(e);
        }
        out.sort_unstable();
        out.dedup();
        out
    })
}

/// Keeps signatures whose R has small order out of batches, so that batch verification
/// (cofactorless equation, no small-order check) accepts exactly what `verify_strict` accepts.
/// A table lookup instead of a point decompression keeps the batch fast; an R that is not a
/// point at all makes the batch fail and is then rejected one by one.
pub(crate) fn r_is_acceptable(sig: &Signature) -> bool {
    small_order_encodings()
        .binary_search(sig.r_bytes())
        .is_err()
}

/// Strict single verification (RFC 8032 §5.1.7 plus small-order and canonical-S checks).
pub(crate) fn verify_one(key: &VerifyingKey, msg: &[u8], sig: &Signature) -> bool {
    key.verify_strict(msg, sig).is_ok()
}

/// Turns the set of valid key indices into the verdict.
pub(crate) fn tally(
    policy: &TrustPolicy,
    valid: &BTreeSet<usize>,
) -> Result<Vec<String>, DsseError> {
    let signers: Vec<String> = valid
        .iter()
        .map(|i| policy.keys()[*i].name.clone())
        .collect();
    if signers.len() < policy.threshold() {
        return Err(DsseError::ThresholdNotMet {
            valid: signers.len(),
            required: policy.threshold(),
            signers,
        });
    }
    Ok(signers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_order_table_matches_decompression() {
        use curve25519_dalek::edwards::CompressedEdwardsY;
        let table = small_order_encodings();
        assert_eq!(
            table.len(),
            14,
            "8 torsion points, x = 0 sign variants, p and p + 1"
        );
        for e in table {
            let point = CompressedEdwardsY(*e).decompress().expect("decompresses");
            assert!(point.is_small_order());
        }
        // Every low y (where non-canonical encodings live) and ordinary signatures agree too.
        for y in 0u8..=40 {
            for sign in [0u8, 0x80] {
                let mut e = [0u8; 32];
                e[0] = y;
                e[31] = sign;
                let small = CompressedEdwardsY(e)
                    .decompress()
                    .is_some_and(|p| p.is_small_order());
                assert_eq!(
                    small,
                    table.binary_search(&e).is_ok(),
                    "y = {y}, sign {sign}"
                );
            }
        }
        let sig = SigningKey::from_bytes(&[9; 32]).sign(b"m");
        assert!(r_is_acceptable(&sig));
        let mut bytes = sig.to_bytes();
        bytes[..32].copy_from_slice(&table[3]);
        assert!(!r_is_acceptable(&Signature::from_bytes(&bytes)));
    }

    #[test]
    fn pae_matches_the_dsse_spec_example() {
        // DSSE protocol.md test vector: PAE("http://example.com/HelloWorld", "hello world").
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
    }

    #[test]
    fn wire_form_round_trips_and_accepts_url_safe_base64() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let mut env = Envelope::new("t", vec![0xfb, 0xff, 0x3e]);
        env.sign(&key);
        let back = Envelope::from_json(env.to_json().as_bytes()).expect("round trip");
        assert_eq!(back, env);
        let url = env.to_json().replace("+/8+", "-_8-");
        assert!(env.to_json().contains("+/8+"), "{}", env.to_json());
        assert_eq!(
            Envelope::from_json(url.as_bytes())
                .expect("url-safe")
                .payload,
            env.payload
        );
    }

    #[test]
    fn unknown_fields_and_bad_base64_are_rejected() {
        let bad = br#"{"payloadType":"t","payload":"!!","signatures":[]}"#;
        assert!(matches!(
            Envelope::from_json(bad),
            Err(DsseError::Base64("payload"))
        ));
        let extra = br#"{"payloadType":"t","payload":"","signatures":[],"x":1}"#;
        assert!(matches!(
            Envelope::from_json(extra),
            Err(DsseError::Json { .. })
        ));
    }
}
