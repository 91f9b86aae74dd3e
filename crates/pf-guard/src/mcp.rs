//! MCP interception: hides disallowed tools in `tools/list`, decides every `tools/call`, and
//! checks every tool result before the client sees it (MCP specification 2025-06-18, "Tools").
//!
//! [`McpSession`] is pure message routing: feed it what each side sends and it says what to send
//! where. Transports (stdio child process, Streamable HTTP) live elsewhere.
//!
//! Request ids: every request the guard forwards goes to the server under an id of the guard's
//! own, unique in the session, and the answer goes back to the client under the client's id.
//! Clients choose their ids independently (several HTTP clients without an `Mcp-Session-Id`
//! share one guard session, and each may start at 1), so the client's ids cannot key what the
//! guard awaits: two `tools/call`s with one id would check one tool's result as the other's, and
//! the second answer would find nothing awaiting it. An answer under an id the guard never sent
//! is dropped: it answers nothing the client asked through the guard, and passing it on would let
//! the server slip an unchecked tool result to a client request that happens to bear that id.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::enforcer::{
    CallOutcome, Enforcer, OVERLOADED, OutputOutcome, UNNAMED_CALL, UNNAMED_TOOL,
    UNPARSABLE_ARGUMENTS,
};
use crate::jsonrpc::{ErrorCode, Id, Message, error_response};
use crate::user_turn;

/// Reason code of a call whose passed user request is malformed.
pub const USER_REQUEST_INVALID: &str = "user_request.invalid";

/// Most requests awaiting a server answer; beyond it new calls are refused (fail closed).
pub const MAX_PENDING: usize = 4096;

/// Where a message goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    /// To the MCP server (the tools).
    ToServer(Value),
    /// To the MCP client (the agent).
    ToClient(Value),
    /// Nowhere: a server answer to no request the guard forwarded (logged and dropped).
    Dropped,
}

/// What the answer to a forwarded request needs.
#[derive(Debug, Clone)]
enum Pending {
    ToolsList,
    ToolsCall(String),
    Other,
}

/// A request forwarded to the server under the guard's id.
#[derive(Debug, Clone)]
struct Forwarded {
    /// The id the client gave it, which its answer goes back under.
    client_id: Id,
    pending: Pending,
}

/// One MCP session's interception state.
pub struct McpSession<E> {
    enforcer: E,
    /// Requests awaiting the server's answer, by the id the guard sent them under.
    pending: HashMap<Id, Forwarded>,
    /// The last id the guard gave a forwarded request.
    last_id: i64,
    /// Whether the host may pass the user's request (see [`crate::user_turn`]).
    trust_user_request: bool,
    /// Digests of the user requests already fed to the flow model.
    user_requests: HashSet<[u8; 32]>,
}

/// Most distinct user requests remembered per session (later ones are still fed, not deduped).
const MAX_USER_REQUESTS: usize = 10_000;

impl<E: Enforcer> McpSession<E> {
    /// A session enforcing with `enforcer`.
    pub fn new(enforcer: E) -> Self {
        McpSession {
            enforcer,
            pending: HashMap::new(),
            last_id: 0,
            trust_user_request: false,
            user_requests: HashSet::new(),
        }
    }

    /// Accepts the user's request from the host (`_meta` on `tools/call`, or the HTTP header
    /// through [`McpSession::user_request`]); off by default.
    pub fn with_trusted_user_request(mut self, trust: bool) -> Self {
        self.trust_user_request = trust;
        self
    }

    /// Whether the host's user requests are trusted.
    pub fn trusts_user_request(&self) -> bool {
        self.trust_user_request
    }

    /// Feeds text the user wrote to the flow model (once per distinct text); ignored unless the
    /// session trusts the host's user requests.
    pub fn user_request(&mut self, text: &str) {
        if !self.trust_user_request {
            tracing::warn!(
                "ignored a user request: the guard does not trust the host's (--trust-user-request)"
            );
            return;
        }
        let digest: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        if self.user_requests.contains(&digest) {
            return;
        }
        if self.user_requests.len() < MAX_USER_REQUESTS {
            self.user_requests.insert(digest);
        }
        self.enforcer.user_request(text);
    }

    /// The enforcer (for metrics and tests).
    pub fn enforcer(&self) -> &E {
        &self.enforcer
    }

    /// Does the labelling work the enforcer left for after an answer ([`Enforcer::settle`]).
    pub fn settle(&mut self) {
        self.enforcer.settle();
    }

