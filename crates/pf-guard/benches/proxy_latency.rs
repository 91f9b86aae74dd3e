//! Added latency of the Streamable HTTP MCP proxy: the same `tools/call` load sent straight to
//! an upstream MCP endpoint and through `McpHttpProxy` (policy decision, result check, decision
//! log to a JSON Lines file), at a fixed offered rate over keep-alive connections on loopback.
//!
//! Environment: `PF_BENCH_RATE` (requests/s, default 20000), `PF_BENCH_SECS` (per phase,
//! default 5), `PF_BENCH_CONNS` (default 16), `PF_BENCH_SMOKE=1` (a second or two, for CI),
//! `PF_BENCH_PIN=1` (proxy thread alone on CPU 0, everything else on CPU 1; Linux),
//! `PF_BENCH_PACING=timer` (pace with tokio's 1 ms timer, as before: bursts of requests).
//! Runtimes: upstream, proxy and load generator each get one worker thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::http::{Request, StatusCode};
use axum::response::IntoResponse;
use http_body_util::{BodyExt, Full};
use pf_guard::PolicyEnforcer;
use pf_guard::log::{Committer, QueuedSink};
use pf_guard::mcp_http::{McpHttpConfig, McpHttpProxy};
use pf_guard::metrics::GuardMetrics;
use pf_guard::upstream::Upstream;
use serde_json::{Value, json};

const SPEC: &str = r#"
name: bench-agent
version: 1.0.0
capabilities:
  - name: lookup_order
    output_labels: [pii]
    constraints:
      arguments:
        type: object
        properties:
          order_id: { type: string, pattern: "^ORD-[0-9]{6}$" }
        required: [order_id]
        additionalProperties: false
      content_filter: { detectors: [card_number, email], action: redact }
"#;

struct Settings {
    rate: f64,
    secs: f64,
    conns: usize,
    pin: bool,
    timer_pacing: bool,
}

fn settings() -> Settings {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<f64>().ok());
    if std::env::var("PF_BENCH_SMOKE").is_ok_and(|v| v == "1") {
        return Settings {
            rate: 2000.0,
            secs: 0.5,
            conns: 4,
            pin: false,
            timer_pacing: false,
        };
    }
    Settings {
        rate: env("PF_BENCH_RATE").unwrap_or(20_000.0),
        secs: env("PF_BENCH_SECS").unwrap_or(5.0),
        conns: env("PF_BENCH_CONNS").map_or(16, |c| c.max(1.0) as usize),
        pin: std::env::var("PF_BENCH_PIN").is_ok_and(|v| v == "1"),
        timer_pacing: std::env::var("PF_BENCH_PACING").is_ok_and(|v| v == "timer"),
    }
}

fn one_thread_runtime(name: &str, cpu: Option<usize>) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(name)
        .on_thread_start(move || {
            if let Some(cpu) = cpu {
                pin_current_thread(cpu);
            }
        })
        .enable_all()
        .build()
        .expect("runtime")
}

/// Pins the calling thread (and threads it spawns later) to one CPU.
fn pin_current_thread(cpu: usize) {
    if !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
        eprintln!("could not pin a thread to CPU {cpu}");
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// The upstream: answers every `tools/call` with a small text result.
async fn upstream(body: Bytes) -> impl IntoResponse {
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let answer = json!({"jsonrpc": "2.0", "id": req["id"], "result": {
        "content": [{"type": "text", "text": "order ORD-123456: shipped, 2 items, total 41.90 EUR"}],
        "isError": false}});
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        answer.to_string(),
    )
}

struct Phase {
    latencies_ns: Vec<u64>,
    elapsed: Duration,
    errors: u64,
    cpu: Cpu,
}

/// CPU seconds used by the proxy's worker thread and by every other thread of the process
/// (upstream, load generator, decision-log writer), from /proc (Linux; zeros elsewhere).
#[derive(Default, Clone, Copy)]
struct Cpu {
    proxy: f64,
    log: f64,
    rest: f64,
}

impl Cpu {
    fn since(&self, before: &Cpu) -> Cpu {
        Cpu {
            proxy: self.proxy - before.proxy,
            log: self.log - before.log,
            rest: self.rest - before.rest,
        }
    }
}

