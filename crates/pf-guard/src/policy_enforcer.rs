//! The production [`Enforcer`]: the compiled policy kernel plus decision logging and metrics.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pf_policy::{Call, Effect, OutputEffect, Policy, SessionState};
use prometheus_client::metrics::counter::Counter;
use serde_json::Value;

use crate::alert::AnomalyMonitor;
use crate::anomaly::AnomalyMode;
use crate::enforcer::{CallOutcome, Enforcer, OutputOutcome};
use crate::log::{Committer, DecisionRecord, DecisionSink};
use crate::metrics::{AnomalyLabels, DecisionLabels, GuardMetrics, ReasonLabels};

/// What the model's own text is checked as.
pub const MODEL_OUTPUT_TOOL: &str = "text_generation";

/// Enforces one compiled policy for one agent session, logging every decision.
pub struct PolicyEnforcer {
    policy: Arc<Policy>,
    state: SessionState,
    started: Instant,
    spec_digest: String,
    sink: Arc<dyn DecisionSink>,
    metrics: Arc<GuardMetrics>,
    committer: Committer,
    anomaly: Option<AnomalyMonitor>,
    /// Decision counters already looked up (a family lookup allocates its labels and hashes).
    counters: Vec<(&'static str, &'static str, String, Counter)>,
}

/// Most decision counters a session keeps at hand (beyond it, the family is asked each time).
const MAX_CACHED_COUNTERS: usize = 64;

impl PolicyEnforcer {
    /// A new session of `policy`; `spec_digest` identifies the spec in log records.
    pub fn new(
        policy: Arc<Policy>,
        spec_digest: String,
        sink: Arc<dyn DecisionSink>,
        metrics: Arc<GuardMetrics>,
        committer: Committer,
    ) -> Self {
        let state = policy.new_session();
        PolicyEnforcer {
            policy,
            state,
            started: Instant::now(),
            spec_digest,
            sink,
            metrics,
            committer,
            anomaly: None,
            counters: Vec::new(),
        }
    }

    /// Adds anomaly detection: every call the policy allows is also checked by `monitor`.
    pub fn with_anomaly_monitor(mut self, monitor: AnomalyMonitor) -> Self {
        self.anomaly = Some(monitor);
        self
    }

    /// The agent whose policy this enforces.
    pub fn agent(&self) -> &str {
        self.policy.agent()
    }

    /// The anomaly monitor, if any.
    pub fn anomaly_monitor(&self) -> Option<&AnomalyMonitor> {
        self.anomaly.as_ref()
    }

    /// Logs a decision; `false` when it could not be logged (the caller then fails closed).
    fn log(
        &mut self,
        kind: &'static str,
        tool: &str,
        effect: &'static str,
        reasons: &[String],
        subject: Value,
    ) -> bool {
        self.count_decision(kind, effect, tool);
        for r in reasons {
            self.metrics
                .violations
                .get_or_create(&ReasonLabels { reason: r.clone() })
                .inc();
        }
        self.submit(kind, tool, effect, reasons, subject)
    }

    fn count_decision(&mut self, kind: &'static str, effect: &'static str, tool: &str) {
        let cached = self
            .counters
            .iter()
            .find(|(k, e, t, _)| *k == kind && *e == effect && t == tool);
        if let Some((_, _, _, counter)) = cached {
            counter.inc();
            return;
        }
        let counter = self
            .metrics
            .decisions
            .get_or_create(&DecisionLabels {
                kind: kind.into(),
                effect: effect.into(),
                tool: tool.into(),
            })
            .clone();
        counter.inc();
        if self.counters.len() < MAX_CACHED_COUNTERS {
            self.counters
                .push((kind, effect, tool.to_string(), counter));
        }
    }

