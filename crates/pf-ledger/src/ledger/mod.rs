//! The ledger: a sequencer that batches appends, makes each batch durable, integrates it into
//! the tree and signs a new checkpoint, plus verified reads (entries, tiles, proofs) for the
//! guard, the admission controller and the HTTP server.

use std::path::PathBuf;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::checkpoint::{Checkpoint, CheckpointError, SignedCheckpoint};
use crate::edge::RightEdge;
use crate::hash::Hash;
use crate::merkle;
use crate::note::{SignerKey, VerifierKey};
use crate::record::{self, RecordError};
use crate::storage::{Storage, StorageError};
use crate::tiles::{
    TILE_WIDTH, TileId, TileKind, encode_bundle, encode_hash_tile, full_tiles, parse_bundle,
    partial_width, top_level,
};
use crate::verified::{Fetch, TileCheckError, VerifiedTiles};
use crate::view::TreeView;

mod index;
mod sequencer;

pub use index::Index;

/// Sequencer and limits. Defaults follow Tessera: batches of up to 256 entries or 250 ms.
#[derive(Debug, Clone)]
pub struct LedgerConfig {
    /// Log origin (checkpoint first line), e.g. `pf.example/ledger`.
    pub origin: String,
    /// Largest batch integrated at once.
    pub max_batch: usize,
    /// Longest time the first entry of a batch waits for others (0: integrate what is queued).
    pub max_delay: Duration,
    /// Largest canonical entry accepted (at most 65535, the entry-bundle limit).
    pub max_entry_bytes: usize,
    /// Appends queued before callers block (or async callers get [`LedgerError::Overloaded`]).
    pub max_pending: usize,
    /// Secondary index file for `find`; `None` disables the index.
    pub index_file: Option<PathBuf>,
}

impl LedgerConfig {
    /// Defaults for `origin`.
    pub fn new(origin: impl Into<String>) -> LedgerConfig {
        LedgerConfig {
            origin: origin.into(),
            max_batch: 256,
            max_delay: Duration::from_millis(250),
            max_entry_bytes: crate::tiles::MAX_ENTRY_BYTES,
            max_pending: 65536,
            index_file: None,
        }
    }
}

/// Errors from the ledger.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The stored checkpoint is malformed or not signed by this log's key.
    #[error("stored checkpoint rejected: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// A stored tile failed verification (corrupted, truncated or missing).
    #[error("stored log is damaged: {0}")]
    Damaged(#[from] TileCheckError),
    /// The record was rejected.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// An index or size beyond the current tree.
    #[error("{what} {value} is beyond the tree size {size}")]
    OutOfRange {
        /// What was asked for.
        what: &'static str,
        /// The value.
        value: u64,
        /// Current size.
        size: u64,
    },
    /// The batch holding this entry could not be committed; it was not logged.
    #[error("append failed, entry not logged: {0}")]
    CommitFailed(String),
    /// The append queue is full.
    #[error("ledger overloaded: append queue full")]
    Overloaded,
    /// The sequencer has stopped.
    #[error("ledger is closed")]
    Closed,
    /// The secondary index could not be written or read.
    #[error("secondary index {path}: {source}")]
    Index {
        /// Index file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The log key cannot sign (for example a cosigner key was given).
    #[error("signing failed: {0}")]
    Signing(String),
}

/// A consistent view of the log at one checkpoint.
pub struct Snapshot {
    /// The right edge (partial tiles and entries) for this size.
    pub edge: RightEdge,
    /// The signed checkpoint text.
    pub checkpoint: Arc<str>,
    /// Root hash.
    pub root: Hash,
    tiles: VerifiedTiles,
}

struct Shared {
    storage: Arc<dyn Storage>,
    verifier: VerifierKey,
    config: LedgerConfig,
    snapshot: RwLock<Arc<Snapshot>>,
    index: Option<Mutex<Index>>,
}

struct Job {
    entry: Vec<u8>,
    keys: Vec<String>,
    reply: tokio::sync::oneshot::Sender<Result<u64, LedgerError>>,
}

/// A transparency log. Appends go through a sequencer thread; reads use the latest snapshot.
pub struct Ledger {
    shared: Arc<Shared>,
    tx: Option<SyncSender<Job>>,
    worker: Option<JoinHandle<()>>,
}

/// An inclusion proof for one entry against a tree size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    /// Leaf index.
    pub index: u64,
    /// Tree size the proof is for.
    pub size: u64,
    /// Sibling hashes, leaf first.
    pub hashes: Vec<Hash>,
}

