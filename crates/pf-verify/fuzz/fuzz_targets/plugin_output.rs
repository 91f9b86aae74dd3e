#![no_main]
//! Untrusted plugin output: parsing it as a CheckReport must never panic.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<pf_verify::CheckReport>(data);
});
