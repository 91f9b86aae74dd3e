//! `pf guard`: run an MCP server under the runtime guard, or proxy a Streamable HTTP MCP server
//! or an OpenAI-compatible model server (the work is in `pf-guard`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use miette::{IntoDiagnostic, WrapErr};
use pf_guard::PolicyEnforcer;
use pf_guard::log::{Committer, LogError, QueuedSink};
use pf_guard::mcp_http::{McpHttpConfig, McpHttpProxy};
use pf_guard::metrics::GuardMetrics;
use pf_guard::openai::{OpenAiConfig, OpenAiProxy};
use pf_guard::upstream::{Upstream, UpstreamHttp, UpstreamOptions};

/// Longest wait at exit for the runtime's tasks and blocking threads.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

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
    /// Group commit: under load the decision log makes at most one durable write per this many
    /// milliseconds, covering every record that arrived meanwhile (0 to 1000; an idle log
    /// writes a record at once). Longer saves CPU; a `kill -9` can lose up to this much more.
    #[arg(long, value_name = "MS", default_value_t = 2,
          value_parser = clap::value_parser!(u64).range(0..=1000))]
    log_commit_window_ms: u64,
    /// Serve /metrics and /healthz on this address (e.g. 127.0.0.1:9464).
    #[arg(long)]
    metrics_addr: Option<String>,
    /// Anomaly detection (call rates, tool sequences).
    #[command(flatten)]
    anomaly: super::guard_anomaly::AnomalyArgs,
    /// Proxy this HTTP(S) upstream instead of a stdio server: a Streamable HTTP MCP endpoint
    /// (http[s]://HOST:PORT/mcp), or with --openai a model server's root (http[s]://HOST:PORT).
    #[arg(long, value_name = "URL")]
    upstream: Option<String>,
    /// The upstream is an OpenAI-compatible model server: proxy /v1/chat/completions and
    /// /v1/responses.
    #[arg(long, requires = "upstream")]
    openai: bool,
    /// Address the HTTP proxy listens on.
    #[arg(long, default_value = "127.0.0.1:8808", requires = "upstream")]
    listen: String,
    /// PEM file of CA certificates an https upstream's certificate must chain to, instead of
    /// the platform's roots (for a private CA).
    #[arg(long, value_name = "FILE", requires = "upstream")]
    upstream_ca: Option<std::path::PathBuf>,
    /// PEM certificate chain the guard presents to an https upstream that asks for a client
    /// certificate (mutual TLS); needs --upstream-client-key.
    #[arg(long, value_name = "FILE", requires_all = ["upstream", "upstream_client_key"])]
    upstream_client_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of --upstream-client-cert.
    #[arg(long, value_name = "FILE", requires = "upstream_client_cert")]
    upstream_client_key: Option<PathBuf>,
    /// Speak HTTP/2 with prior knowledge (h2c) to a plain http:// upstream that only speaks
    /// HTTP/2; an https:// upstream is offered HTTP/2 in the TLS handshake without this flag.
    #[arg(long, requires = "upstream")]
    upstream_h2c: bool,
    /// Seconds the upstream may take to start answering (and to send a JSON body), and the
    /// longest silence on an event stream.
    #[arg(long, default_value_t = 300, requires = "upstream")]
    upstream_timeout: u64,
    /// Seconds a connection to the upstream takes new requests; then it closes once its
    /// requests have finished (connections made before a TLS file rotation stop at once).
    #[arg(long, value_name = "SECS", default_value_t = 300, requires = "upstream",
        value_parser = clap::value_parser!(u64).range(1..))]
    upstream_max_conn_age: u64,
    /// Largest request or response body in bytes (default: 4 MiB for MCP, 16 MiB for OpenAI).
    #[arg(long, requires = "upstream")]
    max_body: Option<usize>,
    /// Most concurrent guard sessions (MCP sessions or conversations).
    #[arg(long, default_value_t = 10_000, requires = "upstream")]
    max_sessions: usize,
    /// MCP: seconds a session must have been idle before a new one may take its place once
    /// `--max-sessions` are open.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 3600,
        requires = "upstream"
    )]
    max_session_idle: u64,
    /// Browser `Origin` allowed to use the MCP proxy besides loopback ones (repeatable).
    #[arg(long, requires = "upstream")]
    allow_origin: Vec<String>,
    /// MCP: trust the user's request the host passes (header `x-pf-user-request`, or
    /// `_meta["provability-fabric/user-request"]` on tools/call) for `unless: [user_request]`.
    #[arg(long)]
    trust_user_request: bool,
    /// Threads the guard runs on (default: the CPUs this process may use, cgroup quotas
    /// included). With 1 it runs on a single-threaded scheduler, which costs less per request.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,
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
    let Some(spec_path) = args.spec.clone() else {
        miette::bail!(
            "pf guard needs --spec FILE and either a server command after `--` or --upstream URL"
        );
    };
    if args.upstream.is_some() && !args.server.is_empty() {
        miette::bail!(
            "give either --upstream URL (HTTP proxy) or a server command after `--` (stdio), not both"
        );
    }
    if args.upstream.is_none() && args.server.is_empty() {
        miette::bail!(
            "no MCP server: use `pf guard --spec {0} -- <command> [args]` or `pf guard --spec {0} --upstream URL`",
            spec_path.display()
        );
    }
    check_flags(&args)?;
    let loaded = pf_spec::load(&spec_path)?;
    let compiled = pf_policy::compile(&loaded.spec).map_err(|e| miette::miette!("{e}"))?;
    for w in &compiled.warnings {
        eprintln!("warning: {w:?}");
    }
    // Every setting (TLS files of the upstream and the webhook included) is checked and every
    // address bound before the decision log (and its salt file) is created: a mistake must leave
    // no log of a session that never ran.
    let metrics = Arc::new(GuardMetrics::default());
    let anomaly = super::guard_anomaly::setup(&args.anomaly, compiled.policy.agent(), &metrics)?;
    let webhook = anomaly.as_ref().and_then(|a| a.webhook());
    let threads = args
        .threads
        .map_or_else(pf_guard::runtime::default_threads, usize::from);
    let runtime = pf_guard::runtime::build(threads).into_diagnostic()?;
    let bound = runtime.block_on(bind(&args, &metrics))?;
    let committer = Committer::random();
    let window = Duration::from_millis(args.log_commit_window_ms);
    let sink = open_sink(args.ledger.as_deref(), &args.log, window, &committer)?;
    let enforcers = {
        let (policy, digest) = (Arc::new(compiled.policy), pf_spec::digest(&loaded.spec));
        let (sink, metrics) = (sink.clone(), metrics.clone());
        move || {
            let enforcer = PolicyEnforcer::new(
                policy.clone(),
                digest.clone(),
                sink.clone(),
                metrics.clone(),
                committer.clone(),
            );
            match &anomaly {
                Some(a) => a.attach(enforcer),
                None => enforcer,
            }
        }
    };
    let code = runtime.block_on(async {
        if let Some(listener) = bound.metrics {
            tokio::spawn(pf_guard::http::serve(listener, metrics.clone()));
        }
        match bound.proxy {
            Some(proxy) => serve_http(&args, proxy, enforcers).await.map(|()| 0),
            None => {
                let Some((command, server_args)) = args.server.split_first() else {
                    miette::bail!("no MCP server command after `--`");
                };
                let session = pf_guard::McpSession::new(enforcers())
                    .with_trusted_user_request(args.trust_user_request);
                pf_guard::stdio::run_session(session, command, server_args)
                    .await
                    .map_err(|e| miette::miette!("{e}"))
            }
        }
    });
    // Not `drop`: a dropped runtime waits for its blocking threads, and one may be blocked
    // reading our stdin (a client still connected after the server has gone).
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
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

