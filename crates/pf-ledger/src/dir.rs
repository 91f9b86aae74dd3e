//! A ledger directory as the CLI manages it: `ledger.json` (origin, public key, sequencer
//! settings), `log.key` (the private log key, mode 0600), `log/` (the tiles tree, servable as
//! static files) and `index` (the secondary index for `find`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ledger::{Ledger, LedgerConfig, LedgerError};
use crate::note::{ALG_ED25519, NoteError, SignerKey, VerifierKey};
use crate::storage::StorageError;
use crate::storage::file::FileStorage;

/// Contents of `ledger.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DirConfig {
    /// Log origin; also the key name.
    pub origin: String,
    /// Verifier key of the log (`name+hash+base64`).
    pub vkey: String,
    /// Largest batch.
    pub max_batch: usize,
    /// Longest wait for a batch to fill, in milliseconds.
    pub max_delay_ms: u64,
}

/// Errors managing a ledger directory.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    /// A file could not be read or written.
    #[error("{path}: {reason}")]
    File {
        /// File.
        path: PathBuf,
        /// Cause.
        reason: String,
    },
    /// A key is malformed.
    #[error("{path}: {source}")]
    Key {
        /// Key file.
        path: PathBuf,
        /// Cause.
        source: NoteError,
    },
    /// The directory already holds a ledger.
    #[error("{0} already holds a ledger (ledger.json exists)")]
    Exists(PathBuf),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The ledger failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

fn file_err(path: &Path) -> impl FnOnce(std::io::Error) -> DirError + '_ {
    move |e| DirError::File {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Creates a ledger in `dir` with a fresh key; returns the verifier key.
pub fn init(dir: &Path, origin: &str) -> Result<VerifierKey, DirError> {
    let cfg_path = dir.join("ledger.json");
    if cfg_path.exists() {
        return Err(DirError::Exists(dir.to_path_buf()));
    }
    std::fs::create_dir_all(dir).map_err(file_err(dir))?;
    let key_path = dir.join("log.key");
    let key = SignerKey::generate(origin, ALG_ED25519).map_err(|source| DirError::Key {
        path: key_path.clone(),
        source,
    })?;
    write_secret(&key_path, &key.to_private_string())?;
    let cfg = DirConfig {
        origin: origin.to_string(),
        vkey: key.verifier().to_string(),
        max_batch: 256,
        max_delay_ms: 250,
    };
    let json = serde_json::to_string_pretty(&cfg).map_err(|e| DirError::File {
        path: cfg_path.clone(),
        reason: e.to_string(),
    })?;
    std::fs::write(&cfg_path, json + "\n").map_err(file_err(&cfg_path))?;
    // Opening writes the signed checkpoint of the empty tree.
    drop(open(dir, None)?);
    Ok(key.verifier())
}

/// Writes a private key file readable only by the owner.
pub fn write_secret(path: &Path, text: &str) -> Result<(), DirError> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o.open(path).map_err(file_err(path))?;
    writeln!(f, "{text}").map_err(file_err(path))?;
    f.sync_all().map_err(file_err(path))
}

/// Reads `ledger.json`.
pub fn config(dir: &Path) -> Result<DirConfig, DirError> {
    let p = dir.join("ledger.json");
    let text = std::fs::read_to_string(&p).map_err(file_err(&p))?;
    serde_json::from_str(&text).map_err(|e| DirError::File {
        path: p.clone(),
        reason: format!("line {}, column {}: {e}", e.line(), e.column()),
    })
}

/// Reads a signer key file.
pub fn read_signer(path: &Path) -> Result<SignerKey, DirError> {
    let text = std::fs::read_to_string(path).map_err(file_err(path))?;
    SignerKey::parse(text.trim()).map_err(|source| DirError::Key {
        path: path.to_path_buf(),
        source,
    })
}

/// Sequencer settings overriding `ledger.json`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Overrides {
    /// Largest batch.
    pub max_batch: Option<usize>,
    /// Longest batch wait.
    pub max_delay: Option<Duration>,
}

/// Opens the ledger in `dir` for writing (takes the writer lock).
pub fn open(dir: &Path, overrides: Option<Overrides>) -> Result<Ledger, DirError> {
    let cfg = config(dir)?;
    let key = read_signer(&dir.join("log.key"))?;
    let o = overrides.unwrap_or_default();
    let mut lc = LedgerConfig::new(cfg.origin);
    lc.max_batch = o.max_batch.unwrap_or(cfg.max_batch);
    lc.max_delay = o
        .max_delay
        .unwrap_or(Duration::from_millis(cfg.max_delay_ms));
    lc.index_file = Some(dir.join("index"));
    let storage = FileStorage::open_writer(dir.join("log"))?;
    Ok(Ledger::open(Arc::new(storage), key, lc)?)
}

/// Opens the ledger in `dir` read-only with its configured public key.
pub fn open_read_only(dir: &Path) -> Result<Ledger, DirError> {
    let cfg = config(dir)?;
    let vkey = VerifierKey::parse(&cfg.vkey).map_err(|source| DirError::Key {
        path: dir.join("ledger.json"),
        source,
    })?;
    let mut lc = LedgerConfig::new(cfg.origin);
    lc.index_file = Some(dir.join("index"));
    let storage = FileStorage::open(dir.join("log"))?;
    Ok(Ledger::open_read_only(Arc::new(storage), &vkey, lc)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_then_open_append_reopen() {
        let d = tempfile::tempdir().expect("tempdir");
        let vkey = init(d.path(), "dir.test/log").expect("init");
        assert!(init(d.path(), "dir.test/log").is_err());
        assert_eq!(config(d.path()).expect("config").vkey, vkey.to_string());
        {
            let l = open(
                d.path(),
                Some(Overrides {
                    max_delay: Some(Duration::ZERO),
                    ..Default::default()
                }),
            )
            .expect("open");
            assert_eq!(l.append(b"{\"a\":1}".to_vec()).expect("append"), 0);
        }
        let r = open_read_only(d.path()).expect("read only");
        assert_eq!(r.size(), 1);
    }
}
