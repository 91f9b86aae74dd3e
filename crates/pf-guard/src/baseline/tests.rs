use super::*;
use crate::anomaly::{Anomaly, RateStats};

fn record(ts: u64, agent: &str, kind: &str, tool: &str, effect: &str) -> String {
    serde_json::json!({
        "ts_ms": ts, "agent": agent, "spec_digest": "sha256:x", "kind": kind,
        "tool": tool, "effect": effect, "reasons": [], "commitment": "sha256:y"
    })
    .to_string()
}

/// A call record as guards write them since records name their session.
fn in_session(ts: u64, agent: &str, session: &str, tool: &str) -> String {
    serde_json::json!({
        "ts_ms": ts, "agent": agent, "session": session, "spec_digest": "sha256:x",
        "kind": "call", "tool": tool, "effect": "allow", "reasons": [], "commitment": "sha256:y"
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
            agents: 2,
            sessions: 2
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

fn gram(tools: [Option<&str>; 3]) -> Vec<Option<String>> {
    tools.iter().map(|t| t.map(str::to_string)).collect()
}

#[test]
fn sessions_that_ran_at_the_same_time_are_learned_apart() {
    // Two sessions of one agent, their calls interleaved in the log.
    let mut lines = Vec::new();
    for (i, (a, b)) in [
        ("search_kb", "lookup_order"),
        ("send_email", "issue_refund"),
    ]
    .into_iter()
    .enumerate()
    {
        let ts = 1_000 + i as u64 * 100;
        lines.push(in_session(ts, "agent", "s1", a));
        lines.push(in_session(ts + 50, "agent", "s2", b));
    }
    let (b, summary) = learn(&lines).expect("learns");
    assert_eq!(summary.sessions, 2);
    assert_eq!(summary.calls, 4);
    let learned: Vec<_> = b.agents["agent"].sequences.iter().cloned().collect();
    let mut expected = vec![
        gram([None, None, Some("search_kb")]),
        gram([None, Some("search_kb"), Some("send_email")]),
        gram([None, None, Some("lookup_order")]),
        gram([None, Some("lookup_order"), Some("issue_refund")]),
    ];
    expected.sort();
    assert_eq!(learned, expected, "no n-gram crosses sessions");

    // The same records without session ids (an older guard's log) are one stream: n-grams
    // that no session ever made.
    let unnamed: Vec<String> = lines
        .iter()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).expect("json");
            v.as_object_mut().expect("object").remove("session");
            v.to_string()
        })
        .collect();
    let (mixed, summary) = learn(&unnamed).expect("learns");
    assert_eq!(summary.sessions, 1);
    assert!(mixed.agents["agent"].sequences.contains(&gram([
        Some("search_kb"),
        Some("lookup_order"),
        Some("send_email")
    ])));
}

#[test]
fn a_session_teaches_what_it_teaches_a_running_guard() {
    // One session of 90 calls over 60 s (six rate windows), beside a second agent's.
    let tools = ["search_kb", "lookup_order", "send_email"];
    let mut lines = Vec::new();
    let mut d = Detector::new(Params::default(), AgentBaseline::default(), Duration::MAX);
    for i in 0..90u64 {
        let tool = tools[(i * i % 3) as usize];
        lines.push(in_session(50_000 + i * 667, "a", "only", tool));
        lines.push(in_session(50_100 + i * 667, "b", "other", "lookup_order"));
        d.record(tool, Duration::from_millis(i * 667));
    }
    let (b, summary) = learn(&lines).expect("learns");
    assert_eq!(summary.sessions, 2);
    assert_eq!(&b.agents["a"], d.baseline());
    assert!(b.agents["a"].rates["*"].windows >= 5, "{:?}", b.agents["a"]);
}

#[test]
fn sessions_are_replayed_one_after_another_from_the_baseline_so_far() {
    // Session s1 ends (no call for longer than session_gap_secs) before s2 starts; s3 runs
    // until the log's end. Each starts from what the earlier ones taught.
    let gap_ms = Params::default().session_gap_secs * 1000;
    let mut lines = Vec::new();
    let mut expected = Detector::new(Params::default(), AgentBaseline::default(), Duration::MAX);
    for (session, start) in [
        ("s1", 0),
        ("s2", gap_ms + 60_000),
        ("s3", 2 * gap_ms + 120_000),
    ] {
        let mut d = Detector::new(
            Params::default(),
            expected.baseline().clone(),
            Duration::MAX,
        );
        for i in 0..40u64 {
            let tool = ["x", "y"][(i % 2) as usize];
            lines.push(in_session(start + i * 1_500, "a", session, tool));
            d.record(tool, Duration::from_millis(i * 1_500));
        }
        expected = d;
    }
    let (b, summary) = learn(&lines).expect("learns");
    assert_eq!(summary.sessions, 3);
    assert_eq!(&b.agents["a"], expected.baseline());
}

