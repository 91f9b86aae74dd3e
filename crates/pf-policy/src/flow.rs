//! Information-flow store: labelled values returned by tools, and the matcher that finds them in
//! later arguments.
//!
//! A string argument carries a label when (1) a labelled value or a token of one (at least
//! `min_token_len` bytes, and not a plain word of letters only) occurs inside it, (2) it (at
//! least `min_token_len` bytes) occurs inside a labelled value, or (3) it is shorter than
//! `min_token_len` and equals a whole labelled value or a quoted token of one (short identifiers
//! such as a file id written `'13'`; a date `2024-05-13` is one token, and an unquoted `11.` of a
//! numbered list does not count). Matching is ASCII case-insensitive. With `unless: [user_request]`, a
//! match is cleared when the matched text also occurs in one of the user's requests (for (3): is
//! a whole token of one). With `unless: [user_named_source]` (and the rule's principals from the
//! user), values recorded from the output of a call the user named do not count.
//!
//! The store is incremental: each recorded output adds one matcher segment (an Aho-Corasick
//! automaton over the tokens new in that output) and appends its values to per-label haystacks;
//! nothing built earlier is rebuilt, so a decision costs a search per segment, not a rebuild.

use std::collections::{HashMap, HashSet};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use memchr::memmem;

use crate::labels::LabelMask;

/// Characters that split a labelled value into tokens (besides whitespace).
pub const TOKEN_SEPARATORS: &[char] = &[
    ',', ';', '(', ')', '[', ']', '{', '}', '<', '>', '"', '\'', '`', '|',
];
/// Characters trimmed from the end of a token (sentence punctuation).
pub const TOKEN_TRAILERS: &[char] = &['.', ':', '!', '?'];
/// Whole values up to this many bytes are automaton patterns; longer ones are searched with
/// `memmem` (few, and only when the argument is at least as long).
pub const MAX_WHOLE_PATTERN: usize = 256;

/// ASCII bytes that split tokens: ASCII whitespace (as `char::is_whitespace` has it: tab, line
/// feed, vertical tab, form feed, carriage return, space) and [`TOKEN_SEPARATORS`].
const ASCII_SEPARATOR: [bool; 128] = {
    let mut table = [false; 128];
    let mut i = 0;
    while i < TOKEN_SEPARATORS.len() {
        table[TOKEN_SEPARATORS[i] as usize] = true;
        i += 1;
    }
    let mut b = 9;
    while b <= 13 {
        table[b] = true;
        b += 1;
    }
    table[b' ' as usize] = true;
    table
};

/// Whether `c` splits tokens: whitespace or one of [`TOKEN_SEPARATORS`] (a table for ASCII:
/// every recorded byte of an output goes through here).
pub fn is_separator(c: char) -> bool {
    match ASCII_SEPARATOR.get(c as usize) {
        Some(&sep) => sep,
        None => c.is_whitespace(),
    }
}

/// Tokens of a text, as the flow matcher registers them (before the length filter).
pub fn tokens(text: &str) -> impl Iterator<Item = &str> {
    text.split(is_separator)
        .map(|t| t.trim_end_matches(TOKEN_TRAILERS))
        .filter(|t| !t.is_empty())
}

/// Quote characters: a short token between two of the same counts as a written value (`'13'`).
pub const QUOTES: &[char] = &['\'', '"', '`'];

