//! Ledger benchmarks: durable append throughput and acknowledgement latency under offered
//! load, inclusion-proof serving, client verification, growth 1e3..1e7, PostgreSQL appends.
//!
//! Full run:  cargo bench -p pf-ledger --bench ledger
//! CI smoke:  PF_BENCH_SMOKE=1 cargo test -p pf-ledger --bench ledger   (a few seconds)
//! PostgreSQL figures need PF_TEST_PG (see docs/ledger.md).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pf_ledger::edge::RightEdge;
use pf_ledger::hash::{Hash, leaf_hash};
use pf_ledger::ledger::{Ledger, LedgerConfig};
use pf_ledger::merkle::{inclusion_proof_len, verify_inclusion};
use pf_ledger::note::{ALG_ED25519, SignerKey};
use pf_ledger::storage::file::FileStorage;
use pf_ledger::storage::{Storage, StorageError};
use pf_ledger::tiles::{TileId, TileKind};

fn smoke() -> bool {
    std::env::var("PF_BENCH_SMOKE").is_ok_and(|v| v != "0")
}

/// `PF_BENCH_ONLY=append,latency,proofs,growth,pg` runs only the named sections.
fn only(section: &str) -> bool {
    std::env::var("PF_BENCH_ONLY").map_or(true, |v| v.split(',').any(|s| s.trim() == section))
}

fn key() -> SignerKey {
    SignerKey::from_seed("bench.test/log", ALG_ED25519, [77; 32])
        .unwrap_or_else(|e| panic!("key: {e}"))
}

