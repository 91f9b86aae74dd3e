//! Call decisions: `decide` runs every check of the compiled program on one tool call.
//!
//! Evaluation is total: a missing tool, a malformed argument, a rule type error or an over-size
//! input is a deny with a reason code, never an error or a panic. All checks run (not only the
//! first failing one) so the reasons list is complete; state changes only on allow.

use std::time::Duration;

use serde_json::Value;

use crate::args::{
    for_each_string, host_allowed, host_of, looks_like_path, measure, names_a_host, path_allowed,
};
use crate::fields::YamlReader;
use crate::labels::LabelMask;
use crate::program::{ArgCheck, Policy, Sink, Tool, ToolId};
use crate::reason::{Decision, Effect, Obligation, Reason, ReasonCode};
use crate::rule::{Env, Outcome, evaluate};
use crate::state::SessionState;

/// One tool call to decide on.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// Tool (capability) name.
    pub tool: &'a str,
    /// Arguments: a JSON object (`null` counts as `{}`).
    pub args: &'a Value,
    /// Free context for custom rules (`context.*`); `null` when absent.
    pub context: &'a Value,
    /// Tokens this call is declared to consume (for `budget.max_tokens`).
    pub tokens: u64,
    /// Cost in USD this call is declared to incur (for `budget.max_cost_usd`).
    pub cost_usd: f64,
}

impl<'a> Call<'a> {
    /// A call with no context, tokens or cost.
    pub fn new(tool: &'a str, args: &'a Value) -> Self {
        Self {
            tool,
            args,
            context: &Value::Null,
            tokens: 0,
            cost_usd: 0.0,
        }
    }
}

static EMPTY: std::sync::LazyLock<Value> =
    std::sync::LazyLock::new(|| Value::Object(serde_json::Map::new()));

/// Decides one call at time `now` (a monotonic offset chosen by the caller; times earlier than a
/// previous call's are treated as that time). Updates `state` only when the call is allowed.
pub fn decide(
    policy: &Policy,
    state: &mut SessionState,
    call: &Call<'_>,
    now: Duration,
) -> Decision {
    if !state.fits(policy) {
        return Decision::deny(Reason::new(
            ReasonCode::SessionMismatch,
            "session state belongs to another policy",
        ));
    }
    let now = now.max(state.last_now);
    let Some(&id) = policy.by_name.get(call.tool) else {
        return Decision::deny(Reason::new(
            ReasonCode::UnknownTool,
            format!("tool `{}` is not allowed", call.tool),
        ));
    };
    let tool = &policy.tools[id];
    if let Err(e) = measure(
        call.args,
        policy.limits.max_args_depth,
        policy.limits.max_args_bytes,
    ) {
        return Decision::deny(Reason::new(ReasonCode::ArgsTooLarge, e));
    }
    let args = match call.args {
        Value::Null => &*EMPTY,
        v @ Value::Object(_) => v,
        _ => {
            return Decision::deny(Reason::new(
                ReasonCode::ArgsNotObject,
                "arguments must be a JSON object",
            ));
        }
    };
    let mut reasons = Vec::new();
    check_schema(tool, args, &mut reasons);
    for check in &tool.args {
        if let Some(v) = args.get(check.name.as_str()) {
            check_arg(check, v, &mut reasons);
        }
    }
    check_domains_and_paths(tool, args, &mut reasons);
    state.flow.prepare();
    check_flows(policy, state, id, args, &mut reasons);
    check_rules(policy, state, call, args, &mut reasons);
    check_limits(policy, state, id, call, now, &mut reasons);
    if !reasons.is_empty() {
        return Decision {
            effect: Effect::Deny,
            reasons,
        };
    }
    if policy.tracks_named_sources {
        let named = names_user_source(state, args, policy.limits.min_token_len);
        let ts = &mut state.tools[id];
        ts.awaiting = ts.awaiting.saturating_add(1);
        if !named {
            ts.awaiting_unnamed = ts.awaiting_unnamed.saturating_add(1);
        }
    }
    commit(policy, state, id, call, now)
}

