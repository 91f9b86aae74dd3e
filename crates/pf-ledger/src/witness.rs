//! A minimal C2SP witness: remembers the last checkpoint it cosigned for a log and cosigns a
//! new one only if it is consistent with it (tlog-witness semantics, pull model).

use std::path::Path;

use crate::client::{AuditError, RemoteLog, audit};
use crate::cosignature::cosign;
use crate::note::{Note, NoteError, SignerKey};

/// Why the witness refused to cosign.
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    /// The log failed verification or is inconsistent with what was cosigned before.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// Cosigning failed (wrong key type).
    #[error(transparent)]
    Note(#[from] NoteError),
}

/// Verifies `log`'s checkpoint, checks consistency with the last cosigned tree head stored in
/// `state_file`, and returns the checkpoint note with this witness's cosignature appended.
pub fn witness(
    log: &RemoteLog,
    key: &SignerKey,
    state_file: &Path,
    now: u64,
) -> Result<Note, WitnessError> {
    audit(log, state_file)?;
    let mut note = log.checkpoint.note.clone();
    note.signatures
        .retain(|s| !(s.name == key.name && s.key_id == key.key_id()));
    note.signatures.push(cosign(key, now, &note.text)?);
    Ok(note)
}
