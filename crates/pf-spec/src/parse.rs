//! YAML text to [`AgentSpec`], with located errors for syntax, unknown fields and wrong types.

use std::sync::Arc;

use marked_yaml::{LoadError, LoaderOptions, Marker, Node};
use miette::NamedSource;

use crate::diagnostics::{Diagnostic, LineIndex, Problem, SpecErrors};
use crate::fuzzy::did_you_mean;
use crate::model::AgentSpec;

/// Largest spec file accepted, in bytes.
pub const MAX_SPEC_BYTES: u64 = 1024 * 1024;

/// Source identifier handed to the YAML loader (we parse one file at a time).
const SOURCE_ID: usize = 0;

/// Parses spec text; `name` is the file name used in diagnostics.
///
/// Structural problems (syntax, unknown fields, wrong types) stop at the first one found, as the
/// rest of the document cannot be interpreted reliably after it; semantic checks are in
/// [`crate::lint`].
pub fn parse_str(name: &str, text: &str) -> Result<AgentSpec, SpecErrors> {
    let source = Arc::new(NamedSource::new(name, text.to_string()).with_language("yaml"));
    let index = LineIndex::new(text);
    let fail = |d: Diagnostic| SpecErrors {
        name: name.to_string(),
        diagnostics: vec![Diagnostic {
            src: Some(source.clone()),
            ..d
        }],
    };
    if text.len() as u64 > MAX_SPEC_BYTES {
        return Err(fail(Diagnostic::error(Problem::TooLarge {
            size: text.len() as u64,
            limit: MAX_SPEC_BYTES,
        })));
    }
    let options = LoaderOptions::default()
        .error_on_duplicate_keys(true)
        .prevent_coercion(true)
        .toplevel_mapping();
    let node = marked_yaml::parse_yaml_with_options(SOURCE_ID, text, options)
        .map_err(|e| fail(load_error(&index, e)))?;
    let mut spec: AgentSpec =
        marked_yaml::from_node(&node).map_err(|e| fail(decode_error(&index, &e)))?;
    restore_json_values(&node, &mut spec);
    Ok(spec)
}

fn at(index: &LineIndex<'_>, marker: Option<&Marker>, d: Diagnostic) -> Diagnostic {
    match marker {
        Some(m) => {
            let loc = index.location(m.line(), m.column());
            Diagnostic {
                location: Some(loc),
                len: index.token_len(loc.offset),
                ..d
            }
        }
        None => d,
    }
}

fn load_error(index: &LineIndex<'_>, err: LoadError) -> Diagnostic {
    match err {
        LoadError::TopLevelMustBeMapping(m) => at(
            index,
            Some(&m),
            Diagnostic::error(Problem::YamlSyntax("the top level must be a mapping (name:, version:, ...)".into()))
                .with_help("start from `pf spec init`"),
        ),
        LoadError::TopLevelMustBeSequence(m) => {
            at(index, Some(&m), Diagnostic::error(Problem::YamlSyntax("unexpected top-level sequence".into())))
        }
        LoadError::UnexpectedAnchor(m) => at(
            index,
            Some(&m),
            Diagnostic::error(Problem::YamlSyntax("anchors and aliases are not allowed in a spec".into()))
                .with_help("write the value out in full; specs are kept free of aliases so every value is where it appears"),
        ),
        LoadError::MappingKeyMustBeScalar(m) => {
            at(index, Some(&m), Diagnostic::error(Problem::YamlSyntax("mapping keys must be plain scalars".into())))
        }
        LoadError::UnexpectedTag(m) => {
            at(index, Some(&m), Diagnostic::error(Problem::YamlSyntax("explicit YAML tags are not allowed".into())))
        }
        LoadError::ScanError(m, e) => at(index, Some(&m), Diagnostic::error(Problem::YamlSyntax(e.info().to_string()))),
        LoadError::DuplicateKey(dup) => {
            let first_line = dup.prev_key.span().start().map(|m| m.line()).unwrap_or(0);
            at(
                index,
                dup.key.span().start(),
                Diagnostic::error(Problem::DuplicateKey { key: dup.key.as_str().to_string(), first_line }),
            )
        }
    }
}

