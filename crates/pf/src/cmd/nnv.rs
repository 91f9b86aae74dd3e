//! `pf nnv`: neural-network verification (thin glue over `pf-nnv`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use miette::{IntoDiagnostic, WrapErr};

/// Neural-network verification.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: NnvCommand,
}

#[derive(clap::Subcommand)]
enum NnvCommand {
    /// Decide whether any input of PROPERTY's region drives MODEL into its unsafe outputs.
    ///
    /// Exit status: 0 unsat (property holds), 1 sat (counterexample printed), 2 unknown, 3 error.
    Check {
        /// Model file: `.nnet` or `.onnx`.
        model: PathBuf,
        /// Property file: `.vnnlib`, or Marabou property text (any other extension).
        property: PathBuf,
        /// Time limit in seconds; when reached the verdict is `unknown`.
        #[arg(long, default_value_t = 60.0)]
        timeout: f64,
        /// Worker threads (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
    },
}

/// Run `pf nnv`.
pub fn run(args: Args) -> miette::Result<ExitCode> {
    match args.command {
        NnvCommand::Check {
            model,
            property,
            timeout,
            threads,
        } => {
            if !(timeout.is_finite() && timeout > 0.0) {
                return Err(miette::miette!(
                    "--timeout must be a positive number of seconds"
                ));
            }
            let net = pf_nnv::load_network(&model)
                .into_diagnostic()
                .wrap_err_with(|| format!("reading model {}", model.display()))?;
            let prop = pf_nnv::load_property(&property)
                .into_diagnostic()
                .wrap_err_with(|| format!("reading property {}", property.display()))?;
            let mut opts = pf_nnv::Options {
                timeout: Duration::from_secs_f64(timeout),
                ..pf_nnv::Options::default()
            };
            if let Some(t) = threads {
                opts.threads = t.max(1);
            }
            let out = pf_nnv::check(&net, &prop, &opts).into_diagnostic()?;
            let s = &out.stats;
            let code = match &out.verdict {
                pf_nnv::Verdict::Unsat => {
                    println!("unsat");
                    0
                }
                pf_nnv::Verdict::Sat { counterexample } => {
                    println!("sat");
                    let fmt = |v: &[f64]| {
                        v.iter()
                            .map(|x| format!("{x:e}"))
                            .collect::<Vec<_>>()
                            .join(" ")
                    };
                    println!("input  {}", fmt(&counterexample.input));
                    println!("output {}", fmt(&counterexample.output));
                    1
                }
                pf_nnv::Verdict::Unknown { reason } => {
                    println!("unknown: {reason}");
                    2
                }
            };
            eprintln!(
                "{:.3} s, {} boxes ({} closed, {} by LP certificate), depth {}",
                s.elapsed.as_secs_f64(),
                s.nodes,
                s.closed,
                s.certificates,
                s.max_depth
            );
            Ok(ExitCode::from(code))
        }
    }
}
