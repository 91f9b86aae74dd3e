//! `pf ledger ...`: thin glue over `pf-ledger`.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use miette::{IntoDiagnostic, WrapErr, miette};
use pf_ledger::client::{LogSource, RemoteLog, audit};
use pf_ledger::dir::{self, Overrides};
use pf_ledger::hash::leaf_hash;
use pf_ledger::note::{ALG_COSIGNATURE_V1, SignerKey, VerifierKey};

/// Exit code when verification finds the log inconsistent or damaged.
const EXIT_VERIFY_FAILED: u8 = 1;

/// Transparency ledger commands.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(clap::Subcommand)]
enum Sub {
    /// Create a ledger directory with a fresh Ed25519 log key; prints the verifier key.
    Init {
        /// Ledger directory.
        #[arg(long)]
        dir: PathBuf,
        /// Log origin (also the key name), e.g. `pf.example.com/ledger`.
        #[arg(long)]
        origin: String,
    },
    /// Append decision records (JSON Lines from FILE or stdin); prints index and openings.
    Append {
        /// Ledger directory.
        #[arg(long)]
        dir: PathBuf,
        /// JSON pointer of a sensitive field to store as a salted commitment (repeatable).
        #[arg(long)]
        sensitive: Vec<String>,
        /// Input file (JSON Lines); `-` or absent for stdin.
        file: Option<PathBuf>,
    },
    /// Serve the ledger over HTTP (POST /add, GET /checkpoint, GET /tile/...).
    Serve {
        /// Ledger directory.
        #[arg(long)]
        dir: PathBuf,
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Largest batch (overrides ledger.json).
        #[arg(long)]
        max_batch: Option<usize>,
        /// Longest batch wait in milliseconds (overrides ledger.json).
        #[arg(long)]
        max_delay_ms: Option<u64>,
    },
    /// Audit a log: checkpoint signature, consistency with the last checkpoint seen (kept in
    /// --state), inclusion of --index entries, and with --full a re-hash of everything.
    Verify {
        /// Log: a directory in tiles layout or an http:// prefix.
        #[arg(long)]
        log: String,
        /// Log verifier key (`name+hash+base64`, or @file).
        #[arg(long)]
        vkey: String,
        /// File keeping the last verified checkpoint.
        #[arg(long)]
        state: Option<PathBuf>,
        /// Entry index whose inclusion to prove (repeatable).
        #[arg(long)]
        index: Vec<u64>,
        /// Re-hash the whole log from tiles.
        #[arg(long)]
        full: bool,
    },
    /// Audit every shard of a temporally sharded log, following a shard list.
    VerifyShards {
        /// Shard list (JSON, see docs/ledger.md).
        #[arg(long)]
        shards: PathBuf,
        /// Directory keeping the last verified checkpoint of each shard.
        #[arg(long)]
        state_dir: PathBuf,
        /// Re-hash every shard from tiles.
        #[arg(long)]
        full: bool,
    },
    /// Print the last entries, verified.
    Tail {
        /// Log: a directory in tiles layout or an http:// prefix.
        #[arg(long)]
        log: String,
        /// Log verifier key (`name+hash+base64`, or @file).
        #[arg(long)]
        vkey: String,
        /// Number of entries.
        #[arg(short = 'n', default_value_t = 10)]
        count: u64,
    },
    /// Find entries by agent, bundle digest or commitment, each with its inclusion proof.
    Find {
        /// Ledger directory.
        #[arg(long)]
        dir: PathBuf,
        /// Agent identifier (`agent` field).
        #[arg(long, group = "key")]
        agent: Option<String>,
        /// Bundle digest (`bundle_digest` field).
        #[arg(long, group = "key")]
        bundle: Option<String>,
        /// Commitment (hex).
        #[arg(long, group = "key")]
        commitment: Option<String>,
    },
    /// Re-hash a local ledger from its tiles and entry bundles against its checkpoint.
    Fsck {
        /// Ledger directory.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Cosign a log's checkpoint if it is consistent with the last one this witness cosigned.
    Witness {
        /// Log: a directory in tiles layout or an http:// prefix.
        #[arg(long)]
        log: String,
        /// Log verifier key (`name+hash+base64`, or @file).
        #[arg(long)]
        vkey: String,
        /// Witness private key file (create with `pf ledger witness-key`).
        #[arg(long)]
        key: PathBuf,
        /// File keeping the last cosigned checkpoint.
        #[arg(long)]
        state: PathBuf,
    },
    /// Create a witness (cosignature, type 0x04) key; prints its verifier key.
    WitnessKey {
        /// Witness name, e.g. `witness.example.com/w1`.
        #[arg(long)]
        name: String,
        /// Private key output file (created, mode 0600).
        #[arg(long)]
        out: PathBuf,
    },
}

fn vkey(arg: &str) -> miette::Result<VerifierKey> {
    let text = match arg.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .into_diagnostic()
            .wrap_err_with(|| format!("reading {path}"))?,
        None => arg.to_string(),
    };
    VerifierKey::parse(text.trim()).map_err(|e| miette!("verifier key: {e}"))
}

