//! Opening untrusted bundles: every entry is checked against the manifest and the limits.
//!
//! The reader accepts exactly what [`crate::BundleBuilder`] writes: one gzip member holding a
//! ustar stream whose first entry is the canonical manifest, followed by regular files in byte
//! order of their paths, each listed in the manifest with matching size and sha256. Anything else
//! (links, devices, directories, PAX/GNU extension headers, unsafe paths, duplicates, extra or
//! missing files, trailing data) is rejected with an error naming the entry.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use flate2::bufread::GzDecoder;

use crate::digest::Sha256Digest;
use crate::limits::Limits;
use crate::manifest::{Manifest, ManifestError};
use crate::path::{BundlePath, MANIFEST_PATH, PathError};

/// Why an archive was rejected.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Compressed archive above [`Limits::max_archive_size`].
    #[error("archive is {size} bytes, limit {limit}")]
    ArchiveTooLarge {
        /// Size found.
        size: u64,
        /// Limit.
        limit: u64,
    },
    /// gzip or tar framing is corrupt (bad CRC, truncated, bad header checksum...).
    #[error("corrupt archive{}: {source}", at.as_ref().map(|p| format!(" at entry {p:?}")).unwrap_or_default())]
    Corrupt {
        /// Entry being read, when known.
        at: Option<String>,
        /// Cause.
        source: io::Error,
    },
    /// The decompressed stream grew past the limits (decompression bomb).
    #[error("decompressed data exceeds {what} (limit {limit}){}", at.as_ref().map(|p| format!(" at entry {p:?}")).unwrap_or_default())]
    Bomb {
        /// Which limit: "total size" or "compression ratio".
        what: &'static str,
        /// The limit value.
        limit: u64,
        /// Entry being read, when known.
        at: Option<String>,
    },
    /// More entries than [`Limits::max_entries`].
    #[error("more than {limit} entries (at {path:?})")]
    TooManyEntries {
        /// Entry that crossed the limit.
        path: String,
        /// Limit.
        limit: usize,
    },
    /// A file above [`Limits::max_file_size`] (or the manifest above its limit).
    #[error("entry {path:?} is {size} bytes, limit {limit}")]
    FileTooLarge {
        /// Entry.
        path: String,
        /// Declared size.
        size: u64,
        /// Limit.
        limit: u64,
    },
    /// Files total more than [`Limits::max_total_size`].
    #[error("files total more than {limit} bytes (at {path:?})")]
    TotalTooLarge {
        /// Entry that crossed the limit.
        path: String,
        /// Limit.
        limit: u64,
    },
    /// A symlink, hardlink, device, directory, FIFO or extension header.
    #[error("entry {path:?} has type {kind}; only regular files are allowed")]
    UnsupportedEntryType {
        /// Entry.
        path: String,
        /// Type found, e.g. "symlink".
        kind: String,
    },
    /// An unsafe or malformed path (traversal, absolute...).
    #[error("entry {path:?} has an invalid path: {source}")]
    InvalidPath {
        /// Path as found (lossy UTF-8).
        path: String,
        /// Rule broken.
        source: PathError,
    },
    /// The archive holds no entries at all.
    #[error("archive is empty: no manifest")]
    ManifestMissing,
    /// The first entry is not the manifest.
    #[error("first entry is {0:?}, expected {MANIFEST_PATH:?}")]
    ManifestNotFirst(String),
    /// The manifest is malformed.
    #[error("invalid manifest: {0}")]
    Manifest(#[from] ManifestError),
    /// The same path appears twice.
    #[error("duplicate entry {0:?}")]
    DuplicateEntry(String),
    /// An entry not listed in the manifest.
    #[error("entry {0:?} is not listed in the manifest")]
    UnlistedEntry(String),
    /// A manifest file absent from the archive.
    #[error("manifest lists {0:?} but the archive does not contain it")]
    MissingEntry(String),
    /// Entries not in manifest (byte) order.
    #[error("entry {path:?} is out of order (after {previous:?})")]
    OutOfOrder {
        /// Entry.
        path: String,
        /// Entry before it.
        previous: String,
    },
    /// Size differs from the manifest.
    #[error("entry {path:?} is {actual} bytes, manifest says {expected}")]
    SizeMismatch {
        /// Entry.
        path: String,
        /// From manifest.
        expected: u64,
        /// From archive.
        actual: u64,
    },
    /// Content digest differs from the manifest.
    #[error("entry {path:?} has sha256 {actual}, manifest says {expected}")]
    DigestMismatch {
        /// Entry.
        path: String,
        /// From manifest.
        expected: Sha256Digest,
        /// Computed.
        actual: Sha256Digest,
    },
    /// Bytes after the tar end marker or after the gzip member.
    #[error("unexpected data after the end of the archive")]
    TrailingData,
    /// Reading the archive file failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
}

