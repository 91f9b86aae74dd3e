//! The user's request on MCP paths. MCP carries tool traffic only, so information-flow rules
//! with `unless: [user_request]` would have nothing to compare with; the host (the agent
//! runtime, which sees the user's turn) can pass it to the guard in one of two ways:
//!
//! - the HTTP header `x-pf-user-request` on a Streamable HTTP request (the value is the text,
//!   percent-encoded as UTF-8 like JavaScript's `encodeURIComponent`, so any text fits a header);
//! - `params._meta["provability-fabric/user-request"]` (a JSON string) on `tools/call`, on stdio
//!   and HTTP alike.
//!
//! Either is trusted as text the user wrote only when the guard is started with
//! `--trust-user-request` (the model cannot set headers or `_meta`, but anyone who can reach the
//! guard can, so the operator decides). Untrusted values are ignored. The `_meta` entry is
//! always removed before the call reaches the server, and the header is never forwarded.

use axum::http::{HeaderMap, HeaderName};
use serde_json::Value;

use crate::enforcer::Enforcer;
use crate::mcp::McpSession;

/// Header carrying the user's request (percent-encoded UTF-8).
pub const USER_REQUEST_HEADER: HeaderName = HeaderName::from_static("x-pf-user-request");
/// `_meta` key of `tools/call` params carrying the user's request.
pub const USER_REQUEST_META: &str = "provability-fabric/user-request";
/// Longest user request accepted, in bytes after decoding.
pub const MAX_USER_REQUEST: usize = 64 * 1024;

/// Why a passed user request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserTurnError {
    /// Not valid percent-encoding of UTF-8 text.
    #[error("`{USER_REQUEST_HEADER}` must be percent-encoded UTF-8 text")]
    Encoding,
    /// `_meta` entry that is not a string.
    #[error("`_meta.{USER_REQUEST_META}` must be a string")]
    NotText,
    /// Longer than [`MAX_USER_REQUEST`].
    #[error("the user request exceeds {MAX_USER_REQUEST} bytes")]
    TooLong,
}

/// The user's request from the headers of an HTTP request (`None` when absent).
pub fn from_headers(headers: &HeaderMap) -> Result<Option<String>, UserTurnError> {
    let Some(v) = headers.get(USER_REQUEST_HEADER) else {
        return Ok(None);
    };
    percent_decode(v.as_bytes()).map(Some)
}

/// Feeds the user's request of an HTTP request's headers to `session` when it trusts the host;
/// a malformed header is an error only then (an untrusted one is ignored).
pub fn feed_header<E: Enforcer>(
    session: &mut McpSession<E>,
    headers: &HeaderMap,
) -> Result<(), UserTurnError> {
    if !headers.contains_key(USER_REQUEST_HEADER) {
        return Ok(());
    }
    if !session.trusts_user_request() {
        tracing::warn!(
            "ignored `{USER_REQUEST_HEADER}`: the guard does not trust the host's user requests"
        );
        return Ok(());
    }
    if let Some(text) = from_headers(headers)? {
        session.user_request(&text);
    }
    Ok(())
}

/// Removes the user's request from `tools/call` params (always: it is addressed to the guard,
/// not the server) and returns it (`None` when absent).
pub fn take_from_params(params: &mut Value) -> Result<Option<String>, UserTurnError> {
    let Some(meta) = params.get_mut("_meta").and_then(Value::as_object_mut) else {
        return Ok(None);
    };
    let taken = meta.remove(USER_REQUEST_META);
    if meta.is_empty()
        && let Some(p) = params.as_object_mut()
    {
        p.remove("_meta");
    }
    match taken {
        None => Ok(None),
        Some(Value::String(s)) if s.len() <= MAX_USER_REQUEST => Ok(Some(s)),
        Some(Value::String(_)) => Err(UserTurnError::TooLong),
        Some(_) => Err(UserTurnError::NotText),
    }
}

/// Decodes `%XX` escapes (RFC 3986 §2.1) into UTF-8 text; other bytes stand for themselves.
pub fn percent_decode(raw: &[u8]) -> Result<String, UserTurnError> {
    if raw.len() > MAX_USER_REQUEST * 3 {
        return Err(UserTurnError::TooLong);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'%' => {
                let hex = raw.get(i + 1..i + 3).ok_or(UserTurnError::Encoding)?;
                let hi = hex_val(hex[0]).ok_or(UserTurnError::Encoding)?;
                let lo = hex_val(hex[1]).ok_or(UserTurnError::Encoding)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    if out.len() > MAX_USER_REQUEST {
        return Err(UserTurnError::TooLong);
    }
    String::from_utf8(out).map_err(|_| UserTurnError::Encoding)
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use proptest::prelude::*;
    use serde_json::json;

    fn encode(s: &str) -> String {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    }

    #[test]
    fn header_is_decoded() {
        let mut h = HeaderMap::new();
        assert_eq!(from_headers(&h), Ok(None));
        h.insert(
            USER_REQUEST_HEADER,
            HeaderValue::from_static("E-mail%20b%C3%A9a%40example.com please"),
        );
        assert_eq!(
            from_headers(&h),
            Ok(Some("E-mail béa@example.com please".into()))
        );
        for bad in ["%", "%4", "%zz", "%C3"] {
            assert_eq!(
                percent_decode(bad.as_bytes()),
                Err(UserTurnError::Encoding),
                "{bad}"
            );
        }
    }

    #[test]
    fn meta_is_taken_out_of_the_params() {
        let mut p = json!({"name": "t", "arguments": {}, "_meta": {USER_REQUEST_META: "hi", "progressToken": 1}});
        assert_eq!(take_from_params(&mut p), Ok(Some("hi".into())));
        assert_eq!(
            p,
            json!({"name": "t", "arguments": {}, "_meta": {"progressToken": 1}})
        );
        let mut p = json!({"name": "t", "_meta": {USER_REQUEST_META: "hi"}});
        assert_eq!(take_from_params(&mut p), Ok(Some("hi".into())));
        assert_eq!(p, json!({"name": "t"}));
        let mut p = json!({"name": "t", "_meta": {USER_REQUEST_META: 5}});
        assert_eq!(take_from_params(&mut p), Err(UserTurnError::NotText));
        assert_eq!(p, json!({"name": "t"}), "removed even when refused");
    }

    proptest! {
        #[test]
        fn percent_encoding_round_trips(s in "\\PC{0,64}") {
            prop_assert_eq!(percent_decode(encode(&s).as_bytes()), Ok(s));
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = percent_decode(&b);
        }
    }
}
