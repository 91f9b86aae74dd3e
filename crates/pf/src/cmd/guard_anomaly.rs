//! Anomaly detection for `pf guard`: its flags and `pf guard baseline` (the work is in
//! `pf_guard::anomaly`, `pf_guard::baseline` and `pf_guard::alert`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use miette::{IntoDiagnostic, WrapErr};
use pf_guard::PolicyEnforcer;
use pf_guard::alert::{AnomalyMonitor, Webhook};
use pf_guard::anomaly::{AgentBaseline, AnomalyMode, Detector, Params};
use pf_guard::baseline::Baseline;
use pf_guard::metrics::GuardMetrics;
use pf_guard::tls::ClientTls;

/// What a flagged call does.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ModeArg {
    /// Raise an alert; the call goes on as the policy decided.
    Alert,
    /// Raise an alert and deny the call (reason `anomaly.*`).
    Deny,
}

/// Anomaly-detection flags of `pf guard` (docs/guard.md, "Anomaly detection").
#[derive(clap::Args)]
pub struct AnomalyArgs {
    /// Anomaly baseline from `pf guard baseline`; turns anomaly detection on.
    #[arg(long, value_name = "FILE")]
    anomaly_baseline: Option<PathBuf>,
    /// Also learn from the session's first DURATION (e.g. 300s, 10m) before flagging anything;
    /// turns anomaly detection on.
    #[arg(long, value_name = "DURATION")]
    anomaly_learn: Option<String>,
    /// What a flagged call does [default: alert].
    #[arg(long, value_enum)]
    anomaly_mode: Option<ModeArg>,
    /// POST every anomaly alert as JSON to this http:// or https:// URL (bounded queue, never
    /// blocks calls).
    #[arg(long, value_name = "URL")]
    alert_webhook: Option<String>,
    /// PEM file of CA certificates an https --alert-webhook's certificate must chain to,
    /// instead of the platform's roots (for a private CA).
    #[arg(long, value_name = "FILE", requires = "alert_webhook")]
    alert_webhook_ca: Option<PathBuf>,
    /// PEM certificate chain the guard presents to an https --alert-webhook that asks for a
    /// client certificate (mutual TLS); needs --alert-webhook-client-key.
    #[arg(long, value_name = "FILE", requires_all = ["alert_webhook", "alert_webhook_client_key"])]
    alert_webhook_client_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of --alert-webhook-client-cert.
    #[arg(long, value_name = "FILE", requires = "alert_webhook_client_cert")]
    alert_webhook_client_key: Option<PathBuf>,
}

/// Anomaly detection as configured by the flags: a fresh detector per guard session (the
/// baseline is the agent's; live counts are per session), one shared alert webhook.
pub struct Anomaly {
    params: Params,
    baseline: AgentBaseline,
    learn_for: Duration,
    mode: AnomalyMode,
    webhook: Option<Arc<Webhook>>,
}

impl Anomaly {
    /// Adds a fresh anomaly monitor to `enforcer`.
    pub fn attach(&self, enforcer: PolicyEnforcer) -> PolicyEnforcer {
        enforcer.with_anomaly_monitor(AnomalyMonitor::new(
            Detector::new(self.params.clone(), self.baseline.clone(), self.learn_for),
            self.mode,
            self.webhook.clone(),
        ))
    }

    /// The alert webhook, to flush with [`close`] at exit.
    pub fn webhook(&self) -> Option<Arc<Webhook>> {
        self.webhook.clone()
    }
}

