use super::*;
use crate::anomaly::{Anomaly, RateStats};

fn record(ts: u64, agent: &str, kind: &str, tool: &str, effect: &str) -> String {
    serde_json::json!({
        "ts_ms": ts, "agent": agent, "spec_digest": "sha256:x", "kind": kind,
        "tool": tool, "effect": effect, "reasons": [], "commitment": "sha256:y"
    })
    .to_string()
}

fn learn(lines: &[String]) -> Result<(Baseline, LearnSummary), BaselineError> {
    let text = lines.join("\n");
    Baseline::learn_from_log(text.as_bytes(), Path::new("log.jsonl"), Params::default())
}

#[test]
fn learns_allowed_calls_per_agent_and_skips_the_rest() {
    let (b, summary) = learn(&[
        record(1_000, "a", "call", "search_kb", "allow"),
        record(1_100, "b", "call", "lookup_order", "allow"),
        record(1_200, "a", "output", "search_kb", "allow"),
        record(1_300, "a", "call", "delete_account", "deny"),
        record(1_400, "a", "call", "send_email", "allow"),
        String::new(),
    ])
    .expect("learns");
    assert_eq!(
        summary,
        LearnSummary {
            lines: 5,
            calls: 3,
            agents: 2
        }
    );
    let a: Vec<_> = b.agents["a"].sequences.iter().cloned().collect();
    assert_eq!(
        a,
        vec![
            vec![None, None, Some("search_kb".into())],
            vec![None, Some("search_kb".into()), Some("send_email".into())],
        ]
    );
    assert_eq!(b.agents["b"].sequences.len(), 1);
}

#[test]
fn a_learned_baseline_lets_the_same_traffic_through() {
    let lines: Vec<String> = (0..200u64)
        .map(|i| {
            record(
                i * 700,
                "a",
                "call",
                ["search_kb", "lookup_order", "send_email"][(i % 3) as usize],
                "allow",
            )
        })
        .collect();
    let (b, _) = learn(&lines).expect("learns");
    assert!(b.agents["a"].rates["*"].windows > 10);
    let mut d = Detector::new(
        b.params.clone(),
        b.agent("a").expect("a").clone(),
        Duration::ZERO,
    );
    for i in 0..30u64 {
        let tool = ["search_kb", "lookup_order", "send_email"][(i % 3) as usize];
        let now = Duration::from_millis(i * 700);
        assert_eq!(d.check(tool, now), Vec::<Anomaly>::new(), "call {i}");
        d.record(tool, now);
    }
    assert!(matches!(
        d.check("delete_account", Duration::from_millis(21_100))
            .first(),
        Some(Anomaly::UnseenSequence { .. })
    ));
}

#[test]
fn saves_and_loads_the_same_baseline() {
    let (b, _) = learn(&[
        record(0, "a", "call", "x", "allow"),
        record(20_000, "a", "call", "y", "allow"),
        record(40_000, "a", "call", "x", "allow"),
    ])
    .expect("learns");
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("baseline.json");
    b.save(&path).expect("save");
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(
        text.contains("\"format\": \"pf-guard-baseline/1\""),
        "{text}"
    );
    assert_eq!(Baseline::load(&path).expect("load"), b);
}

#[test]
fn a_bad_log_line_is_reported_with_its_line_number() {
    let err = learn(&[record(0, "a", "call", "x", "allow"), "{oops".into()]).expect_err("bad");
    assert!(
        matches!(err, BaselineError::LogRecord { line: 2, .. }),
        "{err}"
    );
    assert!(err.to_string().starts_with("log.jsonl:2: column"), "{err}");
    let err = learn(&[r#"{"kind":"call","effect":"allow","agent":"a","tool":"x"}"#.into()])
        .expect_err("no ts");
    assert!(err.to_string().contains("ts_ms"), "{err}");
    let long = format!("{{\"pad\":\"{}\"}}", "x".repeat(MAX_LOG_LINE_BYTES));
    let err = learn(&[long]).expect_err("too long");
    assert!(err.to_string().contains("longer than"), "{err}");
}

#[test]
fn invalid_baselines_are_rejected_with_where_and_why() {
    let p = Path::new("b.json");
    let err = Baseline::parse("{\n  \"format\": 3\n}", p).expect_err("type");
    assert!(
        matches!(err, BaselineError::Syntax { line: 2, .. }),
        "{err}"
    );
    let mut b = Baseline::new(Params::default());
    b.format = "other/1".into();
    let err = Baseline::parse(&serde_json::to_string(&b).expect("json"), p).expect_err("format");
    assert!(err.to_string().contains("format"), "{err}");
    let mut b = Baseline::new(Params::default());
    let mut agent = AgentBaseline::default();
    agent.sequences.insert(vec![Some("x".into())]);
    b.agents.insert("a".into(), agent);
    let err = Baseline::parse(&serde_json::to_string(&b).expect("json"), p).expect_err("length");
    assert!(err.to_string().contains("params.ngram is 3"), "{err}");
    let mut b = Baseline::new(Params::default());
    let mut agent = AgentBaseline::default();
    agent.rates.insert(
        "*".into(),
        RateStats {
            mean: -1.0,
            var: 0.0,
            windows: 1,
        },
    );
    b.agents.insert("a".into(), agent);
    let err = Baseline::parse(&serde_json::to_string(&b).expect("json"), p).expect_err("mean");
    assert!(err.to_string().contains("finite"), "{err}");
    let err = Baseline::parse(
        r#"{"format":"pf-guard-baseline/1","params":{},"agents":{}}"#,
        p,
    )
    .expect_err("missing params");
    assert!(matches!(err, BaselineError::Syntax { .. }), "{err}");
    let err = Baseline::new(Params::default())
        .agent("zed")
        .expect_err("none");
    assert_eq!(
        err.to_string(),
        "the baseline has no agent `zed` (it has: none)"
    );
}
