//! Relays a streamed Responses API answer (`text/event-stream` of typed events) through a
//! [`ResponsesStream`], re-encoding each emitted event with its `event:` type line.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use hyper::body::Incoming;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::enforcer::Enforcer;
use crate::lock::lock;
use crate::openai::{OpenAiProxy, read_events};
use crate::openai_chat::ChatSession;
use crate::openai_responses_stream::ResponsesStream;
use crate::sse::{self, Event, Parser};

type Tx = mpsc::Sender<Result<Bytes, std::io::Error>>;

/// Relays the model server's event stream `body`, checked for session `key`.
pub(crate) fn relay<E: Enforcer + 'static>(
    proxy: Arc<OpenAiProxy<E>>,
    key: String,
    session: Arc<Mutex<ChatSession<E>>>,
    mut body: Incoming,
    idle: Duration,
    limit: usize,
) -> Body {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    tokio::spawn(async move {
        let mut parser = Parser::default();
        let mut filter = ResponsesStream::new(limit);
        let mut events = Vec::new();
        let mut out: Vec<Value> = Vec::new();
        let mut remembered = false;
        'read: while !filter.finished() {
            if !read_events(&mut body, idle, &mut parser, &mut events).await {
                break;
            }
            for ev in events.drain(..) {
                let Ok(event) = serde_json::from_str::<Value>(&ev.data) else {
                    tracing::warn!("dropped a non-JSON event from the model stream");
                    continue;
                };
                match filter.event(&mut lock(&session), event) {
                    Ok(emitted) => out.extend(emitted),
                    Err(e) => {
                        tracing::warn!(error = %e, "model stream too large; ending it");
                        break 'read;
                    }
                }
                if !remembered && let Some(id) = &filter.response_id {
                    proxy.remember_response(id, &key);
                    remembered = true;
                }
                if filter.finished() {
                    break;
                }
            }
            if !send_all(&tx, &mut out).await {
                return;
            }
        }
        // A cut stream: what was held is still checked before it is released.
        if !filter.finished() {
            out.extend(filter.end(&mut lock(&session)));
        }
        send_all(&tx, &mut out).await;
    });
    Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

async fn send_all(tx: &Tx, out: &mut Vec<Value>) -> bool {
    for event in out.drain(..) {
        let kind = event
            .get("type")
            .and_then(Value::as_str)
            .map(str::to_string);
        let ev = sse::encode(&Event {
            event: kind,
            data: event.to_string(),
            ..Event::default()
        });
        if tx.send(Ok(Bytes::from(ev))).await.is_err() {
            return false;
        }
    }
    true
}
