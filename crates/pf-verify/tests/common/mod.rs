//! Helpers shared by the integration tests: bundles built in memory and test-only checkers.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pf_bundle::{BundleBuilder, Limits, OpenedBundle, Sha256Digest};
use pf_verify::{
    CheckContext, CheckReport, Checker, DigestChecker, Engine, EngineConfig, Obligation, Registry,
    Verdict,
};

/// Builds and opens a bundle holding `spec` and `files`.
pub fn bundle(spec: &str, files: &[(&str, &[u8])]) -> OpenedBundle {
    let mut b = BundleBuilder::new("test-agent", "1.0.0").expect("builder");
    b.spec(spec.as_bytes().to_vec()).expect("spec");
    for (p, bytes) in files {
        b.add_file(p, bytes.to_vec()).expect("add file");
    }
    let built = b.build().expect("build");
    pf_bundle::open(&built.bytes, &Limits::default()).expect("open")
}

/// Hex sha256 of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    Sha256Digest::of(bytes).to_hex()
}

/// A spec with one `nnv` obligation per `(name, file, property, covers)`.
pub fn spec_with(capabilities: &str, proofs: &[(&str, &str, &str, &str)]) -> String {
    let mut s = format!("name: test-agent\nversion: 1.0.0\ncapabilities:\n{capabilities}proofs:\n");
    for (name, file, property, covers) in proofs {
        s.push_str(&format!(
            "  - name: {name}\n    type: nnv\n    file: {file}\n    property: {property}\n    timeout: 30s\n    covers: [{covers}]\n"
        ));
    }
    s
}

/// Wraps a checker and counts its invocations.
pub struct Counting<C> {
    pub inner: C,
    pub calls: AtomicUsize,
    pub version: String,
}

impl<C> Counting<C> {
    pub fn new(inner: C, version: &str) -> Arc<Self> {
        Arc::new(Self {
            inner,
            calls: AtomicUsize::new(0),
            version: version.to_string(),
        })
    }
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl<C: Checker> Checker for Counting<C> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn version(&self) -> &str {
        &self.version
    }
    fn check(&self, ob: &Obligation, ctx: &CheckContext) -> CheckReport {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.check(ob, ctx)
    }
}

/// Panics on every obligation.
pub struct Panicking;
impl Checker for Panicking {
    fn name(&self) -> &str {
        "panicking"
    }
    fn version(&self) -> &str {
        "0"
    }
    fn check(&self, ob: &Obligation, _ctx: &CheckContext) -> CheckReport {
        panic!("checker bug on {}", ob.name)
    }
}

/// Spins until cancelled (a cooperative checker that never finds an answer).
pub struct Spinning;
impl Checker for Spinning {
    fn name(&self) -> &str {
        "spinning"
    }
    fn version(&self) -> &str {
        "0"
    }
    fn check(&self, _ob: &Obligation, ctx: &CheckContext) -> CheckReport {
        while !ctx.cancel.is_cancelled() {
            std::thread::sleep(Duration::from_millis(5));
        }
        CheckReport::new(Verdict::unknown("cancelled"))
    }
}

/// Ignores cancellation and sleeps `0` before answering `proved` (an uncooperative checker).
pub struct Sleeping(pub Duration);
impl Checker for Sleeping {
    fn name(&self) -> &str {
        "sleeping"
    }
    fn version(&self) -> &str {
        "0"
    }
    fn check(&self, _ob: &Obligation, _ctx: &CheckContext) -> CheckReport {
        std::thread::sleep(self.0);
        CheckReport::new(Verdict::Proved)
    }
}

/// An engine whose `nnv` obligations are checked by the digest checker (test-only routing:
/// the spec model only knows lean/nnv/reach, and the digest checker reads `file` + `property`).
pub fn digest_engine(jobs: usize) -> (Engine, Arc<Counting<DigestChecker>>) {
    let checker = Counting::new(DigestChecker, "1.0.0");
    let mut registry = Registry::new();
    registry.register("nnv", checker.clone());
    let engine = Engine::new(
        registry,
        EngineConfig {
            jobs,
            ..EngineConfig::default()
        },
    );
    (engine, checker)
}
