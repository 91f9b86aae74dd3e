//! Resource limits applied when building and opening bundles (defence against decompression bombs).

/// Size and count limits. Opening checks every one before reading the data it guards; building
/// checks them too, so a bundle that builds can always be opened with the same limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest compressed archive accepted, in bytes.
    pub max_archive_size: u64,
    /// Largest single file, in bytes (uncompressed).
    pub max_file_size: u64,
    /// Largest sum of all file sizes, in bytes (uncompressed).
    pub max_total_size: u64,
    /// Most files (manifest not counted).
    pub max_entries: usize,
    /// Largest manifest, in bytes.
    pub max_manifest_size: u64,
    /// Largest ratio of decompressed tar stream to compressed archive size...
    pub max_compression_ratio: u64,
    /// ...applied only once this many decompressed bytes have been read (small archives of
    /// repetitive text legitimately compress very well).
    pub ratio_floor: u64,
}

const MIB: u64 = 1024 * 1024;

impl Default for Limits {
    /// 256 MiB per file, 512 MiB in total, 10 000 files, ratio 200 beyond 4 MiB.
    fn default() -> Self {
        Self {
            max_archive_size: 512 * MIB,
            max_file_size: 256 * MIB,
            max_total_size: 512 * MIB,
            max_entries: 10_000,
            max_manifest_size: 4 * MIB,
            max_compression_ratio: 200,
            ratio_floor: 4 * MIB,
        }
    }
}

impl Limits {
    /// Upper bound on the decompressed tar stream implied by the limits: file data plus one
    /// 512-byte header and up to 511 padding bytes per entry, plus the 1024-byte end marker
    /// (POSIX.1-1988 ustar, `pax` spec "ustar Interchange Format").
    pub fn max_tar_stream(&self) -> u64 {
        let entries = self.max_entries as u64 + 1;
        self.max_total_size
            .saturating_add(self.max_manifest_size)
            .saturating_add(entries.saturating_mul(1024))
            .saturating_add(1024)
    }
}
