//! C2SP signed-note: text signed by one or more keys, Ed25519 signatures (type 0x01), key IDs
//! and the `name+hash+base64` verifier-key encoding (c2sp.org/signed-note).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};

use crate::hash::sha256;

/// Signature type byte for Ed25519 note signatures (signed-note "Signature types").
pub const ALG_ED25519: u8 = 0x01;
/// Signature type byte for timestamped Ed25519 cosignatures (c2sp.org/tlog-cosignature).
pub const ALG_COSIGNATURE_V1: u8 = 0x04;
/// Largest note accepted by the parser; the spec asks for a limit and at least 16 signatures.
pub const MAX_NOTE_BYTES: usize = 64 * 1024;
/// Largest number of signature lines accepted.
pub const MAX_SIGNATURES: usize = 64;

/// Why a note or key was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// The note exceeds [`MAX_NOTE_BYTES`] or has more than [`MAX_SIGNATURES`] signatures.
    #[error("note too large ({0})")]
    TooLarge(String),
    /// The note is not UTF-8 or holds an ASCII control character other than newline.
    #[error("note is not UTF-8 text without control characters")]
    NotText,
    /// The note text does not end in a newline or there is no blank line before signatures.
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    /// A signature line is malformed (line number is 1-based within the note).
    #[error("malformed signature line {line}: {reason}")]
    BadSignatureLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A key string is malformed.
    #[error("malformed key: {0}")]
    BadKey(&'static str),
    /// A signature from a known key failed to verify.
    #[error("signature by {0} does not verify")]
    InvalidSignature(String),
    /// No signature from a known key was found.
    #[error("note has no signature from a known key")]
    NoKnownSignature,
}

/// One signature line of a note: key name, 32-bit key ID and signature bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// Key name.
    pub name: String,
    /// Key ID (first four bytes of the decoded signature, big-endian).
    pub key_id: u32,
    /// Signature bytes after the key ID.
    pub sig: Vec<u8>,
}

impl NoteSignature {
    /// The `— name base64` line, with trailing newline.
    pub fn to_line(&self) -> String {
        let mut b = self.key_id.to_be_bytes().to_vec();
        b.extend_from_slice(&self.sig);
        format!("\u{2014} {} {}\n", self.name, B64.encode(b))
    }
}

/// A parsed signed note: its text (ending in a newline) and signature lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The signed text, including its final newline.
    pub text: String,
    /// Signature lines, in order.
    pub signatures: Vec<NoteSignature>,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

/// Key ID = SHA-256(name || 0x0A || type || public key)[:4] (signed-note "Signatures").
pub fn key_id(name: &str, alg: u8, key: &[u8]) -> u32 {
    let mut m = Vec::with_capacity(name.len() + 2 + key.len());
    m.extend_from_slice(name.as_bytes());
    m.push(b'\n');
    m.push(alg);
    m.extend_from_slice(key);
    let h = sha256(&m);
    u32::from_be_bytes([h[0], h[1], h[2], h[3]])
}

impl Note {
    /// Parses a signed note, enforcing size limits and the text rules of the spec.
    pub fn parse(bytes: &[u8]) -> Result<Note, NoteError> {
        if bytes.len() > MAX_NOTE_BYTES {
            return Err(NoteError::TooLarge(format!("{} bytes", bytes.len())));
        }
        let s = std::str::from_utf8(bytes).map_err(|_| NoteError::NotText)?;
        if s.chars().any(|c| c < ' ' && c != '\n') {
            return Err(NoteError::NotText);
        }
        if !s.ends_with('\n') {
            return Err(NoteError::Malformed("does not end in a newline"));
        }
        // The text is separated from the signatures by the last blank line.
        let Some(split) = s.rfind("\n\n") else {
            return Err(NoteError::Malformed("no blank line before the signatures"));
        };
        let text = &s[..split + 1];
        let sigs = &s[split + 2..];
        let first_sig_line = text.lines().count() + 2;
        let mut signatures = Vec::new();
        for (i, line) in sigs.lines().enumerate() {
            let line_no = first_sig_line + i;
            let bad = |reason| NoteError::BadSignatureLine {
                line: line_no,
                reason,
            };
            let rest = line
                .strip_prefix("\u{2014} ")
                .ok_or(bad("does not start with an em dash and space"))?;
            let (name, b64) = rest.split_once(' ').ok_or(bad("missing signature"))?;
            if !valid_name(name) {
                return Err(bad("invalid key name"));
            }
            let raw = B64
                .decode(b64)
                .map_err(|_| bad("signature is not base64"))?;
            if raw.len() < 5 {
                return Err(bad("signature too short"));
            }
            signatures.push(NoteSignature {
                name: name.to_string(),
                key_id: u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]),
                sig: raw[4..].to_vec(),
            });
            if signatures.len() > MAX_SIGNATURES {
                return Err(NoteError::TooLarge(format!(
                    "more than {MAX_SIGNATURES} signatures"
                )));
            }
        }
        if signatures.is_empty() {
            return Err(NoteError::Malformed("no signature lines"));
        }
        Ok(Note {
            text: text.to_string(),
            signatures,
        })
    }

    /// Serialises the note: text, blank line, signature lines.
    pub fn to_text(&self) -> String {
        let mut out = self.text.clone();
        out.push('\n');
        for s in &self.signatures {
            out.push_str(&s.to_line());
        }
        out
    }

    /// Verifies the note against trusted keys: every signature whose name and key ID match a
    /// known key must verify, and at least one must. Returns the matching verifiers' names.
    pub fn verify(&self, keys: &[VerifierKey]) -> Result<Vec<String>, NoteError> {
        let mut ok = Vec::new();
        for s in &self.signatures {
            for k in keys
                .iter()
                .filter(|k| k.name == s.name && k.key_id == s.key_id)
            {
                if k.verify_sig(self.text.as_bytes(), &s.sig) {
                    ok.push(k.name.clone());
                } else {
                    return Err(NoteError::InvalidSignature(k.name.clone()));
                }
            }
        }
        if ok.is_empty() {
            Err(NoteError::NoKnownSignature)
        } else {
            Ok(ok)
        }
    }
}

