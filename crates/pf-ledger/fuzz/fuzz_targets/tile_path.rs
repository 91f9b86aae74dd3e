#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data)
        && let Ok(t) = pf_ledger::tiles::TileId::parse(s)
    {
        assert_eq!(t.path(), s);
    }
});
