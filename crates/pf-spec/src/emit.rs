//! Writes a spec back as normalised YAML (`pf spec fmt`).
//!
//! Hand-written rather than a YAML serializer crate: the output is a small, fixed subset (block
//! mappings and sequences, JSON-quoted strings when plain would be ambiguous) with a stable key
//! order, so the same spec always formats to the same text.

use serde_json::Value;

use crate::model::AgentSpec;

/// Keys written first, in this order; other keys follow alphabetically.
const KEY_ORDER: &[&str] = &[
    "name",
    "version",
    "description",
    "kind",
    "type",
    "file",
    "export",
    "theorem",
    "binding",
    "property",
    "timeout",
    "covers",
    "capabilities",
    "policies",
    "resources",
    "proofs",
    "signers",
    "threshold",
    "keys",
];

/// The spec as normalised YAML text.
pub fn to_yaml(spec: &AgentSpec) -> String {
    let value = serde_json::to_value(spec).unwrap_or(Value::Null);
    let mut out = String::new();
    emit_block(&value, 0, &mut out);
    out
}

fn rank(key: &str) -> (usize, &str) {
    (
        KEY_ORDER
            .iter()
            .position(|k| *k == key)
            .unwrap_or(KEY_ORDER.len()),
        key,
    )
}

fn emit_block(value: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) if !map.is_empty() => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by_key(|k| rank(k));
            for (i, key) in keys.into_iter().enumerate() {
                // The first key of a mapping inside a sequence item shares the `- ` line.
                if i > 0 || !out.ends_with("- ") {
                    out.push_str(&pad);
                }
                out.push_str(&scalar_key(key));
                out.push(':');
                emit_value_after_key(&map[key], indent, out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for item in items {
                out.push_str(&pad);
                out.push_str("- ");
                match item {
                    Value::Object(m) if !m.is_empty() => emit_block(item, indent + 2, out),
                    Value::Array(a) if !a.is_empty() => {
                        out.push('\n');
                        emit_block(item, indent + 2, out);
                    }
                    _ => {
                        out.push_str(&inline(item));
                        out.push('\n');
                    }
                }
            }
        }
        other => {
            out.push_str(&pad);
            out.push_str(&inline(other));
            out.push('\n');
        }
    }
}

fn emit_value_after_key(value: &Value, indent: usize, out: &mut String) {
    match value {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            emit_block(value, indent + 2, out);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            emit_block(value, indent + 2, out);
        }
        _ => {
            out.push(' ');
            out.push_str(&inline(value));
            out.push('\n');
        }
    }
}

fn scalar_key(key: &str) -> String {
    if is_plain_safe(key) {
        key.to_string()
    } else {
        Value::String(key.to_string()).to_string()
    }
}

fn inline(value: &Value) -> String {
    match value {
        Value::String(s) if is_plain_safe(s) => s.clone(),
        Value::Object(m) if m.is_empty() => "{}".into(),
        Value::Array(a) if a.is_empty() => "[]".into(),
        // JSON text is valid YAML flow syntax, with JSON string escapes.
        other => other.to_string(),
    }
}

/// True when a string can be written unquoted and read back as the same string.
fn is_plain_safe(s: &str) -> bool {
    const RESERVED: &[&str] = &[
        "true", "false", "null", "yes", "no", "on", "off", "y", "n", "~",
    ];
    let first_ok = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '/');
    first_ok
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./@+".contains(c))
        && !RESERVED.contains(&s.to_ascii_lowercase().as_str())
        && s.parse::<f64>().is_err()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_safety() {
        assert!(is_plain_safe("send_email"));
        assert!(is_plain_safe("proofs/a.lean"));
        assert!(!is_plain_safe("1.0.0x y"));
        assert!(!is_plain_safe("true"));
        assert!(!is_plain_safe("1e5"));
        assert!(!is_plain_safe("-x"));
        assert!(!is_plain_safe(""));
    }
}
