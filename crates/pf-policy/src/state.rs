//! Per-session mutable state: rate-limit buckets, budgets, in-flight calls, labelled values.
//!
//! Rate limits are token buckets (capacity `requests`, refilled at `requests` per `per`),
//! implemented as GCRA (one theoretical-arrival time per bucket) in exact integer arithmetic:
//! time in nanoseconds scaled by `requests`, so no rounding ever differs between runs.

use std::time::Duration;

use crate::flow::FlowStore;
use crate::program::{Policy, Rate};

/// Token bucket as GCRA state.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Bucket {
    /// Theoretical arrival time, in nanoseconds x `requests`.
    tat: u128,
}

impl Bucket {
    /// Whether a call at `now` conforms (does not change the bucket).
    pub fn conforms(&self, rate: Rate, now: Duration) -> bool {
        let r = u128::from(rate.requests);
        let per = rate.per.as_nanos();
        let now_s = now.as_nanos() * r;
        let wait = self.tat.max(now_s) - now_s;
        wait <= per * (r.saturating_sub(1))
    }

    /// Takes one token at `now` (call only after `conforms`).
    pub fn take(&mut self, rate: Rate, now: Duration) {
        let now_s = now.as_nanos() * u128::from(rate.requests);
        self.tat = self.tat.max(now_s) + rate.per.as_nanos();
    }
}

/// Counters of one tool in one session.
#[derive(Debug, Clone, Default)]
pub(crate) struct ToolState {
    pub bucket: Bucket,
    pub calls: u64,
    pub tokens: u64,
    pub cost_usd: f64,
    pub in_flight: u32,
    /// Allowed calls whose output has not been recorded yet (for `user_named_source`).
    pub awaiting: u32,
    /// Of those, calls none of whose arguments the user wrote (counted high when unsure).
    pub awaiting_unnamed: u32,
}

/// Everything a session remembers between decisions. Create with [`Policy::new_session`].
#[derive(Debug, Clone)]
pub struct SessionState {
    pub(crate) tools: Vec<ToolState>,
    pub(crate) agent_bucket: Bucket,
    pub(crate) total_calls: u64,
    pub(crate) in_flight: u32,
    pub(crate) last_now: Duration,
    pub(crate) flow: FlowStore,
}

impl SessionState {
    pub(crate) fn new(policy: &Policy) -> Self {
        Self {
            tools: vec![ToolState::default(); policy.tools.len()],
            agent_bucket: Bucket::default(),
            total_calls: 0,
            in_flight: 0,
            last_now: Duration::ZERO,
            flow: FlowStore::default(),
        }
    }

    /// Allowed calls so far, in total.
    pub fn total_calls(&self) -> u64 {
        self.total_calls
    }

    /// Calls in flight (allowed and not yet released), in total.
    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }

    /// Allowed calls, tokens and cost so far for `tool` (zeros for unknown tools).
    pub fn usage(&self, policy: &Policy, tool: &str) -> (u64, u64, f64) {
        policy
            .by_name
            .get(tool)
            .and_then(|&id| self.tools.get(id))
            .map_or((0, 0, 0.0), |t| (t.calls, t.tokens, t.cost_usd))
    }

    /// Whether this state was made by `policy` (same tool table).
    pub(crate) fn fits(&self, policy: &Policy) -> bool {
        self.tools.len() == policy.tools.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn bucket_allows_burst_then_refills_at_rate() {
        let rate = Rate {
            requests: 3,
            per: Duration::from_secs(3),
        };
        let mut b = Bucket::default();
        for _ in 0..3 {
            assert!(b.conforms(rate, ms(0)));
            b.take(rate, ms(0));
        }
        assert!(!b.conforms(rate, ms(0)), "burst of 3 used");
        assert!(!b.conforms(rate, ms(999)));
        assert!(b.conforms(rate, ms(1000)), "one token per second");
        b.take(rate, ms(1000));
        assert!(!b.conforms(rate, ms(1500)));
        assert!(b.conforms(rate, ms(10_000)));
    }
}
