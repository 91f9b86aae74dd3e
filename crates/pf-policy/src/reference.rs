//! A deliberately simple reference evaluator: the test oracle for the compiled kernel.
//!
//! It reads the AgentSpec directly on every call (no precompilation, no interning, no
//! automaton), keeps its state in plain maps, implements rate limits as an explicit token
//! counter instead of GCRA, and finds information flow with nested `contains` loops. It is slow
//! on purpose and should stay obviously correct. Custom rules are not modelled (the kernel's rule
//! evaluator is tested on its own); [`Reference::new`] rejects specs that have them.
//! The domain and path helpers are shared with the kernel and unit-tested separately.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use pf_spec::quantity::parse_duration;
use pf_spec::{AgentSpec, ContentFilter, PolicyKind};
use serde_json::Value;

use crate::args::{
    host_allowed, host_of, looks_like_path, names_a_host, normalise_path, path_allowed,
};
use crate::program::Limits;
use crate::reason::{Obligation, ReasonCode};

#[derive(Debug, Default, Clone)]
struct Counters {
    /// Tokens in the bucket, times the window length in nanoseconds.
    bucket: Option<u128>,
    bucket_at: u128,
    calls: u64,
    tokens: u64,
    cost: f64,
    in_flight: u32,
}

/// The reference evaluator's session.
#[derive(Debug)]
pub struct Reference<'s> {
    spec: &'s AgentSpec,
    limits: Limits,
    agent_rate: Option<(u32, Duration)>,
    tools: BTreeMap<String, Counters>,
    agent: Counters,
    in_flight: u32,
    last_now: u128,
    /// Recorded values: text, labels, and whether it came from a source the user named.
    outputs: Vec<(String, BTreeSet<String>, bool)>,
    /// Per tool: for each allowed call still awaiting its output, whether it named a user source.
    awaiting: BTreeMap<String, Vec<bool>>,
    stored_bytes: usize,
    dropped: BTreeSet<String>,
    user: Vec<String>,
    user_bytes: usize,
}

/// The reference's answer: allowed or not, obligations on allow, reason codes on deny.
#[derive(Debug, Clone, PartialEq)]
pub struct RefDecision {
    /// Whether the call is allowed.
    pub allowed: bool,
    /// Obligations of an allowed call.
    pub obligations: Vec<Obligation>,
    /// Reason codes of a denied call.
    pub codes: BTreeSet<ReasonCode>,
}

impl<'s> Reference<'s> {
    /// A fresh session over `spec`; `None` when the spec has custom rules (not modelled).
    pub fn new(
        spec: &'s AgentSpec,
        limits: Limits,
        agent_rate: Option<(u32, Duration)>,
    ) -> Option<Self> {
        if spec.policies.iter().any(|p| p.kind == PolicyKind::Custom) {
            return None;
        }
        Some(Self {
            spec,
            limits,
            agent_rate,
            tools: BTreeMap::new(),
            agent: Counters::default(),
            in_flight: 0,
            last_now: 0,
            outputs: Vec::new(),
            awaiting: BTreeMap::new(),
            stored_bytes: 0,
            dropped: BTreeSet::new(),
            user: Vec::new(),
            user_bytes: 0,
        })
    }

    /// Records the user's request.
    pub fn record_user_request(&mut self, text: &str) {
        if self.user_bytes + text.len() <= self.limits.max_flow_bytes {
            self.user_bytes += text.len();
            self.user.push(text.to_ascii_lowercase());
        }
    }

