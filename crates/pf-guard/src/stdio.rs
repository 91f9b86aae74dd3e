//! `pf guard -- <server command>`: wraps a stdio MCP server as a child process.
//!
//! The agent talks to us on stdin/stdout as if we were the server; every message passes through
//! an [`McpSession`]. The server's stderr is passed through. A malformed message from the agent
//! gets a JSON-RPC error and the session goes on; one from the server is dropped with a log line
//! (it is not a protocol message the agent could use).
//!
//! The session ends when the server closes its stdout. When the agent closes first, the server
//! gets EOF on its stdin (MCP stdio transport: closing the input stream is how a client shuts a
//! server down) and the guard goes on relaying, and checking, what the server still writes, so
//! requests already sent get their answers; a server that has not finished within
//! [`DRAIN_GRACE`] is killed.

use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::enforcer::Enforcer;
use crate::jsonrpc::{self, ErrorCode, MAX_MESSAGE_BYTES, error_response};
use crate::lines::{Frame, next_frame};
use crate::lock::lock;
use crate::mcp::{McpSession, Route};

/// How long the server may take, once the client has closed, to answer what it was already
/// sent and exit; it is killed after that.
pub const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// Errors that end a stdio session.
#[derive(Debug, thiserror::Error)]
pub enum StdioError {
    /// The server command could not be started.
    #[error("cannot start MCP server `{command}`: {source}")]
    Spawn {
        /// The command.
        command: String,
        /// Cause.
        source: std::io::Error,
    },
    /// Reading or writing a stream failed.
    #[error("I/O error on {side}: {source}")]
    Io {
        /// Which stream.
        side: &'static str,
        /// Cause.
        source: std::io::Error,
    },
}

/// Runs the server `command` under the guard, proxying our stdin/stdout; returns its exit code.
pub async fn run<E: Enforcer + 'static>(
    enforcer: E,
    command: &str,
    args: &[String],
) -> Result<i32, StdioError> {
    run_session(McpSession::new(enforcer), command, args).await
}

/// [`run`] with a configured session (e.g. one that trusts the host's user requests).
pub async fn run_session<E: Enforcer + 'static>(
    session: McpSession<E>,
    command: &str,
    args: &[String],
) -> Result<i32, StdioError> {
    let client_in = BufReader::new(tokio::io::stdin());
    run_child(
        session,
        command,
        args,
        client_in,
        tokio::io::stdout(),
        DRAIN_GRACE,
    )
    .await
}

/// [`run_session`] with the client on `client_in`/`client_out` and `grace` as the drain time:
/// the server `command` is started, proxied until it closes its stdout (or, once the client has
/// closed, until `grace` has passed), then waited for until that deadline and killed after it.
/// Returns the server's exit code (1 when it had none, e.g. killed).
pub async fn run_child<E, CR, CW>(
    session: McpSession<E>,
    command: &str,
    args: &[String],
    client_in: CR,
    client_out: CW,
    grace: Duration,
) -> Result<i32, StdioError>
where
    E: Enforcer + 'static,
    CR: AsyncBufRead + Unpin,
    CW: AsyncWrite + Unpin + Send + 'static,
{
    let mut child = Command::new(command)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| StdioError::Spawn {
            command: command.to_string(),
            source,
        })?;
    let (Some(server_in), Some(server_out)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(StdioError::Spawn {
            command: command.to_string(),
            source: std::io::Error::other("no pipes"),
        });
    };
    let deadline = relay(
        session,
        client_in,
        client_out,
        BufReader::new(server_out),
        server_in,
        grace,
    )
    .await?;
    let server_io = |source| StdioError::Io {
        side: "server",
        source,
    };
    let status = match tokio::time::timeout_at(deadline, child.wait()).await {
        Ok(status) => status.map_err(server_io)?,
        Err(_) => {
            tracing::warn!(
                grace_ms = grace.as_millis(),
                "the MCP server did not exit in time after its input closed; killing it"
            );
            child.kill().await.map_err(server_io)?;
            child.wait().await.map_err(server_io)?
        }
    };
    Ok(status.code().unwrap_or(1))
}

/// Proxies between a client (reader/writer) and a server (reader/writer) until the server
/// closes, or the client closes and the server has answered (within [`DRAIN_GRACE`]).
pub async fn proxy<E, CR, CW, SR, SW>(
    enforcer: E,
    client_in: CR,
    client_out: CW,
    server_out: SR,
    server_in: SW,
) -> Result<(), StdioError>
where
    E: Enforcer + 'static,
    CR: AsyncBufRead + Unpin,
    CW: AsyncWrite + Unpin + Send + 'static,
    SR: AsyncBufRead + Unpin,
    SW: AsyncWrite + Unpin + Send + 'static,
{
    let session = McpSession::new(enforcer);
    proxy_session(session, client_in, client_out, server_out, server_in).await
}

