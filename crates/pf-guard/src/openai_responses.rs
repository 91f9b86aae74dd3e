//! Enforcement on the OpenAI Responses API (`POST /v1/responses` request and response bodies),
//! independent of HTTP. A Responses conversation is kept in the same [`ChatSession`] a chat
//! conversation uses, so both share the flow model, the concurrency slots and the memory of
//! processed input.
//!
//! Requests (`input`, a string or a list of items): a `message` item with `role: user` (or the
//! plain string form) is the user's own request, trusted by `unless: [user_request]` rules; a
//! `function_call_output` item is a tool's output, checked and labelled under the tool's name,
//! found through its `call_id` in a `function_call` item of the same input or of an earlier
//! response the guard relayed (with `previous_response_id` the client sends only new items).
//! As with chat, every input item is processed once per session and its verdict re-applied.
//!
//! Responses (`output`, a list of items): every `function_call` item is decided (its
//! `arguments` is the JSON text the model wrote); a denied call is replaced by an assistant
//! `message` item whose text explains the refusal, so the client never runs it and the model
//! reads why on the next turn. Every `output_text` part of a `message` item goes through the
//! output constraints of `text_generation`: redacted in place, or replaced by a `refusal` part
//! when withheld. Other item types (reasoning, built-in tool calls) pass unchanged.

use serde_json::{Map, Value, json};

use crate::enforcer::{Enforcer, OutputOutcome};
use crate::openai_chat::{ChatError, ChatSession, MAX_MESSAGES, MAX_SEEN, message_key};

/// Id prefix of the message items that replace denied function calls.
pub const REFUSAL_ITEM_PREFIX: &str = "msg_pf_";

