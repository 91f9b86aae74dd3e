//! Prometheus metrics of the guard: decisions by outcome and reason, latency, violations.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of a decision counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// `call` or `output`.
    pub kind: String,
    /// `allow`, `deny` or `redact`.
    pub effect: String,
    /// The tool.
    pub tool: String,
}

/// Labels of a violation counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// Reason code.
    pub reason: String,
}

/// Labels of an anomaly alert counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AnomalyLabels {
    /// `unseen_sequence` or `rate_spike`.
    pub kind: String,
    /// The tool called.
    pub tool: String,
}

/// The guard's metrics, registered in one registry.
pub struct GuardMetrics {
    registry: Registry,
    /// Decisions by kind, effect and tool.
    pub decisions: Family<DecisionLabels, Counter>,
    /// Violations by reason code.
    pub violations: Family<ReasonLabels, Counter>,
    /// Decision latency in seconds (policy evaluation and logging).
    pub latency: Histogram,
    /// Decisions that could not be logged (each one denied).
    pub log_failures: Counter,
    /// Anomaly alerts raised, by kind and tool.
    pub anomalies: Family<AnomalyLabels, Counter>,
    /// Alert events the webhook could not deliver, by reason.
    pub webhook_failures: Family<ReasonLabels, Counter>,
    /// Rotated TLS files that could not be used (the previous ones stay), by what they hold
    /// (`client_identity`, `ca`).
    pub tls_reload_failures: Family<ReasonLabels, Counter>,
    /// Upstream connection pools replaced, by why (`tls_rotation`, `max_age`).
    pub upstream_pool_renewals: Family<ReasonLabels, Counter>,
}

impl Default for GuardMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("pf_guard");
        let decisions = Family::<DecisionLabels, Counter>::default();
        let violations = Family::<ReasonLabels, Counter>::default();
        let latency = Histogram::new(exponential_buckets(1e-6, 2.0, 20));
        let log_failures = Counter::default();
        let anomalies = Family::<AnomalyLabels, Counter>::default();
        let webhook_failures = Family::<ReasonLabels, Counter>::default();
        let tls_reload_failures = Family::<ReasonLabels, Counter>::default();
        let upstream_pool_renewals = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "decisions",
            "Policy decisions by kind, effect and tool",
            decisions.clone(),
        );
        registry.register(
            "violations",
            "Denied or redacted decisions by reason code",
            violations.clone(),
        );
        registry.register(
            "decision_latency_seconds",
            "Time to decide and log one decision",
            latency.clone(),
        );
        registry.register(
            "log_failures",
            "Decisions that could not be logged (denied)",
            log_failures.clone(),
        );
        registry.register(
            "anomalies",
            "Anomaly alerts by kind and tool",
            anomalies.clone(),
        );
        registry.register(
            "alert_webhook_failures",
            "Alert events not delivered to the webhook, by reason",
            webhook_failures.clone(),
        );
        registry.register(
            "tls_reload_failures",
            "Rotated TLS files that could not be used (the previous ones stay in use)",
            tls_reload_failures.clone(),
        );
        registry.register(
            "upstream_pool_renewals",
            "Upstream connection pools replaced (their connections finish what they carry, then close), by reason",
            upstream_pool_renewals.clone(),
        );
        GuardMetrics {
            registry,
            decisions,
            violations,
            latency,
            log_failures,
            anomalies,
            webhook_failures,
            tls_reload_failures,
            upstream_pool_renewals,
        }
    }
}

impl GuardMetrics {
    /// The metrics in the Prometheus text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
