//! Test double for the OpenAI stream filters' unit tests.

use serde_json::Value;

use crate::enforcer::{CallOutcome, Enforcer, OutputOutcome};

/// Denies `send_email`, allows every other call, and redacts `4111` in outputs.
pub(crate) struct DenyEmail;

impl Enforcer for DenyEmail {
    fn tool_visible(&self, _: &str) -> bool {
        true
    }
    fn decide_call(&mut self, tool: &str, _: &Value) -> CallOutcome {
        if tool == "send_email" {
            CallOutcome::Deny {
                reason: "flow".into(),
                codes: vec![],
            }
        } else {
            CallOutcome::Allow
        }
    }
    fn check_output(&mut self, _: Option<&str>, text: &str) -> OutputOutcome {
        OutputOutcome::Redact(text.replace("4111", "[CARD]"))
    }
    fn finish_call(&mut self, _: &str) {}
    fn user_request(&mut self, _: &str) {}
    fn refuse_call(&mut self, _: &str, _: &str, _: &Value) {}
}
