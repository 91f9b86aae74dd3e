//! PostgreSQL queue: two workers share a run; a worker that dies mid-obligation loses its lease
//! and another finishes the work. Skipped (with a message) when PF_TEST_PG is unset.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use pf_verify::queue::{Queue, WorkerOptions, run_worker};
use pf_verify::{CancelToken, Engine, EngineConfig, Input, Obligation, Registry, Verdict};

fn schema(test: &str) -> String {
    format!("pfv_{test}_{}_{}", std::process::id(), rand_suffix())
}

fn rand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64 % 1_000_000)
}

fn obligations(n: usize) -> Vec<Obligation> {
    (0..n)
        .map(|i| {
            let data = format!("model {i}");
            // Every third pin is wrong, so results are not all alike.
            let pin = if i % 3 == 0 {
                hex(b"other")
            } else {
                hex(data.as_bytes())
            };
            Obligation {
                name: format!("o{i:02}"),
                kind: "nnv".into(),
                inputs: vec![
                    Input::new("file", "m", data.as_bytes()),
                    Input::new("property", "p", pin.as_bytes()),
                ],
                params: Default::default(),
                timeout: Duration::from_secs(30),
                covers: vec![],
            }
        })
        .collect()
}

fn opts(id: &str) -> WorkerOptions {
    WorkerOptions {
        worker_id: id.into(),
        lease: Duration::from_secs(2),
        poll: Duration::from_millis(50),
        exit_when_idle: Some(Duration::from_millis(500)),
        stop: CancelToken::new(),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Runs a worker on its own thread with its own connection and runtime.
fn spawn_worker(
    url: String,
    schema: String,
    id: &'static str,
    engine: Arc<Engine>,
) -> std::thread::JoinHandle<pf_verify::queue::WorkerStats> {
    std::thread::spawn(move || {
        runtime().block_on(async {
            let q = Queue::connect(&url, Some(&schema)).await.expect("connect");
            run_worker(&q, engine, &opts(id)).await.expect("worker")
        })
    })
}

#[test]
fn two_workers_share_a_run_and_fill_the_shared_cache() {
    let Some(url) = pf_testkit::postgres_url() else {
        return;
    };
    let schema = schema("two");
    let rt = runtime();
    let q = rt
        .block_on(Queue::connect(&url, Some(&schema)))
        .expect("connect");
    let obs = obligations(12);
    rt.block_on(q.enqueue("run1", &obs)).expect("enqueue");

    let (engine, checker) = digest_engine(1);
    let engine = Arc::new(engine);
    let a = spawn_worker(url.clone(), schema.clone(), "worker-a", engine.clone());
    let b = spawn_worker(url.clone(), schema.clone(), "worker-b", engine.clone());
    let (sa, sb) = (a.join().expect("a"), b.join().expect("b"));
    assert_eq!(
        sa.checked + sb.checked,
        12,
        "each obligation checked exactly once"
    );
    assert_eq!(checker.calls(), 12);

    let results = rt
        .block_on(q.wait("run1", Duration::from_millis(50), Duration::from_secs(5)))
        .expect("results");
    assert_eq!(results.len(), 12);
    for (i, ob) in obs.iter().enumerate() {
        let r = &results[&ob.name];
        let want = if i % 3 == 0 { "refuted" } else { "proved" };
        assert_eq!(r.verdict.status(), want, "{}", ob.name);
    }

    // A second run of the same obligations is answered from the shared cache.
    rt.block_on(q.enqueue("run2", &obs)).expect("enqueue");
    let c = spawn_worker(url, schema, "worker-c", engine);
    let sc = c.join().expect("c");
    assert_eq!(sc.cache_hits, 12);
    assert_eq!(checker.calls(), 12, "no new checking work");
}

#[test]
fn killed_worker_loses_its_lease_and_another_finishes() {
    let Some(url) = pf_testkit::postgres_url() else {
        return;
    };
    let schema = schema("kill");
    let rt = runtime();
    let q = rt
        .block_on(Queue::connect(&url, Some(&schema)))
        .expect("connect");
    let obs = obligations(1);
    rt.block_on(q.enqueue("run", &obs)).expect("enqueue");

    // The doomed worker takes the obligation with a short lease and dies (never completes):
    // its connection is dropped, as when the process is killed.
    let doomed_job = rt
        .block_on(async {
            let doomed = Queue::connect(&url, Some(&schema)).await.expect("connect");
            let job = doomed
                .claim("doomed", Duration::from_millis(300))
                .await
                .expect("claim");
            drop(doomed);
            job
        })
        .expect("a job was pending");
    assert_eq!(doomed_job.attempts, 1);
    // While the lease is live nobody else gets it.
    assert!(
        rt.block_on(q.claim("eager", Duration::from_secs(1)))
            .expect("claim")
            .is_none()
    );

    std::thread::sleep(Duration::from_millis(400));
    let (engine, checker) = digest_engine(1);
    let stats = spawn_worker(url.clone(), schema.clone(), "survivor", Arc::new(engine))
        .join()
        .expect("survivor");
    assert_eq!(stats.checked, 1);
    assert_eq!(checker.calls(), 1);
    let results = rt
        .block_on(q.wait("run", Duration::from_millis(50), Duration::from_secs(5)))
        .expect("results");
    assert_eq!(results["o00"].verdict.status(), "refuted");

    // The dead worker's late result (if it came back) is discarded.
    let fake = pf_verify::ObligationResult {
        verdict: Verdict::Proved,
        ..results["o00"].clone()
    };
    let accepted = rt
        .block_on(q.complete(&doomed_job, "doomed", &fake))
        .expect("complete");
    assert!(!accepted);
    let results = rt.block_on(q.results("run")).expect("results").0;
    assert_eq!(results["o00"].verdict.status(), "refuted");
}

#[test]
fn obligation_that_keeps_killing_workers_is_given_up() {
    let Some(url) = pf_testkit::postgres_url() else {
        return;
    };
    let schema = schema("poison");
    let rt = runtime();
    let q = rt
        .block_on(Queue::connect(&url, Some(&schema)))
        .expect("connect");
    rt.block_on(q.enqueue("run", &obligations(1)))
        .expect("enqueue");
    for _ in 0..pf_verify::queue::MAX_ATTEMPTS {
        let job = rt
            .block_on(q.claim("dies", Duration::from_millis(1)))
            .expect("claim");
        assert!(job.is_some());
        std::thread::sleep(Duration::from_millis(20));
    }
    let engine = Engine::new(Registry::new(), EngineConfig::default());
    let stats = spawn_worker(url, schema, "last", Arc::new(engine))
        .join()
        .expect("worker");
    assert_eq!(stats.abandoned, 1);
    let results = rt.block_on(q.results("run")).expect("results").0;
    match &results["o00"].verdict {
        Verdict::Error { reason } => assert!(reason.contains("given up"), "{reason}"),
        v => panic!("{v:?}"),
    }
}
