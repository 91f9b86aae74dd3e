//! The published JSON Schema of AgentSpec, generated from the Rust types.

use crate::model::AgentSpec;

/// JSON Schema (draft 2020-12) for AgentSpec documents, as pretty-printed JSON text.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(AgentSpec);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}
