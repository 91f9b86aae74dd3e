//! The compiler: AgentSpec -> immutable [`Policy`], rejecting bad specs with typed diagnostics.
//!
//! The compiler does not trust that the spec was linted: every fact the evaluator relies on
//! (regexes compile, ranges are ordered, durations are positive, sinks resolve) is checked here,
//! and all failures are reported together.

use std::collections::{BTreeSet, HashMap};

use marked_yaml::Spanned;
use pf_spec::quantity::parse_duration;
use pf_spec::{AgentSpec, Capability, ContentFilter, FilterAction, PolicyKind};
use regex::{Regex, RegexBuilder};
use serde_json::Value;

use crate::args::{host_of, normalise_path};
use crate::detect::{DetectorSet, Detectors};
use crate::error::{CompileError, CompileErrors, Diagnostic, Pos, Warning, did_you_mean};
use crate::labels::Labels;
use crate::program::{
    ArgCheck, Budget, CustomRule, FlowRule, Limits, OutputChecks, Policy, Rate, Sink, Tool, ToolId,
};
use crate::rule::{self, parse::Names};
use crate::schema_check::unsatisfiable;

/// Largest compiled regex (bytes of program) a spec may ask for.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Compiler options the spec model has no field for.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Token-bucket limit over all the agent's calls (the spec only has per-capability limits).
    pub agent_rate_limit: Option<Rate>,
    /// Decision-time size limits.
    pub limits: Limits,
}

/// A compiled policy and the warnings the compiler had.
#[derive(Debug)]
pub struct Compiled {
    /// The decision program.
    pub policy: Policy,
    /// Accepted but suspicious things.
    pub warnings: Vec<Warning>,
}

/// Compiles with default options.
pub fn compile(spec: &AgentSpec) -> Result<Compiled, CompileErrors> {
    compile_with(spec, &Options::default())
}

/// Compiles an AgentSpec into a decision program.
pub fn compile_with(spec: &AgentSpec, options: &Options) -> Result<Compiled, CompileErrors> {
    let mut c = Compiler::default();
    let detectors = match Detectors::new() {
        Ok(d) => d,
        Err(e) => {
            c.err(
                None,
                CompileError::InvalidRegex {
                    field: "built-in detectors".into(),
                    reason: e.to_string(),
                },
            );
            return Err(CompileErrors { errors: c.errors });
        }
    };
    let mut tools = Vec::new();
    let mut by_name = HashMap::new();
    for cap in &spec.capabilities {
        if by_name.contains_key(cap.name.as_str()) {
            c.err(
                pos(&cap.name),
                CompileError::DuplicateTool {
                    name: cap.name.to_string(),
                },
            );
            continue;
        }
        by_name.insert(cap.name.to_string(), tools.len());
        tools.push(c.tool(cap));
    }
    let flows = c.flows(spec, &mut tools, &by_name);
    let rules = c.rules(spec, &by_name);
    let max_concurrent_calls = spec
        .resources
        .as_ref()
        .and_then(|r| r.max_concurrent_calls.as_ref())
        .and_then(|n| {
            if **n == 0 {
                c.err(
                    pos(n),
                    CompileError::OutOfRange {
                        field: "resources.max_concurrent_calls".into(),
                        value: "0".into(),
                        expected: "at least 1".into(),
                    },
                );
                None
            } else {
                Some(**n)
            }
        });
    if let Some(rate) = options.agent_rate_limit
        && (rate.requests == 0 || rate.per.is_zero())
    {
        c.err(
            None,
            CompileError::OutOfRange {
                field: "options.agent_rate_limit".into(),
                value: format!("{} per {:?}", rate.requests, rate.per),
                expected: "at least 1 request per positive duration".into(),
            },
        );
    }
    if !c.errors.is_empty() {
        return Err(CompileErrors { errors: c.errors });
    }
    let tracks_named_sources = flows.iter().any(|f| f.unless_named_source);
    let source_labels = c
        .labels
        .all_names()
        .iter()
        .filter(|n| n.starts_with("source:"))
        .filter_map(|n| c.labels.get(n))
        .fold(0, |a, b| a | b);
    let policy = Policy {
        tracks_named_sources,
        source_labels,
        agent: spec.name.to_string(),
        version: spec.version.to_string(),
        tools,
        by_name,
        labels: c.labels,
        flows,
        rules,
        agent_rate: options.agent_rate_limit,
        max_concurrent_calls,
        limits: options.limits,
        detectors,
    };
    Ok(Compiled {
        policy,
        warnings: c.warnings,
    })
}

