//! The compiler fuzz target's entry point, run as a proptest (cargo-fuzz needs nightly): spec
//! text assembled from valid and broken fragments never panics the compiler or the evaluator.

use proptest::prelude::*;
use serde_json::json;

const FRAGMENTS: [&str; 16] = [
    "  - name: a\n",
    "  - name: b\n    output_labels: [untrusted]\n",
    "    constraints: { args: { to: { domains: [example.com] } } }\n",
    "    constraints: { args: { n: { min: 5, max: 1 } } }\n",
    "    constraints: { arguments: { type: object, required: [x], additionalProperties: false } }\n",
    "    constraints: { rate_limit: { requests: 2, per: 1s }, max_concurrent: 1 }\n",
    "    constraints: { content_filter: { patterns: [\"(\"] } }\n",
    "    constraints: { allowed_paths: [relative], allowed_domains: [\"a b\"] }\n",
    "policies:\n",
    "  - name: p\n    type: information_flow\n    deny_labels: [untrusted]\n    sinks: [a.to]\n",
    "  - name: q\n    type: information_flow\n    deny_labels: [\"source:zz\"]\n    sinks: [zz]\n",
    "  - name: r\n    type: custom\n    rule: \"deny when (((args.x\"\n",
    "  - name: s\n    type: custom\n    rule: \"require calls(\\\"a\\\") < 2 && !has_label(\\\"untrusted\\\")\"\n",
    "    unless: [user_request, admin]\n",
    "resources: { max_concurrent_calls: 0 }\n",
    "capabilities:\n",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn compiler_and_evaluator_never_panic(picks in proptest::collection::vec(0usize..FRAGMENTS.len(), 0..12)) {
        let mut text = String::from("name: f\nversion: 1.0.0\ncapabilities:\n");
        for p in picks {
            text.push_str(FRAGMENTS[p]);
        }
        let Ok(spec) = pf_spec::parse_str("f.yaml", &text) else { return Ok(()) };
        let Ok(compiled) = pf_policy::compile(&spec) else { return Ok(()) };
        let policy = compiled.policy;
        let mut state = policy.new_session();
        let args = json!({"to": "x@evil.org", "n": 3, "x": [1, {"y": null}]});
        let names: Vec<String> = policy.tool_names().map(String::from).collect();
        for name in &names {
            pf_policy::record_output(&policy, &mut state, name, &json!("x@evil.org"));
            let d = pf_policy::decide(&policy, &mut state, &pf_policy::Call::new(name, &args), std::time::Duration::ZERO);
            prop_assert!(d.is_allowed() || !d.reasons.is_empty(), "a deny always has a reason");
            let _ = pf_policy::check_output(&policy, name, "x@evil.org");
        }
    }
}
