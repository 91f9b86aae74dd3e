//! C2SP tlog-checkpoint: the signed tree head, `origin\nsize\nbase64(root)\n[extensions]`, as
//! the text of a signed note (c2sp.org/tlog-checkpoint).

use crate::hash::Hash;
use crate::note::{Note, NoteError, SignerKey, VerifierKey, sign};

/// Why a checkpoint body was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The note layer failed (format or signature).
    #[error(transparent)]
    Note(#[from] NoteError),
    /// The body is not `origin`, `size`, `root` lines plus optional non-empty extension lines.
    #[error("malformed checkpoint line {line}: {reason}")]
    Malformed {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// The origin differs from the one the verifier expects.
    #[error("checkpoint origin {got:?}, expected {want:?}")]
    WrongOrigin {
        /// Origin in the checkpoint.
        got: String,
        /// Origin expected.
        want: String,
    },
}

/// A tree head: origin (log identity), size and root hash, with optional extension lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Log origin line, e.g. `example.com/log`.
    pub origin: String,
    /// Number of leaves.
    pub size: u64,
    /// Root hash of the tree of `size` leaves.
    pub root: Hash,
    /// Extension lines (opaque; never empty strings).
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// The note text: three lines plus extensions, each newline-terminated.
    pub fn body(&self) -> String {
        let mut s = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            self.root.to_base64()
        );
        for e in &self.extensions {
            s.push_str(e);
            s.push('\n');
        }
        s
    }

    /// Parses a checkpoint body (the note text).
    pub fn parse_body(text: &str) -> Result<Checkpoint, CheckpointError> {
        let bad = |line, reason| CheckpointError::Malformed { line, reason };
        let body = text
            .strip_suffix('\n')
            .ok_or(bad(1, "text does not end in a newline"))?;
        let mut lines = body.split('\n');
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or(bad(1, "empty origin"))?;
        let size_s = lines.next().ok_or(bad(2, "missing tree size"))?;
        // Decimal without leading zeroes (unless the size is 0).
        if size_s.is_empty()
            || !size_s.bytes().all(|c| c.is_ascii_digit())
            || (size_s.len() > 1 && size_s.starts_with('0'))
        {
            return Err(bad(2, "tree size is not a decimal without leading zeroes"));
        }
        let size: u64 = size_s
            .parse()
            .map_err(|_| bad(2, "tree size out of range"))?;
        let root_s = lines.next().ok_or(bad(3, "missing root hash"))?;
        let root =
            Hash::from_base64(root_s).ok_or(bad(3, "root hash is not base64 of 32 bytes"))?;
        let mut extensions = Vec::new();
        for (i, e) in lines.enumerate() {
            if e.is_empty() {
                return Err(bad(4 + i, "empty extension line"));
            }
            extensions.push(e.to_string());
        }
        Ok(Checkpoint {
            origin: origin.to_string(),
            size,
            root,
            extensions,
        })
    }

    /// Signs this checkpoint with the log key.
    pub fn sign(&self, key: &SignerKey) -> Result<Note, CheckpointError> {
        Ok(sign(&self.body(), key)?)
    }
}

/// A checkpoint whose log signature has been verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// The parsed tree head.
    pub checkpoint: Checkpoint,
    /// The whole note (text and all signatures, including cosignatures).
    pub note: Note,
}

impl SignedCheckpoint {
    /// Parses a signed checkpoint and verifies it against the log's key; the origin must equal
    /// the key name's expected origin if `origin` is given.
    pub fn open(
        bytes: &[u8],
        log_key: &VerifierKey,
        origin: Option<&str>,
    ) -> Result<SignedCheckpoint, CheckpointError> {
        let note = Note::parse(bytes)?;
        note.verify(std::slice::from_ref(log_key))?;
        let checkpoint = Checkpoint::parse_body(&note.text)?;
        if let Some(want) = origin
            && checkpoint.origin != want
        {
            return Err(CheckpointError::WrongOrigin {
                got: checkpoint.origin,
                want: want.to_string(),
            });
        }
        Ok(SignedCheckpoint { checkpoint, note })
    }

    /// The serialised note.
    pub fn to_text(&self) -> String {
        self.note.to_text()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::note::ALG_ED25519;

    // Worked example of c2sp.org/tlog-checkpoint.
    const SPEC: &str = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n\u{2014} example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n";

    #[test]
    fn spec_example_parses() {
        let n = Note::parse(SPEC.as_bytes()).expect("note");
        let c = Checkpoint::parse_body(&n.text).expect("checkpoint");
        assert_eq!(c.origin, "example.com/behind-the-sofa");
        assert_eq!(c.size, 20852163);
        assert_eq!(
            c.root.to_base64(),
            "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="
        );
        assert_eq!(c.body(), n.text);
    }

    #[test]
    fn sign_open_round_trip_and_origin_check() {
        let k = SignerKey::from_seed("log.example", ALG_ED25519, [3; 32]).expect("key");
        let c = Checkpoint {
            origin: "log.example".into(),
            size: 5,
            root: crate::hash::leaf_hash(b"r"),
            extensions: vec!["ext 1".into()],
        };
        let text = c.sign(&k).expect("sign").to_text();
        let sc = SignedCheckpoint::open(text.as_bytes(), &k.verifier(), Some("log.example"))
            .expect("open");
        assert_eq!(sc.checkpoint, c);
        assert!(matches!(
            SignedCheckpoint::open(text.as_bytes(), &k.verifier(), Some("other")),
            Err(CheckpointError::WrongOrigin { .. })
        ));
    }

    #[test]
    fn malformed_bodies_are_rejected() {
        for bad in [
            "o\n01\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
            "o\n1\nAAAA\n",
            "\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
            "o\n-1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
            "o\n1\n",
        ] {
            assert!(Checkpoint::parse_body(bad).is_err(), "{bad:?}");
        }
    }
}