/// Tokens of a text with, for each, whether it stands between two identical quote characters.
pub fn tokens_quoted(text: &str) -> Vec<(&str, bool)> {
    // Byte by byte (separators and quotes are ASCII; other characters are decoded only to ask
    // whether they are whitespace): every recorded byte of every output passes through here.
    const NOT_ASCII: u8 = 0x80;
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    // The ASCII character before the current token, or `NOT_ASCII` (none, or not ASCII).
    let mut before = NOT_ASCII;
    let mut prev = NOT_ASCII;
    let mut i = 0;
    while i <= b.len() {
        let (sep, c, width) = match b.get(i) {
            None => (true, NOT_ASCII, 1),
            Some(&c) if c.is_ascii() => (ASCII_SEPARATOR[usize::from(c)], c, 1),
            Some(_) => {
                let ch = text[i..].chars().next().unwrap_or(' ');
                (ch.is_whitespace(), NOT_ASCII, ch.len_utf8())
            }
        };
        if sep {
            if let Some(s) = start.take() {
                let t = text[s..i].trim_end_matches(TOKEN_TRAILERS);
                let quoted = QUOTES.contains(&char::from(before)) && c == before;
                if !t.is_empty() {
                    out.push((t, quoted));
                }
            }
        } else if start.is_none() {
            start = Some(i);
            before = prev;
        }
        prev = c;
        i += width;
    }
    out
}

/// Whether a token is a plain word (letters only). A plain word from untrusted text does not
/// label a longer argument it occurs in (a name `mitchell` inside `john.mitchell@gmail.com`);
/// identifiers (with digits or punctuation: addresses, IBANs, URLs) and phrases do.
pub fn is_plain_word(t: &str) -> bool {
    t.chars().all(char::is_alphabetic)
}

/// The single token a text consists of, if it is one token (what rule (3) compares).
pub fn single_token(text: &str) -> Option<&str> {
    let mut it = tokens(text);
    let t = it.next()?;
    it.next().is_none().then_some(t)
}

/// Labels of a pattern or value: all of them, and those recorded from sources the user did not
/// name (what counts under `user_named_source`).
#[derive(Debug, Clone, Copy, Default)]
struct Marks {
    all: LabelMask,
    plain: LabelMask,
}

impl Marks {
    fn add(&mut self, labels: LabelMask, named: bool) {
        self.all |= labels;
        if !named {
            self.plain |= labels;
        }
    }

    fn pick(self, endorse_named: bool) -> LabelMask {
        if endorse_named { self.plain } else { self.all }
    }
}

/// One matcher segment: an automaton over patterns first seen in one output.
#[derive(Debug, Clone)]
struct Segment {
    automaton: AhoCorasick,
    /// Automaton pattern index -> index into `FlowStore::patterns`.
    ids: Vec<usize>,
}

/// All values recorded with the same labels from the same kind of source, back to back.
#[derive(Debug, Clone, Default)]
struct Haystack {
    labels: LabelMask,
    named: bool,
    text: String,
    /// End offset (exclusive) of each value in `text`, ascending.
    ends: Vec<usize>,
}

impl Haystack {
    /// Whether `needle` occurs inside one value (not across two).
    fn contains(&self, finder: &memmem::Finder<'_>) -> bool {
        let n = finder.needle().len();
        let hay = self.text.as_bytes();
        let mut from = 0;
        while let Some(i) = finder.find(&hay[from..]) {
            let start = from + i;
            let k = self.ends.partition_point(|&e| e <= start);
            if self.ends.get(k).is_some_and(|&e| start + n <= e) {
                return true;
            }
            from = start + 1;
        }
        false
    }
}

/// The labelled values of one session.
#[derive(Debug, Clone, Default)]
pub(crate) struct FlowStore {
    patterns: Vec<(String, Marks)>,
    pattern_index: HashMap<String, usize>,
    pending: Vec<usize>,
    segments: Vec<Segment>,
    /// Values longer than [`MAX_WHOLE_PATTERN`], for rule (1) by `memmem`.
    long_values: Vec<(String, Marks)>,
    long_index: HashMap<String, usize>,
    haystacks: Vec<Haystack>,
    /// Every token and value shorter than the minimum length, for rule (3).
    short: HashMap<String, Marks>,
    bytes: usize,
    broken: bool,
    /// Labels of values that did not fit in the store: sinks for these labels deny.
    pub overflow: LabelMask,
    user: Vec<String>,
    user_tokens: HashSet<String>,
    user_bytes: usize,
}

