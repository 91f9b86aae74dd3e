//! The committed JSON Schema matches the Rust types, and every example spec is valid under
//! both the schema and the linter.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn example_specs() -> Vec<PathBuf> {
    let mut specs: Vec<PathBuf> = std::fs::read_dir(root().join("examples"))
        .expect("examples/ exists")
        .filter_map(|e| e.ok().map(|e| e.path().join("agent.yaml")))
        .filter(|p| p.is_file())
        .collect();
    specs.sort();
    specs
}

#[test]
fn committed_schema_matches_the_rust_types() {
    let committed =
        std::fs::read_to_string(root().join("schema/agentspec.schema.json")).unwrap_or_default();
    let generated = pf_spec::schema::json_schema();
    assert!(
        committed == generated,
        "schema/agentspec.schema.json is stale: regenerate it with `cargo run -p pf -- spec schema > schema/agentspec.schema.json`"
    );
}

#[test]
fn there_are_at_least_two_example_agents() {
    assert!(example_specs().len() >= 2, "{:?}", example_specs());
}

#[test]
fn every_example_lints_clean() {
    for path in example_specs() {
        let loaded = pf_spec::load(&path).unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
        assert!(
            loaded.warnings.is_empty(),
            "{}: {:?}",
            path.display(),
            loaded.warnings
        );
        assert!(!loaded.spec.referenced_files().is_empty());
    }
}

#[test]
fn every_example_validates_against_the_schema() {
    let schema: serde_json::Value =
        serde_json::from_str(&pf_spec::schema::json_schema()).expect("schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    for path in example_specs() {
        let spec = pf_spec::load(&path).expect("example loads").spec;
        let instance = serde_json::to_value(&spec).expect("spec to JSON");
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
    }
}

#[test]
fn schema_rejects_what_the_parser_rejects() {
    let schema: serde_json::Value =
        serde_json::from_str(&pf_spec::schema::json_schema()).expect("schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let bad = serde_json::json!({"name": "a", "version": "1.0.0", "capabilities": [], "proofs": [], "extra": 1});
    assert!(!validator.is_valid(&bad));
    let bad_kind = serde_json::json!({"name": "a", "version": "1.0.0", "proofs": [{"name": "p", "type": "coq", "file": "x"}]});
    assert!(!validator.is_valid(&bad_kind));
}

#[test]
fn starter_spec_from_init_is_valid() {
    let text = pf_spec::template::starter("my-agent");
    let (spec, warnings) = pf_spec::check_str("agent.yaml", &text, None).expect("starter is valid");
    assert_eq!(spec.name.as_str(), "my-agent");
    assert!(warnings.is_empty(), "{warnings:?}");
}
