//! Anomaly detection on an agent's tool calls: call-rate spikes and never-seen tool sequences.
//!
//! Pure logic, no I/O and no clock: the caller passes the time since the session started. A
//! [`Detector`] holds one agent's baseline ([`AgentBaseline`]) and the state of the running
//! session. Two detectors run on every call the policy allowed:
//!
//! - **Rates.** Calls are counted in fixed windows (`window_secs`), overall (key `*`) and per
//!   tool. When a window ends its count is folded into an exponentially weighted mean and variance
//!   (West's incremental form; the first `1/alpha` windows use the exact running mean, so a short
//!   baseline is not biased towards zero). A call is a spike when the window's count including it
//!   exceeds `max(min_calls, mean + k_sigma * sd)`; the `min_calls` floor keeps a cold start (mean
//!   and variance zero) from flagging every call. Windows with a spike are not folded, so a burst
//!   cannot teach the baseline that bursts are normal.
//! - **Sequences.** The last `ngram` tools called, padded at the start of a session with
//!   `None`, form an n-gram; after the learning window, an n-gram absent from the baseline is
//!   flagged. Learned n-grams are frozen once learning ends, so a repeated attack stays flagged.
//!
//! A gap longer than `session_gap_secs` between calls starts a new segment: the sequence history
//! is reset to the start padding and at most that many idle windows are folded as zero counts.
//! Offline learning ([`crate::baseline`]) replays a decision log through this same type, so the
//! online and offline baselines mean the same thing.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Reason code of a call whose tool sequence was never seen in the baseline.
pub const UNSEEN_SEQUENCE: &str = "anomaly.unseen_sequence";
/// Reason code of a call that pushes a window's call count past the threshold.
pub const RATE_SPIKE: &str = "anomaly.rate_spike";
/// Rate key of all tools together.
pub const ALL_TOOLS: &str = "*";
/// Most n-grams one agent's baseline may hold; learning stops adding beyond it.
pub const MAX_SEQUENCES: usize = 1 << 16;
/// Longest n-gram supported.
pub const MAX_NGRAM: usize = 8;

/// What a flagged call does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AnomalyMode {
    /// Raise the alert; the call goes on as the policy decided.
    #[default]
    Alert,
    /// Raise the alert and deny the call.
    Deny,
}

impl AnomalyMode {
    /// `alert` or `deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyMode::Alert => "alert",
            AnomalyMode::Deny => "deny",
        }
    }
}

/// Detector settings; stored in the baseline file because the statistics depend on them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Length of a tool-sequence n-gram (1..=8).
    pub ngram: usize,
    /// Length of a rate window in seconds.
    pub window_secs: u64,
    /// A pause longer than this (seconds) starts a new segment.
    pub session_gap_secs: u64,
    /// Weight of the newest window in the moving mean and variance, in (0, 1].
    pub alpha: f64,
    /// Standard deviations above the mean that count as a spike.
    pub k_sigma: f64,
    /// Floor of the spike threshold: a window with at most this many calls is never a spike.
    pub min_calls: u64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            ngram: 3,
            window_secs: 10,
            session_gap_secs: 300,
            alpha: 0.05,
            k_sigma: 4.0,
            min_calls: 10,
        }
    }
}

/// A parameter outside its range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("anomaly parameter `{field}` is {value}; expected {expected}")]
pub struct ParamError {
    /// The field.
    pub field: &'static str,
    /// Its value, as text.
    pub value: String,
    /// The allowed range.
    pub expected: &'static str,
}

impl Params {
    /// Checks every field's range.
    pub fn validate(&self) -> Result<(), ParamError> {
        let bad = |field, value: String, expected| {
            Err(ParamError {
                field,
                value,
                expected,
            })
        };
        if !(1..=MAX_NGRAM).contains(&self.ngram) {
            return bad("ngram", self.ngram.to_string(), "1 to 8");
        }
        if !(1..=86_400).contains(&self.window_secs) {
            return bad("window_secs", self.window_secs.to_string(), "1 to 86400");
        }
        if self.session_gap_secs < self.window_secs {
            return bad(
                "session_gap_secs",
                self.session_gap_secs.to_string(),
                "at least window_secs",
            );
        }
        if !(self.alpha > 0.0 && self.alpha <= 1.0) {
            return bad("alpha", self.alpha.to_string(), "in (0, 1]");
        }
        if !(self.k_sigma.is_finite() && self.k_sigma >= 0.0) {
            return bad("k_sigma", self.k_sigma.to_string(), "a finite number >= 0");
        }
        if self.min_calls == 0 {
            return bad("min_calls", "0".into(), "at least 1");
        }
        Ok(())
    }