fn decode_error(index: &LineIndex<'_>, err: &marked_yaml::FromNodeError) -> Diagnostic {
    use marked_yaml::Error;
    let path = err.path().unwrap_or("").to_string();
    let marker = err.start_mark();
    let diag = match &**err {
        Error::UnknownFieldError(field, expected, _) => {
            let context = match path.rsplit_once('.') {
                Some((parent, _)) => format!("`{parent}`"),
                None if path.contains('[') => format!("`{path}`"),
                None => "the top level".to_string(),
            };
            let expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
            let help = match did_you_mean(field, expected.iter().map(String::as_str)) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("expected one of: {}", expected.join(", ")),
            };
            Diagnostic::error(Problem::UnknownField {
                field: field.clone(),
                context,
                expected,
            })
            .with_help(help)
        }
        Error::NotBoolean(_) => Diagnostic::error(Problem::WrongType {
            path,
            detail: "expected `true` or `false`".into(),
        }),
        Error::IntegerParseFailure(e, _) => Diagnostic::error(Problem::WrongType {
            path,
            detail: format!("expected a whole number ({e})"),
        }),
        Error::FloatParseFailure(e, _) => Diagnostic::error(Problem::WrongType {
            path,
            detail: format!("expected a number ({e})"),
        }),
        Error::Other(msg, _) => {
            let help = unknown_variant_help(msg);
            let d = Diagnostic::error(Problem::WrongType {
                path,
                detail: msg.clone(),
            });
            match help {
                Some(h) => d.with_help(h),
                None => d,
            }
        }
    };
    at(index, marker.as_ref(), diag)
}

/// "did you mean" for serde's `unknown variant `x`, expected `a` or `b`` messages.
fn unknown_variant_help(msg: &str) -> Option<String> {
    let rest = msg.strip_prefix("unknown variant `")?;
    let (given, expected) = rest.split_once('`')?;
    let names: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    did_you_mean(given, names.iter().copied()).map(|s| format!("did you mean `{s}`?"))
}

/// Re-reads free-form JSON values (argument schemas) from the YAML tree with their YAML types.
///
/// The YAML deserializer hands every scalar to `serde_json::Value` as a string; a JSON Schema
/// needs `maxLength: 10` to be a number and `"10"` (quoted) to stay a string, so these subtrees are
/// converted from the node tree directly, honouring quoting.
fn restore_json_values(root: &Node, spec: &mut AgentSpec) {
    let Some(caps) = root
        .as_mapping()
        .and_then(|m| m.get_sequence("capabilities"))
    else {
        return;
    };
    for (cap, node) in spec.capabilities.iter_mut().zip(caps.iter()) {
        let schema = node
            .as_mapping()
            .and_then(|m| m.get_mapping("constraints"))
            .and_then(|c| c.get_node("arguments"));
        if let (Some(constraints), Some(schema)) = (cap.constraints.as_mut(), schema) {
            constraints.arguments = Some(node_to_json(schema));
        }
    }
}

/// Converts a YAML node to JSON using the YAML 1.2 core schema for plain scalars.
pub(crate) fn node_to_json(node: &Node) -> serde_json::Value {
    use serde_json::Value;
    match node {
        Node::Mapping(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.as_str().to_string(), node_to_json(v)))
                .collect(),
        ),
        Node::Sequence(s) => Value::Array(s.iter().map(node_to_json).collect()),
        Node::Scalar(s) => {
            let text = s.as_str();
            if !s.may_coerce() {
                return Value::String(text.to_string());
            }
            match text {
                "null" | "Null" | "NULL" | "~" | "" => Value::Null,
                "true" | "True" | "TRUE" => Value::Bool(true),
                "false" | "False" | "FALSE" => Value::Bool(false),
                _ => {
                    if let Ok(i) = text.parse::<i64>() {
                        Value::from(i)
                    } else if let Some(n) = text
                        .parse::<f64>()
                        .ok()
                        .and_then(serde_json::Number::from_f64)
                    {
                        Value::Number(n)
                    } else {
                        Value::String(text.to_string())
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_variant_help_suggests_closest() {
        let h = unknown_variant_help("unknown variant `tol`, expected `tool` or `text_generation`");
        assert_eq!(h.as_deref(), Some("did you mean `tool`?"));
    }

    #[test]
    fn node_to_json_keeps_quoted_numbers_as_strings() {
        let options = LoaderOptions::default().prevent_coercion(true);
        let node = marked_yaml::parse_yaml_with_options(
            0,
            "a: 10\nb: '10'\nc: [true, null, 2.5]\n",
            options,
        )
        .expect("valid yaml");
        let v = node_to_json(&node);
        assert_eq!(
            v,
            serde_json::json!({"a": 10, "b": "10", "c": [true, null, 2.5]})
        );
    }
}
