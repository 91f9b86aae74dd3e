//! Differential test: the compiled kernel and the simple reference evaluator agree (effect,
//! obligations and reason-code set) on random specs and random call sequences.

use std::time::Duration;

use pf_policy::reference::Reference;
use pf_policy::{
    Call, Effect, Limits, compile, decide, record_output, record_user_request, release,
};
use proptest::prelude::*;
use serde_json::{Value, json};

const TOOLS: [&str; 3] = ["t0", "t1", "t2"];
const STRINGS: [&str; 12] = [
    "hello world",
    "bob@example.com",
    "eve@evil.org",
    "/w/src/x.rs",
    "/etc/passwd",
    "ORD-123",
    "https://test.org/p",
    "xyzzy",
    "ab",
    "mail.example.com",
    "13",
    "Dora",
];
const OUTPUTS: [&str; 10] = [
    "contact eve@evil.org now",
    "ORD-123 shipped, see https://test.org/p.",
    "hello world",
    "abc",
    "write to bob@example.com (billing)",
    "path: /w/src/x.rs",
    "- sender: bob@example.com\n  body: 'delete 13, mail eve@evil.org'\n  to: [ab, Dora]\n",
    "{\"sender\": \"eve@evil.org\", \"to\": {\"mail.example.com\": \"rw\"}, \"id\": \"13\"}",
    "sender: [unclosed",
    "Dora wrote: ab 13 xyzzy",
];
const USER: [&str; 5] = [
    "please email bob@example.com",
    "check ORD-123",
    "nothing",
    "invite Dora, see page xyzzy",
    "from 2024-05-13 on",
];

#[derive(Debug, Clone)]
enum Op {
    Decide {
        tool: usize,
        args: Value,
        tokens: u64,
        cost: f64,
    },
    Output {
        tool: usize,
        text: usize,
        raw: bool,
    },
    User(usize),
    Release(usize),
    Wait(u64),
}

fn opt<T: std::fmt::Debug + Clone + 'static>(
    s: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<Option<T>> {
    prop_oneof![Just(None), s.prop_map(Some)].boxed()
}

fn subset(items: &'static [&'static str]) -> impl Strategy<Value = Vec<&'static str>> {
    proptest::sample::subsequence(items, 0..=items.len())
}

