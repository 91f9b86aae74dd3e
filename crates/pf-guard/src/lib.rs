//! `pf-guard`: the runtime guard that sits between an agent and its tools.
//!
//! Protocol adapters turn MCP (stdio child process or Streamable HTTP) and OpenAI-compatible
//! chat-completions and Responses traffic into decisions of an [`Enforcer`]:
//! `tools/list` hides tools the agent may not use, every `tools/call` is decided before it reaches
//! the tool, and every result is checked (and labelled for information flow) before the agent
//! sees it. Denials answer in the agent's own protocol (an MCP tool result with `isError`),
//! never as a dropped connection.

pub mod alert;
pub mod anomaly;
pub mod baseline;
pub mod demo_tools;
mod detach;
pub mod enforcer;
mod h1pool;
pub mod http;
pub mod jsonrpc;
pub mod lines;
mod lock;
pub mod log;
pub mod mcp;
pub mod mcp_http;
pub mod metrics;
pub mod openai;
pub mod openai_chat;
pub mod openai_responses;
mod openai_responses_http;
pub mod openai_responses_stream;
pub mod openai_stream;
pub mod policy_enforcer;
mod pool;
pub mod runtime;
pub mod settle;
pub mod sse;
pub mod stdio;
#[cfg(test)]
mod test_enforcer;
pub mod tls;
pub mod tls_reload;
pub mod upstream;
pub mod user_turn;

pub use enforcer::{CallOutcome, Enforcer, OutputOutcome};
pub use mcp::{McpSession, Route};
pub use policy_enforcer::PolicyEnforcer;