/// A bundle whose every entry was checked against its manifest.
#[derive(Debug, Clone)]
pub struct OpenedBundle {
    /// SHA-256 of the archive bytes (the bundle digest).
    pub digest: Sha256Digest,
    /// The manifest.
    pub manifest: Manifest,
    /// SHA-256 of the manifest's canonical JSON.
    pub manifest_digest: Sha256Digest,
    /// File contents by bundle path (manifest excluded).
    pub files: BTreeMap<String, Vec<u8>>,
}

impl OpenedBundle {
    /// The packed spec's bytes.
    pub fn spec_bytes(&self) -> &[u8] {
        self.files
            .get(&self.manifest.spec.file)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Writes the files under `dest`, which must not exist yet (it is created), so no
    /// pre-existing symlink inside it can redirect a write.
    pub fn extract_to(&self, dest: &Path) -> io::Result<()> {
        fs::create_dir_all(dest.parent().unwrap_or(Path::new(".")))?;
        fs::create_dir(dest)?;
        for (path, bytes) in &self.files {
            // Paths were validated by `BundlePath::parse`: relative, no `..`, `/`-separated.
            let target = path.split('/').fold(dest.to_path_buf(), |p, c| p.join(c));
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent)?;
            }
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&target)?;
            io::Write::write_all(&mut f, bytes)?;
        }
        Ok(())
    }
}

/// Reads and opens a bundle file, refusing files above [`Limits::max_archive_size`] unread.
pub fn open_file(path: &Path, limits: &Limits) -> Result<OpenedBundle, OpenError> {
    let bytes = read_archive(path, limits)?;
    open(&bytes, limits)
}

/// Reads an archive file with the size limit applied before reading.
pub fn read_archive(path: &Path, limits: &Limits) -> Result<Vec<u8>, OpenError> {
    let err = |source| OpenError::Io {
        path: path.to_path_buf(),
        source,
    };
    let f = fs::File::open(path).map_err(err)?;
    let size = f.metadata().map_err(err)?.len();
    if size > limits.max_archive_size {
        return Err(OpenError::ArchiveTooLarge {
            size,
            limit: limits.max_archive_size,
        });
    }
    let mut bytes = Vec::with_capacity(size as usize);
    f.take(limits.max_archive_size + 1)
        .read_to_end(&mut bytes)
        .map_err(err)?;
    if bytes.len() as u64 > limits.max_archive_size {
        return Err(OpenError::ArchiveTooLarge {
            size: bytes.len() as u64,
            limit: limits.max_archive_size,
        });
    }
    Ok(bytes)
}

/// Which limit a [`Metered`] reader tripped.
#[derive(Clone, Copy)]
enum Tripped {
    Total(u64),
    Ratio(u64),
}

/// Counts decompressed bytes and fails the read once a limit is crossed.
struct Metered<R> {
    inner: R,
    read: u64,
    max_total: u64,
    max_ratio_bytes: u64,
    ratio_floor: u64,
    ratio: u64,
    tripped: Rc<Cell<Option<Tripped>>>,
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        let trip = if self.read > self.max_total {
            Some(Tripped::Total(self.max_total))
        } else if self.read > self.ratio_floor && self.read > self.max_ratio_bytes {
            Some(Tripped::Ratio(self.ratio))
        } else {
            None
        };
        if let Some(t) = trip {
            self.tripped.set(Some(t));
            return Err(io::Error::other("decompression limit exceeded"));
        }
        Ok(n)
    }
}

