//! `pf reach check PROBLEM.json`: DryVR-style reachability (library: `pf-reach`).

use std::path::PathBuf;
use std::process::ExitCode;

use miette::{IntoDiagnostic, miette};
use pf_reach::{Method, Options, Problem, Verdict, check, output};

/// Hybrid-system reachability.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// Check a DryVR problem: prints the verdict; exit 0 safe, 1 unsafe, 2 unknown.
    Check {
        /// The problem file (DryVR JSON).
        problem: PathBuf,
        /// Write an SVG plot of the tube / counterexample.
        #[arg(long)]
        plot: Option<PathBuf>,
        /// Write the full report (tube or counterexample) as JSON.
        #[arg(long)]
        tube: Option<PathBuf>,
        /// Write the tube as CSV.
        #[arg(long)]
        csv: Option<PathBuf>,
        /// Use the sound Lipschitz/interval mode instead of learned discrepancy.
        #[arg(long)]
        sound: bool,
        /// Maximum refinement depth.
        #[arg(long, default_value_t = 6)]
        depth: usize,
        /// Worker threads.
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Plot these variables (x,y; x may be `t`).
        #[arg(long)]
        axes: Option<String>,
    },
}

/// Run `pf reach`.
pub fn run(args: Args) -> miette::Result<ExitCode> {
    let Cmd::Check {
        problem,
        plot,
        tube,
        csv,
        sound,
        depth,
        threads,
        axes,
    } = args.cmd;
    let p = Problem::load(&problem).map_err(|e| miette!("{e}"))?;
    for w in &p.warnings {
        eprintln!("warning: {w}");
    }
    let opts = Options {
        method: if sound {
            Method::Sound
        } else {
            Method::Learned
        },
        max_depth: depth,
        threads,
        ..Options::default()
    };
    let r = check(&p, &opts);
    if let Some(path) = &tube {
        std::fs::write(path, output::report_json(&p, &r)).into_diagnostic()?;
    }
    if let (Some(path), Verdict::Safe { tube }) = (&csv, &r.verdict) {
        std::fs::write(path, output::tube_csv(&p, tube)).into_diagnostic()?;
    }
    if let Some(path) = &plot {
        let (xi, yi) = match &axes {
            Some(a) => {
                let (x, y) = a
                    .split_once(',')
                    .ok_or_else(|| miette!("--axes expects X,Y"))?;
                let find = |n: &str| {
                    p.variables
                        .iter()
                        .position(|v| v == n)
                        .ok_or_else(|| miette!("unknown variable `{n}`"))
                };
                (if x == "t" { None } else { Some(find(x)?) }, find(y)?)
            }
            None if p.variables.len() >= 2 => (Some(0), 1),
            None => (None, 0),
        };
        std::fs::write(path, output::svg(&p, &r, xi, yi)).into_diagnostic()?;
    }
    let s = &r.stats;
    match &r.verdict {
        Verdict::Safe { .. } => println!(
            "safe ({:.3} s, {} simulations, {} cells)",
            s.seconds, s.simulations, s.cells
        ),
        Verdict::Unsafe { counterexample } => {
            let last = counterexample
                .segments
                .last()
                .and_then(|g| Some((g.t.last()?, g.x.last()?, &g.mode)));
            println!(
                "unsafe: simulated run from {:?} enters the unsafe set",
                counterexample.initial
            );
            if let Some((t, x, m)) = last {
                println!("  at t = {t} in mode {m}: {x:?}");
            }
        }
        Verdict::Unknown { reason } => println!("unknown: {reason}"),
    }
    Ok(ExitCode::from(match r.verdict {
        Verdict::Safe { .. } => 0,
        Verdict::Unsafe { .. } => 1,
        Verdict::Unknown { .. } => 2,
    }))
}
