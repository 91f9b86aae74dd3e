//! The anomaly baseline file (`pf-guard-baseline/1`) and learning it from a decision log.
//!
//! A baseline holds, per agent, the rate statistics and tool n-grams the [`Detector`] treats
//! as normal, together with the [`Params`] they were learned with (docs/guard.md, "Anomaly
//! detection", gives the format). It is learned offline by replaying the allowed calls of a
//! JSON Lines decision log (what `pf guard --log` writes) through a [`Detector`] in learning
//! mode, so an offline baseline means exactly what the same calls would teach a running guard.
//!
//! A running guard gives every session (an stdio process, an MCP or OpenAI session of the HTTP
//! proxies) a detector of its own, and its records name the session (`session`). So learning
//! replays each session on its own, from the baseline learned so far, once the session is over
//! (no call of it for `session_gap_secs` of log time, or the log's end): calls of sessions that
//! ran at the same time never mix into n-grams or window counts. Records without a session (logs
//! of older guards) are replayed as one stream per agent, in log order.

use std::collections::{BTreeMap, HashMap};
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
/// Most sessions in progress at once while learning (their calls wait in memory).
pub const MAX_OPEN_SESSIONS: usize = 100_000;
/// Most calls of sessions in progress held in memory at once while learning.
pub const MAX_HELD_CALLS: usize = 50_000_000;

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
    /// Sessions replayed (records that name none count as one per agent).
    pub sessions: usize,
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
    /// `allow`, per agent and session (module docs), timed by `ts_ms`. Other records are
    /// skipped.
    pub fn learn_from_log(
        log: impl BufRead,
        path: &Path,
        params: Params,
    ) -> Result<(Baseline, LearnSummary), BaselineError> {
        params.validate().map_err(|e| BaselineError::Invalid {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let mut learner = Learner::new(params.clone());
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
            let session = match record.get("session") {
                None => None,
                Some(Value::String(s)) => Some(s.as_str()),
                Some(_) => return Err(bad("field `session` is not a string".into())),
            };
            learner.call(agent, session, tool, ts).map_err(bad)?;
            summary.calls += 1;
        }
        let (agents, sessions) = learner.finish();
        summary.agents = agents.len();
        summary.sessions = sessions;
        let mut baseline = Baseline::new(params);
        baseline.agents = agents;
        Ok((baseline, summary))
    }
}

/// The calls of a session in progress: `(ts_ms, tool)` in log order.
struct Held {
    calls: Vec<(u64, u32)>,
    last_ts: u64,
}

/// One agent's learning.
struct Agent {
    /// The detector of the agent's calls that name no session; it also holds the agent's
    /// baseline as learned so far, which each ended session's replay starts from.
    keeper: Detector,
    /// First and latest time (ms) of the calls that name no session, if there were any.
    unnamed: Option<(u64, u64)>,
}

/// Replays allowed calls into per-agent baselines (see the module docs).
struct Learner {
    params: Params,
    agents: BTreeMap<String, Agent>,
    /// Sessions in progress, by agent and session id.
    open: HashMap<(String, String), Held>,
    /// Tool names of held calls, by index.
    tools: Vec<String>,
    tool_ids: HashMap<String, u32>,
    held: usize,
    /// The log time at which sessions are next looked at for their end.
    sweep_at: u64,
    replayed: usize,
}

impl Learner {
    fn new(params: Params) -> Self {
        Learner {
            params,
            agents: BTreeMap::new(),
            open: HashMap::new(),
            tools: Vec::new(),
            tool_ids: HashMap::new(),
            held: 0,
            sweep_at: 0,
            replayed: 0,
        }
    }

    fn gap_ms(&self) -> u64 {
        self.params.session_gap_secs.saturating_mul(1000)
    }

