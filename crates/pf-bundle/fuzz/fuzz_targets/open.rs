//! Fuzz the bundle unpacker: arbitrary bytes, and arbitrary bytes gzip-wrapped so the tar and
//! manifest layers are reached. Run: `cargo +nightly fuzz run open` in crates/pf-bundle/fuzz.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use pf_bundle::{Limits, open};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_total_size: 1 << 20,
        max_file_size: 1 << 20,
        max_archive_size: 1 << 20,
        ..Limits::default()
    };
    let _ = open(data, &limits);
    // Wrap as gzip so mutations land in the tar stream rather than failing the CRC.
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    if enc.write_all(data).is_ok()
        && let Ok(gz) = enc.finish()
    {
        let _ = open(&gz, &limits);
    }
});
