//! Embedded storage: the log directory *is* a tlog-tiles tree (`checkpoint`, `tile/...`), so
//! any static file server can publish it. Every file is written to a temporary name, fsynced,
//! renamed into place and its directory fsynced; the checkpoint is written last.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use super::{Storage, StorageError};
use crate::tiles::TileId;

/// A log stored as files under one directory.
#[derive(Debug, Clone)]
pub struct FileStorage {
    root: PathBuf,
    /// Held open by a writer: an exclusive lock on `<root>/.lock` (one sequencer per log).
    _lock: Option<std::sync::Arc<File>>,
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StorageError + 'a {
    move |source| StorageError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

impl FileStorage {
    /// Uses (and creates if needed) the directory `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<FileStorage, StorageError> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(io("create", &root))?;
        Ok(FileStorage { root, _lock: None })
    }

    /// Like [`FileStorage::open`], and takes the writer lock; fails if another process holds it.
    pub fn open_writer(root: impl Into<PathBuf>) -> Result<FileStorage, StorageError> {
        let mut s = FileStorage::open(root)?;
        let p = s.root.join(".lock");
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&p)
            .map_err(io("create", &p))?;
        f.try_lock().map_err(|e| StorageError::Io {
            op: "lock (is another writer running?)",
            path: p.clone(),
            source: std::io::Error::new(ErrorKind::WouldBlock, e.to_string()),
        })?;
        s._lock = Some(std::sync::Arc::new(f));
        Ok(s)
    }

    /// The directory holding `checkpoint` and `tile/`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Path of the file holding `tile`.
    pub fn tile_path(&self, tile: &TileId) -> PathBuf {
        self.root.join(tile.path())
    }

    /// Creates `path`'s directory if needed, recording every directory whose entries change
    /// (and so must be fsynced) in `dirs`.
    fn prepare_dir(&self, path: &Path, dirs: &mut BTreeSet<PathBuf>) -> Result<(), StorageError> {
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        if !dir.exists() {
            fs::create_dir_all(&dir).map_err(io("create directory", &dir))?;
            // New directories must reach the disk too: fsync every ancestor up to the root.
            let mut d = dir.as_path();
            while let Some(p) = d.parent() {
                dirs.insert(p.to_path_buf());
                if p == self.root {
                    break;
                }
                d = p;
            }
        }
        dirs.insert(dir);
        Ok(())
    }
}

/// Writes `data` to a temporary file beside `path`, fsyncs it and renames it into place.
fn write_durable(path: &Path, data: &[u8]) -> Result<(), StorageError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(io("create", &tmp))?;
    f.write_all(data).map_err(io("write", &tmp))?;
    f.sync_all().map_err(io("fsync", &tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(io("rename", path))
}

/// Runs `f` over `items` on up to [`IO_THREADS`] threads. Concurrent fsyncs let the file
/// system commit them together instead of one journal commit each.
fn parallel<T: Sync>(
    items: &[T],
    f: impl Fn(&T) -> Result<(), StorageError> + Sync,
) -> Result<(), StorageError> {
    if items.len() <= 1 {
        return items.iter().try_for_each(&f);
    }
    let chunk = items.len().div_ceil(IO_THREADS);
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|c| s.spawn(|| c.iter().try_for_each(&f)))
            .collect();
        handles.into_iter().try_for_each(|h| {
            h.join().unwrap_or_else(|_| {
                Err(StorageError::Io {
                    op: "write",
                    path: PathBuf::new(),
                    source: std::io::Error::other("writer thread panicked"),
                })
            })
        })
    })
}

/// Threads used for concurrent tile writes.
const IO_THREADS: usize = 8;

/// Tree size on the second line of a checkpoint (0 if unreadable: the ledger verifies it).
fn checkpoint_size(cp: &[u8]) -> u64 {
    std::str::from_utf8(cp)
        .ok()
        .and_then(|t| t.lines().nth(1))
        .and_then(|l| l.parse().ok())
        .unwrap_or(0)
}

fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("fsync directory", dir))
}

impl Storage for FileStorage {
    fn read_checkpoint(&self) -> Result<Option<Vec<u8>>, StorageError> {
        let p = self.root.join("checkpoint");
        match fs::read(&p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("read", &p)(e)),
        }
    }

    fn read_tile(&self, tile: &TileId) -> Result<Option<Vec<u8>>, StorageError> {
        let p = self.tile_path(tile);
        match fs::read(&p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("read", &p)(e)),
        }
    }

    fn commit(
        &self,
        old_size: u64,
        tiles: &[(TileId, Vec<u8>)],
        new_size: u64,
        checkpoint: &[u8],
    ) -> Result<(), StorageError> {
        // One writer per directory (the lock file); the size check still refuses a commit
        // that does not extend the current checkpoint.
        let _ = new_size;
        let found = self.read_checkpoint()?.map_or(0, |cp| checkpoint_size(&cp));
        if found != old_size {
            return Err(StorageError::Conflict {
                expected: old_size,
                found,
            });
        }
        let mut dirs = BTreeSet::new();
        let files: Vec<(PathBuf, &[u8])> = tiles
            .iter()
            .map(|(t, d)| (self.tile_path(t), d.as_slice()))
            .collect();
        for (p, _) in &files {
            self.prepare_dir(p, &mut dirs)?;
        }
        parallel(&files, |(p, d)| write_durable(p, d))?;
        let dirs: Vec<PathBuf> = dirs.into_iter().collect();
        parallel(&dirs, |d| sync_dir(d))?;
        // The checkpoint goes last: once it is visible, everything it commits to is durable.
        write_durable(&self.root.join("checkpoint"), checkpoint)?;
        sync_dir(&self.root)
    }

    fn discard(&self, tiles: &[TileId]) -> Result<(), StorageError> {
        for t in tiles.iter().filter(|t| !t.is_full()) {
            let p = self.tile_path(t);
            match fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(io("remove", &p)(e)),
            }
            // Drop the `.p` directory once empty; failure just means another partial is there.
            if let Some(parent) = p.parent() {
                let _ = fs::remove_dir(parent);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_writer_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let _w = FileStorage::open_writer(dir.path()).expect("first writer");
        assert!(FileStorage::open_writer(dir.path()).is_err());
    }

    #[test]
    fn commit_then_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = FileStorage::open(dir.path()).expect("open");
        assert!(s.read_checkpoint().expect("read").is_none());
        let t = TileId::hashes(0, 1234067, 3);
        s.commit(0, &[(t, vec![1; 96])], 3, b"o\n3\nr\n")
            .expect("commit");
        assert!(matches!(
            s.commit(0, &[], 4, b"o\n4\nr\n"),
            Err(StorageError::Conflict {
                expected: 0,
                found: 3
            })
        ));
        assert_eq!(s.read_tile(&t).expect("read"), Some(vec![1; 96]));
        assert!(dir.path().join("tile/0/x001/x234/067.p/3").exists());
        assert_eq!(
            s.read_checkpoint().expect("read"),
            Some(b"o\n3\nr\n".to_vec())
        );
        s.discard(&[t]).expect("discard");
        assert_eq!(s.read_tile(&t).expect("read"), None);
    }
}
