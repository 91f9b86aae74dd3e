//! `pf guard`: run an MCP server under the runtime guard (the work is in `pf-guard`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use miette::{IntoDiagnostic, WrapErr};
use pf_guard::log::{Committer, LogError, QueuedSink};
use pf_guard::metrics::GuardMetrics;

/// Enforce an agent spec on every tool call and result between an agent and its MCP server.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    command: Option<GuardCommand>,
    /// The agent spec whose policy is enforced.
    #[arg(long)]
    spec: Option<PathBuf>,
    /// Decision log as JSON Lines (default when no --ledger is given).
    #[arg(long, default_value = "pf-guard-decisions.jsonl")]
    log: PathBuf,
    /// Append decisions to this transparency-ledger directory (`pf ledger init`) instead.
    #[arg(long)]
    ledger: Option<PathBuf>,
    /// Serve /metrics and /healthz on this address (e.g. 127.0.0.1:9464).
    #[arg(long)]
    metrics_addr: Option<String>,
    /// Anomaly detection (call rates, tool sequences).
    #[command(flatten)]
    anomaly: super::guard_anomaly::AnomalyArgs,
    /// The MCP server command and its arguments, after `--`.
    #[arg(last = true)]
    server: Vec<String>,
}

#[derive(clap::Subcommand)]
enum GuardCommand {
    /// Serve a demo MCP server with customer-support tools on stdin/stdout.
    DemoTools,
    /// Learn an anomaly baseline from a decision log.
    Baseline(super::guard_anomaly::BaselineArgs),
}

/// Runs `pf guard`.
pub fn run(args: Args) -> miette::Result<ExitCode> {
    match args.command {
        Some(GuardCommand::DemoTools) => {
            pf_guard::demo_tools::serve(std::io::stdin().lock(), std::io::stdout().lock());
            return Ok(ExitCode::SUCCESS);
        }
        Some(GuardCommand::Baseline(b)) => return super::guard_anomaly::run_baseline(b),
        None => {}
    }
    let Some(spec_path) = args.spec else {
        miette::bail!("pf guard needs --spec FILE and a server command after `--`");
    };
    let Some((command, server_args)) = args.server.split_first() else {
        miette::bail!(
            "no MCP server command: use `pf guard --spec {} -- <command> [args]`",
            spec_path.display()
        );
    };
    let loaded = pf_spec::load(&spec_path)?;
    let compiled = pf_policy::compile(&loaded.spec).map_err(|e| miette::miette!("{e}"))?;
    for w in &compiled.warnings {
        eprintln!("warning: {w:?}");
    }
    let committer = Committer::random();
    let metrics = Arc::new(GuardMetrics::default());
    let sink = open_sink(args.ledger.as_deref(), &args.log, &committer)?;
    let enforcer = pf_guard::PolicyEnforcer::new(
        Arc::new(compiled.policy),
        pf_spec::digest(&loaded.spec),
        sink.clone(),
        metrics.clone(),
        committer,
    );
    let (enforcer, webhook) = super::guard_anomaly::attach(&args.anomaly, enforcer, &metrics)?;
    let runtime = tokio::runtime::Runtime::new().into_diagnostic()?;
    let code = runtime.block_on(async {
        if let Some(addr) = &args.metrics_addr {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .into_diagnostic()
                .wrap_err_with(|| format!("cannot listen on {addr}"))?;
            tokio::spawn(pf_guard::http::serve(listener, metrics.clone()));
        }
        pf_guard::stdio::run(enforcer, command, server_args)
            .await
            .map_err(|e| miette::miette!("{e}"))
    });
    drop(runtime);
    super::guard_anomaly::close(webhook);
    let code = code?;
    // The enforcer (the only other owner) is gone with the runtime, so the sink can be closed.
    Arc::try_unwrap(sink)
        .map_err(|_| LogError::Unavailable("decision log still in use at exit".into()))
        .and_then(QueuedSink::close)
        .map_err(|e| miette::miette!("{e}"))
        .wrap_err("flushing the decision log")?;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

/// Opens the decision sink and records the session's commitment salt beside it (owner-only).
fn open_sink(
    ledger: Option<&Path>,
    log: &Path,
    committer: &Committer,
) -> miette::Result<Arc<QueuedSink>> {
    let salt_file = match ledger {
        Some(dir) => dir.join("guard-salts"),
        None => PathBuf::from(format!("{}.salts", log.display())),
    };
    append_secret(
        &salt_file,
        &format!("{} {}\n", std::process::id(), committer.salt_hex()),
    )
    .wrap_err_with(|| format!("writing {}", salt_file.display()))?;
    let sink = match ledger {
        Some(dir) => {
            let ledger = pf_ledger::dir::open(dir, None)
                .map_err(|e| miette::miette!("{e}"))
                .wrap_err_with(|| format!("opening ledger {}", dir.display()))?;
            QueuedSink::ledger(ledger, 4096).into_diagnostic()?
        }
        None => QueuedSink::jsonl(log, 4096)
            .into_diagnostic()
            .wrap_err_with(|| format!("opening {}", log.display()))?,
    };
    Ok(Arc::new(sink))
}

fn append_secret(path: &Path, line: &str) -> miette::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut f = options.open(path).into_diagnostic()?;
    f.write_all(line.as_bytes()).into_diagnostic()
}
