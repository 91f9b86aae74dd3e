//! `pf guard` between two programs we did not write: the official MCP TypeScript SDK client and
//! the reference filesystem server (both from npm, installed by `.ci/npm-mcp-servers` into the
//! directory `PF_TEST_MCP_SERVERS` names). Skips visibly when unset; fails under `CI=true`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

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
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/sdk_client.mjs");
    let out = Command::new("node")
        .arg(&script)
        .arg(&servers)
        .arg(env!("CARGO_BIN_EXE_pf"))
        .arg(&spec)
        .arg(&log)
        .arg(&root)
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "sdk client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).expect("client prints JSON");

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

    let decisions: Vec<(String, String)> = std::fs::read_to_string(&log)
        .expect("log")
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["kind"] == "call")
        .map(|r| {
            (
                r["tool"].as_str().unwrap_or("").to_string(),
                r["effect"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
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
