#![no_main]
//! The checker must never panic or hang on arbitrary input (fuel bounds every loop).

use libfuzzer_sys::fuzz_target;
use pf_lean::{Options, check::check_export_here};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let opts = Options { fuel: 100_000, trace: false, threads: 1 };
        let _ = check_export_here(text, &opts);
    }
});