    /// Routes a message the client sent. A forwarded request carries the guard's id (see the
    /// module's documentation).
    pub fn from_client(&mut self, msg: Message) -> Route {
        let mut msg = msg;
        match &mut msg {
            Message::Request { id, method, params } => {
                let pending = match method.as_str() {
                    "tools/call" => {
                        let decided = match self.take_user_request(id, params) {
                            Some(refusal) => Err(refusal),
                            None => self.tool_call(id, params),
                        };
                        match decided {
                            Ok(tool) => Pending::ToolsCall(tool),
                            Err(refusal) => return refusal,
                        }
                    }
                    "tools/list" => Pending::ToolsList,
                    _ => Pending::Other,
                };
                if let Err(refusal) = self.track(id, pending) {
                    return refusal;
                }
            }
            Message::Notification { method, params } if method == "notifications/cancelled" => {
                let placed = self.cancelled_under_our_id(params);
                if !placed {
                    return Route::Dropped;
                }
            }
            _ => {}
        }
        Route::ToServer(msg.into_value())
    }

    /// Whether the server's answer to the request forwarded under `id` (the guard's id) is
    /// still awaited.
    pub fn awaits(&self, id: &Id) -> bool {
        self.pending.contains_key(id)
    }

    /// Routes a message the server sent; an answer goes back under the client's id.
    pub fn from_server(&mut self, msg: Message) -> Route {
        let Message::Response {
            id: Some(id),
            outcome,
        } = msg
        else {
            return Route::ToClient(msg.into_value());
        };
        let Some(Forwarded { client_id, pending }) = self.pending.remove(&id) else {
            tracing::warn!(
                id = ?id,
                "dropped a response from the MCP server to no request the guard forwarded"
            );
            return Route::Dropped;
        };
        let outcome = match (pending, outcome) {
            (Pending::Other, outcome) => outcome,
            (Pending::ToolsList, Ok(mut result)) => {
                if let Some(tools) = result.get_mut("tools").and_then(Value::as_array_mut) {
                    tools.retain(|t| {
                        t.get("name")
                            .and_then(Value::as_str)
                            .is_some_and(|n| self.enforcer.tool_visible(n))
                    });
                }
                Ok(result)
            }
            (Pending::ToolsCall(tool), Ok(result)) => {
                self.enforcer.finish_call(&tool);
                Ok(self.check_result(&tool, result))
            }
            (Pending::ToolsCall(tool), Err(e)) => {
                self.enforcer.finish_call(&tool);
                Err(e)
            }
            (Pending::ToolsList, Err(e)) => Err(e),
        };
        Route::ToClient(
            Message::Response {
                id: Some(client_id),
                outcome,
            }
            .into_value(),
        )
    }

    /// Forgets a request the server will never answer (its transport failed), releasing the
    /// call's concurrency slot; `id` is the guard's id the request was forwarded under.
    pub fn server_failed(&mut self, id: &Id) {
        if let Some(Forwarded {
            pending: Pending::ToolsCall(tool),
            ..
        }) = self.pending.remove(id)
        {
            self.enforcer.finish_call(&tool);
        }
    }

    /// Awaits the answer to a request about to be forwarded, giving it the guard's next id in
    /// place of the client's; the answer to send back instead when too many are awaited (an
    /// allowed call's concurrency slot is released then).
    fn track(&mut self, id: &mut Id, pending: Pending) -> Result<(), Route> {
        if self.pending.len() >= MAX_PENDING {
            if let Pending::ToolsCall(tool) = &pending {
                self.enforcer.finish_call(tool);
            }
            return Err(Route::ToClient(overloaded(id)));
        }
        self.last_id += 1;
        let ours = Id::Number(self.last_id);
        let client_id = std::mem::replace(id, ours.clone());
        self.pending.insert(ours, Forwarded { client_id, pending });
        Ok(())
    }

    /// Puts the guard's id in a cancellation of a request the client names by its own id;
    /// `false` when no awaited request, or more than one, bears that id. Such a cancellation is
    /// not forwarded: under the client's id it could cancel another client's request, and a
    /// cancellation may be ignored anyway (MCP 2025-06-18, "Cancellation").
    fn cancelled_under_our_id(&self, params: &mut Value) -> bool {
        let Some(client_id) = params.get("requestId").and_then(Id::from_value) else {
            return false;
        };
        let mut ours = self
            .pending
            .iter()
            .filter(|(_, f)| f.client_id == client_id)
            .map(|(id, _)| id);
        match (ours.next(), ours.next(), params.get_mut("requestId")) {
            (Some(id), None, Some(slot)) => {
                *slot = id.to_value();
                true
            }
            _ => false,
        }
    }

