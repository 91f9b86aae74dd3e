//! The single-pass block-YAML reader against marked-yaml: wherever the fast reader reads a text,
//! it gives exactly marked-yaml's leaves (texts, fields, order). Documents are generated in the
//! style `yaml.safe_dump` prints (every one must be read by the fast reader), then mutated (the
//! fast reader may then give up, but never disagree).

use pf_policy::fields::{Leaf, YamlReader, structured_leaves_with};
use proptest::prelude::*;
use serde_json::Value;

fn listed(k: &str) -> bool {
    matches!(k, "sender" | "shared_with" | "participants" | "id_" | "x y")
}

fn read(text: &str, reader: YamlReader) -> Option<Vec<Leaf>> {
    structured_leaves_with(&Value::String(text.to_string()), &listed, reader)
}

/// Asserts that the fast reader, when it reads `text`, agrees with marked-yaml; returns whether
/// it read it.
fn agrees(text: &str) -> Result<bool, TestCaseError> {
    let fast = read(text, YamlReader::FastOnly);
    let reference = read(text, YamlReader::MarkedYaml);
    if let Some(f) = &fast {
        prop_assert_eq!(Some(f), reference.as_ref(), "text: {:?}", text);
    }
    prop_assert_eq!(
        read(text, YamlReader::Fast),
        reference,
        "combined, text: {:?}",
        text
    );
    Ok(fast.is_some())
}

#[derive(Debug, Clone)]
enum Node {
    Map(Vec<(String, Node)>),
    Seq(Vec<Node>),
    Text(String),
    EmptySeq,
    EmptyMap,
}

/// Characters of generated texts: indicators, quotes, escapes, blanks, breaks, non-ASCII.
const CHARS: &[char] = &[
    'a', 'b', 'Z', '0', '7', ' ', ' ', ' ', ':', '#', '-', '\'', '"', '\\', '\n', '\n', 'é', '€',
    '😀', '[', ']', '{', '}', ',', '&', '*', '!', '|', '>', '?', '%', '@', '`', '.', '/', '\t',
    '\r', '\u{1}', '\u{0}', '\u{85}', '\u{2028}', '\u{feff}', '~',
];

const KEYS: &[&str] = &[
    "sender",
    "body",
    "id_",
    "shared_with",
    "participants",
    "x y",
    "a",
    "content",
    "-k",
    "k:v",
    "it's",
    "say \"hi\"",
    "é",
    "",
    "null",
    "a#b",
    "a #b",
    "- x",
    "? q",
    "true",
    "12",
    "---",
    "k:",
];

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(prop::sample::select(CHARS), 0..24)
            .prop_map(|v| v.into_iter().collect::<String>()),
        "[a-z]{1,8}( [a-z]{1,8}){0,12}",
        prop::sample::select(KEYS).prop_map(str::to_string),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(KEYS).prop_map(str::to_string),
        "[a-z_]{1,6}",
        text(),
    ]
}

fn node() -> impl Strategy<Value = Node> {
    let leaf = prop_oneof![
        6 => text().prop_map(Node::Text),
        1 => Just(Node::EmptySeq),
        1 => Just(Node::EmptyMap),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::btree_map(key(), inner.clone(), 1..6)
                .prop_map(|m| Node::Map(m.into_iter().collect())),
            prop::collection::vec(inner, 1..6).prop_map(Node::Seq),
        ]
    })
}

/// Rendering choices, drawn per document.
#[derive(Debug, Clone)]
struct Style {
    /// Sequences under a key at the key's column (`safe_dump`) rather than indented.
    indentless: bool,
    /// Extra indentation of nested mappings.
    step: usize,
    /// Continuation lines this many columns past the least allowed.
    extra: usize,
    /// Wrap long scalars after about this many bytes.
    width: usize,
    /// Scalar style preference: 0 plain, 1 single, 2 double (when the text allows it).
    prefer: u8,
    /// Reverse mapping keys (not sorted).
    reverse: bool,
}

fn style() -> impl Strategy<Value = Style> {
    (
        any::<bool>(),
        prop::sample::select(vec![2usize, 4]),
        0usize..3,
        prop::sample::select(vec![6usize, 12, 40, 1000]),
        0u8..3,
        any::<bool>(),
    )
        .prop_map(|(indentless, step, extra, width, prefer, reverse)| Style {
            indentless,
            step,
            extra,
            width,
            prefer,
            reverse,
        })
}

fn plain_ok(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    let bad_first = "-?:,[]{}#&*!|>'\"%@` ".contains(first);
    !bad_first
        && !s.ends_with(' ')
        && !s.ends_with(':')
        && !s.contains(": ")
        && !s.contains(" #")
        && !s.starts_with("---")
        && !s.starts_with("...")
        && !s.chars().any(|c| c.is_control() || c == '\u{feff}')
}

fn single_ok(s: &str) -> bool {
    !s.chars()
        .any(|c| (c.is_control() && c != '\n') || c == '\u{feff}' || c == '\u{85}')
        && !s.contains(" \n")
        && !s.contains("\n ")
        && !s.starts_with('\n')
        && !s.ends_with('\n')
}

