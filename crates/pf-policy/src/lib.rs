//! `pf-policy`: the compiled, stateful policy kernel of Provability Fabric.
//!
//! [`compile`] turns an [`pf_spec::AgentSpec`] into an immutable [`Policy`] (precompiled
//! regexes, JSON Schema validators, normalised domain sets and path prefixes, content detectors,
//! information-flow sinks and custom rules), rejecting bad specs with typed [`CompileError`]s.
//! [`decide`] takes a tool call and a [`SessionState`] and returns a [`Decision`] (allow, deny or
//! allow with obligations, plus reason codes); it never fails and never reads a clock (time is
//! passed in). [`record_output`] and [`record_user_request`] feed the information-flow model;
//! [`check_output`] applies output constraints. The crate is pure: no I/O, no global state,
//! so the guard can run it in-process, in a worker pool or as WASM. [`reference`] holds a
//! deliberately simple second evaluator used as a test oracle.

mod args;
mod compile;
mod decide;
pub mod detect;
mod error;
pub mod fields;
pub mod flow;
mod labels;
mod output;
mod program;
mod reason;
pub mod reference;
mod rule;
mod schema_check;
mod state;

pub use compile::{Compiled, Options, compile, compile_with};
pub use decide::{
    Call, decide, record_output, record_output_with, record_usage, record_user_request, release,
};
pub use error::{CompileError, CompileErrors, Diagnostic, Pos, Warning};
pub use labels::{LabelMask, MAX_LABELS};
pub use output::{OutputDecision, OutputEffect, check_output, redact};
pub use program::{Limits, Policy, Rate};
pub use reason::{Decision, Effect, Obligation, Reason, ReasonCode};
pub use rule::{MAX_RULE_DEPTH, MAX_RULE_LEN};
pub use state::SessionState;

/// Loads, lints and compiles a spec file (convenience for the CLI and the guard).
pub fn load_and_compile(path: &std::path::Path, options: &Options) -> Result<Compiled, LoadError> {
    let loaded = pf_spec::load(path).map_err(LoadError::Spec)?;
    compile_with(&loaded.spec, options).map_err(LoadError::Compile)
}

/// Why a spec file could not be turned into a policy.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The spec failed to parse or lint.
    #[error(transparent)]
    Spec(pf_spec::SpecErrors),
    /// The spec parsed but does not compile into a policy.
    #[error(transparent)]
    Compile(CompileErrors),
}
