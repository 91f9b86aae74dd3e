//! Streamed Responses (`stream: true`): the server sends typed events (`response.created`,
//! `response.output_item.added`, `response.output_text.delta`,
//! `response.function_call_arguments.delta`/`.done`, `response.output_item.done`, ...,
//! `response.completed`), each with a `sequence_number`, and no `[DONE]` sentinel.
//!
//! Events of `message` and `function_call` items are held back until the item is done (text
//! already sent cannot be taken back, and a call is judged on its whole arguments); the checked
//! item is then re-emitted as a complete event sequence (added, content/arguments in one delta,
//! done). The final `response.completed` (or `.incomplete`/`.failed`) carries the same checked
//! items, so nothing is decided twice. Events of other items (reasoning, built-in tools) and of
//! the response itself pass at once. Sequence numbers are rewritten to stay consecutive.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::enforcer::Enforcer;
use crate::openai_chat::ChatSession;
use crate::openai_responses::item_type;
use crate::openai_stream::StreamError;

#[derive(Default)]
struct ItemBuf {
    item: Value,
    texts: BTreeMap<u64, String>,
    arguments: String,
}

/// Reassembles one streamed response and emits checked events.
pub struct ResponsesStream {
    held: BTreeMap<u64, ItemBuf>,
    passing: BTreeSet<u64>,
    checked: BTreeMap<u64, Value>,
    sequence: u64,
    buffered: usize,
    limit: usize,
    /// The response id, once `response.created` named it.
    pub response_id: Option<String>,
    finished: bool,
}

const TERMINAL: [&str; 3] = [
    "response.completed",
    "response.incomplete",
    "response.failed",
];

impl ResponsesStream {
    /// A filter buffering at most `limit` bytes of deltas.
    pub fn new(limit: usize) -> Self {
        ResponsesStream {
            held: BTreeMap::new(),
            passing: BTreeSet::new(),
            checked: BTreeMap::new(),
            sequence: 0,
            buffered: 0,
            limit,
            response_id: None,
            finished: false,
        }
    }

    /// Whether a terminal event (`response.completed`, ...) has been relayed.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// Takes one event's JSON data; returns the events to emit now.
    pub fn event<E: Enforcer>(
        &mut self,
        session: &mut ChatSession<E>,
        event: Value,
    ) -> Result<Vec<Value>, StreamError> {
        let kind = event
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let index = event.get("output_index").and_then(Value::as_u64);
        let mut out = Vec::new();
        match (kind.as_str(), index) {
            ("response.created", _) => {
                if let Some(id) = event.pointer("/response/id").and_then(Value::as_str) {
                    self.response_id = Some(id.to_string());
                }
                out.push(event);
            }
            ("response.output_item.added", Some(i)) => {
                let item = event.get("item").cloned().unwrap_or(Value::Null);
                if matches!(item_type(&item), Some("message" | "function_call")) {
                    self.grow(item.to_string().len())?;
                    self.held.insert(
                        i,
                        ItemBuf {
                            item,
                            ..ItemBuf::default()
                        },
                    );
                } else {
                    self.passing.insert(i);
                    out.push(event);
                }
            }
            ("response.output_item.done", Some(i)) if !self.passing.contains(&i) => {
                self.held.remove(&i);
                let item = event.get("item").cloned().unwrap_or(Value::Null);
                let checked = session.check_output_item(item);
                out.extend(self.emit_item(i, &checked));
                self.checked.insert(i, checked);
            }
            (k, _) if TERMINAL.contains(&k) => {
                out.extend(self.flush(session));
                let mut event = event;
                if let Some(output) = event
                    .pointer_mut("/response/output")
                    .and_then(Value::as_array_mut)
                {
                    for (i, item) in output.iter_mut().enumerate() {
                        let i = i as u64;
                        if self.passing.contains(&i) {
                            continue;
                        }
                        *item = match self.checked.get(&i) {
                            Some(c) => c.clone(),
                            // An item the stream never announced: checked now.
                            None => session.check_output_item(std::mem::take(item)),
                        };
                    }
                }
                self.finished = true;
                out.push(event);
            }
            (_, Some(i)) if self.held.contains_key(&i) => {
                self.absorb(i, &kind, &event)?;
            }
            (_, Some(i)) if self.checked.contains_key(&i) => {} // late piece of a checked item
            _ => out.push(event),
        }
        Ok(out
            .into_iter()
            .map(|mut e| {
                if let Some(obj) = e.as_object_mut() {
                    obj.insert("sequence_number".into(), json!(self.sequence));
                    self.sequence += 1;
                }
                e
            })
            .collect())
    }

