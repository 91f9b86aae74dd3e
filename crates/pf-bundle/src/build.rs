//! Building a bundle: a deterministic gzip-compressed ustar archive, manifest first.
//!
//! Determinism: entries are written in byte order of their paths after the manifest; every header
//! is a plain ustar header (no PAX or GNU extensions) with mode 0644, uid/gid 0, empty user and
//! group names and mtime 0; the gzip header has mtime 0, no file name and OS byte 255 (RFC 1952
//! §2.3.1 "unknown"); the compression level is fixed. The same files therefore give the same bytes
//! whatever their order of insertion, timestamps, owners or permissions on disk.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use flate2::{Compression, GzBuilder};

use crate::digest::Sha256Digest;
use crate::limits::Limits;
use crate::manifest::{
    FileEntry, MANIFEST_FORMAT, Manifest, ManifestError, SpecRef, check_spec_field,
};
use crate::path::{BundlePath, MANIFEST_PATH, PathError, SPEC_PATH};

/// Compression level used for every bundle (part of the format: changing it changes digests).
pub const GZIP_LEVEL: u32 = 1;

/// Why a bundle could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A file path is not a valid bundle path.
    #[error("invalid bundle path {path:?}: {source}")]
    Path {
        /// Path given.
        path: String,
        /// Rule broken.
        source: PathError,
    },
    /// The same path was added twice.
    #[error("file {0:?} added twice")]
    Duplicate(String),
    /// No spec was added.
    #[error("no spec added (call `spec` or pass the spec file)")]
    NoSpec,
    /// Spec name or version invalid.
    #[error(transparent)]
    Spec(#[from] ManifestError),
    /// A limit would be exceeded (the bundle could not be opened).
    #[error("bundle exceeds a limit: {0}")]
    Limit(String),
    /// A referenced file resolves outside the bundle root (via `..` in a symlink target, say).
    #[error("{path:?} resolves to {resolved}, outside the bundle root {root}")]
    OutsideRoot {
        /// Relative path given.
        path: String,
        /// Where it resolves.
        resolved: PathBuf,
        /// The root.
        root: PathBuf,
    },
    /// A referenced path is not a regular file.
    #[error("{0} is not a regular file")]
    NotAFile(PathBuf),
    /// Reading a file failed.
    #[error("cannot read {path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
    /// Writing the archive failed.
    #[error("cannot write archive: {0}")]
    Write(#[from] io::Error),
}

/// A built bundle: archive bytes plus what was computed while building it.
#[derive(Debug, Clone)]
pub struct BuiltBundle {
    /// The `.pfb` archive.
    pub bytes: Vec<u8>,
    /// SHA-256 of `bytes`: the bundle digest.
    pub digest: Sha256Digest,
    /// The manifest stored in the archive.
    pub manifest: Manifest,
    /// SHA-256 of the manifest's canonical JSON.
    pub manifest_digest: Sha256Digest,
}

impl BuiltBundle {
    /// The conventional file name, `NAME-VERSION.pfb`.
    pub fn file_name(&self) -> String {
        self.manifest.bundle_file_name()
    }

    /// Writes the archive to `path` via a temporary file, fsync and rename, so a crash never
    /// leaves a partial bundle under the final name.
    pub fn write(&self, path: &Path) -> io::Result<()> {
        crate::write::write_atomic(path, &self.bytes)
    }
}

/// Collects files in memory and writes a deterministic bundle.
#[derive(Debug, Clone)]
pub struct BundleBuilder {
    name: String,
    version: String,
    files: BTreeMap<BundlePath, Vec<u8>>,
    limits: Limits,
}

impl BundleBuilder {
    /// Starts a bundle for the spec `name` at `version`.
    pub fn new(name: &str, version: &str) -> Result<Self, BuildError> {
        check_spec_field("name", name)?;
        check_spec_field("version", version)?;
        Ok(Self {
            name: name.to_string(),
            version: version.to_string(),
            files: BTreeMap::new(),
            limits: Limits::default(),
        })
    }

    /// Uses `limits` instead of [`Limits::default`].
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Adds the spec itself; it is stored as [`SPEC_PATH`].
    pub fn spec(&mut self, bytes: Vec<u8>) -> Result<&mut Self, BuildError> {
        self.add_file(SPEC_PATH, bytes)
    }

    /// Adds a file at bundle path `path` (normalised and validated with
    /// [`BundlePath::normalize`]).
    pub fn add_file(&mut self, path: &str, bytes: Vec<u8>) -> Result<&mut Self, BuildError> {
        let p = BundlePath::normalize(path).map_err(|source| BuildError::Path {
            path: path.to_string(),
            source,
        })?;
        if self.files.contains_key(&p) {
            return Err(BuildError::Duplicate(path.to_string()));
        }
        self.files.insert(p, bytes);
        Ok(self)
    }

    /// The manifest the bundle will carry.
    pub fn manifest(&self) -> Manifest {
        // BTreeMap<BundlePath> iterates in byte order of the path strings (String's Ord).
        let files = self
            .files
            .iter()
            .map(|(p, b)| FileEntry {
                path: p.as_str().to_string(),
                sha256: Sha256Digest::of(b),
                size: b.len() as u64,
            })
            .collect();
        Manifest {
            files,
            format: MANIFEST_FORMAT.to_string(),
            spec: SpecRef {
                file: SPEC_PATH.to_string(),
                name: self.name.clone(),
                version: self.version.clone(),
            },
        }
    }

    /// Writes the archive.
    pub fn build(&self) -> Result<BuiltBundle, BuildError> {
        if !self.files.keys().any(|p| p.as_str() == SPEC_PATH) {
            return Err(BuildError::NoSpec);
        }
        let manifest = self.manifest();
        manifest.check()?;
        self.check_limits(&manifest)?;
        let manifest_json = manifest.to_canonical_json();
        let total = manifest.total_size() as usize + manifest_json.len();
        let out = Vec::with_capacity(total / 2 + 4096);
        let gz = GzBuilder::new()
            .mtime(0)
            .operating_system(255)
            .write(out, Compression::new(GZIP_LEVEL));
        let mut tar = tar::Builder::new(gz);
        append(&mut tar, MANIFEST_PATH, &manifest_json)?;
        for (path, bytes) in &self.files {
            append(&mut tar, path.as_str(), bytes)?;
        }
        let gz = tar.into_inner()?;
        let bytes = gz.finish()?;
        let tar_len = tar_stream_len(&manifest, manifest_json.len());
        let l = &self.limits;
        if tar_len > l.ratio_floor
            && tar_len > (bytes.len() as u64).saturating_mul(l.max_compression_ratio)
        {
            return Err(BuildError::Limit(format!(
                "compression ratio {}:1 exceeds {}:1",
                tar_len / (bytes.len() as u64).max(1),
                l.max_compression_ratio
            )));
        }
        if bytes.len() as u64 > l.max_archive_size {
            return Err(BuildError::Limit(format!(
                "archive is {} bytes, limit {}",
                bytes.len(),
                l.max_archive_size
            )));
        }
        Ok(BuiltBundle {
            digest: Sha256Digest::of(&bytes),
            manifest_digest: Sha256Digest::of(&manifest_json),
            bytes,
            manifest,
        })
    }

    fn check_limits(&self, manifest: &Manifest) -> Result<(), BuildError> {
        let l = &self.limits;
        if manifest.files.len() > l.max_entries {
            return Err(BuildError::Limit(format!(
                "{} files, limit {}",
                manifest.files.len(),
                l.max_entries
            )));
        }
        if let Some(f) = manifest.files.iter().find(|f| f.size > l.max_file_size) {
            return Err(BuildError::Limit(format!(
                "{} is {} bytes, per-file limit {}",
                f.path, f.size, l.max_file_size
            )));
        }
        if manifest.total_size() > l.max_total_size {
            return Err(BuildError::Limit(format!(
                "files total {} bytes, limit {}",
                manifest.total_size(),
                l.max_total_size
            )));
        }
        let mlen = manifest.to_canonical_json().len() as u64;
        if mlen > l.max_manifest_size {
            return Err(BuildError::Limit(format!(
                "manifest is {mlen} bytes, limit {}",
                l.max_manifest_size
            )));
        }
        Ok(())
    }
}

/// Length of the uncompressed tar stream for `manifest` (headers, padded data, end marker).
fn tar_stream_len(manifest: &Manifest, manifest_len: usize) -> u64 {
    let padded = |n: u64| n.div_ceil(512) * 512;
    let files: u64 = manifest.files.iter().map(|f| 512 + padded(f.size)).sum();
    512 + padded(manifest_len as u64) + files + 1024
}

/// Appends one regular-file entry with the fixed header fields.
fn append<W: Write>(tar: &mut tar::Builder<W>, path: &str, bytes: &[u8]) -> Result<(), BuildError> {
    let mut h = tar::Header::new_ustar();
    // ustar stores long paths as prefix + name split at a '/'; this fails when no split fits.
    h.set_path(path).map_err(|_| BuildError::Path {
        path: path.to_string(),
        source: PathError::TooLong { len: path.len() },
    })?;
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(bytes.len() as u64);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_cksum();
    tar.append(&h, bytes)?;
    Ok(())
}

/// Builds a bundle from files on disk.
///
/// `spec_file` is the spec on disk (any name; stored as [`SPEC_PATH`]); `files` are paths relative
/// to `root` as the spec writes them, stored under their normalised form ([`BundlePath::normalize`]:
/// `./a//b` is `a/b`; the same file listed twice is packed once). Each must resolve (after
/// following symlinks) to a regular file inside `root`.
pub fn build_from_dir<S: AsRef<str>>(
    root: &Path,
    spec_file: &Path,
    files: &[S],
    name: &str,
    version: &str,
    limits: Limits,
) -> Result<BuiltBundle, BuildError> {
    let mut b = BundleBuilder::new(name, version)?.limits(limits);
    b.spec(read_file(spec_file, limits)?)?;
    let canon_root = fs::canonicalize(root).map_err(|source| BuildError::Read {
        path: root.to_path_buf(),
        source,
    })?;
    // Validate every spelling first so `..` and absolute paths never touch the file system.
    let mut wanted = std::collections::BTreeSet::new();
    for rel in files {
        let rel = rel.as_ref();
        let p = BundlePath::normalize(rel).map_err(|source| BuildError::Path {
            path: rel.to_string(),
            source,
        })?;
        wanted.insert(p);
    }
    for p in wanted {
        let rel = p.as_str();
        let joined = rel
            .split('/')
            .fold(canon_root.clone(), |acc, c| acc.join(c));
        let resolved = fs::canonicalize(&joined).map_err(|source| BuildError::Read {
            path: joined.clone(),
            source,
        })?;
        if !resolved.starts_with(&canon_root) {
            return Err(BuildError::OutsideRoot {
                path: rel.to_string(),
                resolved,
                root: canon_root,
            });
        }
        b.add_file(rel, read_file(&resolved, limits)?)?;
    }
    b.build()
}

/// Reads a regular file, refusing ones above the per-file limit before reading them.
fn read_file(path: &Path, limits: Limits) -> Result<Vec<u8>, BuildError> {
    let err = |source| BuildError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = fs::metadata(path).map_err(err)?;
    if !meta.is_file() {
        return Err(BuildError::NotAFile(path.to_path_buf()));
    }
    if meta.len() > limits.max_file_size {
        return Err(BuildError::Limit(format!(
            "{} is {} bytes, per-file limit {}",
            path.display(),
            meta.len(),
            limits.max_file_size
        )));
    }
    fs::read(path).map_err(err)
}
