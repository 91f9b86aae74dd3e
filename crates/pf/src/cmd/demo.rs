//! `pf demo`: the main job end to end on embedded defaults, over the example agents.
//!
//! For each example: lint the spec, build its bundle twice (must be byte-identical), sign it with
//! the example keys up to the spec's threshold, verify it against the spec's trust policy, show
//! that tampering and a missing signature are both rejected, then discharge every proof
//! obligation with the native checkers, pass the quality gates and sign (and check) the
//! verification attestation.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use miette::{IntoDiagnostic, WrapErr};
use pf_bundle::{Limits, sign_bundle, verify_bundle};

use super::bundle::{build, flat};

/// Run the end-to-end demo on the example agents.
#[derive(clap::Args)]
pub struct Args {
    /// Directory holding example agents (each a folder with `agent.yaml`).
    #[arg(long)]
    examples: Option<PathBuf>,
    /// Where to write bundles and envelopes [default: a new temporary directory].
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Runs the demo; fails if any step does not behave as it must.
pub fn run(args: Args) -> miette::Result<ExitCode> {
    let examples = match args.examples {
        Some(dir) => dir,
        None => default_examples()?,
    };
    let out = match args.out {
        Some(dir) => dir,
        None => std::env::temp_dir().join(format!("pf-demo-{}", std::process::id())),
    };
    std::fs::create_dir_all(&out)
        .into_diagnostic()
        .wrap_err_with(|| format!("creating {}", out.display()))?;
    let mut agents: Vec<PathBuf> = std::fs::read_dir(&examples)
        .into_diagnostic()
        .wrap_err_with(|| format!("reading {}", examples.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("agent.yaml").is_file())
        .collect();
    agents.sort();
    if agents.is_empty() {
        miette::bail!(
            "no example agents (folders with agent.yaml) in {}",
            examples.display()
        );
    }
    println!(
        "Provability Fabric demo: {} agents from {}, output in {}\n",
        agents.len(),
        examples.display(),
        out.display()
    );
    for dir in &agents {
        demo_agent(dir, &out)?;
    }
    println!("\nall steps passed");
    Ok(ExitCode::SUCCESS)
}

fn default_examples() -> miette::Result<PathBuf> {
    let candidates = [
        PathBuf::from("examples"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples"),
    ];
    candidates
        .into_iter()
        .find(|p| p.is_dir())
        .ok_or_else(|| miette::miette!("no examples/ directory found; pass --examples DIR"))
}

fn step(name: &str, detail: impl std::fmt::Display) {
    println!("  {name:<10} {detail}");
}

fn demo_agent(dir: &Path, out: &Path) -> miette::Result<()> {
    let limits = Limits::default();
    let loaded = pf_spec::load(&dir.join("agent.yaml"))?;
    let spec = &loaded.spec;
    println!(
        "{} {} ({})",
        spec.name.as_str(),
        spec.version.as_str(),
        dir.display()
    );
    step(
        "lint",
        format!(
            "ok: {} capabilities, {} policies, {} proofs, {} warnings; spec {}",
            spec.capabilities.len(),
            spec.policies.len(),
            spec.proofs.len(),
            loaded.warnings.len(),
            pf_spec::digest(spec)
        ),
    );

    let built = build(dir, Path::new("agent.yaml"), limits)?;
    let again = build(dir, Path::new("agent.yaml"), limits)?;
    if built.bytes != again.bytes {
        miette::bail!(
            "two builds of {} differ: the bundle is not reproducible",
            dir.display()
        );
    }
    let bundle_path = out.join(built.file_name());
    built.write(&bundle_path).into_diagnostic()?;
    step(
        "bundle",
        format!(
            "{} sha256:{} ({} bytes, reproducible)",
            bundle_path.display(),
            built.digest,
            built.bytes.len()
        ),
    );

    let policy = super::trust::from_spec(&loaded)?;
    let signers = spec
        .signers
        .as_ref()
        .ok_or_else(|| miette::miette!("example {} has no signers", dir.display()))?;
    let threshold = *signers.threshold as usize;
    let mut envelope = None;
    let mut short_envelope = None;
    for key in signers.keys.iter().take(threshold) {
        let private = private_key_path(&loaded.base_dir, &key.public_key);
        let signing = pf_bundle::keys::read_signing_key(&private).map_err(flat)?;
        if envelope.is_some() {
            short_envelope.clone_from(&envelope);
        }
        envelope = Some(sign_bundle(&built.bytes, &signing, envelope, &limits).map_err(flat)?);
    }
    let envelope = envelope.ok_or_else(|| miette::miette!("no signer keys"))?;
    let env_path = out.join(format!("{}.dsse.json", built.file_name()));
    super::bundle::write_atomic(&env_path, envelope.to_json().as_bytes())?;
    step(
        "sign",
        format!(
            "{} of {} keys -> {}",
            envelope.signatures.len(),
            signers.keys.len(),
            env_path.display()
        ),
    );

    let verified = verify_bundle(&built.bytes, &envelope, &policy, &limits)
        .map_err(flat)
        .wrap_err("verification of the freshly signed bundle failed")?;
    step(
        "verify",
        format!(
            "ok: signed by {} (threshold {threshold})",
            verified.signers.join(", ")
        ),
    );

    let mut tampered = built.bytes.clone();
    let mid = tampered.len() / 2;
    tampered[mid] ^= 0x01;
    let tamper = verify_bundle(&tampered, &envelope, &policy, &limits);
    if tamper.is_ok() {
        miette::bail!("a bundle with a flipped byte verified: tamper detection is broken");
    }
    let mut rejected = vec!["flipped byte".to_string()];
    if let Some(short) = short_envelope {
        if verify_bundle(&built.bytes, &short, &policy, &limits).is_ok() {
            miette::bail!(
                "{} signature(s) satisfied a threshold of {threshold}",
                short.signatures.len()
            );
        }
        rejected.push(format!(
            "{} of {threshold} signatures",
            short.signatures.len()
        ));
    }
    step(
        "tamper",
        format!("rejected as it must be: {}", rejected.join("; ")),
    );
    let first_key = signers
        .keys
        .first()
        .map(|k| private_key_path(&loaded.base_dir, &k.public_key))
        .ok_or_else(|| miette::miette!("no signer keys"))?;
    prove(&verified.bundle, &first_key, out, &built.file_name())?;
    println!();
    Ok(())
}

/// Checks every obligation, gates, signs the attestation (with an example key standing in for
/// the verifier's) and verifies it as `pf bundle verify --attestors` would.
fn prove(
    opened: &pf_bundle::OpenedBundle,
    key: &Path,
    out: &Path,
    file_name: &str,
) -> miette::Result<()> {
    let engine = pf_verify::Engine::new(
        super::verify::native_checkers(),
        pf_verify::EngineConfig::default(),
    );
    let report = pf_verify::verify_bundle(
        opened,
        &engine,
        &pf_verify::PlanLimits::default(),
        &pf_verify::GateConfig::default(),
        &|_| {},
    )
    .into_diagnostic()?;
    for r in &report.results {
        step(
            "prove",
            format!(
                "{} ({}, {}): {} in {} ms",
                r.name,
                r.kind,
                r.checker.as_deref().unwrap_or("-"),
                r.verdict.status(),
                r.duration_ms
            ),
        );
    }
    if !report.passed {
        miette::bail!(
            "quality gates failed: {}",
            report.gate_failures().join("; ")
        );
    }
    let signing = pf_bundle::keys::read_signing_key(key).map_err(flat)?;
    let envelope = pf_verify::sign_attestation(&report, &signing);
    let att_path = out.join(format!("{file_name}.verify.dsse.json"));
    super::bundle::write_atomic(&att_path, envelope.to_json().as_bytes())?;
    let attestors =
        pf_bundle::TrustPolicy::new(1, vec![("verifier".into(), signing.verifying_key())])
            .map_err(flat)?;
    pf_verify::verify_attestation(&envelope, &attestors, &opened.digest).into_diagnostic()?;
    step(
        "attest",
        format!(
            "{} gates passed; attestation {} verifies for this bundle",
            report.gates.len(),
            att_path.display()
        ),
    );
    Ok(())
}

/// The example private key beside a signer's public key: `x.pub.pem` -> `x.key.pem`.
fn private_key_path(base: &Path, public_key: &str) -> PathBuf {
    base.join(public_key.replace(".pub.pem", ".key.pem"))
}
