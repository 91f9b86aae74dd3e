//! Added latency of the Streamable HTTP MCP proxy: the same `tools/call` load sent straight to
//! an upstream MCP endpoint and through `McpHttpProxy` (policy decision, result check, decision
//! log to a JSON Lines file), at a fixed offered rate over keep-alive connections on loopback.
//! Beside them, a TCP relay and a bare hyper forwarder; the direct phase runs first and again
//! last, and added latency is against the lower of its two runs.
//!
//! Environment: `PF_BENCH_RATE` (requests/s, default 20000), `PF_BENCH_SECS` (per phase,
//! default 5), `PF_BENCH_CONNS` (default 16), `PF_BENCH_SMOKE=1` (a second or two, for CI),
//! `PF_BENCH_PIN=1` (the guard's threads, proxy worker and decision-log writer, on CPU 0;
//! upstream, load generator and pacer on CPU 1; Linux),
//! `PF_BENCH_PACING=timer` (pace with tokio's 1 ms timer, as before: bursts of requests),
//! `PF_BENCH_LOG_WINDOW_MS` (the decision log's group-commit window; default the guard's),
//! `PF_BENCH_MULTI_THREAD=1` (the proxy on a one-worker multi-threaded runtime, as `pf guard`
//! ran before `--threads`; by default on the runtime `pf guard --threads 1` uses).
//! Allocator: mimalloc, as `pf` uses; `--features bench-system-allocator` measures glibc's instead.
//! Runtimes: upstream, proxy and load generator each get one worker thread.
//!
//! The harness is kept lean so that it leaves the CPU to what is measured (on a 2-core machine
//! every microsecond it spends is taken from the proxy): the load generator writes pre-formatted
//! HTTP/1.1 requests on raw sockets and reads answers with `httparse` (as wrk does), and the
//! upstream is a bare hyper server that reads only the JSON-RPC `id` of each request.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use pf_guard::PolicyEnforcer;
use pf_guard::log::{Committer, GROUP_COMMIT_WINDOW, QueuedSink};
use pf_guard::mcp_http::{McpHttpConfig, McpHttpProxy};
use pf_guard::metrics::GuardMetrics;
use pf_guard::upstream::Upstream;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The allocator the `pf` binary runs the guard with (see crates/pf/src/main.rs); glibc's when
/// built with `--features bench-system-allocator`, for comparison.
#[cfg(not(feature = "bench-system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
/// The allocator's name, for the report.
const ALLOCATOR_NAME: &str = if cfg!(feature = "bench-system-allocator") {
    "system (glibc)"
} else {
    "mimalloc"
};

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
    log_window: Duration,
    multi_thread: bool,
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
            log_window: GROUP_COMMIT_WINDOW,
            multi_thread: false,
        };
    }
    Settings {
        rate: env("PF_BENCH_RATE").unwrap_or(20_000.0),
        secs: env("PF_BENCH_SECS").unwrap_or(5.0),
        conns: env("PF_BENCH_CONNS").map_or(16, |c| c.max(1.0) as usize),
        pin: std::env::var("PF_BENCH_PIN").is_ok_and(|v| v == "1"),
        timer_pacing: std::env::var("PF_BENCH_PACING").is_ok_and(|v| v == "timer"),
        log_window: env("PF_BENCH_LOG_WINDOW_MS").map_or(GROUP_COMMIT_WINDOW, |ms| {
            Duration::from_secs_f64(ms.max(0.0) / 1e3)
        }),
        multi_thread: std::env::var("PF_BENCH_MULTI_THREAD").is_ok_and(|v| v == "1"),
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

/// The proxy's runtime: by default the one `pf guard --threads 1` runs on (single-threaded),
/// driven by a thread of its own; with `multi_thread`, a one-worker multi-threaded runtime.
struct ProxyRuntime {
    runtime: Arc<tokio::runtime::Runtime>,
    driver: Option<(
        tokio::sync::oneshot::Sender<()>,
        std::thread::JoinHandle<()>,
    )>,
}

impl ProxyRuntime {
    fn start(multi_thread: bool, cpu: Option<usize>) -> Self {
        if multi_thread {
            return ProxyRuntime {
                runtime: Arc::new(one_thread_runtime("bench-proxy", cpu)),
                driver: None,
            };
        }
        let runtime = Arc::new(pf_guard::runtime::build(1).expect("runtime"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let driven = runtime.clone();
        let thread = std::thread::Builder::new()
            .name("bench-proxy".into())
            .spawn(move || {
                if let Some(cpu) = cpu {
                    pin_current_thread(cpu);
                }
                let _ = driven.block_on(stopped);
            })
            .expect("proxy thread");
        ProxyRuntime {
            runtime,
            driver: Some((stop, thread)),
        }
    }

    fn stop(self) {
        if let Some((stop, thread)) = self.driver {
            let _ = stop.send(());
            let _ = thread.join();
        }
        drop(self.runtime);
    }
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

/// The JSON-RPC id of a request; every other field is skipped unread.
#[derive(serde::Deserialize)]
struct RequestId {
    id: Value,
}

/// The upstream: answers every `tools/call` with a small text result.
async fn upstream(
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, hyper::Error> {
    let body = req.into_body().collect().await?.to_bytes();
    let id = serde_json::from_slice::<RequestId>(&body).map_or(Value::Null, |r| r.id);
    let answer = format!(
        r#"{{"jsonrpc":"2.0","id":{id},"result":{{"content":[{{"type":"text","text":"order ORD-123456: shipped, 2 items, total 41.90 EUR"}}],"isError":false}}}}"#
    );
    let mut resp = hyper::Response::new(Full::new(Bytes::from(answer)));
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

/// Serves [`upstream`] on every connection `listener` accepts.
async fn serve_upstream(listener: tokio::net::TcpListener) {
    while let Ok((stream, _)) = listener.accept().await {
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, hyper::service::service_fn(upstream))
                .await;
        });
    }
}

async fn bind() -> tokio::net::TcpListener {
    tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind")
}

/// Reference: relays bytes both ways between each client and its own upstream connection.
async fn tcp_relay(listener: tokio::net::TcpListener, upstream: std::net::SocketAddr) {
    while let Ok((mut client, _)) = listener.accept().await {
        tokio::spawn(async move {
            let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        });
    }
}

/// Reference: forwards each request's body to the upstream with the guard's own client and
/// returns the answer's body, with no parsing, policy or logging.
async fn http_forward(listener: tokio::net::TcpListener, upstream: Upstream) {
    let upstream = Arc::new(upstream);
    while let Ok((stream, _)) = listener.accept().await {
        let _ = stream.set_nodelay(true);
        let upstream = upstream.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let upstream = upstream.clone();
                    async move {
                        let body = req.into_body().collect().await?.to_bytes();
                        let mut headers = hyper::HeaderMap::new();
                        headers.insert(
                            hyper::header::CONTENT_TYPE,
                            hyper::header::HeaderValue::from_static("application/json"),
                        );
                        let sent = upstream
                            .send(hyper::Method::POST, upstream.base().clone(), headers, body)
                            .await;
                        let answer = match sent {
                            Ok(resp) => upstream.read_body(resp.into_body(), 1 << 20).await.ok(),
                            Err(_) => None,
                        };
                        let failed = answer.is_none();
                        let mut resp = hyper::Response::new(Full::new(answer.unwrap_or_default()));
                        if failed {
                            *resp.status_mut() = hyper::StatusCode::BAD_GATEWAY;
                        }
                        resp.headers_mut().insert(
                            hyper::header::CONTENT_TYPE,
                            hyper::header::HeaderValue::from_static("application/json"),
                        );
                        Ok::<_, hyper::Error>(resp)
                    }
                });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

/// One `tools/call` as HTTP/1.1 request bytes.
fn request_bytes(path: &str, id: u64) -> Vec<u8> {
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"lookup_order","arguments":{{"order_id":"ORD-123456"}}}}}}"#
    );
    format!(
        "POST {path} HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Reads one HTTP/1.1 response with a `content-length` body from `stream`; `Ok(true)` when
/// its status is 200. Bytes past the response stay in `buf`.
async fn read_response(
    stream: &mut tokio::net::TcpStream,
    buf: &mut Vec<u8>,
) -> std::io::Result<bool> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let mut chunk = [0u8; 8192];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut resp = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(head) =
            resp.parse(buf).map_err(|e| bad(&e.to_string()))?
        {
            let len = resp
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| {
                    std::str::from_utf8(h.value)
                        .ok()?
                        .trim()
                        .parse::<usize>()
                        .ok()
                })
                .ok_or_else(|| bad("no content-length"))?;
            let ok = resp.code == Some(200);
            while buf.len() < head + len {
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(bad("connection closed mid-body"));
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            buf.drain(..head + len);
            return Ok(ok);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(bad("connection closed mid-head"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

struct Phase {
    latencies_ns: Vec<u64>,
    elapsed: Duration,
    errors: u64,
    cpu: Cpu,
}

/// CPU seconds used by the guard's threads (proxy worker and decision-log writer; `log` is the
/// writer's share) and by the harness's (upstream, load generator, pacer), from /proc (Linux;
/// zeros elsewhere).
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
        // The guard's threads: the proxy worker and the decision-log writer.
        if name.starts_with("bench-proxy") || name.starts_with("pf-guard-log") {
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
    // Fine pacing: a thread wakes every 100 us (or every interval, if longer) and releases the
    // permits of the requests due by then, so requests arrive nearly evenly (two at a time at
    // 20K/s) without a wake-up per request. Tokio's timer has a 1 ms resolution: with
    // PF_BENCH_PACING=timer, each millisecond's requests (20 at 20K/s) are released together and
    // queue behind each other.
    let permits = (!s.timer_pacing).then(|| {
        let sem = Arc::new(tokio::sync::Semaphore::new(0));
        let pacer = sem.clone();
        let tick = interval.max(Duration::from_micros(100));
        std::thread::Builder::new()
            .name("bench-pacer".into())
            .spawn(move || {
                let mut released = 0u64;
                while released < total {
                    let now = Instant::now();
                    let due = if now < start {
                        0
                    } else {
                        ((now - start).as_secs_f64() / interval.as_secs_f64()) as u64 + 1
                    };
                    let due = due.min(total);
                    if due > released {
                        pacer.add_permits((due - released) as usize);
                        released = due;
                    }
                    std::thread::sleep(tick);
                }
            })
            .expect("pacer thread");
        sem
    });
    let mut tasks = Vec::new();
    for _ in 0..s.conns {
        let (next, path, permits) = (next.clone(), path.to_string(), permits.clone());
        tasks.push(tokio::spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            stream.set_nodelay(true).expect("nodelay");
            let mut buf = Vec::with_capacity(8192);
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
                let req = request_bytes(&path, i);
                let t0 = Instant::now();
                let ok = match stream.write_all(&req).await {
                    Ok(()) => read_response(&mut stream, &mut buf).await,
                    Err(e) => Err(e),
                };
                let ok = match ok {
                    Ok(ok) => ok,
                    Err(e) => {
                        eprintln!("connection failed: {e}");
                        errors += 1;
                        break;
                    }
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
    // PF_BENCH_PIN=1: the guard's threads (proxy worker, decision-log writer) on CPU 0; the
    // harness (load generator, pacer, upstream, this thread) on CPU 1.
    let (proxy_cpu, other_cpu) = if s.pin {
        (Some(0), Some(1))
    } else {
        (None, None)
    };
    if let Some(cpu) = other_cpu {
        pin_current_thread(cpu);
    }
    let upstream_rt = one_thread_runtime("bench-upstream", other_cpu);
    let proxy = ProxyRuntime::start(s.multi_thread, proxy_cpu);
    let proxy_rt = proxy.runtime.clone();
    let load_rt = one_thread_runtime("bench-load", other_cpu);

    let up_listener = upstream_rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let up_addr = up_listener.local_addr().expect("addr");
    upstream_rt.spawn(serve_upstream(up_listener));

    let spec = pf_spec::parse_str("bench.yaml", SPEC).expect("spec");
    let policy = Arc::new(pf_policy::compile(&spec).expect("compile").policy);
    // The writer thread inherits the CPU affinity of the thread that starts it.
    let log_path = dir.join("decisions.jsonl");
    let log_window = s.log_window;
    let sink = std::thread::spawn(move || {
        if let Some(cpu) = proxy_cpu {
            pin_current_thread(cpu);
        }
        QueuedSink::jsonl_with_window(&log_path, 4096, log_window).expect("log")
    })
    .join()
    .expect("log opener");
    let sink = Arc::new(sink);
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
    let (proxy_addr, relay_addr, forward_addr) = proxy_rt.block_on(async {
        let url = format!("http://{up_addr}/mcp");
        let upstream = Upstream::new(&url, Duration::from_secs(10)).expect("url");
        let proxy = McpHttpProxy::new(upstream, McpHttpConfig::default(), enforcers);
        let listener = bind().await;
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(pf_guard::http::nodelay(listener), proxy.router()).await;
        });
        let relay = bind().await;
        let relay_addr = relay.local_addr().expect("addr");
        tokio::spawn(tcp_relay(relay, up_addr));
        let forward = bind().await;
        let forward_addr = forward.local_addr().expect("addr");
        let upstream = Upstream::new(&url, Duration::from_secs(10)).expect("url");
        tokio::spawn(http_forward(forward, upstream));
        (addr, relay_addr, forward_addr)
    });

    let mut results = Vec::new();
    // Direct twice, first and last: a hiccup of the machine in one direct phase would raise
    // the reference and so lower every "added" figure; the lower of the two is the reference.
    let phases = [
        ("direct", up_addr),
        ("tcp-relay", relay_addr),
        ("http-fwd", forward_addr),
        ("guard", proxy_addr),
        ("direct-2", up_addr),
    ];
    for (name, addr) in phases {
        // Warm up connections, allocators and caches.
        let warm = Settings {
            rate: s.rate.min(5000.0),
            secs: 0.2,
            conns: s.conns,
            pin: s.pin,
            timer_pacing: s.timer_pacing,
            log_window: s.log_window,
            multi_thread: s.multi_thread,
        };
        load_rt.block_on(load(addr, "/mcp", &warm));
        let before = thread_cpu();
        let mut phase = load_rt.block_on(load(addr, "/mcp", &s));
        phase.cpu = thread_cpu().since(&before);
        phase.latencies_ns.sort_unstable();
        results.push((name, phase));
    }
    println!(
        "offered {:.0} req/s for {:.1} s per phase, {} keep-alive connections, 1 worker thread each for upstream, proxy and load generator; proxy runtime {}; decision-log group commit every {:?}; {}; allocator {}; load average {}",
        s.rate,
        s.secs,
        s.conns,
        if s.multi_thread {
            "multi-threaded (1 worker)"
        } else {
            "single-threaded (as pf guard --threads 1)"
        },
        s.log_window,
        match (s.pin, s.timer_pacing) {
            (true, false) =>
                "pinned: guard (proxy worker, log writer) on CPU 0, harness on CPU 1; fine pacing",
            (true, true) =>
                "pinned: guard (proxy worker, log writer) on CPU 0, harness on CPU 1; 1 ms timer pacing",
            (false, false) => "unpinned; fine pacing",
            (false, true) => "unpinned; 1 ms timer pacing",
        },
        ALLOCATOR_NAME,
        load_average()
    );
    println!(
        "phases: direct = straight to the upstream (again last, as direct-2; each + column is against the lower of the two); tcp-relay = a byte relay (the floor of any proxy here); http-fwd = hyper server + the guard's upstream client, no policy; guard = McpHttpProxy with policy, result check and decision log"
    );
    println!(
        "{:<10} {:>8} {:>8} {:>8} {:>9} {:>10} {:>10} {:>10} {:>10} {:>6}",
        "phase",
        "req/s",
        "p50 us",
        "p99 us",
        "p99.9 us",
        "+p50 us",
        "+p99 us",
        "guard CPU",
        "harness CPU",
        "errors"
    );
    let direct = [&results[0].1, &results[4].1];
    let reference = |q: f64| {
        direct
            .iter()
            .map(|p| pct(&p.latencies_ns, q))
            .fold(f64::INFINITY, f64::min)
    };
    let per_req = |cpu: f64, p: &Phase| cpu / p.latencies_ns.len().max(1) as f64 * 1e6;
    for (name, p) in &results {
        println!(
            "{:<10} {:>8.0} {:>8.1} {:>8.1} {:>9.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>6}",
            name,
            p.latencies_ns.len() as f64 / p.elapsed.as_secs_f64(),
            pct(&p.latencies_ns, 0.50),
            pct(&p.latencies_ns, 0.99),
            pct(&p.latencies_ns, 0.999),
            pct(&p.latencies_ns, 0.50) - reference(0.50),
            pct(&p.latencies_ns, 0.99) - reference(0.99),
            per_req(p.cpu.proxy, p),
            per_req(p.cpu.rest, p),
            p.errors
        );
    }
    let p = &results[3].1;
    let f = &results[2].1;
    println!(
        "guard: added p50 {:.1} us, p99 {:.1} us (targets: p50 <= 100 us, p99 <= 500 us); guard CPU {:.1} us/request, of which decision-log writer {:.1} (http-fwd {:.1}: the guard's own work is {:.1}); implied capacity {:.0} req/s per core",
        pct(&p.latencies_ns, 0.50) - reference(0.50),
        pct(&p.latencies_ns, 0.99) - reference(0.99),
        per_req(p.cpu.proxy, p),
        per_req(p.cpu.log, p),
        per_req(f.cpu.proxy, f),
        per_req(p.cpu.proxy, p) - per_req(f.cpu.proxy, f),
        p.latencies_ns.len() as f64 / p.cpu.proxy.max(1e-9)
    );
    let failed: u64 = results.iter().map(|(_, p)| p.errors).sum();
    drop(proxy_rt);
    proxy.stop();
    drop(upstream_rt);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(failed, 0, "every request must succeed");
}
