//! `pf verify`: check a bundle's proof obligations, gate and attest (the work is in `pf-verify`).
//!
//! Exit codes: 0 every gate passed (and the attestation, if asked for, was written) or, for
//! `pf verify attestation`, the attestation was accepted; 1 verification failed (a gate failed)
//! or the attestation was rejected; 2 command-line usage error (clap); 3 input error (unreadable
//! bundle, bad key, bad plugin, queue unreachable).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use miette::{IntoDiagnostic, WrapErr, miette};
use pf_bundle::Limits;
use pf_verify::queue::{WorkerOptions, run_worker_blocking, verify_bundle_distributed};
use pf_verify::{
    CancelToken, DIGEST_KIND, DigestChecker, Engine, EngineConfig, FileCache, GateConfig,
    PlanLimits, Progress, Registry, RunReport, WasmChecker,
};

/// Exit code when an attestation does not verify (2 is clap's usage-error code).
pub const EXIT_REJECTED: u8 = 1;

/// Check a bundle's proof obligations, apply quality gates, sign an attestation.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Args {
    #[command(subcommand)]
    command: Option<VerifyCommand>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(clap::Args)]
struct RunArgs {
    /// The `.pfb` bundle to verify.
    #[arg(required = true)]
    bundle: Option<PathBuf>,
    /// PKCS#8 Ed25519 private key PEM: sign the result as a DSSE attestation.
    #[arg(long)]
    key: Option<PathBuf>,
    /// Attestation file [default: BUNDLE.verify.dsse.json].
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Report format on stdout.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Cache directory [default: $XDG_CACHE_HOME/pf/verify or ~/.cache/pf/verify].
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Do not read or write the cache.
    #[arg(long, conflicts_with = "cache")]
    no_cache: bool,
    #[command(flatten)]
    checkers: CheckerArgs,
    /// Quality gate configuration (JSON; unspecified fields keep their defaults).
    #[arg(long)]
    gates: Option<PathBuf>,
    /// Print Prometheus metrics to stderr at the end.
    #[arg(long)]
    metrics: bool,
    /// Hand the obligations to `pf verify worker` processes through this PostgreSQL queue.
    #[arg(long, env = "PF_VERIFY_QUEUE")]
    queue: Option<String>,
    /// With --queue: seconds to wait for workers.
    #[arg(long, default_value_t = 3600)]
    queue_wait: u64,
}

#[derive(clap::Args)]
struct CheckerArgs {
    /// Obligations checked at once [default: number of CPUs].
    #[arg(long, short)]
    jobs: Option<usize>,
    /// Register a WebAssembly checker plugin for an obligation type: TYPE=FILE (.wasm or .wat).
    #[arg(long = "plugin", value_name = "TYPE=FILE")]
    plugins: Vec<String>,
    /// WASM memory cap per obligation, in MiB.
    #[arg(long, default_value_t = 512)]
    memory_mib: u64,
}