fn pos<T>(s: &Spanned<T>) -> Option<Pos> {
    s.span().start().map(|m| Pos {
        line: m.line(),
        column: m.column(),
    })
}

fn regex(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
}

#[derive(Default)]
struct Compiler {
    errors: Vec<Diagnostic>,
    warnings: Vec<Warning>,
    labels: Labels,
}

impl Compiler {
    fn err(&mut self, at: Option<Pos>, error: CompileError) {
        self.errors.push(Diagnostic { error, at });
    }

    fn warn(&mut self, field: String, message: impl Into<String>) {
        self.warnings.push(Warning {
            field,
            message: message.into(),
        });
    }

    fn tool(&mut self, cap: &Capability) -> Tool {
        let name = cap.name.to_string();
        let at = pos(&cap.name);
        let field = |f: &str| format!("capabilities.{name}.constraints.{f}");
        let mut tool = Tool {
            name: name.clone(),
            kind: cap.effective_kind().as_str(),
            schema: None,
            schema_source: None,
            args: Vec::new(),
            allowed_domains: Vec::new(),
            allowed_paths: Vec::new(),
            rate: None,
            budget: Budget::default(),
            max_concurrent: None,
            output_labels: 0,
            output_fields: HashMap::new(),
            output: OutputChecks::default(),
            sinks: Vec::new(),
        };
        for label in &cap.output_labels {
            if let Some(b) = self.label(&format!("capabilities.{name}.output_labels"), label, at) {
                tool.output_labels |= b;
            }
        }
        for (field, labels) in &cap.output_fields {
            let f = format!("capabilities.{name}.output_fields.{field}");
            if field.is_empty() {
                self.err(
                    at,
                    CompileError::BadLabel {
                        field: f.clone(),
                        reason: "empty field name".into(),
                    },
                );
            }
            let mut mask = 0;
            for label in labels {
                if let Some(b) = self.label(&f, label, at) {
                    mask |= b;
                }
            }
            tool.output_fields.insert(field.clone(), mask);
        }
        let Some(c) = &cap.constraints else {
            return tool;
        };
        if let Some(schema) = &c.arguments {
            match jsonschema::validator_for(schema) {
                Ok(v) => tool.schema = Some(v),
                Err(e) => self.err(
                    at,
                    CompileError::InvalidSchema {
                        field: field("arguments"),
                        reason: e.to_string(),
                    },
                ),
            }
            if let Some((path, reason)) = unsatisfiable(schema) {
                self.err(
                    at,
                    CompileError::UnsatisfiableSchema {
                        field: format!("{}{path}", field("arguments")),
                        reason,
                    },
                );
            }
            tool.schema_source = Some(schema.clone());
        }
        let schema_props = c
            .arguments
            .as_ref()
            .and_then(|s| s.get("properties"))
            .and_then(Value::as_object);
        let closed = c.arguments.as_ref().is_some_and(|s| {
            s.get("additionalProperties") == Some(&Value::Bool(false))
                && s.get("patternProperties").is_none()
        });
        for (arg, ac) in &c.args {
            let f = field(&format!("args.{arg}"));
            let prop = schema_props.and_then(|p| p.get(arg));
            if closed && prop.is_none() {
                self.err(
                    at,
                    CompileError::ArgumentForbiddenBySchema {
                        field: f.clone(),
                        arg: arg.clone(),
                    },
                );
            }
            let pattern =
                ac.pattern
                    .as_ref()
                    .and_then(|p| match regex(&format!("^(?:{})$", p.as_str())) {
                        Ok(re) => Some((p.to_string(), re)),
                        Err(e) => {
                            self.err(
                                pos(p),
                                CompileError::InvalidRegex {
                                    field: format!("{f}.pattern"),
                                    reason: e.to_string(),
                                },
                            );
                            None
                        }
                    });
            for (k, v) in [("min", ac.min), ("max", ac.max)] {
                if v.is_some_and(|v| !v.is_finite()) {
                    self.err(
                        at,
                        CompileError::OutOfRange {
                            field: format!("{f}.{k}"),
                            value: format!("{v:?}"),
                            expected: "a finite number".into(),
                        },
                    );
                }
            }
            if let (Some(min), Some(max)) = (ac.min, ac.max)
                && min > max
            {
                self.err(
                    at,
                    CompileError::ContradictingConstraints {
                        field: f.clone(),
                        reason: format!("min {min} > max {max}"),
                    },
                );
            }
            let stringy = ac.pattern.is_some()
                || ac.max_length.is_some()
                || !ac.domains.is_empty()
                || !ac.path_prefixes.is_empty();
            let numeric = ac.min.is_some() || ac.max.is_some();
            if stringy && numeric {
                self.err(at, CompileError::ContradictingConstraints {
                    field: f.clone(),
                    reason: "string constraints (pattern, max_length, domains, path_prefixes) and numeric constraints (min, max) on one argument".into(),
                });
            }
            if let Some(types) = prop.and_then(|p| p.get("type")).and_then(Value::as_str) {
                let conflict = (stringy && types != "string" && types != "array")
                    || (numeric && !matches!(types, "number" | "integer" | "array"));
                if conflict {
                    self.err(
                        at,
                        CompileError::ContradictingConstraints {
                            field: f.clone(),
                            reason: format!(
                                "schema says `{arg}` is {types}, `args` constrains it as a {}",
                                if numeric { "number" } else { "string" }
                            ),
                        },
                    );
                }
            }
            let domains = self.domains(&format!("{f}.domains"), &ac.domains, at);
            let path_prefixes = self.prefixes(&format!("{f}.path_prefixes"), &ac.path_prefixes, at);
            tool.args.push(ArgCheck {
                name: arg.clone(),
                pattern,
                min: ac.min,
                max: ac.max,
                max_length: ac.max_length,
                domains,
                path_prefixes,
            });
        }
        tool.allowed_domains = self.domains(&field("allowed_domains"), &c.allowed_domains, at);
        tool.allowed_paths = self.prefixes(&field("allowed_paths"), &c.allowed_paths, at);
        if let Some(rl) = &c.rate_limit {
            match parse_duration(&rl.per) {
                Some(per) if !per.is_zero() && *rl.requests > 0 => {
                    tool.rate = Some(Rate {
                        requests: *rl.requests,
                        per,
                    })
                }
                Some(_) | None if *rl.requests == 0 => self.err(
                    pos(&rl.requests),
                    CompileError::OutOfRange {
                        field: field("rate_limit.requests"),
                        value: "0".into(),
                        expected: "at least 1".into(),
                    },
                ),
                _ => self.err(
                    pos(&rl.per),
                    CompileError::InvalidDuration {
                        field: field("rate_limit.per"),
                        value: rl.per.to_string(),
                    },
                ),
            }
        }
        if let Some(b) = &c.budget {
            let cost = b.max_cost_usd.as_ref().map(|c| **c);
            if let Some(v) = cost
                && !(v.is_finite() && v >= 0.0)
            {
                self.err(
                    at,
                    CompileError::OutOfRange {
                        field: field("budget.max_cost_usd"),
                        value: v.to_string(),
                        expected: "a finite number >= 0".into(),
                    },
                );
            }
            tool.budget = Budget {
                max_calls: b.max_calls,
                max_tokens: b.max_tokens,
                max_cost_usd: cost,
            };
            if b.max_calls == Some(0) {
                self.warn(
                    field("budget.max_calls"),
                    "a budget of 0 calls denies every call",
                );
            }
        }
        if let Some(n) = &c.max_concurrent {
            if **n == 0 {
                self.err(
                    pos(n),
                    CompileError::OutOfRange {
                        field: field("max_concurrent"),
                        value: "0".into(),
                        expected: "at least 1".into(),
                    },
                );
            }
            tool.max_concurrent = Some(**n);
        }
        tool.output.max_length = c.max_length.as_ref().map(|m| **m);
        match &c.content_filter {
            None | Some(ContentFilter::Enabled(false)) => {}
            Some(ContentFilter::Enabled(true)) => tool.output.detectors = DetectorSet::all(),
            Some(ContentFilter::Detailed(rules)) => {
                if rules.detectors.is_empty() {
                    tool.output.detectors = DetectorSet::all();
                }
                for d in &rules.detectors {
                    tool.output.detectors.insert(*d);
                }
                for p in &rules.patterns {
                    match regex(p) {
                        Ok(re) => tool.output.patterns.push((p.to_string(), re)),
                        Err(e) => self.err(
                            pos(p),
                            CompileError::InvalidRegex {
                                field: field("content_filter.patterns"),
                                reason: e.to_string(),
                            },
                        ),
                    }
                }
                tool.output.deny = rules.action == FilterAction::Deny;
            }
        }
        tool
    }

