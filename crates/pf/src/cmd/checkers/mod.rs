//! Adapters that plug the checker crates into the verification engine's `Checker` trait.

mod lean;
mod nnv;
mod reach;

pub use lean::LeanChecker;
pub use nnv::NnvChecker;
pub use reach::ReachChecker;

use pf_verify::{CheckReport, Obligation, Verdict};

/// Reads an input as UTF-8 text, naming it in the error.
fn text(bytes: &[u8], what: &str) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|e| format!("{what} is not UTF-8 text: {e}"))
}

/// The input with this role, or an error naming what is missing.
fn input<'o>(ob: &'o Obligation, role: &str, what: &str) -> Result<&'o pf_verify::Input, String> {
    ob.input(role)
        .ok_or_else(|| format!("{} obligation has no {what}", ob.kind))
}

/// Turns an adapter's own failure (bad input, unsupported content) into an `error` verdict.
fn or_error(result: Result<CheckReport, String>) -> CheckReport {
    result.unwrap_or_else(|reason| CheckReport::new(Verdict::Error { reason }))
}
