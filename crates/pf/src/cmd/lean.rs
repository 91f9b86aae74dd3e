//! `pf lean`: check lean4export files with the independent kernel (`pf-lean`), report axioms,
//! check a policy binding, and emit the policy as a Lean definition.

use std::path::PathBuf;
use std::process::ExitCode;

use miette::{IntoDiagnostic, WrapErr, miette};
use pf_lean::{Options, Verdict, axioms, binding, check_export};

/// `pf lean` subcommands.
#[derive(clap::Subcommand)]
pub enum Args {
    /// Check an export file: exit 0 accept, 1 reject, 2 decline (Lean Kernel Arena contract).
    Check(CheckArgs),
    /// Write the policy JSON as a Lean `def NAME : String := "..."` for proofs to refer to.
    Emit(EmitArgs),
}

/// Arguments of `pf lean check`.
#[derive(clap::Args)]
pub struct CheckArgs {
    /// The lean4export file (NDJSON 3.x or text format).
    pub file: PathBuf,
    /// Theorem whose axioms must be within the allowed set (repeatable).
    #[arg(long = "theorem")]
    pub theorems: Vec<String>,
    /// Extra allowed axiom besides propext, Quot.sound, Classical.choice (sorryAx is never allowed).
    #[arg(long = "allow-axiom")]
    pub allow_axioms: Vec<String>,
    /// Binding: constant whose value must be the string literal in --binding-json.
    #[arg(long, requires = "binding_json")]
    pub binding_const: Option<String>,
    /// File holding the expected canonical policy JSON.
    #[arg(long, requires = "binding_const")]
    pub binding_json: Option<PathBuf>,
    /// Reduction fuel per declaration.
    #[arg(long, default_value_t = pf_lean::tc::DEFAULT_FUEL)]
    pub fuel: u64,
    /// Print each declaration to stderr as it is checked.
    #[arg(long)]
    pub trace: bool,
    /// Worker threads for independent declarations.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

/// Arguments of `pf lean emit`.
#[derive(clap::Args)]
pub struct EmitArgs {
    /// Name of the Lean definition.
    #[arg(long, default_value = "policyJson")]
    pub name: String,
    /// File holding the policy JSON (re-serialised canonically).
    #[arg(long, required_unless_present = "spec", conflicts_with = "spec")]
    pub json: Option<PathBuf>,
    /// Agent spec whose compiled policy is emitted (what a `binding` obligation compares with).
    #[arg(long)]
    pub spec: Option<PathBuf>,
    /// Output file (stdout when absent).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// Runs `pf lean`.
pub fn run(args: Args) -> miette::Result<ExitCode> {
    match args {
        Args::Check(a) => check(a),
        Args::Emit(a) => emit(a),
    }
}

fn check(a: CheckArgs) -> miette::Result<ExitCode> {
    let text = std::fs::read_to_string(&a.file)
        .into_diagnostic()
        .wrap_err_with(|| format!("reading {}", a.file.display()))?;
    let out = check_export(
        &text,
        &Options {
            fuel: a.fuel,
            trace: a.trace,
            threads: a.threads,
        },
    );
    match &out.verdict {
        Verdict::Accept => {
            println!("accept: {} declarations checked", out.checked.checked);
        }
        Verdict::Reject { decl, reason } => {
            println!("reject: {}: {reason}", decl.as_deref().unwrap_or("<file>"));
            return Ok(ExitCode::from(1));
        }
        Verdict::Decline { decl, reason } => {
            println!("decline: {}: {reason}", decl.as_deref().unwrap_or("<file>"));
            return Ok(ExitCode::from(2));
        }
    }
    let mut allowed: Vec<&str> = axioms::DEFAULT_ALLOWED.to_vec();
    allowed.extend(a.allow_axioms.iter().map(String::as_str));
    for t in &a.theorems {
        match axioms::check_axioms(&out.checked, t, &allowed) {
            Ok(ax) => println!("{t}: axioms [{}]", ax.join(", ")),
            Err(e) => {
                println!("reject: {e}");
                return Ok(ExitCode::from(1));
            }
        }
    }
    if let (Some(c), Some(j)) = (&a.binding_const, &a.binding_json) {
        let expected = std::fs::read_to_string(j)
            .into_diagnostic()
            .wrap_err_with(|| format!("reading {}", j.display()))?;
        if let Err(e) = binding::check_binding(&out.checked, c, expected.trim_end_matches('\n')) {
            println!("reject: binding: {e}");
            return Ok(ExitCode::from(1));
        }
        println!("binding: `{c}` equals the policy JSON");
    }
    Ok(ExitCode::SUCCESS)
}

fn emit(a: EmitArgs) -> miette::Result<ExitCode> {
    let json = match (&a.spec, &a.json) {
        (Some(spec), _) => {
            let loaded = pf_spec::load(spec)?;
            pf_policy::compile(&loaded.spec)
                .map_err(|e| miette!("{}: {e}", spec.display()))?
                .policy
                .canonical_json()
        }
        (None, Some(file)) => {
            let text = std::fs::read_to_string(file)
                .into_diagnostic()
                .wrap_err_with(|| format!("reading {}", file.display()))?;
            let value: serde_json::Value = serde_json::from_str(&text)
                .into_diagnostic()
                .wrap_err_with(|| format!("{} is not JSON", file.display()))?;
            // Compact with sorted keys: the same text `pf verify` compares a binding with.
            value.to_string()
        }
        (None, None) => return Err(miette!("give --spec FILE or --json FILE")),
    };
    if !a
        .name
        .split('.')
        .all(|p| !p.is_empty() && p.chars().all(|c| c.is_alphanumeric() || c == '_'))
    {
        return Err(miette!("`{}` is not a valid Lean identifier", a.name));
    }
    let src = binding::emit_policy_def(&a.name, json.trim_end_matches('\n'));
    match a.output {
        Some(p) => std::fs::write(&p, src)
            .into_diagnostic()
            .wrap_err_with(|| format!("writing {}", p.display()))?,
        None => print!("{src}"),
    }
    Ok(ExitCode::SUCCESS)
}