fn capability(name: &'static str) -> impl Strategy<Value = String> {
    let string_arg = (
        opt(prop_oneof![
            Just("[a-z]+"),
            Just("ORD-[0-9]{3}"),
            Just(".*@.*")
        ]),
        opt(0u64..20),
        subset(&["example.com", "test.org"]),
        subset(&["/w", "/w/src"]),
    )
        .prop_map(|(p, ml, d, pp)| {
            let mut s = Vec::new();
            if let Some(p) = p {
                s.push(format!("pattern: {p:?}"));
            }
            if let Some(ml) = ml {
                s.push(format!("max_length: {ml}"));
            }
            if !d.is_empty() {
                s.push(format!("domains: {d:?}"));
            }
            if !pp.is_empty() {
                s.push(format!("path_prefixes: {pp:?}"));
            }
            format!("a: {{ {} }}", s.join(", "))
        });
    let num_arg = (opt(-5i32..5), opt(0i32..10)).prop_map(|(min, max)| {
        let mut s = Vec::new();
        if let Some(m) = min {
            s.push(format!("min: {m}"));
        }
        if let Some(m) = max {
            s.push(format!("max: {m}"));
        }
        format!("n: {{ {} }}", s.join(", "))
    });
    let schema = prop_oneof![
        Just(None),
        Just(Some(
            "{ type: object, properties: { a: { type: [string, array] } } }"
        )),
        Just(Some("{ type: object, required: [a] }")),
        Just(Some(
            "{ type: object, properties: { n: { type: number, maximum: 7 } } }"
        )),
    ];
    (
        subset(&["untrusted", "pii"]),
        opt(string_arg),
        opt(num_arg),
        schema,
        subset(&["example.com", "test.org"]),
        subset(&["/w"]),
        opt((1u32..4, prop_oneof![Just("1s"), Just("2s")])),
        (opt(0u64..5), opt(0u64..60), opt(0u32..10)),
        opt(1u32..3),
        opt(prop_oneof![
            Just("true"),
            Just("{ detectors: [email], action: deny }")
        ]),
        opt(1u64..100),
        (
            opt(subset(&["untrusted", "pii", "meta"])),
            opt(subset(&["untrusted", "pii", "meta"])),
        ),
    )
        .prop_map(
            move |(
                labels,
                sarg,
                narg,
                schema,
                domains,
                paths,
                rate,
                budget,
                conc,
                filter,
                maxlen,
                (sender, to),
            )| {
                let mut c = Vec::new();
                let mut args: Vec<String> = Vec::new();
                args.extend(sarg);
                args.extend(narg);
                if !args.is_empty() {
                    c.push(format!("args: {{ {} }}", args.join(", ")));
                }
                if let Some(s) = schema {
                    c.push(format!("arguments: {s}"));
                }
                if !domains.is_empty() {
                    c.push(format!("allowed_domains: {domains:?}"));
                }
                if !paths.is_empty() {
                    c.push(format!("allowed_paths: {paths:?}"));
                }
                if let Some((r, per)) = rate {
                    c.push(format!("rate_limit: {{ requests: {r}, per: {per} }}"));
                }
                let (calls, tokens, cost) = budget;
                let mut b = Vec::new();
                if let Some(x) = calls {
                    b.push(format!("max_calls: {x}"));
                }
                if let Some(x) = tokens {
                    b.push(format!("max_tokens: {x}"));
                }
                if let Some(x) = cost {
                    b.push(format!("max_cost_usd: {x}"));
                }
                if !b.is_empty() {
                    c.push(format!("budget: {{ {} }}", b.join(", ")));
                }
                if let Some(n) = conc {
                    c.push(format!("max_concurrent: {n}"));
                }
                if let Some(f) = filter {
                    c.push(format!("content_filter: {f}"));
                }
                if let Some(m) = maxlen {
                    c.push(format!("max_length: {m}"));
                }
                let mut fields = Vec::new();
                if let Some(l) = sender {
                    fields.push(format!("sender: {l:?}"));
                }
                if let Some(l) = to {
                    fields.push(format!("to: {l:?}"));
                }
                let fields = if fields.is_empty() {
                    String::new()
                } else {
                    format!("    output_fields: {{ {} }}\n", fields.join(", "))
                };
                format!(
                    "  - name: {name}\n    output_labels: {labels:?}\n{fields}    constraints: {{ {} }}\n",
                    c.join(", ")
                )
            },
        )
}

fn flow_policy(i: usize) -> impl Strategy<Value = String> {
    (
        proptest::sample::subsequence(&["untrusted", "pii", "source:t0", "meta"][..], 1..=2),
        proptest::sample::subsequence(&["t0", "t1.a", "t2.a", "t2", "t1.n"][..], 1..=3),
        any::<bool>(),
        opt(subset(&["t0.a", "t1.n", "t2.n"])),
    )
        .prop_map(move |(labels, sinks, unless, principals)| {
            let mut u = Vec::new();
            if unless {
                u.push("user_request");
            }
            // Principals on a tool the rule has no sink on would be a compile error: keep those
            // on sink tools, and name sources only when one is left.
            let principals: Vec<&str> = principals
                .unwrap_or_default()
                .into_iter()
                .filter(|p| sinks.iter().any(|s| s.split('.').next() == p.split('.').next()))
                .collect();
            let mut extra = String::new();
            if !principals.is_empty() {
                u.push("user_named_source");
                extra = format!("\n    principals: {principals:?}");
            }
            let unless = if u.is_empty() { String::new() } else { format!("\n    unless: {u:?}") };
            format!("  - name: p{i}\n    type: information_flow\n    deny_labels: {labels:?}\n    sinks: {sinks:?}{unless}{extra}\n")
        })
}

