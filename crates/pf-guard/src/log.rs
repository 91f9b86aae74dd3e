//! Decision records and where they go: every allow and deny is logged, never silently dropped.
//!
//! Records travel through a bounded queue to a writer thread (backpressure: a full queue blocks
//! the decision rather than dropping its record). If the writer fails, every later submission
//! fails, and the guard denies (fail closed) unless configured otherwise.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// One logged decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecisionRecord {
    /// Milliseconds since the Unix epoch.
    pub ts_ms: u64,
    /// Agent name from the spec.
    pub agent: String,
    /// Canonical digest of the spec the policy was compiled from.
    pub spec_digest: String,
    /// `call` (a tool call) or `output` (a tool result or model output).
    pub kind: &'static str,
    /// Tool name (`text_generation` for model output).
    pub tool: String,
    /// `allow`, `deny` or `redact`.
    pub effect: &'static str,
    /// Reason codes.
    pub reasons: Vec<String>,
    /// Salted SHA-256 commitment to the arguments or output (the log never holds raw values).
    pub commitment: String,
}

/// Salted commitments: `sha256(salt || canonical JSON)`; whoever holds the salt can open one.
#[derive(Clone)]
pub struct Committer {
    salt: [u8; 32],
}

impl Committer {
    /// A committer with a fresh random salt.
    pub fn random() -> Self {
        Committer {
            salt: rand::random(),
        }
    }

    /// A committer with a known salt (to re-open commitments).
    pub fn with_salt(salt: [u8; 32]) -> Self {
        Committer { salt }
    }

    /// The salt, hex-encoded (keep it secret: it opens every commitment).
    pub fn salt_hex(&self) -> String {
        hex::encode(self.salt)
    }

    /// `sha256:<hex>` commitment to a JSON value.
    pub fn commit(&self, value: &Value) -> String {
        let canonical = serde_json_canonicalizer::to_vec(value)
            .unwrap_or_else(|_| value.to_string().into_bytes());
        let mut h = Sha256::new();
        h.update(self.salt);
        h.update(&canonical);
        format!("sha256:{}", hex::encode(h.finalize()))
    }
}

/// Why a record could not be logged.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LogError {
    /// The writer has failed or stopped; nothing more can be logged.
    #[error("decision log unavailable: {0}")]
    Unavailable(String),
}

/// Somewhere decision records are durably kept.
pub trait DecisionSink: Send + Sync {
    /// Queues a record; blocks when the queue is full; fails when the sink is broken.
    fn submit(&self, record: DecisionRecord) -> Result<(), LogError>;
}

/// JSON Lines file sink: a writer thread appends and fsyncs in batches.
pub struct JsonlSink {
    tx: mpsc::SyncSender<DecisionRecord>,
    writer: Option<std::thread::JoinHandle<()>>,
    failed: Arc<AtomicBool>,
    path: PathBuf,
}

impl JsonlSink {
    /// Opens (appends to) `path` with a queue of `capacity` records.
    pub fn open(path: &Path, capacity: usize) -> std::io::Result<Self> {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let (tx, rx) = mpsc::sync_channel::<DecisionRecord>(capacity.max(1));
        let failed = Arc::new(AtomicBool::new(false));
        let flag = failed.clone();
        let writer = std::thread::Builder::new()
            .name("pf-guard-log".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    batch.extend(rx.try_iter().take(1023));
                    let mut buf = Vec::new();
                    for r in &batch {
                        if serde_json::to_writer(&mut buf, r).is_err() {
                            continue;
                        }
                        buf.push(b'\n');
                    }
                    if let Err(e) = file.write_all(&buf).and_then(|_| file.sync_data()) {
                        tracing::error!(error = %e, "decision log write failed; failing closed");
                        flag.store(true, Ordering::SeqCst);
                        return;
                    }
                }
            })?;
        Ok(JsonlSink {
            tx,
            writer: Some(writer),
            failed,
            path: path.to_path_buf(),
        })
    }

    /// Stops accepting records and waits until every queued one is written and synced.
    pub fn close(mut self) -> Result<(), LogError> {
        let (tx, _) = mpsc::sync_channel(0);
        drop(std::mem::replace(&mut self.tx, tx));
        if let Some(w) = self.writer.take() {
            w.join()
                .map_err(|_| LogError::Unavailable("writer panicked".into()))?;
        }
        if self.failed.load(Ordering::SeqCst) {
            return Err(LogError::Unavailable(format!(
                "writing {} failed",
                self.path.display()
            )));
        }
        Ok(())
    }
}

impl DecisionSink for JsonlSink {
    fn submit(&self, record: DecisionRecord) -> Result<(), LogError> {
        if self.failed.load(Ordering::SeqCst) {
            return Err(LogError::Unavailable(format!(
                "writing {} failed",
                self.path.display()
            )));
        }
        self.tx.send(record).map_err(|_| {
            LogError::Unavailable(format!("writer for {} stopped", self.path.display()))
        })
    }
}

