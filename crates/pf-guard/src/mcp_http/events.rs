//! Relaying an upstream event stream to the client: every JSON-RPC message in it is routed
//! through the guard session, and the relay outlives a client that leaves while an answer is
//! awaited.

use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::Value;
use tokio::sync::mpsc;

use super::{Sent, Shared, give_up, json_string, route_from_server};
use crate::enforcer::Enforcer;
use crate::lock::lock;
use crate::sse::{self, Event, Parser};

/// The requests an event stream is to answer, and whether it belongs to a named session.
pub(super) struct Answering {
    pub(super) sent: Vec<Sent>,
    pub(super) named: bool,
}

/// Relays an upstream event stream, routing every message in it; `first` are events of our own
/// (local answers) sent before the upstream's. A client that goes away ends the relay only once
/// no request in `answering.sent` awaits its answer: until then the stream is read as if the
/// client had stayed (to its end, or its idle timeout), so every answer on it is checked and
/// logged and its call stops counting as in flight when the server is done.
/// A stream that ends without answering `answering.sent` and cannot be resumed (no event ids, or
/// no session to resume it in) gives up on them: each gets an error event, and a call stops
/// counting as in flight.
pub(super) fn relay_events<E: Enforcer + 'static>(
    session: Shared<E>,
    mut body: Incoming,
    first: Vec<Value>,
    answering: Answering,
    idle: Duration,
) -> Body {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    tokio::spawn(async move {
        // `None` once the client has gone.
        let mut client = Some(tx);
        for v in first {
            let ev = sse::encode(&sse::data_event(json_string(&v)));
            forward(&mut client, ev).await;
        }
        let mut parser = Parser::default();
        let mut events = Vec::new();
        let mut resumable = false;
        loop {
            // A client that leaves is noticed at once, not only at the next event sent to it.
            let next = tokio::select! {
                next = tokio::time::timeout(idle, body.frame()) => next,
                () = gone(&client) => {
                    tracing::debug!("MCP client left an event stream");
                    client = None;
                    if awaited(&session, &answering.sent) {
                        continue;
                    }
                    break; // nobody reads on, and nothing is awaited
                }
            };
            let frame = match next {
                Err(_) => {
                    tracing::warn!(?idle, "MCP upstream event stream idle; closing it");
                    break;
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    tracing::warn!(error = %e, "MCP upstream event stream failed");
                    break;
                }
                Ok(Some(Ok(f))) => f,
            };
            let Ok(data) = frame.into_data() else {
                continue; // trailers
            };
            if let Err(e) = parser.feed(&data, &mut events) {
                tracing::warn!(error = %e, "MCP upstream event stream malformed; closing it");
                break;
            }
            for ev in events.drain(..) {
                resumable |= answering.named && ev.id.as_deref().is_some_and(|id| !id.is_empty());
                let Some(out) = route_event(&session, ev) else {
                    continue;
                };
                crate::settle::in_background(&session);
                forward(&mut client, out).await;
            }
            if client.is_none() && !awaited(&session, &answering.sent) {
                break; // nobody reads on, and nothing is awaited
            }
        }
        if !resumable {
            for error in unanswered(&session, &answering.sent) {
                let ev = sse::encode(&sse::data_event(json_string(&error)));
                forward(&mut client, ev).await;
            }
        }
    });
    Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// Whether any request in `sent` still awaits its answer.
fn awaited<E: Enforcer>(session: &Shared<E>, sent: &[Sent]) -> bool {
    !sent.is_empty() && {
        let s = lock(session);
        sent.iter().any(|r| s.awaits(&r.ours))
    }
}

/// Gives up on the requests in `sent` still awaited (see [`give_up`]).
fn unanswered<E: Enforcer>(session: &Shared<E>, sent: &[Sent]) -> Vec<Value> {
    let errors = give_up(
        &mut lock(session),
        sent,
        "upstream ended the event stream without answering this request",
    );
    if !errors.is_empty() {
        tracing::warn!(
            requests = errors.len(),
            "MCP upstream ended an event stream it cannot resume without answering"
        );
    }
    errors
}

/// Resolves once the client goes away (never once `client` is `None`: that was seen to).
async fn gone(client: &Option<mpsc::Sender<Result<Bytes, std::io::Error>>>) {
    match client {
        Some(tx) => tx.closed().await,
        None => std::future::pending().await,
    }
}

/// Sends an event to the client, unless it has gone (then `client` becomes `None`).
async fn forward(client: &mut Option<mpsc::Sender<Result<Bytes, std::io::Error>>>, event: String) {
    if let Some(tx) = client
        && tx.send(Ok(Bytes::from(event))).await.is_err()
    {
        tracing::debug!("MCP client left an event stream; reading the rest of it");
        *client = None;
    }
}

fn route_event<E: Enforcer>(session: &Shared<E>, ev: Event) -> Option<String> {
    if ev.data.trim().is_empty() {
        return Some(sse::encode(&ev)); // a priming event (id only), for resumption
    }
    let value: Value = match serde_json::from_str(&ev.data) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "dropped a non-JSON event from the MCP upstream");
            return None;
        }
    };
    let mut s = lock(session);
    let routed = match value {
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .filter_map(|v| route_from_server(&mut s, v))
                .collect(),
        ),
        v => route_from_server(&mut s, v)?,
    };
    Some(sse::encode(&Event {
        data: json_string(&routed),
        ..ev
    }))
}
