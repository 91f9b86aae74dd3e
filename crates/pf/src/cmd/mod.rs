//! Subcommands of `pf`, one module each.

pub mod reach;

/// Exit code for a usage or input error (a rejected proof or denied check has its own codes).
pub const EXIT_ERROR: u8 = 3;