/// Refuses flags that only apply to a mode other than the one chosen.
fn check_flags(args: &Args) -> miette::Result<()> {
    if args.openai && args.trust_user_request {
        miette::bail!(
            "--trust-user-request is for MCP; an OpenAI-compatible upstream (--openai) carries the user's turn itself"
        );
    }
    if args.openai && !args.allow_origin.is_empty() {
        miette::bail!("--allow-origin is for the MCP proxy, not with --openai");
    }
    Ok(())
}

/// What `pf guard` listens on, bound before anything is written.
struct Bound {
    /// The /metrics and /healthz listener (`--metrics-addr`).
    metrics: Option<tokio::net::TcpListener>,
    /// The HTTP proxy's upstream and listener (`--upstream`, `--listen`).
    proxy: Option<(Upstream, tokio::net::TcpListener)>,
}

/// Checks the upstream settings and binds the listeners.
async fn bind(args: &Args, metrics: &GuardMetrics) -> miette::Result<Bound> {
    let listen = |addr: String| async move {
        tokio::net::TcpListener::bind(&addr)
            .await
            .into_diagnostic()
            .wrap_err_with(|| format!("cannot listen on {addr}"))
    };
    let proxy = match &args.upstream {
        Some(url) => Some((
            upstream(args, url, metrics)?,
            listen(args.listen.clone()).await?,
        )),
        None => None,
    };
    let metrics = match &args.metrics_addr {
        Some(addr) => Some(listen(addr.clone()).await?),
        None => None,
    };
    Ok(Bound { metrics, proxy })
}