/// [`proxy`] with a configured session.
pub async fn proxy_session<E, CR, CW, SR, SW>(
    session: McpSession<E>,
    client_in: CR,
    client_out: CW,
    server_out: SR,
    server_in: SW,
) -> Result<(), StdioError>
where
    E: Enforcer + 'static,
    CR: AsyncBufRead + Unpin,
    CW: AsyncWrite + Unpin + Send + 'static,
    SR: AsyncBufRead + Unpin,
    SW: AsyncWrite + Unpin + Send + 'static,
{
    let drain = relay(
        session,
        client_in,
        client_out,
        server_out,
        server_in,
        DRAIN_GRACE,
    );
    drain.await.map(|_| ())
}

/// Relays both ways until the server's output ends, or `grace` after the client's input ended;
/// returns the deadline by which the server process should have exited.
async fn relay<E, CR, CW, SR, SW>(
    session: McpSession<E>,
    client_in: CR,
    client_out: CW,
    server_out: SR,
    server_in: SW,
    grace: Duration,
) -> Result<Instant, StdioError>
where
    E: Enforcer + 'static,
    CR: AsyncBufRead + Unpin,
    CW: AsyncWrite + Unpin + Send + 'static,
    SR: AsyncBufRead + Unpin,
    SW: AsyncWrite + Unpin + Send + 'static,
{
    let session = Mutex::new(session);
    let (to_client, client_writer) = writer(client_out, "client");
    let (to_server, _server_writer) = writer(server_in, "server");
    // Only the client side holds the server's input open; the server side can reach it while
    // it is open (for a message the session routes back to the server) but does not keep it so.
    let server_input = to_server.downgrade();
    let deadline = {
        let client_side = from_client(&session, client_in, to_client.clone(), to_server);
        let server_side = from_server(&session, server_out, to_client, server_input);
        tokio::pin!(client_side, server_side);
        tokio::select! {
            r = &mut server_side => {
                r?;
                Instant::now() + grace
            }
            r = &mut client_side => {
                r?;
                // The client is gone and the server's input is closing; what the server still
                // writes answers requests the client already sent.
                let deadline = Instant::now() + grace;
                match tokio::time::timeout_at(deadline, &mut server_side).await {
                    Ok(r) => r?,
                    Err(_) => tracing::warn!(
                        grace_ms = grace.as_millis(),
                        "the MCP server kept its output open after the client closed; stopped relaying"
                    ),
                }
                deadline
            }
        }
        // Both sides, and with them every sender to the client, are dropped here.
    };
    // Let the last answers reach the client (bounded: a client that stopped reading could
    // otherwise hold the guard forever).
    if tokio::time::timeout(grace, client_writer).await.is_err() {
        tracing::warn!("the client did not take the last answers in time");
    }
    Ok(deadline)
}

/// Reads the client until it closes, routing each message; returns (and so drops the server's
/// input, which the server sees as EOF once what was queued is written) at the client's EOF.
async fn from_client<E, CR>(
    session: &Mutex<McpSession<E>>,
    mut client_in: CR,
    to_client: mpsc::UnboundedSender<Value>,
    to_server: mpsc::UnboundedSender<Value>,
) -> Result<(), StdioError>
where
    E: Enforcer,
    CR: AsyncBufRead + Unpin,
{
    loop {
        let frame = next_frame(&mut client_in, MAX_MESSAGE_BYTES)
            .await
            .map_err(|source| StdioError::Io {
                side: "client",
                source,
            })?;
        let route = match frame {
            Frame::Eof { .. } => return Ok(()),
            Frame::TooLong(n) => Route::ToClient(error_response(
                None,
                ErrorCode::InvalidRequest,
                &format!("message of {n} bytes exceeds the limit of {MAX_MESSAGE_BYTES}"),
                None,
            )),
            Frame::Line(line) if line.iter().all(u8::is_ascii_whitespace) => continue,
            Frame::Line(line) => match jsonrpc::parse(&line) {
                Ok(msg) => lock(session).from_client(msg),
                Err(e) => Route::ToClient(e.to_response()),
            },
        };
        let sent = match route {
            Route::ToServer(v) => to_server.send(v),
            Route::ToClient(v) => to_client.send(v),
            Route::Dropped => continue,
        };
        if sent.is_err() {
            return Ok(());
        }
    }
}

