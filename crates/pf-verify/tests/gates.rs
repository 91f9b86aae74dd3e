//! Quality gates over hand-made results.

use pf_verify::gates::evaluate;
use pf_verify::{GateConfig, ObligationResult, Verdict};

fn spec(caps: &str) -> pf_spec::AgentSpec {
    let text = format!("name: a\nversion: 1.0.0\ncapabilities:\n{caps}");
    pf_spec::parse_str("a.yaml", &text).expect("spec")
}

fn result(name: &str, kind: &str, verdict: Verdict, covers: &[&str]) -> ObligationResult {
    ObligationResult {
        name: name.into(),
        kind: kind.into(),
        checker: Some("pf-lean".into()),
        checker_version: Some("1.2.0".into()),
        input_digest: Some("00".into()),
        verdict,
        statistics: Default::default(),
        axioms: None,
        duration_ms: 10,
        timeout_ms: 1000,
        cached: false,
        covers: covers.iter().map(|s| s.to_string()).collect(),
    }
}

fn failures(gates: &[pf_verify::GateResult], name: &str) -> Vec<String> {
    gates
        .iter()
        .find(|g| g.gate == name)
        .map(|g| g.failures.clone())
        .unwrap_or_else(|| panic!("no gate {name}"))
}

#[test]
fn uncovered_capability_fails_unless_waived() {
    let s = spec("  - name: pay\n    kind: payment\n  - name: read\n    waiver: read-only\n");
    let gates = evaluate(&s, &[], &GateConfig::default());
    let f = failures(&gates, "coverage");
    assert_eq!(f.len(), 1);
    assert!(f[0].contains("\"pay\""), "{f:?}");
}

#[test]
fn coverage_needs_a_proved_obligation() {
    let s = spec("  - name: pay\n    kind: payment\n");
    let r = vec![result("o", "nnv", Verdict::unknown("timeout"), &["pay"])];
    assert!(!failures(&evaluate(&s, &r, &GateConfig::default()), "coverage").is_empty());
    let r = vec![result("o", "nnv", Verdict::Proved, &["pay"])];
    assert!(failures(&evaluate(&s, &r, &GateConfig::default()), "coverage").is_empty());
}

#[test]
fn lean_axioms_must_be_reported_and_allowed() {
    let s = spec("");
    let cfg = GateConfig::default();
    let mut ok = result("ok", "lean", Verdict::Proved, &[]);
    ok.axioms = Some(vec!["propext".into(), "Quot.sound".into()]);
    let mut choice = result("choice", "lean", Verdict::Proved, &[]);
    choice.axioms = Some(vec!["Classical.choice".into(), "myAxiom".into()]);
    let mut sorry = result("sorry", "lean", Verdict::Proved, &[]);
    sorry.axioms = Some(vec!["sorryAx".into()]);
    let silent = result("silent", "lean", Verdict::Proved, &[]);
    let f = failures(&evaluate(&s, &[ok, choice, sorry, silent], &cfg), "axioms");
    assert_eq!(f.len(), 3, "{f:?}");
    assert!(f[0].starts_with("choice:") && f[0].contains("myAxiom"));
    assert!(f[1].starts_with("sorry:") && f[1].contains("sorryAx"));
    assert!(f[2].starts_with("silent:") && f[2].contains("reported no axiom list"));
}

#[test]
fn sorry_is_refused_even_if_allow_listed() {
    let cfg = GateConfig {
        allowed_axioms: vec!["sorryAx".into()],
        ..GateConfig::default()
    };
    let mut r = result("s", "lean", Verdict::Proved, &[]);
    r.axioms = Some(vec!["sorryAx".into()]);
    assert_eq!(
        failures(&evaluate(&spec(""), &[r], &cfg), "axioms").len(),
        1
    );
}

#[test]
fn unknown_and_over_budget_fail() {
    let mut slow = result("slow", "nnv", Verdict::Proved, &[]);
    slow.duration_ms = 2000;
    let unknown = result("u", "nnv", Verdict::unknown("gave up"), &[]);
    let gates = evaluate(&spec(""), &[slow, unknown], &GateConfig::default());
    assert_eq!(failures(&gates, "time_budget").len(), 1);
    let f = failures(&gates, "all_proved");
    assert_eq!(f.len(), 1);
    assert!(f[0].contains("unknown (gave up)"));
}

#[test]
fn checker_versions_have_minimums() {
    let mut cfg = GateConfig::default();
    cfg.min_checker_versions
        .insert("pf-lean".into(), "1.10.0".into());
    let r = result("o", "nnv", Verdict::Proved, &[]);
    let f = failures(
        &evaluate(&spec(""), std::slice::from_ref(&r), &cfg),
        "checker_versions",
    );
    assert_eq!(f.len(), 1, "1.2.0 < 1.10.0");
    cfg.min_checker_versions
        .insert("pf-lean".into(), "1.2".into());
    assert!(failures(&evaluate(&spec(""), &[r], &cfg), "checker_versions").is_empty());
}

#[test]
fn gate_config_reads_from_json_with_defaults() {
    let cfg: GateConfig = serde_json::from_str(r#"{"require_coverage": false}"#).expect("json");
    assert!(!cfg.require_coverage);
    assert_eq!(cfg.allowed_axioms.len(), 3);
    assert!(serde_json::from_str::<GateConfig>(r#"{"typo": 1}"#).is_err());
}