    fn label(&mut self, field: &str, label: &str, at: Option<Pos>) -> Option<u64> {
        if label.trim().is_empty() {
            self.err(
                at,
                CompileError::BadLabel {
                    field: field.into(),
                    reason: "empty label".into(),
                },
            );
            return None;
        }
        let bit = self.labels.intern(label);
        if bit.is_none() {
            self.err(
                at,
                CompileError::BadLabel {
                    field: field.into(),
                    reason: format!("more than {} distinct labels", crate::labels::MAX_LABELS),
                },
            );
        }
        bit
    }

    fn domains(&mut self, field: &str, domains: &[String], at: Option<Pos>) -> Vec<String> {
        let mut out = BTreeSet::new();
        for d in domains {
            let norm = d
                .trim()
                .trim_start_matches("*.")
                .trim_end_matches('.')
                .to_ascii_lowercase();
            if norm.is_empty()
                || host_of(&norm).as_deref() != Some(norm.as_str())
                || norm.contains(':')
            {
                self.err(
                    at,
                    CompileError::InvalidDomain {
                        field: field.into(),
                        value: d.clone(),
                    },
                );
            } else {
                out.insert(norm);
            }
        }
        out.into_iter().collect()
    }

    fn prefixes(&mut self, field: &str, prefixes: &[String], at: Option<Pos>) -> Vec<String> {
        let mut out = BTreeSet::new();
        for p in prefixes {
            match normalise_path(p) {
                Some(n) => {
                    out.insert(n);
                }
                None => self.err(
                    at,
                    CompileError::InvalidPathPrefix {
                        field: field.into(),
                        value: p.clone(),
                    },
                ),
            }
        }
        out.into_iter().collect()
    }