#[test]
fn a_session_that_is_not_a_string_is_an_error_with_its_line() {
    let mut v: serde_json::Value =
        serde_json::from_str(&in_session(0, "a", "s", "x")).expect("json");
    v["session"] = serde_json::json!(7);
    let err = learn(&[in_session(0, "a", "s", "x"), v.to_string()]).expect_err("bad session");
    assert_eq!(
        err.to_string(),
        "log.jsonl:2: field `session` is not a string"
    );
}

#[test]
fn an_ended_session_is_replayed_and_let_go_before_the_log_ends() {
    let gap_ms = Params::default().session_gap_secs * 1000;
    let mut learner = Learner::new(Params::default());
    for i in 0..5 {
        learner.call("a", Some("s1"), "x", i * 1000).expect("call");
    }
    learner.call("a", Some("s2"), "y", 10_000).expect("call");
    assert_eq!((learner.open.len(), learner.held), (2, 6));
    // s1's last call was more than session_gap_secs ago; s2's is not.
    learner
        .call("a", Some("s2"), "y", 4_000 + gap_ms + 1)
        .expect("call");
    assert_eq!((learner.open.len(), learner.held), (1, 2));
    assert_eq!(learner.replayed, 1);
    let (agents, sessions) = learner.finish();
    assert_eq!(sessions, 2);
    assert_eq!(agents["a"].sequences.len(), 5, "{:?}", agents["a"]);
}

/// Calls of up to four sessions: per session, (ms since the previous call, tool) pairs; times
/// are coarse (whole seconds) so calls of different sessions often share a timestamp.
fn sessions() -> impl proptest::strategy::Strategy<Value = Vec<Vec<(u64, u8)>>> {
    proptest::collection::vec(proptest::collection::vec((0u64..40, 0u8..4), 1..30), 1..5)
}

proptest::proptest! {
    /// The log order of calls that share a timestamp (writers racing) does not change what is
    /// learned, and every allowed call is replayed.
    #[test]
    fn what_is_learned_does_not_depend_on_how_concurrent_sessions_interleave(
        sessions in sessions(),
        salt in proptest::prelude::any::<u64>(),
    ) {
        let tools = ["search_kb", "lookup_order", "send_email", "issue_refund"];
        // (ts, session, position in session, tool)
        let mut calls = Vec::new();
        for (s, steps) in sessions.iter().enumerate() {
            let mut ts = 0;
            for (i, (secs, tool)) in steps.iter().enumerate() {
                ts += secs * 1000;
                calls.push((ts, s, i, tools[usize::from(*tool)]));
            }
        }
        let log = |order: &[(u64, usize, usize, &str)]| -> Vec<String> {
            order
                .iter()
                .map(|(ts, s, _, tool)| in_session(*ts, "a", &format!("s{s}"), tool))
                .collect()
        };
        // In time order, ties broken one way, then another (a session's own calls keep their
        // order: same time, earlier position first).
        calls.sort_by_key(|c| (c.0, c.1, c.2));
        let (first, one) = learn(&log(&calls)).expect("learns");
        let mix = |c: &(u64, usize, usize, &str)| (c.1 as u64).wrapping_mul(salt | 1).rotate_left(17);
        calls.sort_by_key(|c| (c.0, mix(c), c.2));
        let (second, two) = learn(&log(&calls)).expect("learns");
        proptest::prop_assert_eq!(first, second);
        proptest::prop_assert_eq!(one.calls, calls.len());
        proptest::prop_assert_eq!(one, two);
    }

    /// Any bytes: an error or a baseline, never a panic.
    #[test]
    fn arbitrary_log_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)) {
        let _ = Baseline::learn_from_log(bytes.as_slice(), Path::new("log"), Params::default());
    }
}
