//! Anomaly detection inside the production enforcer, on the support agent's compiled policy:
//! alert mode never changes a decision, deny mode denies flagged calls with anomaly reason codes,
//! and every alert is counted and logged.

use std::sync::Arc;
use std::time::Duration;

use pf_guard::alert::AnomalyMonitor;
use pf_guard::anomaly::{AgentBaseline, AnomalyMode, Detector, Params};
use pf_guard::log::{Committer, MemorySink};
use pf_guard::metrics::{AnomalyLabels, GuardMetrics};
use pf_guard::{CallOutcome, Enforcer, PolicyEnforcer};
use proptest::prelude::*;
use serde_json::{Value, json};

fn policy() -> Arc<pf_policy::Policy> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/support-agent/agent.yaml");
    let loaded = pf_spec::load(&path).expect("example spec loads");
    Arc::new(pf_policy::compile(&loaded.spec).expect("compiles").policy)
}

struct Harness {
    enforcer: PolicyEnforcer,
    sink: Arc<MemorySink>,
    metrics: Arc<GuardMetrics>,
}

fn harness(monitor: Option<AnomalyMonitor>) -> Harness {
    let sink = Arc::new(MemorySink::default());
    let metrics = Arc::new(GuardMetrics::default());
    let mut enforcer = PolicyEnforcer::new(
        policy(),
        "sha256:test".into(),
        sink.clone(),
        metrics.clone(),
        Committer::with_salt([1; 32]),
    );
    if let Some(m) = monitor {
        enforcer = enforcer.with_anomaly_monitor(m);
    }
    Harness {
        enforcer,
        sink,
        metrics,
    }
}

fn monitor(params: Params, baseline: AgentBaseline, mode: AnomalyMode) -> AnomalyMonitor {
    AnomalyMonitor::new(Detector::new(params, baseline, Duration::ZERO), mode, None)
}

/// A baseline that knows search_kb -> lookup_order -> send_email (from a session start).
fn normal_baseline(params: &Params) -> AgentBaseline {
    let mut d = Detector::new(params.clone(), AgentBaseline::default(), Duration::MAX);
    for tool in ["search_kb", "lookup_order", "send_email"] {
        d.record(tool, Duration::ZERO);
    }
    d.baseline().clone()
}

fn call_args(tool: &str) -> Value {
    match tool {
        "search_kb" => json!({"query": "refunds"}),
        "lookup_order" => json!({"order_id": "ORD-123456"}),
        "send_email" => json!({"to": "a@example.com", "subject": "hi", "body": "x"}),
        "issue_refund" => json!({"order_id": "ORD-123456", "amount": 5}),
        _ => json!({}),
    }
}

fn codes(outcome: &CallOutcome) -> Vec<String> {
    match outcome {
        CallOutcome::Allow => vec![],
        CallOutcome::Deny { codes, .. } => codes.clone(),
    }
}

#[test]
fn deny_mode_denies_an_unseen_sequence_with_its_reason_code() {
    let p = Params::default();
    let mut h = harness(Some(monitor(
        p.clone(),
        normal_baseline(&p),
        AnomalyMode::Deny,
    )));
    for tool in ["search_kb", "lookup_order", "send_email"] {
        let out = h.enforcer.decide_call(tool, &call_args(tool));
        assert_eq!(out, CallOutcome::Allow, "{tool}");
        h.enforcer.finish_call(tool);
    }
    let out = h
        .enforcer
        .decide_call("issue_refund", &call_args("issue_refund"));
    assert_eq!(codes(&out), vec!["anomaly.unseen_sequence"], "{out:?}");
    let CallOutcome::Deny { reason, .. } = out else {
        unreachable!()
    };
    assert!(
        reason.contains("lookup_order -> send_email -> issue_refund"),
        "{reason}"
    );

    let records = h.sink.records();
    let tail: Vec<(&str, &str, Vec<String>)> = records
        .iter()
        .rev()
        .take(2)
        .rev()
        .map(|r| (r.kind, r.effect, r.reasons.clone()))
        .collect();
    assert_eq!(
        tail,
        vec![
            (
                "anomaly",
                "deny",
                vec!["anomaly.unseen_sequence".to_string()]
            ),
            ("call", "deny", vec!["anomaly.unseen_sequence".to_string()]),
        ]
    );
    let alerts = h
        .metrics
        .anomalies
        .get_or_create(&AnomalyLabels {
            kind: "unseen_sequence".into(),
            tool: "issue_refund".into(),
        })
        .get();
    assert_eq!(alerts, 1);
    assert!(
        h.metrics
            .encode()
            .contains("pf_guard_anomalies_total{kind=\"unseen_sequence\",tool=\"issue_refund\"} 1")
    );
}

