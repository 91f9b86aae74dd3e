#![no_main]
use libfuzzer_sys::fuzz_target;
use pf_ledger::tiles::{TileId, encode_bundle, parse_bundle};

fuzz_target!(|data: &[u8]| {
    let width = data.first().map_or(1, |w| u16::from(*w).clamp(1, 256));
    let t = TileId::entries(0, width);
    if let Ok(entries) = parse_bundle(&t, data.get(1..).unwrap_or_default()) {
        assert_eq!(encode_bundle(&entries).ok().as_deref(), data.get(1..));
    }
});
