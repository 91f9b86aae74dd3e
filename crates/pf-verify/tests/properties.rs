//! Property tests: sealed cache entries reject every single-byte change; verdict JSON round-trips.

use pf_bundle::Sha256Digest;
use pf_verify::cache::{seal, unseal};
use pf_verify::{CacheEntry, CheckReport, Verdict, cache_key};
use proptest::prelude::*;

fn entry(refuted: bool, n: u64) -> CacheEntry {
    let verdict = if refuted {
        Verdict::Refuted {
            evidence: serde_json::json!({ "n": n }),
        }
    } else {
        Verdict::Proved
    };
    let mut report = CheckReport::new(verdict);
    report.statistics.insert("nodes".into(), n);
    CacheEntry {
        checker: "c".into(),
        version: "1.0.0".into(),
        report,
    }
}

proptest! {
    #[test]
    fn any_single_byte_change_is_detected(refuted: bool, n: u64, pos: usize, delta in 1u8..=255) {
        let key = cache_key("c", "1.0.0", &Sha256Digest::of(&n.to_le_bytes()));
        let e = entry(refuted, n);
        let mut bytes = seal(&key, &e);
        prop_assert_eq!(unseal(&key, &bytes), Some(e));
        let i = pos % bytes.len();
        bytes[i] = bytes[i].wrapping_add(delta);
        prop_assert_eq!(unseal(&key, &bytes), None);
    }

    #[test]
    fn unseal_never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let key = cache_key("c", "1", &Sha256Digest::of(b"x"));
        prop_assert!(unseal(&key, &bytes).is_none());
    }

    #[test]
    fn check_report_json_round_trips(refuted: bool, n: u64, axioms in proptest::collection::vec("[A-Za-z.]{1,12}", 0..4)) {
        let mut r = entry(refuted, n).report;
        r.axioms = Some(axioms);
        let text = serde_json::to_string(&r).expect("json");
        let back: CheckReport = serde_json::from_str(&text).expect("parse");
        prop_assert_eq!(back, r);
    }
}
