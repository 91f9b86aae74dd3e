//! `pf admission serve|certs|crds` and `pf operator`: thin glue over `pf-admission`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use miette::{IntoDiagnostic, WrapErr};
use pf_admission::certs::{WebhookTarget, deployment_manifest, generate};
use pf_admission::server::{ServeOptions, run_blocking, tls_config};
use pf_admission::{
    Admission, BundleStore, DsseAttestationCheck, GuardConfig, JsonlLog,
    VERIFICATION_PREDICATE_TYPE, Verifier,
};
use pf_bundle::{Limits, TrustPolicy};

use super::bundle::flat;

/// Kubernetes admission webhooks for agents.
#[derive(clap::Subcommand)]
pub enum Args {
    /// Serve the validating (/validate) and mutating (/mutate) webhooks over HTTPS.
    Serve(ServeArgs),
    /// Write a self-signed CA, a serving certificate and the webhook configurations.
    Certs(CertsArgs),
    /// Print the AgentDeployment CustomResourceDefinition as YAML.
    Crds,
}

/// Where bundles and trust come from, shared by the webhook and the operator.
#[derive(clap::Args)]
pub struct VerifyArgs {
    /// Bundle store directory (`<sha256>.pfb`, `.pfb.dsse.json`, `.attestation.json`).
    #[arg(long)]
    store: PathBuf,
    /// Trust policy for bundle signatures: JSON (`threshold`, `keys`) or a trusted spec YAML.
    #[arg(long)]
    trust_policy: PathBuf,
    /// Trust policy (JSON) of the verification attestors.
    #[arg(long)]
    attestors: PathBuf,
    /// Guard sidecar image, pinned by digest.
    #[arg(long, env = "PF_GUARD_IMAGE")]
    guard_image: String,
    /// Guard sidecar CPU request/limit.
    #[arg(long, default_value = "200m")]
    guard_cpu: String,
    /// Guard sidecar memory request/limit.
    #[arg(long, default_value = "128Mi")]
    guard_memory: String,
}

/// `pf admission serve` options.
#[derive(clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    verify: VerifyArgs,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:8443")]
    listen: SocketAddr,
    /// Serving certificate chain (PEM).
    #[arg(long)]
    tls_cert: PathBuf,
    /// Serving private key (PEM).
    #[arg(long)]
    tls_key: PathBuf,
    /// Decision audit log (JSON Lines, appended and fsynced).
    #[arg(long)]
    audit_log: PathBuf,
    /// Per-request timeout in milliseconds (TLS handshake, headers, body, decision).
    #[arg(long, default_value_t = 10_000)]
    request_timeout_ms: u64,
}

/// `pf admission certs` options.
#[derive(clap::Args)]
pub struct CertsArgs {
    /// Output directory.
    #[arg(long, default_value = "pf-admission-certs")]
    out: PathBuf,
    /// Webhook Service name.
    #[arg(long, default_value = "pf-admission")]
    service: String,
    /// Namespace the webhook runs in (excluded from admission).
    #[arg(long, default_value = "pf-system")]
    namespace: String,
    /// Extra DNS names or IPs for the serving certificate.
    #[arg(long = "extra-name")]
    extra_names: Vec<String>,
    /// Webhook timeout (seconds, 1-30).
    #[arg(long, default_value_t = 10)]
    timeout: u32,
    /// Image of `pf` used in the generated deployment manifest.
    #[arg(long, default_value = "ghcr.io/provability-fabric/pf:latest")]
    image: String,
}

/// `pf operator` options.
#[derive(clap::Args)]
pub struct OperatorArgs {
    #[command(flatten)]
    verify: VerifyArgs,
    /// Re-check every AgentDeployment this often (seconds).
    #[arg(long, default_value_t = 300)]
    recheck_secs: u64,
}

fn verifier(v: &VerifyArgs) -> miette::Result<(Arc<Verifier>, GuardConfig)> {
    let policy = super::trust::load(&v.trust_policy)?;
    let attestors = TrustPolicy::from_file(&v.attestors)
        .map_err(flat)
        .wrap_err_with(|| format!("attestor policy {}", v.attestors.display()))?;
    if !pf_admission::policy::image_pinned(&v.guard_image) {
        miette::bail!(
            "--guard-image {:?} must be pinned by digest (name@sha256:<hex>)",
            v.guard_image
        );
    }
    if !v.store.is_dir() {
        miette::bail!("bundle store {} is not a directory", v.store.display());
    }
    let verifier = Verifier::new(
        BundleStore::new(&v.store),
        policy,
        Arc::new(DsseAttestationCheck::new(
            attestors,
            VERIFICATION_PREDICATE_TYPE,
        )),
        Limits::default(),
    );
    let guard = GuardConfig {
        image: v.guard_image.clone(),
        cpu: v.guard_cpu.clone(),
        memory: v.guard_memory.clone(),
    };
    Ok((Arc::new(verifier), guard))
}

fn read(path: &Path) -> miette::Result<Vec<u8>> {
    std::fs::read(path)
        .into_diagnostic()
        .wrap_err_with(|| format!("reading {}", path.display()))
}

/// Runs `pf admission ...`.
pub fn run(args: Args) -> miette::Result<ExitCode> {
    match args {
        Args::Crds => {
            print!("{}", pf_admission::crd::crd_yaml().map_err(flat)?);
        }
        Args::Certs(a) => {
            let target = WebhookTarget {
                service: a.service,
                namespace: a.namespace,
                extra_names: a.extra_names,
                timeout_seconds: a.timeout,
            };
            let g = generate(&target).map_err(flat)?;
            let manifest = deployment_manifest(&target, &a.image, &g).map_err(flat)?;
            std::fs::create_dir_all(&a.out)
                .into_diagnostic()
                .wrap_err_with(|| format!("creating {}", a.out.display()))?;
            for (name, text) in [
                ("ca.crt", &g.ca_pem),
                ("tls.crt", &g.cert_pem),
                ("tls.key", &g.key_pem),
                ("webhooks.yaml", &g.webhooks_yaml),
                ("deploy.yaml", &manifest),
            ] {
                let p = a.out.join(name);
                std::fs::write(&p, text)
                    .into_diagnostic()
                    .wrap_err_with(|| format!("writing {}", p.display()))?;
                println!("wrote {}", p.display());
            }
        }
        Args::Serve(a) => {
            let (verifier, guard) = verifier(&a.verify)?;
            let tls = tls_config(&read(&a.tls_cert)?, &read(&a.tls_key)?).map_err(flat)?;
            let log = JsonlLog::open(&a.audit_log).map_err(flat)?;
            let admission = Arc::new(Admission::new(verifier, guard, Arc::new(log)));
            let opts = ServeOptions {
                request_timeout: Duration::from_millis(a.request_timeout_ms.max(1)),
                ..ServeOptions::default()
            };
            eprintln!(
                "pf admission: serving https://{}/validate and /mutate",
                a.listen
            );
            run_blocking(a.listen, tls, admission, opts).map_err(flat)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `pf operator`.
pub fn run_operator(args: OperatorArgs) -> miette::Result<ExitCode> {
    let (verifier, guard) = verifier(&args.verify)?;
    pf_admission::operator::run_blocking(
        verifier,
        guard,
        Duration::from_secs(args.recheck_secs.max(1)),
    )
    .map_err(flat)?;
    Ok(ExitCode::SUCCESS)
}
