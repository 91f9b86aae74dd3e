//! Enforcement on OpenAI-compatible chat completions (the `/v1/chat/completions` request and
//! response bodies), independent of HTTP: [`ChatSession`] is one conversation's guard state.
//!
//! Requests: `role: user` text is the user's own request (trusted by `unless: [user_request]`
//! rules); `role: tool` text is a tool's output, checked and labelled under the tool's name
//! (found through `tool_call_id` in an earlier assistant message's `tool_calls`). A client
//! re-sends the whole history with every request, so each message is processed once per
//! session (keyed by position, role and content) and its verdict re-applied on later sends.
//!
//! Responses: every `tool_calls[]` entry is decided; a denied call is removed and the refusal
//! is explained in the assistant's `content` (with `finish_reason` `stop` when no call is left);
//! assistant `content` goes through the output constraints of `text_generation`.

use std::collections::HashMap;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::enforcer::{CallOutcome, Enforcer, OutputOutcome, UNNAMED_CALL, UNNAMED_TOOL};

/// Most messages in one request.
pub const MAX_MESSAGES: usize = 10_000;
/// Most messages remembered per session (beyond it requests are refused: fail closed).
pub const MAX_SEEN: usize = 100_000;
pub use crate::enforcer::UNPARSABLE_ARGUMENTS;
/// Name under which a tool message is checked when its call cannot be found in the history.
pub const UNKNOWN_TOOL: &str = "<unknown tool>";

/// Why a request cannot be forwarded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatError {
    /// The body is not a chat-completions request.
    #[error("invalid chat completion request: {0}")]
    Invalid(String),
    /// The conversation outgrew the session's memory.
    #[error("conversation too long for one guard session ({MAX_SEEN} messages); start a new one")]
    SessionFull,
}

/// One conversation's guard state.
pub struct ChatSession<E> {
    pub(crate) enforcer: E,
    /// Message digest -> replacement content (`None`: forward unchanged).
    pub(crate) seen: HashMap<[u8; 32], Option<String>>,
    /// Allowed calls not yet answered by a tool message: call id -> tool.
    pub(crate) open_calls: HashMap<String, String>,
    /// Responses API: tool names of the function calls the model made, by `call_id`.
    pub(crate) call_names: HashMap<String, String>,
}

impl<E: Enforcer> ChatSession<E> {
    /// A new conversation enforced by `enforcer`.
    pub fn new(enforcer: E) -> Self {
        ChatSession {
            enforcer,
            seen: HashMap::new(),
            open_calls: HashMap::new(),
            call_names: HashMap::new(),
        }
    }

    /// The enforcer (for tests).
    pub fn enforcer(&self) -> &E {
        &self.enforcer
    }

