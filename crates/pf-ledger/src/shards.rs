//! Temporal sharding (as CT logs do): a deployment runs one log per time period, each with its
//! own origin and key, and publishes a shard list that reader tools follow.
//!
//! The shard list is JSON: `{"shards": [{"origin", "log", "vkey", "start", "end"}]}` where
//! `log` is a directory or `http://` prefix and `start`/`end` are POSIX seconds, half-open,
//! ascending and non-overlapping.

use serde::{Deserialize, Serialize};

use crate::note::VerifierKey;

/// One shard: a log accepting decisions made in `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shard {
    /// Checkpoint origin (and key name) of the shard's log.
    pub origin: String,
    /// Where to read it: directory or `http://` prefix.
    pub log: String,
    /// Verifier key of the shard's log.
    pub vkey: String,
    /// First second covered (POSIX).
    pub start: u64,
    /// First second not covered (POSIX).
    pub end: u64,
}

/// An ordered list of shards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardList {
    /// Shards, ascending by time.
    pub shards: Vec<Shard>,
}

/// Why a shard list was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    /// Not valid JSON for a shard list.
    #[error("shard list: line {line}, column {column}: {message}")]
    Json {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// Parser message.
        message: String,
    },
    /// A shard entry is invalid.
    #[error("shard {index} ({origin}): {reason}")]
    Invalid {
        /// Position in the list.
        index: usize,
        /// Its origin.
        origin: String,
        /// What is wrong.
        reason: String,
    },
}

impl ShardList {
    /// Parses and validates: each key is well formed and named for its origin, periods are
    /// non-empty, ascending and non-overlapping, origins unique.
    pub fn parse(text: &str) -> Result<ShardList, ShardError> {
        let list: ShardList = serde_json::from_str(text).map_err(|e| ShardError::Json {
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        let mut origins = std::collections::HashSet::new();
        for (i, s) in list.shards.iter().enumerate() {
            let bad = |reason: String| ShardError::Invalid {
                index: i,
                origin: s.origin.clone(),
                reason,
            };
            let k = VerifierKey::parse(&s.vkey).map_err(|e| bad(format!("vkey: {e}")))?;
            if k.name != s.origin {
                return Err(bad(format!(
                    "vkey is named {:?}, not the shard origin",
                    k.name
                )));
            }
            if s.start >= s.end {
                return Err(bad("empty period (start >= end)".into()));
            }
            if i > 0 && list.shards[i - 1].end > s.start {
                return Err(bad("period overlaps or precedes the previous shard".into()));
            }
            if !origins.insert(s.origin.clone()) {
                return Err(bad("origin used twice".into()));
            }
        }
        Ok(list)
    }

    /// The shard covering POSIX time `t`.
    pub fn shard_for(&self, t: u64) -> Option<&Shard> {
        self.shards.iter().find(|s| s.start <= t && t < s.end)
    }

    /// Verifier key of a shard (validated by [`ShardList::parse`]).
    pub fn vkey(shard: &Shard) -> Option<VerifierKey> {
        VerifierKey::parse(&shard.vkey).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::note::{ALG_ED25519, SignerKey};

    fn shard(origin: &str, start: u64, end: u64) -> Shard {
        let k = SignerKey::from_seed(origin, ALG_ED25519, [1; 32]).expect("key");
        Shard {
            origin: origin.into(),
            log: format!("/logs/{start}"),
            vkey: k.verifier().to_string(),
            start,
            end,
        }
    }

    #[test]
    fn valid_list_routes_by_time() {
        let l = ShardList {
            shards: vec![
                shard("pf.test/2026h1", 0, 100),
                shard("pf.test/2026h2", 100, 200),
            ],
        };
        let parsed = ShardList::parse(&serde_json::to_string(&l).expect("json")).expect("valid");
        assert_eq!(
            parsed.shard_for(150).map(|s| s.origin.as_str()),
            Some("pf.test/2026h2")
        );
        assert_eq!(parsed.shard_for(200), None);
    }

    #[test]
    fn overlapping_or_misnamed_shards_are_rejected() {
        let overlap = ShardList {
            shards: vec![shard("a.test/1", 0, 100), shard("a.test/2", 50, 200)],
        };
        assert!(ShardList::parse(&serde_json::to_string(&overlap).expect("json")).is_err());
        let mut misnamed = shard("a.test/1", 0, 100);
        misnamed.origin = "a.test/other".into();
        let l = ShardList {
            shards: vec![misnamed],
        };
        assert!(ShardList::parse(&serde_json::to_string(&l).expect("json")).is_err());
        assert!(matches!(
            ShardList::parse("{\"shards\": [}"),
            Err(ShardError::Json { line: 1, .. })
        ));
    }
}
