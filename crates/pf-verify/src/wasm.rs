//! WebAssembly checker plugins, run in a wasmtime sandbox.
//!
//! ABI `pf-verify/wasm/v1` (docs/verify.md §WASM ABI): the module imports nothing and exports
//! `memory`, `pf_alloc(len: i32) -> i32` and `pf_check(ptr: i32, len: i32) -> i64`. The host
//! calls `pf_alloc` for the input frame, writes the frame there, calls `pf_check`, and reads the
//! verdict JSON (a [`CheckReport`]) from `(ret >> 32, ret & 0xffffffff)` = (pointer, length).
//!
//! Input frame (all integers u32 little-endian): `"PFV1"`, input count, then per input
//! `role_len, role, data_len, data`; then parameter count, then per parameter
//! `key_len, key, value_len, value`. Inputs come in the obligation's order (`file` first).
//!
//! Each call gets a fresh instance with fuel (instruction budget) and a memory cap; a trap,
//! exhausted fuel, growth past the cap, a bad pointer or malformed JSON ends as an `error` or
//! `unknown` verdict for that obligation.

use std::path::Path;

use pf_bundle::Sha256Digest;
use wasmtime::{Config, Instance, Module, Store, StoreLimits, StoreLimitsBuilder, Trap};

use crate::checker::{CheckContext, Checker};
use crate::obligation::Obligation;
use crate::verdict::{CheckReport, Verdict};

/// Largest verdict JSON read back from a plugin, in bytes.
pub const MAX_OUTPUT_BYTES: u32 = 1024 * 1024;

/// Largest plugin module accepted, in bytes.
pub const MAX_MODULE_BYTES: usize = 64 * 1024 * 1024;

/// Why a plugin cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// Reading the file failed.
    #[error("cannot read plugin {path}: {source}")]
    Io {
        /// Plugin path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The module is too large.
    #[error("plugin is {0} bytes, above the {MAX_MODULE_BYTES}-byte limit")]
    TooLarge(usize),
    /// Not valid WebAssembly (binary or text).
    #[error("plugin does not compile: {0}")]
    Compile(String),
    /// It imports something (plugins must be self-contained).
    #[error("plugin imports {0}; plugins may not import anything")]
    Import(String),
    /// A required export is missing or has the wrong type.
    #[error("plugin lacks export {0} with the ABI's type")]
    Export(&'static str),
}

/// A checker implemented by a WebAssembly module.
#[derive(Clone)]
pub struct WasmChecker {
    name: String,
    version: String,
    engine: wasmtime::Engine,
    module: Module,
}

impl std::fmt::Debug for WasmChecker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmChecker")
            .field("name", &self.name)
            .field("version", &self.version)
            .finish()
    }
}

struct HostState {
    limits: StoreLimits,
}

impl WasmChecker {
    /// Compiles `bytes` (WebAssembly binary or text) as checker `name`. The version is
    /// `wasm-<first 16 hex digits of the module's sha256>`, so a changed plugin misses the cache.
    pub fn from_bytes(name: &str, bytes: &[u8]) -> Result<Self, PluginError> {
        if bytes.len() > MAX_MODULE_BYTES {
            return Err(PluginError::TooLarge(bytes.len()));
        }
        let mut config = Config::new();
        config.consume_fuel(true);
        let engine =
            wasmtime::Engine::new(&config).map_err(|e| PluginError::Compile(e.to_string()))?;
        let module =
            Module::new(&engine, bytes).map_err(|e| PluginError::Compile(format!("{e:#}")))?;
        if let Some(import) = module.imports().next() {
            return Err(PluginError::Import(format!(
                "{}::{}",
                import.module(),
                import.name()
            )));
        }
        let has = |name: &str, want: fn(&wasmtime::ExternType) -> bool| {
            module.get_export(name).is_some_and(|t| want(&t))
        };
        if !has("memory", |t| t.memory().is_some()) {
            return Err(PluginError::Export("memory"));
        }
        if !has("pf_alloc", |t| t.func().is_some()) {
            return Err(PluginError::Export("pf_alloc"));
        }
        if !has("pf_check", |t| t.func().is_some()) {
            return Err(PluginError::Export("pf_check"));
        }
        let digest = Sha256Digest::of(bytes).to_hex();
        Ok(Self {
            name: name.to_string(),
            version: format!("wasm-{}", &digest[..16]),
            engine,
            module,
        })
    }