/// Reads the anomaly flags for `agent`; `None` when detection is off.
pub fn setup(
    args: &AnomalyArgs,
    agent: &str,
    metrics: &Arc<GuardMetrics>,
) -> miette::Result<Option<Anomaly>> {
    if args.anomaly_baseline.is_none() && args.anomaly_learn.is_none() {
        if args.anomaly_mode.is_some() || args.alert_webhook.is_some() {
            miette::bail!(
                "--anomaly-mode and --alert-webhook need --anomaly-baseline FILE or --anomaly-learn DURATION"
            );
        }
        return Ok(None);
    }
    let learn_for = match &args.anomaly_learn {
        Some(text) => parse_duration(text).ok_or_else(|| {
            miette::miette!("--anomaly-learn {text:?}: expected e.g. 90s, 10m or 1h")
        })?,
        None => Duration::ZERO,
    };
    let (params, baseline) = match &args.anomaly_baseline {
        Some(path) => {
            let file = Baseline::load(path).map_err(|e| miette::miette!("{e}"))?;
            let agent = file
                .agent(agent)
                .map_err(|e| miette::miette!("{}: {e}", path.display()))?
                .clone();
            (file.params, agent)
        }
        None => (Params::default(), AgentBaseline::default()),
    };
    let webhook = match &args.alert_webhook {
        Some(url) => {
            check_plain_webhook(args, url)?;
            let tls = ClientTls {
                ca_file: args.alert_webhook_ca.clone(),
                client_cert: args.alert_webhook_client_cert.clone(),
                client_key: args.alert_webhook_client_key.clone(),
                reload_failures: Some(metrics.tls_reload_failures.clone()),
            };
            Some(Arc::new(
                Webhook::spawn_with_tls(url, &tls, metrics.clone())
                    .map_err(|e| miette::miette!("{e}"))?,
            ))
        }
        None => None,
    };
    let mode = match args.anomaly_mode {
        Some(ModeArg::Deny) => AnomalyMode::Deny,
        Some(ModeArg::Alert) | None => AnomalyMode::Alert,
    };
    Ok(Some(Anomaly {
        params,
        baseline,
        learn_for,
        mode,
        webhook,
    }))
}

/// Refuses TLS files for a plain `http://` webhook (the webhook's own test of its scheme).
fn check_plain_webhook(args: &AnomalyArgs, url: &str) -> miette::Result<()> {
    if !url.starts_with("http://") {
        return Ok(());
    }
    super::guard::refuse_tls_files_for_plain_http(
        "--alert-webhook",
        "webhook",
        url,
        args.alert_webhook_client_cert.is_some(),
        args.alert_webhook_ca.is_some(),
    )
}

/// Sends what is still queued for the webhook (waiting at most a few seconds).
pub fn close(webhook: Option<Arc<Webhook>>) {
    if let Some(Ok(w)) = webhook.map(Arc::try_unwrap) {
        w.close(Duration::from_secs(3));
    }
}

/// `90s`, `10m`, `1h` or plain seconds.
fn parse_duration(text: &str) -> Option<Duration> {
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = digits.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        _ => return None,
    };
    Some(Duration::from_secs(secs))
}

/// Learn an anomaly baseline from a JSON Lines decision log (`pf guard --log`).
#[derive(clap::Args)]
pub struct BaselineArgs {
    /// The decision log to learn from (its allowed calls should be known-good traffic).
    #[arg(long, value_name = "LOG")]
    from: PathBuf,
    /// Where to write the baseline JSON.
    #[arg(short, long, value_name = "FILE")]
    out: PathBuf,
    /// Length of the tool-sequence n-grams.
    #[arg(long, default_value_t = 3)]
    ngram: usize,
    /// Rate window in seconds.
    #[arg(long, default_value_t = 10)]
    window: u64,
}

/// Runs `pf guard baseline`.
pub fn run_baseline(args: BaselineArgs) -> miette::Result<ExitCode> {
    let file = std::fs::File::open(&args.from)
        .into_diagnostic()
        .wrap_err_with(|| format!("opening {}", args.from.display()))?;
    let params = Params {
        ngram: args.ngram,
        window_secs: args.window,
        session_gap_secs: Params::default().session_gap_secs.max(args.window),
        ..Params::default()
    };
    let (baseline, summary) =
        Baseline::learn_from_log(std::io::BufReader::new(file), &args.from, params)
            .map_err(|e| miette::miette!("{e}"))?;
    baseline
        .save(&args.out)
        .map_err(|e| miette::miette!("{e}"))?;
    eprintln!(
        "learned {} calls of {} agent(s) in {} session(s) from {} lines; wrote {}",
        summary.calls,
        summary.agents,
        summary.sessions,
        summary.lines,
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_seconds_minutes_hours() {
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        for bad in ["", "m", "10x", "1.5m", "-1s", "99999999999999999999h"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
