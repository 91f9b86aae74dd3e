//! The fuzz targets' entry points over arbitrary input (what CI runs without nightly): parsers
//! return errors, never panic, and whatever they accept round-trips.

use pf_ledger::checkpoint::Checkpoint;
use pf_ledger::note::{Note, SignerKey, VerifierKey};
use pf_ledger::tiles::{TileId, encode_bundle, parse_bundle};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn note_parser(data in proptest::collection::vec(any::<u8>(), 0..400), text in "[a-z\n\u{2014} +/=A-Z0-9]{0,200}") {
        for input in [data.as_slice(), text.as_bytes()] {
            if let Ok(n) = Note::parse(input) {
                prop_assert_eq!(Note::parse(n.to_text().as_bytes()).ok(), Some(n));
            }
        }
        let _ = VerifierKey::parse(&text);
        let _ = SignerKey::parse(&text);
    }

    #[test]
    fn checkpoint_parser(text in "[a-z0-9\n/+=]{0,120}") {
        if let Ok(c) = Checkpoint::parse_body(&text) {
            prop_assert_eq!(c.body(), text);
        }
    }

    #[test]
    fn tile_path_parser(text in "tile/(entries|[0-9]{1,3})/(x[0-9]{3}/){0,3}[0-9]{1,4}(\\.p/[0-9]{1,4})?") {
        if let Ok(t) = TileId::parse(&text) {
            prop_assert_eq!(t.path(), text);
        }
    }

    #[test]
    fn bundle_parser(width in 1u16..=256, data in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(entries) = parse_bundle(&TileId::entries(0, width), &data) {
            prop_assert_eq!(encode_bundle(&entries).ok(), Some(data));
        }
    }

    #[test]
    fn record_parser(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(v) = pf_ledger::record::parse_json(&data) {
            let _ = pf_ledger::record::prepare(v, &[], 65535);
        }
    }
}
