//! Output checks: `max_length`, content-filter detectors and user patterns, redact or deny.

use serde::Serialize;

use crate::detect::Finding;
use crate::program::Policy;
use crate::reason::{Reason, ReasonCode};

/// What to do with a tool's (or the model's) output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "effect", content = "text")]
pub enum OutputEffect {
    /// Pass the output unchanged.
    Allow,
    /// Pass this redacted text instead of the output.
    Redact(String),
    /// Withhold the output.
    Deny,
}

/// An output decision with the findings behind it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutputDecision {
    /// Allow, redact or deny.
    #[serde(flatten)]
    pub effect: OutputEffect,
    /// Detected spans (byte offsets into the original text).
    pub findings: Vec<Finding>,
    /// Why (empty for a plain allow).
    pub reasons: Vec<Reason>,
}

impl OutputDecision {
    fn deny(reason: Reason) -> Self {
        Self {
            effect: OutputEffect::Deny,
            findings: Vec::new(),
            reasons: vec![reason],
        }
    }
}

/// Checks an output of `tool` (use `text_generation` for the model's own text).
pub fn check_output(policy: &Policy, tool: &str, text: &str) -> OutputDecision {
    let Some(&id) = policy.by_name.get(tool) else {
        return OutputDecision::deny(Reason::new(
            ReasonCode::UnknownTool,
            format!("tool `{tool}` is not allowed"),
        ));
    };
    let checks = &policy.tools[id].output;
    if text.len() > policy.limits.max_output_bytes {
        return OutputDecision::deny(Reason::new(
            ReasonCode::OutputTooLarge,
            format!(
                "output larger than {} bytes",
                policy.limits.max_output_bytes
            ),
        ));
    }
    if let Some(max) = checks.max_length
        && text.chars().count() as u64 > max
    {
        return OutputDecision::deny(Reason::new(
            ReasonCode::OutputTooLong,
            format!("output longer than {max} characters"),
        ));
    }
    if !checks.filters() {
        return OutputDecision {
            effect: OutputEffect::Allow,
            findings: Vec::new(),
            reasons: Vec::new(),
        };
    }
    let findings = policy
        .detectors
        .scan(text, checks.detectors, &checks.patterns);
    if findings.is_empty() {
        return OutputDecision {
            effect: OutputEffect::Allow,
            findings,
            reasons: Vec::new(),
        };
    }
    let mut kinds: Vec<String> = findings.iter().map(|f| f.kind.name()).collect();
    kinds.sort();
    kinds.dedup();
    let what = kinds.join(", ");
    if checks.deny {
        let reason = Reason::new(ReasonCode::ContentDenied, format!("output contains {what}"));
        return OutputDecision {
            effect: OutputEffect::Deny,
            findings,
            reasons: vec![reason],
        };
    }
    let reason = Reason::new(ReasonCode::ContentRedacted, format!("redacted {what}"));
    OutputDecision {
        effect: OutputEffect::Redact(redact(text, &findings)),
        findings,
        reasons: vec![reason],
    }
}

/// Replaces each finding (non-overlapping, sorted) with `[REDACTED:<kind>]`.
pub fn redact(text: &str, findings: &[Finding]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for f in findings {
        if f.start < at || f.end > text.len() {
            continue;
        }
        out.push_str(&text[at..f.start]);
        out.push_str("[REDACTED:");
        out.push_str(&f.kind.name());
        out.push(']');
        at = f.end;
    }
    out.push_str(&text[at..]);
    out
}
