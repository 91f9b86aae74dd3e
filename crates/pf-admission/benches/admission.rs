//! Loopback HTTPS benchmark: p50/p99 latency per AdmissionReview with a warm verification cache,
//! open-loop at fixed rates (latency counted from each request's scheduled send time, so a slow
//! server cannot hide queueing). `PF_BENCH_SMOKE=1` runs one second per rate (CI smoke mode);
//! `PF_BENCH_SECS=N` sets the duration, `PF_BENCH_RATES=100,1000` the rates.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use pf_admission::server::ServeOptions;
use tokio::sync::Mutex;

const CONNECTIONS: usize = 8;

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

async fn run_rate(
    srv: &common::TestServer,
    body: Arc<String>,
    path: &'static str,
    rate: u64,
    secs: u64,
) -> Vec<Duration> {
    let total = rate * secs;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let rx = Arc::new(Mutex::new(rx));
    let lat = Arc::new(std::sync::Mutex::new(Vec::with_capacity(total as usize)));
    let mut workers = Vec::new();
    for _ in 0..CONNECTIONS {
        let mut conn = common::connect(srv).await;
        let rx = Arc::clone(&rx);
        let lat = Arc::clone(&lat);
        let body = Arc::clone(&body);
        workers.push(tokio::spawn(async move {
            loop {
                let Some(scheduled) = rx.lock().await.recv().await else {
                    break;
                };
                let (st, resp) = conn.post(path, &body).await;
                assert_eq!(st, 200);
                assert!(common::verdict(&resp).0, "benchmark review must be allowed");
                lat.lock().unwrap().push(scheduled.elapsed());
            }
        }));
    }
    let start = Instant::now();
    let gap = Duration::from_secs_f64(1.0 / rate as f64);
    for i in 0..total {
        let at = start + gap * i as u32;
        tokio::time::sleep_until(at.into()).await;
        tx.send(at).unwrap();
    }
    drop(tx);
    for w in workers {
        w.await.unwrap();
    }
    let mut v = std::mem::take(&mut *lat.lock().unwrap());
    v.sort();
    v
}

fn main() {
    let smoke = std::env::var("PF_BENCH_SMOKE").is_ok_and(|v| v == "1");
    let secs: u64 = std::env::var("PF_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if smoke { 1 } else { 10 });
    let rates: Vec<u64> = std::env::var("PF_BENCH_RATES")
        .ok()
        .map(|s| s.split(',').filter_map(|r| r.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![100, 1000]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let fx = common::fixture();
        let srv = common::start_server(Arc::clone(&fx.admission), ServeOptions::default()).await;
        let validate = Arc::new(common::review("pod-agent.json", &fx.digest));
        let agentdep = Arc::new(common::review("agentdeployment.json", &fx.digest));
        // Warm the verification cache (the first review verifies signatures and attestation).
        let mut c = common::connect(&srv).await;
        let t = Instant::now();
        let (_, r) = c.post("/validate", &validate).await;
        assert!(common::verdict(&r).0);
        let cold = t.elapsed();
        println!("cold (first review, verifies bundle + attestation): {} ms", ms(cold));
        println!("| review | rate (/s) | duration (s) | reviews | p50 (ms) | p99 (ms) | max (ms) | mean (ms) |");
        println!("|---|---:|---:|---:|---:|---:|---:|---:|");
        for (name, body, path) in [("Pod validate", &validate, "/validate"), ("AgentDeployment validate", &agentdep, "/validate"), ("Pod mutate", &validate, "/mutate")] {
            for &rate in &rates {
                let v = run_rate(&srv, Arc::clone(body), path, rate, secs).await;
                let mean = v.iter().sum::<Duration>() / v.len().max(1) as u32;
                println!("| {name} | {rate} | {secs} | {} | {} | {} | {} | {} |", v.len(), ms(pct(&v, 0.5)), ms(pct(&v, 0.99)), ms(*v.last().unwrap_or(&Duration::ZERO)), ms(mean));
            }
        }
        srv.stop().await;
    });
}
