//! Side-by-side decision latency: pf-policy vs cedar-policy vs regorus (Rego) on the
//! support-agent tool policy (allow-list, order-id pattern, refund range, recipient domains).
//!
//! Run: `cargo run --release --manifest-path crates/pf-policy/peers/Cargo.toml` (add
//! `-- --smoke` for a short run). Inputs are built before timing for every engine, so each
//! figure is evaluation only. Cedar has no decimals or regexes: amounts go in as cents and the
//! order-id pattern becomes `like "ORD-*"`; Cedar has no string length, so the KB query length
//! check is left out there. The Rego build here has no regex builtins (regorus built without
//! default features), so the order-id check is `startswith` + `count`; pf-policy additionally runs its stateful checks
//! (rate limits, budgets, concurrency, information flow) on every call.

use std::hint::black_box;
use std::str::FromStr;
use std::time::{Duration, Instant};

use cedar_policy::{Authorizer, Context, Entities, EntityUid, PolicySet, Request};
use serde_json::{Value, json};

const CEDAR: &str = r#"
permit(principal, action == Action::"lookup_order", resource)
  when { context.args has order_id && context.args.order_id like "ORD-*" };
permit(principal, action == Action::"search_kb", resource);
permit(principal, action == Action::"create_ticket", resource)
  when { context.args has title && context.args has body };
permit(principal, action == Action::"send_email", resource)
  when { context.args has to && (context.args.to like "*@example.com" || context.args.to like "*@customers.example.com") };
permit(principal, action == Action::"issue_refund", resource)
  when { context.args has amount_cents && context.args.amount_cents >= 1 && context.args.amount_cents <= 10000
         && context.args has order_id && context.args.order_id like "ORD-*" };
"#;

const REGO: &str = r#"
package pf
import rego.v1

default allow := false

allow if {
  input.tool == "lookup_order"
  startswith(input.args.order_id, "ORD-")
  count(input.args.order_id) == 10
}
allow if {
  input.tool == "search_kb"
  count(input.args.query) <= 200
}
allow if {
  input.tool == "create_ticket"
  is_string(input.args.title)
  is_string(input.args.body)
}
allow if {
  input.tool == "send_email"
  some d in ["example.com", "customers.example.com"]
  endswith(input.args.to, concat("", ["@", d]))
}
allow if {
  input.tool == "issue_refund"
  input.args.amount >= 0.01
  input.args.amount <= 100
  startswith(input.args.order_id, "ORD-")
  count(input.args.order_id) == 10
}
"#;