    /// Feeds user text to the flow model and checks tool messages, rewriting withheld or
    /// redacted tool output in place.
    pub fn check_request(&mut self, body: &mut Value) -> Result<(), ChatError> {
        self.hide_tools(body);
        let Some(messages) = body.get_mut("messages").and_then(Value::as_array_mut) else {
            return Err(ChatError::Invalid("`messages` must be an array".into()));
        };
        if messages.len() > MAX_MESSAGES {
            return Err(ChatError::Invalid(format!(
                "more than {MAX_MESSAGES} messages"
            )));
        }
        // Tool names by call id, from the assistant messages of the history.
        let mut names: HashMap<String, String> = HashMap::new();
        for m in messages.iter() {
            for call in m
                .get("tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let (Some(id), Some(name)) = (
                    call.get("id").and_then(Value::as_str),
                    call.pointer("/function/name").and_then(Value::as_str),
                ) {
                    names.insert(id.to_string(), name.to_string());
                }
            }
        }
        for (i, m) in messages.iter_mut().enumerate() {
            let Some(obj) = m.as_object_mut() else {
                return Err(ChatError::Invalid(format!("message {i} is not an object")));
            };
            let role = obj.get("role").and_then(Value::as_str).unwrap_or("");
            if role != "user" && role != "tool" {
                continue;
            }
            let role = role.to_string();
            let text = content_text(obj.get("content")).ok_or_else(|| {
                ChatError::Invalid(format!("message {i}: `content` must be text or text parts"))
            })?;
            let call_id = obj
                .get("tool_call_id")
                .and_then(Value::as_str)
                .map(str::to_string);
            let key = message_key(i, &role, call_id.as_deref(), &text);
            let replacement = match self.seen.get(&key) {
                Some(r) => r.clone(),
                None => {
                    if self.seen.len() >= MAX_SEEN {
                        return Err(ChatError::SessionFull);
                    }
                    let r = if role == "user" {
                        self.enforcer.user_request(&text);
                        None
                    } else {
                        self.tool_message(call_id.as_deref(), &names, &text)
                    };
                    self.seen.insert(key, r.clone());
                    r
                }
            };
            if let Some(r) = replacement {
                obj.insert("content".into(), Value::String(r));
            }
        }
        Ok(())
    }

    /// Removes the function tools the agent may not use from the request's `tools` (chat:
    /// `function.name`, Responses: `name`), as `tools/list` filtering does on MCP: the model is
    /// not offered what would be denied. Without function tools left, `tools`, `tool_choice` and
    /// `parallel_tool_calls` are dropped (model servers reject them without tools).
    pub(crate) fn hide_tools(&self, body: &mut Value) {
        let Some(obj) = body.as_object_mut() else {
            return;
        };
        let Some(Value::Array(tools)) = obj.get_mut("tools") else {
            return;
        };
        let before = tools.len();
        tools.retain(|t| {
            if t.get("type").and_then(Value::as_str) != Some("function") {
                return true; // built-in tools run on the model server (see Limitations)
            }
            t.pointer("/function/name")
                .or_else(|| t.get("name"))
                .and_then(Value::as_str)
                .is_some_and(|n| self.enforcer.tool_visible(n))
        });
        if tools.is_empty() && before > 0 {
            for key in ["tools", "tool_choice", "parallel_tool_calls"] {
                obj.remove(key);
            }
        }
    }

    pub(crate) fn tool_message(
        &mut self,
        call_id: Option<&str>,
        names: &HashMap<String, String>,
        text: &str,
    ) -> Option<String> {
        let tool = call_id
            .and_then(|id| names.get(id))
            .map(String::as_str)
            .unwrap_or(UNKNOWN_TOOL)
            .to_string();
        if let Some(id) = call_id
            && let Some(open) = self.open_calls.remove(id)
        {
            self.enforcer.finish_call(&open);
        }
        match self.enforcer.check_output(Some(&tool), text) {
            OutputOutcome::Pass => None,
            OutputOutcome::Redact(r) => Some(r),
            OutputOutcome::Deny { reason, .. } => {
                Some(format!("Tool result withheld by policy: {reason}"))
            }
        }
    }

    /// Checks every choice of a `chat.completion` object in place.
    pub fn check_completion(&mut self, completion: &mut Value) {
        let Some(choices) = completion.get_mut("choices").and_then(Value::as_array_mut) else {
            return;
        };
        for choice in choices {
            let Some(choice) = choice.as_object_mut() else {
                continue;
            };
            let mut finish = choice.remove("finish_reason").unwrap_or(Value::Null);
            if let Some(message) = choice.get_mut("message").and_then(Value::as_object_mut) {
                self.check_message(message, &mut finish);
            }
            choice.insert("finish_reason".into(), finish);
        }
    }

    /// Checks one assistant message: its content, then each tool call.
    pub fn check_message(&mut self, message: &mut Map<String, Value>, finish: &mut Value) {
        let mut notes: Vec<String> = Vec::new();
        if let Some(text) = message.get("content").and_then(Value::as_str) {
            match self.enforcer.check_output(None, text) {
                OutputOutcome::Pass => {}
                OutputOutcome::Redact(r) => {
                    message.insert("content".into(), Value::String(r));
                }
                OutputOutcome::Deny { reason, .. } => {
                    message.insert("content".into(), Value::Null);
                    notes.push(format!("Response withheld by policy: {reason}"));
                    *finish = json!("content_filter");
                }
            }
        }
        if let Some(calls) = message.remove("tool_calls") {
            let calls = match calls {
                Value::Array(calls) => calls,
                Value::Null => Vec::new(),
                other => vec![other],
            };
            let mut kept = Vec::new();
            for call in calls {
                match self.decide(&call) {
                    Ok(()) => kept.push(call),
                    Err(note) => notes.push(note),
                }
            }
            if kept.is_empty() {
                if finish.as_str() == Some("tool_calls") {
                    *finish = json!("stop");
                }
            } else {
                message.insert("tool_calls".into(), Value::Array(kept));
            }
        }
        if !notes.is_empty() {
            let mut text = message
                .get("content")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_default();
            for n in notes {
                if !text.is_empty() {
                    text.push_str("\n\n");
                }
                text.push_str(&n);
            }
            message.insert("content".into(), Value::String(text));
        }
    }

    /// Decides one tool call; `Err` holds the refusal to show instead.
    fn decide(&mut self, call: &Value) -> Result<(), String> {
        self.decide_function(
            call.pointer("/function/name").and_then(Value::as_str),
            call.pointer("/function/arguments"),
            call.get("id").and_then(Value::as_str),
        )
    }

    /// Decides a function call the model made (chat `tool_calls[]` entry or Responses
    /// `function_call` item); `Err` holds the refusal to show instead. Calls refused before the
    /// policy can judge them (no name, arguments not a JSON object) are logged all the same.
    pub(crate) fn decide_function(
        &mut self,
        name: Option<&str>,
        arguments: Option<&Value>,
        call_id: Option<&str>,
    ) -> Result<(), String> {
        let Some(name) = name.filter(|n| !n.is_empty()) else {
            let subject = json!({ "arguments": arguments });
            self.enforcer
                .refuse_call(UNNAMED_TOOL, UNNAMED_CALL, &subject);
            return Err(format!(
                "A tool call without a function name was blocked by policy ({UNNAMED_CALL})."
            ));
        };
        // `arguments` is a JSON text the model wrote; anything but an object is refused.
        let args = arguments
            .and_then(Value::as_str)
            .and_then(|s| serde_json::from_str::<Value>(s).ok())
            .filter(Value::is_object);
        let Some(args) = args else {
            tracing::info!(tool = name, code = UNPARSABLE_ARGUMENTS, "tool call denied");
            let subject = arguments.cloned().unwrap_or(Value::Null);
            self.enforcer
                .refuse_call(name, UNPARSABLE_ARGUMENTS, &subject);
            return Err(format!(
                "The call to `{name}` was blocked by policy: {UNPARSABLE_ARGUMENTS}: its arguments are not a JSON object."
            ));
        };
        match self.enforcer.decide_call(name, &args) {
            CallOutcome::Allow => {
                if let Some(id) = call_id {
                    self.open_calls.insert(id.to_string(), name.to_string());
                }
                Ok(())
            }
            CallOutcome::Deny { reason, .. } => Err(format!(
                "The call to `{name}` was blocked by policy: {reason}"
            )),
        }
    }
}

