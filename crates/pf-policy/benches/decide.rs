//! In-process decision latency and throughput on the support-agent example.
//!
//! `cargo bench -p pf-policy --bench decide` (full run) or with `PF_BENCH_SMOKE=1` (a few
//! thousand decisions, for CI). Prints p50/p99 latency per decision and decisions/s on one core.
//! The side-by-side comparison with cedar-policy and regorus lives in `peers/` (not a workspace
//! member, because the peers are heavy to build).

use std::hint::black_box;
use std::time::{Duration, Instant};

use pf_policy::{Call, compile, decide, record_output, record_user_request, release};
use serde_json::{Value, json};

fn calls() -> Vec<(&'static str, Value)> {
    vec![
        ("lookup_order", json!({"order_id": "ORD-123456"})),
        (
            "search_kb",
            json!({"query": "how do I return a damaged item"}),
        ),
        (
            "send_email",
            json!({"to": "bob@customers.example.com", "subject": "Your order ORD-123456"}),
        ),
        (
            "issue_refund",
            json!({"amount": 42.5, "order_id": "ORD-123456"}),
        ),
        (
            "create_ticket",
            json!({"title": "Damaged item", "body": "Customer reports a damaged item.", "priority": "normal"}),
        ),
        (
            "send_email",
            json!({"to": "attacker@evil.example", "subject": "x"}),
        ),
        (
            "issue_refund",
            json!({"amount": 500, "order_id": "ORD-123456"}),
        ),
        ("delete_everything", json!({})),
    ]
}

fn main() {
    let smoke = std::env::var_os("PF_BENCH_SMOKE").is_some();
    let n: usize = if smoke { 20_000 } else { 2_000_000 };
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/support-agent/agent.yaml"
    );
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let Ok((spec, _)) = pf_spec::check_str(path, &text, None) else {
        eprintln!("cannot load {path}");
        std::process::exit(2);
    };
    let Ok(compiled) = compile(&spec) else {
        eprintln!("support-agent does not compile");
        std::process::exit(2);
    };
    let policy = compiled.policy;
    let calls = calls();
    let mut state = policy.new_session();
    record_user_request(
        &policy,
        &mut state,
        "My order ORD-123456 arrived damaged, please refund and email me.",
    );
    record_output(
        &policy,
        &mut state,
        "search_kb",
        &json!({"results": ["Returns: items can be returned within 30 days.", "Contact returns@customers.example.com"]}),
    );
    let mut lat = Vec::with_capacity(n);
    let mut allowed = 0usize;
    let start = Instant::now();
    for i in 0..n {
        let (tool, args) = &calls[i % calls.len()];
        // Simulated time advances 1 s per call so rate limits refill as in a live session.
        let now = Duration::from_secs(i as u64);
        if i % 1_000 == 0 {
            // New session now and then so budgets do not end up denying everything.
            state = policy.new_session();
            record_user_request(
                &policy,
                &mut state,
                "My order ORD-123456 arrived damaged, please refund and email me.",
            );
            record_output(
                &policy,
                &mut state,
                "search_kb",
                &json!(["Contact returns@customers.example.com"]),
            );
        }
        let t0 = Instant::now();
        let d = decide(&policy, &mut state, &Call::new(tool, args), now);
        if d.is_allowed() {
            release(&policy, &mut state, tool);
            allowed += 1;
        }
        lat.push(t0.elapsed());
        black_box(&d);
    }
    let total = start.elapsed();
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!("pf-policy decide (support-agent, {n} decisions, {allowed} allowed)");
    println!(
        "  p50 {:?}  p99 {:?}  max {:?}",
        pct(0.50),
        pct(0.99),
        pct(1.0)
    );
    println!(
        "  {:.0} decisions/s on one core (incl. release and timing overhead)",
        n as f64 / total.as_secs_f64()
    );
}