impl FlowStore {
    /// Records one labelled string; `named`: it came from a source the user's request named.
    /// Call [`prepare`](Self::prepare) after the last string of an output.
    pub fn record(
        &mut self,
        text: &str,
        labels: LabelMask,
        named: bool,
        min_len: usize,
        max_bytes: usize,
    ) {
        if labels == 0 || text.is_empty() {
            return;
        }
        if self.bytes.saturating_add(text.len()) > max_bytes {
            self.overflow |= labels;
            return;
        }
        self.bytes += text.len();
        let lower = text.to_ascii_lowercase();
        for (t, quoted) in tokens_quoted(&lower) {
            if t.len() >= min_len {
                if !is_plain_word(t) {
                    self.add_pattern(t, labels, named);
                }
            } else if quoted {
                self.short
                    .entry(t.to_string())
                    .or_default()
                    .add(labels, named);
            }
        }
        if lower.len() < min_len {
            self.short
                .entry(lower.clone())
                .or_default()
                .add(labels, named);
        } else if is_plain_word(&lower) {
            // Found by rule (2) when the argument is this word; not a pattern (see above).
        } else if lower.len() <= MAX_WHOLE_PATTERN {
            self.add_pattern(&lower, labels, named);
        } else if let Some(&i) = self.long_index.get(&lower) {
            self.long_values[i].1.add(labels, named);
        } else {
            let mut m = Marks::default();
            m.add(labels, named);
            self.long_index
                .insert(lower.clone(), self.long_values.len());
            self.long_values.push((lower.clone(), m));
        }
        let h = match self
            .haystacks
            .iter_mut()
            .position(|h| h.labels == labels && h.named == named)
        {
            Some(i) => &mut self.haystacks[i],
            None => {
                self.haystacks.push(Haystack {
                    labels,
                    named,
                    ..Haystack::default()
                });
                let last = self.haystacks.len() - 1;
                &mut self.haystacks[last]
            }
        };
        h.text.push_str(&lower);
        h.ends.push(h.text.len());
    }

    fn add_pattern(&mut self, p: &str, labels: LabelMask, named: bool) {
        match self.pattern_index.get(p) {
            Some(&i) => self.patterns[i].1.add(labels, named),
            None => {
                let i = self.patterns.len();
                let mut m = Marks::default();
                m.add(labels, named);
                self.pattern_index.insert(p.to_string(), i);
                self.patterns.push((p.to_string(), m));
                self.pending.push(i);
            }
        }
    }

    /// Records a user request (trusted text that clears matches under `unless: [user_request]`).
    pub fn record_user(&mut self, text: &str, max_bytes: usize) -> bool {
        if self.user_bytes.saturating_add(text.len()) > max_bytes {
            return false;
        }
        self.user_bytes += text.len();
        let lower = text.to_ascii_lowercase();
        for t in tokens(&lower) {
            self.user_tokens.insert(t.to_string());
        }
        self.user.push(lower);
        true
    }

    /// Seals the patterns recorded since the last call into a new matcher segment (earlier
    /// segments are kept as they are).
    pub fn prepare(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let ids = std::mem::take(&mut self.pending);
        // Patterns are lower-cased already; haystacks are lower-cased before the search. A
        // contiguous NFA builds in linear time, and each output's patterns are built once.
        match AhoCorasickBuilder::new()
            .kind(Some(AhoCorasickKind::ContiguousNFA))
            .match_kind(MatchKind::Standard)
            .build(ids.iter().map(|&i| self.patterns[i].0.as_str()))
        {
            Ok(automaton) => self.segments.push(Segment { automaton, ids }),
            Err(_) => self.broken = true,
        }
    }

    /// Whether labelled values were recorded but a matcher could not be built (fail closed).
    pub fn matcher_broken(&self) -> bool {
        self.broken || !self.pending.is_empty()
    }

    fn is_empty(&self) -> bool {
        self.haystacks.is_empty() && self.short.is_empty()
    }