/// A public verifier key (vkey): name, key ID, signature type and Ed25519 key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierKey {
    /// Key name.
    pub name: String,
    /// Key ID.
    pub key_id: u32,
    /// Signature type (0x01 note signature or 0x04 cosignature).
    pub alg: u8,
    /// Ed25519 public key.
    pub key: VerifyingKey,
}

impl VerifierKey {
    /// Parses `name+hex(keyid)+base64(type || key)`, checking the key ID matches the key.
    pub fn parse(s: &str) -> Result<VerifierKey, NoteError> {
        let mut parts = s.splitn(3, '+');
        let (Some(name), Some(id), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(NoteError::BadKey("expected name+hash+key"));
        };
        if !valid_name(name) {
            return Err(NoteError::BadKey("invalid key name"));
        }
        if id.len() != 8
            || !id
                .bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        {
            return Err(NoteError::BadKey("key ID must be 8 lower-case hex digits"));
        }
        let key_id = u32::from_str_radix(id, 16).map_err(|_| NoteError::BadKey("bad key ID"))?;
        let raw = B64
            .decode(b64)
            .map_err(|_| NoteError::BadKey("key is not base64"))?;
        let (alg, material) = raw.split_first().ok_or(NoteError::BadKey("empty key"))?;
        if *alg != ALG_ED25519 && *alg != ALG_COSIGNATURE_V1 {
            return Err(NoteError::BadKey("unsupported signature type"));
        }
        let bytes: [u8; 32] = material
            .try_into()
            .map_err(|_| NoteError::BadKey("Ed25519 key must be 32 bytes"))?;
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|_| NoteError::BadKey("invalid Ed25519 point"))?;
        if self::key_id(name, *alg, &bytes) != key_id {
            return Err(NoteError::BadKey("key ID does not match name and key"));
        }
        Ok(VerifierKey {
            name: name.to_string(),
            key_id,
            alg: *alg,
            key,
        })
    }

    /// Verifies a raw Ed25519 signature over `msg` (for type 0x04, the caller builds `msg`).
    pub fn verify_sig(&self, msg: &[u8], sig: &[u8]) -> bool {
        match self.alg {
            ALG_ED25519 => {
                Signature::from_slice(sig).is_ok_and(|s| self.key.verify(msg, &s).is_ok())
            }
            _ => false,
        }
    }
}

impl fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut b = vec![self.alg];
        b.extend_from_slice(self.key.as_bytes());
        write!(f, "{}+{:08x}+{}", self.name, self.key_id, B64.encode(b))
    }
}

/// A private signer key: name and Ed25519 seed, encoded `PRIVATE+KEY+name+hash+base64(type || seed)`.
#[derive(Clone)]
pub struct SignerKey {
    /// Key name.
    pub name: String,
    /// Signature type (0x01 for a log, 0x04 for a cosigner).
    pub alg: u8,
    key: SigningKey,
}

impl fmt::Debug for SignerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SignerKey({}, {:08x})", self.name, self.key_id())
    }
}

