//! Decision records and where they go: every allow and deny is logged, never silently dropped.
//!
//! Records travel through a bounded queue to a writer thread (backpressure: a full queue blocks
//! the decision rather than dropping its record). If the writer fails, every later submission
//! fails, and the guard denies (fail closed) unless configured otherwise.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// One logged decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecisionRecord {
    /// Milliseconds since the Unix epoch.
    pub ts_ms: u64,
    /// Agent name from the spec.
    pub agent: Arc<str>,
    /// The guard session (one agent conversation) that decided: a random id per session, so the
    /// calls of sessions that share a log can be told apart.
    pub session: Arc<str>,
    /// Canonical digest of the spec the policy was compiled from.
    pub spec_digest: Arc<str>,
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
        let canonical = match value {
            // Half the records commit to an output's text. A string's canonical form (RFC 8785
            // §3.2.2.2) is the JSON string serde_json writes: the same escapes (`\"`, `\\`,
            // `\b \f \n \r \t`, other controls as lower-case `\u00xx`), nothing else
            // escaped. The canonicaliser's general path was a tenth of the writer's time in a
            // profile (crates/pf-guard/BENCHMARKS.md); a test checks the two agree on arbitrary
            // strings.
            Value::String(text) => serde_json::to_vec(text),
            _ => serde_json_canonicalizer::to_vec(value),
        }
        .unwrap_or_else(|_| value.to_string().into_bytes());
        let mut h = Sha256::new();
        h.update(self.salt);
        h.update(&canonical);
        // Into a buffer: `hex::encode` builds its string a char at a time, and the log writer
        // makes one commitment per record.
        let mut digits = [0u8; 64];
        let digits = match hex::encode_to_slice(h.finalize(), &mut digits) {
            Ok(()) => std::str::from_utf8(&digits).unwrap_or_default(),
            Err(_) => "",
        };
        let mut out = String::with_capacity("sha256:".len() + digits.len());
        out.push_str("sha256:");
        out.push_str(digits);
        out
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

    /// Queues a record whose `commitment` is still to be made: `committer.commit(&subject)`.
    /// Same guarantees as [`DecisionSink::submit`]; a queued sink computes the commitment on its
    /// writer thread, off the request path, before the record is written.
    fn submit_committing(
        &self,
        mut record: DecisionRecord,
        subject: Value,
        committer: &Committer,
    ) -> Result<(), LogError> {
        record.commitment = committer.commit(&subject);
        self.submit(record)
    }
}

/// Refuses a group-commit window longer than [`MAX_GROUP_COMMIT_WINDOW`].
fn check_window(window: Duration) -> std::io::Result<()> {
    if window > MAX_GROUP_COMMIT_WINDOW {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "group-commit window {window:?} is longer than the {MAX_GROUP_COMMIT_WINDOW:?} allowed"
            ),
        ));
    }
    Ok(())
}

/// What travels through a [`QueuedSink`]'s queue.
enum Job {
    /// A finished record.
    Ready(DecisionRecord),
    /// A record whose commitment the writer computes before writing it.
    Commit(DecisionRecord, Value, Committer),
}

impl Job {
    fn finish(self) -> DecisionRecord {
        match self {
            Job::Ready(r) => r,
            Job::Commit(mut r, subject, committer) => {
                r.commitment = committer.commit(&subject);
                r
            }
        }
    }
}

/// A durable sink behind a bounded queue: a writer thread takes records in batches and hands each
/// batch to its backend (JSON Lines file or transparency ledger). The first backend failure stops
/// the writer and makes every later submission fail.
pub struct QueuedSink {
    tx: mpsc::SyncSender<Job>,
    writer: Option<std::thread::JoinHandle<()>>,
    failed: Arc<AtomicBool>,
    what: String,
}

/// Most records handed to the backend at once.
const MAX_BATCH: usize = 4096;

/// Group commit: the writer starts at most one durable write (one fsync) per window, gathering the
/// records that arrive meanwhile. Under load this turns thousands of fsyncs per second into a few
/// hundred; when idle a record is written at once. A record is never held longer than the window
/// plus one write. 2 ms rather than 1: each fsync costs the writer CPU, and in the proxy
/// benchmark at 20K requests/s the writer's share per request about halves (BENCHMARKS.md).
pub const GROUP_COMMIT_WINDOW: Duration = Duration::from_millis(2);
/// Longest group-commit window a sink accepts.
pub const MAX_GROUP_COMMIT_WINDOW: Duration = Duration::from_secs(1);