/// Opens an untrusted archive held in memory. See the module docs for what is accepted.
pub fn open(archive: &[u8], limits: &Limits) -> Result<OpenedBundle, OpenError> {
    if archive.len() as u64 > limits.max_archive_size {
        return Err(OpenError::ArchiveTooLarge {
            size: archive.len() as u64,
            limit: limits.max_archive_size,
        });
    }
    let tripped = Rc::new(Cell::new(None));
    let metered = Metered {
        inner: GzDecoder::new(archive),
        read: 0,
        max_total: limits.max_tar_stream(),
        max_ratio_bytes: (archive.len() as u64).saturating_mul(limits.max_compression_ratio),
        ratio_floor: limits.ratio_floor,
        ratio: limits.max_compression_ratio,
        tripped: Rc::clone(&tripped),
    };
    let io_err = |at: Option<&str>, source: io::Error| match tripped.get() {
        Some(Tripped::Total(limit)) => OpenError::Bomb {
            what: "total size",
            limit,
            at: at.map(str::to_string),
        },
        Some(Tripped::Ratio(limit)) => OpenError::Bomb {
            what: "compression ratio",
            limit,
            at: at.map(str::to_string),
        },
        None => OpenError::Corrupt {
            at: at.map(str::to_string),
            source,
        },
    };

    let mut ar = tar::Archive::new(metered);
    let mut state = Walk::new(limits);
    {
        let entries = ar.entries().map_err(|e| io_err(None, e))?.raw(true);
        for entry in entries {
            let at = state.previous.clone();
            let entry = entry.map_err(|e| io_err(at.as_deref(), e))?;
            let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let r = state.entry(entry, &path);
            r.map_err(|e| match e {
                EntryFail::Io(source) => io_err(Some(&path), source),
                EntryFail::Rejected(err) => err,
            })?;
        }
    }
    let manifest = state.finish()?;

    // After the end marker only zero padding may follow, then the gzip member must end the input.
    let mut rest = ar.into_inner();
    let mut buf = [0u8; 8192];
    loop {
        let n = rest.read(&mut buf).map_err(|e| io_err(None, e))?;
        if n == 0 {
            break;
        }
        if buf[..n].iter().any(|b| *b != 0) {
            return Err(OpenError::TrailingData);
        }
    }
    // RFC 1952 §2.2: a second member would be concatenated data; the format allows one.
    if !rest.inner.into_inner().is_empty() {
        return Err(OpenError::TrailingData);
    }

    let Walk {
        files,
        manifest_digest,
        ..
    } = state;
    Ok(OpenedBundle {
        digest: Sha256Digest::of(archive),
        manifest,
        manifest_digest: manifest_digest.unwrap_or(Sha256Digest([0; 32])),
        files,
    })
}

/// An entry failed either on I/O (mapped to corrupt/bomb by the caller) or on a check.
enum EntryFail {
    Io(io::Error),
    Rejected(OpenError),
}

impl From<OpenError> for EntryFail {
    fn from(e: OpenError) -> Self {
        Self::Rejected(e)
    }
}

/// Running state of the walk over entries.
struct Walk<'l> {
    limits: &'l Limits,
    manifest: Option<Manifest>,
    manifest_digest: Option<Sha256Digest>,
    files: BTreeMap<String, Vec<u8>>,
    seen: BTreeSet<String>,
    previous: Option<String>,
    total: u64,
    count: usize,
}

impl<'l> Walk<'l> {
    fn new(limits: &'l Limits) -> Self {
        Self {
            limits,
            manifest: None,
            manifest_digest: None,
            files: BTreeMap::new(),
            seen: BTreeSet::new(),
            previous: None,
            total: 0,
            count: 0,
        }
    }