    /// Whether `text` occurs in one of the user's requests.
    pub fn in_user_request(&self, text: &str) -> bool {
        let lower = text.to_ascii_lowercase();
        self.user
            .iter()
            .any(|u| memmem::find(u.as_bytes(), lower.as_bytes()).is_some())
    }

    /// Whether a short matched text counts as written by the user: it is a whole token of a
    /// user request, or (several tokens) occurs in one.
    fn user_has_short(&self, key: &str) -> bool {
        if single_token(key) == Some(key) {
            self.user_tokens.contains(key)
        } else {
            self.in_user_request(key)
        }
    }

    /// Whether `text` (non-empty) occurs in a user request with no letter or digit right before
    /// or after it (a name the user wrote, not part of a longer word).
    pub fn user_wrote_word(&self, text: &str) -> bool {
        let lower = text.trim().to_ascii_lowercase();
        if lower.is_empty() {
            return false;
        }
        let finder = memmem::Finder::new(lower.as_bytes());
        self.user.iter().any(|u| {
            let b = u.as_bytes();
            finder.find_iter(b).any(|i| {
                let before = i.checked_sub(1).map(|j| b[j]);
                let after = b.get(i + lower.len()).copied();
                !before.is_some_and(|c| c.is_ascii_alphanumeric())
                    && !after.is_some_and(|c| c.is_ascii_alphanumeric())
            })
        })
    }

    /// Labels within `mask` that reach `value`; `unless_user` clears matches the user wrote;
    /// `endorse_named` ignores values recorded from sources the user named. The store must be
    /// [`prepare`](Self::prepare)d.
    pub fn taint(
        &self,
        value: &str,
        mask: LabelMask,
        unless_user: bool,
        endorse_named: bool,
        min_len: usize,
    ) -> LabelMask {
        if mask == 0 || self.is_empty() {
            return 0;
        }
        let lower = value.to_ascii_lowercase();
        let user = |t: &str| {
            self.user
                .iter()
                .any(|u| memmem::find(u.as_bytes(), t.as_bytes()).is_some())
        };
        let mut found: LabelMask = 0;
        // (1) a labelled token or value inside the argument.
        for seg in &self.segments {
            for m in seg.automaton.find_overlapping_iter(lower.as_str()) {
                let (text, marks) = &self.patterns[seg.ids[m.pattern().as_usize()]];
                let new = marks.pick(endorse_named) & mask & !found;
                if new != 0 && !(unless_user && user(text)) {
                    found |= new;
                    if found == mask {
                        return found;
                    }
                }
            }
        }
        for (text, marks) in &self.long_values {
            let new = marks.pick(endorse_named) & mask & !found;
            if new != 0
                && text.len() <= lower.len()
                && memmem::find(lower.as_bytes(), text.as_bytes()).is_some()
                && !(unless_user && user(text))
            {
                found |= new;
                if found == mask {
                    return found;
                }
            }
        }
        if lower.len() >= min_len {
            // (2) the argument inside a labelled value.
            if !(unless_user && user(&lower)) {
                let finder = memmem::Finder::new(lower.as_bytes());
                for h in &self.haystacks {
                    if endorse_named && h.named {
                        continue;
                    }
                    let new = h.labels & mask & !found;
                    if new != 0 && h.contains(&finder) {
                        found |= new;
                    }
                }
            }
        } else {
            // (3) a short argument that is a whole labelled token or value.
            let token = single_token(&lower).filter(|t| *t != lower);
            for key in std::iter::once(lower.as_str()).chain(token) {
                let Some(marks) = self.short.get(key) else {
                    continue;
                };
                let new = marks.pick(endorse_named) & mask & !found;
                if new != 0 && !(unless_user && self.user_has_short(key)) {
                    found |= new;
                }
            }
        }
        found
    }

    /// Labels (any) carried by `value`, ignoring user-request clearing.
    pub fn labels_of(&self, value: &str, min_len: usize) -> LabelMask {
        self.taint(value, LabelMask::MAX, false, false, min_len)
    }
}

#[cfg(test)]
mod tests;
