#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data)
        && let Ok(c) = pf_ledger::checkpoint::Checkpoint::parse_body(s)
    {
        assert_eq!(c.body(), s);
    }
});
