//! One HTTP/1.1 message read off a raw socket, for tests that play a client or a server by hand
//! (a webhook receiver, an upstream that must answer in a set way, a client of the guard): the
//! start line, the header fields and a `content-length` body. Not a general parser: no chunked
//! bodies, which the tests' peers never send.

use std::io::{self, BufRead};

/// One HTTP/1.1 message.
#[derive(Debug, Clone)]
pub struct Message {
    /// The request line or status line, without its line ending.
    pub start: String,
    /// Header fields in the order sent, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body: `content-length` bytes (none without the field).
    pub body: Vec<u8>,
}

impl Message {
    /// The first value of header field `name` (compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one message from `r`; `Ok(None)` when the stream ends before it starts. A stream that
/// ends inside a message, a field without a colon or an unreadable `content-length` is an error.
pub fn read_message(r: &mut impl BufRead) -> io::Result<Option<Message>> {
    let mut start = String::new();
    if r.read_line(&mut start)? == 0 {
        return Ok(None);
    }
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, format!("not a field: {line:?}"))
        })?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let mut message = Message {
        start: start.trim_end_matches(['\r', '\n']).to_string(),
        headers,
        body: Vec::new(),
    };
    if let Some(len) = message.header("content-length") {
        let len: usize = len.parse().map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidData, format!("content-length: {e}"))
        })?;
        message.body = vec![0; len];
        r.read_exact(&mut message.body)?;
    }
    Ok(Some(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_with_a_body_then_a_clean_end() {
        let mut r: &[u8] =
            b"POST /mcp HTTP/1.1\r\nHost: a:1\r\nContent-Length: 4\r\nX: y: z\r\n\r\nbodyGET / HTTP/1.1\r\n\r\n";
        let m = read_message(&mut r).expect("read").expect("a message");
        assert_eq!(m.start, "POST /mcp HTTP/1.1");
        assert_eq!(m.header("host"), Some("a:1"));
        assert_eq!(m.header("x"), Some("y: z"));
        assert_eq!(m.body, b"body");
        let m = read_message(&mut r)
            .expect("read")
            .expect("a second message");
        assert_eq!(m.start, "GET / HTTP/1.1");
        assert!(m.body.is_empty());
        assert!(read_message(&mut r).expect("read").is_none());
    }

    #[test]
    fn truncated_or_malformed_messages_are_errors() {
        for bad in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nabc"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n",
        ] {
            let mut r = bad;
            assert!(
                read_message(&mut r).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
