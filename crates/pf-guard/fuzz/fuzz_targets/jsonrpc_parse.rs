//! `jsonrpc::parse` on arbitrary bytes: never panics; a message re-encodes to a frame that
//! parses to the same message; an error becomes a well-formed JSON-RPC error response.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pf_guard::jsonrpc::{self, ErrorCode};

fuzz_target!(|data: &[u8]| {
    match jsonrpc::parse(data) {
        Ok(msg) => {
            let frame = msg.to_value().to_string();
            assert_eq!(jsonrpc::parse(frame.as_bytes()).as_ref(), Ok(&msg));
        }
        Err(e) => {
            assert!(matches!(
                e.code,
                ErrorCode::ParseError | ErrorCode::InvalidRequest
            ));
            let response = e.to_response();
            assert_eq!(response["jsonrpc"], "2.0");
            assert_eq!(response["error"]["code"], e.code.code());
            assert!(matches!(
                jsonrpc::parse(response.to_string().as_bytes()),
                Ok(jsonrpc::Message::Response { outcome: Err(_), .. })
            ));
        }
    }
});