    fn entry<R: Read>(
        &mut self,
        mut entry: tar::Entry<'_, R>,
        path: &str,
    ) -> Result<(), EntryFail> {
        let header = entry.header();
        let kind = header.entry_type();
        if !kind.is_file() {
            return Err(OpenError::UnsupportedEntryType {
                path: path.to_string(),
                kind: kind_name(kind),
            }
            .into());
        }
        let size = header.entry_size().map_err(EntryFail::Io)?;
        let bytes = entry.path_bytes();
        if self.manifest.is_none() {
            if bytes.as_ref() != MANIFEST_PATH.as_bytes() {
                crate::path::validate(path).map_err(|source| OpenError::InvalidPath {
                    path: path.to_string(),
                    source,
                })?;
                return Err(OpenError::ManifestNotFirst(path.to_string()).into());
            }
            if size > self.limits.max_manifest_size {
                return Err(OpenError::FileTooLarge {
                    path: path.to_string(),
                    size,
                    limit: self.limits.max_manifest_size,
                }
                .into());
            }
            let data = read_exact(&mut entry, size)?;
            let manifest = Manifest::from_canonical_json(&data).map_err(OpenError::from)?;
            if manifest.files.len() > self.limits.max_entries {
                return Err(OpenError::TooManyEntries {
                    path: MANIFEST_PATH.to_string(),
                    limit: self.limits.max_entries,
                }
                .into());
            }
            self.manifest_digest = Some(Sha256Digest::of(&data));
            self.manifest = Some(manifest);
            return Ok(());
        }
        if bytes.as_ref() == MANIFEST_PATH.as_bytes() {
            return Err(OpenError::DuplicateEntry(path.to_string()).into());
        }
        let bp = BundlePath::parse_bytes(&bytes).map_err(|source| OpenError::InvalidPath {
            path: path.to_string(),
            source,
        })?;
        let path = bp.as_str();
        if !self.seen.insert(path.to_string()) {
            return Err(OpenError::DuplicateEntry(path.to_string()).into());
        }
        self.count += 1;
        if self.count > self.limits.max_entries {
            return Err(OpenError::TooManyEntries {
                path: path.to_string(),
                limit: self.limits.max_entries,
            }
            .into());
        }
        let Some(listed) = self.manifest.as_ref().and_then(|m| m.entry(path)).cloned() else {
            return Err(OpenError::UnlistedEntry(path.to_string()).into());
        };
        if let Some(prev) = &self.previous
            && prev.as_bytes() > path.as_bytes()
        {
            return Err(OpenError::OutOfOrder {
                path: path.to_string(),
                previous: prev.clone(),
            }
            .into());
        }
        if size > self.limits.max_file_size {
            return Err(OpenError::FileTooLarge {
                path: path.to_string(),
                size,
                limit: self.limits.max_file_size,
            }
            .into());
        }
        self.total = self.total.saturating_add(size);
        if self.total > self.limits.max_total_size {
            return Err(OpenError::TotalTooLarge {
                path: path.to_string(),
                limit: self.limits.max_total_size,
            }
            .into());
        }
        if size != listed.size {
            return Err(OpenError::SizeMismatch {
                path: path.to_string(),
                expected: listed.size,
                actual: size,
            }
            .into());
        }
        let data = read_exact(&mut entry, size)?;
        let actual = Sha256Digest::of(&data);
        if actual != listed.sha256 {
            return Err(OpenError::DigestMismatch {
                path: path.to_string(),
                expected: listed.sha256,
                actual,
            }
            .into());
        }
        self.previous = Some(path.to_string());
        self.files.insert(path.to_string(), data);
        Ok(())
    }

    fn finish(&mut self) -> Result<Manifest, OpenError> {
        let manifest = self.manifest.take().ok_or(OpenError::ManifestMissing)?;
        if let Some(missing) = manifest
            .files
            .iter()
            .find(|f| !self.files.contains_key(&f.path))
        {
            return Err(OpenError::MissingEntry(missing.path.clone()));
        }
        Ok(manifest)
    }
}

/// Reads exactly `size` bytes of an entry whose size was already checked against the limits.
fn read_exact<R: Read>(entry: &mut R, size: u64) -> Result<Vec<u8>, EntryFail> {
    // The header size is untrusted until the data arrives: bound the up-front allocation.
    let mut data = Vec::with_capacity(size.min(1 << 20) as usize);
    entry
        .take(size)
        .read_to_end(&mut data)
        .map_err(EntryFail::Io)?;
    if data.len() as u64 != size {
        return Err(EntryFail::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "entry data truncated",
        )));
    }
    Ok(data)
}

/// A readable name for a tar entry type.
fn kind_name(kind: tar::EntryType) -> String {
    use tar::EntryType as T;
    match kind {
        T::Symlink => "symlink".into(),
        T::Link => "hardlink".into(),
        T::Char => "character device".into(),
        T::Block => "block device".into(),
        T::Directory => "directory".into(),
        T::Fifo => "fifo".into(),
        T::Continuous => "contiguous file".into(),
        T::GNULongName => "GNU long-name extension".into(),
        T::GNULongLink => "GNU long-link extension".into(),
        T::GNUSparse => "GNU sparse file".into(),
        T::XGlobalHeader => "PAX global header".into(),
        T::XHeader => "PAX extended header".into(),
        other => format!("unknown ({:?})", other.as_byte() as char),
    }
}
