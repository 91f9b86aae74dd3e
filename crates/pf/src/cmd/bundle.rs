//! `pf bundle`: inspect, sign and verify `.pfb` bundles (the work is in `pf-bundle`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use miette::WrapErr;
use pf_bundle::dsse::MAX_ENVELOPE_SIZE;
use pf_bundle::{Envelope, Limits};

/// Renders a library error as one report line: the `pf-bundle` messages already include their
/// cause, so following the `source()` chain as well would print it twice.
pub(crate) fn flat<E: std::fmt::Display>(e: E) -> miette::Report {
    miette::miette!("{e}")
}

/// Exit code when a bundle fails verification (bad signature, digest or policy).
pub const EXIT_REJECTED: u8 = 1;

/// Inspect, sign and verify agent bundles.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: BundleCommand,
}

#[derive(clap::Subcommand)]
enum BundleCommand {
    /// Pack a spec and every file it references into a deterministic `NAME-VERSION.pfb`.
    Build {
        /// Directory holding the spec (paths in the spec are relative to it).
        dir: PathBuf,
        /// Spec file inside DIR.
        #[arg(long, default_value = "agent.yaml")]
        spec: PathBuf,
        /// Output file [default: DIR/NAME-VERSION.pfb].
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Check a bundle and list its files with sizes and sha256 digests.
    Inspect {
        /// The `.pfb` file.
        bundle: PathBuf,
        /// Print the manifest and digests as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Sign a bundle: writes (or adds a signature to) a DSSE envelope with an in-toto statement.
    Sign {
        /// The `.pfb` file.
        bundle: PathBuf,
        /// PKCS#8 private key PEM.
        #[arg(long)]
        key: PathBuf,
        /// Envelope file [default: BUNDLE.dsse.json]; if it exists, the signature is added to it.
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Verify a bundle's digests and signatures against a k-of-n trust policy.
    Verify {
        /// The `.pfb` file.
        bundle: PathBuf,
        /// Trust policy: JSON (`threshold` and `keys`), or your own copy of the agent spec (YAML),
        /// whose `signers` section is used.
        #[arg(long)]
        trust: PathBuf,
        /// Envelope file [default: BUNDLE.dsse.json].
        #[arg(long)]
        sig: Option<PathBuf>,
        /// Also require a passing verification attestation (`pf verify --key`) signed k-of-n by
        /// this trust policy (JSON) of verifiers.
        #[arg(long)]
        attestors: Option<PathBuf>,
        /// Verification attestation [default: BUNDLE.verify.dsse.json]; needs --attestors.
        #[arg(long, requires = "attestors")]
        attestation: Option<PathBuf>,
    },
}

/// Runs `pf bundle`.
pub fn run(args: Args) -> miette::Result<ExitCode> {
    let limits = Limits::default();
    match args.command {
        BundleCommand::Build { dir, spec, out } => {
            let built = build(&dir, &spec, limits)?;
            let out = out.unwrap_or_else(|| dir.join(built.file_name()));
            built
                .write(&out)
                .map_err(flat)
                .wrap_err_with(|| format!("cannot write {}", out.display()))?;
            println!(
                "built {} sha256:{} ({} files, {} bytes)",
                out.display(),
                built.digest,
                built.manifest.files.len() + 1,
                built.bytes.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        BundleCommand::Inspect { bundle, json } => inspect(&bundle, json, &limits),
        BundleCommand::Sign { bundle, key, out } => sign(&bundle, &key, out, &limits),
        BundleCommand::Verify {
            bundle,
            trust,
            sig,
            attestors,
            attestation,
        } => {
            let attest = attestors.map(|a| (a, attestation));
            verify(&bundle, &trust, sig, attest, &limits)
        }
    }
}

/// Lints the spec in `dir` and packs it with every file it references.
pub(crate) fn build(
    dir: &Path,
    spec: &Path,
    limits: Limits,
) -> miette::Result<pf_bundle::BuiltBundle> {
    let spec_path = dir.join(spec);
    let loaded = pf_spec::load(&spec_path)?;
    let files = loaded.spec.referenced_files();
    pf_bundle::build_from_dir(
        &loaded.base_dir,
        &spec_path,
        &files,
        &loaded.spec.name,
        &loaded.spec.version,
        limits,
    )
    .map_err(flat)
    .wrap_err_with(|| format!("cannot build a bundle from {}", dir.display()))
}

fn default_envelope_path(bundle: &Path) -> PathBuf {
    let mut s = bundle.as_os_str().to_owned();
    s.push(".dsse.json");
    PathBuf::from(s)
}

fn inspect(path: &Path, json: bool, limits: &Limits) -> miette::Result<ExitCode> {
    let b = pf_bundle::open_file(path, limits)
        .map_err(flat)
        .wrap_err_with(|| format!("{} is not a valid bundle", path.display()))?;
    if json {
        let v = serde_json::json!({
            "digest": { "sha256": b.digest.to_hex() },
            "manifestDigest": { "sha256": b.manifest_digest.to_hex() },
            "manifest": b.manifest,
        });
        println!("{}", serde_json::to_string_pretty(&v).map_err(flat)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("bundle    {}", path.display());
    println!(
        "spec      {} {}",
        b.manifest.spec.name, b.manifest.spec.version
    );
    println!("digest    sha256:{}", b.digest);
    println!("manifest  sha256:{}", b.manifest_digest);
    println!(
        "files     {} ({} bytes)",
        b.manifest.files.len(),
        b.manifest.total_size()
    );
    for f in &b.manifest.files {
        println!("  {}  {:>10}  {}", f.sha256, f.size, f.path);
    }
    Ok(ExitCode::SUCCESS)
}

fn read_envelope(path: &Path) -> miette::Result<Envelope> {
    let meta = fs::metadata(path)
        .map_err(flat)
        .wrap_err_with(|| format!("cannot read {}", path.display()))?;
    if meta.len() > MAX_ENVELOPE_SIZE as u64 {
        miette::bail!(
            "{} is {} bytes, larger than any envelope ({MAX_ENVELOPE_SIZE})",
            path.display(),
            meta.len()
        );
    }
    let bytes = fs::read(path)
        .map_err(flat)
        .wrap_err_with(|| format!("cannot read {}", path.display()))?;
    Envelope::from_json(&bytes)
        .map_err(flat)
        .wrap_err_with(|| format!("{} is not a DSSE envelope", path.display()))
}

fn sign(
    bundle: &Path,
    key: &Path,
    out: Option<PathBuf>,
    limits: &Limits,
) -> miette::Result<ExitCode> {
    let key = pf_bundle::keys::read_signing_key(key).map_err(flat)?;
    let archive = pf_bundle::open::read_archive(bundle, limits).map_err(flat)?;
    let out = out.unwrap_or_else(|| default_envelope_path(bundle));
    let existing = if out.exists() {
        Some(read_envelope(&out)?)
    } else {
        None
    };
    let env = pf_bundle::sign_bundle(&archive, &key, existing, limits)
        .map_err(flat)
        .wrap_err_with(|| format!("cannot sign {}", bundle.display()))?;
    write_atomic(&out, env.to_json().as_bytes())?;
    println!(
        "signed {} with key {} ({} signature(s) in {})",
        bundle.display(),
        pf_bundle::keys::key_id(&key.verifying_key()),
        env.signatures.len(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Writes an envelope crash-safely (pf-bundle's `write_atomic`), newline-terminated.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> miette::Result<()> {
    let mut text = bytes.to_vec();
    text.push(b'\n');
    pf_bundle::write_atomic(path, &text)
        .map_err(flat)
        .wrap_err_with(|| format!("cannot write {}", path.display()))
}

fn verify(
    bundle: &Path,
    trust: &Path,
    sig: Option<PathBuf>,
    attest: Option<(PathBuf, Option<PathBuf>)>,
    limits: &Limits,
) -> miette::Result<ExitCode> {
    let policy = super::trust::load(trust)?;
    let archive = pf_bundle::open::read_archive(bundle, limits).map_err(flat)?;
    let env = read_envelope(&sig.unwrap_or_else(|| default_envelope_path(bundle)))?;
    let verified = pf_bundle::verify_bundle(&archive, &env, &policy, limits);
    let verified = match (verified, attest) {
        (Ok(v), Some((attestors, file))) => {
            let file = file.unwrap_or_else(|| super::verify::attestation_path(bundle));
            match super::verify::check_attestation(&v.bundle.digest, &attestors, &file)? {
                Ok(a) => {
                    println!(
                        "verification attestation {}: {} obligations passed, signed by {}",
                        file.display(),
                        a.predicate.obligations.len(),
                        a.signers.join(", ")
                    );
                    Ok(v)
                }
                Err(reason) => {
                    eprintln!("REJECTED {}: {reason}", bundle.display());
                    return Ok(ExitCode::from(EXIT_REJECTED));
                }
            }
        }
        (other, _) => other,
    };
    match verified {
        Ok(v) => {
            println!(
                "OK {} sha256:{} ({} {}), signed by {} of {} required: {}",
                bundle.display(),
                v.bundle.digest,
                v.bundle.manifest.spec.name,
                v.bundle.manifest.spec.version,
                v.signers.len(),
                policy.threshold(),
                v.signers.join(", ")
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            let report = flat(e).wrap_err(format!("REJECTED {}", bundle.display()));
            eprintln!("{report:?}");
            Ok(ExitCode::from(EXIT_REJECTED))
        }
    }
}
