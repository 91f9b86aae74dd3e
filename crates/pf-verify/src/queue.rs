//! PostgreSQL scale-out: obligations in a shared table, taken by `pf verify worker` processes
//! with `FOR UPDATE SKIP LOCKED` under an expiring lease, results written back and to a shared
//! cache table.
//!
//! A worker that dies stops renewing its lease; once the lease expires another worker takes the
//! obligation again (`attempts` counts the takes). A late result from a worker that lost its
//! lease is discarded. An obligation taken more than [`MAX_ATTEMPTS`] times (it keeps killing
//! workers) ends as an `error` verdict instead of being retried forever.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use pf_bundle::Sha256Digest;
use serde::{Deserialize, Serialize};
use tokio_postgres::{Client, NoTls};

use crate::cache::{CacheEntry, cache_key, seal, unseal};
use crate::checker::CancelToken;
use crate::engine::{Engine, ObligationResult};
use crate::obligation::{Input, Obligation};
use crate::verdict::Verdict;

/// Takes after which an obligation is given up with an `error` verdict.
pub const MAX_ATTEMPTS: i32 = 3;

/// Queue failures (database unreachable, SQL error, corrupt row).
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// PostgreSQL error.
    #[error("postgres: {0}")]
    Db(#[from] tokio_postgres::Error),
    /// A row does not decode.
    #[error("queue row {0} is corrupt: {1}")]
    Corrupt(String, String),
    /// The run did not finish in time.
    #[error("run {run}: {pending} obligations still unfinished after {waited:?}")]
    Timeout {
        /// Run id.
        run: String,
        /// Obligations not done.
        pending: i64,
        /// Time waited.
        waited: Duration,
    },
}

/// Everything about an obligation except its input bytes (stored as JSON beside them).
#[derive(Debug, Serialize, Deserialize)]
struct JobMeta {
    kind: String,
    params: BTreeMap<String, String>,
    timeout_ms: u64,
    covers: Vec<String>,
    inputs: Vec<(String, String)>,
}

/// An obligation taken from the queue under a lease.
#[derive(Debug)]
pub struct Job {
    /// Run it belongs to.
    pub run_id: String,
    /// The obligation.
    pub obligation: Obligation,
    /// How many times it has been taken (1 on the first take).
    pub attempts: i32,
}

/// A connection to the queue.
pub struct Queue {
    client: Client,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Queue")
    }
}

const SCHEMA_SQL: &str = "
CREATE TABLE IF NOT EXISTS pf_verify_jobs (
    run_id      text        NOT NULL,
    name        text        NOT NULL,
    meta        text        NOT NULL,
    inputs      bytea[]     NOT NULL,
    state       text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending','running','done')),
    lease_owner text,
    lease_until timestamptz,
    attempts    integer     NOT NULL DEFAULT 0,
    result      text,
    PRIMARY KEY (run_id, name)
);
CREATE INDEX IF NOT EXISTS pf_verify_jobs_state ON pf_verify_jobs (state, lease_until);
CREATE TABLE IF NOT EXISTS pf_verify_cache (
    key     text        PRIMARY KEY,
    sealed  bytea       NOT NULL,
    created timestamptz NOT NULL DEFAULT now()
);";

impl Queue {
    /// Connects to `url` and creates the tables if needed; with `schema`, everything lives in
    /// that schema (created if missing).
    pub async fn connect(url: &str, schema: Option<&str>) -> Result<Self, QueueError> {
        let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let q = Self { client };
        if let Some(s) = schema {
            let ident = format!("\"{}\"", s.replace('"', "\"\""));
            q.client
                .batch_execute(&format!(
                    "SELECT pg_advisory_lock(7007); CREATE SCHEMA IF NOT EXISTS {ident}; \
                     SELECT pg_advisory_unlock(7007); SET search_path TO {ident}"
                ))
                .await?;
        }
        // Concurrent CREATE ... IF NOT EXISTS can still collide; serialise it.
        q.client
            .batch_execute(&format!(
                "SELECT pg_advisory_lock(7007); {SCHEMA_SQL} SELECT pg_advisory_unlock(7007);"
            ))
            .await?;
        Ok(q)
    }

