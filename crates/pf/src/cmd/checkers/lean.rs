//! The `lean` checker: `pf-lean`'s independent kernel re-checks the lean4export file, then the
//! named theorem's axioms are reported (the engine's axiom gate judges them) and, when the
//! obligation has a `binding`, the bound constant must hold the compiled policy's JSON.

use pf_lean::env::ConstKind;
use pf_lean::{Checked, Options, check_export};
use pf_verify::{CheckContext, CheckReport, Checker, Obligation, POLICY_JSON_PARAM, Verdict};

use super::{input, or_error, text};

/// The `lean` obligation type: `export` (or `file`, when it is the export itself) is a
/// lean4export file, `theorem` the statement the obligation stands for.
pub struct LeanChecker;

/// Version of the adapter plus checker; part of the cache key, so bump it when verdicts may change.
const LEAN_VERSION: &str = concat!("pf-lean/", env!("CARGO_PKG_VERSION"), "+1");

/// Whether `name` is a theorem in the checked environment (`None`: not there at all).
fn is_theorem(checked: &Checked, name: &str) -> Option<bool> {
    checked
        .env
        .names()
        .iter()
        .find(|&&n| checked.store.name_to_string(n) == name)
        .and_then(|&n| checked.env.get(n))
        .map(|c| matches!(c.kind, ConstKind::Thm { .. }))
}

impl LeanChecker {
    fn run(&self, ob: &Obligation) -> Result<CheckReport, String> {
        let export = match ob.input("export") {
            Some(e) => e,
            None => input(ob, "file", "lean4export `file`")?,
        };
        if export.path.ends_with(".lean") {
            return Err(format!(
                "{} is Lean source; the kernel re-checks lean4export output (add `export:`)",
                export.path
            ));
        }
        let theorem = ob.params.get("theorem").ok_or(
            "lean obligation names no `theorem`: a well-typed export alone proves nothing",
        )?;
        let source = text(&export.bytes, &export.path)?;
        let out = check_export(&source, &Options::default());
        let mut report = match out.verdict {
            pf_lean::Verdict::Accept => CheckReport::new(Verdict::Proved),
            pf_lean::Verdict::Reject { decl, reason } => {
                return Ok(CheckReport::new(Verdict::Refuted {
                    evidence: serde_json::json!({
                        "declaration": decl,
                        "reason": reason,
                    }),
                }));
            }
            pf_lean::Verdict::Decline { decl, reason } => {
                let at = decl.map(|d| format!(" at `{d}`")).unwrap_or_default();
                return Ok(CheckReport::new(Verdict::Unknown {
                    reason: format!("the kernel declined{at}: {reason}"),
                }));
            }
        };
        report
            .statistics
            .insert("declarations".into(), out.checked.checked as u64);
        match is_theorem(&out.checked, theorem) {
            None => {
                return Ok(refuted(format!(
                    "theorem `{theorem}` is not in {}",
                    export.path
                )));
            }
            Some(false) => {
                return Ok(refuted(format!(
                    "`{theorem}` is not a theorem (definitions and axioms prove nothing)"
                )));
            }
            Some(true) => {}
        }
        let axioms =
            pf_lean::axioms::axioms_of(&out.checked, theorem).map_err(|e| e.to_string())?;
        report.axioms = Some(axioms);
        if let Some(constant) = ob.params.get("binding") {
            let expected = ob
                .params
                .get(POLICY_JSON_PARAM)
                .ok_or("binding without the compiled policy (planner did not supply it)")?;
            if let Err(e) = pf_lean::binding::check_binding(&out.checked, constant, expected) {
                return Ok(refuted(format!("binding: {e}")));
            }
        }
        Ok(report)
    }
}

fn refuted(reason: String) -> CheckReport {
    CheckReport::new(Verdict::Refuted {
        evidence: serde_json::json!({ "reason": reason }),
    })
}

impl Checker for LeanChecker {
    fn name(&self) -> &str {
        "pf-lean"
    }

    fn version(&self) -> &str {
        LEAN_VERSION
    }

    fn check(&self, ob: &Obligation, _ctx: &CheckContext) -> CheckReport {
        or_error(self.run(ob))
    }
}