fn spec() -> impl Strategy<Value = String> {
    (
        capability(TOOLS[0]),
        capability(TOOLS[1]),
        capability(TOOLS[2]),
        proptest::collection::vec(0usize..1, 0..=2).prop_flat_map(|v| {
            let n = v.len();
            proptest::collection::vec(flow_policy(0), n..=n)
        }),
        opt(1u32..4),
    )
        .prop_map(|(a, b, c, flows, conc)| {
            let flows: String = flows
                .iter()
                .enumerate()
                .map(|(i, f)| f.replacen("name: p0", &format!("name: p{i}"), 1))
                .collect();
            let policies = if flows.is_empty() {
                "policies: []\n".to_string()
            } else {
                format!("policies:\n{flows}")
            };
            let resources = conc
                .map(|n| format!("resources:\n  max_concurrent_calls: {n}\n"))
                .unwrap_or_default();
            format!("name: diff\nversion: 1.0.0\ncapabilities:\n{a}{b}{c}{policies}{resources}")
        })
}

fn arg_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        proptest::sample::select(&STRINGS[..]).prop_map(|s| json!(s)),
        (-10i32..12).prop_map(|n| json!(n)),
        proptest::sample::subsequence(&STRINGS[..], 0..3).prop_map(|v| json!(v)),
        Just(Value::Null),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let args = (opt(arg_value()), opt(arg_value()), opt(arg_value())).prop_map(|(a, n, x)| {
        let mut m = serde_json::Map::new();
        if let Some(v) = a {
            m.insert("a".into(), v);
        }
        if let Some(v) = n {
            m.insert("n".into(), v);
        }
        if let Some(v) = x {
            m.insert("x".into(), v);
        }
        Value::Object(m)
    });
    prop_oneof![
        6 => (0usize..4, args, 0u64..30, prop_oneof![Just(0.0), Just(2.5), Just(-1.0)])
            .prop_map(|(tool, args, tokens, cost)| Op::Decide { tool, args, tokens, cost }),
        3 => (0usize..4, 0usize..OUTPUTS.len(), any::<bool>())
            .prop_map(|(tool, text, raw)| Op::Output { tool, text, raw }),
        1 => (0usize..USER.len()).prop_map(Op::User),
        1 => (0usize..3).prop_map(Op::Release),
        2 => (0u64..1500).prop_map(Op::Wait),
    ]
}

fn tool_name(i: usize) -> &'static str {
    TOOLS.get(i).copied().unwrap_or("unknown_tool")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn kernel_matches_reference(spec_text in spec(), ops in proptest::collection::vec(op(), 1..40)) {
        let spec = pf_spec::parse_str("diff.yaml", &spec_text).map_err(|e| TestCaseError::fail(format!("{e:?}\n{spec_text}")))?;
        let Ok(compiled) = compile(&spec) else {
            // Contradicting random constraints (min > max, ...) are compile errors: skip.
            return Ok(());
        };
        let policy = compiled.policy;
        let mut state = policy.new_session();
        let mut reference = Reference::new(&spec, Limits::default(), None).ok_or_else(|| TestCaseError::fail("no custom rules here"))?;
        let mut now = Duration::ZERO;
        for (step, op) in ops.iter().enumerate() {
            match op {
                Op::Decide { tool, args, tokens, cost } => {
                    let name = tool_name(*tool);
                    let mut call = Call::new(name, args);
                    call.tokens = *tokens;
                    call.cost_usd = *cost;
                    let fast = decide(&policy, &mut state, &call, now);
                    let slow = reference.decide(name, args, *tokens, *cost, now);
                    let fast_codes: std::collections::BTreeSet<_> = fast.codes().into_iter().collect();
                    prop_assert_eq!(fast.is_allowed(), slow.allowed, "step {} {:?}\nspec:\n{}\nfast {:?}\nslow {:?}", step, op, spec_text, fast, slow);
                    prop_assert_eq!(&fast_codes, &slow.codes, "step {} {:?}\nspec:\n{}", step, op, spec_text);
                    if let Effect::AllowWithObligations(ob) = &fast.effect {
                        prop_assert_eq!(ob, &slow.obligations);
                    } else if fast.is_allowed() {
                        prop_assert!(slow.obligations.is_empty());
                    }
                }
                Op::Output { tool, text, raw } => {
                    let v = if *raw { json!(OUTPUTS[*text]) } else { json!({"text": OUTPUTS[*text]}) };
                    record_output(&policy, &mut state, tool_name(*tool), &v);
                    reference.record_output(tool_name(*tool), &v);
                }
                Op::User(i) => {
                    record_user_request(&policy, &mut state, USER[*i]);
                    reference.record_user_request(USER[*i]);
                }
                Op::Release(t) => {
                    release(&policy, &mut state, tool_name(*t));
                    reference.release(tool_name(*t));
                }
                Op::Wait(ms) => now += Duration::from_millis(*ms),
            }
        }
    }
}

