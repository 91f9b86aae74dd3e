//! Request ids: the guard forwards every request under an id of its own and answers under the
//! client's. Clients sharing a guard session (HTTP clients without an `Mcp-Session-Id`) may use
//! the same ids; each answer must still be checked as the result of its own tool, and an answer
//! under an id the guard never sent must not reach the client.

mod common;

use common::Fixture;
use pf_guard::PolicyEnforcer;
use pf_guard::jsonrpc::{self, Id};
use pf_guard::mcp::{McpSession, Route};
use serde_json::{Value, json};

fn session(fixture: &Fixture) -> McpSession<PolicyEnforcer> {
    McpSession::new((fixture.enforcers())())
}

fn message(v: Value) -> jsonrpc::Message {
    jsonrpc::from_value(v).expect("valid JSON-RPC")
}

/// Sends a `tools/call` with the client's `id`; the id the guard forwarded it under.
fn forwarded_call(s: &mut McpSession<PolicyEnforcer>, id: Value, tool: &str, args: Value) -> Id {
    let route = s.from_client(message(
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": args}}),
    ));
    let Route::ToServer(v) = route else {
        panic!("{tool} was not forwarded: {route:?}");
    };
    Id::from_value(&v["id"]).expect("a forwarded request has an id")
}

/// The server's answer to the request forwarded under `ours`: one text block.
fn answer(s: &mut McpSession<PolicyEnforcer>, ours: &Id, text: &str) -> Route {
    s.from_server(message(
        json!({"jsonrpc": "2.0", "id": ours.to_value(), "result": {
        "content": [{"type": "text", "text": text}], "isError": false}}),
    ))
}

fn to_client(route: Route) -> Value {
    match route {
        Route::ToClient(v) => v,
        other => panic!("not for the client: {other:?}"),
    }
}

const CARD: &str = "card 4111 1111 1111 1111 on file";

#[test]
fn calls_sharing_a_client_id_are_each_checked_as_their_own_tool() {
    let fixture = Fixture::new();
    let mut s = session(&fixture);
    // Two clients of one guard session, each starting its ids at 1.
    let lookup = forwarded_call(
        &mut s,
        json!(1),
        "lookup_order",
        json!({"order_id": "ORD-123456"}),
    );
    let search = forwarded_call(&mut s, json!(1), "search_kb", json!({"query": "refunds"}));
    assert_ne!(
        lookup, search,
        "each forwarded request has an id of its own"
    );

    // Answered in the other order: search_kb has no content filter, lookup_order redacts cards.
    let searched = to_client(answer(&mut s, &search, CARD));
    let looked_up = to_client(answer(&mut s, &lookup, CARD));
    assert_eq!(searched["id"], json!(1), "{searched}");
    assert_eq!(looked_up["id"], json!(1), "{looked_up}");
    assert_eq!(searched["result"]["content"][0]["text"], json!(CARD));
    assert_eq!(
        looked_up["result"]["content"][0]["text"],
        json!("card [REDACTED:card_number] on file")
    );
    assert!(!s.awaits(&lookup) && !s.awaits(&search));

    // The log names each output's own tool.
    let outputs: Vec<String> = fixture
        .sink
        .records()
        .into_iter()
        .filter(|r| r.kind == "output")
        .map(|r| r.tool)
        .collect();
    assert_eq!(outputs, ["search_kb", "lookup_order"]);
}

#[test]
fn an_answer_under_an_id_the_guard_never_sent_is_dropped() {
    let fixture = Fixture::new();
    let mut s = session(&fixture);
    let ours = forwarded_call(
        &mut s,
        json!(5),
        "lookup_order",
        json!({"order_id": "ORD-123456"}),
    );
    assert_ne!(ours, Id::Number(5));

    // Under the client's own id the server could answer the client's request unchecked.
    let forged = answer(&mut s, &Id::Number(5), CARD);
    assert_eq!(forged, Route::Dropped);
    assert!(s.awaits(&ours), "the real answer is still awaited");

    let real = to_client(answer(&mut s, &ours, CARD));
    assert_eq!(real["id"], json!(5));
    assert_eq!(
        real["result"]["content"][0]["text"],
        json!("card [REDACTED:card_number] on file")
    );
    // A second answer to the same request is dropped too.
    assert_eq!(answer(&mut s, &ours, CARD), Route::Dropped);
}

#[test]
fn every_forwarded_request_gets_the_guards_id_and_its_answer_the_clients() {
    let fixture = Fixture::new();
    let mut s = session(&fixture);
    let route = s.from_client(message(
        json!({"jsonrpc": "2.0", "id": "ping-1", "method": "ping"}),
    ));
    let Route::ToServer(sent) = route else {
        panic!("{route:?}");
    };
    let ours = Id::from_value(&sent["id"]).expect("id");
    assert_ne!(ours, Id::String("ping-1".into()));
    let back = to_client(s.from_server(message(
        json!({"jsonrpc": "2.0", "id": ours.to_value(), "result": {}}),
    )));
    assert_eq!(
        back,
        json!({"jsonrpc": "2.0", "id": "ping-1", "result": {}})
    );

    // Errors go back under the client's id as well.
    let route = s.from_client(message(
        json!({"jsonrpc": "2.0", "id": 9, "method": "resources/read", "params": {"uri": "x"}}),
    ));
    let Route::ToServer(sent) = route else {
        panic!("{route:?}");
    };
    let failed = to_client(s.from_server(message(json!({"jsonrpc": "2.0", "id": sent["id"], "error": {"code": -32002, "message": "not found"}}))));
    assert_eq!(failed["id"], json!(9), "{failed}");
    assert_eq!(failed["error"]["code"], json!(-32002), "{failed}");
}

#[test]
fn a_cancellation_names_the_request_by_the_id_the_server_knows() {
    let fixture = Fixture::new();
    let mut s = session(&fixture);
    let ours = forwarded_call(&mut s, json!("call-a"), "search_kb", json!({"query": "x"}));
    let cancel = |id: &str| {
        message(
            json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": id, "reason": "user"}}),
        )
    };
    let Route::ToServer(sent) = s.from_client(cancel("call-a")) else {
        panic!("a cancellation goes to the server");
    };
    assert_eq!(sent["params"]["requestId"], ours.to_value(), "{sent}");
    assert_eq!(sent["params"]["reason"], json!("user"));

    // One the guard cannot place is not forwarded: under the client's id it could cancel
    // another client's request. Nor is one whose request has been answered.
    assert_eq!(s.from_client(cancel("unknown")), Route::Dropped);
    let other = forwarded_call(&mut s, json!(7), "search_kb", json!({"query": "y"}));
    let _ = to_client(answer(&mut s, &ours, "done"));
    assert_eq!(s.from_client(cancel("call-a")), Route::Dropped);
    assert!(s.awaits(&other));
}