fn remote(log: &str, key: &str) -> miette::Result<RemoteLog> {
    RemoteLog::open(LogSource::parse(log), &vkey(key)?).map_err(|e| miette!("{log}: {e}"))
}

/// Runs `pf ledger`.
pub fn run(args: Args) -> miette::Result<ExitCode> {
    match args.command {
        Sub::Init { dir, origin } => {
            let v = dir::init(&dir, &origin).map_err(|e| miette!("{e}"))?;
            println!("{v}");
        }
        Sub::Append {
            dir,
            sensitive,
            file,
        } => {
            let ledger = dir::open(
                &dir,
                Some(Overrides {
                    max_delay: Some(Duration::ZERO),
                    ..Default::default()
                }),
            )
            .map_err(|e| miette!("{e}"))?;
            let input: Box<dyn BufRead> = match file.as_deref() {
                None => Box::new(std::io::stdin().lock()),
                Some(p) if p.as_os_str() == "-" => Box::new(std::io::stdin().lock()),
                Some(p) => Box::new(std::io::BufReader::new(
                    std::fs::File::open(p)
                        .into_diagnostic()
                        .wrap_err_with(|| format!("opening {}", p.display()))?,
                )),
            };
            let name = file
                .as_ref()
                .map_or("<stdin>".to_string(), |p| p.display().to_string());
            let s: Vec<&str> = sensitive.iter().map(String::as_str).collect();
            let mut out = std::io::stdout().lock();
            for (n, line) in input.lines().enumerate() {
                let line = line.into_diagnostic()?;
                if line.trim().is_empty() {
                    continue;
                }
                let value = pf_ledger::record::parse_json(line.as_bytes())
                    .map_err(|e| miette!("{name}:{}: {e}", n + 1))?;
                let (index, openings) = ledger
                    .append_record(value, &s)
                    .map_err(|e| miette!("{name}:{}: {e}", n + 1))?;
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({ "index": index, "openings": openings })
                )
                .into_diagnostic()?;
            }
        }
        Sub::Serve {
            dir,
            listen,
            max_batch,
            max_delay_ms,
        } => {
            let o = Overrides {
                max_batch,
                max_delay: max_delay_ms.map(Duration::from_millis),
            };
            let ledger = Arc::new(dir::open(&dir, Some(o)).map_err(|e| miette!("{e}"))?);
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .into_diagnostic()?;
            rt.block_on(async {
                let listener = tokio::net::TcpListener::bind(&listen)
                    .await
                    .into_diagnostic()
                    .wrap_err_with(|| format!("binding {listen}"))?;
                eprintln!("pf ledger: serving {} on http://{listen}", ledger.origin());
                pf_ledger::server::serve(ledger, listener)
                    .await
                    .into_diagnostic()
            })?;
        }
        Sub::Verify {
            log,
            vkey: key,
            state,
            index,
            full,
        } => {
            let r = remote(&log, &key)?;
            let cp = &r.checkpoint.checkpoint;
            println!(
                "checkpoint ok: {} size {} root {}",
                cp.origin, cp.size, cp.root
            );
            if let Some(state) = state {
                match audit(&r, &state) {
                    Ok((Some(p), _)) => {
                        println!("consistent with previous checkpoint of size {}", p.size)
                    }
                    Ok((None, _)) => {
                        println!("first checkpoint seen; saved to {}", state.display())
                    }
                    Err(e) => {
                        eprintln!("VERIFY FAILED: {e}");
                        return Ok(ExitCode::from(EXIT_VERIFY_FAILED));
                    }
                }
            }
            for i in index {
                match r.entry_with_proof(i) {
                    Ok((entry, proof)) => println!(
                        "entry {i} included ({} proof hashes, leaf {})",
                        proof.len(),
                        leaf_hash(&entry)
                    ),
                    Err(e) => {
                        eprintln!("VERIFY FAILED: entry {i}: {e}");
                        return Ok(ExitCode::from(EXIT_VERIFY_FAILED));
                    }
                }
            }
            if full {
                match r.fsck() {
                    Ok(n) => println!("re-hashed {n} entries: ok"),
                    Err(e) => {
                        eprintln!("VERIFY FAILED: {e}");
                        return Ok(ExitCode::from(EXIT_VERIFY_FAILED));
                    }
                }
            }
        }
        Sub::VerifyShards {
            shards,
            state_dir,
            full,
        } => {
            let text = std::fs::read_to_string(&shards)
                .into_diagnostic()
                .wrap_err_with(|| format!("reading {}", shards.display()))?;
            let list = pf_ledger::shards::ShardList::parse(&text)
                .map_err(|e| miette!("{}: {e}", shards.display()))?;
            std::fs::create_dir_all(&state_dir).into_diagnostic()?;
            let mut failed = false;
            for shard in &list.shards {
                let key = pf_ledger::shards::ShardList::vkey(shard)
                    .ok_or_else(|| miette!("{}: bad vkey", shard.origin))?;
                let state = state_dir.join(shard.origin.replace(['/', ':'], "_"));
                let result = RemoteLog::open(LogSource::parse(&shard.log), &key)
                    .and_then(|r| audit(&r, &state).map(|_| r))
                    .and_then(|r| if full { r.fsck().map(|_| r) } else { Ok(r) });
                match result {
                    Ok(r) => println!(
                        "{}: ok, size {} root {}",
                        shard.origin,
                        r.size(),
                        r.checkpoint.checkpoint.root
                    ),
                    Err(e) => {
                        eprintln!("{}: VERIFY FAILED: {e}", shard.origin);
                        failed = true;
                    }
                }
            }
            if failed {
                return Ok(ExitCode::from(EXIT_VERIFY_FAILED));
            }
        }
        Sub::Tail {
            log,
            vkey: key,
            count,
        } => {
            let r = remote(&log, &key)?;
            let end = r.size();
            let start = end.saturating_sub(count);
            let entries = r.entries(start, end).map_err(|e| miette!("{e}"))?;
            for (i, e) in entries.iter().enumerate() {
                let pretty = serde_json::from_slice::<serde_json::Value>(e)
                    .ok()
                    .and_then(|v| serde_json::to_string_pretty(&v).ok())
                    .unwrap_or_else(|| String::from_utf8_lossy(e).into_owned());
                println!("#{} {}", start + i as u64, pretty);
            }
        }
        Sub::Find {
            dir,
            agent,
            bundle,
            commitment,
        } => {
            let key = match (agent, bundle, commitment) {
                (Some(a), _, _) => format!("agent:{a}"),
                (_, Some(b), _) => format!("bundle:{b}"),
                (_, _, Some(c)) => format!("commitment:{}", c.trim_start_matches("sha256:")),
                _ => return Err(miette!("give one of --agent, --bundle, --commitment")),
            };
            let l = dir::open_read_only(&dir).map_err(|e| miette!("{e}"))?;
            let size = l.size();
            for index in l.find(&key) {
                let entry = l.entry(index).map_err(|e| miette!("{e}"))?;
                let proof = l.inclusion_proof(index, size).map_err(|e| miette!("{e}"))?;
                let hashes: Vec<String> = proof.hashes.iter().map(|h| h.to_base64()).collect();
                println!(
                    "{}",
                    serde_json::json!({ "index": index, "size": size, "entry": String::from_utf8_lossy(&entry), "proof": hashes })
                );
            }
        }
        Sub::Fsck { dir } => {
            let l = dir::open_read_only(&dir).map_err(|e| miette!("{e}"))?;
            match l.fsck() {
                Ok(n) => println!("ok: {n} entries re-hashed to root {}", l.snapshot().root),
                Err(e) => {
                    eprintln!("FSCK FAILED: {e}");
                    return Ok(ExitCode::from(EXIT_VERIFY_FAILED));
                }
            }
        }
        Sub::Witness {
            log,
            vkey: key,
            key: wkey,
            state,
        } => {
            let r = remote(&log, &key)?;
            let w = dir::read_signer(&wkey).map_err(|e| miette!("{e}"))?;
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .into_diagnostic()?
                .as_secs();
            match pf_ledger::witness::witness(&r, &w, &state, now) {
                Ok(note) => print!("{}", note.to_text()),
                Err(e) => {
                    eprintln!("REFUSED TO COSIGN: {e}");
                    return Ok(ExitCode::from(EXIT_VERIFY_FAILED));
                }
            }
        }
        Sub::WitnessKey { name, out } => {
            let k = SignerKey::generate(&name, ALG_COSIGNATURE_V1).map_err(|e| miette!("{e}"))?;
            dir::write_secret(&out, &k.to_private_string()).map_err(|e| miette!("{e}"))?;
            println!("{}", k.verifier());
        }
    }
    Ok(ExitCode::SUCCESS)
}
