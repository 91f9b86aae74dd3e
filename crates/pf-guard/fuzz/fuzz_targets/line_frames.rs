//! `lines::next_frame` on arbitrary bytes with a small line limit and read buffer: never panics,
//! never yields a line over the limit, and accounts for every input byte; each line then goes
//! through `jsonrpc::parse` as the stdio guard does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pf_guard::jsonrpc;
use pf_guard::lines::{Frame, next_frame};

fuzz_target!(|data: &[u8]| {
    let Some((&shape, input)) = data.split_first() else {
        return;
    };
    let max = usize::from(shape & 0x3f) + 1;
    let capacity = usize::from(shape >> 6) * 3 + 1;
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().build() else {
        return;
    };
    rt.block_on(async {
        let mut reader = tokio::io::BufReader::with_capacity(capacity, input);
        let mut accounted = 0usize;
        loop {
            match next_frame(&mut reader, max).await {
                Ok(Frame::Line(line)) => {
                    assert!(line.len() <= max);
                    // The line, maybe a stripped `\r`, and its `\n`.
                    accounted += line.len() + 1;
                    if input.get(accounted - 1) != Some(&b'\n') {
                        accounted += 1;
                    }
                    let _ = jsonrpc::parse(&line);
                }
                Ok(Frame::TooLong(n)) => {
                    assert!(n > max);
                    accounted += n;
                    if accounted < input.len() {
                        accounted += 1;
                    }
                }
                Ok(Frame::Eof { partial }) => {
                    assert!(partial.len() <= max);
                    assert_eq!(accounted + partial.len(), input.len());
                    break;
                }
                Err(e) => panic!("reading a slice cannot fail: {e}"),
            }
        }
    });
});
