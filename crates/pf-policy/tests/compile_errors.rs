//! Each compile-time check rejects its bad spec with its own typed error.

use pf_policy::{CompileError, compile};

fn errors(yaml: &str) -> Vec<CompileError> {
    let spec = pf_spec::parse_str("test.yaml", yaml).expect("spec parses");
    match compile(&spec) {
        Ok(_) => Vec::new(),
        Err(e) => e.errors.into_iter().map(|d| d.error).collect(),
    }
}

fn spec(caps: &str, policies: &str) -> String {
    format!("name: t\nversion: 1.0.0\ncapabilities:\n{caps}\npolicies:\n{policies}\n")
}

const MAILER: &str = "  - name: send_email\n    constraints:\n      args:\n        to: { max_length: 100 }\n  - name: fetch\n    output_labels: [untrusted]\n";

#[test]
fn unknown_tool_in_sink_suggests_the_close_name() {
    let e = errors(&spec(
        MAILER,
        "  - name: p\n    type: information_flow\n    deny_labels: [untrusted]\n    sinks: [send_emial.to]",
    ));
    assert!(
        matches!(&e[..], [CompileError::UnknownTool { name, did_you_mean: Some(s), .. }] if name == "send_emial" && s == "send_email"),
        "{e:?}"
    );
}

#[test]
fn sink_naming_a_missing_argument_is_rejected() {
    let e = errors(&spec(
        MAILER,
        "  - name: p\n    type: information_flow\n    deny_labels: [untrusted]\n    sinks: [send_email.recipient]",
    ));
    assert!(
        matches!(&e[..], [CompileError::UnknownSinkArgument { arg, .. }] if arg == "recipient"),
        "{e:?}"
    );
}

#[test]
fn min_above_max_is_a_contradiction() {
    let caps =
        "  - name: pay\n    constraints:\n      args:\n        amount: { min: 10, max: 1 }\n";
    let e = errors(&spec(caps, "  []"));
    assert!(
        matches!(&e[..], [CompileError::ContradictingConstraints { .. }]),
        "{e:?}"
    );
}

#[test]
fn string_and_number_constraints_on_one_argument_contradict() {
    let caps = "  - name: pay\n    constraints:\n      args:\n        amount: { min: 1, pattern: \"[0-9]+\" }\n";
    let e = errors(&spec(caps, "  []"));
    assert!(
        matches!(&e[..], [CompileError::ContradictingConstraints { .. }]),
        "{e:?}"
    );
}

#[test]
fn unsatisfiable_schema_is_rejected_with_its_path() {
    let caps = "  - name: t\n    constraints:\n      arguments:\n        type: object\n        properties:\n          q: { type: string, minLength: 10, maxLength: 2 }\n        required: [q]\n";
    let e = errors(&spec(caps, "  []"));
    assert!(
        matches!(&e[..], [CompileError::UnsatisfiableSchema { field, .. }] if field.ends_with("arguments.properties.q")),
        "{e:?}"
    );
}

#[test]
fn args_constraint_on_an_argument_the_closed_schema_forbids() {
    let caps = "  - name: t\n    constraints:\n      arguments:\n        type: object\n        properties: { a: { type: string } }\n        additionalProperties: false\n      args:\n        b: { max_length: 3 }\n";
    let e = errors(&spec(caps, "  []"));
    assert!(
        matches!(&e[..], [CompileError::ArgumentForbiddenBySchema { arg, .. }] if arg == "b"),
        "{e:?}"
    );
}

#[test]
fn relative_path_prefix_and_bad_domain_are_rejected() {
    let caps = "  - name: t\n    constraints:\n      allowed_paths: [workspace]\n      allowed_domains: [\"exa mple.com\"]\n";
    let e = errors(&spec(caps, "  []"));
    assert!(
        matches!(
            &e[..],
            [
                CompileError::InvalidDomain { .. },
                CompileError::InvalidPathPrefix { .. }
            ] | [
                CompileError::InvalidPathPrefix { .. },
                CompileError::InvalidDomain { .. }
            ]
        ),
        "{e:?}"
    );
}

#[test]
fn custom_rule_parse_errors_carry_line_and_column() {
    let e = errors(&spec(
        MAILER,
        "  - name: r\n    type: custom\n    rule: \"deny when args.to = 1\"",
    ));
    match &e[..] {
        [CompileError::Rule { pos, reason, .. }] => {
            assert_eq!((pos.line, pos.column), (1, 19));
            assert!(reason.contains("=="), "{reason}");
        }
        _ => panic!("{e:?}"),
    }
}

#[test]
fn unknown_trusted_source_is_rejected() {
    let e = errors(&spec(
        MAILER,
        "  - name: p\n    type: information_flow\n    deny_labels: [untrusted]\n    sinks: [send_email]\n    unless: [admin]",
    ));
    assert!(
        matches!(&e[..], [CompileError::UnknownTrustedSource { .. }]),
        "{e:?}"
    );
}

#[test]
fn source_labels_name_real_tools() {
    let ok = errors(&spec(
        MAILER,
        "  - name: p\n    type: information_flow\n    deny_labels: [\"source:fetch\"]\n    sinks: [send_email]",
    ));
    assert!(ok.is_empty(), "{ok:?}");
    let e = errors(&spec(
        MAILER,
        "  - name: p\n    type: information_flow\n    deny_labels: [\"source:nope\"]\n    sinks: [send_email]",
    ));
    assert!(
        matches!(&e[..], [CompileError::UnknownTool { .. }]),
        "{e:?}"
    );
}

#[test]
fn all_errors_are_reported_together() {
    let caps = "  - name: pay\n    constraints:\n      rate_limit: { requests: 0, per: 1m }\n      max_concurrent: 0\n      args:\n        amount: { min: 10, max: 1 }\n        code: { pattern: \"(\" }\n";
    let e = errors(&spec(caps, "  []"));
    assert_eq!(e.len(), 4, "{e:?}");
}