fn thread_cpu() -> Cpu {
    let mut cpu = Cpu::default();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return cpu;
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // Fields after the parenthesised name: state is field 3, utime 14, stime 15.
        let Some((head, tail)) = stat.rsplit_once(") ") else {
            continue;
        };
        let name = head.split_once(" (").map_or("", |(_, n)| n);
        let f: Vec<&str> = tail.split_whitespace().collect();
        let ticks = |i: usize| {
            f.get(i - 3)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        let secs = (ticks(14) + ticks(15)) / 100.0; // USER_HZ is 100 on Linux
        if name.starts_with("bench-proxy") {
            cpu.proxy += secs;
        } else {
            cpu.rest += secs;
        }
        if name.starts_with("pf-guard-log") {
            cpu.log += secs;
        }
    }
    cpu
}

/// Sends `rate * secs` requests paced at `rate`, over `conns` keep-alive connections.
async fn load(addr: std::net::SocketAddr, path: &str, s: &Settings) -> Phase {
    let total = (s.rate * s.secs) as u64;
    let interval = Duration::from_secs_f64(1.0 / s.rate);
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now() + Duration::from_millis(20);
    // Fine pacing: a thread releases one permit per request at its due time (to within the
    // kernel's timer slack, about 50-100 us), so requests arrive evenly. Tokio's timer has a
    // 1 ms resolution: with PF_BENCH_PACING=timer, each millisecond's requests (20 at 20K/s)
    // are released together and queue behind each other.
    let permits = (!s.timer_pacing).then(|| {
        let sem = Arc::new(tokio::sync::Semaphore::new(0));
        let pacer = sem.clone();
        std::thread::Builder::new()
            .name("bench-pacer".into())
            .spawn(move || {
                for i in 0..total {
                    let due = start + interval.mul_f64(i as f64);
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep(due - now);
                    }
                    pacer.add_permits(1);
                }
            })
            .expect("pacer thread");
        sem
    });
    let mut tasks = Vec::new();
    for _ in 0..s.conns {
        let (next, path, permits) = (next.clone(), path.to_string(), permits.clone());
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            stream.set_nodelay(true).expect("nodelay");
            let io = hyper_util::rt::TokioIo::new(stream);
            let (mut send, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .expect("handshake");
            tokio::spawn(conn);
            let mut lat = Vec::new();
            let mut errors = 0u64;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                match &permits {
                    Some(sem) => match sem.acquire().await {
                        Ok(p) => p.forget(),
                        Err(_) => break,
                    },
                    None => {
                        let due = start + interval.mul_f64(i as f64);
                        tokio::time::sleep_until(due.into()).await;
                    }
                }
                let body = json!({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                    "params": {"name": "lookup_order", "arguments": {"order_id": "ORD-123456"}}});
                let req = Request::post(path.as_str())
                    .header("host", "bench")
                    .header("content-type", "application/json")
                    .header("accept", "application/json, text/event-stream")
                    .body(Full::new(Bytes::from(body.to_string())))
                    .expect("request");
                let t0 = Instant::now();
                let ok = match send.send_request(req).await {
                    Ok(resp) => {
                        let ok = resp.status() == StatusCode::OK;
                        ok && resp.into_body().collect().await.is_ok()
                    }
                    Err(_) => false,
                };
                lat.push(t0.elapsed().as_nanos() as u64);
                if !ok {
                    errors += 1;
                }
            }
            (lat, errors)
        }));
    }
    let mut latencies_ns = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.expect("load task");
        latencies_ns.extend(l);
        errors += e;
    }
    Phase {
        latencies_ns,
        elapsed: start.elapsed(),
        errors,
        cpu: Cpu::default(),
    }
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn main() {
    let s = settings();
    let dir = std::env::temp_dir().join(format!("pf-guard-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    // PF_BENCH_PIN=1: the proxy's worker thread alone on CPU 0; everything else (load
    // generator, upstream, decision-log writer, this thread) on CPU 1.
    let (proxy_cpu, other_cpu) = if s.pin {
        (Some(0), Some(1))
    } else {
        (None, None)
    };
    if let Some(cpu) = other_cpu {
        pin_current_thread(cpu);
    }
    let upstream_rt = one_thread_runtime("bench-upstream", other_cpu);
    let proxy_rt = one_thread_runtime("bench-proxy", proxy_cpu);
    let load_rt = one_thread_runtime("bench-load", other_cpu);

    let up_listener = upstream_rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let up_addr = up_listener.local_addr().expect("addr");
    upstream_rt.spawn(async move {
        let _ = axum::serve(
            pf_guard::http::nodelay(up_listener),
            Router::new().fallback(upstream),
        )
        .await;
    });

    let spec = pf_spec::parse_str("bench.yaml", SPEC).expect("spec");
    let policy = Arc::new(pf_policy::compile(&spec).expect("compile").policy);
    let sink = Arc::new(QueuedSink::jsonl(&dir.join("decisions.jsonl"), 4096).expect("log"));
    let metrics = Arc::new(GuardMetrics::default());
    let committer = Committer::random();
    let enforcers = {
        let sink = sink.clone();
        move || {
            PolicyEnforcer::new(
                policy.clone(),
                "sha256:bench".into(),
                sink.clone(),
                metrics.clone(),
                committer.clone(),
            )
        }
    };
    let proxy_addr = proxy_rt.block_on(async {
        let upstream =
            Upstream::new(&format!("http://{up_addr}/mcp"), Duration::from_secs(10)).expect("url");
        let proxy = McpHttpProxy::new(upstream, McpHttpConfig::default(), enforcers);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(pf_guard::http::nodelay(listener), proxy.router()).await;
        });
        addr
    });

    let mut results = Vec::new();
    for (name, addr) in [("direct", up_addr), ("proxied", proxy_addr)] {
        // Warm up connections, allocators and caches.
        let warm = Settings {
            rate: s.rate.min(5000.0),
            secs: 0.2,
            conns: s.conns,
            pin: s.pin,
            timer_pacing: s.timer_pacing,
        };
        load_rt.block_on(load(addr, "/mcp", &warm));
        let before = thread_cpu();
        let mut phase = load_rt.block_on(load(addr, "/mcp", &s));
        phase.cpu = thread_cpu().since(&before);
        phase.latencies_ns.sort_unstable();
        results.push((name, phase));
    }
    println!(
        "offered {:.0} req/s for {:.1} s per phase, {} keep-alive connections, 1 worker thread each for upstream, proxy and load generator; {}; load average {}",
        s.rate,
        s.secs,
        s.conns,
        match (s.pin, s.timer_pacing) {
            (true, false) => "pinned: proxy on CPU 0, the rest on CPU 1; fine pacing",
            (true, true) => "pinned: proxy on CPU 0, the rest on CPU 1; 1 ms timer pacing",
            (false, false) => "unpinned; fine pacing",
            (false, true) => "unpinned; 1 ms timer pacing",
        },
        load_average()
    );
    println!(
        "{:<8} {:>10} {:>9} {:>9} {:>9} {:>7}",
        "phase", "req/s", "p50 us", "p99 us", "p99.9 us", "errors"
    );
    for (name, p) in &results {
        println!(
            "{:<8} {:>10.0} {:>9.1} {:>9.1} {:>9.1} {:>7}",
            name,
            p.latencies_ns.len() as f64 / p.elapsed.as_secs_f64(),
            pct(&p.latencies_ns, 0.50),
            pct(&p.latencies_ns, 0.99),
            pct(&p.latencies_ns, 0.999),
            p.errors
        );
    }
    let (d, p) = (&results[0].1, &results[1].1);
    println!(
        "added    p50 {:.1} us, p99 {:.1} us (targets: p50 <= 100 us, p99 <= 500 us)",
        pct(&p.latencies_ns, 0.50) - pct(&d.latencies_ns, 0.50),
        pct(&p.latencies_ns, 0.99) - pct(&d.latencies_ns, 0.99)
    );
    let n = p.latencies_ns.len().max(1) as f64;
    println!(
        "proxy CPU {:.1} us/request on its worker thread (other threads: {:.1} us/request proxied, of which decision-log writer {:.1}, vs {:.1} direct); implied proxy capacity {:.0} req/s per core",
        p.cpu.proxy / n * 1e6,
        p.cpu.rest / n * 1e6,
        p.cpu.log / n * 1e6,
        d.cpu.rest / d.latencies_ns.len().max(1) as f64 * 1e6,
        n / p.cpu.proxy.max(1e-9)
    );
    let failed = d.errors + p.errors;
    drop(proxy_rt);
    drop(upstream_rt);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(failed, 0, "every request must succeed");
}
