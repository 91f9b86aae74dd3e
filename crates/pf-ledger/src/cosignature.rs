//! C2SP tlog-cosignature v1 (Ed25519, signature type 0x04): a witness's timestamped statement
//! that a checkpoint is the largest consistent tree head it has seen.

use crate::note::{ALG_COSIGNATURE_V1, Note, NoteError, NoteSignature, SignerKey, VerifierKey};

/// The cosigned message: `cosignature/v1\ntime <t>\n` then the checkpoint body
/// (tlog-cosignature "Ed25519 signed message").
pub fn message(timestamp: u64, checkpoint_body: &str) -> Vec<u8> {
    format!("cosignature/v1\ntime {timestamp}\n{checkpoint_body}").into_bytes()
}

/// Produces the cosignature line for `checkpoint_body` at `timestamp` (POSIX seconds).
pub fn cosign(
    key: &SignerKey,
    timestamp: u64,
    checkpoint_body: &str,
) -> Result<NoteSignature, NoteError> {
    if key.alg != ALG_COSIGNATURE_V1 {
        return Err(NoteError::BadKey(
            "cosigner key must have signature type 0x04",
        ));
    }
    if timestamp > i64::MAX as u64 {
        return Err(NoteError::BadKey("timestamp exceeds 2^63-1"));
    }
    // timestamped_signature: u64 big-endian timestamp then the 64-byte Ed25519 signature.
    let mut sig = timestamp.to_be_bytes().to_vec();
    sig.extend_from_slice(&key.sign_raw(&message(timestamp, checkpoint_body)));
    Ok(NoteSignature {
        name: key.name.clone(),
        key_id: key.key_id(),
        sig,
    })
}

/// Timestamp carried by a cosignature's signature bytes, if it has the v1 shape.
pub fn timestamp(sig: &NoteSignature) -> Option<u64> {
    (sig.sig.len() == 72).then(|| u64::from_be_bytes(sig.sig[..8].try_into().unwrap_or([0; 8])))
}

/// Verifies the cosignatures in `note` from the given witness keys (type 0x04); returns the
/// names of witnesses whose cosignature verifies. A matching but invalid one is an error.
pub fn verify_cosignatures(
    note: &Note,
    witnesses: &[VerifierKey],
) -> Result<Vec<(String, u64)>, NoteError> {
    let mut ok = Vec::new();
    for s in &note.signatures {
        for w in witnesses
            .iter()
            .filter(|w| w.alg == ALG_COSIGNATURE_V1 && w.name == s.name && w.key_id == s.key_id)
        {
            let Some(ts) = timestamp(s).filter(|t| *t <= i64::MAX as u64) else {
                return Err(NoteError::InvalidSignature(w.name.clone()));
            };
            let sig = ed25519_dalek::Signature::from_slice(&s.sig[8..])
                .map_err(|_| NoteError::InvalidSignature(w.name.clone()))?;
            use ed25519_dalek::Verifier as _;
            w.key
                .verify(&message(ts, &note.text), &sig)
                .map_err(|_| NoteError::InvalidSignature(w.name.clone()))?;
            ok.push((w.name.clone(), ts));
        }
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::note::ALG_ED25519;

    // Worked example of c2sp.org/tlog-cosignature: the witness line's timestamp decodes to the
    // `time 1679315147` shown in the spec's signed-message example.
    const SPEC: &str = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n\u{2014} example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n\u{2014} witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n";

    #[test]
    fn spec_example_timestamp_and_message() {
        let n = Note::parse(SPEC.as_bytes()).expect("note");
        assert_eq!(timestamp(&n.signatures[1]), Some(1679315147));
        let m = String::from_utf8(message(1679315147, &n.text)).expect("utf8");
        assert_eq!(
            m,
            "cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
        );
    }

    #[test]
    fn cosign_verify_round_trip_and_wrong_type_rejected() {
        let w =
            SignerKey::from_seed("witness.example/w", ALG_COSIGNATURE_V1, [9; 32]).expect("key");
        let body = "log\n3\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
        let line = cosign(&w, 1700000000, body).expect("cosign");
        let note = Note {
            text: body.into(),
            signatures: vec![line],
        };
        let parsed = Note::parse(note.to_text().as_bytes()).expect("parse");
        assert_eq!(
            verify_cosignatures(&parsed, &[w.verifier()]).expect("ok"),
            vec![("witness.example/w".to_string(), 1700000000)]
        );
        let tampered = Note {
            text: body.replace('3', "4"),
            signatures: parsed.signatures.clone(),
        };
        assert!(verify_cosignatures(&tampered, &[w.verifier()]).is_err());
        let log_key = SignerKey::from_seed("log", ALG_ED25519, [9; 32]).expect("key");
        assert!(cosign(&log_key, 1, body).is_err());
    }
}
