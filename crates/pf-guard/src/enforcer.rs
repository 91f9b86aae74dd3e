//! The boundary between protocol adapters (MCP, OpenAI-style) and policy enforcement.
//!
//! Adapters translate their protocol into these calls and the answers back into their protocol;
//! the policy kernel, decision log and metrics sit behind the trait.

use serde_json::Value;

/// Outcome of a tool-call decision, in terms an adapter can answer with.
#[derive(Debug, Clone, PartialEq)]
pub enum CallOutcome {
    /// Forward the call to the tool.
    Allow,
    /// Refuse; `reason` is shown to the model, `codes` are machine-readable reason codes.
    Deny {
        /// Human- and model-readable reason.
        reason: String,
        /// Reason codes, e.g. `flow.untrusted_sink`.
        codes: Vec<String>,
    },
}

/// Outcome of checking a tool's result (or a model's output) before it is passed on.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputOutcome {
    /// Pass it on unchanged.
    Pass,
    /// Pass on this redacted text instead.
    Redact(String),
    /// Withhold it; `reason` is shown instead.
    Deny {
        /// Why.
        reason: String,
        /// Reason codes.
        codes: Vec<String>,
    },
}

/// Enforces an agent's policy for one session.
pub trait Enforcer: Send {
    /// Whether the agent may see (and so call) this tool.
    fn tool_visible(&self, tool: &str) -> bool;
    /// Decides a tool call with its JSON arguments.
    fn decide_call(&mut self, tool: &str, args: &Value) -> CallOutcome;
    /// Checks and labels the text a tool returned; `tool` is `None` for model output.
    fn check_output(&mut self, tool: Option<&str>, text: &str) -> OutputOutcome;
    /// Notes that an allowed call has finished (frees concurrency slots).
    fn finish_call(&mut self, tool: &str);
    /// Notes text the user wrote (trusted source for information-flow rules).
    fn user_request(&mut self, text: &str);
    /// Records a call the adapter refused before the policy could judge it (no name, arguments
    /// that are not a JSON object, too many calls in flight): logged like any other denial.
    fn refuse_call(&mut self, tool: &str, code: &str, subject: &Value);
    /// Whether a check left labelling work for later (see [`Enforcer::settle`]).
    fn unsettled(&self) -> bool {
        false
    }
    /// Does the labelling work checks left for later (a large tool output's information-flow
    /// labels), which adapters call once the answer is on its way. Every other method does it
    /// first, so no decision depends on whether or when this is called.
    fn settle(&mut self) {}
}

/// Reason code of a tool call whose arguments are not a JSON object (or not JSON at all).
pub const UNPARSABLE_ARGUMENTS: &str = "arguments.unparsable";
/// Reason code of a tool call without a tool name.
pub const UNNAMED_CALL: &str = "call.unnamed";
/// Tool name logged for a call without one.
pub const UNNAMED_TOOL: &str = "<unnamed>";
/// Reason code of a call refused because too many requests await the server.
pub const OVERLOADED: &str = "guard.overloaded";
