//! The worker pool: checks obligations with bounded parallelism, a time budget each, cache
//! look-ups first, and fault isolation (a panicking or looping checker affects only its own
//! obligation).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::cache::{CacheEntry, CacheStore, Lookup, cache_key};
use crate::checker::{CancelToken, CheckContext, CheckLimits, Checker, Registry};
use crate::metrics::Metrics;
use crate::obligation::{Obligation, Planned};
use crate::verdict::{CheckReport, Verdict};

/// How the engine runs.
#[derive(Debug, Clone, Copy)]
pub struct EngineConfig {
    /// Obligations checked at once (at least 1).
    pub jobs: usize,
    /// Limits handed to every checker.
    pub limits: CheckLimits,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            jobs: thread::available_parallelism().map_or(1, |n| n.get()),
            limits: CheckLimits::default(),
        }
    }
}

/// The result for one obligation, as reported and attested.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObligationResult {
    /// Obligation name.
    pub name: String,
    /// Obligation type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Checker name (`None` when no checker was registered or the input was rejected).
    pub checker: Option<String>,
    /// Checker version.
    pub checker_version: Option<String>,
    /// Obligation input digest, hex (`None` for rejected inputs).
    pub input_digest: Option<String>,
    /// The verdict.
    pub verdict: Verdict,
    /// Checker statistics.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub statistics: std::collections::BTreeMap<String, u64>,
    /// Axioms reported by the checker (Lean).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub axioms: Option<Vec<String>>,
    /// Wall-clock time spent checking, in milliseconds (0 for a cache hit).
    pub duration_ms: u64,
    /// The obligation's time budget, in milliseconds.
    pub timeout_ms: u64,
    /// True when the verdict came from the cache.
    pub cached: bool,
    /// Capabilities the obligation covers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub covers: Vec<String>,
}

/// Progress events, for a progress display.
#[derive(Debug)]
pub enum Progress<'a> {
    /// An obligation was taken by a worker.
    Started {
        /// Obligation name.
        name: &'a str,
        /// Obligations in this run.
        total: usize,
    },
    /// An obligation finished.
    Finished {
        /// Its result.
        result: &'a ObligationResult,
        /// Finished so far (including this one).
        done: usize,
        /// Obligations in this run.
        total: usize,
    },
}

/// Checks obligations with registered checkers.
pub struct Engine {
    registry: Registry,
    cache: Option<Arc<dyn CacheStore>>,
    config: EngineConfig,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("registry", &self.registry)
            .field("cache", &self.cache.is_some())
            .field("config", &self.config)
            .finish()
    }
}

impl Engine {
    /// An engine over `registry`, without a cache.
    pub fn new(registry: Registry, config: EngineConfig) -> Self {
        Self {
            registry,
            cache: None,
            config,
            metrics: Arc::new(Metrics::new()),
        }
    }

