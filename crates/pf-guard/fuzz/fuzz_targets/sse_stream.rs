//! The SSE parser on arbitrary bytes fed in arbitrary pieces: never panics, never emits an
//! event larger than its limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pf_guard::sse::Parser;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let at = (split as usize).min(rest.len());
    let mut parser = Parser::new(4096);
    let mut events = Vec::new();
    if parser.feed(&rest[..at], &mut events).is_ok() {
        let _ = parser.feed(&rest[at..], &mut events);
    }
    for e in &events {
        assert!(e.data.len() <= 4096);
    }
    let _ = parser.finish();
});
