//! Streamed chat completions (`stream: true`, `chat.completion.chunk` events): deltas are
//! buffered per choice until the choice finishes, then the assembled message goes through the
//! same checks as a non-streamed one and is re-emitted as two chunks (the delta, then the
//! `finish_reason`).
//!
//! Content is buffered too, not only tool calls: a card number or e-mail split over two deltas,
//! or a `max_length` crossed late, can only be judged on the whole text, and text already sent
//! cannot be taken back.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::enforcer::Enforcer;
use crate::openai_chat::ChatSession;

/// Why a stream cannot be relayed further.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// The buffered deltas outgrew the limit.
    #[error("streamed completion exceeds {0} bytes")]
    TooLarge(usize),
}

#[derive(Default)]
struct CallBuf {
    id: String,
    kind: String,
    name: String,
    arguments: String,
}

#[derive(Default)]
struct ChoiceBuf {
    role: Option<String>,
    content: Option<String>,
    refusal: Option<String>,
    calls: BTreeMap<u64, CallBuf>,
}

/// Reassembles one streamed completion and emits checked chunks.
pub struct StreamFilter {
    template: Option<Map<String, Value>>,
    choices: BTreeMap<u64, ChoiceBuf>,
    buffered: usize,
    limit: usize,
}

impl StreamFilter {
    /// A filter buffering at most `limit` bytes of deltas.
    pub fn new(limit: usize) -> Self {
        StreamFilter {
            template: None,
            choices: BTreeMap::new(),
            buffered: 0,
            limit,
        }
    }

    /// Takes one chunk; returns the chunks to emit now.
    pub fn chunk<E: Enforcer>(
        &mut self,
        session: &mut ChatSession<E>,
        chunk: Value,
    ) -> Result<Vec<Value>, StreamError> {
        let Value::Object(mut chunk) = chunk else {
            return Ok(Vec::new());
        };
        if chunk.contains_key("error") {
            return Ok(vec![Value::Object(chunk)]); // an upstream error event, passed on
        }
        let choices = match chunk.remove("choices") {
            Some(Value::Array(c)) if !c.is_empty() => c,
            // A choice-less chunk (usage at the end of the stream) carries no content.
            other => {
                if let Some(c) = other {
                    chunk.insert("choices".into(), c);
                }
                return Ok(vec![Value::Object(chunk)]);
            }
        };
        if self.template.is_none() {
            let mut t = chunk.clone();
            t.remove("usage");
            self.template = Some(t);
        }
        let mut out = Vec::new();
        for choice in choices {
            let index = choice.get("index").and_then(Value::as_u64).unwrap_or(0);
            if let Some(delta) = choice.get("delta") {
                self.absorb(index, delta)?;
            }
            let finish = choice.get("finish_reason").cloned().unwrap_or(Value::Null);
            if !finish.is_null() {
                out.extend(self.finish(session, index, finish));
            }
        }
        Ok(out)
    }

    /// The stream ended (`[DONE]` or cut): checks and emits every unfinished choice.
    pub fn end<E: Enforcer>(&mut self, session: &mut ChatSession<E>) -> Vec<Value> {
        let open: Vec<u64> = self.choices.keys().copied().collect();
        open.into_iter()
            .flat_map(|i| self.finish(session, i, Value::Null))
            .collect()
    }

