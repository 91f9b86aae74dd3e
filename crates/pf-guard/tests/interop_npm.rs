//! The stdio guard in front of third-party MCP servers: the official reference servers
//! `@modelcontextprotocol/server-filesystem` and `server-everything` (TypeScript SDK), installed
//! from npm by `.ci/npm-mcp-servers` into the directory `PF_TEST_MCP_SERVERS` names.
//!
//! Without `PF_TEST_MCP_SERVERS` the tests skip with a message; under CI (`CI=true`) they fail.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use pf_guard::PolicyEnforcer;
use pf_guard::log::{Committer, MemorySink};
use pf_guard::metrics::GuardMetrics;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, Lines};
use tokio::process::Command;

/// Where `.ci/npm-mcp-servers` installed the servers, or `None` (visible skip; a panic under CI).
fn servers_dir() -> Option<PathBuf> {
    match std::env::var("PF_TEST_MCP_SERVERS") {
        Ok(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
        _ => {
            if pf_testkit::in_ci() {
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

fn server_script(dir: &Path, package: &str) -> PathBuf {
    let p = dir
        .join("node_modules/@modelcontextprotocol")
        .join(package)
        .join("dist/index.js");
    assert!(
        p.is_file(),
        "{} is missing; run .ci/npm-mcp-servers {}",
        p.display(),
        dir.display()
    );
    p
}

/// A JSON-RPC client talking to the guard, which talks to the real server.
struct Client {
    to_guard: DuplexStream,
    from_guard: Lines<BufReader<DuplexStream>>,
    sink: Arc<MemorySink>,
    next_id: u64,
}

impl Client {
    async fn start(spec_yaml: &str, server: &Path, server_args: &[&str]) -> Client {
        let spec = pf_spec::parse_str("agent.yaml", spec_yaml).expect("spec parses");
        let policy = pf_policy::compile(&spec).expect("spec compiles").policy;
        let sink = Arc::new(MemorySink::default());
        let enforcer = PolicyEnforcer::new(
            Arc::new(policy),
            pf_spec::digest(&spec),
            sink.clone(),
            Arc::new(GuardMetrics::default()),
            Committer::random(),
        );
        let mut child = Command::new("node")
            .arg(server)
            .args(server_args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("node starts (is node installed?)");
        let server_in = child.stdin.take().expect("stdin");
        let server_out = BufReader::new(child.stdout.take().expect("stdout"));
        let (to_guard, guard_in) = tokio::io::duplex(1 << 20);
        let (guard_out, from_guard) = tokio::io::duplex(1 << 20);
        tokio::spawn(async move {
            let _child = child;
            let _ = pf_guard::stdio::proxy(
                enforcer,
                BufReader::new(guard_in),
                guard_out,
                server_out,
                server_in,
            )
            .await;
        });
        Client {
            to_guard,
            from_guard: BufReader::new(from_guard).lines(),
            sink,
            next_id: 1,
        }
    }

    async fn send(&mut self, msg: Value) {
        let mut line = msg.to_string().into_bytes();
        line.push(b'\n');
        self.to_guard.write_all(&line).await.expect("write");
    }

    /// Sends a request and returns the response to it (skipping server notifications).
    async fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        loop {
            let line = tokio::time::timeout(Duration::from_secs(60), self.from_guard.next_line())
                .await
                .unwrap_or_else(|_| panic!("no answer to {method} within 60 s"))
                .expect("read")
                .unwrap_or_else(|| panic!("the guard closed the stream before answering {method}"));
            let msg: Value = serde_json::from_str(&line).expect("JSON from the guard");
            if msg.get("id") == Some(&json!(id)) && msg.get("method").is_none() {
                return msg;
            }
        }
    }

    /// MCP lifecycle: initialize, then the initialized notification.
    async fn initialize(&mut self) -> Value {
        let init = self
            .request(
                "initialize",
                json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "pf-guard-interop", "version": "0"}}),
            )
            .await;
        self.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        init
    }

    async fn tool_names(&mut self) -> Vec<String> {
        let list = self.request("tools/list", json!({})).await;
        let mut names: Vec<String> = list["result"]["tools"]
            .as_array()
            .unwrap_or_else(|| panic!("tools/list result: {list}"))
            .iter()
            .filter_map(|t| t["name"].as_str().map(str::to_string))
            .collect();
        names.sort();
        names
    }

    async fn call(&mut self, tool: &str, args: Value) -> Value {
        let r = self
            .request("tools/call", json!({"name": tool, "arguments": args}))
            .await;
        r.get("result")
            .cloned()
            .unwrap_or_else(|| panic!("{tool}: no result: {r}"))
    }
}

fn text(result: &Value) -> String {
    result["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn reasons(result: &Value) -> Value {
    result["_meta"]["provability-fabric/reasons"].clone()
}

#[tokio::test]
async fn filesystem_server_under_the_guard() {
    let Some(dir) = servers_dir() else { return };
    let server = server_script(&dir, "server-filesystem");
    let root = tempfile::tempdir().expect("temp dir");
    let root_path = root.path().canonicalize().expect("canonical root");
    std::fs::create_dir_all(root_path.join("public")).expect("mkdir");
    std::fs::create_dir_all(root_path.join("secret")).expect("mkdir");
    std::fs::write(root_path.join("public/notes.txt"), "release on friday\n").expect("write");
    std::fs::write(root_path.join("secret/keys.txt"), "hunter2\n").expect("write");
    let public = root_path.join("public");
    let spec = format!(
        r#"
name: fs-reader
version: 1.0.0
capabilities:
  - name: read_text_file
    kind: file
    waiver: interop test
    constraints:
      args:
        path: {{ path_prefixes: ["{public}"] }}
  - name: list_directory
    kind: file
    waiver: interop test
    constraints:
      args:
        path: {{ path_prefixes: ["{root}"] }}
"#,
        public = public.display(),
        root = root_path.display()
    );
    let mut c = Client::start(&spec, &server, &[root_path.to_str().expect("utf-8")]).await;

    let init = c.initialize().await;
    assert_eq!(
        init["result"]["serverInfo"]["name"], "secure-filesystem-server",
        "{init}"
    );
    assert!(
        init["result"]["capabilities"]["tools"].is_object(),
        "{init}"
    );

    // The server offers more than a dozen tools; the spec allows two.
    assert_eq!(c.tool_names().await, ["list_directory", "read_text_file"]);

    // An allowed call returns the server's real result.
    let notes = c
        .call("read_text_file", json!({"path": public.join("notes.txt")}))
        .await;
    assert_ne!(notes["isError"], json!(true), "{notes}");
    assert_eq!(text(&notes), "release on friday\n", "{notes}");
    let listing = c.call("list_directory", json!({"path": root_path})).await;
    assert!(
        text(&listing).contains("[DIR] public") && text(&listing).contains("[DIR] secret"),
        "{listing}"
    );

    // The server would serve this file (it is inside its root), but the spec's prefix says no.
    let secret = c
        .call(
            "read_text_file",
            json!({"path": root_path.join("secret/keys.txt")}),
        )
        .await;
    assert_eq!(secret["isError"], json!(true), "{secret}");
    assert!(!text(&secret).contains("hunter2"), "{secret}");
    assert!(
        reasons(&secret).as_array().is_some_and(|r| !r.is_empty()),
        "{secret}"
    );
    // A `..` escape from the allowed prefix is refused too.
    let escape = c
        .call(
            "read_text_file",
            json!({"path": format!("{}/../secret/keys.txt", public.display())}),
        )
        .await;
    assert_eq!(escape["isError"], json!(true), "{escape}");
    assert!(!text(&escape).contains("hunter2"), "{escape}");

    // A tool the server has but the spec does not allow never reaches the server.
    let write = c
        .call(
            "write_file",
            json!({"path": public.join("pwned.txt"), "content": "x"}),
        )
        .await;
    assert_eq!(write["isError"], json!(true), "{write}");
    assert!(!public.join("pwned.txt").exists());

    let calls: Vec<(String, &str)> = c
        .sink
        .records()
        .into_iter()
        .filter(|r| r.kind == "call")
        .map(|r| (r.tool, r.effect))
        .collect();
    assert_eq!(
        calls,
        vec![
            ("read_text_file".to_string(), "allow"),
            ("list_directory".to_string(), "allow"),
            ("read_text_file".to_string(), "deny"),
            ("read_text_file".to_string(), "deny"),
            ("write_file".to_string(), "deny"),
        ]
    );
}

#[tokio::test]
async fn everything_server_under_the_guard() {
    let Some(dir) = servers_dir() else { return };
    let server = server_script(&dir, "server-everything");
    let spec = r#"
name: everything-client
version: 1.0.0
capabilities:
  - name: echo
    waiver: interop test
    constraints:
      args:
        message: { max_length: 40 }
  - name: get-sum
    waiver: interop test
    constraints:
      args:
        a: { min: 0, max: 100 }
        b: { min: 0, max: 100 }
"#;
    let mut c = Client::start(spec, &server, &["stdio"]).await;
    let init = c.initialize().await;
    assert!(init["result"]["protocolVersion"].is_string(), "{init}");

    assert_eq!(c.tool_names().await, ["echo", "get-sum"]);

    let sum = c.call("get-sum", json!({"a": 2, "b": 40})).await;
    assert_ne!(sum["isError"], json!(true), "{sum}");
    assert!(text(&sum).contains("42"), "{sum}");
    let echo = c
        .call("echo", json!({"message": "hello through the guard"}))
        .await;
    assert!(text(&echo).contains("hello through the guard"), "{echo}");

    // Outside the argument constraints: answered by the guard, with reason codes.
    let big = c.call("get-sum", json!({"a": 2, "b": 4000})).await;
    assert_eq!(big["isError"], json!(true), "{big}");
    assert!(text(&big).starts_with("Denied by policy"), "{big}");
    let long = c.call("echo", json!({"message": "x".repeat(100)})).await;
    assert_eq!(long["isError"], json!(true), "{long}");
    // A tool the spec does not allow.
    let env = c.call("get-env", json!({})).await;
    assert_eq!(env["isError"], json!(true), "{env}");

    // The session goes on after denials: a ping still reaches the server.
    let ping = c.request("ping", json!({})).await;
    assert_eq!(ping["result"], json!({}), "{ping}");
}