impl QueuedSink {
    /// JSON Lines appended to `path` (created if absent), fsynced after every batch.
    pub fn jsonl(path: &Path, capacity: usize) -> std::io::Result<Self> {
        Self::jsonl_with_window(path, capacity, GROUP_COMMIT_WINDOW)
    }

    /// As [`QueuedSink::jsonl`], with a group-commit `window` (at most
    /// [`MAX_GROUP_COMMIT_WINDOW`]; zero writes each batch as soon as the last one is done).
    pub fn jsonl_with_window(
        path: &Path,
        capacity: usize,
        window: Duration,
    ) -> std::io::Result<Self> {
        check_window(window)?;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Self::spawn(
            format!("decision log {}", path.display()),
            capacity,
            window,
            move |batch| {
                let mut buf = Vec::new();
                for r in batch {
                    serde_json::to_writer(&mut buf, r).map_err(|e| e.to_string())?;
                    buf.push(b'\n');
                }
                file.write_all(&buf)
                    .and_then(|_| file.sync_data())
                    .map_err(|e| e.to_string())
            },
        )
    }

    /// Records appended to a `pf-ledger` log; each batch is durable and integrated when written.
    pub fn ledger(ledger: pf_ledger::ledger::Ledger, capacity: usize) -> std::io::Result<Self> {
        Self::ledger_with_window(ledger, capacity, GROUP_COMMIT_WINDOW)
    }

    /// As [`QueuedSink::ledger`], with a group-commit `window` (see
    /// [`QueuedSink::jsonl_with_window`]).
    pub fn ledger_with_window(
        ledger: pf_ledger::ledger::Ledger,
        capacity: usize,
        window: Duration,
    ) -> std::io::Result<Self> {
        check_window(window)?;
        Self::spawn(
            "transparency ledger".into(),
            capacity,
            window,
            move |batch| {
                let entries = batch
                    .iter()
                    .map(|r| {
                        let v = serde_json::to_value(r).map_err(|e| e.to_string())?;
                        pf_ledger::record::canonicalize(&v).map_err(|e| e.to_string())
                    })
                    .collect::<Result<Vec<_>, String>>()?;
                ledger
                    .append_many(entries)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            },
        )
    }

    fn spawn(
        what: String,
        capacity: usize,
        window: Duration,
        mut write_batch: impl FnMut(&[DecisionRecord]) -> Result<(), String> + Send + 'static,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::sync_channel::<Job>(capacity.max(1));
        let failed = Arc::new(AtomicBool::new(false));
        let flag = failed.clone();
        let name = what.clone();
        let writer = std::thread::Builder::new()
            .name("pf-guard-log".into())
            .spawn(move || {
                let mut last_write: Option<Instant> = None;
                while let Ok(first) = rx.recv() {
                    // Sleeping (rather than waiting on the queue) also spares the submitters a
                    // wake-up call per record.
                    if let Some(due) = last_write.map(|t| t + window) {
                        let now = Instant::now();
                        if due > now {
                            std::thread::sleep(due - now);
                        }
                    }
                    last_write = Some(Instant::now());
                    let batch: Vec<DecisionRecord> = std::iter::once(first)
                        .chain(rx.try_iter().take(MAX_BATCH - 1))
                        .map(Job::finish)
                        .collect();
                    if let Err(e) = write_batch(&batch) {
                        tracing::error!(sink = %name, error = %e, "decision log write failed; failing closed");
                        flag.store(true, Ordering::SeqCst);
                        return;
                    }
                }
            })?;
        Ok(QueuedSink {
            tx,
            writer: Some(writer),
            failed,
            what,
        })
    }

    fn broken(&self) -> LogError {
        LogError::Unavailable(format!("writing to the {} failed", self.what))
    }

    /// Stops accepting records and waits until every queued one is written.
    pub fn close(mut self) -> Result<(), LogError> {
        let (tx, _) = mpsc::sync_channel(0);
        drop(std::mem::replace(&mut self.tx, tx));
        if let Some(w) = self.writer.take() {
            w.join().map_err(|_| {
                LogError::Unavailable(format!("writer for the {} panicked", self.what))
            })?;
        }
        if self.failed.load(Ordering::SeqCst) {
            return Err(self.broken());
        }
        Ok(())
    }
}

impl QueuedSink {
    fn enqueue(&self, job: Job) -> Result<(), LogError> {
        if self.failed.load(Ordering::SeqCst) {
            return Err(self.broken());
        }
        self.tx
            .send(job)
            .map_err(|_| LogError::Unavailable(format!("writer for the {} stopped", self.what)))
    }
}

