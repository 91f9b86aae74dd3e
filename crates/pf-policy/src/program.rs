//! The compiled decision program: immutable, shareable (`Send + Sync`), built once per spec.

use std::collections::HashMap;
use std::time::Duration;

use regex::Regex;
use serde_json::{Value, json};

use crate::detect::{DetectorSet, Detectors};
use crate::labels::{LabelMask, Labels};
use crate::rule::Rule;

/// Index of a tool in [`Policy::tools`].
pub type ToolId = usize;

/// A compiled policy: everything `decide` and `check_output` need, precompiled.
#[derive(Debug)]
pub struct Policy {
    pub(crate) agent: String,
    pub(crate) version: String,
    pub(crate) tools: Vec<Tool>,
    pub(crate) by_name: HashMap<String, ToolId>,
    pub(crate) labels: Labels,
    pub(crate) flows: Vec<FlowRule>,
    pub(crate) rules: Vec<CustomRule>,
    pub(crate) agent_rate: Option<Rate>,
    pub(crate) max_concurrent_calls: Option<u32>,
    pub(crate) limits: Limits,
    pub(crate) detectors: Detectors,
    /// Whether some flow rule has `unless: [user_named_source]` (calls then record whether the
    /// user named their source).
    pub(crate) tracks_named_sources: bool,
    /// The `source:<tool>` labels (kept on every value of that tool, whatever its field).
    pub(crate) source_labels: LabelMask,
}

/// Size limits applied to untrusted input at decision time (all fail closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Limits {
    /// Shortest string (bytes) that counts as an information-flow match.
    pub min_token_len: usize,
    /// Largest argument document (serialised bytes, approximated by a walk) a decision accepts.
    pub max_args_bytes: usize,
    /// Deepest JSON nesting a decision accepts.
    pub max_args_depth: usize,
    /// Most labelled bytes a session keeps; beyond this, sinks for the dropped labels deny.
    pub max_flow_bytes: usize,
    /// Largest output text `check_output` scans.
    pub max_output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            min_token_len: 5,
            max_args_bytes: 1 << 20,
            max_args_depth: 64,
            max_flow_bytes: 8 << 20,
            max_output_bytes: 8 << 20,
        }
    }
}

/// One allowed tool (capability) with its precompiled checks.
#[derive(Debug)]
pub(crate) struct Tool {
    pub name: String,
    pub kind: &'static str,
    pub schema: Option<jsonschema::Validator>,
    pub schema_source: Option<Value>,
    pub args: Vec<ArgCheck>,
    pub allowed_domains: Vec<String>,
    pub allowed_paths: Vec<String>,
    pub rate: Option<Rate>,
    pub budget: Budget,
    pub max_concurrent: Option<u32>,
    pub output_labels: LabelMask,
    /// `output_fields`: field name -> labels of the values under it (structured outputs).
    pub output_fields: HashMap<String, LabelMask>,
    pub output: OutputChecks,
    /// Indexes into `Policy::flows` of rules with a sink on this tool.
    pub sinks: Vec<(usize, Sink)>,
}

/// Where on a tool an information-flow rule looks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Sink {
    /// Every string in the arguments.
    Whole,
    /// The strings under one top-level argument.
    Arg(String),
}

/// Per-argument checks, compiled from `constraints.args`.
#[derive(Debug)]
pub(crate) struct ArgCheck {
    pub name: String,
    pub pattern: Option<(String, Regex)>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub max_length: Option<u64>,
    pub domains: Vec<String>,
    pub path_prefixes: Vec<String>,
}

/// A token-bucket rate: `requests` per `per`, burst `requests`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Calls per window, also the bucket capacity.
    pub requests: u32,
    /// Window length.
    pub per: Duration,
}

/// Budgets over a session.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Budget {
    pub max_calls: Option<u64>,
    pub max_tokens: Option<u64>,
    pub max_cost_usd: Option<f64>,
}

/// Output checks for one capability.
#[derive(Debug, Default)]
pub(crate) struct OutputChecks {
    pub max_length: Option<u64>,
    pub detectors: DetectorSet,
    pub patterns: Vec<(String, Regex)>,
    pub deny: bool,
}

impl OutputChecks {
    pub fn filters(&self) -> bool {
        !self.detectors.is_empty() || !self.patterns.is_empty()
    }
}

/// An information-flow rule: values carrying `deny` labels may not reach the sinks.
#[derive(Debug)]
pub(crate) struct FlowRule {
    pub name: String,
    pub deny: LabelMask,
    pub unless_user_request: bool,
    /// `unless: [user_named_source]`.
    pub unless_named_source: bool,
    /// Principal arguments per sink tool (`principals:`): who the call acts for.
    pub principals: Vec<(ToolId, String)>,
    pub sinks: Vec<(ToolId, Sink)>,
}

/// A custom rule in the kernel's rule language.
#[derive(Debug)]
pub(crate) struct CustomRule {
    pub name: String,
    pub text: String,
    pub rule: Rule,
}

impl Policy {
    /// The agent name from the spec.
    pub fn agent(&self) -> &str {
        &self.agent
    }