#[derive(clap::Subcommand)]
enum VerifyCommand {
    /// Take obligations from a PostgreSQL queue and check them until stopped.
    Worker {
        /// PostgreSQL connection string.
        #[arg(long, env = "PF_VERIFY_QUEUE")]
        db: String,
        #[command(flatten)]
        checkers: CheckerArgs,
        /// Lease length in seconds (renewed while checking).
        #[arg(long, default_value_t = 30)]
        lease: u64,
        /// Exit after the queue has been empty this many seconds.
        #[arg(long)]
        exit_when_idle: Option<u64>,
    },
    /// Verify a verification attestation against a trust policy and a bundle.
    Attestation {
        /// The `.pfb` bundle the attestation must be about.
        bundle: PathBuf,
        /// Trust policy JSON (`threshold` and `keys`).
        #[arg(long)]
        trust: PathBuf,
        /// Attestation file [default: BUNDLE.verify.dsse.json].
        #[arg(long)]
        att: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Text,
    Json,
    Junit,
    Sarif,
}

/// Runs `pf verify`.
pub fn run(args: Args) -> miette::Result<ExitCode> {
    match args.command {
        Some(VerifyCommand::Worker {
            db,
            checkers,
            lease,
            exit_when_idle,
        }) => worker(&db, &checkers, lease, exit_when_idle),
        Some(VerifyCommand::Attestation { bundle, trust, att }) => {
            attestation(&bundle, &trust, att)
        }
        None => verify(args.run),
    }
}

/// Where `pf verify --key` writes the attestation of `bundle` by default.
pub fn attestation_path(bundle: &Path) -> PathBuf {
    let mut s = bundle.as_os_str().to_owned();
    s.push(".verify.dsse.json");
    PathBuf::from(s)
}

/// The native checkers: `sha256` (built in), `lean`, `nnv`, `reach`.
pub fn native_checkers() -> Registry {
    let mut registry = Registry::new();
    registry.register(DIGEST_KIND, Arc::new(DigestChecker));
    registry.register("nnv", Arc::new(super::checkers::NnvChecker));
    registry.register("lean", Arc::new(super::checkers::LeanChecker));
    registry.register("reach", Arc::new(super::checkers::ReachChecker));
    registry
}

fn engine(c: &CheckerArgs) -> miette::Result<Engine> {
    let mut registry = native_checkers();
    for spec in &c.plugins {
        let (kind, file) = spec
            .split_once('=')
            .ok_or_else(|| miette!("--plugin {spec:?}: expected TYPE=FILE"))?;
        let checker = WasmChecker::from_file(Path::new(file))
            .into_diagnostic()
            .wrap_err_with(|| format!("--plugin {spec}"))?;
        registry.register(kind, Arc::new(checker));
    }
    let mut config = EngineConfig::default();
    if let Some(j) = c.jobs {
        config.jobs = j.max(1);
    }
    config.limits.max_memory_bytes = c.memory_mib.saturating_mul(1024 * 1024);
    Ok(Engine::new(registry, config))
}

fn default_cache_dir() -> Option<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(x).join("pf/verify"));
    }
    std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(|h| PathBuf::from(h).join(".cache/pf/verify"))
}

fn verify(a: RunArgs) -> miette::Result<ExitCode> {
    let bundle_path = a.bundle.ok_or_else(|| miette!("a BUNDLE is required"))?;
    let gates: GateConfig = match &a.gates {
        None => GateConfig::default(),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .into_diagnostic()
                .wrap_err_with(|| format!("cannot read {}", p.display()))?;
            serde_json::from_str(&text)
                .into_diagnostic()
                .wrap_err_with(|| format!("{} is not a gate configuration", p.display()))?
        }
    };
    let key = match &a.key {
        None => None,
        Some(p) => Some(pf_bundle::keys::read_signing_key(p).into_diagnostic()?),
    };
    let bundle = pf_bundle::open_file(&bundle_path, &Limits::default())
        .into_diagnostic()
        .wrap_err_with(|| format!("{} is not a valid bundle", bundle_path.display()))?;
    let plan_limits = PlanLimits::default();
    let mut engine = engine(&a.checkers)?;
    let report: RunReport = if let Some(url) = &a.queue {
        verify_bundle_distributed(
            url,
            &bundle,
            &plan_limits,
            &gates,
            Duration::from_secs(a.queue_wait),
        )
        .into_diagnostic()?
    } else {
        if !a.no_cache
            && let Some(dir) = a.cache.clone().or_else(default_cache_dir)
        {
            engine = engine.with_cache(Arc::new(FileCache::new(dir)));
        }
        let tty = std::io::stderr().is_terminal();
        let progress = move |p: Progress<'_>| {
            if let Progress::Finished {
                result,
                done,
                total,
            } = p
            {
                let line = format!(
                    "[{done}/{total}] {} {} ({} ms{})",
                    result.name,
                    result.verdict.status(),
                    result.duration_ms,
                    if result.cached { ", cached" } else { "" }
                );
                if tty {
                    eprint!("\r\x1b[2K{line}");
                    if done == total {
                        eprintln!();
                    }
                } else {
                    eprintln!("{line}");
                }
            }
        };
        pf_verify::verify_bundle(&bundle, &engine, &plan_limits, &gates, &progress)
            .into_diagnostic()?
    };
    match a.format {
        Format::Text => print!("{}", report.to_text()),
        Format::Json => println!("{}", report.to_json()),
        Format::Junit => print!("{}", report.to_junit()),
        Format::Sarif => println!("{}", report.to_sarif()),
    }
    if a.metrics {
        eprint!("{}", engine.metrics().render());
    }
    if let Some(key) = key {
        let out = a.out.unwrap_or_else(|| attestation_path(&bundle_path));
        let env = pf_verify::sign_attestation(&report, &key);
        super::bundle::write_atomic(&out, env.to_json().as_bytes())?;
        eprintln!("attestation written to {}", out.display());
    }
    Ok(if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::EXIT_INVALID)
    })
}