    /// Submits a record to the sink; `false` (counted) when it could not be logged.
    fn submit(
        &self,
        kind: &'static str,
        tool: &str,
        effect: &'static str,
        reasons: &[String],
        subject: Value,
    ) -> bool {
        let record = DecisionRecord {
            ts_ms: now_ms(),
            agent: self.policy.agent().to_string(),
            spec_digest: self.spec_digest.clone(),
            kind,
            tool: tool.to_string(),
            effect,
            reasons: reasons.to_vec(),
            commitment: String::new(),
        };
        // The salted commitment is made by the sink (on the log writer thread for QueuedSink).
        match self
            .sink
            .submit_committing(record, subject, &self.committer)
        {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, "decision not logged; failing closed");
                self.metrics.log_failures.inc();
                false
            }
        }
    }

    /// Raises an event for every anomaly of an allowed call (metric, warning, log record,
    /// webhook); in deny mode returns the denial.
    fn screen_anomalies(&mut self, tool: &str, now: Duration) -> Option<CallOutcome> {
        let monitor = self.anomaly.as_mut()?;
        let found = monitor.check(tool, now);
        if found.is_empty() {
            return None;
        }
        let mode = monitor.mode();
        let agent = self.policy.agent().to_string();
        let mut events = Vec::with_capacity(found.len());
        for a in &found {
            let code = a.kind().code();
            self.metrics
                .anomalies
                .get_or_create(&AnomalyLabels {
                    kind: a.kind().label().into(),
                    tool: tool.into(),
                })
                .inc();
            tracing::warn!(agent = %agent, tool, reason = code, action = mode.as_str(), "anomaly: {}", a.describe());
            let event = crate::alert::event(&agent, tool, a, mode, now_ms());
            // A failed write here also fails the call's own record, which then fails closed.
            self.submit(
                "anomaly",
                tool,
                mode.as_str(),
                &[code.to_string()],
                event.clone(),
            );
            events.push(event);
        }
        if let Some(monitor) = &self.anomaly {
            events.iter().for_each(|e| monitor.notify(e));
        }
        if mode == AnomalyMode::Alert {
            return None;
        }
        let mut codes: Vec<String> = found.iter().map(|a| a.kind().code().to_string()).collect();
        codes.dedup();
        let reason = found
            .iter()
            .map(|a| format!("{}: {}", a.kind().code(), a.describe()))
            .collect::<Vec<_>>()
            .join("; ");
        Some(CallOutcome::Deny { reason, codes })
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn codes(reasons: &[pf_policy::Reason]) -> Vec<String> {
    let mut c: Vec<String> = reasons
        .iter()
        .map(|r| r.code.as_str().to_string())
        .collect();
    c.sort();
    c.dedup();
    c
}

fn explain(reasons: &[pf_policy::Reason]) -> String {
    reasons
        .iter()
        .map(|r| match (&r.rule, &r.arg) {
            (Some(rule), _) => format!("{} ({}): {}", r.code.as_str(), rule, r.detail),
            (None, Some(arg)) => format!("{} (argument `{arg}`): {}", r.code.as_str(), r.detail),
            (None, None) => format!("{}: {}", r.code.as_str(), r.detail),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

const LOG_UNAVAILABLE: &str = "log_unavailable";

impl Enforcer for PolicyEnforcer {
    fn tool_visible(&self, tool: &str) -> bool {
        self.policy.allows_tool(tool)
    }

    fn decide_call(&mut self, tool: &str, args: &Value) -> CallOutcome {
        let t0 = Instant::now();
        let now = self.started.elapsed();
        let decision =
            pf_policy::decide(&self.policy, &mut self.state, &Call::new(tool, args), now);
        let reason_codes = codes(&decision.reasons);
        let outcome = match decision.effect {
            Effect::Deny => {
                self.log("call", tool, "deny", &reason_codes, args.clone());
                CallOutcome::Deny {
                    reason: explain(&decision.reasons),
                    codes: reason_codes,
                }
            }
            Effect::Allow | Effect::AllowWithObligations(_) => {
                if let Some(CallOutcome::Deny { reason, codes }) = self.screen_anomalies(tool, now)
                {
                    pf_policy::release(&self.policy, &mut self.state, tool);
                    self.log("call", tool, "deny", &codes, args.clone());
                    CallOutcome::Deny { reason, codes }
                } else if self.log("call", tool, "allow", &reason_codes, args.clone()) {
                    if let Some(monitor) = &mut self.anomaly {
                        monitor.record(tool, now);
                    }
                    CallOutcome::Allow
                } else {
                    pf_policy::release(&self.policy, &mut self.state, tool);
                    CallOutcome::Deny {
                        reason: "the decision log is unavailable, so no call can be allowed".into(),
                        codes: vec![LOG_UNAVAILABLE.into()],
                    }
                }
            }
        };
        self.metrics.latency.observe(t0.elapsed().as_secs_f64());
        outcome
    }

    fn check_output(&mut self, tool: Option<&str>, text: &str) -> OutputOutcome {
        let t0 = Instant::now();
        let name = tool.unwrap_or(MODEL_OUTPUT_TOOL);
        let decision = pf_policy::check_output(&self.policy, name, text);
        let subject = Value::String(text.to_string());
        if let Some(tool) = tool {
            pf_policy::record_output(&self.policy, &mut self.state, tool, &subject);
        }
        let reason_codes = codes(&decision.reasons);
        let (effect, outcome) = match decision.effect {
            OutputEffect::Allow => ("allow", OutputOutcome::Pass),
            OutputEffect::Redact(redacted) => ("redact", OutputOutcome::Redact(redacted)),
            OutputEffect::Deny => (
                "deny",
                OutputOutcome::Deny {
                    reason: explain(&decision.reasons),
                    codes: reason_codes.clone(),
                },
            ),
        };
        let logged = self.log("output", name, effect, &reason_codes, subject);
        self.metrics.latency.observe(t0.elapsed().as_secs_f64());
        if !logged && effect != "deny" {
            return OutputOutcome::Deny {
                reason: "the decision log is unavailable, so no output can be released".into(),
                codes: vec![LOG_UNAVAILABLE.into()],
            };
        }
        outcome
    }

    fn finish_call(&mut self, tool: &str) {
        pf_policy::release(&self.policy, &mut self.state, tool);
    }

    fn user_request(&mut self, text: &str) {
        pf_policy::record_user_request(&self.policy, &mut self.state, text);
    }

    fn refuse_call(&mut self, tool: &str, code: &str, subject: &Value) {
        // The call is refused whether or not this record can be written.
        self.log("call", tool, "deny", &[code.to_string()], subject.clone());
    }
}