    fn flows(
        &mut self,
        spec: &AgentSpec,
        tools: &mut [Tool],
        by_name: &HashMap<String, usize>,
    ) -> Vec<FlowRule> {
        let produced: u64 = tools.iter().fold(0, |m, t| {
            m | t.output_labels | t.output_fields.values().fold(0, |a, b| a | b)
        });
        let mut flows = Vec::new();
        for p in spec
            .policies
            .iter()
            .filter(|p| p.kind == PolicyKind::InformationFlow)
        {
            let name = p.name.to_string();
            let at = pos(&p.name);
            let malformed = |reason: &str| CompileError::MalformedPolicy {
                policy: name.clone(),
                reason: reason.into(),
            };
            if p.deny_labels.is_empty() {
                self.err(at, malformed("information_flow needs `deny_labels`"));
            }
            if p.sinks.is_empty() {
                self.err(at, malformed("information_flow needs `sinks`"));
            }
            if p.rule.is_some() {
                self.err(at, malformed("`rule` belongs to custom policies"));
            }
            let mut deny = 0;
            for label in &p.deny_labels {
                let field = format!("policies.{name}.deny_labels");
                if let Some(src) = label.strip_prefix("source:") {
                    match by_name.get(src) {
                        Some(&id) => {
                            if let Some(bit) = self.label(&field, label, at) {
                                tools[id].output_labels |= bit;
                                deny |= bit;
                            }
                        }
                        None => self.err(
                            at,
                            CompileError::UnknownTool {
                                field,
                                name: src.into(),
                                did_you_mean: did_you_mean(src, by_name.keys().map(String::as_str)),
                            },
                        ),
                    }
                } else if let Some(bit) = self.label(&field, label, at) {
                    if produced & bit == 0 {
                        self.warn(
                            field,
                            format!("no capability outputs label `{label}`: this rule never fires"),
                        );
                    }
                    deny |= bit;
                }
            }
            let mut unless_user_request = false;
            let mut unless_named_source = false;
            for u in &p.unless {
                if u == "user_request" {
                    unless_user_request = true;
                } else if u == "user_named_source" {
                    unless_named_source = true;
                } else {
                    self.err(
                        at,
                        CompileError::UnknownTrustedSource {
                            policy: name.clone(),
                            source_name: u.clone(),
                        },
                    );
                }
            }
            let idx = flows.len();
            let mut sinks = Vec::new();
            for sink in &p.sinks {
                let field = format!("policies.{name}.sinks");
                let (cap, arg) = match sink.split_once('.') {
                    Some((c, a)) => (c, Some(a)),
                    None => (sink.as_str(), None),
                };
                if cap.is_empty() || arg.is_some_and(|a| a.is_empty() || a.contains('.')) {
                    self.err(
                        pos(sink),
                        CompileError::MalformedSink {
                            field,
                            sink: sink.to_string(),
                        },
                    );
                    continue;
                }
                let Some(&id) = by_name.get(cap) else {
                    self.err(
                        pos(sink),
                        CompileError::UnknownTool {
                            field,
                            name: cap.into(),
                            did_you_mean: did_you_mean(cap, by_name.keys().map(String::as_str)),
                        },
                    );
                    continue;
                };
                let s = match arg {
                    None => Sink::Whole,
                    Some(a) => {
                        let declared = declared_args(spec, cap);
                        if declared.is_empty() {
                            self.warn(field.clone(), format!("capability `{cap}` declares no arguments; cannot check that `{a}` exists"));
                        } else if !declared.contains(a) {
                            self.err(
                                pos(sink),
                                CompileError::UnknownSinkArgument {
                                    field,
                                    tool: cap.into(),
                                    arg: a.into(),
                                    did_you_mean: did_you_mean(
                                        a,
                                        declared.iter().map(String::as_str),
                                    ),
                                },
                            );
                            continue;
                        }
                        Sink::Arg(a.to_string())
                    }
                };
                tools[id].sinks.push((idx, s.clone()));
                sinks.push((id, s));
            }
            let principals = self.principals(spec, p, &name, &sinks, by_name);
            if unless_named_source && principals.is_empty() {
                self.err(
                    at,
                    malformed(
                        "`unless: [user_named_source]` needs `principals` (the sink arguments naming whom the call acts for)",
                    ),
                );
            }
            if !unless_named_source && !principals.is_empty() {
                self.err(
                    at,
                    malformed("`principals` only apply with `unless: [user_named_source]`"),
                );
            }
            flows.push(FlowRule {
                name,
                deny,
                unless_user_request,
                unless_named_source,
                principals,
                sinks,
            });
        }
        flows
    }

