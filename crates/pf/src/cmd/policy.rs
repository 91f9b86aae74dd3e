//! `pf policy`: compile a spec into the guard's decision program, or decide one call.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use miette::{IntoDiagnostic, WrapErr};

use super::EXIT_INVALID;

/// Compile specs into policy programs and try decisions.
#[derive(Subcommand)]
pub enum Args {
    /// Compile a spec; print a summary (or the program as JSON) or every compile error.
    Compile {
        /// The spec file (YAML).
        spec: PathBuf,
        /// Print the compiled program as JSON (sorted keys) instead of a summary.
        #[arg(long)]
        json: bool,
    },
    /// Decide one tool call in a fresh session; prints the decision as JSON.
    /// Exit code 0 = allow, 1 = deny.
    Check {
        /// The spec file (YAML).
        spec: PathBuf,
        /// Tool (capability) name.
        #[arg(long)]
        tool: String,
        /// Arguments as a JSON object.
        #[arg(long, default_value = "{}")]
        args: String,
        /// Context for custom rules, as JSON.
        #[arg(long)]
        context: Option<String>,
        /// Declared token use of the call.
        #[arg(long, default_value_t = 0)]
        tokens: u64,
        /// Declared cost of the call in USD.
        #[arg(long, default_value_t = 0.0)]
        cost: f64,
    },
}

/// Runs a `pf policy` subcommand.
pub fn run(args: Args) -> miette::Result<ExitCode> {
    match args {
        Args::Compile { spec, json } => {
            let Some(compiled) = compile(&spec)? else {
                return Ok(ExitCode::from(EXIT_INVALID));
            };
            for w in &compiled.warnings {
                eprintln!("{}: warning: {}: {}", spec.display(), w.field, w.message);
            }
            let program = compiled.policy.to_json();
            if json {
                let text = serde_json::to_string_pretty(&program).into_diagnostic()?;
                println!("{text}");
            } else {
                print_summary(&program);
            }
            Ok(ExitCode::SUCCESS)
        }
        Args::Check {
            spec,
            tool,
            args,
            context,
            tokens,
            cost,
        } => {
            let args: serde_json::Value = serde_json::from_str(&args)
                .into_diagnostic()
                .wrap_err("--args is not valid JSON")?;
            let context: serde_json::Value = match context {
                Some(c) => serde_json::from_str(&c)
                    .into_diagnostic()
                    .wrap_err("--context is not valid JSON")?,
                None => serde_json::Value::Null,
            };
            let Some(compiled) = compile(&spec)? else {
                return Ok(ExitCode::from(EXIT_INVALID));
            };
            let policy = compiled.policy;
            let mut state = policy.new_session();
            let call = pf_policy::Call {
                tool: &tool,
                args: &args,
                context: &context,
                tokens,
                cost_usd: cost,
            };
            let decision = pf_policy::decide(&policy, &mut state, &call, Duration::ZERO);
            let text = serde_json::to_string_pretty(&decision).into_diagnostic()?;
            println!("{text}");
            Ok(if decision.is_allowed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_INVALID)
            })
        }
    }
}

/// Loads and compiles; prints compile errors (file:line:col) and returns None when there are any.
fn compile(spec: &std::path::Path) -> miette::Result<Option<pf_policy::Compiled>> {
    let loaded = pf_spec::load(spec)?;
    match pf_policy::compile(&loaded.spec) {
        Ok(c) => Ok(Some(c)),
        Err(errors) => {
            for d in &errors.errors {
                match d.at {
                    Some(pos) => eprintln!(
                        "{}:{}: error: {} [{}]",
                        spec.display(),
                        pos,
                        d.error,
                        d.error.code()
                    ),
                    None => eprintln!(
                        "{}: error: {} [{}]",
                        spec.display(),
                        d.error,
                        d.error.code()
                    ),
                }
            }
            eprintln!("{}: {}", spec.display(), errors);
            Ok(None)
        }
    }
}

fn print_summary(program: &serde_json::Value) {
    println!(
        "policy {} {}",
        program["agent"].as_str().unwrap_or(""),
        program["version"].as_str().unwrap_or("")
    );
    for t in program["tools"].as_array().into_iter().flatten() {
        let mut parts = Vec::new();
        if !t["arguments_schema"].is_null() {
            parts.push("schema".to_string());
        }
        if let Some(args) = t["args"].as_object().filter(|a| !a.is_empty()) {
            parts.push(format!(
                "args[{}]",
                args.keys().cloned().collect::<Vec<_>>().join(",")
            ));
        }
        if let Some(r) = t["rate_limit"].as_object() {
            parts.push(format!("rate {}/{}ms", r["requests"], r["per_ms"]));
        }
        if !t["max_concurrent"].is_null() {
            parts.push(format!("max_concurrent {}", t["max_concurrent"]));
        }
        if let Some(l) = t["output_labels"].as_array().filter(|l| !l.is_empty()) {
            parts.push(format!("labels {}", serde_json::Value::Array(l.clone())));
        }
        println!(
            "  tool {} ({}): {}",
            t["name"].as_str().unwrap_or(""),
            t["kind"].as_str().unwrap_or(""),
            parts.join("; ")
        );
    }
    for f in program["information_flow"].as_array().into_iter().flatten() {
        println!(
            "  flow {}: {} -/-> {}",
            f["name"].as_str().unwrap_or(""),
            f["deny_labels"],
            f["sinks"]
        );
    }
    for r in program["custom_rules"].as_array().into_iter().flatten() {
        println!(
            "  rule {}: {}",
            r["name"].as_str().unwrap_or(""),
            r["rule"].as_str().unwrap_or("")
        );
    }
}