/// Whether a call names a source the user named: one of its string arguments (at least the
/// minimum match length) occurs in a user request, e.g. the page or file the user pointed to.
fn names_user_source(state: &SessionState, args: &Value, min: usize) -> bool {
    let mut named = false;
    for_each_string(args, &mut |s| {
        named = named || (s.len() >= min && state.flow.in_user_request(s));
    });
    named
}

/// Whether every principal argument of `flow` on tool `id` is present and each of its strings is
/// a word of a user request (the user said whom the call is for).
fn principals_from_user(
    flow: &crate::program::FlowRule,
    state: &SessionState,
    id: ToolId,
    args: &Value,
) -> bool {
    let mut any = false;
    let mut all = true;
    for (_, arg) in flow.principals.iter().filter(|(t, _)| *t == id) {
        let Some(v) = args.get(arg.as_str()) else {
            return false;
        };
        for_each_string(v, &mut |s| {
            any = true;
            all = all && state.flow.user_wrote_word(s);
        });
    }
    any && all
}

fn check_schema(tool: &Tool, args: &Value, reasons: &mut Vec<Reason>) {
    if let Some(schema) = &tool.schema
        && !schema.is_valid(args)
    {
        let detail = schema
            .iter_errors(args)
            .next()
            .map(|e| format!("{} (at `{}`)", e, e.instance_path()))
            .unwrap_or_else(|| "arguments do not match the schema".into());
        reasons.push(Reason::new(ReasonCode::SchemaViolation, detail));
    }
}

fn check_arg(check: &ArgCheck, value: &Value, reasons: &mut Vec<Reason>) {
    let items: &[Value] = match value {
        Value::Array(items) => items,
        v => std::slice::from_ref(v),
    };
    let wants_string = check.pattern.is_some()
        || check.max_length.is_some()
        || !check.domains.is_empty()
        || !check.path_prefixes.is_empty();
    let wants_number = check.min.is_some() || check.max.is_some();
    let arg = |code, detail: String| Reason::new(code, detail).on_arg(&check.name);
    for item in items {
        match item {
            Value::String(s) if wants_string => {
                if let Some((p, re)) = &check.pattern
                    && !re.is_match(s)
                {
                    reasons.push(arg(
                        ReasonCode::ArgPattern,
                        format!("`{}` does not match /{p}/", check.name),
                    ));
                }
                if let Some(max) = check.max_length
                    && s.chars().count() as u64 > max
                {
                    reasons.push(arg(
                        ReasonCode::ArgTooLong,
                        format!("`{}` longer than {max} characters", check.name),
                    ));
                }
                if !check.domains.is_empty()
                    && !host_of(s).is_some_and(|h| host_allowed(&h, &check.domains))
                {
                    reasons.push(arg(
                        ReasonCode::DomainNotAllowed,
                        format!("`{}` names a domain outside the allow-list", check.name),
                    ));
                }
                if !check.path_prefixes.is_empty() && !path_allowed(s, &check.path_prefixes) {
                    reasons.push(arg(
                        ReasonCode::PathNotAllowed,
                        format!("`{}` is outside the allowed path prefixes", check.name),
                    ));
                }
            }
            Value::Number(n) if wants_number => {
                let x = n.as_f64().unwrap_or(f64::NAN);
                if let Some(min) = check.min
                    && (x.is_nan() || x < min)
                {
                    reasons.push(arg(
                        ReasonCode::ArgBelowMin,
                        format!("`{}` = {x} below minimum {min}", check.name),
                    ));
                }
                if let Some(max) = check.max
                    && (x.is_nan() || x > max)
                {
                    reasons.push(arg(
                        ReasonCode::ArgAboveMax,
                        format!("`{}` = {x} above maximum {max}", check.name),
                    ));
                }
            }
            _ if !wants_string && !wants_number => {}
            other => {
                let want = if wants_string { "a string" } else { "a number" };
                reasons.push(arg(
                    ReasonCode::ArgWrongType,
                    format!("`{}` must be {want}, got {}", check.name, json_type(other)),
                ));
            }
        }
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn check_domains_and_paths(tool: &Tool, args: &Value, reasons: &mut Vec<Reason>) {
    if tool.allowed_domains.is_empty() && tool.allowed_paths.is_empty() {
        return;
    }
    for_each_string(args, &mut |s| {
        if !tool.allowed_domains.is_empty()
            && names_a_host(s)
            && !host_of(s).is_some_and(|h| host_allowed(&h, &tool.allowed_domains))
        {
            reasons.push(Reason::new(
                ReasonCode::DomainNotAllowed,
                "an argument names a domain outside allowed_domains",
            ));
        }
        if !tool.allowed_paths.is_empty()
            && looks_like_path(s)
            && !path_allowed(s, &tool.allowed_paths)
        {
            reasons.push(Reason::new(
                ReasonCode::PathNotAllowed,
                "an argument names a path outside allowed_paths",
            ));
        }
    });
}

/// The strings an information-flow sink looks at.
pub(crate) fn sink_strings<'v>(sink: &Sink, args: &'v Value) -> Vec<&'v str> {
    let mut out = Vec::new();
    match sink {
        Sink::Whole => for_each_string(args, &mut |s| out.push(s)),
        Sink::Arg(a) => {
            if let Some(v) = args.get(a.as_str()) {
                for_each_string(v, &mut |s| out.push(s));
            }
        }
    }
    out
}