/// In-memory sink for tests and benchmarks (still never drops: unbounded).
#[derive(Default)]
pub struct MemorySink {
    records: std::sync::Mutex<Vec<DecisionRecord>>,
}

impl MemorySink {
    /// Every record submitted so far.
    pub fn records(&self) -> Vec<DecisionRecord> {
        self.records.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl DecisionSink for MemorySink {
    fn submit(&self, record: DecisionRecord) -> Result<(), LogError> {
        self.records
            .lock()
            .map_err(|_| LogError::Unavailable("poisoned".into()))?
            .push(record);
        Ok(())
    }
}

/// Transparency-ledger sink: batches of records appended to a `pf-ledger` log by a writer thread.
pub struct LedgerSink {
    tx: mpsc::SyncSender<DecisionRecord>,
    writer: Option<std::thread::JoinHandle<()>>,
    failed: Arc<AtomicBool>,
}

impl LedgerSink {
    /// Appends to `ledger`, with a queue of `capacity` records.
    pub fn new(ledger: pf_ledger::ledger::Ledger, capacity: usize) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::sync_channel::<DecisionRecord>(capacity.max(1));
        let failed = Arc::new(AtomicBool::new(false));
        let flag = failed.clone();
        let writer = std::thread::Builder::new()
            .name("pf-guard-ledger".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let batch: Vec<DecisionRecord> = std::iter::once(first)
                        .chain(rx.try_iter().take(4095))
                        .collect();
                    let entries: Vec<Vec<u8>> = batch
                        .iter()
                        .filter_map(|r| serde_json::to_value(r).ok())
                        .filter_map(|v| pf_ledger::record::canonicalize(&v).ok())
                        .collect();
                    if entries.len() != batch.len() {
                        tracing::error!(
                            "a decision record could not be canonicalised; failing closed"
                        );
                        flag.store(true, Ordering::SeqCst);
                        return;
                    }
                    if let Err(e) = ledger.append_many(entries) {
                        tracing::error!(error = %e, "ledger append failed; failing closed");
                        flag.store(true, Ordering::SeqCst);
                        return;
                    }
                }
                ledger.close();
            })?;
        Ok(LedgerSink {
            tx,
            writer: Some(writer),
            failed,
        })
    }

    /// Stops accepting records and waits until every queued one is durable in the ledger.
    pub fn close(mut self) -> Result<(), LogError> {
        let (tx, _) = mpsc::sync_channel(0);
        drop(std::mem::replace(&mut self.tx, tx));
        if let Some(w) = self.writer.take() {
            w.join()
                .map_err(|_| LogError::Unavailable("ledger writer panicked".into()))?;
        }
        if self.failed.load(Ordering::SeqCst) {
            return Err(LogError::Unavailable("ledger append failed".into()));
        }
        Ok(())
    }
}

impl DecisionSink for LedgerSink {
    fn submit(&self, record: DecisionRecord) -> Result<(), LogError> {
        if self.failed.load(Ordering::SeqCst) {
            return Err(LogError::Unavailable("ledger append failed".into()));
        }
        self.tx
            .send(record)
            .map_err(|_| LogError::Unavailable("ledger writer stopped".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commitments_hide_values_and_open_with_the_salt() {
        let c = Committer::with_salt([7; 32]);
        let v = serde_json::json!({"to": "alice@example.com", "amount": 5});
        let reordered = serde_json::json!({"amount": 5, "to": "alice@example.com"});
        assert_eq!(c.commit(&v), c.commit(&reordered));
        assert!(!c.commit(&v).contains("alice"));
        assert_ne!(c.commit(&v), Committer::with_salt([8; 32]).commit(&v));
    }

    #[test]
    fn jsonl_sink_writes_every_record() {
        let dir = std::env::temp_dir().join(format!("pf-guard-log-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let sink = JsonlSink::open(&dir, 4).expect("open");
        for i in 0..100 {
            let rec = DecisionRecord {
                ts_ms: i,
                agent: "a".into(),
                spec_digest: "sha256:x".into(),
                kind: "call",
                tool: "t".into(),
                effect: "allow",
                reasons: vec![],
                commitment: "sha256:y".into(),
            };
            sink.submit(rec).expect("submit");
        }
        sink.close().expect("clean close");
        let text = std::fs::read_to_string(&dir).expect("log file");
        assert_eq!(text.lines().count(), 100);
        let first: serde_json::Value =
            serde_json::from_str(text.lines().next().expect("a line")).expect("json");
        assert_eq!(first["effect"], "allow");
        let _ = std::fs::remove_file(&dir);
    }
}
