//! OpenAI-compatible proxy for `POST /v1/chat/completions` and `POST /v1/responses`: requests
//! are checked by a [`ChatSession`] before they reach the model server, responses (JSON or
//! `stream: true` event streams) before they reach the agent.
//!
//! Sessions: the APIs are stateless, so a guard session is chosen per request: the value of
//! the `x-pf-session` header when the client sends one (it is not forwarded); for a Responses
//! request with a `previous_response_id`, the session of that response (a fresh one when the
//! guard never relayed it); otherwise a digest of the `Authorization` header and the
//! conversation's first system (or `instructions`) and user messages (the same conversation
//! re-sent with more turns lands in the same session). Sessions are evicted least-recently-used
//! beyond the configured maximum.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderName, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::enforcer::Enforcer;
use crate::lock::lock;
use crate::openai_chat::ChatSession;
use crate::openai_stream::StreamFilter;
use crate::sse::{self, Event, Parser};
use crate::upstream::{self, Upstream, UpstreamError, is_content_type, pick_headers};

/// Header naming the guard session of a request.
pub const SESSION_HEADER: HeaderName = HeaderName::from_static("x-pf-session");
const MAX_SESSION_KEY: usize = 256;
/// Response ids remembered per session slot (for `previous_response_id`).
const RESPONSES_PER_SESSION: usize = 4;

/// Limits and timeouts of the proxy.
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// Largest request body, largest JSON response, most buffered bytes of a streamed one.
    pub max_body_bytes: usize,
    /// Longest silence on a streamed response before the guard ends it.
    pub idle_timeout: Duration,
    /// Most sessions kept (least recently used are evicted).
    pub max_sessions: usize,
}

impl Default for OpenAiConfig {
    fn default() -> Self {
        OpenAiConfig {
            max_body_bytes: 16 * 1024 * 1024,
            idle_timeout: Duration::from_secs(300),
            max_sessions: 10_000,
        }
    }
}

type Shared<E> = Arc<Mutex<ChatSession<E>>>;

struct Sessions<E> {
    map: HashMap<String, (u64, Shared<E>)>,
    clock: u64,
    /// Responses API: response id -> session key, oldest first for eviction.
    responses: HashMap<String, String>,
    response_order: VecDeque<String>,
}

/// Which API a request speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    Chat,
    Responses,
}

/// The proxy: one upstream model server, one guard session per conversation.
pub struct OpenAiProxy<E> {
    upstream: Upstream,
    config: OpenAiConfig,
    new_enforcer: Box<dyn Fn() -> E + Send + Sync>,
    sessions: Mutex<Sessions<E>>,
}

const FORWARD_REQUEST: [HeaderName; 4] = [
    ACCEPT,
    AUTHORIZATION,
    HeaderName::from_static("openai-organization"),
    HeaderName::from_static("openai-project"),
];
const FORWARD_RESPONSE: [HeaderName; 2] = [CONTENT_TYPE, HeaderName::from_static("x-request-id")];

impl<E: Enforcer + 'static> OpenAiProxy<E> {
    /// A proxy to the model server at `upstream` (its root; the request path is appended).
    pub fn new(
        upstream: Upstream,
        config: OpenAiConfig,
        new_enforcer: impl Fn() -> E + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(OpenAiProxy {
            upstream,
            config,
            new_enforcer: Box::new(new_enforcer),
            sessions: Mutex::new(Sessions {
                map: HashMap::new(),
                clock: 0,
                responses: HashMap::new(),
                response_order: VecDeque::new(),
            }),
        })
    }

    /// The routes: `POST /v1/chat/completions` and `POST /v1/responses` (also without the
    /// `/v1` prefix).
    pub fn router(self: Arc<Self>) -> Router {
        let limit = self.config.max_body_bytes;
        Router::new()
            .route("/v1/chat/completions", post(chat::<E>))
            .route("/chat/completions", post(chat::<E>))
            .route("/v1/responses", post(responses::<E>))
            .route("/responses", post(responses::<E>))
            .layer(DefaultBodyLimit::max(limit))
            .with_state(self)
    }

    /// Number of live sessions.
    pub fn session_count(&self) -> usize {
        lock(&self.sessions).map.len()
    }

    /// Remembers that response `id` belongs to the session `key` (for `previous_response_id`).
    pub(crate) fn remember_response(&self, id: &str, key: &str) {
        let mut s = lock(&self.sessions);
        if s.responses.len() >= self.config.max_sessions.max(1) * RESPONSES_PER_SESSION
            && let Some(old) = s.response_order.pop_front()
        {
            s.responses.remove(&old);
        }
        if s.responses
            .insert(id.to_string(), key.to_string())
            .is_none()
        {
            s.response_order.push_back(id.to_string());
        }
    }

    /// The session key of a Responses request that continues `previous`.
    fn continued(&self, previous: &str) -> String {
        let s = lock(&self.sessions);
        match s.responses.get(previous) {
            Some(key) => key.clone(),
            None => format!("p:{previous}"),
        }
    }

    fn session(&self, key: String) -> Shared<E> {
        let mut s = lock(&self.sessions);
        s.clock += 1;
        let now = s.clock;
        if let Some((used, session)) = s.map.get_mut(&key) {
            *used = now;
            return session.clone();
        }
        if s.map.len() >= self.config.max_sessions
            && let Some(oldest) = s
                .map
                .iter()
                .min_by_key(|(_, (used, _))| *used)
                .map(|(k, _)| k.clone())
        {
            s.map.remove(&oldest);
        }
        let session = Arc::new(Mutex::new(ChatSession::new((self.new_enforcer)())));
        s.map.insert(key, (now, session.clone()));
        session
    }
}

