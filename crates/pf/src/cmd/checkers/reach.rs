//! The `reach` checker: `pf-reach` behind the engine's `Checker` trait.

use std::time::Instant;

use pf_reach::problem::Dynamics;
use pf_reach::{Method, Options, Problem};
use pf_verify::{CheckContext, CheckReport, Checker, Obligation, Verdict};

use super::{input, or_error, text};

/// The `reach` obligation type: `file` is a DryVR-format problem whose dynamics are ODEs (in the
/// file or a built-in model); `safe` proves it. `method: sound` uses interval enclosures;
/// the default `learned` carries DryVR's statistical guarantee (statistic `sound` = 0).
pub struct ReachChecker;

/// Version of the adapter plus checker; part of the cache key, so bump it when verdicts may change.
const REACH_VERSION: &str = concat!("pf-reach/", env!("CARGO_PKG_VERSION"), "+2");

impl ReachChecker {
    fn run(&self, ob: &Obligation, ctx: &CheckContext) -> Result<CheckReport, String> {
        let file = input(ob, "file", "problem `file`")?;
        let source = text(&file.bytes, &file.path)?;
        // No base directory: a bundle's problem cannot name files or programs outside it.
        let problem =
            Problem::from_json_str(&source, &file.path, None).map_err(|e| e.to_string())?;
        if let Dynamics::External(sim) = &problem.dynamics {
            return Err(format!(
                "{}: the verification engine does not run external simulators ({:?}); give the \
                 dynamics as ODEs in the problem file",
                file.path,
                sim.command.first().map(String::as_str).unwrap_or("")
            ));
        }
        let method = match ob.params.get("method").map(String::as_str) {
            None | Some("learned") => Method::Learned,
            Some("sound") => Method::Sound,
            Some(other) => return Err(format!("unknown reach method `{other}`")),
        };
        let options = Options {
            method,
            threads: 1,
            time_limit: Some(ctx.deadline.saturating_duration_since(Instant::now())),
            ..Options::default()
        };
        let report = pf_reach::check(&problem, &options);
        let verdict = match report.verdict {
            pf_reach::Verdict::Safe { .. } => Verdict::Proved,
            pf_reach::Verdict::Unsafe { counterexample } => {
                let last = counterexample
                    .segments
                    .last()
                    .and_then(|s| Some((s.mode.clone(), *s.t.last()?, s.x.last()?.clone())));
                Verdict::Refuted {
                    evidence: serde_json::json!({
                        "initial": counterexample.initial,
                        "unsafe_at": last.map(|(mode, t, x)| serde_json::json!({
                            "mode": mode, "t": t, "state": x,
                        })),
                    }),
                }
            }
            pf_reach::Verdict::Unknown { reason } => Verdict::Unknown { reason },
        };
        let mut out = CheckReport::new(verdict);
        let s = &report.stats;
        out.statistics
            .insert("sound".into(), u64::from(method == Method::Sound));
        out.statistics
            .insert("simulations".into(), s.simulations as u64);
        out.statistics.insert("cells".into(), s.cells as u64);
        out.statistics.insert("depth".into(), s.depth as u64);
        Ok(out)
    }
}

impl Checker for ReachChecker {
    fn name(&self) -> &str {
        "pf-reach"
    }

    fn version(&self) -> &str {
        REACH_VERSION
    }

    fn check(&self, ob: &Obligation, ctx: &CheckContext) -> CheckReport {
        or_error(self.run(ob, ctx))
    }
}