impl SignerKey {
    /// Generates a fresh key from the operating system's random source.
    pub fn generate(name: &str, alg: u8) -> Result<SignerKey, NoteError> {
        if !valid_name(name) {
            return Err(NoteError::BadKey("invalid key name"));
        }
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed)
            .map_err(|_| NoteError::BadKey("no randomness available"))?;
        Ok(SignerKey {
            name: name.to_string(),
            alg,
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// Builds a key from a name and a 32-byte seed (deterministic tests).
    pub fn from_seed(name: &str, alg: u8, seed: [u8; 32]) -> Result<SignerKey, NoteError> {
        if !valid_name(name) {
            return Err(NoteError::BadKey("invalid key name"));
        }
        Ok(SignerKey {
            name: name.to_string(),
            alg,
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// Parses the `PRIVATE+KEY+name+hash+base64(type || seed)` encoding.
    pub fn parse(s: &str) -> Result<SignerKey, NoteError> {
        let rest = s
            .trim()
            .strip_prefix("PRIVATE+KEY+")
            .ok_or(NoteError::BadKey("missing PRIVATE+KEY+ prefix"))?;
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(id), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(NoteError::BadKey("expected PRIVATE+KEY+name+hash+key"));
        };
        let raw = B64
            .decode(b64)
            .map_err(|_| NoteError::BadKey("key is not base64"))?;
        let (alg, seed) = raw.split_first().ok_or(NoteError::BadKey("empty key"))?;
        if *alg != ALG_ED25519 && *alg != ALG_COSIGNATURE_V1 {
            return Err(NoteError::BadKey("unsupported signature type"));
        }
        let seed: [u8; 32] = seed
            .try_into()
            .map_err(|_| NoteError::BadKey("Ed25519 seed must be 32 bytes"))?;
        let k = SignerKey::from_seed(name, *alg, seed)?;
        if format!("{:08x}", k.key_id()) != id {
            return Err(NoteError::BadKey("key ID does not match name and key"));
        }
        Ok(k)
    }

    /// The key ID of this key's public half.
    pub fn key_id(&self) -> u32 {
        key_id(&self.name, self.alg, self.key.verifying_key().as_bytes())
    }

    /// The matching verifier key.
    pub fn verifier(&self) -> VerifierKey {
        VerifierKey {
            name: self.name.clone(),
            key_id: self.key_id(),
            alg: self.alg,
            key: self.key.verifying_key(),
        }
    }

    /// The private encoding (keep secret).
    pub fn to_private_string(&self) -> String {
        let mut b = vec![self.alg];
        b.extend_from_slice(self.key.as_bytes());
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.key_id(),
            B64.encode(b)
        )
    }

    /// Raw Ed25519 signature over `msg`.
    pub fn sign_raw(&self, msg: &[u8]) -> [u8; 64] {
        self.key.sign(msg).to_bytes()
    }

    /// Signs note text (must end in a newline), returning the signature line.
    pub fn sign_text(&self, text: &str) -> NoteSignature {
        NoteSignature {
            name: self.name.clone(),
            key_id: self.key_id(),
            sig: self.sign_raw(text.as_bytes()).to_vec(),
        }
    }
}

/// Signs `text` with `signer`, producing a complete note.
pub fn sign(text: &str, signer: &SignerKey) -> Result<Note, NoteError> {
    if !text.ends_with('\n') {
        return Err(NoteError::Malformed("text does not end in a newline"));
    }
    if text.chars().any(|c| c < ' ' && c != '\n') {
        return Err(NoteError::NotText);
    }
    Ok(Note {
        text: text.to_string(),
        signatures: vec![signer.sign_text(text)],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Worked example of c2sp.org/signed-note ("Verifier keys", Example).
    const SPEC_VKEY: &str = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
    const SPEC_NOTE: &str = "This is an example message.\n\n\u{2014} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";

    #[test]
    fn spec_example_verifies() {
        let k = VerifierKey::parse(SPEC_VKEY).expect("vkey");
        assert_eq!(k.to_string(), SPEC_VKEY);
        let n = Note::parse(SPEC_NOTE.as_bytes()).expect("note");
        assert_eq!(n.text, "This is an example message.\n");
        assert_eq!(
            n.verify(&[k]).expect("verifies"),
            vec!["example.com/foo".to_string()]
        );
        assert_eq!(n.to_text(), SPEC_NOTE);
    }

    #[test]
    fn tampered_text_is_rejected() {
        let k = VerifierKey::parse(SPEC_VKEY).expect("vkey");
        let bad = SPEC_NOTE.replace("example message", "exampl3 message");
        let n = Note::parse(bad.as_bytes()).expect("parses");
        assert!(matches!(
            n.verify(&[k]),
            Err(NoteError::InvalidSignature(_))
        ));
    }

    #[test]
    fn unknown_keys_are_ignored_but_one_known_is_required() {
        let other = SignerKey::from_seed("example.com/other", ALG_ED25519, [7; 32]).expect("key");
        let n = Note::parse(SPEC_NOTE.as_bytes()).expect("note");
        assert_eq!(
            n.verify(&[other.verifier()]),
            Err(NoteError::NoKnownSignature)
        );
    }

    #[test]
    fn sign_then_verify_round_trip() {
        let k = SignerKey::from_seed("log.example/a", ALG_ED25519, [1; 32]).expect("key");
        let n = sign("hello\nworld\n", &k).expect("sign");
        let parsed = Note::parse(n.to_text().as_bytes()).expect("parse");
        assert!(parsed.verify(&[k.verifier()]).is_ok());
        let back = SignerKey::parse(&k.to_private_string()).expect("private round trip");
        assert_eq!(back.verifier(), k.verifier());
    }

    #[test]
    fn malformed_notes_are_rejected() {
        for bad in [
            "no newline",
            "text\n\u{2014} a AAAA\n",
            "text\n\nnot a signature\n",
            "t\x01\n\n\u{2014} a AAAAAAA=\n",
        ] {
            assert!(Note::parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }
}