#[test]
fn a_denied_call_does_not_enter_the_sequence_or_hold_a_concurrency_slot() {
    let p = Params::default();
    let mut h = harness(Some(monitor(
        p.clone(),
        normal_baseline(&p),
        AnomalyMode::Deny,
    )));
    // send_email first is unseen; it is denied three times (max_concurrent is 2, so a leaked
    // slot would make the policy refuse the later, normal send_email).
    for _ in 0..3 {
        let out = h
            .enforcer
            .decide_call("send_email", &call_args("send_email"));
        assert_eq!(codes(&out), vec!["anomaly.unseen_sequence"]);
    }
    for tool in ["search_kb", "lookup_order", "send_email"] {
        assert_eq!(
            h.enforcer.decide_call(tool, &call_args(tool)),
            CallOutcome::Allow,
            "{tool}"
        );
    }
}

#[test]
fn deny_mode_denies_a_rate_spike_beyond_the_floor() {
    let p = Params {
        ngram: 1,
        min_calls: 3,
        window_secs: 3600,
        session_gap_secs: 3600,
        ..Params::default()
    };
    let mut baseline = normal_baseline(&p);
    baseline.rates.clear();
    let mut h = harness(Some(monitor(p, baseline, AnomalyMode::Deny)));
    for _ in 0..3 {
        assert_eq!(
            h.enforcer.decide_call("search_kb", &call_args("search_kb")),
            CallOutcome::Allow
        );
    }
    let out = h.enforcer.decide_call("search_kb", &call_args("search_kb"));
    assert_eq!(codes(&out), vec!["anomaly.rate_spike"], "{out:?}");
    let anomaly_records = h
        .sink
        .records()
        .iter()
        .filter(|r| r.kind == "anomaly")
        .count();
    assert_eq!(anomaly_records, 2, "one for all tools, one for search_kb");
}

#[test]
fn a_policy_denial_is_not_screened_for_anomalies() {
    let p = Params::default();
    let mut h = harness(Some(monitor(
        p,
        AgentBaseline::default(),
        AnomalyMode::Deny,
    )));
    let out = h.enforcer.decide_call("delete_account", &json!({}));
    assert!(
        codes(&out).iter().all(|c| !c.starts_with("anomaly.")),
        "{out:?}"
    );
    assert!(h.sink.records().iter().all(|r| r.kind != "anomaly"));
}

const TOOLS: [&str; 5] = [
    "search_kb",
    "lookup_order",
    "send_email",
    "issue_refund",
    "delete_account",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Alert mode raises events but never changes what the policy decided.
    #[test]
    fn alert_mode_never_changes_a_decision(
        calls in prop::collection::vec((0..TOOLS.len(), any::<bool>(), any::<bool>()), 0..40),
        floor in 1u64..4,
    ) {
        let p = Params { min_calls: floor, ..Params::default() };
        let mut plain = harness(None);
        let mut alerting = harness(Some(monitor(p.clone(), normal_baseline(&p), AnomalyMode::Alert)));
        for (i, bad_args, finish) in calls {
            let tool = TOOLS[i];
            let args = if bad_args { json!({"amount": 1e9, "to": "x@evil.example"}) } else { call_args(tool) };
            let a = plain.enforcer.decide_call(tool, &args);
            let b = alerting.enforcer.decide_call(tool, &args);
            prop_assert_eq!(&a, &b);
            if finish && a == CallOutcome::Allow {
                plain.enforcer.finish_call(tool);
                alerting.enforcer.finish_call(tool);
            }
        }
        let decisions = |h: &Harness| -> Vec<(String, &'static str, Vec<String>)> {
            h.sink.records().into_iter().filter(|r| r.kind == "call").map(|r| (r.tool, r.effect, r.reasons)).collect()
        };
        prop_assert_eq!(decisions(&plain), decisions(&alerting));
        prop_assert!(alerting.sink.records().iter().filter(|r| r.kind == "anomaly").all(|r| r.effect == "alert"));
    }
}