    /// Records a tool's output with the tool's labels (per field for structured output of a
    /// capability with `output_fields`).
    pub fn record_output(&mut self, tool: &str, output: &Value) {
        let named = if self.tracks_named_sources() {
            let pending = self.awaiting.entry(tool.to_string()).or_default();
            let named = !pending.is_empty() && pending.iter().all(|n| *n);
            // Unsure which call answered: drop a named one if any, so un-named ones stay.
            if let Some(i) = pending
                .iter()
                .position(|n| *n)
                .or(pending.len().checked_sub(1))
            {
                pending.remove(i);
            }
            named
        } else {
            false
        };
        let mut leaves: Vec<(String, BTreeSet<String>)> = Vec::new();
        match self.spec.capability(tool) {
            Some(cap) => {
                let source = format!("source:{tool}");
                let has_source = self
                    .spec
                    .policies
                    .iter()
                    .any(|p| p.deny_labels.contains(&source));
                let with_source = |mut l: BTreeSet<String>| {
                    if has_source {
                        l.insert(source.clone());
                    }
                    l
                };
                let whole = with_source(cap.output_labels.iter().cloned().collect());
                let structured = if cap.output_fields.is_empty() {
                    None
                } else {
                    crate::fields::structured_leaves(output, &|k| cap.output_fields.contains_key(k))
                };
                match structured {
                    Some(ls) => {
                        for leaf in ls {
                            let labels =
                                match leaf.field.as_ref().and_then(|f| cap.output_fields.get(f)) {
                                    Some(l) => with_source(l.iter().cloned().collect()),
                                    None => whole.clone(),
                                };
                            leaves.push((leaf.text, labels));
                        }
                    }
                    None => {
                        let mut strings = Vec::new();
                        collect_strings(output, &mut strings);
                        leaves.extend(strings.into_iter().map(|s| (s, whole.clone())));
                    }
                }
            }
            None => {
                let all = self.all_labels();
                let mut strings = Vec::new();
                collect_strings(output, &mut strings);
                leaves.extend(strings.into_iter().map(|s| (s, all.clone())));
            }
        }
        for (s, labels) in leaves {
            if labels.is_empty() || s.is_empty() {
                continue;
            }
            if self.stored_bytes + s.len() > self.limits.max_flow_bytes {
                self.dropped.extend(labels.iter().cloned());
                continue;
            }
            self.stored_bytes += s.len();
            self.outputs.push((s.to_ascii_lowercase(), labels, named));
        }
    }

    fn tracks_named_sources(&self) -> bool {
        self.spec.policies.iter().any(|p| {
            p.kind == PolicyKind::InformationFlow
                && p.unless.iter().any(|u| u == "user_named_source")
        })
    }

    fn all_labels(&self) -> BTreeSet<String> {
        let mut all = BTreeSet::new();
        for c in &self.spec.capabilities {
            all.extend(c.output_labels.iter().cloned());
            all.extend(c.output_fields.values().flatten().cloned());
        }
        for p in &self.spec.policies {
            all.extend(p.deny_labels.iter().cloned());
        }
        all
    }

    /// Ends a call holding a concurrency slot.
    pub fn release(&mut self, tool: &str) {
        let holds = self.holds_slot(tool);
        if let Some(c) = self.tools.get_mut(tool)
            && holds
            && c.in_flight > 0
        {
            c.in_flight -= 1;
            self.in_flight = self.in_flight.saturating_sub(1);
        }
    }

    fn holds_slot(&self, tool: &str) -> bool {
        let tool_limit = self
            .spec
            .capability(tool)
            .and_then(|c| c.constraints.as_ref())
            .and_then(|c| c.max_concurrent.as_ref())
            .is_some();
        tool_limit || self.agent_limit().is_some()
    }

    fn agent_limit(&self) -> Option<u32> {
        self.spec
            .resources
            .as_ref()?
            .max_concurrent_calls
            .as_ref()
            .map(|n| **n)
    }