    /// One allowed call of `agent` at `ts` (ms), in `session` if the record names one.
    fn call(
        &mut self,
        agent: &str,
        session: Option<&str>,
        tool: &str,
        ts: u64,
    ) -> Result<(), String> {
        if !self.agents.contains_key(agent) {
            if self.agents.len() >= MAX_AGENTS {
                return Err(format!("more than {MAX_AGENTS} agents"));
            }
            let keeper =
                Detector::new(self.params.clone(), AgentBaseline::default(), Duration::MAX);
            let learning = Agent {
                keeper,
                unnamed: None,
            };
            self.agents.insert(agent.to_string(), learning);
        }
        match session {
            None => {
                let Some(learning) = self.agents.get_mut(agent) else {
                    return Err(format!("agent `{agent}` vanished"));
                };
                let (first, last) = learning.unnamed.get_or_insert((ts, ts));
                // Concurrent writers can interleave slightly out of order; time never runs back.
                *last = (*last).max(ts);
                let now = Duration::from_millis(*last - *first);
                learning.keeper.record(tool, now);
            }
            Some(session) => self.hold(agent, session, tool, ts)?,
        }
        if ts >= self.sweep_at {
            self.replay_ended(ts);
            self.sweep_at = ts.saturating_add(self.gap_ms());
        }
        Ok(())
    }

    /// Keeps a call of a session in progress.
    fn hold(&mut self, agent: &str, session: &str, tool: &str, ts: u64) -> Result<(), String> {
        if self.held >= MAX_HELD_CALLS {
            return Err(format!(
                "more than {MAX_HELD_CALLS} calls of sessions in progress at once"
            ));
        }
        let tool = match self.tool_ids.get(tool) {
            Some(&id) => id,
            None => {
                let id = u32::try_from(self.tools.len()).map_err(|_| "too many tools")?;
                self.tools.push(tool.to_string());
                self.tool_ids.insert(tool.to_string(), id);
                id
            }
        };
        let key = (agent.to_string(), session.to_string());
        if !self.open.contains_key(&key) && self.open.len() >= MAX_OPEN_SESSIONS {
            return Err(format!(
                "more than {MAX_OPEN_SESSIONS} sessions in progress at once"
            ));
        }
        let held = self.open.entry(key).or_insert_with(|| Held {
            calls: Vec::new(),
            last_ts: ts,
        });
        held.last_ts = held.last_ts.max(ts);
        held.calls.push((ts, tool));
        self.held += 1;
        Ok(())
    }

    /// Replays the sessions with no call in the last `session_gap_secs` before `now` (ms).
    fn replay_ended(&mut self, now: u64) {
        let gap = self.gap_ms();
        let ended: Vec<(String, String)> = self
            .open
            .iter()
            .filter(|(_, h)| h.last_ts.saturating_add(gap) < now)
            .map(|(k, _)| k.clone())
            .collect();
        self.replay(ended);
    }

    /// Replays `sessions`, earliest ended first, each from its agent's baseline so far.
    fn replay(&mut self, sessions: Vec<(String, String)>) {
        let mut ended: Vec<((String, String), Held)> = sessions
            .into_iter()
            .filter_map(|k| self.open.remove(&k).map(|h| (k, h)))
            .collect();
        ended.sort_by(|(ka, a), (kb, b)| a.last_ts.cmp(&b.last_ts).then_with(|| ka.cmp(kb)));
        for ((agent, _), held) in ended {
            self.held -= held.calls.len();
            self.replayed += 1;
            let Some(learning) = self.agents.get_mut(&agent) else {
                continue;
            };
            let keeper = &mut learning.keeper;
            let so_far = std::mem::take(keeper.baseline_mut());
            let mut d = Detector::new(self.params.clone(), so_far, Duration::MAX);
            let first = held.calls.first().map_or(0, |c| c.0);
            let mut last = first;
            for (ts, tool) in held.calls {
                last = last.max(ts);
                let name = self.tools.get(tool as usize).map_or("", String::as_str);
                d.record(name, Duration::from_millis(last - first));
            }
            *keeper.baseline_mut() = d.into_baseline();
        }
    }

    /// Replays every session still in progress; the agents' baselines and the number of
    /// sessions replayed (a stream of records naming no session counts as one).
    fn finish(mut self) -> (BTreeMap<String, AgentBaseline>, usize) {
        let open: Vec<(String, String)> = self.open.keys().cloned().collect();
        self.replay(open);
        let mut sessions = self.replayed;
        let agents = self
            .agents
            .into_iter()
            .map(|(agent, learning)| {
                if learning.unnamed.is_some() {
                    sessions += 1;
                }
                (agent, learning.keeper.into_baseline())
            })
            .collect();
        (agents, sessions)
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