    /// Adds obligations to run `run_id` (already present names are left alone).
    pub async fn enqueue(
        &self,
        run_id: &str,
        obligations: &[Obligation],
    ) -> Result<(), QueueError> {
        for ob in obligations {
            let meta = JobMeta {
                kind: ob.kind.clone(),
                params: ob.params.clone(),
                timeout_ms: u64::try_from(ob.timeout.as_millis()).unwrap_or(u64::MAX),
                covers: ob.covers.clone(),
                inputs: ob
                    .inputs
                    .iter()
                    .map(|i| (i.role.clone(), i.path.clone()))
                    .collect(),
            };
            let meta = serde_json::to_string(&meta).unwrap_or_default();
            let data: Vec<&[u8]> = ob.inputs.iter().map(|i| &i.bytes[..]).collect();
            self.client
                .execute(
                    "INSERT INTO pf_verify_jobs (run_id, name, meta, inputs) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (run_id, name) DO NOTHING",
                    &[&run_id, &ob.name, &meta, &data],
                )
                .await?;
        }
        Ok(())
    }

    /// Takes one pending obligation, or one whose lease expired, for `worker` for `lease`.
    pub async fn claim(&self, worker: &str, lease: Duration) -> Result<Option<Job>, QueueError> {
        let row = self
            .client
            .query_opt(
                "UPDATE pf_verify_jobs SET state = 'running', lease_owner = $1, \
                   lease_until = clock_timestamp() + make_interval(secs => $2), attempts = attempts + 1 \
                 WHERE (run_id, name) = ( \
                   SELECT run_id, name FROM pf_verify_jobs \
                   WHERE state = 'pending' OR (state = 'running' AND lease_until < clock_timestamp()) \
                   ORDER BY attempts, run_id, name \
                   FOR UPDATE SKIP LOCKED LIMIT 1) \
                 RETURNING run_id, name, meta, inputs, attempts",
                &[&worker, &lease.as_secs_f64()],
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let run_id: String = row.try_get(0)?;
        let name: String = row.try_get(1)?;
        let meta: String = row.try_get(2)?;
        let data: Vec<Vec<u8>> = row.try_get(3)?;
        let attempts: i32 = row.try_get(4)?;
        let id = format!("{run_id}/{name}");
        let meta: JobMeta = serde_json::from_str(&meta)
            .map_err(|e| QueueError::Corrupt(id.clone(), e.to_string()))?;
        if meta.inputs.len() != data.len() {
            return Err(QueueError::Corrupt(
                id,
                "input count differs from metadata".into(),
            ));
        }
        let inputs = meta
            .inputs
            .iter()
            .zip(data)
            .map(|((role, path), bytes)| Input::new(role, path, bytes))
            .collect();
        Ok(Some(Job {
            run_id,
            obligation: Obligation {
                name,
                kind: meta.kind,
                inputs,
                params: meta.params,
                timeout: Duration::from_millis(meta.timeout_ms),
                covers: meta.covers,
            },
            attempts,
        }))
    }

    /// Extends `worker`'s lease on the job; false when the lease was lost.
    pub async fn renew(
        &self,
        job: &Job,
        worker: &str,
        lease: Duration,
    ) -> Result<bool, QueueError> {
        let n = self
            .client
            .execute(
                "UPDATE pf_verify_jobs SET lease_until = clock_timestamp() + make_interval(secs => $4) \
                 WHERE run_id = $1 AND name = $2 AND lease_owner = $3 AND state = 'running'",
                &[&job.run_id, &job.obligation.name, &worker, &lease.as_secs_f64()],
            )
            .await?;
        Ok(n == 1)
    }

    /// Records the result if `worker` still holds the lease; false when it was lost (the result
    /// is then discarded: another worker owns the obligation).
    pub async fn complete(
        &self,
        job: &Job,
        worker: &str,
        result: &ObligationResult,
    ) -> Result<bool, QueueError> {
        let text = serde_json::to_string(result).unwrap_or_default();
        let n = self
            .client
            .execute(
                "UPDATE pf_verify_jobs SET state = 'done', result = $4, lease_owner = NULL, lease_until = NULL \
                 WHERE run_id = $1 AND name = $2 AND lease_owner = $3 AND state = 'running'",
                &[&job.run_id, &job.obligation.name, &worker, &text],
            )
            .await?;
        Ok(n == 1)
    }

    /// Looks a sealed entry up in the shared cache.
    pub async fn cache_get(&self, key: &Sha256Digest) -> Result<Option<CacheEntry>, QueueError> {
        let row = self
            .client
            .query_opt(
                "SELECT sealed FROM pf_verify_cache WHERE key = $1",
                &[&key.to_hex()],
            )
            .await?;
        Ok(match row {
            None => None,
            Some(r) => {
                let bytes: Vec<u8> = r.try_get(0)?;
                let entry = unseal(key, &bytes);
                if entry.is_none() {
                    // Corrupt or tampered: drop it so the fresh result can be stored.
                    self.client
                        .execute(
                            "DELETE FROM pf_verify_cache WHERE key = $1",
                            &[&key.to_hex()],
                        )
                        .await?;
                }
                entry
            }
        })
    }

    /// Stores a decided result in the shared cache.
    pub async fn cache_put(
        &self,
        key: &Sha256Digest,
        entry: &CacheEntry,
    ) -> Result<(), QueueError> {
        self.client
            .execute(
                "INSERT INTO pf_verify_cache (key, sealed) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                &[&key.to_hex(), &seal(key, entry)],
            )
            .await?;
        Ok(())
    }

    /// Results of `run_id` by obligation name, and how many obligations are not done yet.
    pub async fn results(
        &self,
        run_id: &str,
    ) -> Result<(BTreeMap<String, ObligationResult>, i64), QueueError> {
        let rows = self
            .client
            .query(
                "SELECT name, state, result FROM pf_verify_jobs WHERE run_id = $1",
                &[&run_id],
            )
            .await?;
        let mut out = BTreeMap::new();
        let mut pending = 0;
        for row in rows {
            let name: String = row.try_get(0)?;
            let state: String = row.try_get(1)?;
            let result: Option<String> = row.try_get(2)?;
            match (state.as_str(), result) {
                ("done", Some(text)) => {
                    let r: ObligationResult = serde_json::from_str(&text).map_err(|e| {
                        QueueError::Corrupt(format!("{run_id}/{name}"), e.to_string())
                    })?;
                    out.insert(name, r);
                }
                _ => pending += 1,
            }
        }
        Ok((out, pending))
    }

    /// Polls until every obligation of `run_id` is done or `max_wait` passes.
    pub async fn wait(
        &self,
        run_id: &str,
        poll: Duration,
        max_wait: Duration,
    ) -> Result<BTreeMap<String, ObligationResult>, QueueError> {
        let start = tokio::time::Instant::now();
        loop {
            let (results, pending) = self.results(run_id).await?;
            if pending == 0 {
                return Ok(results);
            }
            if start.elapsed() >= max_wait {
                return Err(QueueError::Timeout {
                    run: run_id.to_string(),
                    pending,
                    waited: start.elapsed(),
                });
            }
            tokio::time::sleep(poll).await;
        }
    }
}

/// How a worker behaves.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Worker id written as lease owner (unique per process).
    pub worker_id: String,
    /// Lease length; renewed every third of it while checking.
    pub lease: Duration,
    /// Sleep between polls of an empty queue.
    pub poll: Duration,
    /// Exit after the queue has been empty this long (`None`: run until `stop`).
    pub exit_when_idle: Option<Duration>,
    /// Set to stop after the current obligation.
    pub stop: CancelToken,
}

