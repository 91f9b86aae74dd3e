//! Compile-time diagnostics: one typed error per failed check, each with the place in the spec.

use std::fmt;

/// A position in the spec file (1-based), when the spec model kept one for the offending value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Pos {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// Why a spec cannot be compiled into a policy program: one variant per check.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CompileError {
    /// A sink, rule or label source names a capability the spec does not declare.
    #[error("{field}: unknown capability `{name}`{}", suggest(.did_you_mean))]
    UnknownTool {
        /// Where it was named.
        field: String,
        /// The name given.
        name: String,
        /// The closest declared capability, if any is close.
        did_you_mean: Option<String>,
    },
    /// An information-flow sink names an argument the capability never declares.
    #[error(
        "{field}: capability `{tool}` declares no argument `{arg}` (declare it in `arguments.properties` or `args`){}",
        suggest(.did_you_mean)
    )]
    UnknownSinkArgument {
        /// The policy field.
        field: String,
        /// The capability.
        tool: String,
        /// The missing argument.
        arg: String,
        /// The closest declared argument, if any is close.
        did_you_mean: Option<String>,
    },
    /// A sink is not `capability` or `capability.argument`.
    #[error("{field}: malformed sink `{sink}`: expected `capability` or `capability.argument`")]
    MalformedSink {
        /// The policy field.
        field: String,
        /// The sink as written.
        sink: String,
    },
    /// A regular expression does not compile (or is too large).
    #[error("{field}: invalid regular expression: {reason}")]
    InvalidRegex {
        /// Where it was written.
        field: String,
        /// What the regex compiler said.
        reason: String,
    },
    /// The `arguments` JSON Schema is not a valid schema.
    #[error("{field}: invalid JSON Schema: {reason}")]
    InvalidSchema {
        /// Where it was written.
        field: String,
        /// What the schema compiler said.
        reason: String,
    },
    /// The `arguments` JSON Schema accepts no value at all.
    #[error("{field}: JSON Schema can never be satisfied: {reason}")]
    UnsatisfiableSchema {
        /// Path into the schema (`capabilities.x.constraints.arguments.properties.y`).
        field: String,
        /// The contradiction.
        reason: String,
    },
    /// Two constraints on one argument contradict each other (`min > max`, pattern vs schema type).
    #[error("{field}: contradicting constraints: {reason}")]
    ContradictingConstraints {
        /// Where.
        field: String,
        /// The contradiction.
        reason: String,
    },
    /// An `args` entry names an argument the closed `arguments` schema forbids.
    #[error(
        "{field}: argument `{arg}` is constrained in `args` but the `arguments` schema forbids it (additionalProperties: false)"
    )]
    ArgumentForbiddenBySchema {
        /// Where.
        field: String,
        /// The argument.
        arg: String,
    },
    /// A number that must be finite and in range is not.
    #[error("{field}: value {value} out of range: expected {expected}")]
    OutOfRange {
        /// Where.
        field: String,
        /// The value given.
        value: String,
        /// The accepted range.
        expected: String,
    },
    /// A rate-limit window is not a positive duration.
    #[error("{field}: invalid duration `{value}`: expected e.g. `500ms`, `1s`, `1m`, `1h`")]
    InvalidDuration {
        /// Where.
        field: String,
        /// The text given.
        value: String,
    },
    /// A path prefix is not absolute (or escapes the root with `..`).
    #[error("{field}: path prefix `{value}` must be absolute and must not climb above `/`")]
    InvalidPathPrefix {
        /// Where.
        field: String,
        /// The prefix given.
        value: String,
    },
    /// A domain in an allow-list is not a host name.
    #[error("{field}: `{value}` is not a domain name (expected e.g. `example.com`)")]
    InvalidDomain {
        /// Where.
        field: String,
        /// The text given.
        value: String,
    },
    /// An information-flow policy lacks labels or sinks, or carries a `rule`.
    #[error("policy `{policy}`: {reason}")]
    MalformedPolicy {
        /// The policy name.
        policy: String,
        /// What is wrong.
        reason: String,
    },
    /// An `unless` entry names a trusted source the kernel does not know.
    #[error("policy `{policy}`: unknown `unless` source `{source_name}` (supported: user_request)")]
    UnknownTrustedSource {
        /// The policy.
        policy: String,
        /// The source given.
        source_name: String,
    },
    /// A label the kernel cannot place: too many distinct labels, or `source:` of an unknown tool.
    #[error("{field}: {reason}")]
    BadLabel {
        /// Where.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A custom rule does not parse or does not type-check.
    #[error("policy `{policy}`: rule {pos}: {reason}")]
    Rule {
        /// The policy.
        policy: String,
        /// Line and column inside the rule text.
        pos: Pos,
        /// What is wrong.
        reason: String,
    },
    /// Two capabilities share a name.
    #[error("duplicate capability `{name}`")]
    DuplicateTool {
        /// The name.
        name: String,
    },
}