fn check_flows(
    policy: &Policy,
    state: &SessionState,
    id: ToolId,
    args: &Value,
    reasons: &mut Vec<Reason>,
) {
    let tool = &policy.tools[id];
    if tool.sinks.is_empty() {
        return;
    }
    let min = policy.limits.min_token_len;
    for (fi, sink) in &tool.sinks {
        let flow = &policy.flows[*fi];
        let sink_name = match sink {
            Sink::Whole => tool.name.clone(),
            Sink::Arg(a) => format!("{}.{a}", tool.name),
        };
        if state.flow.overflow & flow.deny != 0 || state.flow.matcher_broken() {
            reasons.push(
                Reason::new(
                    ReasonCode::FlowStoreOverflow,
                    format!("labelled values were dropped; `{sink_name}` cannot be cleared"),
                )
                .on_rule(&flow.name),
            );
            continue;
        }
        let endorse = flow.unless_named_source && principals_from_user(flow, state, id, args);
        let mut tainted: LabelMask = 0;
        for s in sink_strings(sink, args) {
            tainted |= state
                .flow
                .taint(s, flow.deny, flow.unless_user_request, endorse, min);
        }
        if tainted != 0 {
            let labels = policy.labels.names(tainted).join(", ");
            let mut r = Reason::new(
                ReasonCode::InformationFlow,
                format!("a value labelled [{labels}] reaches sink `{sink_name}`"),
            )
            .on_rule(&flow.name);
            if let Sink::Arg(a) = sink {
                r = r.on_arg(a);
            }
            reasons.push(r);
        }
    }
}

fn check_rules(
    policy: &Policy,
    state: &SessionState,
    call: &Call<'_>,
    args: &Value,
    reasons: &mut Vec<Reason>,
) {
    if policy.rules.is_empty() {
        return;
    }
    let calls = |t: Option<ToolId>| match t {
        Some(id) => state.tools.get(id).map_or(0, |s| s.calls),
        None => state.total_calls,
    };
    let min = policy.limits.min_token_len;
    let arg_labels = || {
        let mut m = 0;
        for_each_string(args, &mut |s| m |= state.flow.labels_of(s, min));
        m
    };
    let env = Env {
        tool: call.tool,
        args,
        context: call.context,
        tokens: call.tokens,
        cost_usd: call.cost_usd,
        calls: &calls,
        arg_labels: &arg_labels,
    };
    for rule in &policy.rules {
        match evaluate(&rule.rule, &env) {
            Outcome::Pass => {}
            Outcome::Deny => reasons
                .push(Reason::new(ReasonCode::CustomRule, rule.text.clone()).on_rule(&rule.name)),
            Outcome::Error(e) => {
                reasons.push(Reason::new(ReasonCode::RuleError, e).on_rule(&rule.name))
            }
        }
    }
}

