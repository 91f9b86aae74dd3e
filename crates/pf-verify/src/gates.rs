//! Quality gates: conditions on the whole run that must hold before a bundle is attested as
//! verified. Every gate fails closed: missing information (no axioms reported for a Lean
//! obligation, no checker version) is a failure, not a pass.

use std::collections::BTreeMap;

use pf_spec::AgentSpec;
use serde::{Deserialize, Serialize};

use crate::engine::ObligationResult;
use crate::verdict::Verdict;

/// Axiom that marks an incomplete Lean proof; never allowed, whatever the configuration says.
pub const SORRY_AXIOM: &str = "sorryAx";

/// Gate configuration (JSON file or defaults).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GateConfig {
    /// Every capability must be covered by a proved obligation or carry a `waiver`.
    pub require_coverage: bool,
    /// Axioms Lean theorems may depend on.
    pub allowed_axioms: Vec<String>,
    /// Obligation types whose checker must report axioms (checked against `allowed_axioms`).
    pub axiom_checked_types: Vec<String>,
    /// Every obligation must end `proved` (no `refuted`, `unknown` or `error`).
    pub require_all_proved: bool,
    /// No obligation may take longer than its time budget.
    pub enforce_time_budget: bool,
    /// Minimum checker version by checker name (dotted numeric, e.g. `1.2.0`).
    pub min_checker_versions: BTreeMap<String, String>,
}

impl Default for GateConfig {
    fn default() -> Self {
        Self {
            require_coverage: true,
            allowed_axioms: vec![
                "propext".into(),
                "Quot.sound".into(),
                "Classical.choice".into(),
            ],
            axiom_checked_types: vec!["lean".into()],
            require_all_proved: true,
            enforce_time_budget: true,
            min_checker_versions: BTreeMap::new(),
        }
    }
}

/// The outcome of one gate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateResult {
    /// Gate name: `coverage`, `axioms`, `all_proved`, `time_budget`, `checker_versions`.
    pub gate: String,
    /// True when nothing failed.
    pub passed: bool,
    /// One line per failure.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
}

fn gate(name: &str, failures: Vec<String>) -> GateResult {
    GateResult {
        gate: name.to_string(),
        passed: failures.is_empty(),
        failures,
    }
}

/// Evaluates the configured gates over `results` for `spec`.
pub fn evaluate(
    spec: &AgentSpec,
    results: &[ObligationResult],
    cfg: &GateConfig,
) -> Vec<GateResult> {
    let mut out = Vec::new();
    if cfg.require_coverage {
        out.push(gate("coverage", coverage(spec, results)));
    }
    out.push(gate("axioms", axioms(results, cfg)));
    if cfg.require_all_proved {
        let failures = results
            .iter()
            .filter(|r| !r.verdict.is_proved())
            .map(|r| format!("{}: {}", r.name, describe(&r.verdict)))
            .collect();
        out.push(gate("all_proved", failures));
    }
    if cfg.enforce_time_budget {
        let failures = results
            .iter()
            .filter(|r| r.duration_ms > r.timeout_ms)
            .map(|r| {
                format!(
                    "{}: took {} ms, budget {} ms",
                    r.name, r.duration_ms, r.timeout_ms
                )
            })
            .collect();
        out.push(gate("time_budget", failures));
    }
    if !cfg.min_checker_versions.is_empty() {
        out.push(gate("checker_versions", versions(results, cfg)));
    }
    out
}

/// One line describing a verdict.
pub fn describe(v: &Verdict) -> String {
    match v {
        Verdict::Proved => "proved".into(),
        Verdict::Refuted { evidence } => format!("refuted ({evidence})"),
        Verdict::Unknown { reason } => format!("unknown ({reason})"),
        Verdict::Error { reason } => format!("error ({reason})"),
    }
}

fn coverage(spec: &AgentSpec, results: &[ObligationResult]) -> Vec<String> {
    let mut failures = Vec::new();
    for cap in &spec.capabilities {
        let name = cap.name.as_str();
        if cap.waiver.as_deref().is_some_and(|w| !w.trim().is_empty()) {
            continue;
        }
        let covering: Vec<&ObligationResult> = results
            .iter()
            .filter(|r| r.covers.iter().any(|c| c == name))
            .collect();
        if covering.is_empty() {
            failures.push(format!(
                "capability {name:?} is covered by no obligation and has no waiver"
            ));
        } else if !covering.iter().any(|r| r.verdict.is_proved()) {
            failures.push(format!(
                "capability {name:?}: no covering obligation is proved ({})",
                covering
                    .iter()
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    failures
}

fn axioms(results: &[ObligationResult], cfg: &GateConfig) -> Vec<String> {
    let mut failures = Vec::new();
    for r in results {
        if let Some(list) = &r.axioms
            && list.iter().any(|a| a == SORRY_AXIOM)
        {
            failures.push(format!(
                "{}: depends on {SORRY_AXIOM} (incomplete proof)",
                r.name
            ));
            continue;
        }
        if !r.verdict.is_proved() || !cfg.axiom_checked_types.contains(&r.kind) {
            continue;
        }
        match &r.axioms {
            None => failures.push(format!(
                "{}: checker {} reported no axiom list",
                r.name,
                r.checker.as_deref().unwrap_or("?")
            )),
            Some(list) => {
                let bad: Vec<&str> = list
                    .iter()
                    .filter(|a| !cfg.allowed_axioms.iter().any(|ok| ok == *a))
                    .map(String::as_str)
                    .collect();
                if !bad.is_empty() {
                    failures.push(format!(
                        "{}: depends on axioms outside the allow-list: {}",
                        r.name,
                        bad.join(", ")
                    ));
                }
            }
        }
    }
    failures
}

fn versions(results: &[ObligationResult], cfg: &GateConfig) -> Vec<String> {
    let mut failures = Vec::new();
    for r in results {
        let (Some(name), Some(version)) = (&r.checker, &r.checker_version) else {
            continue;
        };
        let Some(min) = cfg.min_checker_versions.get(name) else {
            continue;
        };
        match (parse_version(version), parse_version(min)) {
            (Some(have), Some(want)) if have >= want => {}
            (Some(_), Some(_)) => failures.push(format!(
                "{}: checker {name} {version} is older than the required {min}",
                r.name
            )),
            _ => failures.push(format!(
                "{}: cannot compare checker {name} version {version:?} with {min:?}",
                r.name
            )),
        }
    }
    failures
}

/// Parses `1.2.3` (any number of numeric components; a `-pre`/`+build` suffix is dropped).
pub fn parse_version(v: &str) -> Option<Vec<u64>> {
    let core = v.split(['-', '+']).next()?;
    let mut parts: Vec<u64> = core
        .split('.')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    while parts.len() > 1 && parts.last() == Some(&0) {
        parts.pop();
    }
    Some(parts)
}

/// True when every gate passed.
pub fn all_passed(gates: &[GateResult]) -> bool {
    gates.iter().all(|g| g.passed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        assert!(parse_version("1.10.0") > parse_version("1.9.9"));
        assert_eq!(parse_version("1.2"), parse_version("1.2.0"));
        assert_eq!(parse_version("1.2.0-rc1"), parse_version("1.2"));
        assert_eq!(parse_version("x.1"), None);
    }
}
