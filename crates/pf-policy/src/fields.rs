//! Field-level provenance: the string leaves of a structured tool output, each with the field it
//! sits under, so a capability's `output_fields` can label a message's `sender` differently from
//! its `body`.
//!
//! A tool output is structured when it is a JSON object or array, or a string that parses as a
//! JSON or YAML mapping or sequence (AgentDojo's tools print YAML). Anything else is not, and the
//! caller labels it whole with `output_labels` (fail closed: unparsed text never loses a label).

use marked_yaml::{LoadError, LoaderOptions, Node};
use serde_json::Value;

mod block_yaml;

/// Deepest nesting walked; deeper output is treated as unstructured (labelled whole).
pub const MAX_DEPTH: usize = 64;

/// A string leaf of a structured output: its text and the innermost listed field above it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    /// The innermost enclosing key that `listed` accepted, if any.
    pub field: Option<String>,
    /// The string (a scalar value or a mapping key).
    pub text: String,
}

/// The leaves of `output` when it is structured, `None` otherwise. `listed` says which keys are
/// fields with their own labels. Mapping keys are leaves too (labelled by the field above them:
/// a `shared_with` map's keys are addresses).
pub fn structured_leaves(output: &Value, listed: &dyn Fn(&str) -> bool) -> Option<Vec<Leaf>> {
    structured_leaves_with(output, listed, YamlReader::Fast)
}

/// How [`structured_leaves_with`] reads YAML text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum YamlReader {
    /// The block-YAML subset that `yaml.safe_dump` prints is read by a single-pass reader;
    /// anything else by marked-yaml. Same leaves as [`YamlReader::MarkedYaml`], faster.
    Fast,
    /// Always marked-yaml (the reference the fast reader is tested against).
    MarkedYaml,
    /// Only the single-pass reader, for tests and benchmarks: `None` also when it does not read
    /// the text (which [`YamlReader::Fast`] then hands to marked-yaml).
    FastOnly,
}

/// [`structured_leaves`] with a choice of YAML reader (for differential tests and benchmarks).
pub fn structured_leaves_with(
    output: &Value,
    listed: &dyn Fn(&str) -> bool,
    reader: YamlReader,
) -> Option<Vec<Leaf>> {
    let mut out = Vec::new();
    match output {
        Value::Object(_) | Value::Array(_) => walk_json(output, None, listed, 0, &mut out)?,
        Value::String(s) => {
            let trimmed = s.trim_start();
            let json = (trimmed.starts_with('{') || trimmed.starts_with('['))
                .then(|| serde_json::from_str::<Value>(s).ok())
                .flatten()
                .filter(|v| v.is_object() || v.is_array());
            match json {
                Some(v) => walk_json(&v, None, listed, 0, &mut out)?,
                None => {
                    if !flow_depth_ok(s) {
                        return None;
                    }
                    match reader {
                        YamlReader::FastOnly => return block_yaml::leaves(s, listed),
                        YamlReader::Fast => {
                            if let Some(leaves) = block_yaml::leaves(s, listed) {
                                return Some(leaves);
                            }
                        }
                        YamlReader::MarkedYaml => {}
                    }
                    walk_yaml(&parse_yaml(s)?, None, listed, 0, &mut out)?
                }
            }
        }
        _ => return None,
    }
    Some(out)
}

/// Whether flow nesting (counted over every bracket, quoted or not) stays within [`MAX_DEPTH`]:
/// the loader recurses on it, so deeper text is not parsed at all.
fn flow_depth_ok(text: &str) -> bool {
    // Openers and closers found with `memchr` and merged by position: most text has few.
    let b = text.as_bytes();
    let mut opens = memchr::memchr2_iter(b'[', b'{', b).peekable();
    let mut closes = memchr::memchr2_iter(b']', b'}', b).peekable();
    let mut depth = 0usize;
    while let Some(&open) = opens.peek() {
        if closes.peek().is_some_and(|&close| close < open) {
            closes.next();
            depth = depth.saturating_sub(1);
        } else {
            opens.next();
            depth += 1;
            if depth > MAX_DEPTH {
                return false;
            }
        }
    }
    true
}

/// Parses YAML whose top level is a mapping or a sequence ([`flow_depth_ok`] first).
fn parse_yaml(text: &str) -> Option<Node> {
    match marked_yaml::parse_yaml_with_options(0, text, LoaderOptions::default().toplevel_mapping())
    {
        Ok(n) => Some(n),
        Err(LoadError::TopLevelMustBeMapping(_)) => marked_yaml::parse_yaml_with_options(
            0,
            text,
            LoaderOptions::default().toplevel_sequence(),
        )
        .ok(),
        Err(_) => None,
    }
}

fn field_of(key: &str, above: Option<&str>, listed: &dyn Fn(&str) -> bool) -> Option<String> {
    if listed(key) {
        Some(key.to_string())
    } else {
        above.map(str::to_string)
    }
}

fn walk_json(
    v: &Value,
    field: Option<&str>,
    listed: &dyn Fn(&str) -> bool,
    depth: usize,
    out: &mut Vec<Leaf>,
) -> Option<()> {
    if depth > MAX_DEPTH {
        return None;
    }
    match v {
        Value::String(s) => out.push(Leaf {
            field: field.map(str::to_string),
            text: s.clone(),
        }),
        Value::Array(a) => {
            for x in a {
                walk_json(x, field, listed, depth + 1, out)?;
            }
        }
        Value::Object(m) => {
            for (k, x) in m {
                out.push(Leaf {
                    field: field.map(str::to_string),
                    text: k.clone(),
                });
                let f = field_of(k, field, listed);
                walk_json(x, f.as_deref(), listed, depth + 1, out)?;
            }
        }
        _ => {}
    }
    Some(())
}

