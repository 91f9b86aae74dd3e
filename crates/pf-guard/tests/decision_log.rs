//! Every refusal leaves a decision record, including those decided before the policy could
//! judge the call (no tool name, arguments that are not a JSON object, a malformed user
//! request): the audit trail has no silent denials.

mod common;

use common::Fixture;
use pf_guard::jsonrpc;
use pf_guard::log::DecisionRecord;
use pf_guard::mcp::{McpSession, Route};
use pf_guard::openai_chat::ChatSession;
use pf_guard::user_turn::USER_REQUEST_META;
use serde_json::{Value, json};

fn request(id: u64, params: Value) -> jsonrpc::Message {
    jsonrpc::from_value(
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params}),
    )
    .expect("valid request")
}

fn denials(records: &[DecisionRecord]) -> Vec<(String, Vec<String>)> {
    records
        .iter()
        .filter(|r| r.kind == "call" && r.effect == "deny")
        .map(|r| (r.tool.clone(), r.reasons.clone()))
        .collect()
}

fn refused_with(route: &Route, code: i64) {
    let Route::ToClient(v) = route else {
        panic!("refused to the client: {route:?}");
    };
    assert_eq!(v["error"]["code"], json!(code), "{v}");
}

#[test]
fn mcp_calls_refused_before_the_policy_are_logged() {
    let fixture = Fixture::new();
    let mut s = McpSession::new((fixture.enforcers())()).with_trusted_user_request(true);
    let r1 = s.from_client(request(1, json!({"arguments": {}})));
    let r2 = s.from_client(request(2, json!({"name": "search_kb", "arguments": ["q"]})));
    let r3 = s.from_client(request(
        3,
        json!({"name": "search_kb", "arguments": {}, "_meta": {USER_REQUEST_META: 42}}),
    ));
    for r in [&r1, &r2, &r3] {
        refused_with(r, -32602);
    }
    let records = fixture.sink.records();
    assert_eq!(
        denials(&records),
        vec![
            ("<unnamed>".to_string(), vec!["call.unnamed".to_string()]),
            (
                "search_kb".to_string(),
                vec!["arguments.unparsable".to_string()]
            ),
            (
                "search_kb".to_string(),
                vec!["user_request.invalid".to_string()]
            ),
        ]
    );
    // Commitments, never raw values, in the log.
    assert!(
        records
            .iter()
            .all(|r| r.commitment.starts_with("sha256:") && &*r.spec_digest == "sha256:test")
    );
    let denied = fixture
        .metrics
        .decisions
        .get_or_create(&pf_guard::metrics::DecisionLabels {
            kind: "call".into(),
            effect: "deny".into(),
            tool: "search_kb".into(),
        })
        .get();
    assert_eq!(denied, 2, "refusals are counted like policy denials");
}

#[test]
fn chat_calls_with_unparsable_or_missing_names_are_logged() {
    let fixture = Fixture::new();
    let mut s = ChatSession::new((fixture.enforcers())());
    let mut completion = json!({"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
    "role": "assistant", "content": null, "tool_calls": [
        {"id": "a", "type": "function", "function": {"name": "lookup_order", "arguments": "{\"order_id\":"}},
        {"id": "b", "type": "function", "function": {"name": "", "arguments": "{}"}},
        {"id": "c", "type": "function", "function": {"name": "lookup_order", "arguments": "[1]"}}
    ]}}]});
    s.check_completion(&mut completion);
    assert_eq!(completion["choices"][0]["finish_reason"], json!("stop"));
    assert_eq!(
        denials(&fixture.sink.records()),
        vec![
            (
                "lookup_order".to_string(),
                vec!["arguments.unparsable".to_string()]
            ),
            ("<unnamed>".to_string(), vec!["call.unnamed".to_string()]),
            (
                "lookup_order".to_string(),
                vec!["arguments.unparsable".to_string()]
            ),
        ]
    );
}

#[test]
fn each_session_s_records_carry_its_own_session_id() {
    let fixture = Fixture::new();
    let enforcers = fixture.enforcers();
    let mut first = McpSession::new(enforcers());
    let mut second = McpSession::new(enforcers());
    let call = |id| request(id, json!({"name": "no_such_tool", "arguments": {}}));
    first.from_client(call(1));
    second.from_client(call(1));
    first.from_client(call(2));
    let records = fixture.sink.records();
    assert_eq!(records.len(), 3, "{records:?}");
    let ids: Vec<&str> = records.iter().map(|r| &*r.session).collect();
    assert_eq!(ids[0], ids[2], "one session, one id");
    assert_ne!(ids[0], ids[1], "two sessions, two ids");
    for id in ids {
        assert!(
            id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{id}"
        );
    }
}
