//! Newline-delimited frames with a size limit (MCP stdio transport framing).

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// One read from a newline-delimited stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A complete line, without its `\n` (and without a trailing `\r`).
    Line(Vec<u8>),
    /// A line longer than the limit; it was skipped up to its end.
    TooLong(usize),
    /// The stream ended; `partial` holds bytes after the last newline, if any (a cut message).
    Eof {
        /// Bytes of an unterminated final line.
        partial: Vec<u8>,
    },
}

/// Reads the next frame, never buffering more than `max` bytes of one line.
pub async fn next_frame<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    max: usize,
) -> std::io::Result<Frame> {
    let mut line = Vec::new();
    let mut skipped = 0usize;
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            if skipped > 0 {
                return Ok(Frame::TooLong(skipped));
            }
            return Ok(Frame::Eof { partial: line });
        }
        let (chunk, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        if skipped > 0 || line.len() + chunk.len() > max {
            skipped += line.len() + chunk.len();
            line.clear();
        } else {
            line.extend_from_slice(chunk);
        }
        let consumed = done.unwrap_or(buf.len());
        reader.consume(consumed);
        if done.is_some() {
            if skipped > 0 {
                return Ok(Frame::TooLong(skipped));
            }
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(Frame::Line(line));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn splits_lines_and_reports_cut_and_oversize_ones() {
        let data = b"one\r\ntwo\n0123456789ABCDEF\nthree\npart".to_vec();
        let mut r = tokio::io::BufReader::with_capacity(4, &data[..]);
        assert_eq!(
            next_frame(&mut r, 10).await.expect("io"),
            Frame::Line(b"one".to_vec())
        );
        assert_eq!(
            next_frame(&mut r, 10).await.expect("io"),
            Frame::Line(b"two".to_vec())
        );
        assert_eq!(
            next_frame(&mut r, 10).await.expect("io"),
            Frame::TooLong(16)
        );
        assert_eq!(
            next_frame(&mut r, 10).await.expect("io"),
            Frame::Line(b"three".to_vec())
        );
        assert_eq!(
            next_frame(&mut r, 10).await.expect("io"),
            Frame::Eof {
                partial: b"part".to_vec()
            }
        );
    }
}
