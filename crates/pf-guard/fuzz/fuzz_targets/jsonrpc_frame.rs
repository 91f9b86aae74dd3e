//! JSON-RPC framing on arbitrary bytes: never panics; what parses re-encodes and parses again
//! to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pf_guard::jsonrpc;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = jsonrpc::parse(data) {
        let again = jsonrpc::parse(msg.to_value().to_string().as_bytes()).expect("re-encoded frame parses");
        assert_eq!(again, msg);
    }
});
