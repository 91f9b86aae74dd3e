//! `pf spec`: lint, init, fmt, digest and schema for agent specs.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use miette::{IntoDiagnostic, WrapErr};

/// Work with agent spec files.
#[derive(Subcommand)]
pub enum Args {
    /// Check a spec and explain every problem with file:line:col.
    Lint {
        /// The spec file (YAML).
        file: PathBuf,
        /// Print one `file:line:col: severity: message` line per finding instead of the report.
        #[arg(long)]
        short: bool,
    },
    /// Write a commented starter spec.
    Init {
        /// Where to write it.
        #[arg(default_value = "agent.yaml")]
        file: PathBuf,
        /// Agent name (a DNS label).
        #[arg(long, default_value = "my-agent")]
        name: String,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Print the spec in normalised form (or rewrite it in place with --write).
    Fmt {
        /// The spec file.
        file: PathBuf,
        /// Rewrite the file instead of printing.
        #[arg(long)]
        write: bool,
    },
    /// Print the spec's canonical digest (sha256 of its RFC 8785 canonical JSON).
    Digest {
        /// The spec file.
        file: PathBuf,
        /// Print the canonical JSON too.
        #[arg(long)]
        json: bool,
    },
    /// Print the AgentSpec JSON Schema.
    Schema,
}

/// Runs a `pf spec` subcommand.
pub fn run(args: Args) -> miette::Result<ExitCode> {
    match args {
        Args::Lint { file, short } => lint(file, short),
        Args::Init { file, name, force } => {
            if file.exists() && !force {
                miette::bail!(
                    "{} already exists (use --force to overwrite)",
                    file.display()
                );
            }
            let text = pf_spec::template::starter(&name);
            pf_spec::check_str(&file.display().to_string(), &text, None)?;
            std::fs::write(&file, text)
                .into_diagnostic()
                .wrap_err_with(|| format!("writing {}", file.display()))?;
            eprintln!(
                "wrote {}; check it with `pf spec lint {}`",
                file.display(),
                file.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Args::Fmt { file, write } => {
            let loaded = pf_spec::load(&file)?;
            let text = pf_spec::to_yaml(&loaded.spec);
            if write {
                std::fs::write(&file, text)
                    .into_diagnostic()
                    .wrap_err_with(|| format!("writing {}", file.display()))?;
            } else {
                print!("{text}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Args::Digest { file, json } => {
            let loaded = pf_spec::load(&file)?;
            if json {
                println!("{}", pf_spec::canonical_json(&loaded.spec));
            }
            println!("{}", pf_spec::digest(&loaded.spec));
            Ok(ExitCode::SUCCESS)
        }
        Args::Schema => {
            print!("{}", pf_spec::schema::json_schema());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn lint(file: PathBuf, short: bool) -> miette::Result<ExitCode> {
    let (diagnostics, ok) = match pf_spec::load(&file) {
        Ok(loaded) => (loaded.warnings, true),
        Err(errors) => (errors.diagnostics, false),
    };
    for d in diagnostics {
        if short {
            println!("{}", d.one_line());
        } else {
            eprintln!("{:?}", miette::Report::new(d));
        }
    }
    if ok {
        eprintln!("{}: ok", file.display());
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::from(super::EXIT_INVALID))
    }
}
