//! Verdicts: what a checker concluded about one obligation, in a JSON-able form.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The outcome of checking one obligation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case", deny_unknown_fields)]
pub enum Verdict {
    /// The property holds.
    Proved,
    /// The property does not hold; `evidence` is a counterexample or the failing fact.
    Refuted {
        /// Counterexample or failing fact, checker specific (JSON).
        evidence: serde_json::Value,
    },
    /// The checker could not decide (time-out, cancelled, incomplete method).
    Unknown {
        /// Why no answer was reached.
        reason: String,
    },
    /// The obligation could not be checked (bad input, missing checker, crash).
    Error {
        /// What went wrong.
        reason: String,
    },
}

impl Verdict {
    /// Short lowercase name: `proved`, `refuted`, `unknown`, `error`.
    pub fn status(&self) -> &'static str {
        match self {
            Self::Proved => "proved",
            Self::Refuted { .. } => "refuted",
            Self::Unknown { .. } => "unknown",
            Self::Error { .. } => "error",
        }
    }

    /// True only for [`Verdict::Proved`].
    pub fn is_proved(&self) -> bool {
        matches!(self, Self::Proved)
    }

    /// An `error` verdict with this reason.
    pub fn error(reason: impl Into<String>) -> Self {
        Self::Error {
            reason: reason.into(),
        }
    }

    /// An `unknown` verdict with this reason.
    pub fn unknown(reason: impl Into<String>) -> Self {
        Self::Unknown {
            reason: reason.into(),
        }
    }
}

/// A verdict with what a checker reports beside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckReport {
    /// The verdict.
    pub verdict: Verdict,
    /// Checker-specific counters (e.g. `nodes`, `splits`, `declarations`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub statistics: BTreeMap<String, u64>,
    /// Lean: the axioms the theorem depends on (transitively), as the kernel reports them.
    /// `None` when the checker does not track axioms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub axioms: Option<Vec<String>>,
}

impl CheckReport {
    /// A report with only a verdict.
    pub fn new(verdict: Verdict) -> Self {
        Self {
            verdict,
            statistics: BTreeMap::new(),
            axioms: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_json_is_tagged_by_status() {
        let v = Verdict::Refuted {
            evidence: serde_json::json!({"x": 1}),
        };
        let text = serde_json::to_string(&v).unwrap_or_default();
        assert_eq!(text, r#"{"status":"refuted","evidence":{"x":1}}"#);
        let back: Verdict = serde_json::from_str(&text).unwrap_or(Verdict::Proved);
        assert_eq!(back, v);
    }

    #[test]
    fn unknown_status_is_rejected() {
        assert!(serde_json::from_str::<Verdict>(r#"{"status":"maybe"}"#).is_err());
    }
}