/// A realistic decision record (~230 bytes canonical).
fn record(i: u64) -> Vec<u8> {
    format!(
        "{{\"agent\":\"agent-{}\",\"bundle_digest\":\"sha256:{:064x}\",\"decision\":\"allow\",\"kind\":\"tool_call\",\"reason\":\"policy.capability.allowed\",\"seq\":{i},\"tool\":\"http.get\",\"ts\":\"2026-11-25T12:00:00Z\"}}",
        i % 100,
        i
    )
    .into_bytes()
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn open_file_ledger(dir: &std::path::Path, max_batch: usize, max_delay: Duration) -> Ledger {
    let mut c = LedgerConfig::new("bench.test/log");
    c.max_batch = max_batch;
    c.max_delay = max_delay;
    c.max_pending = 1 << 20;
    let s = FileStorage::open_writer(dir).unwrap_or_else(|e| panic!("storage: {e}"));
    Ledger::open(Arc::new(s), key(), c).unwrap_or_else(|e| panic!("open: {e}"))
}

/// Closed loop: writer threads each keep `window` appends in flight.
fn max_throughput(l: &Ledger, total: u64, writers: u64, window: u64) -> f64 {
    let start = Instant::now();
    std::thread::scope(|s| {
        for w in 0..writers {
            s.spawn(move || {
                let per = total / writers;
                let mut i = 0;
                while i < per {
                    let n = window.min(per - i);
                    let batch = (0..n).map(|k| record(w * per + i + k)).collect();
                    l.append_many(batch)
                        .unwrap_or_else(|e| panic!("append: {e}"));
                    i += n;
                }
            });
        }
    });
    total as f64 / start.elapsed().as_secs_f64()
}

/// Open loop: entries offered at `rate`/s for `secs`; latency from offer to acknowledgement.
fn offered_load(l: &Arc<Ledger>, rate: u64, secs: f64) -> (f64, Duration, Duration, Duration) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("rt: {e}"));
    let lat = Arc::new(Mutex::new(Vec::new()));
    let total = (rate as f64 * secs) as u64;
    let start = Instant::now();
    rt.block_on(async {
        let mut tasks = Vec::with_capacity(total as usize);
        for i in 0..total {
            let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
            let now = Instant::now();
            if due > now {
                tokio::time::sleep(due - now).await;
            }
            let (l, lat) = (l.clone(), lat.clone());
            tasks.push(tokio::spawn(async move {
                let t0 = Instant::now();
                l.append_async(record(i))
                    .await
                    .unwrap_or_else(|e| panic!("append: {e}"));
                if let Ok(mut v) = lat.lock() {
                    v.push(t0.elapsed());
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
    let achieved = total as f64 / start.elapsed().as_secs_f64();
    let mut v = lat.lock().map(|v| v.clone()).unwrap_or_default();
    v.sort();
    (achieved, pct(&v, 0.5), pct(&v, 0.99), pct(&v, 1.0))
}

/// Tiles in memory, for growth runs where disk would dominate.
#[derive(Default)]
struct MemStorage {
    tiles: Mutex<HashMap<TileId, Vec<u8>>>,
    checkpoint: Mutex<Option<Vec<u8>>>,
}

impl Storage for MemStorage {
    fn read_checkpoint(&self) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self
            .checkpoint
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default())
    }
    fn read_tile(&self, t: &TileId) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.tiles.lock().ok().and_then(|m| m.get(t).cloned()))
    }
    fn commit(
        &self,
        _: u64,
        tiles: &[(TileId, Vec<u8>)],
        _: u64,
        cp: &[u8],
    ) -> Result<(), StorageError> {
        if let Ok(mut m) = self.tiles.lock() {
            for (t, d) in tiles {
                // Entry bundles are not needed for proofs; keep memory to the hash tiles.
                if t.kind != TileKind::Entries {
                    m.insert(*t, d.clone());
                }
            }
        }
        if let Ok(mut c) = self.checkpoint.lock() {
            *c = Some(cp.to_vec());
        }
        Ok(())
    }
    fn discard(&self, tiles: &[TileId]) -> Result<(), StorageError> {
        if let Ok(mut m) = self.tiles.lock() {
            for t in tiles {
                m.remove(t);
            }
        }
        Ok(())
    }
}

/// A proof sample: leaf index, proof hashes, leaf hash.
type ProofSample = (u64, Vec<Hash>, Hash);

fn proof_serving(l: &Ledger, samples: u64, keep: usize) -> (Duration, Duration, Vec<ProofSample>) {
    let size = l.size();
    let mut lat = Vec::with_capacity(samples as usize);
    let mut proofs = Vec::new();
    let mut x = 0x9e3779b97f4a7c15u64;
    for _ in 0..samples {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let i = x % size;
        let t0 = Instant::now();
        let p = l
            .inclusion_proof(i, size)
            .unwrap_or_else(|e| panic!("proof: {e}"));
        lat.push(t0.elapsed());
        if proofs.len() < keep {
            let entry = l.entry(i).unwrap_or_else(|e| panic!("entry: {e}"));
            proofs.push((i, p.hashes, leaf_hash(&entry)));
        }
    }
    lat.sort();
    (pct(&lat, 0.5), pct(&lat, 0.99), proofs)
}

fn main() {
    // `cargo test --bench` passes harness flags; `cargo bench` passes --bench. Ignore both.
    let smoke = smoke();
    let scale = if smoke { 0.05 } else { 1.0 };
    println!(
        "# pf-ledger benchmarks ({})",
        if smoke {
            "SMOKE: tiny sizes, figures not meaningful"
        } else {
            "full"
        }
    );
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));

    // 1. Durable append throughput (closed loop).
    if only("append") {
        println!("\n## Embedded append, durable batches (fsync per batch), closed loop");
        println!("| max batch | entries | writers x window | entries/s |");
        println!("|---|---|---|---|");
        for (batch, total) in [(256usize, 200_000u64), (4096, 400_000)] {
            let total = ((total as f64 * scale) as u64).max(1000);
            let d = tmp.path().join(format!("tp-{batch}"));
            let l = open_file_ledger(&d, batch, Duration::ZERO);
            let eps = max_throughput(&l, total, 4, 2048);
            println!("| {batch} | {total} | 4 x 2048 | {eps:.0} |");
        }
    }

    // 2. Ack latency under offered load (open loop).
    if only("latency") {
        println!("\n## Acknowledgement latency under offered load (max batch 4096, group commit)");
        println!("| offered/s | achieved/s | p50 | p99 | max |");
        println!("|---|---|---|---|---|");
        let d = tmp.path().join("lat");
        let l = Arc::new(open_file_ledger(&d, 4096, Duration::ZERO));
        for rate in [1_000u64, 10_000, 50_000] {
            let (ach, p50, p99, max) = offered_load(&l, rate, if smoke { 0.3 } else { 3.0 });
            println!("| {rate} | {ach:.0} | {p50:.2?} | {p99:.2?} | {max:.2?} |");
        }
    }

    // 3. Inclusion proofs served from the on-disk log, and client verification.
    if only("proofs") {
        let n = ((200_000.0 * scale) as u64).max(5000);
        let d = tmp.path().join("proofs");
        let l = open_file_ledger(&d, 4096, Duration::ZERO);
        max_throughput(&l, n, 4, 4096);
        let (p50, p99, proofs) = proof_serving(&l, if smoke { 2000 } else { 50_000 }, 1000);
        println!(
            "\n## Inclusion proof generation from tiles on disk (log of {} entries, warm cache)",
            l.size()
        );
        println!("p50 {p50:.2?}, p99 {p99:.2?}");
        let size = l.size();
        let root = l.snapshot().root;
        let rounds = if smoke { 20 } else { 500 };
        let t0 = Instant::now();
        for _ in 0..rounds {
            for (i, p, leaf) in &proofs {
                if verify_inclusion(*i, size, leaf, p, &root).is_err() {
                    panic!("proof {i} failed to verify");
                }
            }
        }
        let vps = (rounds * proofs.len()) as f64 / t0.elapsed().as_secs_f64();
        println!(
            "\n## Client inclusion-proof verification\n{vps:.0} proofs/s (one core, tree of {size})"
        );
    }

    // 4. Growth: append cost and proof size against tree size.
    if only("growth") {
        println!("\n## Growth (in-memory tiles: tree cost without disk)");
        println!("| size | append ns/entry (last decade) | proof hashes (max) | proof gen p50 |");
        println!("|---|---|---|---|");
        let top = if smoke { 100_000u64 } else { 10_000_000 };
        let mut edge = RightEdge::empty();
        let mut prev = 0u64;
        let mut target = 1000u64;
        while target <= top {
            let t0 = Instant::now();
            let mut i = prev;
            while i < target {
                let n = 4096.min(target - i);
                let batch: Vec<Vec<u8>> = (i..i + n).map(|k| k.to_be_bytes().to_vec()).collect();
                let _ = edge
                    .append(&batch)
                    .unwrap_or_else(|e| panic!("append: {e}"));
                i += n;
            }
            let ns = t0.elapsed().as_nanos() as f64 / (target - prev) as f64;
            let max_len = (0..target)
                .step_by((target / 64).max(1) as usize)
                .map(|k| inclusion_proof_len(k, target))
                .max()
                .unwrap_or(0);
            println!(
                "| {target} | {ns:.0} | {max_len} | {} |",
                if target <= 1_000_000 {
                    proof_gen_mem(target)
                } else {
                    "-".into()
                }
            );
            prev = target;
            target *= 10;
        }
    }

    // 5. PostgreSQL.
    if only("pg") {
        pg_bench(scale);
    }
}

