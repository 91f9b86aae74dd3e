#![no_main]
//! The export readers (NDJSON and text) must never panic on arbitrary input.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = pf_lean::parse::parse_export(text);
    }
});