fn worker(
    db: &str,
    c: &CheckerArgs,
    lease: u64,
    exit_when_idle: Option<u64>,
) -> miette::Result<ExitCode> {
    let engine = Arc::new(engine(c)?);
    let opts = WorkerOptions {
        worker_id: format!(
            "{}-{}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into()),
            std::process::id()
        ),
        lease: Duration::from_secs(lease.max(1)),
        poll: Duration::from_millis(500),
        exit_when_idle: exit_when_idle.map(Duration::from_secs),
        stop: CancelToken::new(),
    };
    let stats = run_worker_blocking(db, engine, &opts).into_diagnostic()?;
    eprintln!(
        "worker {}: {} checked, {} cache hits, {} lost leases, {} given up",
        opts.worker_id, stats.checked, stats.cache_hits, stats.lost_leases, stats.abandoned
    );
    Ok(ExitCode::SUCCESS)
}

fn attestation(bundle: &Path, trust: &Path, att: Option<PathBuf>) -> miette::Result<ExitCode> {
    let archive = pf_bundle::open::read_archive(bundle, &Limits::default())
        .into_diagnostic()
        .wrap_err_with(|| format!("cannot read {}", bundle.display()))?;
    let digest = pf_bundle::Sha256Digest::of(&archive);
    let att = att.unwrap_or_else(|| attestation_path(bundle));
    match check_attestation(&digest, trust, &att)? {
        Ok(v) => {
            println!(
                "attestation OK: {} obligations, signed by {}",
                v.predicate.obligations.len(),
                v.signers.join(", ")
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(reason) => {
            eprintln!("attestation rejected: {reason}");
            Ok(ExitCode::from(EXIT_REJECTED))
        }
    }
}

/// Checks the verification attestation in `file` for the bundle `digest` against the verifier
/// trust policy `trust`. The outer error is an input problem (unreadable files, bad policy); the
/// inner one is a rejected attestation.
pub fn check_attestation(
    digest: &pf_bundle::Sha256Digest,
    trust: &Path,
    file: &Path,
) -> miette::Result<Result<pf_verify::VerifiedAttestation, String>> {
    let policy = pf_bundle::TrustPolicy::from_file(trust)
        .into_diagnostic()
        .wrap_err_with(|| format!("verifier trust policy {}", trust.display()))?;
    let bytes = std::fs::read(file)
        .into_diagnostic()
        .wrap_err_with(|| format!("cannot read {}", file.display()))?;
    let env = match pf_bundle::Envelope::from_json(&bytes) {
        Ok(e) => e,
        Err(e) => return Ok(Err(e.to_string())),
    };
    Ok(pf_verify::verify_attestation(&env, &policy, digest).map_err(|e| e.to_string()))
}
