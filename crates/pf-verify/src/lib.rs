//! `pf-verify`: the verification engine of Provability Fabric.
//!
//! It reads the `proofs[]` of the spec packed in a bundle into typed [`Obligation`]s, dispatches
//! each by type to a registered [`Checker`] (native, or a WebAssembly plugin run in a wasmtime
//! sandbox with fuel and memory caps), runs them on a bounded worker pool with per-obligation
//! time budgets and fault isolation, caches decided verdicts under sha256(checker, version,
//! inputs), evaluates quality [`gates`], and signs the aggregate result as a DSSE/in-toto
//! [`attest`]ation about the bundle digest. A PostgreSQL [`queue`] lets many `pf verify worker`
//! processes share the work. The format and guarantees are described in `docs/verify.md`.

pub mod attest;
pub mod builtin;
pub mod cache;
pub mod checker;
pub mod engine;
pub mod gates;
pub mod metrics;
pub mod obligation;
pub mod queue;
pub mod report;
pub mod verdict;
pub mod wasm;

pub use attest::{
    AttestationError, VERIFICATION_PREDICATE_TYPE, VerificationPredicate, VerifiedAttestation,
    sign_attestation, verify_attestation,
};
pub use builtin::{DIGEST_KIND, DigestChecker};
pub use cache::{CacheEntry, CacheStore, FileCache, Lookup, cache_key};
pub use checker::{CancelToken, CheckContext, CheckLimits, Checker, Registry};
pub use engine::{Engine, EngineConfig, ObligationResult, Progress};
pub use gates::{GateConfig, GateResult};
pub use obligation::{
    Input, Obligation, POLICY_JSON_PARAM, Plan, PlanError, PlanLimits, Planned, Rejected, plan,
};
pub use report::RunReport;
pub use verdict::{CheckReport, Verdict};
pub use wasm::{PluginError, WasmChecker};

use pf_bundle::OpenedBundle;

/// Plans, checks and gates every obligation of `bundle`.
pub fn verify_bundle(
    bundle: &OpenedBundle,
    engine: &Engine,
    plan_limits: &PlanLimits,
    gates: &GateConfig,
    progress: &(dyn Fn(Progress<'_>) + Sync),
) -> Result<RunReport, PlanError> {
    let plan = plan(bundle, plan_limits)?;
    let results = engine.check_all(&plan.obligations, progress);
    let gate_results = gates::evaluate(&plan.spec, &results, gates);
    let passed = gates::all_passed(&gate_results);
    Ok(RunReport {
        bundle_digest: plan.bundle_digest,
        spec_name: plan.spec.name.to_string(),
        spec_version: plan.spec.version.to_string(),
        results,
        gates: gate_results,
        passed,
    })
}
