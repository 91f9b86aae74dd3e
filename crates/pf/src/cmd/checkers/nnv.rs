//! The `nnv` checker: `pf-nnv` behind the engine's `Checker` trait.

use std::time::Instant;

use pf_verify::{CheckContext, CheckReport, Checker, Obligation, Verdict};

use super::{input, or_error, text};

/// The `nnv` obligation type: `file` is an NNet or ONNX model, `property` a VNN-LIB or Marabou
/// property stating the unsafe region. `unsat` (unreachable) proves the obligation.
pub struct NnvChecker;

/// Version of the adapter plus checker; part of the cache key, so bump it when verdicts may change.
const NNV_VERSION: &str = concat!("pf-nnv/", env!("CARGO_PKG_VERSION"), "+2");

impl NnvChecker {
    fn run(&self, ob: &Obligation, ctx: &CheckContext) -> Result<CheckReport, String> {
        let model = input(ob, "file", "model `file`")?;
        let property = input(ob, "property", "`property`")?;
        let net = if model.path.to_ascii_lowercase().ends_with(".onnx") {
            pf_nnv::onnx::parse_onnx(&model.bytes)
        } else {
            pf_nnv::nnet::parse_nnet(&text(&model.bytes, &model.path)?)
        }
        .map_err(|e| format!("{}: {e}", model.path))?;
        let prop_text = text(&property.bytes, &property.path)?;
        let prop = if property.path.to_ascii_lowercase().ends_with(".vnnlib") {
            pf_nnv::property::vnnlib::parse_vnnlib(&prop_text)
        } else {
            pf_nnv::property::marabou::parse_marabou(&prop_text)
        }
        .map_err(|e| format!("{}: {e}", property.path))?;
        let options = pf_nnv::Options {
            timeout: ctx.deadline.saturating_duration_since(Instant::now()),
            threads: 1,
            ..pf_nnv::Options::default()
        };
        let outcome = pf_nnv::check(&net, &prop, &options).map_err(|e| e.to_string())?;
        let verdict = match outcome.verdict {
            pf_nnv::Verdict::Unsat => Verdict::Proved,
            pf_nnv::Verdict::Sat { counterexample } => Verdict::Refuted {
                evidence: serde_json::json!({
                    "input": counterexample.input,
                    "output": counterexample.output,
                    "case": counterexample.case,
                }),
            },
            pf_nnv::Verdict::Unknown { reason } => Verdict::Unknown { reason },
        };
        let mut report = CheckReport::new(verdict);
        report
            .statistics
            .insert("nodes".into(), outcome.stats.nodes);
        report
            .statistics
            .insert("closed".into(), outcome.stats.closed);
        report
            .statistics
            .insert("lp_solves".into(), outcome.stats.lp_solves);
        Ok(report)
    }
}

impl Checker for NnvChecker {
    fn name(&self) -> &str {
        "pf-nnv"
    }

    fn version(&self) -> &str {
        NNV_VERSION
    }

    fn check(&self, ob: &Obligation, ctx: &CheckContext) -> CheckReport {
        or_error(self.run(ob, ctx))
    }
}
