#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = pf_ledger::record::parse_json(data) {
        let _ = pf_ledger::record::prepare(v, &[], 65535);
    }
});