    /// Feeds a trusted user request carried in `_meta` and strips it; the answer when it is
    /// malformed and trusted.
    fn take_user_request(&mut self, id: &Id, params: &mut Value) -> Option<Route> {
        match user_turn::take_from_params(params) {
            Ok(Some(text)) => self.user_request(&text),
            Ok(None) => {}
            Err(e) if self.trust_user_request => {
                let name = params.get("name").and_then(Value::as_str);
                let name = name.unwrap_or(UNNAMED_TOOL).to_string();
                self.enforcer
                    .refuse_call(&name, USER_REQUEST_INVALID, params);
                let e = error_response(Some(id), ErrorCode::InvalidParams, &e.to_string(), None);
                return Some(Route::ToClient(e));
            }
            Err(e) => tracing::warn!(error = %e, "ignored a malformed user request"),
        }
        None
    }

    /// Decides a `tools/call`: the tool's name when it is allowed, else the answer. Every
    /// refusal is logged as a decision before the client hears of it.
    fn tool_call(&mut self, id: &Id, params: &Value) -> Result<String, Route> {
        let Some(name) = params.get("name").and_then(Value::as_str) else {
            self.enforcer
                .refuse_call(UNNAMED_TOOL, UNNAMED_CALL, &json!({ "params": params }));
            let e = error_response(
                Some(id),
                ErrorCode::InvalidParams,
                "tools/call needs a string `name`",
                None,
            );
            return Err(Route::ToClient(e));
        };
        let empty = Value::Object(serde_json::Map::new());
        let args = match params.get("arguments") {
            None | Some(Value::Null) => &empty,
            Some(v @ Value::Object(_)) => v,
            Some(other) => {
                self.enforcer.refuse_call(name, UNPARSABLE_ARGUMENTS, other);
                let e = error_response(
                    Some(id),
                    ErrorCode::InvalidParams,
                    "tools/call `arguments` must be an object",
                    None,
                );
                return Err(Route::ToClient(e));
            }
        };
        if self.pending.len() >= MAX_PENDING {
            self.enforcer.refuse_call(name, OVERLOADED, args);
            return Err(Route::ToClient(overloaded(id)));
        }
        match self.enforcer.decide_call(name, args) {
            CallOutcome::Allow => Ok(name.to_string()),
            CallOutcome::Deny { reason, codes } => {
                // MCP: tool execution errors are reported in the result with isError, so the
                // model can read them and adjust (rather than a protocol error it cannot see).
                let result = json!({
                    "content": [{ "type": "text", "text": format!("Denied by policy: {reason}") }],
                    "isError": true,
                    "_meta": { "provability-fabric/reasons": codes },
                });
                Err(Route::ToClient(
                    Message::Response {
                        id: Some(id.clone()),
                        outcome: Ok(result),
                    }
                    .into_value(),
                ))
            }
        }
    }

    /// Checks every text block of a tool result; redacts or withholds as the policy says.
    fn check_result(&mut self, tool: &str, mut result: Value) -> Value {
        let mut blocks: Vec<&mut Value> = Vec::new();
        if let Some(content) = result.get_mut("content").and_then(Value::as_array_mut) {
            blocks.extend(
                content
                    .iter_mut()
                    .filter(|b| b.get("type").and_then(Value::as_str) == Some("text")),
            );
        }
        let texts: Vec<String> = blocks
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str).map(str::to_string))
            .collect();
        let mut denied = None;
        for (block, text) in blocks.into_iter().zip(texts) {
            match self.enforcer.check_output(Some(tool), &text) {
                OutputOutcome::Pass => {}
                OutputOutcome::Redact(redacted) => block["text"] = json!(redacted),
                OutputOutcome::Deny { reason, codes } => {
                    denied = Some((reason, codes));
                    break;
                }
            }
        }
        // Structured content is checked as its JSON text; it is withheld rather than redacted.
        if denied.is_none()
            && let Some(structured) = result.get("structuredContent")
        {
            let text = structured.to_string();
            match self.enforcer.check_output(Some(tool), &text) {
                OutputOutcome::Pass => {}
                OutputOutcome::Redact(_) => {
                    if let Some(obj) = result.as_object_mut() {
                        obj.remove("structuredContent");
                    }
                }
                OutputOutcome::Deny { reason, codes } => denied = Some((reason, codes)),
            }
        }
        match denied {
            None => result,
            Some((reason, codes)) => json!({
                "content": [{ "type": "text", "text": format!("Tool result withheld by policy: {reason}") }],
                "isError": true,
                "_meta": { "provability-fabric/reasons": codes },
            }),
        }
    }
}

/// The answer to a request refused because [`MAX_PENDING`] requests await the server.
fn overloaded(id: &Id) -> Value {
    let msg = format!(
        "guard: more than {MAX_PENDING} requests awaiting the server; refusing until some complete"
    );
    error_response(Some(id), ErrorCode::InternalError, &msg, None)
}