    fn absorb(&mut self, index: u64, delta: &Value) -> Result<(), StreamError> {
        let buf = self.choices.entry(index).or_default();
        let mut added = 0;
        if let Some(role) = delta.get("role").and_then(Value::as_str) {
            buf.role = Some(role.to_string());
        }
        if let Some(text) = delta.get("content").and_then(Value::as_str) {
            buf.content.get_or_insert_with(String::new).push_str(text);
            added += text.len();
        }
        if let Some(text) = delta.get("refusal").and_then(Value::as_str) {
            buf.refusal.get_or_insert_with(String::new).push_str(text);
            added += text.len();
        }
        for call in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let i = call.get("index").and_then(Value::as_u64).unwrap_or(0);
            let c = buf.calls.entry(i).or_default();
            let mut append = |field: &mut String, v: Option<&Value>| {
                if let Some(s) = v.and_then(Value::as_str) {
                    field.push_str(s);
                    added += s.len();
                }
            };
            append(&mut c.id, call.get("id"));
            append(&mut c.kind, call.get("type"));
            append(&mut c.name, call.pointer("/function/name"));
            append(&mut c.arguments, call.pointer("/function/arguments"));
        }
        self.buffered += added;
        if self.buffered > self.limit {
            return Err(StreamError::TooLarge(self.limit));
        }
        Ok(())
    }

    fn finish<E: Enforcer>(
        &mut self,
        session: &mut ChatSession<E>,
        index: u64,
        mut finish: Value,
    ) -> Vec<Value> {
        let Some(buf) = self.choices.remove(&index) else {
            return vec![self.wrap(index, json!({}), finish)];
        };
        let mut message = Map::new();
        message.insert(
            "role".into(),
            json!(buf.role.unwrap_or_else(|| "assistant".into())),
        );
        message.insert("content".into(), json!(buf.content));
        if let Some(r) = buf.refusal {
            message.insert("refusal".into(), json!(r));
        }
        if !buf.calls.is_empty() {
            let calls: Vec<Value> = buf
                .calls
                .into_values()
                .map(|c| {
                    let kind = if c.kind.is_empty() {
                        "function".into()
                    } else {
                        c.kind
                    };
                    json!({"id": c.id, "type": kind,
                           "function": {"name": c.name, "arguments": c.arguments}})
                })
                .collect();
            message.insert("tool_calls".into(), Value::Array(calls));
        }
        session.check_message(&mut message, &mut finish);
        // Kept calls are renumbered so the client sees indices 0.. without gaps.
        if let Some(Value::Array(calls)) = message.get_mut("tool_calls") {
            for (i, c) in calls.iter_mut().enumerate() {
                c["index"] = json!(i);
            }
        }
        vec![
            self.wrap(index, Value::Object(message), Value::Null),
            self.wrap(index, json!({}), finish),
        ]
    }

    fn wrap(&self, index: u64, delta: Value, finish: Value) -> Value {
        let mut chunk = self.template.clone().unwrap_or_default();
        chunk.insert(
            "choices".into(),
            json!([{"index": index, "delta": delta, "logprobs": null, "finish_reason": finish}]),
        );
        Value::Object(chunk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_enforcer::DenyEmail;

    fn chunk(delta: Value, finish: Value) -> Value {
        json!({"id": "x", "object": "chat.completion.chunk", "model": "m",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    }

    #[test]
    fn split_content_and_arguments_are_reassembled_before_checks() {
        let mut s = ChatSession::new(DenyEmail);
        let mut f = StreamFilter::new(1 << 20);
        let deltas = [
            json!({"role": "assistant", "content": "card 41"}),
            json!({"content": "11 ok"}),
            json!({"tool_calls": [{"index": 0, "id": "a", "type": "function", "function": {"name": "send_email", "arguments": "{\"to\":"}}]}),
            json!({"tool_calls": [{"index": 1, "id": "b", "type": "function", "function": {"name": "lookup", "arguments": ""}}]}),
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"a@b.c\"}"}}]}),
            json!({"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]}),
        ];
        for d in deltas {
            assert!(
                f.chunk(&mut s, chunk(d, Value::Null))
                    .expect("ok")
                    .is_empty()
            );
        }
        let out = f
            .chunk(&mut s, chunk(json!({}), json!("tool_calls")))
            .expect("ok");
        assert_eq!(out.len(), 2);
        let delta = &out[0]["choices"][0]["delta"];
        let content = delta["content"].as_str().expect("content");
        assert!(content.starts_with("card [CARD] ok"), "{content}");
        assert!(content.contains("`send_email` was blocked"), "{content}");
        assert_eq!(delta["tool_calls"].as_array().map(Vec::len), Some(1));
        assert_eq!(delta["tool_calls"][0]["index"], json!(0));
        assert_eq!(delta["tool_calls"][0]["function"]["name"], json!("lookup"));
        assert_eq!(out[1]["choices"][0]["finish_reason"], json!("tool_calls"));
    }

    #[test]
    fn buffering_is_bounded() {
        let mut s = ChatSession::new(DenyEmail);
        let mut f = StreamFilter::new(8);
        let err = f
            .chunk(&mut s, chunk(json!({"content": "0123456789"}), Value::Null))
            .expect_err("too large");
        assert_eq!(err, StreamError::TooLarge(8));
    }
}
