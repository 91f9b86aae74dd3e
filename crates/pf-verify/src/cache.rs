//! Result cache: verdicts keyed by sha256(checker name, checker version, obligation inputs).
//!
//! Only decided verdicts (`proved`, `refuted`) are stored: `unknown` and `error` depend on time
//! budgets and the machine, so they are always recomputed. Every entry carries a digest over its
//! own key and content; an entry whose digest does not match (truncated, bit-flipped, edited, or
//! copied under another key) is reported as [`Lookup::Corrupt`], removed and recomputed.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use pf_bundle::Sha256Digest;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::verdict::CheckReport;

/// Largest cache entry read, in bytes (a verdict with evidence is small).
pub const MAX_ENTRY_BYTES: u64 = 4 * 1024 * 1024;

/// The cache key of an obligation checked by `checker` at `version`.
pub fn cache_key(checker: &str, version: &str, inputs_digest: &Sha256Digest) -> Sha256Digest {
    let mut h = Sha256::new();
    for field in [
        b"pf-verify/cache/v1".as_slice(),
        checker.as_bytes(),
        version.as_bytes(),
        &inputs_digest.0,
    ] {
        h.update((field.len() as u64).to_le_bytes());
        h.update(field);
    }
    Sha256Digest(h.finalize().into())
}

/// A stored result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheEntry {
    /// Checker name.
    pub checker: String,
    /// Checker version.
    pub version: String,
    /// The report.
    pub report: CheckReport,
}

/// The on-disk (and in-table) envelope of an entry: key, entry, and a digest over both.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedEntry {
    /// Cache key, hex.
    pub key: String,
    /// The entry.
    pub entry: CacheEntry,
    /// sha256 over `key` and the entry's JSON, hex.
    pub digest: String,
}

/// Serialises `entry` under `key` with its self-digest.
pub fn seal(key: &Sha256Digest, entry: &CacheEntry) -> Vec<u8> {
    let sealed = SealedEntry {
        key: key.to_hex(),
        entry: entry.clone(),
        digest: entry_digest(key, entry).to_hex(),
    };
    serde_json::to_vec(&sealed).unwrap_or_default()
}

/// Parses sealed bytes and checks them against `key`; `None` when anything does not match.
pub fn unseal(key: &Sha256Digest, bytes: &[u8]) -> Option<CacheEntry> {
    let sealed: SealedEntry = serde_json::from_slice(bytes).ok()?;
    if sealed.key != key.to_hex() || sealed.digest != entry_digest(key, &sealed.entry).to_hex() {
        return None;
    }
    if !matches!(
        sealed.entry.report.verdict,
        crate::Verdict::Proved | crate::Verdict::Refuted { .. }
    ) {
        return None;
    }
    Some(sealed.entry)
}

fn entry_digest(key: &Sha256Digest, entry: &CacheEntry) -> Sha256Digest {
    let mut h = Sha256::new();
    h.update(b"pf-verify/cache-entry/v1\0");
    h.update(key.0);
    h.update(serde_json::to_vec(entry).unwrap_or_default());
    Sha256Digest(h.finalize().into())
}

/// Result of a cache lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// A valid entry.
    Hit(CacheEntry),
    /// Nothing stored.
    Miss,
    /// Something stored that failed its digest check (it has been discarded).
    Corrupt,
}

/// Where results are kept.
pub trait CacheStore: Send + Sync {
    /// Looks `key` up.
    fn get(&self, key: &Sha256Digest) -> Lookup;
    /// Stores a decided result; failures are counted, never fatal (the cache is an optimisation).
    fn put(&self, key: &Sha256Digest, entry: &CacheEntry);
}

/// Files under a directory: `DIR/ab/abcdef….json`, written to a temporary file and renamed so a
/// reader never sees half an entry.
#[derive(Debug)]
pub struct FileCache {
    dir: PathBuf,
    write_failures: AtomicU64,
}

