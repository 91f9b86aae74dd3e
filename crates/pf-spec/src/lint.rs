//! Semantic checks over a parsed spec: names, versions, references, ranges, files.

use std::collections::HashMap;
use std::path::{Component, Path};
use std::sync::Arc;

use marked_yaml::Spanned;
use miette::NamedSource;

use crate::diagnostics::{Diagnostic, LineIndex, Problem};
use crate::fuzzy::did_you_mean;
use crate::model::{
    AgentSpec, Constraints, ContentFilter, PolicyKind, Proof, ProofKind, is_inline_pem,
};
use crate::quantity::{parse_cpu_millis, parse_duration, parse_memory_bytes};

/// Upper bound for `max_length` values (characters).
pub const MAX_LENGTH_LIMIT: u64 = 10_000_000;
/// Upper bound for concurrency settings.
pub const MAX_CONCURRENCY_LIMIT: u32 = 10_000;

/// Runs every semantic check; `base_dir` (the spec's directory) enables file-existence checks.
pub fn lint(spec: &AgentSpec, name: &str, text: &str, base_dir: Option<&Path>) -> Vec<Diagnostic> {
    let mut linter = Linter {
        index: LineIndex::new(text),
        source: Arc::new(NamedSource::new(name, text.to_string()).with_language("yaml")),
        base_dir,
        out: Vec::new(),
    };
    linter.identity(spec);
    linter.capabilities(spec);
    linter.policies(spec);
    linter.resources(spec);
    linter.proofs(spec);
    linter.signers(spec);
    linter.namespaces(spec);
    linter
        .out
        .sort_by_key(|d| d.location.map(|l| l.offset).unwrap_or(usize::MAX));
    linter.out
}

struct Linter<'a> {
    index: LineIndex<'a>,
    source: Arc<NamedSource<String>>,
    base_dir: Option<&'a Path>,
    out: Vec<Diagnostic>,
}

