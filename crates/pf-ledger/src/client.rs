//! Auditing a log from the outside: fetch its checkpoint and tiles (from a directory or over
//! HTTP), verify the signature, consistency with the last checkpoint seen, inclusion of
//! entries, or re-hash everything. Nothing fetched is trusted before it is verified.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::checkpoint::{CheckpointError, SignedCheckpoint};
use crate::hash::{Hash, leaf_hash};
use crate::merkle::{self, ProofError};
use crate::note::VerifierKey;
use crate::tiles::{TILE_WIDTH, TileId, full_tiles, top_level};
use crate::verified::{Fetch, TileCheckError, VerifiedTiles};
use crate::view::TreeView;

/// Largest tile or checkpoint body accepted from a remote source.
const MAX_FETCH_BYTES: u64 = 16 * 1024 * 1024;

/// Errors while auditing.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Fetching a resource failed.
    #[error("fetching {what}: {reason}")]
    Fetch {
        /// Resource.
        what: String,
        /// Cause.
        reason: String,
    },
    /// The checkpoint is bad or not signed by the expected key.
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// Tiles fail verification.
    #[error("tiles: {0}")]
    Tiles(#[from] TileCheckError),
    /// A proof fails.
    #[error("proof: {0}")]
    Proof(#[from] ProofError),
    /// The log is not an extension of the checkpoint seen before: split view or rollback.
    #[error("log is inconsistent with the checkpoint seen before (size {old_size}): {reason}")]
    Inconsistent {
        /// Size of the earlier checkpoint.
        old_size: u64,
        /// Why.
        reason: String,
    },
    /// Local state file problem.
    #[error("state file {path}: {reason}")]
    State {
        /// File.
        path: PathBuf,
        /// Cause.
        reason: String,
    },
}

/// Where a log is read from: a directory in tiles layout, or an HTTP(S) prefix.
#[derive(Debug, Clone)]
pub enum LogSource {
    /// A local directory holding `checkpoint` and `tile/`.
    Dir(PathBuf),
    /// An `http://` URL prefix (the built-in client speaks plain HTTP only).
    Http(String),
}

impl LogSource {
    /// `http://...` becomes [`LogSource::Http`], anything else a directory.
    pub fn parse(s: &str) -> LogSource {
        if s.starts_with("http://") || s.starts_with("https://") {
            LogSource::Http(s.trim_end_matches('/').to_string())
        } else {
            LogSource::Dir(PathBuf::from(s))
        }
    }

    /// Fetches `path` (relative to the prefix); `Ok(None)` when absent.
    pub fn get(&self, path: &str) -> Result<Option<Vec<u8>>, String> {
        match self {
            LogSource::Dir(d) => read_file(&d.join(path)),
            LogSource::Http(base) => http_get(&format!("{base}/{path}")),
        }
    }

    fn fetcher(&self) -> Fetch {
        let me = self.clone();
        Arc::new(move |t: &TileId| me.get(&t.path()))
    }
}

fn read_file(p: &Path) -> Result<Option<Vec<u8>>, String> {
    match std::fs::metadata(p) {
        Ok(m) if m.len() > MAX_FETCH_BYTES => return Err(format!("{} is too large", p.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        _ => {}
    }
    match std::fs::read(p) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", p.display())),
    }
}

#[cfg(feature = "net")]
fn http_get(url: &str) -> Result<Option<Vec<u8>>, String> {
    use std::io::Read;
    let agent = ureq::AgentBuilder::new()
        .timeout(std::time::Duration::from_secs(30))
        .build();
    match agent.get(url).call() {
        Ok(resp) => {
            let mut body = Vec::new();
            resp.into_reader()
                .take(MAX_FETCH_BYTES + 1)
                .read_to_end(&mut body)
                .map_err(|e| e.to_string())?;
            if body.len() as u64 > MAX_FETCH_BYTES {
                return Err(format!("{url}: response too large"));
            }
            Ok(Some(body))
        }
        Err(ureq::Error::Status(404, _)) => Ok(None),
        Err(e) => Err(format!("{url}: {e}")),
    }
}

#[cfg(not(feature = "net"))]
fn http_get(url: &str) -> Result<Option<Vec<u8>>, String> {
    Err(format!("{url}: built without the `net` feature"))
}

/// A verified view of a remote log at its current checkpoint.
pub struct RemoteLog {
    /// Where it came from.
    pub source: LogSource,
    /// The verified checkpoint.
    pub checkpoint: SignedCheckpoint,
    /// Verified tiles for that checkpoint.
    pub tiles: VerifiedTiles,
}

impl RemoteLog {
    /// Fetches and verifies the checkpoint (signature by `vkey`, origin = key name) and the
    /// right-edge tiles it commits to.
    pub fn open(source: LogSource, vkey: &VerifierKey) -> Result<RemoteLog, AuditError> {
        let bytes = source
            .get("checkpoint")
            .map_err(|reason| AuditError::Fetch {
                what: "checkpoint".into(),
                reason,
            })?
            .ok_or_else(|| AuditError::Fetch {
                what: "checkpoint".into(),
                reason: "not found".into(),
            })?;
        let checkpoint = SignedCheckpoint::open(&bytes, vkey, Some(&vkey.name))?;
        let tiles = VerifiedTiles::for_checkpoint(
            checkpoint.checkpoint.size,
            &checkpoint.checkpoint.root,
            source.fetcher(),
        )?;
        Ok(RemoteLog {
            source,
            checkpoint,
            tiles,
        })
    }

    /// Tree size of the checkpoint.
    pub fn size(&self) -> u64 {
        self.checkpoint.checkpoint.size
    }

    /// Checks this checkpoint extends an earlier one (size, root), building the consistency
    /// proof from verified tiles.
    pub fn check_consistent(&self, old_size: u64, old_root: &Hash) -> Result<(), AuditError> {
        let size = self.size();
        if old_size > size {
            return Err(AuditError::Inconsistent {
                old_size,
                reason: format!("log shrank to {size}"),
            });
        }
        if old_size == 0 {
            return Ok(());
        }
        let view = TreeView::new(&self.tiles, size);
        let proof = merkle::consistency_proof(&view, old_size, size)?;
        merkle::verify_consistency(
            old_size,
            size,
            old_root,
            &self.checkpoint.checkpoint.root,
            &proof,
        )
        .map_err(|e| AuditError::Inconsistent {
            old_size,
            reason: e.to_string(),
        })
    }

    /// The entry at `index` with its inclusion proof against this checkpoint, verified.
    pub fn entry_with_proof(&self, index: u64) -> Result<(Vec<u8>, Vec<Hash>), AuditError> {
        let size = self.size();
        if index >= size {
            return Err(ProofError::IndexOutOfRange { index, size }.into());
        }
        let mut bundle = self.tiles.bundle(index / TILE_WIDTH, None)?;
        let entry = std::mem::take(&mut bundle[(index % TILE_WIDTH) as usize]);
        let view = TreeView::new(&self.tiles, size);
        let proof = merkle::inclusion_proof(&view, index, size)?;
        merkle::verify_inclusion(
            index,
            size,
            &leaf_hash(&entry),
            &proof,
            &self.checkpoint.checkpoint.root,
        )?;
        Ok((entry, proof))
    }

    /// Entries `[start, end)`, each verified against the tree.
    pub fn entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, AuditError> {
        let end = end.min(self.size());
        let mut out = Vec::new();
        let mut i = start;
        while i < end {
            let b = self.tiles.bundle(i / TILE_WIDTH, None)?;
            let lo = (i % TILE_WIDTH) as usize;
            let take = ((end - i) as usize).min(b.len() - lo);
            out.extend(b.into_iter().skip(lo).take(take));
            i += take as u64;
        }
        Ok(out)
    }

    /// Re-hashes the whole log: every entry bundle and tile against the checkpoint root.
    pub fn fsck(&self) -> Result<u64, AuditError> {
        let size = self.size();
        let mut n = 0;
        for b in 0..size.div_ceil(TILE_WIDTH) {
            n += self.tiles.bundle(b, None)?.len() as u64;
        }
        for l in 1..=top_level(size.max(1)) {
            for t in 0..full_tiles(l, size) {
                self.tiles.hashes(TileId::hashes(l, t, TILE_WIDTH as u16))?;
            }
        }
        Ok(n)
    }
}

/// The auditor's memory: the last verified checkpoint, kept in a local file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditState {
    /// Tree size.
    pub size: u64,
    /// Root hash.
    pub root: Hash,
}

impl AuditState {
    /// Loads `path` (`size root-base64`); `None` if it does not exist yet.
    pub fn load(path: &Path) -> Result<Option<AuditState>, AuditError> {
        let err = |reason: String| AuditError::State {
            path: path.to_path_buf(),
            reason,
        };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(err(e.to_string())),
        };
        let mut it = text.split_whitespace();
        let size = it
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| err("bad size".into()))?;
        let root = it
            .next()
            .and_then(Hash::from_base64)
            .ok_or_else(|| err("bad root".into()))?;
        Ok(Some(AuditState { size, root }))
    }

    /// Saves atomically (temp file, fsync, rename).
    pub fn save(&self, path: &Path) -> Result<(), AuditError> {
        let err = |e: std::io::Error| AuditError::State {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        let tmp = path.with_extension("tmp");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(err)?;
            writeln!(f, "{} {}", self.size, self.root.to_base64()).map_err(err)?;
            f.sync_all().map_err(err)?;
        }
        std::fs::rename(&tmp, path).map_err(err)
    }
}

/// Audits `log` against the saved state: verifies the checkpoint and its consistency with the
/// previous one, then advances the state. Returns (previous state, new state).
pub fn audit(
    log: &RemoteLog,
    state_file: &Path,
) -> Result<(Option<AuditState>, AuditState), AuditError> {
    let prev = AuditState::load(state_file)?;
    if let Some(p) = &prev {
        log.check_consistent(p.size, &p.root)?;
    }
    let now = AuditState {
        size: log.size(),
        root: log.checkpoint.checkpoint.root,
    };
    // Never move the saved state backwards.
    if prev.as_ref().is_none_or(|p| p.size <= now.size) {
        now.save(state_file)?;
    }
    Ok((prev, now))
}