    /// Uses `cache` for look-ups and stores.
    pub fn with_cache(mut self, cache: Arc<dyn CacheStore>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// The engine's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Checks every planned obligation, `jobs` at a time; results come back in input order.
    pub fn check_all(
        &self,
        planned: &[Planned],
        progress: &(dyn Fn(Progress<'_>) + Sync),
    ) -> Vec<ObligationResult> {
        let total = planned.len();
        let next = AtomicUsize::new(0);
        let done = AtomicUsize::new(0);
        let slots: Mutex<Vec<Option<ObligationResult>>> = Mutex::new(vec![None; total]);
        let workers = self.config.jobs.clamp(1, total.max(1));
        thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(item) = planned.get(i) else { break };
                        progress(Progress::Started {
                            name: item.name(),
                            total,
                        });
                        let result = match item {
                            Planned::Ready(ob) => self.check_one(ob),
                            Planned::Rejected(r) => {
                                let result = ObligationResult {
                                    name: r.name.clone(),
                                    kind: r.kind.clone(),
                                    checker: None,
                                    checker_version: None,
                                    input_digest: None,
                                    verdict: Verdict::error(r.reason.clone()),
                                    statistics: Default::default(),
                                    axioms: None,
                                    duration_ms: 0,
                                    timeout_ms: millis(r.timeout),
                                    cached: false,
                                    covers: r.covers.clone(),
                                };
                                self.metrics.count_verdict("error", "none");
                                result
                            }
                        };
                        let n = done.fetch_add(1, Ordering::SeqCst) + 1;
                        progress(Progress::Finished {
                            result: &result,
                            done: n,
                            total,
                        });
                        if let Ok(mut slots) = slots.lock() {
                            slots[i] = Some(result);
                        }
                    }
                });
            }
        });
        let slots = slots.into_inner().unwrap_or_default();
        slots.into_iter().flatten().collect()
    }

    /// The result record for `ob` before checking: identity, input digest, checker name and
    /// version (when one is registered), verdict `unknown("not checked")`.
    pub fn result_template(&self, ob: &Obligation) -> ObligationResult {
        let checker = self.registry.get(&ob.kind);
        ObligationResult {
            name: ob.name.clone(),
            kind: ob.kind.clone(),
            checker: checker.map(|c| c.name().to_string()),
            checker_version: checker.map(|c| c.version().to_string()),
            input_digest: Some(ob.inputs_digest().to_hex()),
            verdict: Verdict::unknown("not checked"),
            statistics: Default::default(),
            axioms: None,
            duration_ms: 0,
            timeout_ms: millis(ob.timeout),
            cached: false,
            covers: ob.covers.clone(),
        }
    }

    /// Checks one obligation: cache first, then its checker in isolation.
    pub fn check_one(&self, ob: &Obligation) -> ObligationResult {
        let digest = ob.inputs_digest();
        let mut result = self.result_template(ob);
        let Some(checker) = self.registry.get(&ob.kind) else {
            result.verdict = Verdict::error(format!(
                "no checker registered for obligation type {:?} (registered: {})",
                ob.kind,
                self.registry.kinds().join(", ")
            ));
            self.metrics.count_verdict("error", "none");
            return result;
        };
        let key = cache_key(checker.name(), checker.version(), &digest);
        if let Some(cache) = &self.cache {
            match cache.get(&key) {
                Lookup::Hit(entry) => {
                    self.metrics.cache_hits.inc();
                    self.metrics
                        .count_verdict(entry.report.verdict.status(), checker.name());
                    apply(&mut result, entry.report);
                    result.cached = true;
                    return result;
                }
                Lookup::Corrupt => {
                    self.metrics.cache_corrupt.inc();
                    self.metrics.cache_misses.inc();
                }
                Lookup::Miss => {
                    self.metrics.cache_misses.inc();
                }
            }
        }
        let start = Instant::now();
        let report = run_isolated(checker, ob, self.config.limits);
        let elapsed = start.elapsed();
        self.metrics.check_seconds.observe(elapsed.as_secs_f64());
        self.metrics
            .count_verdict(report.verdict.status(), checker.name());
        result.duration_ms = millis(elapsed);
        if let Some(cache) = &self.cache
            && matches!(report.verdict, Verdict::Proved | Verdict::Refuted { .. })
        {
            cache.put(
                &key,
                &CacheEntry {
                    checker: checker.name().to_string(),
                    version: checker.version().to_string(),
                    report: report.clone(),
                },
            );
        }
        apply(&mut result, report);
        result
    }
}

fn apply(result: &mut ObligationResult, report: CheckReport) {
    result.verdict = report.verdict;
    result.statistics = report.statistics;
    result.axioms = report.axioms;
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Runs `checker` on its own thread with the obligation's time budget.
///
/// A panic becomes an `error` verdict (`catch_unwind`). On time-out the cancel token is set and
/// the verdict is `unknown`; a native checker that ignores the token keeps its thread until it
/// returns (Rust threads cannot be killed), but the engine does not wait for it.
pub fn run_isolated(
    checker: &Arc<dyn Checker>,
    ob: &Obligation,
    limits: CheckLimits,
) -> CheckReport {
    let (tx, rx) = mpsc::sync_channel(1);
    let cancel = CancelToken::new();
    let ctx = CheckContext {
        deadline: Instant::now() + ob.timeout,
        cancel: cancel.clone(),
        limits,
    };
    let checker = Arc::clone(checker);
    let owned = ob.clone();
    let spawned = thread::Builder::new()
        .name(format!("pf-verify {}", ob.name))
        .spawn(move || {
            let outcome = catch_unwind(AssertUnwindSafe(|| checker.check(&owned, &ctx)));
            let _ = tx.send(outcome.map_err(|p| panic_message(p.as_ref())));
        });
    if let Err(e) = spawned {
        return CheckReport::new(Verdict::error(format!("cannot start checker thread: {e}")));
    }
    match rx.recv_timeout(ob.timeout) {
        Ok(Ok(report)) => report,
        Ok(Err(msg)) => CheckReport::new(Verdict::error(format!("checker panicked: {msg}"))),
        Err(mpsc::RecvTimeoutError::Timeout) => {
            cancel.cancel();
            CheckReport::new(Verdict::unknown(format!(
                "time budget of {} ms exceeded; checker cancelled",
                millis(ob.timeout)
            )))
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            CheckReport::new(Verdict::error("checker thread ended without a result"))
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}