/// Replaces some single spaces between two non-blanks with a line break and `cont` spaces.
fn wrap(s: &str, width: usize, cont: usize) -> String {
    let b: Vec<char> = s.chars().collect();
    let mut out = String::new();
    let mut run = 0;
    for (i, &c) in b.iter().enumerate() {
        let single_space = c == ' '
            && i > 0
            && i + 1 < b.len()
            && !matches!(b[i - 1], ' ' | '\n')
            && !matches!(b[i + 1], ' ' | '\n');
        if single_space && run >= width {
            out.push('\n');
            out.push_str(&" ".repeat(cont));
            run = 0;
        } else {
            out.push(c);
            run += 1;
        }
    }
    out
}

fn double(s: &str, width: usize, cont: usize) -> String {
    let mut out = String::from("\"");
    let mut run = 0;
    for c in s.chars() {
        if run >= width {
            out.push_str("\\\n");
            out.push_str(&" ".repeat(cont));
            if c == ' ' {
                out.push('\\');
            }
            run = 0;
        }
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            '\u{85}' => out.push_str("\\N"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{feff}' => out.push_str("\\uFEFF"),
            c if c.is_control() => out.push_str(&format!("\\x{:02X}", c as u32)),
            c => out.push(c),
        }
        run += 1;
    }
    out.push('"');
    out
}

/// A scalar; lines after the first start in column `cont`. `key`: on one line.
fn scalar(s: &str, st: &Style, cont: usize, key: bool) -> String {
    let width = if key { usize::MAX } else { st.width };
    if st.prefer == 0 && plain_ok(s) {
        return wrap(s, width, cont);
    }
    if st.prefer <= 1 && single_ok(s) && !(key && s.contains('\n')) {
        let q = s.replace('\'', "''");
        let mut lines = String::new();
        for (i, part) in q.split('\n').enumerate() {
            if i > 0 {
                lines.push_str("\n\n");
                lines.push_str(&" ".repeat(cont));
            }
            lines.push_str(&wrap(part, width, cont));
        }
        return format!("'{lines}'");
    }
    double(s, width, cont)
}

/// Appends `node` as the value after `key:` of a mapping in column `col`.
fn value(out: &mut String, node: &Node, col: usize, st: &Style) {
    match node {
        Node::Text(s) => {
            out.push(' ');
            out.push_str(&scalar(s, st, col + 1 + st.extra, false));
            out.push('\n');
        }
        Node::EmptySeq => out.push_str(" []\n"),
        Node::EmptyMap => out.push_str(" {}\n"),
        Node::Seq(items) => {
            out.push('\n');
            let c = if st.indentless { col } else { col + st.step };
            seq(out, items, c, false, st);
        }
        Node::Map(entries) => {
            out.push('\n');
            map(out, entries, col + st.step, false, st);
        }
    }
}

/// A block mapping in column `col`; `inline`: its first key goes on the current line.
fn map(out: &mut String, entries: &[(String, Node)], col: usize, inline: bool, st: &Style) {
    let mut order: Vec<&(String, Node)> = entries.iter().collect();
    if st.reverse {
        order.reverse();
    }
    for (i, (k, v)) in order.into_iter().enumerate() {
        if i > 0 || !inline {
            out.push_str(&" ".repeat(col));
        }
        out.push_str(&scalar(k, st, col + 1, true));
        out.push(':');
        value(out, v, col, st);
    }
}

/// A block sequence in column `col`.
fn seq(out: &mut String, items: &[Node], col: usize, inline: bool, st: &Style) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 || !inline {
            out.push_str(&" ".repeat(col));
        }
        out.push_str("- ");
        match item {
            Node::Text(s) => {
                out.push_str(&scalar(s, st, col + 1 + st.extra, false));
                out.push('\n');
            }
            Node::EmptySeq => out.push_str("[]\n"),
            Node::EmptyMap => out.push_str("{}\n"),
            Node::Seq(inner) => seq(out, inner, col + 2, true, st),
            Node::Map(entries) => map(out, entries, col + 2, true, st),
        }
    }
}

fn document(root: &Node, st: &Style) -> Option<String> {
    let mut out = String::new();
    match root {
        Node::Map(entries) => map(&mut out, entries, 0, false, st),
        Node::Seq(items) => seq(&mut out, items, 0, false, st),
        _ => return None,
    }
    Some(out)
}

/// Text edits: insert a YAML-significant fragment, delete a byte range, or indent a line.
#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, &'static str),
    Delete(usize, usize),
    Indent(usize),
}

const FRAGMENTS: &[&str] = &[
    " ", "  ", "\n", "\n\n", "-", "- ", ":", ": ", "'", "\"", "#", " #", "\\", "\\\n", "[", "]",
    "{", "}", "[]", "&a ", "*a", "!t ", "|", ">", "? ", "\t", "\r", "x", "---\n", "...\n", "%",
    "é", "''", "\\ ", "\\t",
];

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), prop::sample::select(FRAGMENTS)).prop_map(|(p, f)| Edit::Insert(p, f)),
        (any::<usize>(), 1usize..4).prop_map(|(p, n)| Edit::Delete(p, n)),
        any::<usize>().prop_map(Edit::Indent),
    ]
}