fn proof_gen_mem(size: u64) -> String {
    let s = Arc::new(MemStorage::default());
    let mut c = LedgerConfig::new("bench.test/log");
    c.max_batch = 8192;
    c.max_delay = Duration::ZERO;
    c.max_pending = 1 << 20;
    let l = Ledger::open(s, key(), c).unwrap_or_else(|e| panic!("open: {e}"));
    let mut i = 0;
    while i < size {
        let n = 8192.min(size - i);
        l.append_many((i..i + n).map(|k| k.to_be_bytes().to_vec()).collect())
            .unwrap_or_else(|e| panic!("append: {e}"));
        i += n;
    }
    let (p50, _, _) = proof_serving(&l, 2000, 0);
    format!("{p50:.2?}")
}

#[cfg(feature = "postgres")]
fn pg_bench(scale: f64) {
    let Ok(url) = std::env::var("PF_TEST_PG") else {
        println!("\n## PostgreSQL\nskipped: PF_TEST_PG not set");
        return;
    };
    println!("\n## PostgreSQL backend (local cluster, synchronous_commit on), closed loop");
    println!("| max batch | entries | entries/s |");
    println!("|---|---|---|");
    for batch in [256usize, 4096] {
        let log = format!("bench-{batch}-{}", std::process::id());
        let s = pf_ledger::storage::pg::PgStorage::connect(&url, &log, None)
            .unwrap_or_else(|e| panic!("pg: {e}"));
        let s = Arc::new(s);
        let mut c = LedgerConfig::new("bench.test/log");
        c.max_batch = batch;
        c.max_delay = Duration::ZERO;
        c.max_pending = 1 << 20;
        let l = Ledger::open(s.clone(), key(), c).unwrap_or_else(|e| panic!("open: {e}"));
        let total = ((100_000.0 * scale) as u64).max(2000);
        let eps = max_throughput(&l, total, 4, 2048);
        println!("| {batch} | {total} | {eps:.0} |");
        drop(l);
        let _ = s.destroy();
    }
}

#[cfg(not(feature = "postgres"))]
fn pg_bench(_: f64) {
    println!("\n## PostgreSQL\nskipped: built without the postgres feature");
}