fn check_limits(
    policy: &Policy,
    state: &SessionState,
    id: ToolId,
    call: &Call<'_>,
    now: Duration,
    reasons: &mut Vec<Reason>,
) {
    let tool = &policy.tools[id];
    let ts = &state.tools[id];
    if let Some(rate) = tool.rate
        && !ts.bucket.conforms(rate, now)
    {
        reasons.push(Reason::new(
            ReasonCode::RateLimitedTool,
            format!("more than {} calls per {:?}", rate.requests, rate.per),
        ));
    }
    if let Some(rate) = policy.agent_rate
        && !state.agent_bucket.conforms(rate, now)
    {
        reasons.push(Reason::new(
            ReasonCode::RateLimitedAgent,
            format!("agent exceeds {} calls per {:?}", rate.requests, rate.per),
        ));
    }
    if let Some(max) = tool.budget.max_calls
        && ts.calls >= max
    {
        reasons.push(Reason::new(
            ReasonCode::CallBudgetExhausted,
            format!("{max} calls used"),
        ));
    }
    if let Some(max) = tool.budget.max_tokens
        && ts.tokens.saturating_add(call.tokens) > max
    {
        reasons.push(Reason::new(
            ReasonCode::TokenBudgetExhausted,
            format!("token budget {max} exceeded"),
        ));
    }
    if !(call.cost_usd.is_finite() && call.cost_usd >= 0.0) {
        reasons.push(Reason::new(
            ReasonCode::InvalidCost,
            "declared cost must be a finite number >= 0",
        ));
    } else if let Some(max) = tool.budget.max_cost_usd
        && ts.cost_usd + call.cost_usd > max
    {
        reasons.push(Reason::new(
            ReasonCode::CostBudgetExhausted,
            format!("cost budget {max} USD exceeded"),
        ));
    }
    if let Some(max) = tool.max_concurrent
        && ts.in_flight >= max
    {
        reasons.push(Reason::new(
            ReasonCode::ConcurrencyLimitTool,
            format!("{max} calls already in flight"),
        ));
    }
    if let Some(max) = policy.max_concurrent_calls
        && state.in_flight >= max
    {
        reasons.push(Reason::new(
            ReasonCode::ConcurrencyLimitAgent,
            format!("{max} agent calls already in flight"),
        ));
    }
}

fn commit(
    policy: &Policy,
    state: &mut SessionState,
    id: ToolId,
    call: &Call<'_>,
    now: Duration,
) -> Decision {
    let tool = &policy.tools[id];
    state.last_now = now;
    let ts = &mut state.tools[id];
    if let Some(rate) = tool.rate {
        ts.bucket.take(rate, now);
    }
    ts.calls += 1;
    ts.tokens = ts.tokens.saturating_add(call.tokens);
    ts.cost_usd += call.cost_usd;
    let mut obligations = Vec::new();
    if holds_slot(policy, tool) {
        ts.in_flight += 1;
        state.in_flight += 1;
        obligations.push(Obligation::Release);
    }
    if let Some(rate) = policy.agent_rate {
        state.agent_bucket.take(rate, now);
    }
    state.total_calls += 1;
    if tool.output.max_length.is_some() || tool.output.filters() {
        obligations.push(Obligation::CheckOutput {
            redact: tool.output.filters() && !tool.output.deny,
        });
    }
    Decision {
        effect: if obligations.is_empty() {
            Effect::Allow
        } else {
            Effect::AllowWithObligations(obligations)
        },
        reasons: Vec::new(),
    }
}

fn holds_slot(policy: &Policy, tool: &Tool) -> bool {
    tool.max_concurrent.is_some() || policy.max_concurrent_calls.is_some()
}

