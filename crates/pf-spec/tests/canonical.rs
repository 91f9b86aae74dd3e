//! Canonical form: formatting a spec never changes its meaning or its digest.

use proptest::prelude::*;

fn spec_yaml(name: &str, caps: &[(String, Option<u64>, bool)], cpu: u32, desc: &str) -> String {
    let mut s = format!("name: {name}\nversion: 1.2.3\ndescription: {desc:?}\ncapabilities:\n");
    for (cap, max_len, filter) in caps {
        s.push_str(&format!("  - name: {cap}\n"));
        if let Some(m) = max_len {
            s.push_str(&format!(
                "    constraints:\n      max_length: {m}\n      content_filter: {filter}\n"
            ));
        }
    }
    s.push_str(&format!(
        "resources:\n  cpu: {cpu}m\n  memory: 1Gi\nproofs: []\n"
    ));
    s
}

proptest! {
    #[test]
    fn fmt_round_trip_preserves_the_digest(
        name in "[a-z][a-z0-9-]{0,20}[a-z0-9]",
        caps in proptest::collection::btree_map("[a-z_]{1,12}", (proptest::option::of(1u64..100_000), any::<bool>()), 0..5),
        cpu in 1u32..8000,
        desc in "[ -~]{0,40}",
    ) {
        let caps: Vec<(String, Option<u64>, bool)> = caps.into_iter().map(|(k, (m, f))| (k, m, f)).collect();
        let text = spec_yaml(&name, &caps, cpu, &desc);
        let (spec, _) = pf_spec::check_str("a.yaml", &text, None).map_err(|e| TestCaseError::fail(format!("{e:?}\n{text}")))?;
        let formatted = pf_spec::to_yaml(&spec);
        let (again, _) = pf_spec::check_str("b.yaml", &formatted, None).map_err(|e| TestCaseError::fail(format!("{e:?}\n{formatted}")))?;
        prop_assert_eq!(pf_spec::digest(&spec), pf_spec::digest(&again));
        // Formatting is idempotent.
        prop_assert_eq!(&formatted, &pf_spec::to_yaml(&again));
    }
}

#[test]
fn digest_ignores_comments_order_and_style_but_not_content() {
    let a = "name: a\nversion: 1.0.0\ncapabilities: [{name: x, constraints: {max_length: 5}}]\n";
    let b = "# comment\nversion: \"1.0.0\"\nname: a\ncapabilities:\n  - constraints:\n      max_length: 5\n    name: x\n";
    let c = "name: a\nversion: 1.0.0\ncapabilities: [{name: x, constraints: {max_length: 6}}]\n";
    let d = |t: &str| pf_spec::digest(&pf_spec::check_str("s.yaml", t, None).expect("valid").0);
    assert_eq!(d(a), d(b));
    assert_ne!(d(a), d(c));
    assert!(d(a).starts_with("sha256:") && d(a).len() == 7 + 64);
}

#[test]
fn examples_format_to_equivalent_specs() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    for dir in ["support-agent", "coding-agent", "braking-agent"] {
        let loaded = pf_spec::load(&root.join(dir).join("agent.yaml")).expect("example loads");
        let formatted = pf_spec::to_yaml(&loaded.spec);
        let again = pf_spec::check_str("fmt.yaml", &formatted, None)
            .expect("formatted example parses")
            .0;
        assert_eq!(
            pf_spec::digest(&loaded.spec),
            pf_spec::digest(&again),
            "{dir}:\n{formatted}"
        );
    }
}