/// What a worker did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WorkerStats {
    /// Obligations checked by a checker.
    pub checked: u64,
    /// Obligations answered from the shared cache.
    pub cache_hits: u64,
    /// Results discarded because the lease was lost.
    pub lost_leases: u64,
    /// Obligations given up after [`MAX_ATTEMPTS`].
    pub abandoned: u64,
}

/// Takes obligations from the queue and checks them with `engine` until idle or stopped.
pub async fn run_worker(
    queue: &Queue,
    engine: Arc<Engine>,
    opts: &WorkerOptions,
) -> Result<WorkerStats, QueueError> {
    let mut stats = WorkerStats::default();
    let mut idle_since = tokio::time::Instant::now();
    while !opts.stop.is_cancelled() {
        let Some(job) = queue.claim(&opts.worker_id, opts.lease).await? else {
            if opts
                .exit_when_idle
                .is_some_and(|d| idle_since.elapsed() >= d)
            {
                break;
            }
            tokio::time::sleep(opts.poll).await;
            continue;
        };
        let result = if job.attempts > MAX_ATTEMPTS {
            stats.abandoned += 1;
            abandoned(&job)
        } else {
            check_job(queue, &engine, &job, opts, &mut stats).await?
        };
        if !queue.complete(&job, &opts.worker_id, &result).await? {
            stats.lost_leases += 1;
        }
        idle_since = tokio::time::Instant::now();
    }
    Ok(stats)
}

fn abandoned(job: &Job) -> ObligationResult {
    ObligationResult {
        name: job.obligation.name.clone(),
        kind: job.obligation.kind.clone(),
        checker: None,
        checker_version: None,
        input_digest: Some(job.obligation.inputs_digest().to_hex()),
        verdict: Verdict::error(format!(
            "obligation taken {} times without a result (workers died); given up",
            job.attempts - 1
        )),
        statistics: BTreeMap::new(),
        axioms: None,
        duration_ms: 0,
        timeout_ms: u64::try_from(job.obligation.timeout.as_millis()).unwrap_or(u64::MAX),
        cached: false,
        covers: job.obligation.covers.clone(),
    }
}

