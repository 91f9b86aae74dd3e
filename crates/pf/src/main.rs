//! `pf`: the Provability Fabric command line. A thin layer over the `pf-*` library crates.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

/// The process allocator. glibc's malloc serialises on an arena lock when one thread frees what
/// another allocated, and the guard does that on every request (its proxy threads build decision
/// records, the log writer frees them): in the proxy benchmark that cost about one futex call per
/// request on the proxy thread. mimalloc frees across threads without a lock.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Run the main job end to end on the example agents (no external services).
    Demo(cmd::demo::Args),
    /// Enforce an agent spec on an MCP server (stdio or Streamable HTTP) or an OpenAI-compatible API.
    Guard(Box<cmd::guard::Args>),
    /// Agent specs: lint, init, fmt, digest, schema.
    #[command(subcommand)]
    Spec(cmd::spec::Args),
    /// Inspect, sign and verify agent bundles.
    Bundle(cmd::bundle::Args),
    /// Manage Ed25519 signing keys.
    Key(cmd::key::Args),
    /// Neural-network verification (NNet/ONNX models, VNN-LIB/Marabou properties).
    Nnv(cmd::nnv::Args),
    /// Lean 4 proofs: independent kernel check of lean4export files.
    #[command(subcommand)]
    Lean(cmd::lean::Args),
    /// Transparency ledger: init, append, serve, verify, tail, find, fsck, witness.
    Ledger(cmd::ledger::Args),
    /// Hybrid-system reachability (DryVR-style reachtubes and safety verdicts).
    Reach(cmd::reach::Args),
    /// Policy kernel: compile a spec into a decision program, decide one call.
    #[command(subcommand)]
    Policy(cmd::policy::Args),
    /// Kubernetes admission webhooks: serve, certs, crds.
    #[command(subcommand)]
    Admission(cmd::admission::Args),
    /// Kubernetes operator reconciling AgentDeployments.
    Operator(cmd::admission::OperatorArgs),
    /// Check proof obligations, apply quality gates, sign attestations.
    Verify(Box<cmd::verify::Args>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: miette::Result<ExitCode> = match cli.command {
        Command::Demo(args) => cmd::demo::run(args),
        Command::Guard(args) => cmd::guard::run(*args),
        Command::Spec(args) => cmd::spec::run(args),
        Command::Bundle(args) => cmd::bundle::run(args),
        Command::Key(args) => cmd::key::run(args),
        Command::Nnv(args) => cmd::nnv::run(args),
        Command::Lean(a) => cmd::lean::run(a),
        Command::Ledger(args) => cmd::ledger::run(args),
        Command::Reach(a) => cmd::reach::run(a),
        Command::Policy(args) => cmd::policy::run(args),
        Command::Admission(args) => cmd::admission::run(args),
        Command::Operator(args) => cmd::admission::run_operator(args),
        Command::Verify(args) => cmd::verify::run(*args),
    };
    match result {
        Ok(code) => code,
        Err(report) => {
            eprintln!("{report:?}");
            ExitCode::from(cmd::EXIT_ERROR)
        }
    }
}