/// The text of a message's `content`: a string, text parts joined by newlines, or empty for
/// null; `None` for anything else.
fn content_text(content: Option<&Value>) -> Option<String> {
    parts_text(content, &["text"])
}

/// The text of a `content` value: a string, the parts whose `type` is one of `text_types` joined
/// by newlines (images, audio and files carry no text the flow model could follow), or empty for
/// null; `None` for anything else, or for a part without a type.
pub(crate) fn parts_text(content: Option<&Value>, text_types: &[&str]) -> Option<String> {
    match content {
        None | Some(Value::Null) => Some(String::new()),
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Array(parts)) => {
            let mut out = String::new();
            for p in parts {
                match p.get("type").and_then(Value::as_str) {
                    Some(t) if text_types.contains(&t) => {
                        let t = p.get("text").and_then(Value::as_str)?;
                        if !out.is_empty() {
                            out.push('\n');
                        }
                        out.push_str(t);
                    }
                    Some(_) => {}
                    None => return None,
                }
            }
            Some(out)
        }
        Some(_) => None,
    }
}

pub(crate) fn message_key(index: usize, role: &str, call_id: Option<&str>, text: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update((index as u64).to_be_bytes());
    for part in [role, call_id.unwrap_or(""), text] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Allows everything but `send_email`, redacts "secret", counts user texts.
    #[derive(Default)]
    struct Fake {
        user: Vec<String>,
        outputs: Vec<(Option<String>, String)>,
        finished: Vec<String>,
        refused: Vec<(String, String)>,
    }

    impl Enforcer for Fake {
        fn tool_visible(&self, _: &str) -> bool {
            true
        }
        fn decide_call(&mut self, tool: &str, _: &Value) -> CallOutcome {
            if tool == "send_email" {
                CallOutcome::Deny {
                    reason: "no".into(),
                    codes: vec!["x".into()],
                }
            } else {
                CallOutcome::Allow
            }
        }
        fn check_output(&mut self, tool: Option<&str>, text: &str) -> OutputOutcome {
            self.outputs
                .push((tool.map(str::to_string), text.to_string()));
            if text.contains("secret") {
                OutputOutcome::Redact(text.replace("secret", "[REDACTED]"))
            } else {
                OutputOutcome::Pass
            }
        }
        fn finish_call(&mut self, tool: &str) {
            self.finished.push(tool.to_string());
        }
        fn user_request(&mut self, text: &str) {
            self.user.push(text.to_string());
        }
        fn refuse_call(&mut self, tool: &str, code: &str, _: &Value) {
            self.refused.push((tool.to_string(), code.to_string()));
        }
    }

    fn history() -> Value {
        json!({"model": "m", "messages": [
            {"role": "system", "content": "be nice"},
            {"role": "user", "content": "find my order"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "lookup_order", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "the secret is 42"}]}
        ]})
    }

    #[test]
    fn user_and_tool_messages_are_processed_once_and_verdicts_reapplied() {
        let mut s = ChatSession::new(Fake::default());
        let mut first = history();
        s.check_request(&mut first).expect("valid");
        let mut again = history();
        s.check_request(&mut again).expect("valid");
        assert_eq!(s.enforcer().user, vec!["find my order".to_string()]);
        assert_eq!(s.enforcer().outputs.len(), 1);
        assert_eq!(
            s.enforcer().outputs[0].0.as_deref(),
            Some("lookup_order"),
            "tool name found through tool_call_id"
        );
        assert_eq!(
            again["messages"][3]["content"],
            json!("the [REDACTED] is 42")
        );
    }

    #[test]
    fn denied_calls_are_removed_and_explained() {
        let mut s = ChatSession::new(Fake::default());
        let mut completion = json!({"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": null, "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "send_email", "arguments": "{}"}},
            {"id": "b", "type": "function", "function": {"name": "lookup_order", "arguments": "{\"order_id\":"}}
        ]}}]});
        s.check_completion(&mut completion);
        let choice = &completion["choices"][0];
        assert_eq!(choice["finish_reason"], json!("stop"));
        assert!(choice["message"].get("tool_calls").is_none());
        let text = choice["message"]["content"].as_str().expect("explanation");
        assert!(text.contains("`send_email` was blocked"), "{text}");
        assert!(text.contains(UNPARSABLE_ARGUMENTS), "{text}");
        assert_eq!(
            s.enforcer().refused,
            vec![("lookup_order".to_string(), UNPARSABLE_ARGUMENTS.to_string())],
            "the unparsable call is recorded as a refusal"
        );
    }

    #[test]
    fn allowed_calls_stay_and_are_finished_by_their_tool_message() {
        let mut s = ChatSession::new(Fake::default());
        let mut completion = json!({"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "checking", "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "lookup_order", "arguments": "{}"}}]}}]});
        s.check_completion(&mut completion);
        assert_eq!(
            completion["choices"][0]["finish_reason"],
            json!("tool_calls")
        );
        assert_eq!(
            completion["choices"][0]["message"]["content"],
            json!("checking")
        );
        s.check_request(&mut history()).expect("valid");
        assert_eq!(s.enforcer().finished, vec!["lookup_order".to_string()]);
    }

    #[test]
    fn non_text_content_is_rejected() {
        let mut s = ChatSession::new(Fake::default());
        let mut body = json!({"messages": [{"role": "user", "content": 7}]});
        assert!(matches!(
            s.check_request(&mut body),
            Err(ChatError::Invalid(_))
        ));
    }
}