/// The session key of a request (see the module documentation).
pub fn session_key(headers: &HeaderMap, body: &Value) -> Result<String, String> {
    if let Some(v) = headers.get(SESSION_HEADER) {
        let v = v
            .to_str()
            .ok()
            .filter(|v| !v.is_empty() && v.len() <= MAX_SESSION_KEY)
            .ok_or_else(|| {
                format!("`{SESSION_HEADER}` must be 1 to {MAX_SESSION_KEY} visible characters")
            })?;
        return Ok(format!("h:{v}"));
    }
    let mut h = Sha256::new();
    let auth = headers
        .get(AUTHORIZATION)
        .map(|v| v.as_bytes())
        .unwrap_or(b"");
    h.update((auth.len() as u64).to_be_bytes());
    h.update(auth);
    // Chat: `messages`; Responses: `input` (a string is the user's message) and `instructions`.
    let messages = body
        .get("messages")
        .or_else(|| body.get("input"))
        .and_then(Value::as_array);
    for role in ["system", "user"] {
        let first = messages
            .and_then(|m| {
                m.iter()
                    .find(|m| m.get("role").and_then(Value::as_str) == Some(role))
            })
            .and_then(|m| m.get("content"))
            .or_else(|| match role {
                "system" => body.get("instructions"),
                _ => body.get("input").filter(|i| i.is_string()),
            })
            .map(Value::to_string)
            .unwrap_or_default();
        h.update((first.len() as u64).to_be_bytes());
        h.update(first.as_bytes());
    }
    Ok(format!("c:{}", hex::encode(h.finalize())))
}

async fn chat<E: Enforcer + 'static>(
    State(proxy): State<Arc<OpenAiProxy<E>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(proxy, Api::Chat, uri, headers, body).await
}

async fn responses<E: Enforcer + 'static>(
    State(proxy): State<Arc<OpenAiProxy<E>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(proxy, Api::Responses, uri, headers, body).await
}

async fn handle<E: Enforcer + 'static>(
    proxy: Arc<OpenAiProxy<E>>,
    api: Api,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut request: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return api_error(StatusCode::BAD_REQUEST, "the body must be a JSON object"),
        Err(e) => return api_error(StatusCode::BAD_REQUEST, &format!("invalid JSON: {e}")),
    };
    let previous = request
        .get("previous_response_id")
        .and_then(Value::as_str)
        .filter(|_| api == Api::Responses && !headers.contains_key(SESSION_HEADER));
    let key = match previous {
        Some(p) => Ok(proxy.continued(p)),
        None => session_key(&headers, &request),
    };
    let key = match key {
        Ok(k) => k,
        Err(e) => return api_error(StatusCode::BAD_REQUEST, &e),
    };
    let session = proxy.session(key.clone());
    let checked = match api {
        Api::Chat => lock(&session).check_request(&mut request),
        Api::Responses => lock(&session).check_responses_request(&mut request),
    };
    if let Err(e) = checked {
        return api_error(StatusCode::BAD_REQUEST, &e.to_string());
    }
    // Tool results in the request were checked; their labels are made while the model works.
    crate::settle::in_background(&session);
    let streaming = request.get("stream").and_then(Value::as_bool) == Some(true);
    let target = match proxy.upstream.with_path(uri.path()) {
        Ok(t) => t,
        Err(e) => return upstream_error(&e),
    };
    let mut out_headers = pick_headers(&headers, &FORWARD_REQUEST);
    out_headers.insert(CONTENT_TYPE, upstream::JSON);
    let sent = proxy
        .upstream
        .send(
            Method::POST,
            target,
            out_headers,
            Bytes::from(request.to_string()),
        )
        .await;
    let resp = match sent {
        Ok(r) => r,
        Err(e) => return upstream_error(&e),
    };
    let (parts, body) = resp.into_parts();
    let headers = pick_headers(&parts.headers, &FORWARD_RESPONSE);
    if !parts.status.is_success() {
        // The model server's own error (bad key, rate limit, ...) is the agent's to read.
        return match proxy
            .upstream
            .read_body(body, proxy.config.max_body_bytes)
            .await
        {
            Ok(b) => (parts.status, headers, b).into_response(),
            Err(e) => upstream_error(&e),
        };
    }
    if streaming && is_content_type(&parts.headers, "text/event-stream") && api == Api::Responses {
        let body = crate::openai_responses_http::relay(
            proxy.clone(),
            key,
            session,
            body,
            proxy.config.idle_timeout,
            proxy.config.max_body_bytes,
        );
        return (parts.status, headers, body).into_response();
    }
    if streaming && is_content_type(&parts.headers, "text/event-stream") {
        let body = relay_stream(
            session,
            body,
            proxy.config.idle_timeout,
            proxy.config.max_body_bytes,
        );
        return (parts.status, headers, body).into_response();
    }
    let bytes = match proxy
        .upstream
        .read_body(body, proxy.config.max_body_bytes)
        .await
    {
        Ok(b) => b,
        Err(e) => return upstream_error(&e),
    };
    let mut completion: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(_) => {
            return upstream_error(&UpstreamError::Body(
                "the model server sent a body that is not JSON".into(),
            ));
        }
    };
    match api {
        Api::Chat => lock(&session).check_completion(&mut completion),
        Api::Responses => {
            lock(&session).check_response(&mut completion);
            if let Some(id) = completion.get("id").and_then(Value::as_str) {
                proxy.remember_response(id, &key);
            }
        }
    }
    let mut headers = headers;
    headers.insert(CONTENT_TYPE, upstream::JSON);
    (parts.status, headers, completion.to_string()).into_response()
}

