//! Decoding AdmissionReview bodies (`admission.k8s.io/v1`) under limits, and encoding responses.

use base64::Engine as _;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};

/// Largest AdmissionReview body accepted (the API server caps objects at ~3 MiB; reviews carry
/// the object and the old object).
pub const MAX_REVIEW_BYTES: usize = 7 * 1024 * 1024;

/// The only AdmissionReview API version served.
pub const API_VERSION: &str = "admission.k8s.io/v1";

/// Why a body is not a usable AdmissionReview.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Body over [`MAX_REVIEW_BYTES`].
    #[error("AdmissionReview body is {0} bytes, over the {MAX_REVIEW_BYTES}-byte limit")]
    TooLarge(usize),
    /// Not JSON of the AdmissionReview shape.
    #[error("malformed AdmissionReview: {0}")]
    Malformed(String),
    /// `kind` is not `AdmissionReview`.
    #[error("kind is {0:?}, expected \"AdmissionReview\"")]
    WrongKind(String),
    /// `apiVersion` is not `admission.k8s.io/v1`.
    #[error("apiVersion {0:?} is not supported (only {API_VERSION})")]
    WrongVersion(String),
    /// No `request`.
    #[error("AdmissionReview has no request")]
    NoRequest,
    /// Empty `request.uid`.
    #[error("AdmissionReview request has an empty uid")]
    NoUid,
}

/// Decodes an AdmissionReview request body. Total: never panics on any input.
pub fn decode_review(body: &[u8]) -> Result<AdmissionRequest<DynamicObject>, DecodeError> {
    if body.len() > MAX_REVIEW_BYTES {
        return Err(DecodeError::TooLarge(body.len()));
    }
    let review: AdmissionReview<DynamicObject> =
        serde_json::from_slice(body).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if review.types.kind != "AdmissionReview" {
        return Err(DecodeError::WrongKind(review.types.kind));
    }
    if review.types.api_version != API_VERSION {
        return Err(DecodeError::WrongVersion(review.types.api_version));
    }
    let req: AdmissionRequest<DynamicObject> =
        review.try_into().map_err(|_| DecodeError::NoRequest)?;
    if req.uid.is_empty() {
        return Err(DecodeError::NoUid);
    }
    Ok(req)
}

/// Serialises a response as an `admission.k8s.io/v1` AdmissionReview.
pub fn encode_response(resp: AdmissionResponse) -> Vec<u8> {
    let mut review = resp.into_review();
    review.types.api_version = API_VERSION.to_string();
    review.types.kind = "AdmissionReview".to_string();
    // The API server reads `patch` as Go []byte, i.e. base64; kube serialises a number array.
    let value = serde_json::to_value(&review).map(|mut v| {
        if let Some(p) = v.pointer_mut("/response/patch")
            && let Some(arr) = p.as_array()
        {
            let bytes: Vec<u8> = arr
                .iter()
                .filter_map(|b| b.as_u64())
                .map(|b| b as u8)
                .collect();
            *p = serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(bytes));
        }
        v
    });
    // Serialising these plain structs cannot fail; fall back to a fixed deny just in case.
    value.and_then(|v| serde_json::to_vec(&v)).unwrap_or_else(|_| {
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"","allowed":false,"status":{"message":"internal error encoding the response"}}}"#.to_vec()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIN: &str = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u1","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"operation":"CREATE","userInfo":{},"namespace":"n","name":"p","object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"}},"dryRun":false}}"#;

    #[test]
    fn decodes_minimal_review() {
        let r = decode_review(MIN.as_bytes()).expect("decode");
        assert_eq!(r.uid, "u1");
        assert_eq!(r.kind.kind, "Pod");
    }

    #[test]
    fn rejects_wrong_version_kind_and_missing_request() {
        let v1beta1 = MIN.replace("admission.k8s.io/v1", "admission.k8s.io/v1beta1");
        assert!(matches!(
            decode_review(v1beta1.as_bytes()),
            Err(DecodeError::WrongVersion(_))
        ));
        let kind = MIN.replace("\"AdmissionReview\"", "\"Pod\"");
        assert!(matches!(
            decode_review(kind.as_bytes()),
            Err(DecodeError::WrongKind(_))
        ));
        let noreq = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#;
        assert_eq!(
            decode_review(noreq.as_bytes()).err(),
            Some(DecodeError::NoRequest)
        );
        let nouid = MIN.replace("\"u1\"", "\"\"");
        assert_eq!(
            decode_review(nouid.as_bytes()).err(),
            Some(DecodeError::NoUid)
        );
        assert!(matches!(
            decode_review(b"{"),
            Err(DecodeError::Malformed(_))
        ));
        let big = vec![b' '; MAX_REVIEW_BYTES + 1];
        assert!(matches!(decode_review(&big), Err(DecodeError::TooLarge(_))));
    }

    #[test]
    fn response_is_v1_review_with_uid() {
        let r = decode_review(MIN.as_bytes()).expect("decode");
        let out = encode_response(AdmissionResponse::from(&r).deny("nope"));
        let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(v["apiVersion"], API_VERSION);
        assert_eq!(v["response"]["uid"], "u1");
        assert_eq!(v["response"]["allowed"], false);
        assert_eq!(v["response"]["status"]["message"], "nope");
    }

    proptest! {
        // The decoder is total: arbitrary bytes and mutated valid reviews never panic.
        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_review(&bytes);
        }

        #[test]
        fn mutated_reviews_never_panic(pos in 0usize..MIN.len(), b in any::<u8>()) {
            let mut v = MIN.as_bytes().to_vec();
            v[pos] = b;
            let _ = decode_review(&v);
        }
    }
}