/// Reads the server until it closes, routing each message.
async fn from_server<E, SR>(
    session: &Mutex<McpSession<E>>,
    mut server_out: SR,
    to_client: mpsc::UnboundedSender<Value>,
    to_server: mpsc::WeakUnboundedSender<Value>,
) -> Result<(), StdioError>
where
    E: Enforcer,
    SR: AsyncBufRead + Unpin,
{
    loop {
        let frame = next_frame(&mut server_out, MAX_MESSAGE_BYTES)
            .await
            .map_err(|source| StdioError::Io {
                side: "server",
                source,
            })?;
        let route = match frame {
            Frame::Eof { .. } => return Ok(()),
            Frame::TooLong(n) => {
                tracing::warn!(bytes = n, "dropped an oversize message from the MCP server");
                continue;
            }
            Frame::Line(line) if line.iter().all(u8::is_ascii_whitespace) => continue,
            Frame::Line(line) => match jsonrpc::parse(&line) {
                Ok(msg) => lock(session).from_server(msg),
                Err(e) => {
                    tracing::warn!(error = %e, "dropped a malformed message from the MCP server");
                    continue;
                }
            },
        };
        let sent = match route {
            Route::ToClient(v) => {
                let sent = to_client.send(v).is_ok();
                // The writer task sends the answer meanwhile.
                lock(session).settle();
                sent
            }
            Route::ToServer(v) => match to_server.upgrade() {
                Some(tx) => tx.send(v).is_ok(),
                None => {
                    tracing::warn!("dropped a message for the MCP server: its input is closed");
                    true
                }
            },
            Route::Dropped => true,
        };
        if !sent {
            return Ok(());
        }
    }
}

/// A task that writes one JSON message per line, in order, until every sender is gone; then it
/// drops (closes) `out`.
fn writer<W: AsyncWrite + Unpin + Send + 'static>(
    mut out: W,
    side: &'static str,
) -> (mpsc::UnboundedSender<Value>, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Value>();
    let task = tokio::spawn(async move {
        while let Some(v) = rx.recv().await {
            let mut line = v.to_string().into_bytes();
            line.push(b'\n');
            if let Err(e) = async {
                out.write_all(&line).await?;
                out.flush().await
            }
            .await
            {
                tracing::warn!(side, error = %e, "write failed; closing");
                break;
            }
        }
    });
    (tx, task)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::test_enforcer::DenyEmail;
    use serde_json::json;
    use tokio::io::AsyncReadExt;

    /// Runs `script` under `sh` as the MCP server; the client sends `input` and closes at once.
    /// Returns the server's exit code and the messages the client received.
    async fn run_script(script: &str, input: &str, grace: Duration) -> (i32, Vec<Value>) {
        let (client_out, mut received) = tokio::io::duplex(1 << 16);
        let args = ["-c".to_string(), script.to_string()];
        let code = run_child(
            McpSession::new(DenyEmail),
            "sh",
            &args,
            input.as_bytes(),
            client_out,
            grace,
        )
        .await
        .expect("session runs");
        let mut out = String::new();
        received.read_to_string(&mut out).await.expect("output");
        let messages = out
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON message a line"))
            .collect();
        (code, messages)
    }

    fn call(id: u64, tool: &str) -> String {
        let msg = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                         "params": {"name": tool, "arguments": {}}});
        format!("{msg}\n")
    }

    #[tokio::test]
    async fn a_late_answer_to_a_call_sent_before_the_client_closed_is_checked_and_relayed() {
        let answer = json!({"jsonrpc": "2.0", "id": 7, "result": {
            "content": [{"type": "text", "text": "card 4111 on file"}], "isError": false}});
        // The server answers under the id the guard sent the request with (its own, not 7).
        let server = format!(
            r#"read request; sleep 0.3; id=$(printf '%s' "$request" | sed 's/.*"id":\([0-9]*\).*/\1/'); echo '{answer}' | sed "s/\"id\":7/\"id\":$id/""#
        );
        let started = std::time::Instant::now();

        let (code, received) = run_script(&server, &call(7, "lookup_order"), DRAIN_GRACE).await;

        assert_eq!(code, 0);
        assert_eq!(received.len(), 1, "{received:?}");
        assert_eq!(received[0]["id"], json!(7));
        assert_eq!(
            received[0]["result"]["content"][0]["text"],
            json!("card [CARD] on file"),
            "the answer passed the output check"
        );
        assert!(started.elapsed() < DRAIN_GRACE, "no wait for the grace");
    }

    #[tokio::test]
    async fn the_server_sees_eof_when_the_client_closes_and_may_still_answer() {
        // This server answers only once its input has ended, with how many lines it read.
        let server = r#"n=0; while read line; do n=$((n+1)); done; echo "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"lines\":$n}}""#;
        let ping = |id: u64| {
            format!(
                "{}\n",
                json!({"jsonrpc": "2.0", "id": id, "method": "ping"})
            )
        };

        let (code, received) = run_script(server, &(ping(1) + &ping(2)), DRAIN_GRACE).await;

        assert_eq!(code, 0);
        assert_eq!(
            received,
            vec![json!({"jsonrpc": "2.0", "id": 1, "result": {"lines": 2}})]
        );
    }

    #[tokio::test]
    async fn a_server_still_running_after_the_grace_is_killed() {
        let grace = Duration::from_millis(200);
        let started = std::time::Instant::now();

        let (code, received) = run_script("exec sleep 30", &call(1, "search_kb"), grace).await;

        assert!(received.is_empty(), "{received:?}");
        assert_eq!(code, 1, "killed, so no exit code of its own");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "took {:?}",
            started.elapsed()
        );
    }
}
