//! The reader never panics: arbitrary text and mutated valid specs give a spec or diagnostics.

use proptest::prelude::*;

const SEED: &str = include_str!("../../../examples/support-agent/agent.yaml");

fn exercise(text: &str) {
    match pf_spec::parse_str("p.yaml", text) {
        Ok(spec) => {
            let _ = pf_spec::lint(&spec, "p.yaml", text, None);
            let _ = pf_spec::to_yaml(&spec);
            let _ = pf_spec::digest(&spec);
        }
        Err(e) => assert!(e.error_count() >= 1),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        exercise(&text);
    }

    #[test]
    fn mutated_valid_spec_never_panics(cut in 0usize..SEED.len(), insert in "[ -~\\n]{0,8}") {
        let mut text = SEED.to_string();
        let at = (0..=cut).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
        text.insert_str(at, &insert);
        exercise(&text);
        exercise(&SEED[..at]);
    }
}

#[test]
fn oversize_spec_is_rejected() {
    let text = format!(
        "name: a\nversion: 1.0.0\ndescription: \"{}\"\n",
        "x".repeat(pf_spec::MAX_SPEC_BYTES as usize)
    );
    let err = pf_spec::parse_str("big.yaml", &text).expect_err("too large");
    assert!(matches!(
        err.diagnostics[0].problem,
        pf_spec::Problem::TooLarge { .. }
    ));
}

#[test]
fn deeply_nested_yaml_is_handled() {
    let text = format!(
        "name: a\nversion: 1.0.0\ndescription: {}{}\n",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    exercise(&text);
}