    /// Most idle (zero-count) windows folded after one window: those within one session gap.
    fn max_idle_windows(&self) -> u64 {
        self.session_gap_secs.div_ceil(self.window_secs)
    }
}

/// Moving mean and variance of calls per window.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateStats {
    /// Mean calls per window.
    pub mean: f64,
    /// Variance of calls per window.
    pub var: f64,
    /// Windows folded in so far.
    pub windows: u64,
}

impl RateStats {
    /// Folds one window's count: weight `max(alpha, 1/(windows+1))` for the newest window.
    pub fn fold(&mut self, count: f64, alpha: f64) {
        let a = alpha.max(1.0 / (self.windows as f64 + 1.0));
        let d = count - self.mean;
        self.mean += a * d;
        self.var = (1.0 - a) * (self.var + a * d * d);
        self.windows = self.windows.saturating_add(1);
    }

    /// The spike threshold: `max(min_calls, mean + k_sigma * sd)`.
    pub fn threshold(&self, params: &Params) -> f64 {
        let sd = self.var.max(0.0).sqrt();
        (self.mean + params.k_sigma * sd).max(params.min_calls as f64)
    }
}

/// One position of an n-gram: a tool, or `None` for the padding before a segment's first call.
pub type Gram = Vec<Option<String>>;

/// What is known to be normal for one agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentBaseline {
    /// Rate statistics by key: `*` for all calls, else the tool name.
    pub rates: BTreeMap<String, RateStats>,
    /// Tool n-grams seen (each of length `ngram`).
    pub sequences: BTreeSet<Gram>,
}

/// Which detector fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AnomalyKind {
    /// The tool sequence ending in this call was never seen.
    UnseenSequence,
    /// This call pushes a window's count past the threshold.
    RateSpike,
}

impl AnomalyKind {
    /// The reason code (`anomaly.unseen_sequence`, `anomaly.rate_spike`).
    pub fn code(self) -> &'static str {
        match self {
            AnomalyKind::UnseenSequence => UNSEEN_SEQUENCE,
            AnomalyKind::RateSpike => RATE_SPIKE,
        }
    }

    /// The metric label (`unseen_sequence`, `rate_spike`).
    pub fn label(self) -> &'static str {
        match self {
            AnomalyKind::UnseenSequence => "unseen_sequence",
            AnomalyKind::RateSpike => "rate_spike",
        }
    }
}

/// One flagged observation about a call.
#[derive(Debug, Clone, PartialEq)]
pub enum Anomaly {
    /// The n-gram ending in this call is not in the baseline.
    UnseenSequence {
        /// The n-gram.
        gram: Gram,
    },
    /// The window's count for `key` would exceed the threshold.
    RateSpike {
        /// `*` or the tool.
        key: String,
        /// Calls in the current window, including this one.
        count: u64,
        /// The threshold it exceeds.
        threshold: f64,
        /// Baseline mean calls per window.
        mean: f64,
    },
}

impl Anomaly {
    /// Which detector fired.
    pub fn kind(&self) -> AnomalyKind {
        match self {
            Anomaly::UnseenSequence { .. } => AnomalyKind::UnseenSequence,
            Anomaly::RateSpike { .. } => AnomalyKind::RateSpike,
        }
    }

    /// A sentence for logs and for the model when the call is denied.
    pub fn describe(&self) -> String {
        match self {
            Anomaly::UnseenSequence { gram } => {
                let seq: Vec<&str> = gram
                    .iter()
                    .map(|g| g.as_deref().unwrap_or("(start)"))
                    .collect();
                format!(
                    "tool sequence {} was never seen in this agent's baseline",
                    seq.join(" -> ")
                )
            }
            Anomaly::RateSpike {
                key,
                count,
                threshold,
                mean,
            } => {
                let what = if key == ALL_TOOLS {
                    "calls".to_string()
                } else {
                    format!("calls to `{key}`")
                };
                format!(
                    "{count} {what} in this window exceed the threshold {threshold:.1} (baseline mean {mean:.1})"
                )
            }
        }
    }
}

/// One agent session's anomaly detector.
#[derive(Debug, Clone)]
pub struct Detector {
    params: Params,
    baseline: AgentBaseline,
    learn_until: Duration,
    window: Option<u64>,
    counts: HashMap<String, u64>,
    spiked: HashSet<String>,
    history: VecDeque<Option<String>>,
    last_call: Option<Duration>,
}

