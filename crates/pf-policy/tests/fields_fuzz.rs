//! The `output_fields` fuzz target's entry point, run as a proptest: tool output text built from
//! YAML and JSON fragments (anchors, aliases, tags, deep nesting, broken quotes) never panics the
//! field parser or the kernel that records it.

use pf_policy::{Call, compile, decide, record_output};
use proptest::prelude::*;
use serde_json::json;

const FRAGMENTS: [&str; 18] = [
    "- ",
    "sender: ",
    "body: ",
    "a@b.example",
    "'quoted '' text'",
    "\"dq\\n\"",
    "&anchor ",
    "*anchor",
    "!!str ",
    "[",
    "]",
    "{",
    "}",
    ": ",
    "\n  ",
    "\n",
    "? complex\n",
    "--- \n",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn field_parser_and_recording_never_panic(picks in proptest::collection::vec(0usize..FRAGMENTS.len(), 0..40)) {
        let text: String = picks.iter().map(|&i| FRAGMENTS[i]).collect();
        let out = json!(text);
        let _ = pf_policy::fields::structured_leaves(&out, &|k| k == "sender");
        let spec = pf_spec::parse_str(
            "f.yaml",
            "name: f\nversion: 1.0.0\ncapabilities:\n  - name: read\n    output_labels: [untrusted]\n    output_fields: { sender: [mail] }\n  - name: send\n    constraints: { args: { to: { max_length: 100 } } }\npolicies:\n  - name: p\n    type: information_flow\n    deny_labels: [untrusted]\n    sinks: [send.to]\n",
        ).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        let policy = compile(&spec).map_err(|e| TestCaseError::fail(e.to_string()))?.policy;
        let mut state = policy.new_session();
        record_output(&policy, &mut state, "read", &out);
        let _ = decide(&policy, &mut state, &Call::new("send", &json!({"to": "a@b.example"})), std::time::Duration::ZERO);
    }
}

#[test]
fn deep_flow_nesting_is_not_structured() {
    let text = format!("a: {}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(pf_policy::fields::structured_leaves(&json!(text), &|_| true).is_none());
    let text = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(pf_policy::fields::structured_leaves(&json!(text), &|_| true).is_none());
}
