//! The one trait every checker backend implements, and the registry that maps obligation types
//! to checkers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::obligation::Obligation;
use crate::verdict::CheckReport;

/// Shared flag a checker polls to learn that its result is no longer wanted.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A fresh, not-cancelled token.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks every holder to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// True once [`CancelToken::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Resource limits handed to a checker (the WASM sandbox enforces them; native checkers should
/// honour them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckLimits {
    /// Largest memory a checker may use for one obligation, in bytes.
    pub max_memory_bytes: u64,
    /// WASM fuel (instructions, roughly) per obligation.
    pub fuel: u64,
}

impl Default for CheckLimits {
    /// 512 MiB, 10^10 fuel.
    fn default() -> Self {
        Self {
            max_memory_bytes: 512 * 1024 * 1024,
            fuel: 10_000_000_000,
        }
    }
}

/// What a checker gets besides the obligation: when to give up and how much it may use.
#[derive(Debug, Clone)]
pub struct CheckContext {
    /// Wall-clock deadline (the obligation's time budget from its start).
    pub deadline: Instant,
    /// Set when the engine stops waiting (time-out or shutdown).
    pub cancel: CancelToken,
    /// Memory and fuel limits.
    pub limits: CheckLimits,
}

impl CheckContext {
    /// True when the checker should stop: cancelled or past the deadline. Long-running native
    /// checkers must poll this; the engine abandons (and reports `unknown`) those that do not.
    pub fn should_stop(&self) -> bool {
        self.cancel.is_cancelled() || Instant::now() >= self.deadline
    }
}

/// A checker backend: discharges obligations of one or more types.
///
/// Implementations must be deterministic for `proved`/`refuted` (those verdicts are cached
/// under `name` + `version` + the obligation's input digest) and should return `unknown` when
/// [`CheckContext::should_stop`] turns true. A panic is caught by the engine and reported as an
/// `error` verdict for that obligation only.
pub trait Checker: Send + Sync {
    /// Stable checker name, e.g. `pf-lean`.
    fn name(&self) -> &str;
    /// Checker version; part of the cache key, so bump it whenever verdicts may change.
    fn version(&self) -> &str;
    /// Checks one obligation.
    fn check(&self, obligation: &Obligation, ctx: &CheckContext) -> CheckReport;
}

/// Obligation type -> checker.
#[derive(Clone, Default)]
pub struct Registry {
    by_kind: BTreeMap<String, Arc<dyn Checker>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut m = f.debug_map();
        for (k, c) in &self.by_kind {
            m.entry(k, &format!("{} {}", c.name(), c.version()));
        }
        m.finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Routes obligations of type `kind` to `checker` (replacing any earlier one).
    pub fn register(&mut self, kind: &str, checker: Arc<dyn Checker>) -> &mut Self {
        self.by_kind.insert(kind.to_string(), checker);
        self
    }

    /// The checker for `kind`.
    pub fn get(&self, kind: &str) -> Option<&Arc<dyn Checker>> {
        self.by_kind.get(kind)
    }

    /// Registered types, sorted.
    pub fn kinds(&self) -> Vec<&str> {
        self.by_kind.keys().map(String::as_str).collect()
    }
}