impl Linter<'_> {
    fn push<T>(&mut self, at: &Spanned<T>, diag: Diagnostic) {
        let diag = Diagnostic {
            src: Some(self.source.clone()),
            ..diag
        };
        let diag = match at.span().start() {
            Some(m) => {
                let loc = self.index.location(m.line(), m.column());
                Diagnostic {
                    location: Some(loc),
                    len: self.index.token_len(loc.offset),
                    ..diag
                }
            }
            None => diag,
        };
        self.out.push(diag);
    }

    fn line_of<T>(at: &Spanned<T>) -> usize {
        at.span().start().map(|m| m.line()).unwrap_or(0)
    }

    fn unique_names<'s>(
        &mut self,
        what: &'static str,
        names: impl Iterator<Item = &'s Spanned<String>>,
    ) {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for name in names {
            if let Some(first_line) = seen.get(name.as_str()) {
                let problem = Problem::DuplicateName {
                    what,
                    name: name.to_string(),
                    first_line: *first_line,
                };
                self.push(
                    name,
                    Diagnostic::error(problem).with_help(format!("{what} names must be unique")),
                );
            } else {
                seen.insert(name.as_str(), Self::line_of(name));
            }
        }
    }

    fn identity(&mut self, spec: &AgentSpec) {
        if !is_dns_label(&spec.name) {
            self.push(
                &spec.name,
                Diagnostic::error(Problem::InvalidName(spec.name.to_string())),
            );
        }
        if let Err(e) = semver::Version::parse(&spec.version) {
            let problem = Problem::InvalidSemver {
                value: spec.version.to_string(),
                reason: e.to_string(),
            };
            self.push(
                &spec.version,
                Diagnostic::error(problem).with_help("use MAJOR.MINOR.PATCH, e.g. `1.0.0`"),
            );
        }
    }

    fn capabilities(&mut self, spec: &AgentSpec) {
        self.unique_names("capability", spec.capabilities.iter().map(|c| &c.name));
        for cap in &spec.capabilities {
            if cap.name.is_empty() {
                self.push(
                    &cap.name,
                    Diagnostic::error(Problem::WrongType {
                        path: "capabilities[].name".into(),
                        detail: "must not be empty".into(),
                    }),
                );
            }
            if let Some(c) = &cap.constraints {
                self.constraints(&cap.name, c);
            }
        }
    }

    fn constraints(&mut self, cap: &Spanned<String>, c: &Constraints) {
        let field = |f: &str| format!("capabilities.{}.constraints.{f}", cap.as_str());
        if let Some(max) = &c.max_length
            && !(1..=MAX_LENGTH_LIMIT).contains(&**max)
        {
            let problem = Problem::OutOfRange {
                field: field("max_length"),
                value: max.to_string(),
                expected: format!("1 to {MAX_LENGTH_LIMIT}"),
            };
            self.push(max, Diagnostic::error(problem));
        }
        if let Some(n) = &c.max_concurrent
            && !(1..=MAX_CONCURRENCY_LIMIT).contains(&**n)
        {
            let problem = Problem::OutOfRange {
                field: field("max_concurrent"),
                value: n.to_string(),
                expected: format!("1 to {MAX_CONCURRENCY_LIMIT}"),
            };
            self.push(n, Diagnostic::error(problem));
        }
        if let Some(ContentFilter::Detailed(rules)) = &c.content_filter {
            for pattern in &rules.patterns {
                if let Err(e) = regex::Regex::new(pattern) {
                    let problem = Problem::InvalidRegex {
                        field: field("content_filter.patterns"),
                        reason: e.to_string(),
                    };
                    self.push(pattern, Diagnostic::error(problem));
                }
            }
        }
        for (arg, ac) in &c.args {
            if let Some(pattern) = &ac.pattern
                && let Err(e) = regex::Regex::new(pattern)
            {
                let problem = Problem::InvalidRegex {
                    field: field(&format!("args.{arg}.pattern")),
                    reason: e.to_string(),
                };
                self.push(pattern, Diagnostic::error(problem));
            }
            if let (Some(min), Some(max)) = (ac.min, ac.max)
                && min > max
            {
                let problem = Problem::OutOfRange {
                    field: field(&format!("args.{arg}")),
                    value: format!("min {min} > max {max}"),
                    expected: "min <= max".into(),
                };
                self.push(cap, Diagnostic::error(problem));
            }
        }
        if let Some(schema) = &c.arguments
            && let Err(e) = jsonschema::meta::validate(schema)
        {
            let problem = Problem::InvalidJsonSchema {
                field: field("arguments"),
                reason: e.to_string(),
            };
            self.push(cap, Diagnostic::error(problem));
        }
        if let Some(rl) = &c.rate_limit {
            if *rl.requests == 0 {
                let problem = Problem::OutOfRange {
                    field: field("rate_limit.requests"),
                    value: "0".into(),
                    expected: "at least 1".into(),
                };
                self.push(&rl.requests, Diagnostic::error(problem));
            }
            match parse_duration(&rl.per) {
                Some(d) if !d.is_zero() => {}
                _ => {
                    let problem = Problem::InvalidDuration {
                        field: field("rate_limit.per"),
                        value: rl.per.to_string(),
                    };
                    self.push(&rl.per, Diagnostic::error(problem));
                }
            }
        }
        if let Some(cost) = c.budget.as_ref().and_then(|b| b.max_cost_usd.as_ref())
            && !(cost.is_finite() && **cost >= 0.0)
        {
            let problem = Problem::OutOfRange {
                field: field("budget.max_cost_usd"),
                value: cost.to_string(),
                expected: "a finite number >= 0".into(),
            };
            self.push(cost, Diagnostic::error(problem));
        }
    }

    fn policies(&mut self, spec: &AgentSpec) {
        self.unique_names("policy", spec.policies.iter().map(|p| &p.name));
        for policy in &spec.policies {
            let entry = format!("policy `{}`", policy.name.as_str());
            match policy.kind {
                PolicyKind::InformationFlow => {
                    let kind = "information_flow".to_string();
                    if policy.deny_labels.is_empty() {
                        let p = Problem::MissingField {
                            entry: entry.clone(),
                            kind: kind.clone(),
                            field: "deny_labels",
                        };
                        self.push(&policy.name, Diagnostic::error(p));
                    }
                    if policy.sinks.is_empty() {
                        let p = Problem::MissingField {
                            entry: entry.clone(),
                            kind: kind.clone(),
                            field: "sinks",
                        };
                        self.push(&policy.name, Diagnostic::error(p));
                    }
                    if policy.rule.is_some() {
                        let p = Problem::FieldNotApplicable {
                            entry: entry.clone(),
                            kind,
                            field: "rule",
                        };
                        self.push(&policy.name, Diagnostic::error(p));
                    }
                    for sink in &policy.sinks {
                        let cap = sink.split('.').next().unwrap_or("");
                        if spec.capability(cap).is_none() {
                            let field = format!("policies.{}.sinks", policy.name.as_str());
                            let d = unknown_capability(spec, field, cap);
                            let d = match d.help {
                                Some(_) => d,
                                None => {
                                    d.with_help("sinks are `capability` or `capability.argument`")
                                }
                            };
                            self.push(sink, d);
                        }
                    }
                    for principal in &policy.principals {
                        let cap = principal.split('.').next().unwrap_or("");
                        if spec.capability(cap).is_none() {
                            let field = format!("policies.{}.principals", policy.name.as_str());
                            let d = unknown_capability(spec, field, cap);
                            self.push(principal, d);
                        }
                    }
                }
                PolicyKind::Custom => {
                    if policy.rule.as_deref().is_none_or(|r| r.trim().is_empty()) {
                        let p = Problem::MissingField {
                            entry: entry.clone(),
                            kind: "custom".into(),
                            field: "rule",
                        };
                        self.push(&policy.name, Diagnostic::error(p));
                    }
                    if !policy.principals.is_empty() {
                        let p = Problem::FieldNotApplicable {
                            entry,
                            kind: "custom".into(),
                            field: "principals",
                        };
                        self.push(&policy.name, Diagnostic::error(p));
                    }
                }
            }
        }
    }

    fn resources(&mut self, spec: &AgentSpec) {
        let Some(r) = &spec.resources else { return };
        if let Some(cpu) = &r.cpu
            && parse_cpu_millis(cpu).is_none_or(|m| m == 0)
        {
            let p = Problem::InvalidQuantity {
                what: "cpu",
                value: cpu.to_string(),
                expected: "a positive number of cores such as `2`, `0.5` or `500m`",
            };
            self.push(cpu, Diagnostic::error(p));
        }
        if let Some(mem) = &r.memory
            && parse_memory_bytes(mem).is_none_or(|b| b == 0)
        {
            let p = Problem::InvalidQuantity {
                what: "memory",
                value: mem.to_string(),
                expected: "a positive size such as `512Mi`, `2Gi` or `1G`",
            };
            self.push(mem, Diagnostic::error(p));
        }
        if let Some(n) = &r.max_concurrent_calls
            && !(1..=MAX_CONCURRENCY_LIMIT).contains(&**n)
        {
            let p = Problem::OutOfRange {
                field: "resources.max_concurrent_calls".into(),
                value: n.to_string(),
                expected: format!("1 to {MAX_CONCURRENCY_LIMIT}"),
            };
            self.push(n, Diagnostic::error(p));
        }
    }

    fn proofs(&mut self, spec: &AgentSpec) {
        self.unique_names("proof", spec.proofs.iter().map(|p| &p.name));
        for proof in &spec.proofs {
            self.proof_fields(proof);
            self.file("proof file", &proof.file);
            if let Some(export) = &proof.export {
                self.file("Lean export", export);
            }
            if let Some(property) = &proof.property {
                self.file("property file", property);
            }
            if let Some(t) = &proof.timeout
                && parse_duration(t).is_none_or(|d| d.is_zero())
            {
                let p = Problem::InvalidDuration {
                    field: format!("proofs.{}.timeout", proof.name.as_str()),
                    value: t.to_string(),
                };
                self.push(t, Diagnostic::error(p));
            }
            for cap in &proof.covers {
                if spec.capability(cap).is_none() {
                    let field = format!("proofs.{}.covers", proof.name.as_str());
                    self.push(cap, unknown_capability(spec, field, cap));
                }
            }
        }
    }

    fn proof_fields(&mut self, proof: &Proof) {
        let entry = format!("proof `{}`", proof.name.as_str());
        let kind = proof.kind.as_str().to_string();
        let not_applicable = |field: &'static str| Problem::FieldNotApplicable {
            entry: entry.clone(),
            kind: kind.clone(),
            field,
        };
        let mut problems = Vec::new();
        match proof.kind {
            ProofKind::Lean => {
                for (present, field) in [
                    (proof.property.is_some(), "property"),
                    (proof.method.is_some(), "method"),
                ] {
                    if present {
                        problems.push(Diagnostic::error(not_applicable(field)));
                    }
                }
                if proof.theorem.is_none() {
                    problems.push(
                        Diagnostic::error(Problem::LeanWithoutTheorem(proof.name.to_string()))
                            .warning()
                            .with_help("add `theorem: <fully qualified name>`"),
                    );
                }
                if proof.export.is_none() && proof.file.ends_with(".lean") {
                    problems.push(
                        Diagnostic::error(Problem::LeanSourceWithoutExport(proof.name.to_string()))
                            .warning()
                            .with_help("add `export: <file>.ndjson` produced by lean4export"),
                    );
                }
            }
            ProofKind::Nnv | ProofKind::Reach => {
                for (present, field) in [
                    (proof.export.is_some(), "export"),
                    (proof.theorem.is_some(), "theorem"),
                    (proof.binding.is_some(), "binding"),
                    (
                        proof.kind == ProofKind::Nnv && proof.method.is_some(),
                        "method",
                    ),
                ] {
                    if present {
                        problems.push(Diagnostic::error(not_applicable(field)));
                    }
                }
                if proof.kind == ProofKind::Nnv && proof.property.is_none() {
                    problems.push(Diagnostic::error(Problem::MissingField {
                        entry: entry.clone(),
                        kind: kind.clone(),
                        field: "property",
                    }));
                }
                if proof.kind == ProofKind::Reach && proof.property.is_some() {
                    problems.push(Diagnostic::error(not_applicable("property")));
                }
            }
        }
        for d in problems {
            self.push(&proof.name, d);
        }
    }

    fn file(&mut self, what: &'static str, path: &Spanned<String>) {
        let rel = Path::new(path.as_str());
        let escapes = rel.is_absolute()
            || path.is_empty()
            || rel
                .components()
                .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
        if escapes {
            self.push(
                path,
                Diagnostic::error(Problem::PathEscapes {
                    what,
                    path: path.to_string(),
                }),
            );
            return;
        }
        let Some(base) = self.base_dir else { return };
        let resolved = base.join(rel);
        // symlink_metadata: a bundle never follows links, so a link is as good as missing.
        let is_file = std::fs::symlink_metadata(&resolved).is_ok_and(|m| m.is_file());
        if !is_file {
            let p = Problem::MissingFile {
                what,
                path: path.to_string(),
                resolved: resolved.display().to_string(),
            };
            self.push(
                path,
                Diagnostic::error(p).with_help("paths are relative to the spec file's directory"),
            );
        }
    }

    fn namespaces(&mut self, spec: &AgentSpec) {
        for ns in &spec.namespaces {
            if !is_dns_label(ns) {
                let p = Problem::WrongType {
                    path: "namespaces".into(),
                    detail: format!(
                        "`{}` is not a valid Kubernetes namespace name (a DNS label)",
                        ns.as_str()
                    ),
                };
                self.push(ns, Diagnostic::error(p));
            }
        }
    }

    fn signers(&mut self, spec: &AgentSpec) {
        let Some(s) = &spec.signers else { return };
        self.unique_names("signer", s.keys.iter().map(|k| &k.name));
        let n = s.keys.len();
        if *s.threshold == 0 || *s.threshold as usize > n {
            let p = Problem::OutOfRange {
                field: "signers.threshold".into(),
                value: s.threshold.to_string(),
                expected: format!("1 to the number of keys ({n})"),
            };
            self.push(&s.threshold, Diagnostic::error(p));
        }
        for key in &s.keys {
            if !is_inline_pem(&key.public_key) {
                self.file("signer public key", &key.public_key);
            }
        }
    }
}

/// An unknown-capability error, with a "did you mean" when a declared name is close.
fn unknown_capability(spec: &AgentSpec, field: String, name: &str) -> Diagnostic {
    let d = Diagnostic::error(Problem::UnknownCapability {
        field,
        name: name.to_string(),
    });
    let names = spec.capabilities.iter().map(|c| c.name.as_str());
    match did_you_mean(name, names) {
        Some(s) => d.with_help(format!("did you mean `{s}`?")),
        None => d,
    }
}

/// True for a DNS label (RFC 1123): what Kubernetes accepts as a name.
fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first() != Some(&b'-')
        && bytes.last() != Some(&b'-')
}

#[cfg(test)]
mod tests {
    use super::is_dns_label;

    #[test]
    fn dns_labels() {
        assert!(is_dns_label("ai-agent"));
        assert!(is_dns_label("a1"));
        assert!(!is_dns_label("-a"));
        assert!(!is_dns_label("Agent"));
        assert!(!is_dns_label(&"a".repeat(64)));
        assert!(!is_dns_label(""));
    }
}