    /// `principals:` of an information-flow rule: `capability.argument` on one of its sink tools.
    fn principals(
        &mut self,
        spec: &AgentSpec,
        p: &pf_spec::Policy,
        name: &str,
        sinks: &[(ToolId, Sink)],
        by_name: &HashMap<String, usize>,
    ) -> Vec<(ToolId, String)> {
        let mut out = Vec::new();
        for pr in &p.principals {
            let field = format!("policies.{name}.principals");
            let Some((cap, arg)) = pr
                .split_once('.')
                .filter(|(c, a)| !c.is_empty() && !a.is_empty() && !a.contains('.'))
            else {
                self.err(
                    pos(pr),
                    CompileError::MalformedSink {
                        field,
                        sink: pr.to_string(),
                    },
                );
                continue;
            };
            let Some(&id) = by_name.get(cap) else {
                self.err(
                    pos(pr),
                    CompileError::UnknownTool {
                        field,
                        name: cap.into(),
                        did_you_mean: did_you_mean(cap, by_name.keys().map(String::as_str)),
                    },
                );
                continue;
            };
            if !sinks.iter().any(|(t, _)| *t == id) {
                self.err(
                    pos(pr),
                    CompileError::MalformedPolicy {
                        policy: name.into(),
                        reason: format!(
                            "principal `{}` is not an argument of a sink of this rule",
                            pr.as_str()
                        ),
                    },
                );
                continue;
            }
            let declared = declared_args(spec, cap);
            if !declared.is_empty() && !declared.contains(arg) {
                self.err(
                    pos(pr),
                    CompileError::UnknownSinkArgument {
                        field,
                        tool: cap.into(),
                        arg: arg.into(),
                        did_you_mean: did_you_mean(arg, declared.iter().map(String::as_str)),
                    },
                );
                continue;
            }
            out.push((id, arg.to_string()));
        }
        out
    }

