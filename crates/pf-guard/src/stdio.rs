//! `pf guard -- <server command>`: wraps a stdio MCP server as a child process.
//!
//! The agent talks to us on stdin/stdout as if we were the server; every message passes through
//! an [`McpSession`]. The server's stderr is passed through. A malformed message from the agent
//! gets a JSON-RPC error and the session goes on; one from the server is dropped with a log line
//! (it is not a protocol message the agent could use). The guard exits when either side closes.

use std::process::Stdio;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;

use crate::enforcer::Enforcer;
use crate::jsonrpc::{self, ErrorCode, MAX_MESSAGE_BYTES, error_response};
use crate::lines::{Frame, next_frame};
use crate::mcp::{McpSession, Route};

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
    proxy_session(
        session,
        BufReader::new(tokio::io::stdin()),
        tokio::io::stdout(),
        BufReader::new(server_out),
        server_in,
    )
    .await?;
    // The client closed: let the server see EOF and finish on its own terms.
    let status = child.wait().await.map_err(|source| StdioError::Io {
        side: "server",
        source,
    })?;
    Ok(status.code().unwrap_or(1))
}

/// Proxies between a client (reader/writer) and a server (reader/writer) until either closes.
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
    mut client_in: CR,
    client_out: CW,
    mut server_out: SR,
    server_in: SW,
) -> Result<(), StdioError>
where
    E: Enforcer + 'static,
    CR: AsyncBufRead + Unpin,
    CW: AsyncWrite + Unpin + Send + 'static,
    SR: AsyncBufRead + Unpin,
    SW: AsyncWrite + Unpin + Send + 'static,
{
    let session = Arc::new(Mutex::new(session));
    let to_client = writer(client_out, "client");
    let to_server = writer(server_in, "server");
    let send = |route: Route| match route {
        Route::ToServer(v) => to_server.send(v),
        Route::ToClient(v) => to_client.send(v),
    };

    let client_side = async {
        loop {
            let frame = next_frame(&mut client_in, MAX_MESSAGE_BYTES)
                .await
                .map_err(|source| StdioError::Io {
                    side: "client",
                    source,
                })?;
            let route = match frame {
                Frame::Eof { .. } => return Ok::<(), StdioError>(()),
                Frame::TooLong(n) => Route::ToClient(error_response(
                    None,
                    ErrorCode::InvalidRequest,
                    &format!("message of {n} bytes exceeds the limit of {MAX_MESSAGE_BYTES}"),
                    None,
                )),
                Frame::Line(line) if line.iter().all(u8::is_ascii_whitespace) => continue,
                Frame::Line(line) => match jsonrpc::parse(&line) {
                    Ok(msg) => lock(&session).from_client(msg),
                    Err(e) => Route::ToClient(e.to_response()),
                },
            };
            if send(route).is_err() {
                return Ok(());
            }
        }
    };
    let server_side = async {
        loop {
            let frame = next_frame(&mut server_out, MAX_MESSAGE_BYTES)
                .await
                .map_err(|source| StdioError::Io {
                    side: "server",
                    source,
                })?;
            let route = match frame {
                Frame::Eof { .. } => return Ok::<(), StdioError>(()),
                Frame::TooLong(n) => {
                    tracing::warn!(bytes = n, "dropped an oversize message from the MCP server");
                    continue;
                }
                Frame::Line(line) if line.iter().all(u8::is_ascii_whitespace) => continue,
                Frame::Line(line) => match jsonrpc::parse(&line) {
                    Ok(msg) => lock(&session).from_server(msg),
                    Err(e) => {
                        tracing::warn!(error = %e, "dropped a malformed message from the MCP server");
                        continue;
                    }
                },
            };
            if send(route).is_err() {
                return Ok(());
            }
        }
    };
    // Either side closing ends the session.
    tokio::select! {
        r = client_side => r?,
        r = server_side => r?,
    }
    drop(to_client);
    drop(to_server);
    Ok(())
}

fn lock<E>(session: &Mutex<McpSession<E>>) -> std::sync::MutexGuard<'_, McpSession<E>> {
    // A poisoned lock means a panic mid-decision elsewhere; the state is still the last
    // consistent one written, and refusing all further traffic would not be safer than this.
    session.lock().unwrap_or_else(|p| p.into_inner())
}

/// A task that writes one JSON message per line, in order.
fn writer<W: AsyncWrite + Unpin + Send + 'static>(
    mut out: W,
    side: &'static str,
) -> mpsc::UnboundedSender<Value> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Value>();
    tokio::spawn(async move {
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
    tx
}
