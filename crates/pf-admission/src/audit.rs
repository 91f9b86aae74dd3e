//! The decision audit log: every admission decision is appended, with the bundle digest and the
//! reasons. [`DecisionLog`] is the narrow seam the transparency ledger plugs into; [`JsonlLog`]
//! is a durable append-only JSON Lines file.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// One admission decision, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DecisionRecord {
    /// Seconds since the Unix epoch when the decision was made.
    pub time_unix: u64,
    /// AdmissionRequest uid.
    pub uid: String,
    /// Which webhook decided: `validate` or `mutate`.
    pub webhook: String,
    /// Object kind (`Pod`, `Deployment`, `AgentDeployment`).
    pub kind: String,
    /// Namespace of the object.
    pub namespace: String,
    /// Object name (may be empty for generated names).
    pub name: String,
    /// `CREATE`, `UPDATE`, ...
    pub operation: String,
    /// Whether the request was a dry run.
    pub dry_run: bool,
    /// The decision.
    pub allowed: bool,
    /// `sha256:<hex>` of the bundle the object refers to, when it names one.
    pub bundle_digest: Option<String>,
    /// Every failed check (empty when allowed).
    pub reasons: Vec<String>,
}

/// Error from a decision log.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The log could not be written or read.
    #[error("audit log {path}: {source}")]
    Io {
        /// The log file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The log lock was poisoned by a panic in another writer.
    #[error("audit log lock poisoned")]
    Poisoned,
    /// A backend-specific failure (for ledger implementations).
    #[error("audit backend: {0}")]
    Backend(String),
}

/// An append-only sink for admission decisions. An append must be durable before it returns;
/// the webhook denies a request whose decision could not be recorded (fail closed).
pub trait DecisionLog: Send + Sync {
    /// Appends `record`, returning its index in the log (0-based).
    fn append(&self, record: &DecisionRecord) -> Result<u64, AuditError>;
}

/// A JSON Lines file: one record per line, durable (fsynced) before `append` returns.
///
/// Appends use group commit: a writer that finds its line already covered by another writer's
/// fsync returns without syncing again, so concurrent decisions share one fsync.
pub struct JsonlLog {
    path: PathBuf,
    inner: Mutex<(File, u64)>,
    /// Number of lines known to be on disk; the lock also serialises fsyncs.
    synced: Mutex<(File, u64)>,
}

impl JsonlLog {
    /// Opens (creating if needed) the log at `path`; the next index continues after the existing
    /// lines. A torn final line (no newline, e.g. after a crash) is terminated so it cannot merge
    /// with the next record.
    pub fn open(path: &Path) -> Result<Self, AuditError> {
        let io = |source| AuditError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut count = 0u64;
        let mut torn = false;
        if path.exists() {
            let mut reader = BufReader::new(File::open(path).map_err(io)?);
            let mut line = Vec::new();
            loop {
                line.clear();
                let n = reader.read_until(b'\n', &mut line).map_err(io)?;
                if n == 0 {
                    break;
                }
                count += 1;
                torn = line.last() != Some(&b'\n');
            }
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        if torn {
            file.write_all(b"\n").map_err(io)?;
            file.sync_data().map_err(io)?;
        }
        let sync_handle = file.try_clone().map_err(io)?;
        Ok(Self {
            path: path.to_path_buf(),
            inner: Mutex::new((file, count)),
            synced: Mutex::new((sync_handle, count)),
        })
    }

    /// Reads every record back (for tests and `pf admission` tooling).
    pub fn read_all(path: &Path) -> Result<Vec<DecisionRecord>, AuditError> {
        let io = |source| AuditError::Io {
            path: path.to_path_buf(),
            source,
        };
        let text = std::fs::read_to_string(path).map_err(io)?;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).map_err(|e| AuditError::Io {
                    path: path.to_path_buf(),
                    source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
                })
            })
            .collect()
    }
}

impl DecisionLog for JsonlLog {
    fn append(&self, record: &DecisionRecord) -> Result<u64, AuditError> {
        let mut line =
            serde_json::to_vec(record).map_err(|e| AuditError::Backend(e.to_string()))?;
        line.push(b'\n');
        let io = |source| AuditError::Io {
            path: self.path.clone(),
            source,
        };
        let index = {
            let mut guard = self.inner.lock().map_err(|_| AuditError::Poisoned)?;
            let (file, count) = &mut *guard;
            file.write_all(&line).map_err(io)?;
            let index = *count;
            *count += 1;
            index
        };
        let mut synced = self.synced.lock().map_err(|_| AuditError::Poisoned)?;
        if synced.1 <= index {
            // Everything written before this point (at least up to `index`) becomes durable.
            let written = self.inner.lock().map_err(|_| AuditError::Poisoned)?.1;
            synced.0.sync_data().map_err(io)?;
            synced.1 = written;
        }
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(uid: &str) -> DecisionRecord {
        DecisionRecord {
            time_unix: 1,
            uid: uid.into(),
            webhook: "validate".into(),
            kind: "Pod".into(),
            namespace: "ns".into(),
            name: "p".into(),
            operation: "CREATE".into(),
            dry_run: false,
            allowed: false,
            bundle_digest: Some("sha256:00".into()),
            reasons: vec!["a".into(), "b".into()],
        }
    }

    #[test]
    fn appends_are_indexed_and_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("audit.jsonl");
        let log = JsonlLog::open(&p).expect("open");
        assert_eq!(log.append(&rec("1")).expect("a"), 0);
        assert_eq!(log.append(&rec("2")).expect("a"), 1);
        drop(log);
        let log = JsonlLog::open(&p).expect("reopen");
        assert_eq!(log.append(&rec("3")).expect("a"), 2);
        let all = JsonlLog::read_all(&p).expect("read");
        assert_eq!(
            all.iter().map(|r| r.uid.as_str()).collect::<Vec<_>>(),
            ["1", "2", "3"]
        );
        assert_eq!(all[0], rec("1"));
    }

    #[test]
    fn torn_last_line_does_not_merge_with_next_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("audit.jsonl");
        std::fs::write(&p, "{\"partial\":").expect("write");
        let log = JsonlLog::open(&p).expect("open");
        assert_eq!(log.append(&rec("x")).expect("a"), 1);
        let text = std::fs::read_to_string(&p).expect("read");
        assert_eq!(
            text.lines().nth(1).map(|l| l.contains("\"uid\":\"x\"")),
            Some(true)
        );
    }

    #[test]
    fn concurrent_appends_get_distinct_indices_and_whole_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("audit.jsonl");
        let log = std::sync::Arc::new(JsonlLog::open(&p).expect("open"));
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let log = std::sync::Arc::clone(&log);
                std::thread::spawn(move || {
                    (0..25)
                        .map(|i| log.append(&rec(&format!("{t}-{i}"))).expect("append"))
                        .collect::<Vec<u64>>()
                })
            })
            .collect();
        let mut all: Vec<u64> = handles
            .into_iter()
            .flat_map(|h| h.join().expect("join"))
            .collect();
        all.sort_unstable();
        assert_eq!(all, (0..200).collect::<Vec<u64>>());
        assert_eq!(JsonlLog::read_all(&p).expect("read").len(), 200);
    }

    #[test]
    fn unwritable_path_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(JsonlLog::open(&dir.path().join("no/such/dir/a.jsonl")).is_err());
    }
}