    fn rules(&mut self, spec: &AgentSpec, by_name: &HashMap<String, usize>) -> Vec<CustomRule> {
        let mut rules = Vec::new();
        for p in spec
            .policies
            .iter()
            .filter(|p| p.kind == PolicyKind::Custom)
        {
            let name = p.name.to_string();
            let at = pos(&p.name);
            if !p.deny_labels.is_empty() || !p.sinks.is_empty() || !p.unless.is_empty() {
                self.err(at, CompileError::MalformedPolicy {
                    policy: name.clone(),
                    reason: "`deny_labels`, `sinks` and `unless` belong to information_flow policies".into(),
                });
            }
            let Some(text) = p.rule.as_deref().filter(|r| !r.trim().is_empty()) else {
                self.err(
                    at,
                    CompileError::MalformedPolicy {
                        policy: name,
                        reason: "custom policy needs a `rule`".into(),
                    },
                );
                continue;
            };
            let tool = |t: &str| by_name.get(t).copied();
            let labels = &self.labels;
            let label = |l: &str| labels.get(l);
            match rule::parse(
                text,
                &Names {
                    tool: &tool,
                    label: &label,
                },
            ) {
                Ok(rule) => rules.push(CustomRule {
                    name,
                    text: text.to_string(),
                    rule,
                }),
                Err((rpos, reason)) => self.err(
                    at,
                    CompileError::Rule {
                        policy: name,
                        pos: rpos,
                        reason,
                    },
                ),
            }
        }
        rules
    }
}

/// Arguments a capability declares: `arguments.properties` keys and `args` keys.
fn declared_args(spec: &AgentSpec, cap: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if let Some(c) = spec.capability(cap).and_then(|c| c.constraints.as_ref()) {
        out.extend(c.args.keys().cloned());
        if let Some(props) = c
            .arguments
            .as_ref()
            .and_then(|s| s.get("properties"))
            .and_then(Value::as_object)
        {
            out.extend(props.keys().cloned());
        }
    }
    out
}
