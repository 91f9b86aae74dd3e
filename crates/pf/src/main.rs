//! `pf`: the Provability Fabric command line. A thin layer over the `pf-*` library crates.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

/// Provability Fabric: provable AI agents, signed bundles, runtime guard, transparency ledger.
#[derive(Parser)]
#[command(name = "pf", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// One variant per component; each lives in `cmd/<name>.rs` with its own `Args` and `run`.
#[derive(Subcommand)]
enum Command {
    /// Hybrid-system reachability (DryVR-style reachtubes and safety verdicts).
    Reach(cmd::reach::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: miette::Result<ExitCode> = match cli.command {
        Command::Reach(a) => cmd::reach::run(a),
    };
    match result {
        Ok(code) => code,
        Err(report) => {
            eprintln!("{report:?}");
            ExitCode::from(cmd::EXIT_ERROR)
        }
    }
}
