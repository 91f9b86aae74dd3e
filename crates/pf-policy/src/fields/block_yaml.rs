//! A reader for the block-YAML subset that Python's `yaml.safe_dump` prints (AgentDojo's tools):
//! block mappings and sequences (indentless too), plain, single- and double-quoted scalars over
//! several lines, and the empty flow collections `[]` and `{}`.
//!
//! Why hand-written: marked-yaml (over yaml-rust2) reads about 30 MB/s and builds a node tree
//! with spans, which made it the slow part of an output check (about 1 ms for a 28 KB drive
//! listing). This reader walks the text once and emits the leaves directly.
//!
//! It must never attribute a leaf to another field than marked-yaml would (a wrong field can mean
//! a wrong label), so it reads a text only when it can read it exactly as yaml-rust2 0.10 does
//! (scanner rules cited below by function name) and answers `None`, "not understood", for
//! anything else: anchors, aliases, tags, comments, flow collections other than `[]` and `{}`,
//! block scalars, complex keys, documents markers, directives, tabs, CR, NUL and other control
//! characters, BOM, duplicate keys, deep nesting, and odd indentation. The caller then hands the
//! text to marked-yaml. It never decides that a text is unstructured: only marked-yaml does.
//! `tests/fields_fast_yaml.rs` compares the two on generated documents and their mutations.

use std::borrow::Cow;

use super::Leaf;

/// Deepest container nesting read here; deeper text goes to marked-yaml (which applies
/// [`super::MAX_DEPTH`]).
const MAX_FAST_DEPTH: usize = 32;
/// Longest implicit key read here, in bytes: yaml-rust2 drops a simple key that spans more than
/// 1024 characters (`stale_simple_keys`).
const MAX_KEY_SPAN: usize = 1000;
/// Most keys of a mapping whose keys are not in order that this reader checks for duplicates
/// (one by one); a longer one goes to marked-yaml.
const MAX_UNORDERED_KEYS: usize = 64;

/// The leaves of `text`, or `None` when `text` is outside the subset read here.
pub(super) fn leaves(text: &str, listed: &dyn Fn(&str) -> bool) -> Option<Vec<Leaf>> {
    let b = text.as_bytes();
    // NUL ends the stream for yaml-rust2, CR and TAB have rules of their own: none is read here.
    // In blocks without early exit, which the compiler vectorises.
    let control = |chunk: &[u8]| {
        chunk
            .iter()
            .fold(false, |acc, &c| acc | ((c < 0x20) & (c != b'\n')))
    };
    if b.chunks(256).any(control) {
        return None;
    }
    if text.contains('\u{feff}') || b.starts_with(b"---") || b.starts_with(b"...") {
        return None;
    }
    if memchr::memmem::find(b, b"\n---").is_some() || memchr::memmem::find(b, b"\n...").is_some() {
        return None;
    }
    let mut r = Reader {
        s: text,
        b,
        pos: 0,
        listed,
        out: Vec::new(),
        keys: Vec::new(),
    };
    let Some((start, indent)) = r.next_line(0)? else {
        // Blank text: marked-yaml reads an empty mapping.
        return Some(Vec::new());
    };
    if indent != 0 {
        return None;
    }
    r.pos = start;
    r.block_node(0, None, 0)?;
    match r.next_line(r.pos)? {
        None => Some(r.out),
        Some(_) => None,
    }
}

struct Reader<'a, 'l> {
    s: &'a str,
    b: &'a [u8],
    /// Byte offset of the next unread byte.
    pos: usize,
    listed: &'l dyn Fn(&str) -> bool,
    out: Vec<Leaf>,
    /// Keys of the open mappings, innermost last (duplicate check).
    keys: Vec<Cow<'a, str>>,
}

/// Whether `c` ends a token the way yaml-rust2's `is_blank_or_breakz` does (tabs, CR and NUL
/// were refused up front; `None` is the end of the text).
fn blankz(c: Option<&u8>) -> bool {
    matches!(c, None | Some(b' ' | b'\n'))
}

