//! Each lint and parse check reports the right problem at the right line and column.

use pf_spec::{Problem, SpecErrors, check_str};

const SEED: &str = "name: ai-agent
version: 1.0.0
capabilities:
  - name: text_generation
    constraints: { max_length: 1000, content_filter: true }
proofs:
  - { name: behavior_verification, type: lean, file: proofs/behavior.lean }
";

fn errors(text: &str) -> SpecErrors {
    match check_str("agent.yaml", text, None) {
        Ok(_) => panic!("expected the spec to be rejected:\n{text}"),
        Err(e) => e,
    }
}

fn first(text: &str) -> (Problem, usize, usize, Option<String>) {
    let e = errors(text);
    let d = e
        .diagnostics
        .into_iter()
        .find(|d| d.is_error())
        .expect("an error diagnostic");
    let loc = d.location.expect("a location");
    (d.problem, loc.line, loc.column, d.help)
}

#[test]
fn seed_example_parses_as_is() {
    let (spec, warnings) = check_str("agent.yaml", SEED, None).expect("seed spec is valid");
    assert_eq!(spec.name.as_str(), "ai-agent");
    assert_eq!(spec.version.as_str(), "1.0.0");
    assert_eq!(
        spec.capabilities[0]
            .constraints
            .as_ref()
            .and_then(|c| c.max_length.as_deref().copied()),
        Some(1000)
    );
    assert_eq!(spec.proofs[0].file.as_str(), "proofs/behavior.lean");
    assert_eq!(
        spec.capabilities[0].effective_kind(),
        pf_spec::CapabilityKind::TextGeneration
    );
    // Lean source without an export is allowed but warned about.
    assert!(
        warnings
            .iter()
            .any(|w| matches!(w.problem, Problem::LeanSourceWithoutExport(_)))
    );
}

#[test]
fn yaml_syntax_error_has_line_and_column() {
    let (p, line, col, _) =
        first("name: a\nversion: 1.0.0\ncapabilities:\n  - name: x\n   bad: : y\n");
    assert!(matches!(p, Problem::YamlSyntax(_)), "{p:?}");
    assert_eq!(line, 5);
    assert!(col >= 4, "column {col}");
}

#[test]
fn unknown_field_suggests_the_intended_one() {
    let text = SEED.replace("capabilities:", "capabilites:");
    let (p, line, col, help) = first(&text);
    assert!(
        matches!(&p, Problem::UnknownField { field, .. } if field == "capabilites"),
        "{p:?}"
    );
    assert_eq!((line, col), (3, 1));
    assert_eq!(help.as_deref(), Some("did you mean `capabilities`?"));
}

