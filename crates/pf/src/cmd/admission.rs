//! `pf admission serve|certs|crds` and `pf operator`: thin glue over `pf-admission`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use miette::{IntoDiagnostic, WrapErr};
use pf_admission::audit::AuditError;
use pf_admission::certs::{WebhookTarget, deployment_manifest, generate};
use pf_admission::server::{ServeOptions, run_blocking, tls_config};
use pf_admission::{
    Admission, AttestationCheck, BundleStore, DecisionLog, DecisionRecord, GuardConfig, JsonlLog,
    Verifier,
};
use pf_bundle::{Limits, Sha256Digest, TrustPolicy};

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
    /// The agent's Streamable HTTP MCP tool server, as the guard sidecar reaches it (the agent
    /// then talks MCP to the guard at http://127.0.0.1:8808/mcp).
    #[arg(long, default_value = "http://127.0.0.1:8080/mcp")]
    guard_upstream: String,
    /// Re-verify signed bundles that have no stored attestation with the native checkers, and
    /// sign the result with this key (PKCS#8 PEM; its public key must be in --attestors).
    #[arg(long)]
    reverify_key: Option<PathBuf>,
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
    #[arg(long, required_unless_present = "ledger", conflicts_with = "ledger")]
    audit_log: Option<PathBuf>,
    /// Append every decision to this transparency-ledger directory (`pf ledger init`) instead.
    #[arg(long)]
    ledger: Option<PathBuf>,
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
    let reverify = match &v.reverify_key {
        None => None,
        Some(path) => {
            let key = pf_bundle::keys::read_signing_key(path).map_err(flat)?;
            let id = pf_bundle::keys::key_id(&key.verifying_key());
            if attestors.key_by_id(&id).is_none() || attestors.threshold() > 1 {
                miette::bail!(
                    "--reverify-key {} (key id {id}) must be one of the attestors, with an \
                     attestor threshold of 1, or its attestations would never be accepted",
                    path.display()
                );
            }
            Some(Arc::new(EngineReverify {
                engine: pf_verify::Engine::new(
                    super::verify::native_checkers(),
                    pf_verify::EngineConfig::default(),
                ),
                key,
            }))
        }
    };
    let mut verifier = Verifier::new(
        BundleStore::new(&v.store),
        policy,
        Arc::new(EngineAttestationCheck { policy: attestors }),
        Limits::default(),
    );
    if let Some(r) = reverify {
        verifier = verifier.with_reverify(r);
    }
    let guard = GuardConfig {
        image: v.guard_image.clone(),
        cpu: v.guard_cpu.clone(),
        memory: v.guard_memory.clone(),
        upstream: v.guard_upstream.clone(),
    };
    Ok((Arc::new(verifier), guard))
}

/// Accepts a verification attestation exactly when `pf verify attestation` would: DSSE signed
/// k-of-n by the attestors, an in-toto statement about this bundle digest alone, every gate passed.
struct EngineAttestationCheck {
    policy: TrustPolicy,
}