    /// The stream ended without a terminal event: checks and emits every held item.
    pub fn end<E: Enforcer>(&mut self, session: &mut ChatSession<E>) -> Vec<Value> {
        let mut out = self.flush(session);
        for e in &mut out {
            e["sequence_number"] = json!(self.sequence);
            self.sequence += 1;
        }
        out
    }

    fn grow(&mut self, n: usize) -> Result<(), StreamError> {
        self.buffered += n;
        if self.buffered > self.limit {
            return Err(StreamError::TooLarge(self.limit));
        }
        Ok(())
    }

    fn absorb(&mut self, index: u64, kind: &str, event: &Value) -> Result<(), StreamError> {
        let delta = event.get("delta").and_then(Value::as_str).unwrap_or("");
        self.grow(delta.len())?;
        let Some(buf) = self.held.get_mut(&index) else {
            return Ok(());
        };
        match kind {
            "response.output_text.delta" => {
                let part = event
                    .get("content_index")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                buf.texts.entry(part).or_default().push_str(delta);
            }
            "response.content_part.added"
                if event.pointer("/part/type").and_then(Value::as_str) == Some("output_text") =>
            {
                let part = event
                    .get("content_index")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                buf.texts.entry(part).or_default();
            }
            "response.function_call_arguments.delta" => buf.arguments.push_str(delta),
            // `.done` carries the whole arguments: it wins over the deltas.
            "response.function_call_arguments.done" => {
                if let Some(a) = event.get("arguments").and_then(Value::as_str) {
                    buf.arguments = a.to_string();
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Checks and emits the held items that never got their `output_item.done`.
    fn flush<E: Enforcer>(&mut self, session: &mut ChatSession<E>) -> Vec<Value> {
        let held = std::mem::take(&mut self.held);
        let mut out = Vec::new();
        for (i, buf) in held {
            let mut item = buf.item;
            match item_type(&item) {
                Some("function_call") => item["arguments"] = json!(buf.arguments),
                _ => {
                    let parts: Vec<Value> = buf
                        .texts
                        .into_values()
                        .map(|t| json!({"type": "output_text", "text": t, "annotations": []}))
                        .collect();
                    item["content"] = Value::Array(parts);
                }
            }
            item["status"] = json!("incomplete");
            let checked = session.check_output_item(item);
            out.extend(self.emit_item(i, &checked));
            self.checked.insert(i, checked);
        }
        out
    }

    /// The event sequence that delivers a whole checked item.
    fn emit_item(&self, index: u64, item: &Value) -> Vec<Value> {
        let id = item.get("id").cloned().unwrap_or(Value::Null);
        let mut opening = item.clone();
        let mut events = Vec::new();
        match item_type(item) {
            Some("function_call") => {
                opening["arguments"] = json!("");
                opening["status"] = json!("in_progress");
                events.push(json!({"type": "response.output_item.added", "output_index": index, "item": opening}));
                let args = item.get("arguments").cloned().unwrap_or(json!(""));
                events.push(json!({"type": "response.function_call_arguments.delta",
                    "item_id": id, "output_index": index, "delta": args}));
                events.push(json!({"type": "response.function_call_arguments.done",
                    "item_id": id, "output_index": index, "arguments": args}));
            }
            Some("message") => {
                opening["content"] = json!([]);
                opening["status"] = json!("in_progress");
                events.push(json!({"type": "response.output_item.added", "output_index": index, "item": opening}));
                let parts = item.get("content").and_then(Value::as_array);
                for (c, part) in parts.into_iter().flatten().enumerate() {
                    events.extend(part_events(&id, index, c as u64, part));
                }
            }
            _ => {
                events.push(json!({"type": "response.output_item.added", "output_index": index, "item": opening}));
            }
        }
        events.push(
            json!({"type": "response.output_item.done", "output_index": index, "item": item}),
        );
        events
    }
}

/// `content_part.added`, the whole text as one delta, its `.done`, `content_part.done`.
fn part_events(id: &Value, index: u64, content: u64, part: &Value) -> Vec<Value> {
    let (kind, field) = match part.get("type").and_then(Value::as_str) {
        Some("output_text") => ("output_text", "text"),
        Some("refusal") => ("refusal", "refusal"),
        _ => {
            return vec![
                json!({"type": "response.content_part.added", "item_id": id, "output_index": index, "content_index": content, "part": part}),
                json!({"type": "response.content_part.done", "item_id": id, "output_index": index, "content_index": content, "part": part}),
            ];
        }
    };
    let text = part.get(field).cloned().unwrap_or(json!(""));
    let mut empty = part.clone();
    empty[field] = json!("");
    if kind == "output_text" {
        empty["annotations"] = json!([]);
    }
    let mut delta = json!({"type": format!("response.{kind}.delta"), "item_id": id, "output_index": index, "content_index": content, "delta": text});
    let mut done = json!({"type": format!("response.{kind}.done"), "item_id": id, "output_index": index, "content_index": content, field: text});
    if kind == "output_text" {
        // The published text events carry `logprobs` (empty unless requested; the re-emitted
        // text is the checked one, which the model's token log-probabilities no longer match).
        delta["logprobs"] = json!([]);
        done["logprobs"] = json!([]);
    }
    vec![
        json!({"type": "response.content_part.added", "item_id": id, "output_index": index, "content_index": content, "part": empty}),
        delta,
        done,
        json!({"type": "response.content_part.done", "item_id": id, "output_index": index, "content_index": content, "part": part}),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_enforcer::DenyEmail;

    fn run(events: Vec<Value>) -> Vec<Value> {
        let mut s = ChatSession::new(DenyEmail);
        let mut f = ResponsesStream::new(1 << 20);
        let mut out = Vec::new();
        for e in events {
            out.extend(f.event(&mut s, e).expect("ok"));
        }
        out.extend(f.end(&mut s));
        out
    }

    #[test]
    fn split_text_is_redacted_whole_and_sequence_renumbered() {
        let msg = json!({"type": "message", "id": "msg_1", "status": "in_progress", "role": "assistant", "content": []});
        let done = json!({"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": "card 4111 ok", "annotations": []}]});
        let out = run(vec![
            json!({"type": "response.created", "sequence_number": 0, "response": {"id": "resp_1", "output": []}}),
            json!({"type": "response.output_item.added", "sequence_number": 1, "output_index": 0, "item": msg}),
            json!({"type": "response.output_text.delta", "sequence_number": 2, "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": "card 41"}),
            json!({"type": "response.output_text.delta", "sequence_number": 3, "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": "11 ok"}),
            json!({"type": "response.output_item.done", "sequence_number": 4, "output_index": 0, "item": done}),
            json!({"type": "response.completed", "sequence_number": 5, "response": {"id": "resp_1", "output": [done]}}),
        ]);
        let text: String = out
            .iter()
            .filter(|e| e["type"] == "response.output_text.delta")
            .filter_map(|e| e["delta"].as_str())
            .collect();
        assert_eq!(text, "card [CARD] ok");
        assert!(!out.iter().any(|e| e.to_string().contains("4111")));
        let seqs: Vec<u64> = out
            .iter()
            .filter_map(|e| e["sequence_number"].as_u64())
            .collect();
        assert_eq!(seqs, (0..out.len() as u64).collect::<Vec<_>>());
    }

    #[test]
    fn denied_call_is_replaced_in_events_and_in_the_completed_response() {
        let call = json!({"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "send_email", "arguments": "", "status": "in_progress"});
        let mut done = call.clone();
        done["arguments"] = json!("{\"to\":\"x@evil.com\"}");
        let out = run(vec![
            json!({"type": "response.output_item.added", "output_index": 0, "item": call}),
            json!({"type": "response.function_call_arguments.delta", "output_index": 0, "item_id": "fc_1", "delta": "{\"to\":"}),
            json!({"type": "response.function_call_arguments.done", "output_index": 0, "item_id": "fc_1", "arguments": "{\"to\":\"x@evil.com\"}"}),
            json!({"type": "response.output_item.done", "output_index": 0, "item": done}),
            json!({"type": "response.completed", "response": {"id": "r", "output": [done]}}),
        ]);
        assert!(!out.iter().any(|e| e.to_string().contains("evil.com")));
        let last = out.last().expect("completed");
        assert_eq!(last["type"], json!("response.completed"));
        assert_eq!(last["response"]["output"][0]["type"], json!("message"));
        assert!(out.iter().any(|e| e["type"] == "response.output_text.delta"
            && e["delta"].as_str().is_some_and(|d| d.contains("blocked"))));
    }

    #[test]
    fn a_cut_stream_still_checks_what_was_held() {
        let call = json!({"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "lookup", "arguments": ""});
        let out = run(vec![
            json!({"type": "response.output_item.added", "output_index": 0, "item": call}),
            json!({"type": "response.function_call_arguments.delta", "output_index": 0, "item_id": "fc_1", "delta": "{\"a\":1}"}),
        ]);
        let done = out
            .iter()
            .find(|e| e["type"] == "response.output_item.done")
            .expect("emitted at end");
        assert_eq!(done["item"]["arguments"], json!("{\"a\":1}"));
        assert_eq!(done["item"]["status"], json!("incomplete"));
    }

    #[test]
    fn buffering_is_bounded() {
        let mut s = ChatSession::new(DenyEmail);
        let mut f = ResponsesStream::new(256);
        let call = json!({"type": "function_call", "id": "fc_1", "call_id": "c", "name": "lookup", "arguments": ""});
        f.event(
            &mut s,
            json!({"type": "response.output_item.added", "output_index": 0, "item": call}),
        )
        .expect("small");
        let err = f
            .event(
                &mut s,
                json!({"type": "response.function_call_arguments.delta", "output_index": 0, "delta": "x".repeat(300)}),
            )
            .expect_err("too large");
        assert_eq!(err, StreamError::TooLarge(256));
    }

    /// Splits `s` at the given cut points (char boundaries only).
    fn split(s: &str, cuts: &[usize]) -> Vec<String> {
        let mut bounds: Vec<usize> = cuts
            .iter()
            .map(|c| c % (s.len() + 1))
            .filter(|c| s.is_char_boundary(*c))
            .collect();
        bounds.extend([0, s.len()]);
        bounds.sort_unstable();
        bounds.dedup();
        bounds
            .windows(2)
            .map(|w| s[w[0]..w[1]].to_string())
            .collect()
    }

    proptest::proptest! {
        /// However the deltas are split, and whether or not the stream is cut before the items
        /// are done, the client gets what the non-streamed check gives for the whole item.
        #[test]
        fn any_split_gives_the_whole_item_check(
            text in "[a-z0-9 ]{0,40}",
            to in "[a-z]{1,8}",
            cuts in proptest::collection::vec(0usize..64, 0..6),
            cut_early in proptest::bool::ANY,
            deny in proptest::bool::ANY,
        ) {
            let name = if deny { "send_email" } else { "lookup" };
            let args = format!("{{\"to\":\"{to}\"}}");
            let msg_done = json!({"type": "message", "id": "m", "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}]});
            let fc_done = json!({"type": "function_call", "id": "f", "call_id": "c", "name": name,
                "arguments": args, "status": "completed"});
            let mut events = vec![json!({"type": "response.output_item.added", "output_index": 0,
                "item": {"type": "message", "id": "m", "status": "in_progress", "role": "assistant", "content": []}}),
                json!({"type": "response.content_part.added", "output_index": 0, "content_index": 0,
                    "part": {"type": "output_text", "text": "", "annotations": []}})];
            for d in split(&text, &cuts) {
                events.push(json!({"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": d}));
            }
            events.push(json!({"type": "response.output_item.added", "output_index": 1,
                "item": {"type": "function_call", "id": "f", "call_id": "c", "name": name, "arguments": "", "status": "in_progress"}}));
            for d in split(&args, &cuts) {
                events.push(json!({"type": "response.function_call_arguments.delta", "output_index": 1, "delta": d}));
            }
            if !cut_early {
                events.push(json!({"type": "response.output_item.done", "output_index": 0, "item": msg_done}));
                events.push(json!({"type": "response.output_item.done", "output_index": 1, "item": fc_done}));
            }
            let out = run(events);
            let done: Vec<&Value> = out
                .iter()
                .filter(|e| e["type"] == "response.output_item.done")
                .map(|e| &e["item"])
                .collect();
            let mut whole = ChatSession::new(DenyEmail);
            let expect = [whole.check_output_item(msg_done), whole.check_output_item(fc_done)];
            proptest::prop_assert_eq!(done.len(), 2);
            for (got, want) in done.iter().zip(&expect) {
                proptest::prop_assert_eq!(&got["type"], &want["type"]);
                proptest::prop_assert_eq!(&got["content"], &want["content"]);
                proptest::prop_assert_eq!(&got["arguments"], &want["arguments"]);
            }
            let streamed: String = out
                .iter()
                .filter(|e| e["type"] == "response.output_text.delta" && e["output_index"] == 0)
                .filter_map(|e| e["delta"].as_str())
                .collect();
            proptest::prop_assert_eq!(Some(streamed.as_str()), expect[0]["content"][0]["text"].as_str());
        }
    }
}