fn suggest(name: &Option<String>) -> String {
    match name {
        Some(n) => format!(" (did you mean `{n}`?)"),
        None => String::new(),
    }
}

impl CompileError {
    /// A stable code for the failed check (`policy::unknown_tool`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownTool { .. } => "policy::unknown_tool",
            Self::UnknownSinkArgument { .. } => "policy::unknown_sink_argument",
            Self::MalformedSink { .. } => "policy::malformed_sink",
            Self::InvalidRegex { .. } => "policy::invalid_regex",
            Self::InvalidSchema { .. } => "policy::invalid_schema",
            Self::UnsatisfiableSchema { .. } => "policy::unsatisfiable_schema",
            Self::ContradictingConstraints { .. } => "policy::contradicting_constraints",
            Self::ArgumentForbiddenBySchema { .. } => "policy::argument_forbidden_by_schema",
            Self::OutOfRange { .. } => "policy::out_of_range",
            Self::InvalidDuration { .. } => "policy::invalid_duration",
            Self::InvalidPathPrefix { .. } => "policy::invalid_path_prefix",
            Self::InvalidDomain { .. } => "policy::invalid_domain",
            Self::MalformedPolicy { .. } => "policy::malformed_policy",
            Self::UnknownTrustedSource { .. } => "policy::unknown_trusted_source",
            Self::BadLabel { .. } => "policy::bad_label",
            Self::Rule { .. } => "policy::rule",
            Self::DuplicateTool { .. } => "policy::duplicate_tool",
        }
    }
}

/// One compile diagnostic: the error and, where known, its position in the spec file.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    /// What failed.
    pub error: CompileError,
    /// Where in the spec file, when the model kept a span for the value.
    pub at: Option<Pos>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            Some(pos) => write!(f, "{pos}: {} [{}]", self.error, self.error.code()),
            None => write!(f, "{} [{}]", self.error, self.error.code()),
        }
    }
}

/// Every error found while compiling a spec (compilation reports all of them, not the first).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("policy compilation failed with {} error(s)", .errors.len())]
pub struct CompileErrors {
    /// The errors, in spec order.
    pub errors: Vec<Diagnostic>,
}

/// A compile warning: the spec is accepted but probably not what was meant.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Warning {
    /// Where (a field path).
    pub field: String,
    /// What is suspicious.
    pub message: String,
}

/// Closest name by edit distance, when it is close enough to be a plausible typo.
pub(crate) fn did_you_mean<'a>(
    name: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<String> {
    candidates
        .map(|c| (levenshtein(name, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4) && *d < c.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_string())
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let names = ["send_email", "issue_refund", "search_kb"];
        assert_eq!(
            did_you_mean("send_emial", names.iter().copied()).as_deref(),
            Some("send_email")
        );
        assert_eq!(did_you_mean("zzz", names.iter().copied()), None);
    }
}
