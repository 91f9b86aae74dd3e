//! The anomaly baseline file (`pf-guard-baseline/1`) and learning it from a decision log.
//!
//! A baseline holds, per agent, the rate statistics and tool n-grams the [`Detector`] treats
//! as normal, together with the [`Params`] they were learned with (docs/guard.md, "Anomaly
//! detection", gives the format). It is learned offline by replaying the allowed calls of a
//! JSON Lines decision log (what `pf guard --log` writes) through a [`Detector`] in learning
//! mode, so an offline baseline means exactly what the same calls would teach a running guard.

use std::collections::BTreeMap;
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::anomaly::{AgentBaseline, Detector, MAX_SEQUENCES, ParamError, Params};

/// The `format` value of a baseline file.
pub const FORMAT: &str = "pf-guard-baseline/1";
/// Largest baseline file read.
pub const MAX_BASELINE_BYTES: u64 = 64 * 1024 * 1024;
/// Longest decision-log line read.
pub const MAX_LOG_LINE_BYTES: usize = 1024 * 1024;
/// Most distinct agents learned from one log.
pub const MAX_AGENTS: usize = 10_000;

/// Learned baselines of one or more agents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    /// Always [`FORMAT`].
    pub format: String,
    /// The settings the statistics were learned with.
    pub params: Params,
    /// Per agent (the spec's `name`).
    pub agents: BTreeMap<String, AgentBaseline>,
}

/// Why a baseline could not be read, written or learned.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_BASELINE_BYTES`].
    #[error("{path}: baseline larger than {MAX_BASELINE_BYTES} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// The file is not valid baseline JSON.
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// The content is well-formed but not a usable baseline.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A decision-log line is not a decision record.
    #[error("{path}:{line}: {message}")]
    LogRecord {
        /// The log.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The baseline has no entry for the agent being guarded.
    #[error("the baseline has no agent `{agent}` (it has: {known})")]
    UnknownAgent {
        /// The agent.
        agent: String,
        /// Agents it does have.
        known: String,
    },
}

/// What learning from a log saw.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LearnSummary {
    /// Lines read.
    pub lines: usize,
    /// Allowed calls replayed.
    pub calls: usize,
    /// Agents with at least one allowed call.
    pub agents: usize,
}

impl Baseline {
    /// An empty baseline with these settings.
    pub fn new(params: Params) -> Self {
        Baseline {
            format: FORMAT.to_string(),
            params,
            agents: BTreeMap::new(),
        }
    }