fn storage_fetch(storage: Arc<dyn Storage>) -> Fetch {
    Arc::new(move |t: &TileId| storage.read_tile(t).map_err(|e| e.to_string()))
}

impl Ledger {
    /// Opens (or initialises, when storage holds no checkpoint) a writable log signed by `signer`.
    /// Recovers to the last durable checkpoint: the partial tiles it names must hash to its root.
    pub fn open(
        storage: Arc<dyn Storage>,
        signer: SignerKey,
        config: LedgerConfig,
    ) -> Result<Ledger, LedgerError> {
        let verifier = signer.verifier();
        let snapshot = match storage.read_checkpoint()? {
            Some(bytes) => load_snapshot(&storage, &bytes, &verifier, &config.origin)?,
            None => {
                let edge = RightEdge::empty();
                let cp = sign_checkpoint(&config.origin, &edge, &signer)?;
                storage.commit(0, &[], 0, cp.as_bytes())?;
                load_snapshot(&storage, cp.as_bytes(), &verifier, &config.origin)?
            }
        };
        let shared = Arc::new(Shared {
            storage,
            verifier,
            snapshot: RwLock::new(Arc::new(snapshot)),
            index: None,
            config: config.clone(),
        });
        let shared = attach_index(shared)?;
        let (tx, worker) = sequencer::start(shared.clone(), signer)?;
        Ok(Ledger {
            shared,
            tx: Some(tx),
            worker: Some(worker),
        })
    }

    /// Opens a log for reading only (auditing, serving a directory another process writes).
    pub fn open_read_only(
        storage: Arc<dyn Storage>,
        verifier: &VerifierKey,
        config: LedgerConfig,
    ) -> Result<Ledger, LedgerError> {
        let bytes = storage.read_checkpoint()?.ok_or(LedgerError::Checkpoint(
            CheckpointError::Malformed {
                line: 1,
                reason: "no checkpoint: log not initialised",
            },
        ))?;
        let snapshot = load_snapshot(&storage, &bytes, verifier, &config.origin)?;
        let shared = Arc::new(Shared {
            storage,
            verifier: verifier.clone(),
            snapshot: RwLock::new(Arc::new(snapshot)),
            index: None,
            config,
        });
        let shared = attach_index(shared)?;
        Ok(Ledger {
            shared,
            tx: None,
            worker: None,
        })
    }

    /// Canonicalises `record`, commits its `sensitive` fields, appends it and waits until it is
    /// durable and integrated. Returns the leaf index and the commitment openings.
    pub fn append_record(
        &self,
        record: serde_json::Value,
        sensitive: &[&str],
    ) -> Result<(u64, Vec<record::Opening>), LedgerError> {
        let p = record::prepare(record, sensitive, self.shared.config.max_entry_bytes)?;
        let idx = self.append(p.canonical)?;
        Ok((idx, p.openings))
    }

    /// Appends raw entry bytes (callers normally use [`Ledger::append_record`]); blocks until the
    /// entry is durable and integrated and returns its index.
    pub fn append(&self, entry: Vec<u8>) -> Result<u64, LedgerError> {
        let (job, rx) = self.job(entry)?;
        self.tx
            .as_ref()
            .ok_or(LedgerError::Closed)?
            .send(job)
            .map_err(|_| LedgerError::Closed)?;
        rx.blocking_recv().map_err(|_| LedgerError::Closed)?
    }

    /// Appends several entries, queued together so they share batches; returns their indices
    /// (consecutive unless other writers interleave), each durable and integrated.
    pub fn append_many(&self, entries: Vec<Vec<u8>>) -> Result<Vec<u64>, LedgerError> {
        let tx = self.tx.as_ref().ok_or(LedgerError::Closed)?;
        let mut waits = Vec::with_capacity(entries.len());
        for e in entries {
            let (job, rx) = self.job(e)?;
            tx.send(job).map_err(|_| LedgerError::Closed)?;
            waits.push(rx);
        }
        waits
            .into_iter()
            .map(|rx| rx.blocking_recv().map_err(|_| LedgerError::Closed)?)
            .collect()
    }

