#![no_main]
//! Problem parser: any bytes must give a Problem or a typed error, never a panic.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = pf_reach::Problem::from_json_str(s, "fuzz.json", None);
    }
});
