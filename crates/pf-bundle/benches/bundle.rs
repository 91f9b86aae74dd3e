//! Benchmarks: bundle build / open / verify throughput on a ~50 MB bundle, and batch versus
//! one-by-one Ed25519 verification of many DSSE envelopes.
//!
//! Full run:  `cargo bench -p pf-bundle --bench bundle`
//! CI smoke:  `PF_BENCH_SMOKE=1 cargo test -p pf-bundle --bench bundle` (dev profile)
//!            (or pass `--smoke`): a 2 MB bundle and 64 envelopes, a few seconds in total.

use std::hint::black_box;
use std::time::{Duration, Instant};

use ed25519_dalek::{Signature, SigningKey, VerifyingKey, verify_batch};
use pf_bundle::batch::verify_envelopes;
use pf_bundle::{
    BundleBuilder, Envelope, IN_TOTO_PAYLOAD_TYPE, Limits, Statement, Subject, TrustPolicy, open,
    sign_bundle, verify_bundle,
};

struct Config {
    bundle_mb: usize,
    envelopes: usize,
    reps: usize,
}

fn config() -> Config {
    let smoke = std::env::var("PF_BENCH_SMOKE").is_ok_and(|v| !v.is_empty() && v != "0")
        || std::env::args().any(|a| a == "--smoke");
    if smoke {
        Config {
            bundle_mb: 2,
            envelopes: 64,
            reps: 1,
        }
    } else {
        Config {
            bundle_mb: 50,
            envelopes: 1024,
            reps: 5,
        }
    }
}

/// xorshift64*: deterministic filler so runs are comparable.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// A realistic mix: 60% incompressible "model weights", 40% text (proof sources, JSON).
fn corpus(total_mb: usize) -> Vec<(String, Vec<u8>)> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut files = Vec::new();
    let total = total_mb << 20;
    let weights = total * 6 / 10;
    let per_weight = (weights / 3).max(1);
    for i in 0..3 {
        let data: Vec<u8> = (0..per_weight.div_ceil(8))
            .flat_map(|_| rng.next().to_le_bytes())
            .take(per_weight)
            .collect();
        files.push((format!("models/layer{i}.onnx"), data));
    }
    let text_total = total - 3 * per_weight;
    let per_text = (text_total / 20).max(1);
    let words = [
        "theorem", "lemma", "forall", "policy", "allow", "deny", "tool", "budget", ":=", "by",
        "simp", "exact",
    ];
    for i in 0..20 {
        let mut s = String::with_capacity(per_text + 64);
        while s.len() < per_text {
            let w = words[(rng.next() % words.len() as u64) as usize];
            s.push_str(w);
            s.push(if rng.next().is_multiple_of(9) {
                '\n'
            } else {
                ' '
            });
        }
        s.truncate(per_text);
        files.push((format!("proofs/p{i:02}.lean"), s.into_bytes()));
    }
    files
}

fn best<T>(reps: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut last = None;
    for _ in 0..reps {
        let t = Instant::now();
        let out = f();
        best = best.min(t.elapsed());
        last = Some(out);
    }
    (best, last.expect("reps >= 1"))
}

fn mbps(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / d.as_secs_f64()
}