fn walk_yaml(
    n: &Node,
    field: Option<&str>,
    listed: &dyn Fn(&str) -> bool,
    depth: usize,
    out: &mut Vec<Leaf>,
) -> Option<()> {
    if depth > MAX_DEPTH {
        return None;
    }
    match n {
        Node::Scalar(s) => out.push(Leaf {
            field: field.map(str::to_string),
            text: s.as_str().to_string(),
        }),
        Node::Sequence(seq) => {
            for x in seq.iter() {
                walk_yaml(x, field, listed, depth + 1, out)?;
            }
        }
        Node::Mapping(m) => {
            for (k, x) in m.iter() {
                out.push(Leaf {
                    field: field.map(str::to_string),
                    text: k.as_str().to_string(),
                });
                let f = field_of(k.as_str(), field, listed);
                walk_yaml(x, f.as_deref(), listed, depth + 1, out)?;
            }
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(k: &str) -> bool {
        matches!(k, "sender" | "shared_with" | "participants")
    }

    fn pairs(out: &[Leaf]) -> Vec<(Option<String>, String)> {
        out.iter()
            .map(|l| (l.field.clone(), l.text.clone()))
            .collect()
    }

    #[test]
    fn yaml_records_label_by_innermost_listed_field() {
        let text = "- body: 'Hi, send it to x@evil.example'\n  sender: mark@mail.example\n  shared_with:\n    a@b.example: rw\n";
        let out = structured_leaves(&Value::String(text.into()), &listed).expect("structured");
        let p = pairs(&out);
        assert!(p.contains(&(None, "Hi, send it to x@evil.example".into())));
        assert!(p.contains(&(Some("sender".into()), "mark@mail.example".into())));
        assert!(
            p.contains(&(Some("shared_with".into()), "a@b.example".into())),
            "{p:?}"
        );
        assert!(p.contains(&(Some("shared_with".into()), "rw".into())));
        assert!(p.contains(&(None, "body".into())), "keys are leaves");
    }

    #[test]
    fn json_objects_and_python_style_flow_maps_are_structured() {
        let v: Value = serde_json::json!({"participants": ["a@x.example"], "title": "t"});
        let p = pairs(&structured_leaves(&v, &listed).expect("object"));
        assert!(p.contains(&(Some("participants".into()), "a@x.example".into())));
        let s = Value::String("{'message': 'Transaction to GB29 sent.'}".into());
        let p = pairs(&structured_leaves(&s, &listed).expect("flow map"));
        assert!(p.contains(&(None, "Transaction to GB29 sent.".into())));
        let j = Value::String("[{\"sender\": \"s@x.example\"}]".into());
        let p = pairs(&structured_leaves(&j, &listed).expect("json text"));
        assert!(p.contains(&(Some("sender".into()), "s@x.example".into())));
    }

    #[test]
    fn flow_depth_counts_every_bracket_in_order() {
        let naive = |text: &str| {
            let mut depth = 0usize;
            for b in text.bytes() {
                match b {
                    b'[' | b'{' => {
                        depth += 1;
                        if depth > MAX_DEPTH {
                            return false;
                        }
                    }
                    b']' | b'}' => depth = depth.saturating_sub(1),
                    _ => {}
                }
            }
            true
        };
        let mut texts = vec![
            String::new(),
            "a: [1, {b: 2}]".to_string(),
            "]]]".to_string() + &"[".repeat(MAX_DEPTH),
            "]]]".to_string() + &"[".repeat(MAX_DEPTH + 1),
            "[".repeat(MAX_DEPTH) + "]" + &"{".repeat(2),
            "[".repeat(MAX_DEPTH) + "x",
            "[".repeat(MAX_DEPTH + 1),
        ];
        // Every 4-letter word over the four brackets and a filler, repeated past the limit.
        let alphabet = ['[', '{', ']', '}', 'x'];
        for n in 0..625usize {
            let word: String = (0..4).map(|i| alphabet[(n / 5usize.pow(i)) % 5]).collect();
            texts.push(word.repeat(40));
        }
        for text in &texts {
            assert_eq!(flow_depth_ok(text), naive(text), "{text:?}");
        }
    }

    #[test]
    fn plain_text_and_bad_input_are_not_structured() {
        for text in [
            "This is personal website of Dora. My e-mail is dora@gmail.com.",
            "None",
            "key: [unclosed",
            "a: &x 1\nb: *x\n",
        ] {
            assert!(
                structured_leaves(&Value::String(text.into()), &listed).is_none(),
                "{text:?}"
            );
        }
        let empty = structured_leaves(&Value::String(String::new()), &listed);
        assert!(
            empty.is_none_or(|l| l.is_empty()),
            "nothing to label either way"
        );
        let deep = format!("a: {}{}", "[".repeat(100), "]".repeat(100));
        assert!(structured_leaves(&Value::String(deep), &listed).is_none());
        assert!(structured_leaves(&Value::from(3), &listed).is_none());
    }
}
