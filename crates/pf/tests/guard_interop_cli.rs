//! `pf guard` between programs we did not write: the official MCP TypeScript SDK client, over
//! stdio in front of the reference filesystem server and over Streamable HTTP in front of the
//! reference "everything" server (all from npm, installed by `.ci/npm-mcp-servers` into the
//! directory `PF_TEST_MCP_SERVERS` names). Skips visibly when unset; fails under `CI=true`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use pf_testkit::net::{free_loopback_addr, wait_listening};

use serde_json::{Value, json};

mod common;

/// Runs the client script `name` (in tests/interop) with `args`; what it printed, as JSON.
fn run_client(name: &str, args: &[&OsStr]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(name);
    let out = Command::new("node")
        .arg(&script)
        .args(args)
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "{name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("client prints JSON")
}

fn servers_dir() -> Option<PathBuf> {
    match std::env::var("PF_TEST_MCP_SERVERS") {
        Ok(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
        _ => {
            if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
                panic!(
                    "CI=true but PF_TEST_MCP_SERVERS is not set; run `export PF_TEST_MCP_SERVERS=$(.ci/npm-mcp-servers)` first"
                );
            }
            eprintln!(
                "SKIPPED: PF_TEST_MCP_SERVERS not set (export PF_TEST_MCP_SERVERS=$(.ci/npm-mcp-servers))"
            );
            None
        }
    }
}

#[test]
fn the_sdk_client_sees_only_what_the_spec_allows_from_the_filesystem_server() {
    let Some(servers) = servers_dir() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("root")).expect("mkdir");
    let root = dir.path().join("root").canonicalize().expect("canonical");
    std::fs::create_dir_all(root.join("public")).expect("mkdir");
    std::fs::create_dir_all(root.join("secret")).expect("mkdir");
    std::fs::write(root.join("public/notes.txt"), "release on friday\n").expect("write");
    std::fs::write(root.join("secret/keys.txt"), "hunter2\n").expect("write");
    let spec = dir.path().join("agent.yaml");
    std::fs::write(
        &spec,
        format!(
            "name: fs-reader\nversion: 1.0.0\ncapabilities:\n  - name: read_text_file\n    kind: file\n    waiver: interop test\n    constraints:\n      args:\n        path: {{ path_prefixes: [\"{}\"] }}\n",
            root.join("public").display()
        ),
    )
    .expect("spec");
    let log = dir.path().join("decisions.jsonl");
    let pf = Path::new(env!("CARGO_BIN_EXE_pf"));
    let seen = run_client(
        "sdk_client.mjs",
        &[&servers, pf, &spec, &log, &root].map(Path::as_os_str),
    );

    assert_eq!(seen["server"]["name"], "secure-filesystem-server", "{seen}");
    assert_eq!(seen["tools"], json!(["read_text_file"]), "{seen}");
    assert_eq!(seen["allowed"]["isError"], json!(false), "{seen}");
    assert_eq!(seen["allowed"]["text"], "release on friday\n", "{seen}");
    assert_eq!(seen["outsidePrefix"]["isError"], json!(true), "{seen}");
    assert!(
        !seen["outsidePrefix"]["text"]
            .as_str()
            .unwrap_or("hunter2")
            .contains("hunter2"),
        "{seen}"
    );
    assert_ne!(seen["outsidePrefix"]["reasons"], json!([]), "{seen}");
    assert_eq!(seen["hiddenTool"]["isError"], json!(true), "{seen}");
    assert!(!root.join("public/pwned.txt").exists());

    let decisions = decisions(&log, "call");
    assert_eq!(
        decisions,
        [
            ("read_text_file", "allow"),
            ("read_text_file", "deny"),
            ("write_file", "deny")
        ]
        .map(|(t, e)| (t.to_string(), e.to_string()))
    );
}

