//! `pf key`: Ed25519 signing keys (PKCS#8 private PEM, SPKI public PEM).

use std::path::PathBuf;
use std::process::ExitCode;

use miette::WrapErr;

use super::bundle::flat;

/// Manage signing keys.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: KeyCommand,
}

#[derive(clap::Subcommand)]
enum KeyCommand {
    /// Generate an Ed25519 key pair: NAME.key.pem (PKCS#8, mode 0600) and NAME.pub.pem (SPKI).
    Gen {
        /// Directory to write the key files into (created if missing).
        #[arg(long, default_value = ".")]
        out_dir: PathBuf,
        /// Base name of the key files.
        #[arg(long)]
        name: String,
    },
}

/// Runs `pf key`.
pub fn run(args: Args) -> miette::Result<ExitCode> {
    match args.command {
        KeyCommand::Gen { out_dir, name } => {
            let files = pf_bundle::keys::write_key_pair(&out_dir, &name)
                .map_err(flat)
                .wrap_err("cannot generate key pair")?;
            println!("private key: {} (keep secret)", files.private.display());
            println!("public key:  {}", files.public.display());
            println!("key id:      {}", files.key_id);
            Ok(ExitCode::SUCCESS)
        }
    }
}
