//! Fuzzes the AdmissionReview decoder: any bytes must decode or fail with a typed error, and a
//! decoded request must survive encoding an allow/deny response for it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pf_admission::review::{decode_review, encode_response};

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = decode_review(data) {
        assert!(!req.uid.is_empty());
        let resp = kube::core::admission::AdmissionResponse::from(&req).deny("fuzz");
        let _ = encode_response(resp);
    }
});