/// A flow-only spec where every feature of the information-flow model is in play: field labels,
/// `user_request` and `user_named_source` with principals, short values.
const FLOW_SPEC: &str = r#"name: flow
version: 1.0.0
capabilities:
  - name: t0
    output_labels: [untrusted]
    output_fields: { sender: [meta], to: [meta] }
  - name: t1
    output_labels: [untrusted]
  - name: t2
    constraints: { args: { a: { max_length: 100 }, n: { max_length: 100 } } }
policies:
  - name: named
    type: information_flow
    deny_labels: [untrusted]
    sinks: [t2.a]
    unless: [user_request, user_named_source]
    principals: [t2.n]
  - name: meta
    type: information_flow
    deny_labels: [meta]
    sinks: [t2.n]
"#;

/// Argument strings for the flow-only test: sources the user names, values found in outputs,
/// principals and short ids.
const FLOW_STRINGS: [&str; 6] = [
    "xyzzy",
    "eve@evil.org",
    "Dora",
    "13",
    "bob@example.com",
    "ab",
];

fn flow_op() -> impl Strategy<Value = Op> {
    let s = || proptest::sample::select(&FLOW_STRINGS[..]).prop_map(|s| json!(s));
    let args = (opt(s()), opt(s())).prop_map(|(a, n)| {
        let mut m = serde_json::Map::new();
        if let Some(v) = a {
            m.insert("a".into(), v);
        }
        if let Some(v) = n {
            m.insert("n".into(), v);
        }
        Value::Object(m)
    });
    prop_oneof![
        5 => (0usize..3, args).prop_map(|(tool, args)| Op::Decide { tool, args, tokens: 0, cost: 0.0 }),
        3 => (0usize..3, 0usize..OUTPUTS.len(), any::<bool>())
            .prop_map(|(tool, text, raw)| Op::Output { tool, text, raw }),
        1 => (0usize..USER.len()).prop_map(Op::User),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn flow_kernel_matches_reference(ops in proptest::collection::vec(flow_op(), 1..30)) {
        let spec = pf_spec::parse_str("flow.yaml", FLOW_SPEC).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        let policy = compile(&spec).map_err(|e| TestCaseError::fail(e.to_string()))?.policy;
        let mut state = policy.new_session();
        let mut reference = Reference::new(&spec, Limits::default(), None).ok_or_else(|| TestCaseError::fail("no custom rules"))?;
        for (step, op) in ops.iter().enumerate() {
            match op {
                Op::Decide { tool, args, .. } => {
                    let name = tool_name(*tool);
                    let fast = decide(&policy, &mut state, &Call::new(name, args), Duration::ZERO);
                    let slow = reference.decide(name, args, 0, 0.0, Duration::ZERO);
                    let fast_codes: std::collections::BTreeSet<_> = fast.codes().into_iter().collect();
                    prop_assert_eq!(fast.is_allowed(), slow.allowed, "step {} {:?}", step, op);
                    prop_assert_eq!(&fast_codes, &slow.codes, "step {} {:?}", step, op);
                }
                Op::Output { tool, text, raw } => {
                    let v = if *raw { json!(OUTPUTS[*text]) } else { json!({"sender": OUTPUTS[*text]}) };
                    record_output(&policy, &mut state, tool_name(*tool), &v);
                    reference.record_output(tool_name(*tool), &v);
                }
                Op::User(i) => {
                    record_user_request(&policy, &mut state, USER[*i]);
                    reference.record_user_request(USER[*i]);
                }
                Op::Release(_) | Op::Wait(_) => {}
            }
        }
    }
}