fn calls() -> Vec<(&'static str, Value)> {
    vec![
        ("lookup_order", json!({"order_id": "ORD-123456"})),
        (
            "search_kb",
            json!({"query": "how do I return a damaged item"}),
        ),
        (
            "send_email",
            json!({"to": "bob@customers.example.com", "subject": "Your order"}),
        ),
        (
            "issue_refund",
            json!({"amount": 42.5, "order_id": "ORD-123456"}),
        ),
        (
            "create_ticket",
            json!({"title": "Damaged item", "body": "Customer reports a damaged item."}),
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

struct Stats {
    p50: Duration,
    p99: Duration,
    per_sec: f64,
    allowed: usize,
}

fn measure(n: usize, mut f: impl FnMut(usize) -> bool) -> Stats {
    let mut lat = Vec::with_capacity(n);
    let mut allowed = 0;
    let start = Instant::now();
    for i in 0..n {
        let t0 = Instant::now();
        let ok = f(i);
        lat.push(t0.elapsed());
        allowed += usize::from(black_box(ok));
    }
    let total = start.elapsed();
    lat.sort();
    Stats {
        p50: lat[n / 2],
        p99: lat[(n * 99) / 100],
        per_sec: n as f64 / total.as_secs_f64(),
        allowed,
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let smoke = std::env::args().any(|a| a == "--smoke");
    let n = if smoke { 20_000 } else { 1_000_000 };
    let calls = calls();

    // pf-policy
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../examples/support-agent/agent.yaml"
    );
    let text = std::fs::read_to_string(path)?;
    let (spec, _) = pf_spec::check_str(path, &text, None).map_err(|e| format!("{e:?}"))?;
    let policy = pf_policy::compile(&spec)
        .map_err(|e| format!("{e:?}"))?
        .policy;
    let mut state = policy.new_session();
    let ours = measure(n, |i| {
        if i % 1_000 == 0 {
            state = policy.new_session();
        }
        let (tool, args) = &calls[i % calls.len()];
        // 1 s of simulated time per call keeps the rate limits mostly open.
        let d = pf_policy::decide(
            &policy,
            &mut state,
            &pf_policy::Call::new(tool, args),
            Duration::from_secs(i as u64),
        );
        let ok = d.is_allowed();
        if ok {
            pf_policy::release(&policy, &mut state, tool);
        }
        ok
    });

    // cedar-policy
    let policies = PolicySet::from_str(CEDAR)?;
    let entities = Entities::empty();
    let authorizer = Authorizer::new();
    let mut requests = Vec::new();
    for (tool, args) in &calls {
        let mut a = args.clone();
        if let Some(amount) = a.get("amount").and_then(Value::as_f64) {
            a["amount_cents"] = json!((amount * 100.0).round() as i64);
            a.as_object_mut().map(|m| m.remove("amount"));
        }
        let context = Context::from_json_value(json!({ "args": a }), None)?;
        requests.push(Request::new(
            EntityUid::from_str(r#"Agent::"support-agent""#)?,
            EntityUid::from_str(&format!(r#"Action::"{tool}""#))?,
            EntityUid::from_str(r#"Tool::"t""#)?,
            context,
            None,
        )?);
    }
    let cedar = measure(n, |i| {
        let r = authorizer.is_authorized(&requests[i % requests.len()], &policies, &entities);
        r.decision() == cedar_policy::Decision::Allow
    });

    // regorus (Rego)
    let mut engine = regorus::Engine::new();
    engine.add_policy("support.rego".into(), REGO.into())?;
    let inputs: Vec<regorus::Value> = calls
        .iter()
        .map(|(tool, args)| {
            regorus::Value::from_json_str(&json!({"tool": tool, "args": args}).to_string())
        })
        .collect::<Result<_, _>>()?;
    let rego = measure(n.min(200_000), |i| {
        engine.set_input(inputs[i % inputs.len()].clone());
        matches!(
            engine.eval_rule("data.pf.allow".into()),
            Ok(regorus::Value::Bool(true))
        )
    });

    println!(
        "decision latency, support-agent policy, {} calls per engine (regorus {})",
        n,
        n.min(200_000)
    );
    println!(
        "{:<14} {:>10} {:>10} {:>14} {:>9}",
        "engine", "p50", "p99", "decisions/s", "allowed"
    );
    for (name, s) in [
        ("pf-policy", &ours),
        ("cedar-policy", &cedar),
        ("regorus", &rego),
    ] {
        println!(
            "{:<14} {:>10} {:>10} {:>14.0} {:>8.1}%",
            name,
            format!("{:?}", s.p50),
            format!("{:?}", s.p99),
            s.per_sec,
            100.0 * s.allowed as f64 / if name == "regorus" { n.min(200_000) } else { n } as f64
        );
    }
    println!(
        "ratios (peer p50 / pf-policy p50): cedar {:.1}x, regorus {:.1}x; throughput pf/cedar {:.1}x, pf/regorus {:.1}x",
        cedar.p50.as_secs_f64() / ours.p50.as_secs_f64(),
        rego.p50.as_secs_f64() / ours.p50.as_secs_f64(),
        ours.per_sec / cedar.per_sec,
        ours.per_sec / rego.per_sec
    );
    Ok(())
}