impl AttestationCheck for EngineAttestationCheck {
    fn check(&self, bundle_digest: &Sha256Digest, attestation: &[u8]) -> Result<(), String> {
        let env = pf_admission::attest::read_envelope(attestation)?;
        pf_verify::verify_attestation(&env, &self.policy, bundle_digest)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Checks a bundle's obligations with the native checkers and default gates, and signs the
/// attestation with the webhook's key.
struct EngineReverify {
    engine: pf_verify::Engine,
    key: pf_bundle::keys::SigningKey,
}

impl pf_admission::Reverify for EngineReverify {
    fn reverify(&self, bundle: &pf_bundle::OpenedBundle) -> Result<Vec<u8>, String> {
        let report = pf_verify::verify_bundle(
            bundle,
            &self.engine,
            &pf_verify::PlanLimits::default(),
            &pf_verify::GateConfig::default(),
            &|_| {},
        )
        .map_err(|e| e.to_string())?;
        if !report.passed {
            return Err(report.gate_failures().join("; "));
        }
        Ok(pf_verify::sign_attestation(&report, &self.key)
            .to_json()
            .into_bytes())
    }
}

/// Admission decisions as transparency-ledger entries (RFC 8785 JSON), durable before the
/// webhook answers.
struct LedgerLog(pf_ledger::ledger::Ledger);

impl DecisionLog for LedgerLog {
    fn append(&self, record: &DecisionRecord) -> Result<u64, AuditError> {
        let value = serde_json::to_value(record).map_err(|e| AuditError::Backend(e.to_string()))?;
        let entry = pf_ledger::record::canonicalize(&value)
            .map_err(|e| AuditError::Backend(e.to_string()))?;
        self.0
            .append(entry)
            .map_err(|e| AuditError::Backend(e.to_string()))
    }
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
            let log: Arc<dyn DecisionLog> = match (&a.ledger, &a.audit_log) {
                (Some(dir), _) => Arc::new(LedgerLog(
                    pf_ledger::dir::open(dir, None)
                        .map_err(|e| miette::miette!("{e}"))
                        .wrap_err_with(|| format!("opening ledger {}", dir.display()))?,
                )),
                (None, Some(file)) => Arc::new(JsonlLog::open(file).map_err(flat)?),
                (None, None) => miette::bail!("give --audit-log FILE or --ledger DIR"),
            };
            let admission = Arc::new(Admission::new(verifier, guard, log));
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

#[cfg(test)]
mod tests {
    use super::*;
    use pf_verify::{GateResult, RunReport};

    fn report(digest: Sha256Digest, passed: bool) -> RunReport {
        RunReport {
            bundle_digest: digest,
            spec_name: "agent".into(),
            spec_version: "1.0.0".into(),
            results: Vec::new(),
            gates: vec![GateResult {
                gate: "all_proved".into(),
                passed,
                failures: if passed {
                    vec![]
                } else {
                    vec!["x: refuted".into()]
                },
            }],
            passed,
        }
    }

    #[test]
    fn attestations_are_accepted_only_for_a_passed_run_of_this_bundle_by_a_trusted_key() {
        let key = pf_bundle::keys::generate();
        let policy =
            TrustPolicy::new(1, vec![("verifier".into(), key.verifying_key())]).expect("policy");
        let check = EngineAttestationCheck { policy };
        let digest = Sha256Digest::of(b"bundle");
        let att = |r: &RunReport, k| pf_verify::sign_attestation(r, k).to_json().into_bytes();
        assert_eq!(
            check.check(&digest, &att(&report(digest, true), &key)),
            Ok(())
        );
        let other = Sha256Digest::of(b"other bundle");
        let e = check
            .check(&other, &att(&report(digest, true), &key))
            .expect_err("wrong bundle");
        assert!(e.contains("not this bundle"), "{e}");
        // A signed record of a failed run is not a verification (the bare DSSE check would
        // have accepted it: right signer, right subject, right predicate type).
        let e = check
            .check(&digest, &att(&report(digest, false), &key))
            .expect_err("failed run");
        assert!(e.contains("failed verification"), "{e}");
        let stranger = pf_bundle::keys::generate();
        assert!(
            check
                .check(&digest, &att(&report(digest, true), &stranger))
                .is_err()
        );
        assert!(check.check(&digest, b"{").is_err());
        let huge = vec![b' '; pf_admission::attest::MAX_ATTESTATION_SIZE + 1];
        assert!(
            check
                .check(&digest, &huge)
                .expect_err("oversize")
                .contains("limit")
        );
    }

    #[test]
    fn reverify_proves_the_example_and_signs_what_the_check_accepts() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/coding-agent");
        let built = super::super::bundle::build(&dir, Path::new("agent.yaml"), Limits::default())
            .expect("example builds");
        let opened = pf_bundle::open(&built.bytes, &Limits::default()).expect("opens");
        let key = pf_bundle::keys::generate();
        let policy =
            TrustPolicy::new(1, vec![("webhook".into(), key.verifying_key())]).expect("policy");
        let backend = EngineReverify {
            engine: pf_verify::Engine::new(
                super::super::verify::native_checkers(),
                pf_verify::EngineConfig::default(),
            ),
            key,
        };
        let att = pf_admission::Reverify::reverify(&backend, &opened).expect("proved");
        let check = EngineAttestationCheck { policy };
        assert_eq!(check.check(&opened.digest, &att), Ok(()));
    }

    #[test]
    fn decisions_land_in_the_ledger_and_survive_reopening() {
        let d = tempfile::tempdir().expect("tmp");
        pf_ledger::dir::init(d.path(), "test.example/admission").expect("init");
        let record = DecisionRecord {
            time_unix: 1,
            uid: "705ab4f5-6393-11e8-b7cc-42010a800002".into(),
            webhook: "validate".into(),
            kind: "Pod".into(),
            namespace: "agents".into(),
            name: "support".into(),
            operation: "CREATE".into(),
            dry_run: false,
            allowed: false,
            bundle_digest: Some(format!("sha256:{}", "a".repeat(64))),
            reasons: vec!["guard sidecar missing".into()],
        };
        {
            let log = LedgerLog(pf_ledger::dir::open(d.path(), None).expect("open"));
            assert_eq!(log.append(&record).expect("append"), 0);
            assert_eq!(log.append(&record).expect("append"), 1);
        }
        let ledger = pf_ledger::dir::open_read_only(d.path()).expect("reopen");
        assert_eq!(ledger.size(), 2);
        let entry: DecisionRecord =
            serde_json::from_slice(&ledger.entry(1).expect("entry")).expect("record");
        assert_eq!(entry, record);
    }
}
