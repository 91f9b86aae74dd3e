//! Helpers shared by the `pf` binary's integration tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Output, Stdio};

use serde_json::{Value, json};

/// Stops a running `pf guard` with SIGTERM and checks that it exits cleanly (having written
/// every queued decision record).
pub fn stop_cleanly(guard: &mut Child) {
    let killed = Command::new("kill")
        .args(["-TERM", &guard.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = guard.wait().expect("guard exits");
    assert!(status.success(), "{status:?}");
}

/// Runs the `pf` binary with `args` in `cwd`.
pub fn pf(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pf"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run pf")
}

/// Makes key pair `keys/ci.{key,pub}.pem` in `dir` and `trust.json`, a 1-of-1 policy of it.
pub fn ci_key_and_trust(dir: &Path) {
    let o = pf(&["key", "gen", "--out-dir", "keys", "--name", "ci"], dir);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::write(
        dir.join("trust.json"),
        r#"{"threshold": 1, "keys": [{"name": "ci", "file": "keys/ci.pub.pem"}]}"#,
    )
    .expect("trust");
}

/// The support agent's spec (`examples/support-agent/agent.yaml`).
pub fn support_spec() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/support-agent/agent.yaml")
}

/// `pf guard` running the demo MCP server over stdio, with pipes to its stdin and stdout.
pub struct GuardSession {
    /// The `pf guard` process.
    pub child: Child,
    /// Its stdin (the client's side of the MCP stream).
    pub stdin: ChildStdin,
    /// Its stdout, line by line.
    pub stdout: BufReader<ChildStdout>,
}

impl GuardSession {
    /// `pf guard --spec SPEC --log LOG EXTRA... -- pf guard demo-tools`.
    pub fn start(spec: &Path, log: &Path, extra: &[&str]) -> GuardSession {
        let pf = env!("CARGO_BIN_EXE_pf");
        let mut args = vec![
            "guard",
            "--spec",
            spec.to_str().expect("utf-8"),
            "--log",
            log.to_str().expect("utf-8"),
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--", pf, "guard", "demo-tools"]);
        let mut child = Command::new(pf)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("pf guard starts");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        GuardSession {
            child,
            stdin,
            stdout,
        }
    }

    /// Writes one line and reads the reply line as JSON.
    pub fn send_raw(&mut self, line: &str) -> Value {
        writeln!(self.stdin, "{line}").expect("write");
        self.stdin.flush().expect("flush");
        let mut reply = String::new();
        self.stdout.read_line(&mut reply).expect("read");
        serde_json::from_str(&reply)
            .unwrap_or_else(|e| panic!("reply is not JSON ({e}): {reply:?}"))
    }

    /// Sends a JSON-RPC request and returns the reply.
    pub fn request(&mut self, id: u64, method: &str, params: Value) -> Value {
        self.send_raw(
            &json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string(),
        )
    }
}
