//! Server-sent events: an incremental, size-limited parser and an encoder (WHATWG HTML Living
//! Standard §9.2 "Server-sent events", the framing MCP Streamable HTTP and OpenAI streaming use).

/// Largest event (all its `data` lines together) accepted, in bytes.
pub const MAX_EVENT_BYTES: usize = 8 * 1024 * 1024;

/// One dispatched event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    /// The `event:` field (`None` means the default type, `message`).
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The `id:` field, when the event set one.
    pub id: Option<String>,
    /// The `retry:` field (reconnection time in ms), when given.
    pub retry: Option<u64>,
}

/// Why a stream cannot be parsed further.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// One line or one event grew past the limit.
    #[error("server-sent event exceeds {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The stream is not UTF-8 (the standard decodes it as UTF-8; we refuse instead of guessing).
    #[error("server-sent event stream is not valid UTF-8")]
    InvalidUtf8,
}

/// Incremental parser: feed byte chunks as they arrive, take the events completed so far.
#[derive(Debug)]
pub struct Parser {
    line: Vec<u8>,
    pending: Event,
    has_data: bool,
    seen_field: bool,
    last_was_cr: bool,
    started: bool,
    limit: usize,
}

impl Default for Parser {
    fn default() -> Self {
        Parser::new(MAX_EVENT_BYTES)
    }
}

impl Parser {
    /// A parser that refuses lines or events over `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Parser {
            line: Vec::new(),
            pending: Event::default(),
            has_data: false,
            seen_field: false,
            last_was_cr: false,
            started: false,
            limit,
        }
    }

    /// Parses `chunk`, appending every event it completes to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<Event>) -> Result<(), SseError> {
        let mut rest = chunk;
        if !self.started && !rest.is_empty() {
            self.started = true;
            // §9.2.5: one leading U+FEFF BOM is ignored.
            if let Some(r) = rest.strip_prefix(b"\xEF\xBB\xBF".as_slice()) {
                rest = r;
            }
        }
        for &b in rest {
            match b {
                b'\n' if self.last_was_cr => self.last_was_cr = false,
                b'\n' | b'\r' => {
                    self.last_was_cr = b == b'\r';
                    let line = std::mem::take(&mut self.line);
                    self.line_done(&line, out)?;
                }
                _ => {
                    self.last_was_cr = false;
                    if self.line.len() >= self.limit {
                        return Err(SseError::TooLarge { limit: self.limit });
                    }
                    self.line.push(b);
                }
            }
        }
        Ok(())
    }

    /// The stream ended: §9.2.6 discards an event that was not terminated by a blank line.
    /// Returns whether such a cut event was pending (a stream cut mid-message).
    pub fn finish(self) -> bool {
        self.seen_field || !self.line.is_empty()
    }

    fn line_done(&mut self, line: &[u8], out: &mut Vec<Event>) -> Result<(), SseError> {
        if line.is_empty() {
            // §9.2.6 dispatch: an event without data is dropped (its id still counts).
            let event = std::mem::take(&mut self.pending);
            if self.has_data {
                out.push(event);
            }
            self.has_data = false;
            self.seen_field = false;
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(()); // comment (often a keep-alive)
        }
        let line = std::str::from_utf8(line).map_err(|_| SseError::InvalidUtf8)?;
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        self.seen_field = true;
        match field {
            "data" => {
                if self.pending.data.len() + value.len() + 1 > self.limit {
                    return Err(SseError::TooLarge { limit: self.limit });
                }
                if self.has_data {
                    self.pending.data.push('\n');
                }
                self.pending.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.pending.event = Some(value.to_string()),
            "id" if !value.contains('\0') => self.pending.id = Some(value.to_string()),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.pending.retry = value.parse().ok();
            }
            _ => {} // unknown fields are ignored (§9.2.6)
        }
        Ok(())
    }
}

/// Encodes an event; multi-line data becomes several `data:` lines.
pub fn encode(event: &Event) -> String {
    let mut s = String::with_capacity(event.data.len() + 32);
    if let Some(e) = &event.event {
        s.push_str("event: ");
        s.push_str(&single_line(e));
        s.push('\n');
    }
    if let Some(id) = &event.id {
        s.push_str("id: ");
        s.push_str(&single_line(id));
        s.push('\n');
    }
    if let Some(r) = event.retry {
        s.push_str(&format!("retry: {r}\n"));
    }
    for line in event.data.split('\n') {
        s.push_str("data: ");
        s.push_str(line.strip_suffix('\r').unwrap_or(line));
        s.push('\n');
    }
    s.push('\n');
    s
}

/// A `data:`-only event.
pub fn data_event(data: String) -> Event {
    Event {
        data,
        ..Event::default()
    }
}

fn single_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<Event> {
        let mut p = Parser::default();
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, &mut out).expect("valid stream");
        }
        out
    }

    #[test]
    fn parses_fields_comments_and_multiline_data() {
        let out = parse_all(&[
            b": keep-alive\nevent: message\nid: 7\nretry: 1500\ndata: {\"a\":\ndata:1}\n\n",
        ]);
        assert_eq!(
            out,
            vec![Event {
                event: Some("message".into()),
                data: "{\"a\":\n1}".into(),
                id: Some("7".into()),
                retry: Some(1500),
            }]
        );
    }

    #[test]
    fn handles_cr_crlf_and_chunks_split_anywhere() {
        let out = parse_all(&[b"data: a\r", b"\n\r", b"\ndata: b\r\r", b"data:c\n", b"\n"]);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].data, "a");
        assert_eq!(out[1].data, "b");
        assert_eq!(out[2].data, "c");
    }

    #[test]
    fn events_without_data_are_not_dispatched_and_cut_events_are_reported() {
        let mut p = Parser::default();
        let mut out = Vec::new();
        p.feed(b"id: 3\n\ndata: partial", &mut out).expect("ok");
        assert!(out.is_empty());
        assert!(p.finish(), "an unterminated event is a cut stream");
    }

    #[test]
    fn oversize_lines_are_refused() {
        let mut p = Parser::new(16);
        let mut out = Vec::new();
        let err = p.feed(&[b'x'; 40], &mut out).expect_err("too long");
        assert_eq!(err, SseError::TooLarge { limit: 16 });
    }

    proptest! {
        #[test]
        fn encode_then_parse_round_trips_at_any_split(
            data in "[a-z{}\":, \n]{0,40}",
            id in proptest::option::of("[a-z0-9]{1,8}"),
            split in 0usize..64,
        ) {
            let event = Event { event: None, data, id, retry: None };
            let wire = encode(&event);
            let bytes = wire.as_bytes();
            let at = split.min(bytes.len());
            let out = parse_all(&[&bytes[..at], &bytes[at..]]);
            prop_assert_eq!(out, vec![event]);
        }
    }
}