    /// Whether `tool` is on the allow-list (what an MCP proxy uses to filter `tools/list`).
    pub fn allows_tool(&self, tool: &str) -> bool {
        self.by_name.contains_key(tool)
    }

    /// Names of the allowed tools, in spec order.
    pub fn tool_names(&self) -> impl Iterator<Item = &str> {
        self.tools.iter().map(|t| t.name.as_str())
    }

    /// The labels a tool's outputs carry (its `output_labels` and its `source:` label).
    pub fn output_labels(&self, tool: &str) -> Vec<String> {
        match self.by_name.get(tool) {
            Some(&id) => self.labels.names(self.tools[id].output_labels),
            None => self.labels.names(self.labels.unknown_source()),
        }
    }

    /// The decision-time size limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// A fresh session: empty buckets, budgets, in-flight counts and labelled values.
    pub fn new_session(&self) -> crate::SessionState {
        crate::SessionState::new(self)
    }

    /// The program as compact JSON with sorted keys: the string a Lean `binding` constant must
    /// hold (`pf lean emit --spec` writes it as a Lean definition).
    pub fn canonical_json(&self) -> String {
        // serde_json's map is a BTreeMap here (no `preserve_order`), so keys come out sorted.
        self.to_json().to_string()
    }

    /// The program as JSON with sorted keys: what `pf policy compile --json` prints and what a
    /// Lean `binding` can be compared with.
    pub fn to_json(&self) -> Value {
        let tools: Vec<Value> = self.tools.iter().map(|t| self.tool_json(t)).collect();
        let flows: Vec<Value> = self
            .flows
            .iter()
            .map(|f| {
                let mut unless = Vec::new();
                if f.unless_user_request {
                    unless.push("user_request");
                }
                if f.unless_named_source {
                    unless.push("user_named_source");
                }
                let mut v = json!({
                    "name": f.name,
                    "deny_labels": self.labels.names(f.deny),
                    "unless": unless,
                    "sinks": f.sinks.iter().map(|(t, s)| match s {
                        Sink::Whole => self.tools[*t].name.clone(),
                        Sink::Arg(a) => format!("{}.{a}", self.tools[*t].name),
                    }).collect::<Vec<_>>(),
                });
                if !f.principals.is_empty() {
                    v["principals"] = json!(
                        f.principals
                            .iter()
                            .map(|(t, a)| format!("{}.{a}", self.tools[*t].name))
                            .collect::<Vec<_>>()
                    );
                }
                v
            })
            .collect();
        let rules: Vec<Value> = self
            .rules
            .iter()
            .map(|r| json!({"name": r.name, "rule": r.rule.to_string()}))
            .collect();
        json!({
            "agent": self.agent,
            "version": self.version,
            "tools": tools,
            "information_flow": flows,
            "custom_rules": rules,
            "labels": self.labels.all_names(),
            "agent_rate_limit": self.agent_rate.map(rate_json),
            "max_concurrent_calls": self.max_concurrent_calls,
            "limits": serde_json::to_value(self.limits).unwrap_or(Value::Null),
        })
    }

    fn tool_json(&self, t: &Tool) -> Value {
        let args: serde_json::Map<String, Value> = t
            .args
            .iter()
            .map(|a| {
                let mut m = serde_json::Map::new();
                if let Some((p, _)) = &a.pattern {
                    m.insert("pattern".into(), json!(p));
                }
                if let Some(v) = a.min {
                    m.insert("min".into(), json!(v));
                }
                if let Some(v) = a.max {
                    m.insert("max".into(), json!(v));
                }
                if let Some(v) = a.max_length {
                    m.insert("max_length".into(), json!(v));
                }
                if !a.domains.is_empty() {
                    m.insert("domains".into(), json!(a.domains));
                }
                if !a.path_prefixes.is_empty() {
                    m.insert("path_prefixes".into(), json!(a.path_prefixes));
                }
                (a.name.clone(), Value::Object(m))
            })
            .collect();
        let mut v = json!({
            "name": t.name,
            "kind": t.kind,
            "arguments_schema": t.schema_source,
            "args": args,
            "allowed_domains": t.allowed_domains,
            "allowed_paths": t.allowed_paths,
            "rate_limit": t.rate.map(rate_json),
            "budget": {
                "max_calls": t.budget.max_calls,
                "max_tokens": t.budget.max_tokens,
                "max_cost_usd": t.budget.max_cost_usd,
            },
            "max_concurrent": t.max_concurrent,
            "output_labels": self.labels.names(t.output_labels),
            "output": {
                "max_length": t.output.max_length,
                "detectors": t.output.detectors.names(),
                "patterns": t.output.patterns.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>(),
                "action": if t.output.deny { "deny" } else { "redact" },
            },
        });
        if !t.output_fields.is_empty() {
            // Only when set, so programs without field labels keep their canonical JSON.
            v["output_fields"] = t
                .output_fields
                .iter()
                .map(|(k, m)| (k.clone(), json!(self.labels.names(*m))))
                .collect::<serde_json::Map<String, Value>>()
                .into();
        }
        v
    }
}

fn rate_json(r: Rate) -> Value {
    json!({"requests": r.requests, "per_ms": r.per.as_millis() as u64})
}