#[test]
fn unknown_nested_field_names_its_context() {
    let text = SEED.replace("max_length: 1000", "max_lenght: 1000");
    let (p, line, col, help) = first(&text);
    match &p {
        Problem::UnknownField { field, context, .. } => {
            assert_eq!(field, "max_lenght");
            assert_eq!(context, "`capabilities[0].constraints`");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!((line, col), (5, 20));
    assert_eq!(help.as_deref(), Some("did you mean `max_length`?"));
}

#[test]
fn wrong_type_is_located() {
    let text = SEED.replace("max_length: 1000", "max_length: lots");
    let (p, line, col, _) = first(&text);
    assert!(
        matches!(&p, Problem::WrongType { path, .. } if path == "capabilities[0].constraints.max_length"),
        "{p:?}"
    );
    assert_eq!((line, col), (5, 32));
}

#[test]
fn unknown_enum_value_suggests_closest() {
    let text = SEED.replace("type: lean", "type: laen");
    let (p, line, _, help) = first(&text);
    assert!(matches!(p, Problem::WrongType { .. }), "{p:?}");
    assert_eq!(line, 7);
    assert_eq!(help.as_deref(), Some("did you mean `lean`?"));
}

#[test]
fn invalid_semver_is_rejected() {
    let (p, line, col, _) = first(&SEED.replace("1.0.0", "1.0"));
    assert!(matches!(p, Problem::InvalidSemver { .. }), "{p:?}");
    assert_eq!((line, col), (2, 10));
}

#[test]
fn invalid_name_is_rejected() {
    let (p, line, col, _) = first(&SEED.replace("ai-agent", "AI_Agent"));
    assert!(matches!(p, Problem::InvalidName(_)), "{p:?}");
    assert_eq!((line, col), (1, 7));
}

#[test]
fn duplicate_capability_names_point_at_the_second() {
    let text = "name: a\nversion: 1.0.0\ncapabilities:\n  - name: x\n  - name: x\n";
    let (p, line, col, _) = first(text);
    assert!(
        matches!(
            p,
            Problem::DuplicateName {
                what: "capability",
                first_line: 4,
                ..
            }
        ),
        "{p:?}"
    );
    assert_eq!((line, col), (5, 11));
}

#[test]
fn duplicate_proof_names_are_rejected() {
    let text = format!(
        "{SEED}  - {{ name: behavior_verification, type: lean, file: proofs/other.lean }}\n"
    );
    let (p, line, _, _) = first(&text);
    assert!(
        matches!(p, Problem::DuplicateName { what: "proof", .. }),
        "{p:?}"
    );
    assert_eq!(line, 8);
}

#[test]
fn duplicate_yaml_keys_are_rejected() {
    let (p, line, _, _) = first(&format!("{SEED}name: other\n"));
    assert!(
        matches!(p, Problem::DuplicateKey { first_line: 1, .. }),
        "{p:?}"
    );
    assert_eq!(line, 8);
}

#[test]
fn missing_proof_file_is_reported_against_base_dir() {
    let dir = std::env::temp_dir().join(format!("pf-spec-missing-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let err = check_str("agent.yaml", SEED, Some(&dir)).expect_err("proof file is missing");
    let d = err
        .diagnostics
        .iter()
        .find(|d| d.is_error())
        .expect("error");
    assert!(
        matches!(&d.problem, Problem::MissingFile { path, .. } if path == "proofs/behavior.lean"),
        "{:?}",
        d.problem
    );
    assert_eq!(d.location.map(|l| l.line), Some(7));
    std::fs::create_dir_all(dir.join("proofs")).expect("proofs dir");
    std::fs::write(
        dir.join("proofs/behavior.lean"),
        "theorem t : True := trivial\n",
    )
    .expect("write");
    assert!(check_str("agent.yaml", SEED, Some(&dir)).is_ok());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn paths_escaping_the_spec_dir_are_rejected() {
    for bad in ["../secret.lean", "/etc/passwd"] {
        let (p, line, _, _) = first(&SEED.replace("proofs/behavior.lean", bad));
        assert!(matches!(p, Problem::PathEscapes { .. }), "{bad}: {p:?}");
        assert_eq!(line, 7);
    }
}

#[test]
fn constraint_values_out_of_range_are_rejected() {
    let (p, line, col, _) = first(&SEED.replace("max_length: 1000", "max_length: 0"));
    assert!(matches!(p, Problem::OutOfRange { .. }), "{p:?}");
    assert_eq!((line, col), (5, 32));
    let rate = SEED.replace(
        "content_filter: true",
        "rate_limit: { requests: 0, per: 1m }",
    );
    assert!(matches!(first(&rate).0, Problem::OutOfRange { .. }));
    let per = SEED.replace(
        "content_filter: true",
        "rate_limit: { requests: 5, per: soon }",
    );
    assert!(matches!(first(&per).0, Problem::InvalidDuration { .. }));
}

#[test]
fn bad_regex_and_bad_json_schema_are_rejected() {
    let re = SEED.replace(
        "content_filter: true",
        "args: { q: { pattern: \"(unclosed\" } }",
    );
    assert!(matches!(first(&re).0, Problem::InvalidRegex { .. }));
    let schema = SEED.replace("content_filter: true", "arguments: { type: 12 }");
    assert!(matches!(
        first(&schema).0,
        Problem::InvalidJsonSchema { .. }
    ));
}

#[test]
fn bad_resources_are_rejected() {
    let text = format!("{SEED}resources: {{ cpu: fast, memory: 512Mi }}\n");
    let (p, line, col, _) = first(&text);
    assert!(
        matches!(p, Problem::InvalidQuantity { what: "cpu", .. }),
        "{p:?}"
    );
    assert_eq!((line, col), (8, 19));
    let text = format!("{SEED}resources: {{ memory: 0 }}\n");
    assert!(matches!(
        first(&text).0,
        Problem::InvalidQuantity { what: "memory", .. }
    ));
}

#[test]
fn proof_type_specific_fields_are_checked() {
    let nnv_without_property = SEED.replace(
        "type: lean, file: proofs/behavior.lean",
        "type: nnv, file: m.onnx",
    );
    assert!(matches!(
        first(&nnv_without_property).0,
        Problem::MissingField {
            field: "property",
            ..
        }
    ));
    let reach_with_theorem = SEED.replace(
        "type: lean, file: proofs/behavior.lean",
        "type: reach, file: p.json, theorem: T",
    );
    assert!(matches!(
        first(&reach_with_theorem).0,
        Problem::FieldNotApplicable {
            field: "theorem",
            ..
        }
    ));
}

#[test]
fn references_to_unknown_capabilities_are_rejected() {
    let covers = SEED.replace(
        "file: proofs/behavior.lean }",
        "file: proofs/behavior.lean, covers: [text_generatoin] }",
    );
    let e = errors(&covers);
    let d = e.diagnostics.iter().find(|d| d.is_error()).expect("error");
    assert!(
        matches!(d.problem, Problem::UnknownCapability { .. }),
        "{:?}",
        d.problem
    );
    assert_eq!(d.help.as_deref(), Some("did you mean `text_generation`?"));
    let policy = format!(
        "{SEED}policies:\n  - {{ name: p, type: information_flow, deny_labels: [untrusted], sinks: [send_mail.to] }}\n"
    );
    assert!(matches!(
        first(&policy).0,
        Problem::UnknownCapability { .. }
    ));
}

#[test]
fn signer_threshold_must_be_satisfiable() {
    let text = format!(
        "{SEED}signers:\n  threshold: 3\n  keys:\n    - {{ name: a, public_key: \"-----BEGIN PUBLIC KEY-----\" }}\n"
    );
    let (p, line, _, _) = first(&text);
    assert!(matches!(p, Problem::OutOfRange { .. }), "{p:?}");
    assert_eq!(line, 9);
}

#[test]
fn every_problem_is_reported_not_just_the_first() {
    let text = "name: Bad_Name\nversion: x\ncapabilities:\n  - name: a\n  - name: a\n";
    let e = errors(text);
    assert_eq!(e.error_count(), 3, "{:#?}", e.diagnostics);
}

#[test]
fn anchors_top_level_scalars_and_garbage_are_rejected_cleanly() {
    for text in [
        "a: &x 1\nb: *x\n",
        "just a string\n",
        "\u{0}\u{1}\u{2}",
        "- 1\n- 2\n",
        "",
    ] {
        let e = errors(text);
        assert!(e.error_count() >= 1, "{text:?}");
    }
}

#[test]
fn rendered_diagnostic_shows_file_line_and_caret() {
    let e = errors(&SEED.replace("capabilities:", "capabilites:"));
    let mut out = String::new();
    let handler =
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor());
    handler.render_report(&mut out, &e).expect("render");
    assert!(out.contains("agent.yaml:3:1"), "{out}");
    assert!(out.contains("did you mean `capabilities`?"), "{out}");
    assert!(out.contains("capabilites:"), "{out}");
}

#[test]
fn namespaces_must_be_dns_labels() {
    let (p, line, col, _) = first(&format!("{SEED}namespaces: [prod, Bad_NS]\n"));
    assert!(matches!(p, Problem::WrongType { .. }), "{p:?}");
    assert_eq!((line, col), (8, 20));
}

const FLOW: &str = "name: a
version: 1.0.0
capabilities:
  - name: read_mail
    output_labels: [untrusted]
    output_fields: { sender: [mail], id_: [mail] }
  - name: invite
policies:
  - name: invitations
    type: information_flow
    deny_labels: [untrusted]
    sinks: [invite.email]
    unless: [user_request, user_named_source]
    principals: [invite.user]
";

#[test]
fn output_fields_and_principals_parse() {
    let (spec, _) = check_str("agent.yaml", FLOW, None).expect("valid spec");
    let cap = spec.capability("read_mail").expect("capability");
    assert_eq!(cap.output_fields["sender"], ["mail"]);
    assert_eq!(spec.policies[0].principals[0].as_str(), "invite.user");
}

#[test]
fn a_principal_on_an_unknown_capability_is_located() {
    let text = FLOW.replace("principals: [invite.user]", "principals: [invit.user]");
    let (p, line, _, help) = first(&text);
    assert!(matches!(p, Problem::UnknownCapability { .. }), "{p:?}");
    assert_eq!(line, 14);
    assert_eq!(help.as_deref(), Some("did you mean `invite`?"));
}

#[test]
fn principals_do_not_apply_to_custom_rules() {
    let text = FLOW.replace(
        "    type: information_flow\n    deny_labels: [untrusted]\n    sinks: [invite.email]\n    unless: [user_request, user_named_source]\n",
        "    type: custom\n    rule: \"deny when false\"\n",
    );
    let (p, _, _, _) = first(&text);
    assert!(
        matches!(&p, Problem::FieldNotApplicable { field, .. } if *field == "principals"),
        "{p:?}"
    );
}
