//! Engine metrics in Prometheus form: verification time histogram, cache hits/misses/corrupt
//! entries, and verdict counts by status and checker.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of the verdict counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerdictLabels {
    /// `proved`, `refuted`, `unknown` or `error`.
    pub status: String,
    /// Checker name (`none` when no checker was registered).
    pub checker: String,
}

/// Counters and histograms updated by the engine.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Seconds spent checking one obligation (cache hits excluded).
    pub check_seconds: Histogram,
    /// Cache hits.
    pub cache_hits: Counter,
    /// Cache misses.
    pub cache_misses: Counter,
    /// Entries that failed their digest check and were recomputed.
    pub cache_corrupt: Counter,
    /// Verdicts by status and checker.
    pub verdicts: Family<VerdictLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Fresh metrics, registered under the `pf_verify` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("pf_verify");
        // 1 ms .. ~9 min in 20 doubling buckets.
        let check_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 20));
        let cache_hits = Counter::default();
        let cache_misses = Counter::default();
        let cache_corrupt = Counter::default();
        let verdicts = Family::<VerdictLabels, Counter>::default();
        registry.register(
            "check_seconds",
            "Time spent checking one obligation",
            check_seconds.clone(),
        );
        registry.register(
            "cache_hits",
            "Obligations served from the cache",
            cache_hits.clone(),
        );
        registry.register(
            "cache_misses",
            "Obligations not in the cache",
            cache_misses.clone(),
        );
        registry.register(
            "cache_corrupt",
            "Cache entries that failed their digest check",
            cache_corrupt.clone(),
        );
        registry.register(
            "verdicts",
            "Verdicts by status and checker",
            verdicts.clone(),
        );
        Self {
            registry,
            check_seconds,
            cache_hits,
            cache_misses,
            cache_corrupt,
            verdicts,
        }
    }

    /// Counts one verdict.
    pub fn count_verdict(&self, status: &str, checker: &str) {
        self.verdicts
            .get_or_create(&VerdictLabels {
                status: status.to_string(),
                checker: checker.to_string(),
            })
            .inc();
    }

    /// OpenMetrics text exposition of everything.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_shows_counts() {
        let m = Metrics::new();
        m.cache_hits.inc();
        m.count_verdict("proved", "pf-digest");
        m.check_seconds.observe(0.01);
        let text = m.render();
        assert!(text.contains("pf_verify_cache_hits_total 1"), "{text}");
        assert!(
            text.contains(r#"pf_verify_verdicts_total{status="proved",checker="pf-digest"} 1"#),
            "{text}"
        );
        assert!(text.contains("pf_verify_check_seconds_count 1"), "{text}");
    }
}