impl DecisionSink for QueuedSink {
    fn submit(&self, record: DecisionRecord) -> Result<(), LogError> {
        self.enqueue(Job::Ready(record))
    }

    fn submit_committing(
        &self,
        record: DecisionRecord,
        subject: Value,
        committer: &Committer,
    ) -> Result<(), LogError> {
        self.enqueue(Job::Commit(record, subject, committer.clone()))
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
        // `sha256:` and the hex digest of salt || canonical JSON, as documented.
        let mut h = Sha256::new();
        h.update([7u8; 32]);
        h.update(br#"{"amount":5,"to":"alice@example.com"}"#);
        assert_eq!(
            c.commit(&v),
            format!("sha256:{}", hex::encode(h.finalize()))
        );
    }

    proptest::proptest! {
        #[test]
        fn a_strings_commitment_is_over_its_rfc8785_form(text in "\\PC*|[\\x00-\\x7f]{0,40}") {
            let c = Committer::with_salt([3; 32]);
            let value = Value::String(text);
            let canonical = serde_json_canonicalizer::to_vec(&value).expect("canonical");
            let mut h = Sha256::new();
            h.update([3u8; 32]);
            h.update(&canonical);
            proptest::prop_assert_eq!(c.commit(&value), format!("sha256:{}", hex::encode(h.finalize())));
        }
    }

    #[test]
    fn queued_sink_makes_the_commitment_on_its_writer() {
        let path = std::env::temp_dir().join(format!("pf-guard-log-c-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let sink = QueuedSink::jsonl(&path, 2).expect("open");
        let c = Committer::with_salt([9; 32]);
        let subject = serde_json::json!({"to": "bob@example.com"});
        for i in 0..10 {
            let rec = DecisionRecord {
                commitment: String::new(),
                ..record(i)
            };
            sink.submit_committing(rec, subject.clone(), &c)
                .expect("submit");
        }
        sink.close().expect("clean close");
        let text = std::fs::read_to_string(&path).expect("log file");
        assert_eq!(text.lines().count(), 10);
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("json");
            assert_eq!(v["commitment"], c.commit(&subject));
            assert!(!line.contains("bob@"));
        }
        let _ = std::fs::remove_file(&path);
    }

    fn record(i: u64) -> DecisionRecord {
        DecisionRecord {
            ts_ms: i,
            agent: "a".into(),
            session: "s".into(),
            spec_digest: "sha256:x".into(),
            kind: "call",
            tool: "t".into(),
            effect: "allow",
            reasons: vec![],
            commitment: "sha256:y".into(),
        }
    }

    #[test]
    fn records_arriving_within_a_window_share_one_write() {
        let batches = Arc::new(std::sync::Mutex::new(Vec::<usize>::new()));
        let seen = batches.clone();
        let window = Duration::from_millis(300);
        let sink = QueuedSink::spawn("test".into(), 1000, window, move |b| {
            seen.lock().map_err(|e| e.to_string())?.push(b.len());
            Ok(())
        })
        .expect("writer");
        sink.submit(record(0)).expect("submit");
        let written = |n: usize| batches.lock().map(|b| b.len() >= n).unwrap_or(false);
        let t0 = Instant::now();
        while !written(1) {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "first record never written"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        // An idle writer wrote the first record at once; the burst waits out the window together.
        for i in 1..=100 {
            sink.submit(record(i)).expect("submit");
        }
        let closing = Instant::now();
        sink.close().expect("clean close");
        assert!(closing.elapsed() < Duration::from_secs(5));
        assert_eq!(*batches.lock().expect("lock"), vec![1, 100]);
    }

    #[test]
    fn a_window_longer_than_allowed_is_refused() {
        let path = std::env::temp_dir().join(format!("pf-guard-log-w-{}", std::process::id()));
        let too_long = MAX_GROUP_COMMIT_WINDOW + Duration::from_millis(1);
        let err = QueuedSink::jsonl_with_window(&path, 4, too_long)
            .err()
            .expect("refused");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        assert!(
            err.to_string().contains("longer than the 1s allowed"),
            "{err}"
        );
        assert!(!path.exists(), "nothing is created for a refused window");
        QueuedSink::jsonl_with_window(&path, 4, MAX_GROUP_COMMIT_WINDOW)
            .expect("the longest window is accepted")
            .close()
            .expect("clean close");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn jsonl_sink_writes_every_record() {
        let dir = std::env::temp_dir().join(format!("pf-guard-log-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let sink = QueuedSink::jsonl(&dir, 4).expect("open");
        for i in 0..100 {
            sink.submit(record(i)).expect("submit");
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
