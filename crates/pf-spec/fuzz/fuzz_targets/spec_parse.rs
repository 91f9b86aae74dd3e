//! Fuzz the spec reader: any bytes must give a spec or located diagnostics, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(spec) = pf_spec::parse_str("fuzz.yaml", text) {
            let _ = pf_spec::lint(&spec, "fuzz.yaml", text, None);
            let _ = pf_spec::digest(&spec);
            let _ = pf_spec::to_yaml(&spec);
        }
    }
});