impl Detector {
    /// A detector starting from `baseline` that learns (and flags nothing) for `learn_for`.
    pub fn new(params: Params, baseline: AgentBaseline, learn_for: Duration) -> Self {
        let history = std::iter::repeat_n(None, params.ngram.saturating_sub(1)).collect();
        Detector {
            params,
            baseline,
            learn_until: learn_for,
            window: None,
            counts: HashMap::new(),
            spiked: HashSet::new(),
            history,
            last_call: None,
        }
    }

    /// The settings.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Whether `now` is inside the learning window.
    pub fn learning(&self, now: Duration) -> bool {
        now < self.learn_until
    }

    /// The baseline as learned so far (windows not yet complete are not included).
    pub fn baseline(&self) -> &AgentBaseline {
        &self.baseline
    }

    /// The baseline, to hand to another detector (see [`Detector::baseline`]).
    pub(crate) fn baseline_mut(&mut self) -> &mut AgentBaseline {
        &mut self.baseline
    }

    /// The baseline as learned, consuming the detector (see [`Detector::baseline`]).
    pub fn into_baseline(self) -> AgentBaseline {
        self.baseline
    }

    /// Flags what is anomalous about a call to `tool` at `now`, without recording it.
    pub fn check(&mut self, tool: &str, now: Duration) -> Vec<Anomaly> {
        self.advance(now);
        if self.learning(now) {
            return Vec::new();
        }
        let mut found = Vec::new();
        let gram = self.gram(tool);
        if !self.baseline.sequences.contains(&gram) {
            found.push(Anomaly::UnseenSequence { gram });
        }
        for key in [ALL_TOOLS, tool] {
            let stats = self.baseline.rates.get(key).copied().unwrap_or_default();
            let count = self.counts.get(key).copied().unwrap_or(0).saturating_add(1);
            let threshold = stats.threshold(&self.params);
            if count as f64 > threshold {
                self.spiked.insert(key.to_string());
                found.push(Anomaly::RateSpike {
                    key: key.to_string(),
                    count,
                    threshold,
                    mean: stats.mean,
                });
            }
        }
        found
    }

    /// Records that a call to `tool` ran at `now` (counts it; learns its n-gram while learning).
    pub fn record(&mut self, tool: &str, now: Duration) {
        self.advance(now);
        for key in [ALL_TOOLS, tool] {
            let c = self.counts.entry(key.to_string()).or_insert(0);
            *c = c.saturating_add(1);
        }
        let gram = self.gram(tool);
        if self.learning(now) && self.baseline.sequences.len() < MAX_SEQUENCES {
            self.baseline.sequences.insert(gram);
        }
        if !self.history.is_empty() {
            self.history.pop_front();
            self.history.push_back(Some(tool.to_string()));
        }
        self.last_call = Some(now);
    }

    /// The n-gram a call to `tool` would complete.
    fn gram(&self, tool: &str) -> Gram {
        self.history
            .iter()
            .cloned()
            .chain(std::iter::once(Some(tool.to_string())))
            .collect()
    }

    /// Moves the clock to `now`: folds finished windows, resets the sequence after a long pause.
    fn advance(&mut self, now: Duration) {
        let w = now.as_secs() / self.params.window_secs;
        match self.window {
            None => self.window = Some(w),
            Some(current) if w > current => {
                self.fold_current();
                let idle = (w - current - 1).min(self.params.max_idle_windows());
                for _ in 0..idle {
                    for stats in self.baseline.rates.values_mut() {
                        stats.fold(0.0, self.params.alpha);
                    }
                }
                self.window = Some(w);
            }
            Some(_) => {}
        }
        if let Some(last) = self.last_call
            && now.saturating_sub(last) > Duration::from_secs(self.params.session_gap_secs)
        {
            self.history.iter_mut().for_each(|h| *h = None);
        }
    }

    /// Folds the window that just ended into every key's statistics (spiked keys excepted).
    fn fold_current(&mut self) {
        let mut keys: BTreeSet<String> = self.baseline.rates.keys().cloned().collect();
        keys.extend(self.counts.keys().cloned());
        for key in keys {
            if self.spiked.contains(&key) {
                continue;
            }
            let count = self.counts.get(&key).copied().unwrap_or(0);
            self.baseline
                .rates
                .entry(key)
                .or_default()
                .fold(count as f64, self.params.alpha);
        }
        self.counts.clear();
        self.spiked.clear();
    }
}

#[cfg(test)]
mod tests;
