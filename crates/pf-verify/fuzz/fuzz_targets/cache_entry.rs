#![no_main]
//! Untrusted cache bytes: unseal must never panic and never accept an entry for another key.
use libfuzzer_sys::fuzz_target;
use pf_bundle::Sha256Digest;

fuzz_target!(|data: &[u8]| {
    let key = pf_verify::cache_key("c", "1", &Sha256Digest::of(b"fixed"));
    if let Some(entry) = pf_verify::cache::unseal(&key, data) {
        assert!(entry.report.verdict.is_proved() || entry.report.verdict.status() == "refuted");
    }
});