fn main() {
    let cfg = config();
    println!(
        "pf-bundle benchmarks (bundle {} MB, {} envelopes, best of {})",
        cfg.bundle_mb, cfg.envelopes, cfg.reps
    );

    // --- bundle throughput ---
    let files = corpus(cfg.bundle_mb);
    let input: usize = files.iter().map(|(_, b)| b.len()).sum();
    let (t_build, built) = best(cfg.reps, || {
        let mut b = BundleBuilder::new("bench-agent", "1.0.0").expect("builder");
        b.spec(b"name: bench-agent\nversion: 1.0.0\n".to_vec())
            .expect("spec");
        for (p, bytes) in &files {
            b.add_file(p, bytes.clone()).expect("add");
        }
        b.build().expect("build")
    });
    let limits = Limits::default();
    let (t_open, opened) = best(cfg.reps, || open(&built.bytes, &limits).expect("open"));
    assert_eq!(opened.files.len(), files.len() + 1);
    let key = SigningKey::from_bytes(&[1; 32]);
    let policy = TrustPolicy::new(1, vec![("k".into(), key.verifying_key())]).expect("policy");
    let env = sign_bundle(&built.bytes, &key, None, &limits).expect("sign");
    let (t_verify, v) = best(cfg.reps, || {
        verify_bundle(&built.bytes, &env, &policy, &limits).expect("verify")
    });
    assert_eq!(v.signers, ["k"]);
    println!(
        "bundle: {:.1} MB input -> {:.1} MB archive (ratio {:.2})",
        input as f64 / (1 << 20) as f64,
        built.bytes.len() as f64 / (1 << 20) as f64,
        input as f64 / built.bytes.len() as f64
    );
    println!(
        "  build   {:>8.1} ms  {:>7.1} MB/s",
        t_build.as_secs_f64() * 1e3,
        mbps(input, t_build)
    );
    println!(
        "  open    {:>8.1} ms  {:>7.1} MB/s",
        t_open.as_secs_f64() * 1e3,
        mbps(input, t_open)
    );
    println!(
        "  verify  {:>8.1} ms  {:>7.1} MB/s  (signature + digest + open + per-file sha256)",
        t_verify.as_secs_f64() * 1e3,
        mbps(input, t_verify)
    );

    // --- signatures: many envelopes, 3 signers, 1 signature each ---
    let signers: Vec<SigningKey> = (1..=3u8)
        .map(|i| SigningKey::from_bytes(&[i; 32]))
        .collect();
    let policy = TrustPolicy::new(
        1,
        signers
            .iter()
            .enumerate()
            .map(|(i, k)| (format!("k{i}"), k.verifying_key()))
            .collect(),
    )
    .expect("policy");
    let envelopes: Vec<Envelope> = (0..cfg.envelopes)
        .map(|i| {
            let digest = pf_bundle::Sha256Digest::of(&(i as u64).to_le_bytes());
            Statement::new(
                vec![Subject::sha256(&format!("agent-{i}.pfb"), &digest)],
                "https://example/p",
                i,
            )
            .sign(&signers[i % 3])
        })
        .collect();
    let refs: Vec<&Envelope> = envelopes.iter().collect();
    let reps = cfg.reps.max(3);
    let (t_one, ok_one) = best(reps, || {
        refs.iter()
            .filter(|e| e.verify(IN_TOTO_PAYLOAD_TYPE, &policy).is_ok())
            .count()
    });
    let (t_batch, ok_batch) = best(reps, || {
        verify_envelopes(black_box(&refs), IN_TOTO_PAYLOAD_TYPE, &policy)
            .iter()
            .filter(|r| r.is_ok())
            .count()
    });
    assert_eq!((ok_one, ok_batch), (cfg.envelopes, cfg.envelopes));
    let per = |d: Duration| cfg.envelopes as f64 / d.as_secs_f64();
    println!("envelopes ({}; PAE + key lookup + Ed25519):", cfg.envelopes);
    println!(
        "  one-by-one  {:>8.2} ms  {:>9.0} env/s",
        t_one.as_secs_f64() * 1e3,
        per(t_one)
    );
    println!(
        "  batch       {:>8.2} ms  {:>9.0} env/s",
        t_batch.as_secs_f64() * 1e3,
        per(t_batch)
    );
    println!(
        "  speed-up    {:>8.2}x",
        t_one.as_secs_f64() / t_batch.as_secs_f64()
    );

    // Raw Ed25519 on the same messages, without the envelope handling.
    let msgs: Vec<Vec<u8>> = envelopes.iter().map(Envelope::pae).collect();
    let sigs: Vec<Signature> = envelopes
        .iter()
        .map(|e| Signature::from_slice(&e.signatures[0].sig).expect("sig"))
        .collect();
    let keys: Vec<VerifyingKey> = (0..cfg.envelopes)
        .map(|i| signers[i % 3].verifying_key())
        .collect();
    let (t_raw_one, n) = best(reps, || {
        (0..msgs.len())
            .filter(|&i| keys[i].verify_strict(&msgs[i], &sigs[i]).is_ok())
            .count()
    });
    assert_eq!(n, cfg.envelopes);
    let (t_raw_batch, ok) = best(reps, || {
        let m: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
        m.chunks(pf_bundle::batch::BATCH_CHUNK)
            .zip(
                sigs.chunks(pf_bundle::batch::BATCH_CHUNK)
                    .zip(keys.chunks(pf_bundle::batch::BATCH_CHUNK)),
            )
            .all(|(m, (s, k))| verify_batch(m, s, k).is_ok())
    });
    assert!(ok);
    println!(
        "raw ed25519 ({} signatures, chunks of {}):",
        cfg.envelopes,
        pf_bundle::batch::BATCH_CHUNK
    );
    println!("  verify_strict  {:>8.2} ms", t_raw_one.as_secs_f64() * 1e3);
    println!(
        "  verify_batch   {:>8.2} ms",
        t_raw_batch.as_secs_f64() * 1e3
    );
    println!(
        "  speed-up       {:>8.2}x",
        t_raw_one.as_secs_f64() / t_raw_batch.as_secs_f64()
    );

    // Chunk size sweep (raw verify_batch), to justify BATCH_CHUNK.
    let m: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
    print!("  chunk sweep   ");
    for chunk in [16usize, 32, 64, 128, 256, 512, 1024] {
        if chunk > m.len() {
            break;
        }
        let (t, ok) = best(reps, || {
            m.chunks(chunk)
                .zip(sigs.chunks(chunk).zip(keys.chunks(chunk)))
                .all(|(m, (s, k))| verify_batch(m, s, k).is_ok())
        });
        assert!(ok);
        print!(
            " {chunk}: {:.2}x",
            t_raw_one.as_secs_f64() / t.as_secs_f64()
        );
    }
    println!();
}