impl<E: Enforcer> ChatSession<E> {
    /// Feeds user input to the flow model and checks function-call outputs, rewriting withheld
    /// or redacted outputs in place.
    pub fn check_responses_request(&mut self, body: &mut Value) -> Result<(), ChatError> {
        self.hide_tools(body);
        let Some(input) = body.get_mut("input") else {
            return Err(ChatError::Invalid("`input` is required".into()));
        };
        if let Value::String(text) = input {
            let text = text.clone();
            self.seen_once(message_key(0, "user", None, &text), |s| {
                s.enforcer.user_request(&text);
                None
            })?;
            return Ok(());
        }
        let Some(items) = input.as_array_mut() else {
            return Err(ChatError::Invalid(
                "`input` must be a string or a list of items".into(),
            ));
        };
        if items.len() > MAX_MESSAGES {
            return Err(ChatError::Invalid(format!(
                "more than {MAX_MESSAGES} items"
            )));
        }
        // Tool names by call id: this input's function calls, then those of earlier responses.
        let mut names = self.call_names.clone();
        for item in items.iter() {
            if item_type(item) == Some("function_call")
                && let (Some(id), Some(name)) = (
                    item.get("call_id").and_then(Value::as_str),
                    item.get("name").and_then(Value::as_str),
                )
            {
                names.insert(id.to_string(), name.to_string());
            }
        }
        for (i, item) in items.iter_mut().enumerate() {
            let Some(obj) = item.as_object_mut() else {
                return Err(ChatError::Invalid(format!(
                    "input item {i} is not an object"
                )));
            };
            match item_type_of(obj) {
                Some("message") if obj.get("role").and_then(Value::as_str) == Some("user") => {
                    let text = input_text(obj.get("content")).ok_or_else(|| {
                        ChatError::Invalid(format!(
                            "input item {i}: `content` must be text or input parts"
                        ))
                    })?;
                    self.seen_once(message_key(i, "user", None, &text), |s| {
                        s.enforcer.user_request(&text);
                        None
                    })?;
                }
                Some("function_call_output") => {
                    let call_id = obj
                        .get("call_id")
                        .and_then(Value::as_str)
                        .map(str::to_string);
                    let text = input_text(obj.get("output")).ok_or_else(|| {
                        ChatError::Invalid(format!(
                            "input item {i}: `output` must be text or input parts"
                        ))
                    })?;
                    let key = message_key(i, "function_call_output", call_id.as_deref(), &text);
                    let replacement =
                        self.seen_once(key, |s| s.tool_message(call_id.as_deref(), &names, &text))?;
                    if let Some(r) = replacement {
                        obj.insert("output".into(), Value::String(r));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Runs `first` the first time `key` is seen in this session; returns its verdict then and
    /// on every later sighting.
    fn seen_once(
        &mut self,
        key: [u8; 32],
        first: impl FnOnce(&mut Self) -> Option<String>,
    ) -> Result<Option<String>, ChatError> {
        if let Some(r) = self.seen.get(&key) {
            return Ok(r.clone());
        }
        if self.seen.len() >= MAX_SEEN {
            return Err(ChatError::SessionFull);
        }
        let r = first(self);
        self.seen.insert(key, r.clone());
        Ok(r)
    }

    /// Checks every item of a `response` object's `output` in place.
    pub fn check_response(&mut self, response: &mut Value) {
        let Some(output) = response.get_mut("output").and_then(Value::as_array_mut) else {
            return;
        };
        for item in output.iter_mut() {
            let checked = self.check_output_item(std::mem::take(item));
            *item = checked;
        }
        refresh_output_text(response);
    }

    /// Checks one output item; returns what the client receives in its place.
    pub fn check_output_item(&mut self, item: Value) -> Value {
        let Value::Object(mut obj) = item else {
            return item;
        };
        match item_type_of(&obj) {
            Some("function_call") => {
                let name = obj.get("name").and_then(Value::as_str).map(str::to_string);
                let call_id = obj
                    .get("call_id")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                if let (Some(id), Some(n)) = (&call_id, &name)
                    && self.call_names.len() < MAX_SEEN
                {
                    self.call_names.insert(id.clone(), n.clone());
                }
                match self.decide_function(
                    name.as_deref(),
                    obj.get("arguments"),
                    call_id.as_deref(),
                ) {
                    Ok(()) => Value::Object(obj),
                    Err(note) => {
                        let base = call_id
                            .or_else(|| obj.get("id").and_then(Value::as_str).map(str::to_string))
                            .unwrap_or_default();
                        refusal_item(&format!("{REFUSAL_ITEM_PREFIX}{base}"), &note)
                    }
                }
            }
            Some("message") => {
                if let Some(parts) = obj.get_mut("content").and_then(Value::as_array_mut) {
                    for part in parts.iter_mut() {
                        self.check_text_part(part);
                    }
                }
                Value::Object(obj)
            }
            _ => Value::Object(obj),
        }
    }

    /// Checks one `output_text` content part in place.
    fn check_text_part(&mut self, part: &mut Value) {
        if part.get("type").and_then(Value::as_str) != Some("output_text") {
            return;
        }
        let text = part.get("text").and_then(Value::as_str).unwrap_or("");
        match self.enforcer.check_output(None, text) {
            OutputOutcome::Pass => {}
            OutputOutcome::Redact(r) => {
                part["text"] = Value::String(r);
                // Annotations point into the original text by character offsets, and token
                // log-probabilities describe it.
                part["annotations"] = json!([]);
                if let Some(p) = part.as_object_mut()
                    && p.contains_key("logprobs")
                {
                    p.insert("logprobs".into(), json!([]));
                }
            }
            OutputOutcome::Deny { reason, .. } => {
                *part = json!({"type": "refusal",
                               "refusal": format!("Response withheld by policy: {reason}")});
            }
        }
    }
}

/// A completed assistant message item carrying `text`.
pub fn refusal_item(id: &str, text: &str) -> Value {
    json!({"type": "message", "id": id, "status": "completed", "role": "assistant",
           "content": [{"type": "output_text", "text": text, "annotations": []}]})
}

/// An item's type; items with a `role` and no `type` are messages (the "easy" input form).
pub fn item_type(item: &Value) -> Option<&str> {
    item.as_object().and_then(item_type_of)
}

fn item_type_of(obj: &Map<String, Value>) -> Option<&str> {
    match obj.get("type").and_then(Value::as_str) {
        Some(t) => Some(t),
        None if obj.contains_key("role") => Some("message"),
        None => None,
    }
}

/// The text of an input `content` or a `function_call_output`'s `output`: a string, or the
/// `input_text`/`output_text` parts joined by newlines (images and files carry no text the flow
/// model could follow); `None` for anything else.
fn input_text(content: Option<&Value>) -> Option<String> {
    crate::openai_chat::parts_text(content, &["input_text", "output_text", "text"])
}

/// Recomputes the convenience `output_text` (when the server sent one) from the checked items,
/// so it cannot carry text the checks removed.
fn refresh_output_text(response: &mut Value) {
    let Some(obj) = response.as_object_mut() else {
        return;
    };
    if !obj.contains_key("output_text") {
        return;
    }
    let text: Vec<&str> = obj
        .get("output")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|i| item_type(i) == Some("message"))
        .filter_map(|i| i.get("content").and_then(Value::as_array))
        .flatten()
        .filter(|p| p.get("type").and_then(Value::as_str) == Some("output_text"))
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect();
    let joined = text.concat();
    obj.insert("output_text".into(), Value::String(joined));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enforcer::CallOutcome;

    /// Denies `send_email`, redacts "secret", records what it saw.
    #[derive(Default)]
    struct Fake {
        user: Vec<String>,
        outputs: Vec<(Option<String>, String)>,
        refused: Vec<(String, String)>,
        decided: Vec<String>,
    }

    impl Enforcer for Fake {
        fn tool_visible(&self, _: &str) -> bool {
            true
        }
        fn decide_call(&mut self, tool: &str, _: &Value) -> CallOutcome {
            self.decided.push(tool.to_string());
            if tool == "send_email" {
                CallOutcome::Deny {
                    reason: "flow".into(),
                    codes: vec![],
                }
            } else {
                CallOutcome::Allow
            }
        }
        fn check_output(&mut self, tool: Option<&str>, text: &str) -> OutputOutcome {
            self.outputs
                .push((tool.map(str::to_string), text.to_string()));
            if text.contains("forbidden") {
                return OutputOutcome::Deny {
                    reason: "nope".into(),
                    codes: vec![],
                };
            }
            if text.contains("secret") {
                OutputOutcome::Redact(text.replace("secret", "[REDACTED]"))
            } else {
                OutputOutcome::Pass
            }
        }
        fn finish_call(&mut self, _: &str) {}
        fn user_request(&mut self, text: &str) {
            self.user.push(text.to_string());
        }
        fn refuse_call(&mut self, tool: &str, code: &str, _: &Value) {
            self.refused.push((tool.to_string(), code.to_string()));
        }
    }

    fn input() -> Value {
        json!({"model": "m", "input": [
            {"role": "user", "content": "find my order"},
            {"type": "function_call", "call_id": "call_1", "name": "lookup_order", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "the secret is 42"}
        ]})
    }

    #[test]
    fn user_input_and_outputs_are_processed_once_and_verdicts_reapplied() {
        let mut s = ChatSession::new(Fake::default());
        let mut first = input();
        s.check_responses_request(&mut first).expect("valid");
        let mut again = input();
        s.check_responses_request(&mut again).expect("valid");
        assert_eq!(s.enforcer().user, vec!["find my order".to_string()]);
        assert_eq!(
            s.enforcer().outputs,
            vec![(Some("lookup_order".into()), "the secret is 42".into())]
        );
        assert_eq!(again["input"][2]["output"], json!("the [REDACTED] is 42"));
    }

    #[test]
    fn string_input_is_the_user_request() {
        let mut s = ChatSession::new(Fake::default());
        s.check_responses_request(&mut json!({"input": "hello"}))
            .expect("valid");
        assert_eq!(s.enforcer().user, vec!["hello".to_string()]);
        assert!(matches!(
            s.check_responses_request(&mut json!({"input": 5})),
            Err(ChatError::Invalid(_))
        ));
    }

    #[test]
    fn tool_names_come_from_earlier_responses() {
        let mut s = ChatSession::new(Fake::default());
        let mut resp = json!({"output": [
            {"type": "function_call", "id": "fc_1", "call_id": "call_9", "name": "search_kb", "arguments": "{\"q\":\"x\"}", "status": "completed"}]});
        s.check_response(&mut resp);
        assert_eq!(resp["output"][0]["type"], json!("function_call"));
        let mut next = json!({"previous_response_id": "resp_1", "input": [
            {"type": "function_call_output", "call_id": "call_9", "output": [{"type": "input_text", "text": "kb says hi"}]}]});
        s.check_responses_request(&mut next).expect("valid");
        assert_eq!(
            s.enforcer().outputs,
            vec![(Some("search_kb".into()), "kb says hi".into())]
        );
    }

    #[test]
    fn denied_and_unparsable_calls_become_messages() {
        let mut s = ChatSession::new(Fake::default());
        let mut resp = json!({"output": [
            {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "send_email", "arguments": "{}"},
            {"type": "function_call", "id": "fc_2", "call_id": "call_2", "name": "lookup_order", "arguments": "{\"order_id\":"},
            {"type": "function_call", "id": "fc_3", "call_id": "call_3", "name": "lookup_order", "arguments": "{}"}
        ], "output_text": "stale"});
        s.check_response(&mut resp);
        let out = resp["output"].as_array().expect("output");
        assert_eq!(out[0]["type"], json!("message"));
        assert_eq!(out[0]["id"], json!("msg_pf_call_1"));
        let t0 = out[0]["content"][0]["text"].as_str().expect("text");
        assert!(
            t0.contains("`send_email` was blocked by policy: flow"),
            "{t0}"
        );
        let t1 = out[1]["content"][0]["text"].as_str().expect("text");
        assert!(t1.contains("arguments.unparsable"), "{t1}");
        assert_eq!(out[2]["type"], json!("function_call"));
        assert_eq!(
            s.enforcer().refused,
            vec![("lookup_order".into(), "arguments.unparsable".into())]
        );
        assert_eq!(s.enforcer().decided, vec!["send_email", "lookup_order"]);
        let joined = resp["output_text"].as_str().expect("recomputed");
        assert!(joined.contains("send_email"), "{joined}");
    }

    #[test]
    fn output_text_is_redacted_or_withheld() {
        let mut s = ChatSession::new(Fake::default());
        let mut resp = json!({"output": [{"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
        "content": [
            {"type": "output_text", "text": "a secret", "annotations": [{"type": "url_citation"}]},
            {"type": "output_text", "text": "forbidden words", "annotations": []}
        ]}]});
        s.check_response(&mut resp);
        let parts = &resp["output"][0]["content"];
        assert_eq!(parts[0]["text"], json!("a [REDACTED]"));
        assert_eq!(parts[0]["annotations"], json!([]));
        assert_eq!(parts[1]["type"], json!("refusal"));
        assert!(
            parts[1]["refusal"]
                .as_str()
                .is_some_and(|r| r.contains("nope"))
        );
    }
}
