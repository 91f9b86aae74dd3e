//! The narrow storage interface the sequencer writes through, and its backends: files in the
//! tiles layout ([`file`]) and PostgreSQL (`pg`, feature `postgres`).

use std::path::PathBuf;

use crate::tiles::TileId;

pub mod file;
#[cfg(feature = "postgres")]
pub mod pg;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A file-system operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// Path involved.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Another writer committed first: the stored size is not the one this commit extends.
    #[error("log size is {found} in storage, this commit extends {expected}")]
    Conflict {
        /// Size the commit expected.
        expected: u64,
        /// Size found.
        found: u64,
    },
    /// A database error.
    #[error("database: {0}")]
    Database(String),
}

/// Where tiles, entry bundles and the checkpoint live. Implementations make `commit` durable
/// and atomic as seen by [`Storage::read_checkpoint`]: a checkpoint is only visible once every
/// tile it needs is durable.
pub trait Storage: Send + Sync {
    /// The latest committed signed checkpoint, if the log was initialised.
    fn read_checkpoint(&self) -> Result<Option<Vec<u8>>, StorageError>;
    /// A tile or entry bundle body, `None` if absent.
    fn read_tile(&self, tile: &TileId) -> Result<Option<Vec<u8>>, StorageError>;
    /// Durably stores `tiles`, then makes `checkpoint` (for `new_size`) current. Fails with
    /// [`StorageError::Conflict`] if the current size is not `old_size`.
    fn commit(
        &self,
        old_size: u64,
        tiles: &[(TileId, Vec<u8>)],
        new_size: u64,
        checkpoint: &[u8],
    ) -> Result<(), StorageError>;
    /// Removes partial tiles superseded by a later commit (best effort; readers fall back to
    /// the full or wider tile).
    fn discard(&self, tiles: &[TileId]) -> Result<(), StorageError>;
}