async fn check_job(
    queue: &Queue,
    engine: &Arc<Engine>,
    job: &Job,
    opts: &WorkerOptions,
    stats: &mut WorkerStats,
) -> Result<ObligationResult, QueueError> {
    let ob = &job.obligation;
    let key = engine.registry().get(&ob.kind).map(|c| {
        (
            cache_key(c.name(), c.version(), &ob.inputs_digest()),
            c.name().to_string(),
            c.version().to_string(),
        )
    });
    if let Some((key, _, _)) = &key
        && let Some(entry) = queue.cache_get(key).await?
    {
        stats.cache_hits += 1;
        let mut r = engine.result_template(ob);
        r.verdict = entry.report.verdict;
        r.statistics = entry.report.statistics;
        r.axioms = entry.report.axioms;
        r.cached = true;
        return Ok(r);
    }
    let engine2 = Arc::clone(engine);
    let owned = ob.clone();
    let mut task = tokio::task::spawn_blocking(move || engine2.check_one(&owned));
    let renew_every = opts.lease / 3;
    let result = loop {
        tokio::select! {
            r = &mut task => break r,
            _ = tokio::time::sleep(renew_every) => {
                queue.renew(job, &opts.worker_id, opts.lease).await?;
            }
        }
    };
    stats.checked += 1;
    let result = match result {
        Ok(r) => r,
        Err(e) => {
            let mut r = engine.result_template(ob);
            r.verdict = Verdict::error(format!("worker task failed: {e}"));
            r
        }
    };
    if let Some((key, name, version)) = key
        && matches!(result.verdict, Verdict::Proved | Verdict::Refuted { .. })
    {
        let entry = CacheEntry {
            checker: name,
            version,
            report: crate::verdict::CheckReport {
                verdict: result.verdict.clone(),
                statistics: result.statistics.clone(),
                axioms: result.axioms.clone(),
            },
        };
        queue.cache_put(&key, &entry).await?;
    }
    Ok(result)
}

fn runtime() -> Result<tokio::runtime::Runtime, QueueError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| QueueError::Corrupt("runtime".into(), e.to_string()))
}

/// [`run_worker`] on a private single-threaded runtime, for callers without one (the CLI).
pub fn run_worker_blocking(
    url: &str,
    engine: Arc<Engine>,
    opts: &WorkerOptions,
) -> Result<WorkerStats, QueueError> {
    runtime()?.block_on(async {
        let q = Queue::connect(url, None).await?;
        run_worker(&q, engine, opts).await
    })
}

/// Verifies a bundle through the queue: enqueues its obligations as run `bundle digest`, waits
/// for workers to finish them (at most `max_wait`), and gates the results like a local run.
pub fn verify_bundle_distributed(
    url: &str,
    bundle: &pf_bundle::OpenedBundle,
    plan_limits: &crate::PlanLimits,
    gates: &crate::GateConfig,
    max_wait: Duration,
) -> Result<crate::RunReport, DistributedError> {
    let plan = crate::plan(bundle, plan_limits)?;
    let run_id = plan.bundle_digest.to_hex();
    let ready: Vec<Obligation> = plan
        .obligations
        .iter()
        .filter_map(|p| match p {
            crate::Planned::Ready(o) => Some(o.clone()),
            crate::Planned::Rejected(_) => None,
        })
        .collect();
    let done = runtime()?.block_on(async {
        let q = Queue::connect(url, None).await?;
        q.enqueue(&run_id, &ready).await?;
        q.wait(&run_id, Duration::from_millis(200), max_wait).await
    })?;
    let local = Engine::new(crate::Registry::new(), crate::EngineConfig::default());
    let mut results = Vec::new();
    for p in &plan.obligations {
        match p {
            crate::Planned::Ready(o) => match done.get(&o.name) {
                Some(r) => results.push(r.clone()),
                None => {
                    let mut r = local.result_template(o);
                    r.verdict = Verdict::error("queue returned no result");
                    results.push(r);
                }
            },
            crate::Planned::Rejected(_) => {
                results.extend(local.check_all(std::slice::from_ref(p), &|_| {}));
            }
        }
    }
    let gate_results = crate::gates::evaluate(&plan.spec, &results, gates);
    Ok(crate::RunReport {
        bundle_digest: plan.bundle_digest,
        spec_name: plan.spec.name.to_string(),
        spec_version: plan.spec.version.to_string(),
        passed: crate::gates::all_passed(&gate_results),
        results,
        gates: gate_results,
    })
}

/// Why a distributed run failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum DistributedError {
    /// The bundle's spec could not be read.
    #[error(transparent)]
    Plan(#[from] crate::PlanError),
    /// The queue failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
}