fn apply(text: &str, e: &Edit) -> String {
    let mut s = text.to_string();
    let boundary = |s: &str, p: usize| {
        let mut p = p % (s.len() + 1);
        while !s.is_char_boundary(p) {
            p -= 1;
        }
        p
    };
    match e {
        Edit::Insert(p, f) => {
            let p = boundary(&s, *p);
            s.insert_str(p, f);
        }
        Edit::Delete(p, n) => {
            let p = boundary(&s, *p);
            let end = boundary(&s, (p + n).min(s.len()));
            if end > p {
                s.replace_range(p..end, "");
            }
        }
        Edit::Indent(p) => {
            let p = boundary(&s, *p);
            let start = s[..p].rfind('\n').map_or(0, |i| i + 1);
            s.insert(start, ' ');
        }
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    #[test]
    fn generated_documents_are_read_fast_and_alike(root in node(), st in style()) {
        let Some(text) = document(&root, &st) else {
            return Ok(());
        };
        prop_assert!(agrees(&text)?, "fast reader gave up on {:?}", text);
    }

    #[test]
    fn mutated_documents_are_read_alike_or_left_to_marked_yaml(
        root in node(),
        st in style(),
        edits in prop::collection::vec(edit(), 1..4),
    ) {
        let Some(mut text) = document(&root, &st) else {
            return Ok(());
        };
        for e in &edits {
            text = apply(&text, e);
        }
        agrees(&text)?;
    }

    #[test]
    fn fragment_soup_is_read_alike_or_left_to_marked_yaml(
        picks in prop::collection::vec(prop::sample::select(FRAGMENTS), 0..30),
        words in prop::collection::vec("[a-z]{1,3}", 30),
    ) {
        let mut text = String::new();
        for (i, f) in picks.iter().enumerate() {
            text.push_str(f);
            text.push_str(&words[i]);
        }
        agrees(&text)?;
    }
}

#[test]
fn safe_dump_layouts_are_read_fast_and_alike() {
    let cases = [
        "- content: 'name,email\n\n    John Doe, it''s\n    here\n\n\n    end\n\n    '\n  filename: f.xlsx\n  id_: '0'\n  shared_with:\n    a@b.example: r\n    c@d.example: rw\n  size: 1632\n",
        "- content: \"Meeting\\nWe discussed\\\n    \\ the new\\\n    \\ strategy\"\n  id_: '1'\n",
        "attachments: []\nbcc: []\nbody: Hey, how is it going?\ncc: {}\nrecipients:\n- mark@gmail.com\n- x@y.example\nsender: emma@b.example\ntimestamp: 2026-11-25 15:36:30.364673\n",
        "a:\n  b:\n    c: deep\n  d: x\ne: y\n",
        "- - a\n  - b\n- - c\n",
        "- a\n- long plain text that\n  wraps over\n\n  lines\n",
        "key:\n",
        "k: v\n  w\n",
        "'quoted key': 1\n\"dq\\tkey\": 2\n",
        "a: \"\\x41\\u00e9\\U0001F600\\N\\_\\L\\P\\e\\0\\/\"\n",
        "a: 'x'   \nb:    y   \n",
        "a: \"one\\\n\n\n  two\"\n",
        "",
        " \n\n  \n",
        "a: \"x\\ \n  y\"\n",
        "a: \"x\\ \\t  \n\n  y  \\\n  z\"\n",
        "- 'it''   \n  s'\n",
    ];
    for text in cases {
        let fast = read(text, YamlReader::FastOnly);
        assert!(fast.is_some(), "not read fast: {text:?}");
        assert_eq!(fast, read(text, YamlReader::MarkedYaml), "{text:?}");
    }
}

#[test]
fn texts_outside_the_subset_are_left_to_marked_yaml() {
    let cases = [
        "a: &x 1\nb: *x\n",
        "a: !!str 1\n",
        "a: [1, 2]\n",
        "a: |\n  text\n",
        "? complex\n: value\n",
        "a: 1 # comment\n",
        "# comment\na: 1\n",
        "--- \na: 1\n",
        "a: 1\n---\nb: 2\n",
        "a:\tb\n",
        "a: b\r\n",
        "a: 1\na: 2\n",
        "-\n  a: 1\n",
        "  a: 1\n",
        "plain scalar\n",
        "a: 'unclosed\n",
        "a: 'x'\n  b: y\n",
        "a: \"\\q\"\n",
        "- 'x\n- y'\n",
    ];
    for text in cases {
        assert!(
            read(text, YamlReader::FastOnly).is_none(),
            "read fast: {text:?}"
        );
        assert_eq!(
            read(text, YamlReader::Fast),
            read(text, YamlReader::MarkedYaml),
            "{text:?}"
        );
    }
}