/// The upstream's connection pool, its TLS files read and checked (and watched: a rotated file
/// that cannot be used is counted in `metrics`).
fn upstream(args: &Args, url: &str, metrics: &GuardMetrics) -> miette::Result<Upstream> {
    let timeout = Duration::from_secs(args.upstream_timeout.max(1));
    let tls = pf_guard::upstream::UpstreamTls {
        ca_file: args.upstream_ca.clone(),
        client_cert: args.upstream_client_cert.clone(),
        client_key: args.upstream_client_key.clone(),
        reload_failures: Some(metrics.tls_reload_failures.clone()),
    };
    let options = UpstreamOptions {
        http: if args.upstream_h2c {
            UpstreamHttp::H2c
        } else {
            UpstreamHttp::Negotiated
        },
        max_conn_age: Duration::from_secs(args.upstream_max_conn_age),
        renewals: Some(metrics.upstream_pool_renewals.clone()),
    };
    let upstream = Upstream::with_settings(url, timeout, &tls, &options)
        .map_err(|e| miette::miette!("{e}"))?;
    if upstream.base().scheme_str() == Some("http") {
        refuse_tls_files_for_plain_http(
            "--upstream",
            "upstream",
            url,
            args.upstream_client_cert.is_some(),
            args.upstream_ca.is_some(),
        )?;
    }
    Ok(upstream)
}

/// Refuses `{flag}-client-cert` and `{flag}-ca` for a plain http `url` (of the upstream or the
/// alert webhook): its client never reads them, and a user who gave them expects TLS.
pub(super) fn refuse_tls_files_for_plain_http(
    flag: &str,
    what: &str,
    url: &str,
    client_cert: bool,
    ca: bool,
) -> miette::Result<()> {
    if client_cert {
        miette::bail!(
            "{flag}-client-cert is for an https:// {what}; {url} is not (a client certificate would never be sent)"
        );
    }
    if ca {
        miette::bail!("{flag}-ca is for an https {what}, but `{url}` is plain http");
    }
    Ok(())
}