    /// Async variant of [`Ledger::append`]; fails fast with [`LedgerError::Overloaded`] when
    /// the queue is full instead of blocking the executor.
    pub async fn append_async(&self, entry: Vec<u8>) -> Result<u64, LedgerError> {
        let (job, rx) = self.job(entry)?;
        match self.tx.as_ref().ok_or(LedgerError::Closed)?.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(LedgerError::Overloaded),
            Err(TrySendError::Disconnected(_)) => return Err(LedgerError::Closed),
        }
        rx.await.map_err(|_| LedgerError::Closed)?
    }

    fn job(
        &self,
        entry: Vec<u8>,
    ) -> Result<
        (
            Job,
            tokio::sync::oneshot::Receiver<Result<u64, LedgerError>>,
        ),
        LedgerError,
    > {
        if entry.len() > self.shared.config.max_entry_bytes {
            return Err(RecordError::TooLarge {
                got: entry.len(),
                limit: self.shared.config.max_entry_bytes,
            }
            .into());
        }
        let keys = if self.shared.index.is_some() {
            record::parse_json(&entry)
                .map(|v| record::index_keys(&v))
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let (reply, rx) = tokio::sync::oneshot::channel();
        Ok((Job { entry, keys, reply }, rx))
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.shared.snapshot()
    }

    /// Re-reads the checkpoint from storage (read-only ledgers following another writer).
    pub fn refresh(&self, verifier: &VerifierKey) -> Result<u64, LedgerError> {
        let Some(bytes) = self.shared.storage.read_checkpoint()? else {
            return Ok(self.size());
        };
        let snap = load_snapshot(
            &self.shared.storage,
            &bytes,
            verifier,
            &self.shared.config.origin,
        )?;
        let size = snap.edge.size();
        if let Ok(mut s) = self.shared.snapshot.write() {
            *s = Arc::new(snap);
        }
        Ok(size)
    }

    /// Current tree size.
    pub fn size(&self) -> u64 {
        self.snapshot().edge.size()
    }

    /// The latest signed checkpoint text.
    pub fn checkpoint(&self) -> Arc<str> {
        self.snapshot().checkpoint.clone()
    }

    /// Inclusion proof for leaf `index` in the tree of `size` (`index < size <= current`).
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<InclusionProof, LedgerError> {
        let snap = self.snapshot();
        let cur = snap.edge.size();
        if size > cur {
            return Err(LedgerError::OutOfRange {
                what: "tree size",
                value: size,
                size: cur,
            });
        }
        if index >= size {
            return Err(LedgerError::OutOfRange {
                what: "leaf index",
                value: index,
                size,
            });
        }
        let view = TreeView::new(&snap.tiles, cur);
        let hashes = merkle::inclusion_proof(&view, index, size)?;
        Ok(InclusionProof {
            index,
            size,
            hashes,
        })
    }

    /// Consistency proof from tree size `old` to `new` (`0 < old <= new <= current`).
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, LedgerError> {
        let snap = self.snapshot();
        let cur = snap.edge.size();
        if new > cur || old > new {
            return Err(LedgerError::OutOfRange {
                what: "tree size",
                value: new.max(old),
                size: cur,
            });
        }
        let view = TreeView::new(&snap.tiles, cur);
        Ok(merkle::consistency_proof(&view, old, new)?)
    }

    /// Root hash of the tree of `size` leaves (`size <= current`).
    pub fn root_at(&self, size: u64) -> Result<Hash, LedgerError> {
        let snap = self.snapshot();
        let cur = snap.edge.size();
        if size > cur {
            return Err(LedgerError::OutOfRange {
                what: "tree size",
                value: size,
                size: cur,
            });
        }
        let view = TreeView::new(&snap.tiles, cur);
        Ok(merkle::tree_root(&view, size)?)
    }

    /// The entry at `index`, verified against the tree.
    pub fn entry(&self, index: u64) -> Result<Vec<u8>, LedgerError> {
        let snap = self.snapshot();
        let cur = snap.edge.size();
        if index >= cur {
            return Err(LedgerError::OutOfRange {
                what: "leaf index",
                value: index,
                size: cur,
            });
        }
        let mut b = snap
            .tiles
            .bundle(index / TILE_WIDTH, Some(snap.edge.partial_entries()))?;
        let i = (index % TILE_WIDTH) as usize;
        Ok(std::mem::take(&mut b[i]))
    }

    /// Verified entries `[start, end)`.
    pub fn entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, LedgerError> {
        let snap = self.snapshot();
        entries_in(&snap, start, end)
    }

    /// The body of a tile or entry bundle, verified against the current checkpoint before it
    /// is returned: the same bytes a static tlog-tiles server would serve.
    pub fn tile(&self, tile: &TileId) -> Result<Vec<u8>, LedgerError> {
        let snap = self.snapshot();
        match tile.kind {
            TileKind::Hashes(_) => Ok(encode_hash_tile(&snap.tiles.hashes(*tile)?)),
            TileKind::Entries => {
                let full = full_tiles(0, snap.edge.size());
                let entries = snap
                    .tiles
                    .bundle(tile.index, Some(snap.edge.partial_entries()))?;
                let want = usize::from(tile.width);
                if entries.len() < want || (tile.is_full() && tile.index >= full) {
                    return Err(TileCheckError::OutOfRange(tile.path()).into());
                }
                Ok(encode_bundle(&entries[..want]).map_err(TileCheckError::from)?)
            }
        }
    }

    /// Leaf indices whose records carry `key` (`agent:<id>`, `bundle:<digest>`, `commitment:<hex>`).
    pub fn find(&self, key: &str) -> Vec<u64> {
        let size = self.size();
        self.shared
            .index
            .as_ref()
            .and_then(|i| {
                i.lock()
                    .ok()
                    .map(|i| i.find(key).iter().copied().filter(|x| *x < size).collect())
            })
            .unwrap_or_default()
    }

    /// Re-hashes the whole log from its tiles and entry bundles, checking every tile against
    /// the tree and the recomputed root against the checkpoint. Returns the number of entries.
    pub fn fsck(&self) -> Result<u64, LedgerError> {
        let snap = self.snapshot();
        let size = snap.edge.size();
        // Every entry bundle checks against its level-0 tile, which checks against the tile
        // above, up to the edge verified against the checkpoint root.
        let mut leaves = 0u64;
        for b in 0..size.div_ceil(TILE_WIDTH) {
            leaves += snap
                .tiles
                .bundle(b, Some(snap.edge.partial_entries()))?
                .len() as u64;
        }
        for l in 1..=top_level(size.max(1)) {
            for t in 0..full_tiles(l, size) {
                snap.tiles.hashes(TileId::hashes(l, t, TILE_WIDTH as u16))?;
            }
        }
        let view = TreeView::new(&snap.tiles, size);
        if merkle::tree_root(&view, size)? != snap.root {
            return Err(TileCheckError::RootMismatch { size }.into());
        }
        Ok(leaves)
    }

    /// The configured origin.
    pub fn origin(&self) -> &str {
        &self.shared.config.origin
    }

    /// Stops the sequencer after the queued appends are integrated.
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.tx = None;
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Shared {
    /// Reloads the snapshot from storage (another sequencer committed first).
    fn reload(&self) -> Result<(), LedgerError> {
        let bytes = self
            .storage
            .read_checkpoint()?
            .ok_or(LedgerError::CommitFailed("checkpoint vanished".into()))?;
        let snap = load_snapshot(&self.storage, &bytes, &self.verifier, &self.config.origin)?;
        match self.snapshot.write() {
            Ok(mut s) => *s = Arc::new(snap),
            Err(p) => *p.into_inner() = Arc::new(snap),
        }
        Ok(())
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        match self.snapshot.read() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

fn entries_in(snap: &Snapshot, start: u64, end: u64) -> Result<Vec<Vec<u8>>, LedgerError> {
    let cur = snap.edge.size();
    if end > cur || start > end {
        return Err(LedgerError::OutOfRange {
            what: "entry range end",
            value: end,
            size: cur,
        });
    }
    let mut out = Vec::with_capacity((end - start) as usize);
    let mut i = start;
    while i < end {
        let b = snap
            .tiles
            .bundle(i / TILE_WIDTH, Some(snap.edge.partial_entries()))?;
        let lo = (i % TILE_WIDTH) as usize;
        let hi = ((end - (i - lo as u64)).min(TILE_WIDTH)) as usize;
        out.extend(b.into_iter().take(hi).skip(lo));
        i += (hi - lo) as u64;
    }
    Ok(out)
}

fn sign_checkpoint(
    origin: &str,
    edge: &RightEdge,
    signer: &SignerKey,
) -> Result<String, LedgerError> {
    let cp = Checkpoint {
        origin: origin.to_string(),
        size: edge.size(),
        root: edge.root(),
        extensions: Vec::new(),
    };
    Ok(cp.sign(signer)?.to_text())
}

/// Reads and verifies the checkpoint and the right-edge tiles it commits to.
fn load_snapshot(
    storage: &Arc<dyn Storage>,
    bytes: &[u8],
    verifier: &VerifierKey,
    origin: &str,
) -> Result<Snapshot, LedgerError> {
    let sc = SignedCheckpoint::open(bytes, verifier, Some(origin))?;
    let size = sc.checkpoint.size;
    let fetch = storage_fetch(storage.clone());
    let tiles = VerifiedTiles::for_checkpoint(size, &sc.checkpoint.root, fetch)?;
    let mut levels = Vec::new();
    if size > 0 {
        for l in 0..=top_level(size) {
            let w = partial_width(l, size);
            levels.push(if w == 0 {
                Vec::new()
            } else {
                tiles
                    .hashes(TileId::hashes(l, full_tiles(l, size), w))?
                    .to_vec()
            });
        }
    }
    // The partial entry bundle must hash to the level-0 partial tile.
    let entries = if size % TILE_WIDTH == 0 {
        Vec::new()
    } else {
        let id = TileId::entries(full_tiles(0, size), (size % TILE_WIDTH) as u16);
        let body = storage
            .read_tile(&id)?
            .ok_or_else(|| TileCheckError::Missing(id.path()))?;
        parse_bundle(&id, &body).map_err(TileCheckError::from)?
    };
    let edge = RightEdge::from_parts(size, levels, entries)
        .map_err(|_| TileCheckError::RootMismatch { size })?;
    if size % TILE_WIDTH != 0 {
        tiles.bundle(full_tiles(0, size), Some(edge.partial_entries()))?;
    }
    Ok(Snapshot {
        root: sc.checkpoint.root,
        checkpoint: Arc::from(sc.to_text()),
        edge,
        tiles,
    })
}

/// Loads the secondary index and indexes entries the index file missed (crash after commit).
fn attach_index(shared: Arc<Shared>) -> Result<Arc<Shared>, LedgerError> {
    let Some(path) = shared.config.index_file.clone() else {
        return Ok(shared);
    };
    let snap = shared.snapshot();
    let size = snap.edge.size();
    let ierr = |source| LedgerError::Index {
        path: path.clone(),
        source,
    };
    let mut index = Index::load(&path, size).map_err(ierr)?;
    let mut i = index.watermark();
    while i < size {
        let end = (i + 4096).min(size);
        for (k, e) in entries_in(&snap, i, end)?.iter().enumerate() {
            let keys = record::parse_json(e)
                .map(|v| record::index_keys(&v))
                .unwrap_or_default();
            index.add(i + k as u64, &keys).map_err(ierr)?;
        }
        i = end;
    }
    if index.watermark() != size {
        index.mark(size).map_err(ierr)?;
    }
    let mut shared = Arc::try_unwrap(shared).map_err(|_| LedgerError::Closed)?;
    shared.index = Some(Mutex::new(index));
    Ok(Arc::new(shared))
}

impl From<crate::view::ViewError> for LedgerError {
    fn from(e: crate::view::ViewError) -> Self {
        LedgerError::Damaged(e.into())
    }
}

#[cfg(test)]
mod tests;
