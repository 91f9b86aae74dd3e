//! pf-verify benchmarks: obligations/s through the pool, cold vs warm cache, WASM call overhead.
//!
//! `cargo bench -p pf-verify --bench verify` for the full run; `PF_BENCH_SMOKE=1` limits it to
//! a few hundred obligations (CI smoke mode, a few seconds).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pf_bundle::Sha256Digest;
use pf_verify::{
    CancelToken, CheckContext, CheckLimits, Checker, DigestChecker, Engine, EngineConfig,
    FileCache, Input, Obligation, Planned, Registry, WasmChecker,
};

fn obligations(n: usize, size: usize) -> Vec<Planned> {
    (0..n)
        .map(|i| {
            let mut data = vec![b'a'; size];
            data[..8].copy_from_slice(&(i as u64).to_le_bytes().map(|b| b'a' + b % 26));
            let pin = Sha256Digest::of(&data).to_hex();
            Planned::Ready(Obligation {
                name: format!("o{i}"),
                kind: "k".into(),
                inputs: vec![
                    Input::new("file", "f", data),
                    Input::new("property", "p", pin.into_bytes()),
                ],
                params: BTreeMap::new(),
                timeout: Duration::from_secs(60),
                covers: vec![],
            })
        })
        .collect()
}

fn engine(checker: Arc<dyn Checker>, jobs: usize) -> Engine {
    let mut r = Registry::new();
    r.register("k", checker);
    Engine::new(
        r,
        EngineConfig {
            jobs,
            limits: CheckLimits::default(),
        },
    )
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn main() {
    let smoke = std::env::var_os("PF_BENCH_SMOKE").is_some();
    let n = if smoke { 200 } else { 5000 };
    let calls = if smoke { 200 } else { 5000 };
    println!(
        "pf-verify bench ({} mode), {n} obligations of 4 KiB",
        if smoke { "smoke" } else { "full" }
    );

    // 1. Pool throughput, no cache (digest checker: the engine's own overhead dominates).
    let work = obligations(n, 4096);
    for jobs in [1, 2, 4] {
        let e = engine(Arc::new(DigestChecker), jobs);
        let t = Instant::now();
        let r = e.check_all(&work, &|_| {});
        let d = t.elapsed();
        assert!(r.iter().all(|r| r.verdict.is_proved()));
        println!(
            "pool jobs={jobs}: {:>9.0} obligations/s ({:?} total)",
            rate(n, d),
            d
        );
    }

    // 2. Cold vs warm file cache.
    let dir = tempfile::tempdir().expect("tempdir");
    let e = engine(Arc::new(DigestChecker), 2).with_cache(Arc::new(FileCache::new(dir.path())));
    let t = Instant::now();
    e.check_all(&work, &|_| {});
    let cold = t.elapsed();
    let t = Instant::now();
    let r = e.check_all(&work, &|_| {});
    let warm = t.elapsed();
    assert!(r.iter().all(|r| r.cached));
    println!(
        "cache cold (check + write): {:>9.0} obligations/s; warm (read + verify entry): {:>9.0} obligations/s; warm/cold speed-up {:.1}x",
        rate(n, cold),
        rate(n, warm),
        cold.as_secs_f64() / warm.as_secs_f64()
    );

    // 3. WASM plugin call overhead vs a native call, 64-byte input.
    let plugin_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("plugins/ascii_text.wat");
    let t = Instant::now();
    let plugin = WasmChecker::from_file(&plugin_path).expect("plugin");
    println!("wasm plugin compile (wat -> native): {:?}", t.elapsed());
    let ob = Obligation {
        name: "o".into(),
        kind: "k".into(),
        inputs: vec![Input::new("file", "f", vec![b'a'; 64])],
        params: BTreeMap::new(),
        timeout: Duration::from_secs(60),
        covers: vec![],
    };
    let ctx = CheckContext {
        deadline: Instant::now() + Duration::from_secs(3600),
        cancel: CancelToken::new(),
        limits: CheckLimits {
            max_memory_bytes: 16 << 20,
            fuel: 1_000_000_000,
        },
    };
    let t = Instant::now();
    for _ in 0..calls {
        assert!(plugin.check(&ob, &ctx).verdict.is_proved());
    }
    let wasm = t.elapsed() / calls as u32;
    let native_ob = match &obligations(1, 64)[0] {
        Planned::Ready(o) => o.clone(),
        Planned::Rejected(_) => unreachable!(),
    };
    let t = Instant::now();
    for _ in 0..calls {
        assert!(DigestChecker.check(&native_ob, &ctx).verdict.is_proved());
    }
    let native = t.elapsed() / calls as u32;
    println!(
        "wasm plugin call (fresh instance, fuel + memory cap, 64 B): {wasm:?}/call; native digest check: {native:?}/call"
    );
    let big = Obligation {
        inputs: vec![Input::new("file", "f", vec![b'a'; 1 << 20])],
        ..ob
    };
    let t = Instant::now();
    let reps = if smoke { 3 } else { 20 };
    for _ in 0..reps {
        assert!(plugin.check(&big, &ctx).verdict.is_proved());
    }
    let per = t.elapsed() / reps;
    println!(
        "wasm plugin scan of 1 MiB: {per:?}/call ({:.0} MiB/s)",
        1.0 / per.as_secs_f64()
    );
}