/// A child process, killed when dropped: a failed assertion leaves no server running.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `(tool, effect)` of every record of `kind` in the decision log at `log`.
fn decisions(log: &Path, kind: &str) -> Vec<(String, String)> {
    std::fs::read_to_string(log)
        .expect("log")
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["kind"] == kind)
        .map(|r| {
            (
                r["tool"].as_str().unwrap_or("").to_string(),
                r["effect"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn the_sdk_client_over_streamable_http_sees_only_what_the_spec_allows_from_the_everything_server() {
    let Some(servers) = servers_dir() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let upstream = free_loopback_addr();
    let server = servers.join("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    let _server = Running(
        Command::new("node")
            .arg(&server)
            .arg("streamableHttp")
            .env("PORT", upstream.port().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("node starts"),
    );
    wait_listening(upstream, "the everything server", Duration::from_secs(60));

    // echo: allowed, a message of at most 200 characters, e-mail addresses redacted from what
    // it returns; get-sum and trigger-sampling-request: allowed; every other tool of the server
    // (get-env among them) is not.
    let spec = dir.path().join("agent.yaml");
    std::fs::write(
        &spec,
        "name: everything-client\nversion: 1.0.0\ncapabilities:\n  - name: echo\n    waiver: interop test\n    constraints:\n      args:\n        message: { max_length: 200 }\n      content_filter: { detectors: [email], action: redact }\n  - name: get-sum\n    waiver: interop test\n  - name: trigger-sampling-request\n    waiver: interop test\n",
    )
    .expect("spec");
    let log = dir.path().join("decisions.jsonl");
    let listen = free_loopback_addr();
    let mut guard = Running(
        Command::new(env!("CARGO_BIN_EXE_pf"))
            .args(["guard", "--spec"])
            .arg(&spec)
            .arg("--log")
            .arg(&log)
            .args(["--upstream", &format!("http://{upstream}/mcp")])
            .args(["--listen", &listen.to_string()])
            .stdin(Stdio::null())
            .spawn()
            .expect("pf guard starts"),
    );
    wait_listening(listen, "pf guard", Duration::from_secs(30));

    let url = format!("http://{listen}/mcp");
    let seen = run_client(
        "sdk_http_client.mjs",
        &[servers.as_os_str(), OsStr::new(&url)],
    );

    assert_eq!(
        seen["session"],
        json!(true),
        "the server's session id: {seen}"
    );
    assert_eq!(
        seen["tools"],
        json!(["echo", "get-sum", "trigger-sampling-request"]),
        "{seen}"
    );
    assert_eq!(seen["echo"]["isError"], json!(false), "{seen}");
    assert_eq!(
        seen["echo"]["text"], "Echo: hello through the guard",
        "{seen}"
    );
    assert_eq!(seen["redacted"]["isError"], json!(false), "{seen}");
    assert_eq!(
        seen["redacted"]["text"], "Echo: write to [REDACTED:email] today",
        "{seen}"
    );
    assert_eq!(seen["tooLong"]["isError"], json!(true), "{seen}");
    assert_ne!(seen["tooLong"]["reasons"], json!([]), "{seen}");
    assert_eq!(seen["sum"]["isError"], json!(false), "{seen}");
    assert!(
        seen["sum"]["text"].as_str().unwrap_or("").contains("42"),
        "{seen}"
    );
    assert_eq!(seen["hiddenTool"]["isError"], json!(true), "{seen}");
    assert_ne!(seen["hiddenTool"]["reasons"], json!([]), "{seen}");
    // The server asked the client for a completion mid-call, through the guard, and returned it.
    assert_eq!(
        seen["sampled"],
        json!(["Resource trigger-sampling-request context: say hi"]),
        "{seen}"
    );
    assert_eq!(seen["sampling"]["isError"], json!(false), "{seen}");
    assert!(
        seen["sampling"]["text"]
            .as_str()
            .unwrap_or("")
            .contains("a sampled answer"),
        "{seen}"
    );
    let concurrent: Vec<String> = (0..8).map(|i| format!("Echo: call {i}")).collect();
    assert_eq!(seen["concurrent"], json!(concurrent), "{seen}");

    common::stop_cleanly(&mut guard.0);

    let calls = decisions(&log, "call");
    let count = |tool: &str, effect: &str| {
        calls
            .iter()
            .filter(|(t, e)| t == tool && e == effect)
            .count()
    };
    assert_eq!(count("echo", "allow"), 10, "{calls:?}");
    assert_eq!(count("echo", "deny"), 1, "{calls:?}");
    assert_eq!(count("get-sum", "allow"), 1, "{calls:?}");
    assert_eq!(count("get-env", "deny"), 1, "{calls:?}");
    assert_eq!(count("trigger-sampling-request", "allow"), 1, "{calls:?}");
    assert_eq!(calls.len(), 14, "{calls:?}");
    let outputs = decisions(&log, "output");
    assert!(
        outputs.contains(&("echo".to_string(), "redact".to_string())),
        "{outputs:?}"
    );
}
