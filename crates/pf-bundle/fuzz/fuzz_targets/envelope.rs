//! Fuzz the DSSE envelope and in-toto statement parsers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pf_bundle::sign::BundlePredicate;
use pf_bundle::{BUNDLE_PREDICATE_TYPE, Envelope, Statement};

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = Envelope::from_json(data) {
        let _ = Statement::<BundlePredicate>::from_payload(&env.payload, BUNDLE_PREDICATE_TYPE);
    }
    let _ = Statement::<BundlePredicate>::from_payload(data, BUNDLE_PREDICATE_TYPE);
});