/// Ends an allowed call that holds a concurrency slot ([`Obligation::Release`]). Returns false
/// (and changes nothing) when the tool is unknown or has no call in flight.
pub fn release(policy: &Policy, state: &mut SessionState, tool: &str) -> bool {
    let Some(&id) = policy.by_name.get(tool) else {
        return false;
    };
    if !state.fits(policy) || !holds_slot(policy, &policy.tools[id]) {
        return false;
    }
    let ts = &mut state.tools[id];
    if ts.in_flight == 0 {
        return false;
    }
    ts.in_flight -= 1;
    state.in_flight = state.in_flight.saturating_sub(1);
    true
}

/// Adds usage measured after a call (tokens, cost) to the tool's budgets.
pub fn record_usage(
    policy: &Policy,
    state: &mut SessionState,
    tool: &str,
    tokens: u64,
    cost_usd: f64,
) {
    if let Some(&id) = policy.by_name.get(tool)
        && let Some(ts) = state.tools.get_mut(id)
    {
        ts.tokens = ts.tokens.saturating_add(tokens);
        if cost_usd.is_finite() && cost_usd > 0.0 {
            ts.cost_usd += cost_usd;
        }
    }
}

/// Labels every string in a tool's result with the tool's `output_labels` (and `source:` label),
/// or, for a structured result of a tool with `output_fields`, each string with the labels of the
/// innermost listed field above it (unlisted: `output_labels`). Output of a tool the policy does
/// not know gets every label (fail closed). Under `user_named_source`, the output counts as from
/// a source the user named when every call of the tool still awaiting its output named one.
pub fn record_output(policy: &Policy, state: &mut SessionState, tool: &str, output: &Value) {
    record_output_with(policy, state, tool, output, YamlReader::Fast);
}

/// [`record_output`] with a choice of YAML reader for structured output (benchmarks compare
/// the fast reader with marked-yaml; both give the same leaves).
pub fn record_output_with(
    policy: &Policy,
    state: &mut SessionState,
    tool: &str,
    output: &Value,
    reader: YamlReader,
) {
    let (min, max) = (policy.limits.min_token_len, policy.limits.max_flow_bytes);
    let Some(&id) = policy.by_name.get(tool) else {
        let labels = policy.labels.unknown_source();
        let flow = &mut state.flow;
        for_each_string(output, &mut |s| flow.record(s, labels, false, min, max));
        flow.prepare();
        return;
    };
    let t = &policy.tools[id];
    let named = match state.tools.get_mut(id) {
        Some(ts) if policy.tracks_named_sources => {
            let named = ts.awaiting > 0 && ts.awaiting_unnamed == 0;
            // Which call this output answers is unknown: keep the un-named count as high as it
            // can be (an un-named call's output is never taken for a named one).
            ts.awaiting = ts.awaiting.saturating_sub(1);
            ts.awaiting_unnamed = ts.awaiting_unnamed.min(ts.awaiting);
            named
        }
        _ => false,
    };
    // `source:` labels stay on every value, whatever its field.
    let source_bits = t.output_labels & policy.source_labels;
    let flow = &mut state.flow;
    let leaves = if t.output_fields.is_empty() {
        None
    } else {
        crate::fields::structured_leaves_with(output, &|k| t.output_fields.contains_key(k), reader)
    };
    match leaves {
        Some(leaves) => {
            for leaf in leaves {
                let labels = match &leaf.field {
                    Some(f) => {
                        t.output_fields.get(f).copied().unwrap_or(t.output_labels) | source_bits
                    }
                    None => t.output_labels,
                };
                flow.record(&leaf.text, labels, named, min, max);
            }
        }
        None => for_each_string(output, &mut |s| {
            flow.record(s, t.output_labels, named, min, max)
        }),
    }
    flow.prepare();
}

/// Records the user's own request: text in it is trusted by rules with `unless: [user_request]`.
/// Returns false when the session's text budget is used up (the text is then not trusted).
pub fn record_user_request(policy: &Policy, state: &mut SessionState, text: &str) -> bool {
    state.flow.record_user(text, policy.limits.max_flow_bytes)
}