    /// Reads and compiles a plugin file; the checker is named after the file stem.
    pub fn from_file(path: &Path) -> Result<Self, PluginError> {
        let bytes = std::fs::read(path).map_err(|source| PluginError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("plugin");
        Self::from_bytes(name, &bytes)
    }

    fn call(&self, frame: &[u8], ctx: &CheckContext) -> Result<Vec<u8>, Verdict> {
        let cap = usize::try_from(ctx.limits.max_memory_bytes).unwrap_or(usize::MAX);
        let limits = StoreLimitsBuilder::new()
            .memory_size(cap)
            .memories(1)
            .instances(1)
            .tables(4)
            .table_elements(100_000)
            .trap_on_grow_failure(true)
            .build();
        let mut store = Store::new(&self.engine, HostState { limits });
        store.limiter(|s| &mut s.limits);
        store
            .set_fuel(ctx.limits.fuel)
            .map_err(|e| Verdict::error(format!("cannot set fuel: {e}")))?;
        let instance = Instance::new(&mut store, &self.module, &[])
            .map_err(|e| trap_verdict(&e, "instantiate"))?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or_else(|| Verdict::error("plugin has no memory export"))?;
        let alloc = instance
            .get_typed_func::<i32, i32>(&mut store, "pf_alloc")
            .map_err(|_| Verdict::error("pf_alloc must have type (i32) -> i32"))?;
        let check = instance
            .get_typed_func::<(i32, i32), i64>(&mut store, "pf_check")
            .map_err(|_| Verdict::error("pf_check must have type (i32, i32) -> i64"))?;
        let len = i32::try_from(frame.len())
            .map_err(|_| Verdict::error("obligation input is too large for a 32-bit plugin"))?;
        let ptr = alloc
            .call(&mut store, len)
            .map_err(|e| trap_verdict(&e, "pf_alloc"))?;
        let start = usize::try_from(ptr)
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| Verdict::error("pf_alloc returned a null or negative pointer"))?;
        memory
            .write(&mut store, start, frame)
            .map_err(|_| Verdict::error("pf_alloc returned a buffer outside memory"))?;
        if ctx.should_stop() {
            return Err(Verdict::unknown("cancelled before the plugin ran"));
        }
        let ret = check
            .call(&mut store, (ptr, len))
            .map_err(|e| trap_verdict(&e, "pf_check"))?;
        let bits = ret as u64;
        let out_ptr = (bits >> 32) as usize;
        let out_len = (bits & 0xffff_ffff) as u32;
        if out_len > MAX_OUTPUT_BYTES {
            return Err(Verdict::error(format!(
                "plugin output is {out_len} bytes, above the {MAX_OUTPUT_BYTES}-byte limit"
            )));
        }
        let mut out = vec![0u8; out_len as usize];
        memory
            .read(&store, out_ptr, &mut out)
            .map_err(|_| Verdict::error("plugin returned an output range outside its memory"))?;
        Ok(out)
    }
}

/// Encodes an obligation as an ABI v1 input frame.
pub fn encode_frame(ob: &Obligation) -> Vec<u8> {
    let size: usize = 12
        + ob.inputs
            .iter()
            .map(|i| 8 + i.role.len() + i.bytes.len())
            .sum::<usize>()
        + ob.params
            .iter()
            .map(|(k, v)| 8 + k.len() + v.len())
            .sum::<usize>();
    let mut f = Vec::with_capacity(size);
    let put = |f: &mut Vec<u8>, b: &[u8]| {
        f.extend_from_slice(&(b.len() as u32).to_le_bytes());
        f.extend_from_slice(b);
    };
    f.extend_from_slice(b"PFV1");
    f.extend_from_slice(&(ob.inputs.len() as u32).to_le_bytes());
    for i in &ob.inputs {
        put(&mut f, i.role.as_bytes());
        put(&mut f, &i.bytes);
    }
    f.extend_from_slice(&(ob.params.len() as u32).to_le_bytes());
    for (k, v) in &ob.params {
        put(&mut f, k.as_bytes());
        put(&mut f, v.as_bytes());
    }
    f
}

fn trap_verdict(e: &wasmtime::Error, during: &str) -> Verdict {
    match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => {
            Verdict::unknown(format!("plugin ran out of fuel during {during}"))
        }
        Some(trap) => Verdict::error(format!("plugin trapped during {during}: {trap}")),
        None => {
            let text = format!("{e:#}");
            if text.contains("memory") && (text.contains("limit") || text.contains("grow")) {
                Verdict::error(format!(
                    "plugin exceeded its memory cap during {during}: {text}"
                ))
            } else {
                Verdict::error(format!("plugin failed during {during}: {text}"))
            }
        }
    }
}

impl Checker for WasmChecker {
    fn name(&self) -> &str {
        &self.name
    }

    fn version(&self) -> &str {
        &self.version
    }

    fn check(&self, obligation: &Obligation, ctx: &CheckContext) -> CheckReport {
        let frame = encode_frame(obligation);
        match self.call(&frame, ctx) {
            Err(verdict) => CheckReport::new(verdict),
            Ok(out) => match serde_json::from_slice::<CheckReport>(&out) {
                Ok(report) => report,
                Err(e) => CheckReport::new(Verdict::error(format!(
                    "plugin returned malformed verdict JSON: {e}"
                ))),
            },
        }
    }
}