/// Runs the MCP or OpenAI HTTP proxy until SIGINT/SIGTERM.
async fn serve_http(
    args: &Args,
    (upstream, listener): (Upstream, tokio::net::TcpListener),
    enforcers: impl Fn() -> PolicyEnforcer + Send + Sync + 'static,
) -> miette::Result<()> {
    let timeout = upstream.timeout();
    let url = args.upstream.as_deref().unwrap_or_default();
    let router = if args.openai {
        let mut config = OpenAiConfig {
            idle_timeout: timeout,
            max_sessions: args.max_sessions,
            ..OpenAiConfig::default()
        };
        if let Some(max) = args.max_body {
            config.max_body_bytes = max;
        }
        eprintln!(
            "pf guard: OpenAI-compatible proxy on http://{}/v1/chat/completions and /v1/responses -> {url}",
            args.listen
        );
        OpenAiProxy::new(upstream, config, enforcers).router()
    } else {
        let mut config = McpHttpConfig {
            idle_timeout: timeout,
            max_sessions: args.max_sessions,
            max_session_idle: Duration::from_secs(args.max_session_idle),
            allowed_origins: args.allow_origin.clone(),
            trust_user_request: args.trust_user_request,
            ..McpHttpConfig::default()
        };
        if let Some(max) = args.max_body {
            config.max_body_bytes = max;
        }
        eprintln!(
            "pf guard: Streamable HTTP MCP proxy on http://{} -> {url}",
            args.listen
        );
        McpHttpProxy::new(upstream, config, enforcers).router()
    };
    pf_guard::http::serve_until_signal(listener, router)
        .await
        .into_diagnostic()
        .wrap_err("serving the proxy")
}

/// Opens the decision sink (group commit every `window`) and records the session's commitment
/// salt beside it (owner-only).
fn open_sink(
    ledger: Option<&Path>,
    log: &Path,
    window: Duration,
    committer: &Committer,
) -> miette::Result<Arc<QueuedSink>> {
    // A ledger directory is opened, and so checked, before the salt file is written into it.
    let ledger = match ledger {
        Some(dir) => {
            let opened = pf_ledger::dir::open(dir, None)
                .map_err(|e| miette::miette!("{e}"))
                .wrap_err_with(|| format!("opening ledger {}", dir.display()))?;
            Some((dir, opened))
        }
        None => None,
    };
    let salt_file = match &ledger {
        Some((dir, _)) => dir.join("guard-salts"),
        None => PathBuf::from(format!("{}.salts", log.display())),
    };
    append_secret(
        &salt_file,
        &format!("{} {}\n", std::process::id(), committer.salt_hex()),
    )
    .wrap_err_with(|| format!("writing {}", salt_file.display()))?;
    let sink = match ledger {
        Some((_, ledger)) => {
            QueuedSink::ledger_with_window(ledger, 4096, window).into_diagnostic()?
        }
        None => QueuedSink::jsonl_with_window(log, 4096, window)
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

#[cfg(test)]
mod tests {
    use clap::Parser;

    #[derive(Parser)]
    struct Pf {
        #[command(subcommand)]
        command: Sub,
    }

    #[derive(clap::Subcommand)]
    enum Sub {
        Guard(super::Args),
    }

    #[test]
    fn the_sidecar_the_admission_webhook_injects_parses_as_an_http_guard() {
        let guard = pf_admission::GuardConfig {
            image: format!("ghcr.io/provability-fabric/pf@sha256:{}", "b".repeat(64)),
            cpu: "200m".into(),
            memory: "128Mi".into(),
            upstream: "http://127.0.0.1:8080/mcp".into(),
        };
        let args = pf_admission::webhook::guard_args(&guard);
        let parsed = Pf::try_parse_from(std::iter::once("pf".to_string()).chain(args))
            .unwrap_or_else(|e| panic!("sidecar args do not parse: {e}"));
        let Sub::Guard(a) = parsed.command;
        assert_eq!(a.upstream.as_deref(), Some("http://127.0.0.1:8080/mcp"));
        assert_eq!(a.listen, pf_admission::policy::GUARD_LISTEN);
        assert!(a.server.is_empty() && !a.openai);
        assert!(a.spec.is_some() && a.metrics_addr.is_some());
    }
}
