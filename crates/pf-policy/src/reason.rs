//! Decisions and reason codes: what `decide` and `check_output` return.

use serde::Serialize;

/// Why a call or output was denied (or redacted): one code per check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasonCode {
    /// The tool is not on the allow-list (no capability of that name).
    UnknownTool,
    /// The session state was created by a different policy.
    SessionMismatch,
    /// Arguments are not a JSON object.
    ArgsNotObject,
    /// Arguments are nested too deeply or are too large.
    ArgsTooLarge,
    /// Arguments fail the capability's `arguments` JSON Schema.
    SchemaViolation,
    /// A string argument does not match its `pattern`.
    ArgPattern,
    /// A numeric argument is below `min`.
    ArgBelowMin,
    /// A numeric argument is above `max`.
    ArgAboveMax,
    /// A string argument is longer than `max_length`.
    ArgTooLong,
    /// An argument has the wrong JSON type for its constraints.
    ArgWrongType,
    /// A URL or e-mail names a domain outside the allow-list.
    DomainNotAllowed,
    /// A path lies outside the allowed prefixes (after normalisation).
    PathNotAllowed,
    /// A labelled value reaches a sink an information-flow rule protects.
    InformationFlow,
    /// Labelled values were dropped (store full), so a protected sink cannot be cleared.
    FlowStoreOverflow,
    /// A custom rule denies the call.
    CustomRule,
    /// A custom rule could not be evaluated on this call (type error); fails closed.
    RuleError,
    /// The tool's token bucket is empty.
    RateLimitedTool,
    /// The agent's token bucket is empty.
    RateLimitedAgent,
    /// `budget.max_calls` is used up.
    CallBudgetExhausted,
    /// `budget.max_tokens` would be exceeded.
    TokenBudgetExhausted,
    /// `budget.max_cost_usd` would be exceeded.
    CostBudgetExhausted,
    /// The declared cost is negative or not finite.
    InvalidCost,
    /// `max_concurrent` calls of this tool are in flight.
    ConcurrencyLimitTool,
    /// `resources.max_concurrent_calls` calls are in flight.
    ConcurrencyLimitAgent,
    /// The output is longer than `max_length`.
    OutputTooLong,
    /// The output is larger than the kernel scans.
    OutputTooLarge,
    /// The content filter found something and the action is `deny`.
    ContentDenied,
    /// The content filter found something and redacted it.
    ContentRedacted,
}

impl ReasonCode {
    /// The snake_case name used in JSON, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownTool => "unknown_tool",
            Self::SessionMismatch => "session_mismatch",
            Self::ArgsNotObject => "args_not_object",
            Self::ArgsTooLarge => "args_too_large",
            Self::SchemaViolation => "schema_violation",
            Self::ArgPattern => "arg_pattern",
            Self::ArgBelowMin => "arg_below_min",
            Self::ArgAboveMax => "arg_above_max",
            Self::ArgTooLong => "arg_too_long",
            Self::ArgWrongType => "arg_wrong_type",
            Self::DomainNotAllowed => "domain_not_allowed",
            Self::PathNotAllowed => "path_not_allowed",
            Self::InformationFlow => "information_flow",
            Self::FlowStoreOverflow => "flow_store_overflow",
            Self::CustomRule => "custom_rule",
            Self::RuleError => "rule_error",
            Self::RateLimitedTool => "rate_limited_tool",
            Self::RateLimitedAgent => "rate_limited_agent",
            Self::CallBudgetExhausted => "call_budget_exhausted",
            Self::TokenBudgetExhausted => "token_budget_exhausted",
            Self::CostBudgetExhausted => "cost_budget_exhausted",
            Self::InvalidCost => "invalid_cost",
            Self::ConcurrencyLimitTool => "concurrency_limit_tool",
            Self::ConcurrencyLimitAgent => "concurrency_limit_agent",
            Self::OutputTooLong => "output_too_long",
            Self::OutputTooLarge => "output_too_large",
            Self::ContentDenied => "content_denied",
            Self::ContentRedacted => "content_redacted",
        }
    }
}

/// One reason: the code, the rule or argument it concerns, and a sentence a model can read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reason {
    /// What failed.
    pub code: ReasonCode,
    /// The policy (information-flow or custom rule) that decided, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The argument concerned, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arg: Option<String>,
    /// Human-readable detail (no argument values beyond what the caller sent).
    pub detail: String,
}

impl Reason {
    /// A reason with a code and detail.
    pub fn new(code: ReasonCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            rule: None,
            arg: None,
            detail: detail.into(),
        }
    }

    /// Names the policy that decided.
    pub fn on_rule(mut self, rule: &str) -> Self {
        self.rule = Some(rule.to_string());
        self
    }

    /// Names the argument concerned.
    pub fn on_arg(mut self, arg: &str) -> Self {
        self.arg = Some(arg.to_string());
        self
    }
}

/// What the caller must do after an allowed call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "obligation")]
pub enum Obligation {
    /// Call [`crate::release`] when the tool call ends (it holds a concurrency slot).
    Release,
    /// Pass the tool's result through [`crate::check_output`]; `redact` says the filter redacts
    /// (rather than denies) detected content.
    CheckOutput {
        /// Whether detections are redacted (true) or deny the output (false).
        redact: bool,
    },
}

/// The effect of a call decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "effect", content = "obligations")]
pub enum Effect {
    /// Let the call through.
    Allow,
    /// Refuse the call.
    Deny,
    /// Let the call through; the caller must honour the obligations.
    AllowWithObligations(Vec<Obligation>),
}

/// A call decision: effect and, for a deny, every reason.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// Allow, deny or allow with obligations.
    #[serde(flatten)]
    pub effect: Effect,
    /// Why (empty for allows).
    pub reasons: Vec<Reason>,
}

impl Decision {
    /// A deny with one reason.
    pub fn deny(reason: Reason) -> Self {
        Self {
            effect: Effect::Deny,
            reasons: vec![reason],
        }
    }

    /// Whether the call may go ahead (possibly with obligations).
    pub fn is_allowed(&self) -> bool {
        !matches!(self.effect, Effect::Deny)
    }

    /// The reason codes, sorted and without duplicates.
    pub fn codes(&self) -> Vec<ReasonCode> {
        let mut c: Vec<ReasonCode> = self.reasons.iter().map(|r| r.code).collect();
        c.sort();
        c.dedup();
        c
    }
}
