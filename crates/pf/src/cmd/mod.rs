//! Subcommands of `pf`, one module each.

pub mod admission;
pub mod bundle;
pub mod checkers;
pub mod demo;
pub mod guard;
pub mod guard_anomaly;
pub mod key;
pub mod lean;
pub mod ledger;
pub mod nnv;
pub mod policy;
pub mod reach;
pub mod spec;
pub mod trust;
pub mod verify;

/// Exit code for input that was read and found invalid (a failed lint, a failed verification).
pub const EXIT_INVALID: u8 = 1;

/// Exit code for a usage or input error (a rejected proof or denied check has its own codes).
pub const EXIT_ERROR: u8 = 3;