    /// Decides one call.
    pub fn decide(
        &mut self,
        tool: &str,
        args: &Value,
        tokens: u64,
        cost: f64,
        now: Duration,
    ) -> RefDecision {
        let now = now.as_nanos().max(self.last_now);
        let deny = |code| RefDecision {
            allowed: false,
            obligations: vec![],
            codes: BTreeSet::from([code]),
        };
        let Some(cap) = self.spec.capability(tool) else {
            return deny(ReasonCode::UnknownTool);
        };
        if crate::args::measure(args, self.limits.max_args_depth, self.limits.max_args_bytes)
            .is_err()
        {
            return deny(ReasonCode::ArgsTooLarge);
        }
        let empty = Value::Object(serde_json::Map::new());
        let args = match args {
            Value::Null => &empty,
            Value::Object(_) => args,
            _ => return deny(ReasonCode::ArgsNotObject),
        };
        let mut codes = BTreeSet::new();
        let default = pf_spec::Constraints::default();
        let c = cap.constraints.as_ref().unwrap_or(&default);

        if let Some(schema) = &c.arguments
            && !jsonschema::is_valid(schema, args)
        {
            codes.insert(ReasonCode::SchemaViolation);
        }
        for (name, ac) in &c.args {
            let Some(v) = args.get(name) else { continue };
            let items: Vec<&Value> = match v {
                Value::Array(a) => a.iter().collect(),
                other => vec![other],
            };
            let wants_string = ac.pattern.is_some()
                || ac.max_length.is_some()
                || !ac.domains.is_empty()
                || !ac.path_prefixes.is_empty();
            let wants_number = ac.min.is_some() || ac.max.is_some();
            for item in items {
                if let (true, Some(s)) = (wants_string, item.as_str()) {
                    if let Some(p) = &ac.pattern
                        && !regex::Regex::new(&format!("^(?:{})$", p.as_str()))
                            .is_ok_and(|re| re.is_match(s))
                    {
                        codes.insert(ReasonCode::ArgPattern);
                    }
                    if ac.max_length.is_some_and(|m| s.chars().count() as u64 > m) {
                        codes.insert(ReasonCode::ArgTooLong);
                    }
                    if !ac.domains.is_empty() {
                        let domains: Vec<String> =
                            ac.domains.iter().map(|d| norm_domain(d)).collect();
                        let ok = match host_of(s) {
                            Some(h) => host_allowed(&h, &domains),
                            None => false,
                        };
                        if !ok {
                            codes.insert(ReasonCode::DomainNotAllowed);
                        }
                    }
                    if !ac.path_prefixes.is_empty() {
                        let prefixes: Vec<String> = ac
                            .path_prefixes
                            .iter()
                            .filter_map(|p| normalise_path(p))
                            .collect();
                        if !path_allowed(s, &prefixes) {
                            codes.insert(ReasonCode::PathNotAllowed);
                        }
                    }
                } else if let (true, Some(x)) =
                    (wants_number, item.as_f64().filter(|_| item.is_number()))
                {
                    if ac.min.is_some_and(|m| x < m) {
                        codes.insert(ReasonCode::ArgBelowMin);
                    }
                    if ac.max.is_some_and(|m| x > m) {
                        codes.insert(ReasonCode::ArgAboveMax);
                    }
                } else if wants_string || wants_number {
                    codes.insert(ReasonCode::ArgWrongType);
                }
            }
        }
        let mut strings = Vec::new();
        collect_strings(args, &mut strings);
        if !c.allowed_domains.is_empty() {
            let domains: Vec<String> = c.allowed_domains.iter().map(|d| norm_domain(d)).collect();
            for s in &strings {
                if names_a_host(s) && !host_of(s).is_some_and(|h| host_allowed(&h, &domains)) {
                    codes.insert(ReasonCode::DomainNotAllowed);
                }
            }
        }
        if !c.allowed_paths.is_empty() {
            let prefixes: Vec<String> = c
                .allowed_paths
                .iter()
                .filter_map(|p| normalise_path(p))
                .collect();
            for s in &strings {
                if looks_like_path(s) && !path_allowed(s, &prefixes) {
                    codes.insert(ReasonCode::PathNotAllowed);
                }
            }
        }
        self.flow_codes(tool, args, &mut codes);
        self.limit_codes(tool, c, tokens, cost, now, &mut codes);
        if !codes.is_empty() {
            return RefDecision {
                allowed: false,
                obligations: vec![],
                codes,
            };
        }
        // Allowed: take tokens and count.
        if self.tracks_named_sources() {
            let min = self.limits.min_token_len;
            let named = strings.iter().any(|s| {
                let s = s.to_ascii_lowercase();
                s.len() >= min && self.user.iter().any(|u| u.contains(s.as_str()))
            });
            self.awaiting
                .entry(tool.to_string())
                .or_default()
                .push(named);
        }
        self.last_now = now;
        let holds = self.holds_slot(tool);
        let counters = self.tools.entry(tool.to_string()).or_default();
        if let Some((r, per)) = rate_of(c) {
            refill(counters, r, per, now);
            if let Some(b) = counters.bucket.as_mut() {
                *b -= per.as_nanos();
            }
        }
        counters.calls += 1;
        counters.tokens = counters.tokens.saturating_add(tokens);
        counters.cost += cost;
        let mut obligations = Vec::new();
        if holds {
            counters.in_flight += 1;
            self.in_flight += 1;
            obligations.push(Obligation::Release);
        }
        if let Some((r, per)) = self.agent_rate {
            refill(&mut self.agent, r, per, now);
            if let Some(b) = self.agent.bucket.as_mut() {
                *b -= per.as_nanos();
            }
        }
        let (filters, deny) = match &c.content_filter {
            None | Some(ContentFilter::Enabled(false)) => (false, false),
            Some(ContentFilter::Enabled(true)) => (true, false),
            Some(ContentFilter::Detailed(r)) => (true, r.action == pf_spec::FilterAction::Deny),
        };
        if c.max_length.is_some() || filters {
            obligations.push(Obligation::CheckOutput {
                redact: filters && !deny,
            });
        }
        RefDecision {
            allowed: true,
            obligations,
            codes,
        }
    }