impl<'a> Reader<'a, '_> {
    fn at(&self, i: usize) -> Option<&u8> {
        self.b.get(i)
    }

    fn emit(&mut self, text: Cow<'_, str>, field: Option<&str>) {
        self.out.push(Leaf {
            field: field.map(str::to_string),
            text: text.into_owned(),
        });
    }

    /// The next line from `from` (a line start) with content: its start and indentation.
    /// `Some(None)` at the end of the text; `None` for a comment line.
    fn next_line(&self, mut from: usize) -> Option<Option<(usize, usize)>> {
        loop {
            let mut i = from;
            while self.at(i) == Some(&b' ') {
                i += 1;
            }
            match self.at(i) {
                None => return Some(None),
                Some(b'\n') => from = i + 1,
                Some(b'#') => return None,
                Some(_) => return Some(Some((from, i - from))),
            }
        }
    }

    /// End of the line holding `i` (the index of its `\n`, or the text length).
    fn eol(&self, i: usize) -> usize {
        memchr::memchr(b'\n', &self.b[i..]).map_or(self.b.len(), |n| i + n)
    }

    /// Whether a block sequence entry (`-` then a blank) starts at `i`.
    fn is_entry(&self, i: usize) -> bool {
        self.at(i) == Some(&b'-') && blankz(self.at(i + 1))
    }

    /// A block node whose first token starts at `self.pos`, in column `col`.
    fn block_node(&mut self, col: usize, field: Option<&str>, depth: usize) -> Option<()> {
        if self.is_entry(self.pos) {
            self.sequence(col, field, depth)
        } else {
            let key = self.key()?;
            self.mapping(col, key, field, depth)
        }
    }

    /// A block sequence with its entries in column `col`; `self.pos` is at the first `-`.
    fn sequence(&mut self, col: usize, field: Option<&str>, depth: usize) -> Option<()> {
        if depth > MAX_FAST_DEPTH {
            return None;
        }
        loop {
            self.pos += 1;
            let mut c = self.pos;
            while self.at(c) == Some(&b' ') {
                c += 1;
            }
            // An entry whose node starts on a later line is not read here.
            if matches!(self.at(c), None | Some(b'\n')) {
                return None;
            }
            self.pos = c;
            self.entry(col, field, depth)?;
            match self.next_line(self.pos)? {
                Some((start, indent)) if indent == col && self.is_entry(start + indent) => {
                    self.pos = start + indent;
                }
                Some((_, indent)) if indent > col => return None,
                _ => return Some(()),
            }
        }
    }

    /// The node of a sequence entry whose `-` is in column `dash`; `self.pos` is at its first
    /// byte (same line). A nested sequence, a compact mapping, or a scalar.
    fn entry(&mut self, dash: usize, field: Option<&str>, depth: usize) -> Option<()> {
        let line_start = self.pos - self.col_of(self.pos);
        let col = self.pos - line_start;
        if self.is_entry(self.pos) {
            return self.sequence(col, field, depth + 1);
        }
        match self.b[self.pos] {
            q @ (b'\'' | b'"') => {
                let start_line = line_start;
                // `scan_flow_scalar` allows continuation lines in column `dash`; this reader
                // wants them further right (`dash + 1`, as for a plain scalar) or gives up.
                let text = self.quoted(q == b'\'', dash + 1)?;
                let one_line = self.pos - self.col_of(self.pos) == start_line;
                self.skip_spaces();
                if self.at(self.pos) == Some(&b':') {
                    if !one_line
                        || !blankz(self.at(self.pos + 1))
                        || self.pos - line_start - col > MAX_KEY_SPAN
                    {
                        return None;
                    }
                    self.pos += 1;
                    return self.mapping(col, text, field, depth + 1);
                }
                self.end_of_value()?;
                self.emit(text, field);
                Some(())
            }
            _ => {
                let rest = &self.b[self.pos..];
                if rest.starts_with(b"[]") || rest.starts_with(b"{}") {
                    return self.value(dash + 1, field);
                }
                if let Some(key) = self.plain_key()? {
                    return self.mapping(col, key, field, depth + 1);
                }
                self.value(dash + 1, field)
            }
        }
    }

    /// Column of byte `i` (bytes from its line start; only ASCII precedes a token read here
    /// on its line).
    fn col_of(&self, i: usize) -> usize {
        i - memchr::memrchr(b'\n', &self.b[..i]).map_or(0, |n| n + 1)
    }

    fn skip_spaces(&mut self) {
        while self.at(self.pos) == Some(&b' ') {
            self.pos += 1;
        }
    }

    /// After a value: only spaces up to the end of the line; moves to the next line.
    fn end_of_value(&mut self) -> Option<()> {
        self.skip_spaces();
        match self.at(self.pos) {
            None => Some(()),
            Some(b'\n') => {
                self.pos += 1;
                Some(())
            }
            Some(_) => None,
        }
    }

    /// A mapping key at `self.pos` and its `:`; `self.pos` ends after the `:`.
    fn key(&mut self) -> Option<Cow<'a, str>> {
        let start = self.pos;
        match self.at(self.pos) {
            Some(&q @ (b'\'' | b'"')) => {
                let line = self.eol(start);
                let text = self.quoted(q == b'\'', usize::MAX)?;
                if self.pos > line {
                    return None;
                }
                self.skip_spaces();
                if self.at(self.pos) != Some(&b':')
                    || !blankz(self.at(self.pos + 1))
                    || self.pos - start > MAX_KEY_SPAN
                {
                    return None;
                }
                self.pos += 1;
                Some(text)
            }
            _ => self.plain_key()?,
        }
    }

    /// A plain key at `self.pos` (then `self.pos` is after its `:`), `Some(None)` when the line
    /// holds no `: ` (not a key), `None` when the line is not read here.
    fn plain_key(&mut self) -> Option<Option<Cow<'a, str>>> {
        let start = self.pos;
        self.plain_start()?;
        let line = self.eol(start);
        let mut i = start;
        while i < line {
            match self.b[i] {
                b':' if blankz(self.at(i + 1)) => {
                    if i - start > MAX_KEY_SPAN {
                        return None;
                    }
                    let key = self.s[start..i].trim_end_matches(' ');
                    self.pos = i + 1;
                    return Some(Some(Cow::Borrowed(key)));
                }
                b'#' if self.b[i - 1] == b' ' => return None,
                _ => i += 1,
            }
        }
        Some(None)
    }

    /// Refuses a plain scalar starting at `self.pos` with an indicator (`fetch_next_token`):
    /// flow, anchor, alias, tag, block scalar, comment, directive and reserved characters, and
    /// `?`, `:` (read as plain by yaml-rust2 when not followed by a blank, not here).
    fn plain_start(&self) -> Option<()> {
        match self.at(self.pos)? {
            b'-' if !blankz(self.at(self.pos + 1)) => Some(()),
            b'-' | b'?' | b':' | b',' | b'[' | b']' | b'{' | b'}' | b'#' | b'&' | b'*' | b'!'
            | b'|' | b'>' | b'\'' | b'"' | b'%' | b'@' | b'`' | b' ' | b'\n' => None,
            _ => Some(()),
        }
    }

    /// A block mapping with its keys in column `col`, whose first key (`first`) was read and
    /// `self.pos` is after its `:`.
    fn mapping(
        &mut self,
        col: usize,
        first: Cow<'a, str>,
        field: Option<&str>,
        depth: usize,
    ) -> Option<()> {
        if depth > MAX_FAST_DEPTH {
            return None;
        }
        let keys_from = self.keys.len();
        let mut key = first;
        loop {
            // marked-yaml keeps the last of duplicate keys, moved to the end: not read here.
            // Keys in order (as `safe_dump` sorts them) need no search; a long unordered
            // mapping is left to marked-yaml.
            let seen = &self.keys[keys_from..];
            if seen.last().is_some_and(|k| *k >= key)
                && (seen.len() > MAX_UNORDERED_KEYS || seen.contains(&key))
            {
                return None;
            }
            self.emit(Cow::Borrowed(&key), field);
            let listed = (self.listed)(&key);
            let vf: Option<&str> = if listed { Some(&key) } else { field };
            self.map_value(col, vf, depth)?;
            self.keys.push(key);
            match self.next_line(self.pos)? {
                Some((start, indent)) if indent == col => {
                    self.pos = start + indent;
                    if self.is_entry(self.pos) {
                        return None;
                    }
                    key = self.key()?;
                }
                Some((_, indent)) if indent > col => return None,
                _ => break,
            }
        }
        self.keys.truncate(keys_from);
        Some(())
    }

    /// The value of a key in column `col`; `self.pos` is right after the `:`.
    fn map_value(&mut self, col: usize, field: Option<&str>, depth: usize) -> Option<()> {
        self.skip_spaces();
        match self.at(self.pos) {
            None | Some(b'\n') => {
                let after = if self.pos < self.b.len() {
                    self.pos + 1
                } else {
                    self.pos
                };
                match self.next_line(after)? {
                    Some((start, indent))
                        if indent > col || (indent == col && self.is_entry(start + indent)) =>
                    {
                        self.pos = start + indent;
                        self.block_node(indent, field, depth + 1)
                    }
                    _ => {
                        // An empty value: yaml-rust2's null scalar is the empty string.
                        self.pos = after;
                        self.emit(Cow::Borrowed(""), field);
                        Some(())
                    }
                }
            }
            Some(&q @ (b'\'' | b'"')) => {
                let text = self.quoted(q == b'\'', col + 1)?;
                self.end_of_value()?;
                self.emit(text, field);
                Some(())
            }
            Some(_) => {
                if self.is_entry(self.pos) {
                    return None;
                }
                self.value(col + 1, field)
            }
        }
    }

    /// A value at `self.pos` that is `[]`, `{}` or a plain scalar whose continuation lines are
    /// in column `min_col` or further right.
    fn value(&mut self, min_col: usize, field: Option<&str>) -> Option<()> {
        let rest = &self.b[self.pos..];
        if rest.starts_with(b"[]") || rest.starts_with(b"{}") {
            self.pos += 2;
            return self.end_of_value();
        }
        let text = self.plain(min_col)?;
        self.emit(text, field);
        Some(())
    }

    /// One line of plain scalar from `from`: its text without trailing spaces. `None` when the
    /// line holds `: ` or ` #` (a value indicator or a comment).
    fn plain_line(&self, from: usize, end: usize) -> Option<&'a str> {
        let line = &self.b[from..end];
        let mut i = 0;
        while let Some(n) = memchr::memchr2(b':', b'#', &line[i..]) {
            let at = i + n;
            match line[at] {
                b':' if at + 1 == line.len() || line[at + 1] == b' ' => return None,
                b'#' if at == 0 || line[at - 1] == b' ' => return None,
                _ => i = at + 1,
            }
        }
        Some(self.s[from..end].trim_end_matches(' '))
    }

    /// A plain scalar at `self.pos` (`scan_plain_scalar`): continuation lines in column
    /// `min_col` or further right are folded in (one line break is a space, `n` are `n - 1`
    /// newlines). Ends with `self.pos` at the start of the line after its last line.
    fn plain(&mut self, min_col: usize) -> Option<Cow<'a, str>> {
        self.plain_start()?;
        let end = self.eol(self.pos);
        let first = self.plain_line(self.pos, end)?;
        let mut text = Cow::Borrowed(first);
        let mut next = (end + 1).min(self.b.len());
        self.pos = next;
        while let Some((start, indent)) = self.next_line(next)? {
            if indent < min_col {
                break;
            }
            let breaks = self.b[self.pos..start]
                .iter()
                .filter(|&&c| c == b'\n')
                .count()
                + 1;
            let from = start + indent;
            let end = self.eol(from);
            let line = self.plain_line(from, end)?;
            let t = text.to_mut();
            if breaks == 1 {
                t.push(' ');
            } else {
                t.extend(std::iter::repeat_n('\n', breaks - 1));
            }
            t.push_str(line);
            next = (end + 1).min(self.b.len());
            self.pos = next;
        }
        Some(text)
    }

    /// A quoted scalar at `self.pos` (its opening quote), as `scan_flow_scalar` reads it; lines
    /// after the first must have their first non-blank in column `min_col` or further right.
    /// Ends with `self.pos` after the closing quote.
    fn quoted(&mut self, single: bool, min_col: usize) -> Option<Cow<'a, str>> {
        let quote = if single { b'\'' } else { b'"' };
        self.pos += 1;
        let begin = self.pos;
        // `None` while the text read so far is the source text `begin..self.pos` as written.
        let mut out: Option<String> = None;
        // Length of `out` that a line break does not trim: blanks before a break are dropped,
        // but not a space written as an escape or folded in.
        let mut kept = 0usize;
        loop {
            // Inside a line everything up to a quote, an escape or a line break is content.
            let rest = &self.b[self.pos..];
            let n = if single {
                memchr::memchr2(quote, b'\n', rest)
            } else {
                memchr::memchr3(quote, b'\\', b'\n', rest)
            }?;
            let j = self.pos + n;
            if let Some(o) = out.as_mut() {
                o.push_str(&self.s[self.pos..j]);
            }
            self.pos = j;
            let own = |out: &mut Option<String>, pos: usize| -> String {
                out.take().unwrap_or_else(|| self.s[begin..pos].to_string())
            };
            match self.b[j] {
                b'\'' if single && self.at(j + 1) == Some(&b'\'') => {
                    let mut o = own(&mut out, j);
                    o.push('\'');
                    kept = o.len();
                    out = Some(o);
                    self.pos += 2;
                }
                c if c == quote => {
                    self.pos += 1;
                    return Some(match out {
                        Some(o) => Cow::Owned(o),
                        None => Cow::Borrowed(&self.s[begin..j]),
                    });
                }
                b'\\' => {
                    let mut o = own(&mut out, j);
                    if self.at(j + 1) == Some(&b'\n') {
                        // An escaped line break: nothing is folded in for it.
                        self.pos += 2;
                        self.fold(&mut o, true, min_col)?;
                    } else {
                        let (ch, len) = escape(&self.b[j + 1..])?;
                        o.push(ch);
                        self.pos += 1 + len;
                    }
                    kept = o.len();
                    out = Some(o);
                }
                _ => {
                    // A line break: the blanks before it are dropped.
                    let mut o = own(&mut out, j);
                    let content = o.trim_end_matches(' ').len().max(kept);
                    o.truncate(content);
                    self.pos += 1;
                    self.fold(&mut o, false, min_col)?;
                    kept = o.len();
                    out = Some(o);
                }
            }
        }
    }

    /// After a line break in a quoted scalar (`self.pos` after it): skips blank lines and the
    /// indentation of the next line (which must reach `min_col`), and appends the fold: one
    /// break is a space, `n` are `n - 1` newlines; after an escaped break, `n` more are `n`.
    fn fold(&mut self, out: &mut String, escaped: bool, min_col: usize) -> Option<()> {
        let mut breaks = 0usize;
        let mut line = self.pos;
        loop {
            match self.at(self.pos)? {
                b' ' => {}
                b'\n' => {
                    breaks += 1;
                    line = self.pos + 1;
                }
                _ => break,
            }
            self.pos += 1;
        }
        if self.pos - line < min_col {
            return None;
        }
        if !escaped && breaks == 0 {
            out.push(' ');
        } else {
            out.extend(std::iter::repeat_n('\n', breaks));
        }
        Some(())
    }
}

/// A double-quoted escape after its `\` (`resolve_flow_scalar_escape_sequence`): the character
/// and the bytes it took.
fn escape(b: &[u8]) -> Option<(char, usize)> {
    let simple = match b.first()? {
        b'0' => '\0',
        b'a' => '\x07',
        b'b' => '\x08',
        b't' => '\t',
        b'n' => '\n',
        b'v' => '\x0b',
        b'f' => '\x0c',
        b'r' => '\r',
        b'e' => '\x1b',
        b' ' => ' ',
        b'"' => '"',
        b'/' => '/',
        b'\\' => '\\',
        b'N' => '\u{85}',
        b'_' => '\u{a0}',
        b'L' => '\u{2028}',
        b'P' => '\u{2029}',
        b'x' | b'u' | b'U' => {
            let n = match b[0] {
                b'x' => 2,
                b'u' => 4,
                _ => 8,
            };
            let hex = b.get(1..1 + n)?;
            let mut v = 0u32;
            for &h in hex {
                v = (v << 4) | char::from(h).to_digit(16)?;
            }
            return Some((char::from_u32(v)?, 1 + n));
        }
        _ => return None,
    };
    Some((simple, 1))
}
