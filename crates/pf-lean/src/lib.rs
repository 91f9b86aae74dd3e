//! `pf-lean`: an independent Lean 4 kernel type checker for lean4export files.
//!
//! It reads an export (NDJSON format 3.0.0/3.1.0 or the older text format), re-checks every
//! declaration with its own kernel (universe levels, type inference, weak-head normalisation,
//! definitional equality with delta/iota/eta/proof irrelevance/literals, inductive types with
//! recursor generation, quotients) and returns a verdict following the Lean Kernel Arena
//! contract: accept, reject (with the declaration and reason) or decline (unsupported feature).
//! It also reports the axioms each theorem depends on and checks policy bindings.

pub mod axioms;
pub mod binding;
pub mod builder;
pub mod check;
pub mod env;
pub mod error;
pub mod inductive;
pub mod level;
pub mod nested;
pub mod parallel;
pub mod parse;
pub mod quot;
pub mod schedule;
pub mod store;
pub mod subst;
pub mod tc;

pub use check::{Checked, Options, Outcome, Verdict, check_export};
