//! WASM plugins: the example plugin's real check, and every sandbox fault as a clean verdict.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pf_verify::{
    CheckLimits, Engine, EngineConfig, Input, Obligation, Planned, PluginError, Registry, Verdict,
    WasmChecker,
};

fn example_plugin() -> WasmChecker {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("plugins/ascii_text.wat");
    WasmChecker::from_file(&path).expect("example plugin compiles")
}

fn ob(data: &[u8]) -> Obligation {
    Obligation {
        name: "o".into(),
        kind: "ascii".into(),
        inputs: vec![Input::new("file", "f.txt", data)],
        params: [("theorem".to_string(), "T".to_string())].into(),
        timeout: Duration::from_secs(60),
        covers: vec![],
    }
}

fn run_with(checker: WasmChecker, limits: CheckLimits, data: &[u8]) -> Verdict {
    let mut r = Registry::new();
    r.register("ascii", Arc::new(checker));
    let engine = Engine::new(r, EngineConfig { jobs: 1, limits });
    engine
        .check_all(&[Planned::Ready(ob(data))], &|_| {})
        .remove(0)
        .verdict
}

fn run(checker: WasmChecker, data: &[u8]) -> Verdict {
    run_with(
        checker,
        CheckLimits {
            max_memory_bytes: 4 * 1024 * 1024,
            fuel: 50_000_000,
        },
        data,
    )
}

#[test]
fn example_plugin_proves_ascii_text() {
    let mut r = Registry::new();
    r.register("ascii", Arc::new(example_plugin()));
    let engine = Engine::new(
        r,
        EngineConfig {
            jobs: 1,
            ..EngineConfig::default()
        },
    );
    let res = engine
        .check_all(&[Planned::Ready(ob(b"hello\tworld\r\n"))], &|_| {})
        .remove(0);
    assert_eq!(res.verdict, Verdict::Proved);
    assert_eq!(res.statistics.get("bytes"), Some(&13));
    assert!(
        res.checker_version
            .as_deref()
            .is_some_and(|v| v.starts_with("wasm-"))
    );
}

#[test]
fn example_plugin_refutes_with_offset_of_first_bad_byte() {
    match run(example_plugin(), b"ok so far\x00\xff") {
        Verdict::Refuted { evidence } => {
            assert_eq!(evidence["offset"], 9);
            assert_eq!(evidence["byte"], 0);
        }
        v => panic!("expected refuted, got {v:?}"),
    }
}

#[test]
fn example_plugin_handles_large_input_by_growing_memory() {
    let mut data = vec![b'a'; 300_000];
    data[299_999] = 0x80;
    match run(example_plugin(), &data) {
        Verdict::Refuted { evidence } => assert_eq!(evidence["offset"], 299_999),
        v => panic!("{v:?}"),
    }
}

#[test]
fn example_plugin_input_above_memory_cap_is_an_error() {
    let v = run(example_plugin(), &vec![b'a'; 5 * 1024 * 1024]);
    match v {
        Verdict::Error { reason } => assert!(reason.contains("memory"), "{reason}"),
        v => panic!("{v:?}"),
    }
}

const ABI: &str = r#"
  (memory (export "memory") 1)
  (func (export "pf_alloc") (param i32) (result i32) (i32.const 1024))
"#;

fn plugin(body: &str) -> WasmChecker {
    WasmChecker::from_bytes("test", format!("(module {ABI} {body})").as_bytes()).expect("compiles")
}

#[test]
fn trapping_plugin_is_an_error_verdict() {
    let p = plugin(r#"(func (export "pf_check") (param i32 i32) (result i64) unreachable)"#);
    match run(p, b"x") {
        Verdict::Error { reason } => {
            assert!(reason.contains("trapped during pf_check"), "{reason}")
        }
        v => panic!("{v:?}"),
    }
}

#[test]
fn looping_plugin_runs_out_of_fuel() {
    let p = plugin(
        r#"(func (export "pf_check") (param i32 i32) (result i64) (loop $l (br $l)) (i64.const 0))"#,
    );
    match run(p, b"x") {
        Verdict::Unknown { reason } => assert!(reason.contains("out of fuel"), "{reason}"),
        v => panic!("{v:?}"),
    }
}

#[test]
fn plugin_growing_past_the_memory_cap_is_stopped() {
    let p = plugin(
        r#"(func (export "pf_check") (param i32 i32) (result i64)
             (loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
             (i64.const 0))"#,
    );
    match run(p, b"x") {
        Verdict::Error { reason } => assert!(reason.contains("memory"), "{reason}"),
        v => panic!("{v:?}"),
    }
}

#[test]
fn malformed_json_output_is_an_error_verdict() {
    let p = plugin(
        r#"(data (i32.const 0) "{not json")
           (func (export "pf_check") (param i32 i32) (result i64) (i64.const 9))"#,
    );
    match run(p, b"x") {
        Verdict::Error { reason } => assert!(reason.contains("malformed verdict JSON"), "{reason}"),
        v => panic!("{v:?}"),
    }
}

#[test]
fn output_range_outside_memory_is_an_error_verdict() {
    let p = plugin(
        r#"(func (export "pf_check") (param i32 i32) (result i64) (i64.const 0x0000fff000001000))"#,
    );
    match run(p, b"x") {
        Verdict::Error { reason } => assert!(reason.contains("outside its memory"), "{reason}"),
        v => panic!("{v:?}"),
    }
}

#[test]
fn plugins_with_imports_or_missing_exports_are_refused() {
    let imports = WasmChecker::from_bytes(
        "t",
        br#"(module (import "wasi" "fd_write" (func)) (memory (export "memory") 1))"#,
    );
    assert!(matches!(imports, Err(PluginError::Import(_))));
    let no_check = WasmChecker::from_bytes("t", format!("(module {ABI})").as_bytes());
    assert!(matches!(no_check, Err(PluginError::Export("pf_check"))));
    assert!(matches!(
        WasmChecker::from_bytes("t", b"\0asm garbage"),
        Err(PluginError::Compile(_))
    ));
}

#[test]
fn frame_encodes_inputs_then_params() {
    let f = pf_verify::wasm::encode_frame(&ob(b"ab"));
    let mut want = b"PFV1".to_vec();
    want.extend(1u32.to_le_bytes());
    want.extend(4u32.to_le_bytes());
    want.extend(b"file");
    want.extend(2u32.to_le_bytes());
    want.extend(b"ab");
    want.extend(1u32.to_le_bytes());
    want.extend(7u32.to_le_bytes());
    want.extend(b"theorem");
    want.extend(1u32.to_le_bytes());
    want.extend(b"T");
    assert_eq!(f, want);
}