/// Reads the next frame of a model server's event stream into `events`; `false` once the stream
/// ended, stayed idle for `idle`, failed or was malformed (each logged).
pub(crate) async fn read_events(
    body: &mut Incoming,
    idle: Duration,
    parser: &mut Parser,
    events: &mut Vec<Event>,
) -> bool {
    let frame = match tokio::time::timeout(idle, body.frame()).await {
        Ok(Some(Ok(f))) => f,
        Err(_) => {
            tracing::warn!(?idle, "model stream idle; ending it");
            return false;
        }
        Ok(None) => return false,
        Ok(Some(Err(e))) => {
            tracing::warn!(error = %e, "model stream failed");
            return false;
        }
    };
    let Ok(data) = frame.into_data() else {
        return true;
    };
    if let Err(e) = parser.feed(&data, events) {
        tracing::warn!(error = %e, "model stream malformed; ending it");
        return false;
    }
    true
}

/// Relays a streamed completion through a [`StreamFilter`].
fn relay_stream<E: Enforcer + 'static>(
    session: Shared<E>,
    mut body: Incoming,
    idle: Duration,
    limit: usize,
) -> Body {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    tokio::spawn(async move {
        let mut parser = Parser::default();
        let mut filter = StreamFilter::new(limit);
        let mut events = Vec::new();
        let mut out: Vec<String> = Vec::new();
        let mut done = false;
        let mut saw_done = false;
        while !done {
            if !read_events(&mut body, idle, &mut parser, &mut events).await {
                break;
            }
            for ev in events.drain(..) {
                if ev.data.trim() == "[DONE]" {
                    let mut s = lock(&session);
                    out.extend(filter.end(&mut s).iter().map(Value::to_string));
                    out.push("[DONE]".into());
                    saw_done = true;
                    done = true;
                    break;
                }
                let Ok(chunk) = serde_json::from_str::<Value>(&ev.data) else {
                    tracing::warn!("dropped a non-JSON event from the model stream");
                    continue;
                };
                match filter.chunk(&mut lock(&session), chunk) {
                    Ok(chunks) => out.extend(chunks.iter().map(Value::to_string)),
                    Err(e) => {
                        tracing::warn!(error = %e, "model stream too large; ending it");
                        done = true;
                        break;
                    }
                }
            }
            if !send_all(&tx, &mut out).await {
                return;
            }
        }
        // A cut stream: what was buffered is still checked before it is released.
        if !saw_done {
            let rest = filter.end(&mut lock(&session));
            out.extend(rest.iter().map(Value::to_string));
        }
        send_all(&tx, &mut out).await;
    });
    Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

async fn send_all(tx: &mpsc::Sender<Result<Bytes, std::io::Error>>, out: &mut Vec<String>) -> bool {
    for data in out.drain(..) {
        let ev = sse::encode(&sse::data_event(data));
        if tx.send(Ok(Bytes::from(ev))).await.is_err() {
            return false;
        }
    }
    true
}

pub(crate) fn api_error(status: StatusCode, message: &str) -> Response {
    let body = json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": null}});
    (status, [(CONTENT_TYPE, upstream::JSON)], body.to_string()).into_response()
}

fn upstream_error(e: &UpstreamError) -> Response {
    tracing::warn!(error = %e, "model server failed");
    let status = match e {
        UpstreamError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::BAD_GATEWAY,
    };
    let body = json!({"error": {"message": format!("guard: model server unavailable: {e}"),
                                "type": "upstream_error", "param": null, "code": null}});
    (status, [(CONTENT_TYPE, upstream::JSON)], body.to_string()).into_response()
}