    fn flow_codes(&self, tool: &str, args: &Value, codes: &mut BTreeSet<ReasonCode>) {
        for p in self
            .spec
            .policies
            .iter()
            .filter(|p| p.kind == PolicyKind::InformationFlow)
        {
            let unless = p.unless.iter().any(|u| u == "user_request");
            let endorse = p.unless.iter().any(|u| u == "user_named_source")
                && self.principals_from_user(p, tool, args);
            for sink in &p.sinks {
                let (cap, arg) = match sink.split_once('.') {
                    Some((c, a)) => (c, Some(a)),
                    None => (sink.as_str(), None),
                };
                if cap != tool {
                    continue;
                }
                if p.deny_labels.iter().any(|l| self.dropped.contains(l)) {
                    codes.insert(ReasonCode::FlowStoreOverflow);
                    continue;
                }
                let mut strings = Vec::new();
                match arg {
                    None => collect_strings(args, &mut strings),
                    Some(a) => {
                        if let Some(v) = args.get(a) {
                            collect_strings(v, &mut strings);
                        }
                    }
                }
                for s in strings {
                    if self.reaches(&s, &p.deny_labels, unless, endorse) {
                        codes.insert(ReasonCode::InformationFlow);
                    }
                }
            }
        }
    }

    /// Whether every principal argument of `p` on `tool` is present and is words the user wrote.
    fn principals_from_user(&self, p: &pf_spec::Policy, tool: &str, args: &Value) -> bool {
        let mut strings = Vec::new();
        let mut listed = false;
        for pr in &p.principals {
            let Some((cap, arg)) = pr.split_once('.') else {
                continue;
            };
            if cap != tool {
                continue;
            }
            listed = true;
            match args.get(arg) {
                Some(v) => collect_strings(v, &mut strings),
                None => return false,
            }
        }
        listed && !strings.is_empty() && strings.iter().all(|s| self.user_wrote_word(s))
    }

    fn user_wrote_word(&self, s: &str) -> bool {
        let w = s.trim().to_ascii_lowercase();
        if w.is_empty() {
            return false;
        }
        self.user.iter().any(|u| {
            (0..u.len()).any(|i| {
                u.is_char_boundary(i)
                    && u[i..].starts_with(w.as_str())
                    && !u[..i]
                        .chars()
                        .last()
                        .is_some_and(|c| c.is_ascii_alphanumeric())
                    && !u[i + w.len()..]
                        .chars()
                        .next()
                        .is_some_and(|c| c.is_ascii_alphanumeric())
            })
        })
    }

    /// Whether a value carrying one of `labels` reaches string `s`.
    fn reaches(&self, s: &str, labels: &[String], unless: bool, endorse: bool) -> bool {
        let s = s.to_ascii_lowercase();
        let min = self.limits.min_token_len;
        let trusted = |text: &str| unless && self.user.iter().any(|u| u.contains(text));
        let user_tokens: Vec<String> = self.user.iter().flat_map(|u| simple_tokens(u)).collect();
        let trusted_short = |key: &str| {
            unless
                && if simple_tokens(key) == [key.to_string()] {
                    user_tokens.iter().any(|t| t == key)
                } else {
                    self.user.iter().any(|u| u.contains(key))
                }
        };
        let mut keys = vec![s.clone()];
        let st = simple_tokens(&s);
        if st.len() == 1 && st[0] != s {
            keys.push(st[0].clone());
        }
        for (text, tags, named) in &self.outputs {
            if endorse && *named {
                continue;
            }
            if !labels.iter().any(|l| tags.contains(l)) {
                continue;
            }
            let plain = |p: &str| p.chars().all(char::is_alphabetic);
            let mut pieces = simple_tokens(text);
            pieces.push(text.clone());
            for piece in &pieces {
                if piece.len() >= min
                    && !plain(piece)
                    && s.contains(piece.as_str())
                    && !trusted(piece)
                {
                    return true;
                }
            }
            let mut short: Vec<String> = quoted_tokens(text);
            if text.len() < min {
                short.push(text.clone());
            }
            if s.len() >= min && text.contains(s.as_str()) && !trusted(&s) {
                return true;
            }
            if s.len() < min {
                for key in &keys {
                    if short.iter().any(|p| p.len() < min && p == key) && !trusted_short(key) {
                        return true;
                    }
                }
            }
        }
        false
    }