impl FileCache {
    /// A cache rooted at `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            write_failures: AtomicU64::new(0),
        }
    }

    /// The file holding `key`.
    pub fn path_of(&self, key: &Sha256Digest) -> PathBuf {
        let hex = key.to_hex();
        self.dir.join(&hex[..2]).join(format!("{hex}.json"))
    }

    /// Writes that failed since start.
    pub fn write_failures(&self) -> u64 {
        self.write_failures.load(Ordering::Relaxed)
    }

    fn write(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let parent = path.parent().unwrap_or(&self.dir);
        fs::create_dir_all(parent)?;
        let tmp = parent.join(format!(
            ".tmp-{}-{:?}-{}",
            std::process::id(),
            std::thread::current().id(),
            path.file_name().and_then(|n| n.to_str()).unwrap_or("entry")
        ));
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)
    }
}

impl CacheStore for FileCache {
    fn get(&self, key: &Sha256Digest) -> Lookup {
        let path = self.path_of(key);
        let Ok(meta) = fs::metadata(&path) else {
            return Lookup::Miss;
        };
        if meta.len() > MAX_ENTRY_BYTES {
            let _ = fs::remove_file(&path);
            return Lookup::Corrupt;
        }
        match fs::read(&path) {
            Ok(bytes) => match unseal(key, &bytes) {
                Some(entry) => Lookup::Hit(entry),
                None => {
                    let _ = fs::remove_file(&path);
                    Lookup::Corrupt
                }
            },
            Err(_) => Lookup::Miss,
        }
    }

    fn put(&self, key: &Sha256Digest, entry: &CacheEntry) {
        if self.write(&self.path_of(key), &seal(key, entry)).is_err() {
            self.write_failures.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Verdict;

    fn entry() -> CacheEntry {
        CacheEntry {
            checker: "c".into(),
            version: "1".into(),
            report: CheckReport::new(Verdict::Proved),
        }
    }

    #[test]
    fn key_changes_with_checker_version_and_inputs() {
        let d = Sha256Digest::of(b"in");
        let k = cache_key("c", "1", &d);
        assert_ne!(k, cache_key("c", "2", &d));
        assert_ne!(k, cache_key("d", "1", &d));
        assert_ne!(k, cache_key("c", "1", &Sha256Digest::of(b"other")));
        // Field boundaries matter: ("ab","c") and ("a","bc") differ.
        assert_ne!(cache_key("ab", "c", &d), cache_key("a", "bc", &d));
    }

    #[test]
    fn round_trip_and_tamper_detection() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let cache = FileCache::new(dir.path());
        let key = cache_key("c", "1", &Sha256Digest::of(b"x"));
        assert_eq!(cache.get(&key), Lookup::Miss);
        cache.put(&key, &entry());
        assert_eq!(cache.get(&key), Lookup::Hit(entry()));

        // Flip the verdict without fixing the digest.
        let path = cache.path_of(&key);
        let text = fs::read_to_string(&path).unwrap_or_default();
        let forged = text.replace(r#""status":"proved""#, r#""status":"refuted","evidence":1"#);
        assert_ne!(text, forged);
        fs::write(&path, forged).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cache.get(&key), Lookup::Corrupt);
        assert!(!path.exists(), "corrupt entry is removed");
    }

    #[test]
    fn entry_moved_under_another_key_is_rejected() {
        let k1 = cache_key("c", "1", &Sha256Digest::of(b"x"));
        let k2 = cache_key("c", "1", &Sha256Digest::of(b"y"));
        assert!(unseal(&k1, &seal(&k1, &entry())).is_some());
        assert!(unseal(&k2, &seal(&k1, &entry())).is_none());
    }

    #[test]
    fn undecided_verdicts_are_never_served() {
        let k = cache_key("c", "1", &Sha256Digest::of(b"x"));
        let mut e = entry();
        e.report.verdict = Verdict::unknown("timeout");
        assert!(unseal(&k, &seal(&k, &e)).is_none());
    }
}
