//! MCP interception: hides disallowed tools in `tools/list`, decides every `tools/call`, and
//! checks every tool result before the client sees it (MCP specification 2025-06-18, "Tools").
//!
//! [`McpSession`] is pure message routing: feed it what each side sends and it says what to send
//! where. Transports (stdio child process, Streamable HTTP) live elsewhere.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::enforcer::{CallOutcome, Enforcer, OutputOutcome};
use crate::jsonrpc::{ErrorCode, Id, Message, error_response};

/// Most requests awaiting a server answer; beyond it new calls are refused (fail closed).
pub const MAX_PENDING: usize = 4096;

/// Where a message goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    /// To the MCP server (the tools).
    ToServer(Value),
    /// To the MCP client (the agent).
    ToClient(Value),
}

#[derive(Debug, Clone)]
enum Pending {
    ToolsList,
    ToolsCall(String),
}

/// One MCP session's interception state.
pub struct McpSession<E> {
    enforcer: E,
    pending: HashMap<Id, Pending>,
}

impl<E: Enforcer> McpSession<E> {
    /// A session enforcing with `enforcer`.
    pub fn new(enforcer: E) -> Self {
        McpSession {
            enforcer,
            pending: HashMap::new(),
        }
    }

    /// The enforcer (for metrics and tests).
    pub fn enforcer(&self) -> &E {
        &self.enforcer
    }

    /// Routes a message the client sent.
    pub fn from_client(&mut self, msg: Message) -> Route {
        if let Message::Request { id, method, params } = &msg {
            let refusal = match method.as_str() {
                "tools/call" => self.tool_call(id, params),
                "tools/list" => self.track(id, Pending::ToolsList),
                _ => None,
            };
            if let Some(refusal) = refusal {
                return refusal;
            }
        }
        Route::ToServer(msg.into_value())
    }

    /// Routes a message the server sent.
    pub fn from_server(&mut self, msg: Message) -> Route {
        let Message::Response {
            id: Some(id),
            outcome,
        } = msg
        else {
            return Route::ToClient(msg.into_value());
        };
        let outcome = match (self.pending.remove(&id), outcome) {
            (None, outcome) => outcome,
            (Some(Pending::ToolsList), Ok(mut result)) => {
                if let Some(tools) = result.get_mut("tools").and_then(Value::as_array_mut) {
                    tools.retain(|t| {
                        t.get("name")
                            .and_then(Value::as_str)
                            .is_some_and(|n| self.enforcer.tool_visible(n))
                    });
                }
                Ok(result)
            }
            (Some(Pending::ToolsCall(tool)), Ok(result)) => {
                self.enforcer.finish_call(&tool);
                Ok(self.check_result(&tool, result))
            }
            (Some(Pending::ToolsCall(tool)), Err(e)) => {
                self.enforcer.finish_call(&tool);
                Err(e)
            }
            (Some(Pending::ToolsList), Err(e)) => Err(e),
        };
        Route::ToClient(
            Message::Response {
                id: Some(id),
                outcome,
            }
            .into_value(),
        )
    }

    /// Forgets a request the server will never answer (its transport failed), releasing the
    /// call's concurrency slot.
    pub fn server_failed(&mut self, id: &Id) {
        if let Some(Pending::ToolsCall(tool)) = self.pending.remove(id) {
            self.enforcer.finish_call(&tool);
        }
    }

    fn track(&mut self, id: &Id, what: Pending) -> Option<Route> {
        if self.pending.len() >= MAX_PENDING && !self.pending.contains_key(id) {
            let msg = format!(
                "guard: more than {MAX_PENDING} requests awaiting the server; refusing until some complete"
            );
            return Some(Route::ToClient(error_response(
                Some(id),
                ErrorCode::InternalError,
                &msg,
                None,
            )));
        }
        self.pending.insert(id.clone(), what);
        None
    }

    /// Decides a `tools/call`; `None` when it is allowed (and now tracked), else the answer.
    fn tool_call(&mut self, id: &Id, params: &Value) -> Option<Route> {
        let Some(name) = params.get("name").and_then(Value::as_str) else {
            let e = error_response(
                Some(id),
                ErrorCode::InvalidParams,
                "tools/call needs a string `name`",
                None,
            );
            return Some(Route::ToClient(e));
        };
        let empty = Value::Object(serde_json::Map::new());
        let args = match params.get("arguments") {
            None | Some(Value::Null) => &empty,
            Some(v @ Value::Object(_)) => v,
            Some(_) => {
                let e = error_response(
                    Some(id),
                    ErrorCode::InvalidParams,
                    "tools/call `arguments` must be an object",
                    None,
                );
                return Some(Route::ToClient(e));
            }
        };
        match self.enforcer.decide_call(name, args) {
            CallOutcome::Allow => {
                if let Some(refusal) = self.track(id, Pending::ToolsCall(name.to_string())) {
                    self.enforcer.finish_call(name);
                    return Some(refusal);
                }
                None
            }
            CallOutcome::Deny { reason, codes } => {
                // MCP: tool execution errors are reported in the result with isError, so the
                // model can read them and adjust (rather than a protocol error it cannot see).
                let result = json!({
                    "content": [{ "type": "text", "text": format!("Denied by policy: {reason}") }],
                    "isError": true,
                    "_meta": { "provability-fabric/reasons": codes },
                });
                Some(Route::ToClient(
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