    fn limit_codes(
        &mut self,
        tool: &str,
        c: &pf_spec::Constraints,
        tokens: u64,
        cost: f64,
        now: u128,
        codes: &mut BTreeSet<ReasonCode>,
    ) {
        let agent_limit = self.agent_limit();
        let total_in_flight = self.in_flight;
        let counters = self.tools.entry(tool.to_string()).or_default();
        if let Some((r, per)) = rate_of(c) {
            refill(counters, r, per, now);
            if counters.bucket.unwrap_or(0) < per.as_nanos() {
                codes.insert(ReasonCode::RateLimitedTool);
            }
        }
        if let Some(b) = &c.budget {
            if b.max_calls.is_some_and(|m| counters.calls >= m) {
                codes.insert(ReasonCode::CallBudgetExhausted);
            }
            if b.max_tokens
                .is_some_and(|m| counters.tokens.saturating_add(tokens) > m)
            {
                codes.insert(ReasonCode::TokenBudgetExhausted);
            }
        }
        if !cost.is_finite() || cost < 0.0 {
            codes.insert(ReasonCode::InvalidCost);
        } else if let Some(m) = c.budget.as_ref().and_then(|b| b.max_cost_usd.as_ref())
            && counters.cost + cost > **m
        {
            codes.insert(ReasonCode::CostBudgetExhausted);
        }
        if let Some(m) = &c.max_concurrent
            && counters.in_flight >= **m
        {
            codes.insert(ReasonCode::ConcurrencyLimitTool);
        }
        if agent_limit.is_some_and(|m| total_in_flight >= m) {
            codes.insert(ReasonCode::ConcurrencyLimitAgent);
        }
        if let Some((r, per)) = self.agent_rate {
            refill(&mut self.agent, r, per, now);
            if self.agent.bucket.unwrap_or(0) < per.as_nanos() {
                codes.insert(ReasonCode::RateLimitedAgent);
            }
        }
    }
}

fn norm_domain(d: &str) -> String {
    d.trim()
        .trim_start_matches("*.")
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

fn rate_of(c: &pf_spec::Constraints) -> Option<(u32, Duration)> {
    let rl = c.rate_limit.as_ref()?;
    Some((*rl.requests, parse_duration(&rl.per)?))
}

/// Token bucket refill: capacity `r` tokens, `r` tokens per `per`; counts are scaled by `per`
/// (in nanoseconds) so arithmetic is exact.
fn refill(c: &mut Counters, r: u32, per: Duration, now: u128) {
    let cap = u128::from(r) * per.as_nanos();
    let tokens = match c.bucket {
        None => cap,
        Some(t) => {
            let elapsed = now.saturating_sub(c.bucket_at);
            (t + elapsed * u128::from(r)).min(cap)
        }
    };
    c.bucket = Some(tokens);
    c.bucket_at = c.bucket_at.max(now);
}

fn collect_strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| collect_strings(x, out)),
        Value::Object(m) => m.values().for_each(|x| collect_strings(x, out)),
        _ => {}
    }
}

/// Tokens that stand between two identical quote characters.
fn quoted_tokens(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let sep = |c: char| c.is_whitespace() || crate::flow::TOKEN_SEPARATORS.contains(&c);
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if sep(chars[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && !sep(chars[i]) {
            i += 1;
        }
        let before = start.checked_sub(1).map(|j| chars[j]);
        let after = chars.get(i).copied();
        let raw: String = chars[start..i].iter().collect();
        let t = raw.trim_end_matches(crate::flow::TOKEN_TRAILERS);
        if !t.is_empty()
            && before.is_some_and(|b| crate::flow::QUOTES.contains(&b) && after == Some(b))
        {
            out.push(t.to_string());
        }
    }
    out
}

/// Splits on whitespace and separator characters, then trims sentence punctuation at the end.
fn simple_tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for ch in text.chars().chain(std::iter::once(' ')) {
        if ch.is_whitespace() || crate::flow::TOKEN_SEPARATORS.contains(&ch) {
            let t = cur.trim_end_matches(crate::flow::TOKEN_TRAILERS);
            if !t.is_empty() {
                out.push(t.to_string());
            }
            cur.clear();
        } else {
            cur.push(ch);
        }
    }
    out
}