    /// Reads and validates a baseline file.
    pub fn load(path: &Path) -> Result<Baseline, BaselineError> {
        let io = |source| BaselineError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let mut text = String::new();
        file.take(MAX_BASELINE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(io)?;
        if text.len() as u64 > MAX_BASELINE_BYTES {
            return Err(BaselineError::TooLarge {
                path: path.to_path_buf(),
            });
        }
        Baseline::parse(&text, path)
    }

    /// Parses and validates baseline JSON; `path` only names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Baseline, BaselineError> {
        let baseline: Baseline = serde_json::from_str(text).map_err(|e| BaselineError::Syntax {
            path: path.to_path_buf(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        baseline
            .validate()
            .map_err(|message| BaselineError::Invalid {
                path: path.to_path_buf(),
                message,
            })?;
        Ok(baseline)
    }

    fn validate(&self) -> Result<(), String> {
        if self.format != FORMAT {
            return Err(format!(
                "`format` is {:?}; expected {FORMAT:?}",
                self.format
            ));
        }
        self.params
            .validate()
            .map_err(|e: ParamError| e.to_string())?;
        for (agent, b) in &self.agents {
            if b.sequences.len() > MAX_SEQUENCES {
                return Err(format!(
                    "agent `{agent}` has {} sequences; at most {MAX_SEQUENCES} are allowed",
                    b.sequences.len()
                ));
            }
            if let Some(g) = b.sequences.iter().find(|g| g.len() != self.params.ngram) {
                return Err(format!(
                    "agent `{agent}`: sequence {g:?} has length {}; params.ngram is {}",
                    g.len(),
                    self.params.ngram
                ));
            }
            for (key, s) in &b.rates {
                if !(s.mean.is_finite() && s.mean >= 0.0 && s.var.is_finite() && s.var >= 0.0) {
                    return Err(format!(
                        "agent `{agent}`, rate `{key}`: mean and var must be finite and >= 0"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Writes the baseline as pretty JSON, atomically (temporary file, fsync, rename).
    pub fn save(&self, path: &Path) -> Result<(), BaselineError> {
        let io = |source| BaselineError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut text = serde_json::to_string_pretty(self).map_err(|e| io(e.into()))?;
        text.push('\n');
        let tmp = path.with_extension("json.tmp");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(io)?;
            f.write_all(text.as_bytes()).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// The baseline of `agent`.
    pub fn agent(&self, agent: &str) -> Result<&AgentBaseline, BaselineError> {
        self.agents
            .get(agent)
            .ok_or_else(|| BaselineError::UnknownAgent {
                agent: agent.to_string(),
                known: if self.agents.is_empty() {
                    "none".into()
                } else {
                    self.agents.keys().cloned().collect::<Vec<_>>().join(", ")
                },
            })
    }

    /// Learns a baseline from a JSON Lines decision log: every `call` record with effect
    /// `allow`, per agent, in log order, timed by `ts_ms`. Other records are skipped.
    pub fn learn_from_log(
        log: impl BufRead,
        path: &Path,
        params: Params,
    ) -> Result<(Baseline, LearnSummary), BaselineError> {
        params.validate().map_err(|e| BaselineError::Invalid {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let mut replay: BTreeMap<String, (Detector, u64, u64)> = BTreeMap::new();
        let mut summary = LearnSummary::default();
        let mut reader = log;
        let mut line = Vec::new();
        loop {
            line.clear();
            let n =
                read_bounded_line(&mut reader, &mut line).map_err(|source| BaselineError::Io {
                    path: path.to_path_buf(),
                    source,
                })?;
            if n == 0 {
                break;
            }
            summary.lines += 1;
            let bad = |message: String| BaselineError::LogRecord {
                path: path.to_path_buf(),
                line: summary.lines,
                message,
            };
            if line.len() > MAX_LOG_LINE_BYTES {
                return Err(bad(format!("line longer than {MAX_LOG_LINE_BYTES} bytes")));
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let record: Value = serde_json::from_slice(&line)
                .map_err(|e| bad(format!("column {}: {e}", e.column())))?;
            let field = |name: &str| {
                record
                    .get(name)
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad(format!("no string field `{name}`")))
            };
            if field("kind")? != "call" || field("effect")? != "allow" {
                continue;
            }
            let agent = field("agent")?;
            let tool = field("tool")?;
            let ts = record
                .get("ts_ms")
                .and_then(Value::as_u64)
                .ok_or_else(|| bad("no integer field `ts_ms`".into()))?;
            if !replay.contains_key(agent) && replay.len() >= MAX_AGENTS {
                return Err(bad(format!("more than {MAX_AGENTS} agents")));
            }
            let (detector, first, last) = replay.entry(agent.to_string()).or_insert_with(|| {
                let d = Detector::new(params.clone(), AgentBaseline::default(), Duration::MAX);
                (d, ts, ts)
            });
            // Concurrent writers can interleave slightly out of order; time never runs back.
            *last = (*last).max(ts);
            let now = Duration::from_millis(*last - *first);
            detector.record(tool, now);
            summary.calls += 1;
        }
        summary.agents = replay.len();
        let mut baseline = Baseline::new(params);
        baseline.agents = replay
            .into_iter()
            .map(|(agent, (d, _, _))| (agent, d.baseline().clone()))
            .collect();
        Ok((baseline, summary))
    }
}

/// Reads up to and including the next `\n`, keeping at most `MAX_LOG_LINE_BYTES + 1` bytes of
/// it (enough to tell an oversize line); returns the bytes consumed.
fn read_bounded_line(reader: &mut impl BufRead, out: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut consumed = 0;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(consumed);
        }
        let (chunk, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (&buf[..i], i + 1),
            None => (buf, buf.len()),
        };
        let room = (MAX_LOG_LINE_BYTES + 1).saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let newline = done > chunk.len();
        reader.consume(done);
        consumed += done;
        if newline {
            return Ok(consumed);
        }
    }
}

#[cfg(test)]
mod tests;
