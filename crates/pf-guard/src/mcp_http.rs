//! Streamable HTTP MCP proxy (MCP specification 2025-06-18 and 2025-03-26, "Transports" §2,
//! Streamable HTTP): the agent talks to this endpoint as if it were the MCP server; every message
//! goes through an [`McpSession`] (the same routing the stdio transport uses) and on to the
//! upstream server's endpoint.
//!
//! - `POST`: a JSON-RPC message or batch. Requests the guard answers itself (a denied
//!   `tools/call`, a malformed message) never reach the upstream. The upstream's answer may be
//!   `application/json` or a `text/event-stream`; either way every message in it is routed
//!   through the session (tools/list filtered, tool results checked) and re-emitted.
//! - `GET`: the server-initiated SSE stream, relayed the same way.
//! - `DELETE`: ends the session upstream and here.
//!
//! Sessions: a guard session is created when the upstream issues an `Mcp-Session-Id` and is
//! dropped on `DELETE` (or when the upstream answers 404 for it). A request naming a session the
//! guard does not know gets 404, which tells the client to initialize again (§2.5.3); requests
//! without the header (stateless servers, `initialize`) share one session.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header::{ACCEPT, ALLOW, AUTHORIZATION, CONTENT_TYPE, ORIGIN, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper::body::Incoming;
use serde_json::Value;

use crate::detach;
use crate::enforcer::Enforcer;
use crate::jsonrpc::{self, ErrorCode, Id, Message, error_response};
use crate::lock::lock;
use crate::mcp::{McpSession, Route};
use crate::upstream::{self, Upstream, UpstreamError, is_content_type, pick_headers};

mod events;

use events::{Answering, relay_events};

/// `Mcp-Session-Id` (§2.5).
pub const SESSION_HEADER: HeaderName = HeaderName::from_static("mcp-session-id");
/// `MCP-Protocol-Version` (2025-06-18 §2.7).
pub const VERSION_HEADER: HeaderName = HeaderName::from_static("mcp-protocol-version");
const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");
/// Longest session id accepted from the upstream.
const MAX_SESSION_ID: usize = 256;
/// Most messages in one batch.
pub const MAX_BATCH: usize = 256;

/// Limits and timeouts of the proxy.
#[derive(Debug, Clone)]
pub struct McpHttpConfig {
    /// Largest request body from the client and largest JSON body from the upstream.
    pub max_body_bytes: usize,
    /// Longest silence on an upstream event stream before the guard closes it.
    pub idle_timeout: Duration,
    /// Most concurrent MCP sessions; beyond it the least recently used session idle for
    /// `max_session_idle` or longer makes room, and without one new sessions are refused (503).
    pub max_sessions: usize,
    /// How long a session must have been idle before a new one may take its place (a client
    /// that went away without `DELETE` leaves its session behind).
    pub max_session_idle: Duration,
    /// `Origin` values accepted besides loopback ones (§2.0.1: servers must validate Origin).
    pub allowed_origins: Vec<String>,
    /// Trust the host's user requests (`x-pf-user-request`, `_meta`; see [`crate::user_turn`]).
    pub trust_user_request: bool,
}

impl Default for McpHttpConfig {
    fn default() -> Self {
        McpHttpConfig {
            max_body_bytes: jsonrpc::MAX_MESSAGE_BYTES,
            idle_timeout: Duration::from_secs(300),
            max_sessions: 10_000,
            max_session_idle: Duration::from_secs(3600),
            allowed_origins: Vec::new(),
            trust_user_request: false,
        }
    }
}

type Shared<E> = Arc<Mutex<McpSession<E>>>;

/// A session the upstream issued, and when a request last named it.
struct Entry<E> {
    session: Shared<E>,
    used: Instant,
}

/// The proxy: one upstream, one guard session per MCP session.
pub struct McpHttpProxy<E> {
    upstream: Upstream,
    config: McpHttpConfig,
    new_enforcer: Box<dyn Fn() -> E + Send + Sync>,
    anonymous: Shared<E>,
    sessions: Mutex<HashMap<String, Entry<E>>>,
}

const FORWARD_REQUEST: [HeaderName; 6] = [
    ACCEPT,
    AUTHORIZATION,
    SESSION_HEADER,
    VERSION_HEADER,
    LAST_EVENT_ID,
    CONTENT_TYPE,
];
const FORWARD_RESPONSE: [HeaderName; 4] = [
    CONTENT_TYPE,
    SESSION_HEADER,
    VERSION_HEADER,
    WWW_AUTHENTICATE,
];

impl<E: Enforcer + 'static> McpHttpProxy<E> {
    /// A proxy to `upstream`; `new_enforcer` makes the enforcer of each new session.
    pub fn new(
        upstream: Upstream,
        config: McpHttpConfig,
        new_enforcer: impl Fn() -> E + Send + Sync + 'static,
    ) -> Arc<Self> {
        let trust = config.trust_user_request;
        Arc::new(McpHttpProxy {
            upstream,
            config,
            anonymous: Arc::new(Mutex::new(
                McpSession::new(new_enforcer()).with_trusted_user_request(trust),
            )),
            new_enforcer: Box::new(new_enforcer),
            sessions: Mutex::new(HashMap::new()),
        })
    }

    /// The routes: every path is the MCP endpoint.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new().fallback(handle::<E>).with_state(self)
    }

    /// Number of live MCP sessions (not counting the shared session-less one).
    pub fn session_count(&self) -> usize {
        lock(&self.sessions).len()
    }

    /// The guard session a request belongs to; `None` when it names a session we do not know.
    fn session(&self, headers: &HeaderMap) -> Option<Shared<E>> {
        match headers.get(SESSION_HEADER) {
            None => Some(self.anonymous.clone()),
            Some(v) => {
                let id = v.to_str().ok()?;
                let mut sessions = lock(&self.sessions);
                let entry = sessions.get_mut(id)?;
                entry.used = Instant::now();
                Some(entry.session.clone())
            }
        }
    }

    /// Registers a session the upstream issued; `Some` is the refusal to answer instead.
    fn register(&self, id: &HeaderValue) -> Option<Response> {
        let valid = id.len() <= MAX_SESSION_ID
            && !id.is_empty()
            && id.as_bytes().iter().all(|b| (0x21..=0x7e).contains(b));
        let Some(id) = id.to_str().ok().filter(|_| valid) else {
            return Some(rpc_error(
                StatusCode::BAD_GATEWAY,
                None,
                ErrorCode::InternalError,
                "upstream issued an invalid Mcp-Session-Id",
            ));
        };
        let mut sessions = lock(&self.sessions);
        if sessions.contains_key(id) {
            return None;
        }
        if sessions.len() >= self.config.max_sessions
            && !evict_idle(&mut sessions, self.config.max_session_idle)
        {
            let msg = format!(
                "guard: too many MCP sessions, none idle for {:?}; end one with DELETE first",
                self.config.max_session_idle
            );
            return Some(rpc_error(
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                ErrorCode::InternalError,
                &msg,
            ));
        }
        let session = McpSession::new((self.new_enforcer)())
            .with_trusted_user_request(self.config.trust_user_request);
        let entry = Entry {
            session: Arc::new(Mutex::new(session)),
            used: Instant::now(),
        };
        sessions.insert(id.to_string(), entry);
        None
    }

    fn forget(&self, headers: &HeaderMap) {
        if let Some(id) = headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok()) {
            lock(&self.sessions).remove(id);
        }
    }

    fn origin_allowed(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = headers.get(ORIGIN) else {
            return true; // not a browser
        };
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        if self.config.allowed_origins.iter().any(|o| o == origin) {
            return true;
        }
        let host = origin
            .split_once("://")
            .map(|(_, rest)| rest)
            .unwrap_or(origin);
        let host = host.rsplit_once(':').map_or(host, |(h, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                host
            }
        });
        matches!(host, "localhost" | "127.0.0.1" | "[::1]")
    }

    async fn post(self: Arc<Self>, req: Request) -> Response {
        let (parts, body) = req.into_parts();
        let Some(session) = self.session(&parts.headers) else {
            return unknown_session();
        };
        if let Err(e) = crate::user_turn::feed_header(&mut lock(&session), &parts.headers) {
            let msg = e.to_string();
            return rpc_error(
                StatusCode::BAD_REQUEST,
                None,
                ErrorCode::InvalidRequest,
                &msg,
            );
        }
        let body = match axum::body::to_bytes(body, self.config.max_body_bytes).await {
            Ok(b) => b,
            Err(_) => {
                let msg = format!(
                    "request body exceeds {} bytes or could not be read",
                    self.config.max_body_bytes
                );
                return rpc_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    None,
                    ErrorCode::InvalidRequest,
                    &msg,
                );
            }
        };
        // §2.1: a body that is not valid JSON-RPC gets an HTTP error status.
        let value: Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                let msg = format!("invalid JSON: {e}");
                return rpc_error(StatusCode::BAD_REQUEST, None, ErrorCode::ParseError, &msg);
            }
        };
        let (batch, items) = match value {
            Value::Array(items) => (true, items),
            v => (false, vec![v]),
        };
        if batch && (items.is_empty() || items.len() > MAX_BATCH) {
            let msg = format!("a batch must hold 1 to {MAX_BATCH} messages");
            return rpc_error(
                StatusCode::BAD_REQUEST,
                None,
                ErrorCode::InvalidRequest,
                &msg,
            );
        }
        let total = items.len();
        let mut forward = Vec::new();
        let mut sent = Vec::new();
        let mut local = Vec::new();
        let mut invalid = 0;
        {
            let mut s = lock(&session);
            for item in items {
                match jsonrpc::from_value(item) {
                    Err(e) => {
                        invalid += 1;
                        local.push(e.to_response());
                    }
                    Ok(msg) => {
                        let client = match &msg {
                            Message::Request { id, .. } => Some(id.clone()),
                            _ => None,
                        };
                        match s.from_client(msg) {
                            Route::ToServer(v) => {
                                // A forwarded request now bears the guard's id.
                                let ours = v.get("id").and_then(Id::from_value);
                                if let (Some(client), Some(ours)) = (client, ours) {
                                    sent.push(Sent { client, ours });
                                }
                                forward.push(v);
                            }
                            Route::ToClient(v) => local.push(v),
                            Route::Dropped => {}
                        }
                    }
                }
            }
        }
        if invalid == total {
            return json_response(
                StatusCode::BAD_REQUEST,
                pack(batch, local),
                HeaderMap::new(),
            );
        }
        if forward.is_empty() {
            if local.is_empty() {
                // Only notifications the guard kept (a cancellation it could not place).
                return StatusCode::ACCEPTED.into_response();
            }
            return json_response(StatusCode::OK, pack(batch, local), HeaderMap::new());
        }
        let out = if batch {
            Value::Array(forward)
        } else {
            forward.pop().unwrap_or(Value::Null)
        };
        let mut headers = pick_headers(&parts.headers, &FORWARD_REQUEST);
        headers.insert(CONTENT_TYPE, upstream::JSON);
        let answer = self
            .upstream
            .send(
                Method::POST,
                self.upstream.base().clone(),
                headers,
                Bytes::from(json_bytes(&out)),
            )
            .await;
        let resp = match answer {
            Ok(r) => r,
            Err(e) => return self.upstream_failed(&session, &sent, &e),
        };
        let (rparts, rbody) = resp.into_parts();
        if let Some(id) = rparts.headers.get(SESSION_HEADER)
            && let Some(refusal) = self.register(id)
        {
            self.fail_pending(&session, &sent);
            return refusal;
        }
        let out_headers = pick_headers(&rparts.headers, &FORWARD_RESPONSE);
        let status = rparts.status;
        if status == StatusCode::ACCEPTED {
            // §2.1.4: 202 answers input without requests; a request it leaves unanswered would
            // keep the client waiting, so it gets an error here.
            let mut local = local;
            local.extend(give_up(
                &mut lock(&session),
                &sent,
                "upstream accepted this request without answering it",
            ));
            if local.is_empty() {
                return (StatusCode::ACCEPTED, out_headers).into_response();
            }
            return json_response(StatusCode::OK, pack(batch, local), out_headers);
        }
        if !status.is_success() {
            if status == StatusCode::NOT_FOUND {
                self.forget(&parts.headers);
            }
            self.fail_pending(&session, &sent);
            return self.pass_through(status, out_headers, rbody).await;
        }
        if is_content_type(&rparts.headers, "text/event-stream") {
            // Only a session's streams can be resumed (a GET naming the session).
            let named = parts.headers.contains_key(SESSION_HEADER)
                || rparts.headers.contains_key(SESSION_HEADER);
            let answering = Answering { sent, named };
            let body = relay_events(session, rbody, local, answering, self.config.idle_timeout);
            return (status, out_headers, body).into_response();
        }
        if !is_content_type(&rparts.headers, "application/json") {
            self.fail_pending(&session, &sent);
            return rpc_error(
                StatusCode::BAD_GATEWAY,
                single(&sent),
                ErrorCode::InternalError,
                "upstream answered with neither application/json nor text/event-stream",
            );
        }
        let bytes = match self
            .upstream
            .read_body(rbody, self.config.max_body_bytes)
            .await
        {
            Ok(b) => b,
            Err(e) => return self.upstream_failed(&session, &sent, &e),
        };
        let answers = match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Array(items)) => items,
            Ok(v) => vec![v],
            Err(_) => {
                let e = UpstreamError::Body("upstream sent invalid JSON".into());
                return self.upstream_failed(&session, &sent, &e);
            }
        };
        let mut out = local;
        {
            let mut s = lock(&session);
            for a in answers {
                out.extend(route_from_server(&mut s, a));
            }
            // A request the upstream did not answer would leave the client waiting forever.
            out.extend(give_up(
                &mut s,
                &sent,
                "upstream sent no valid response to this request",
            ));
        }
        let body = if !batch && out.len() == 1 {
            out.pop().unwrap_or(Value::Null)
        } else {
            Value::Array(out)
        };
        crate::settle::in_background(&session);
        json_response(status, body, out_headers)
    }

    async fn get(self: Arc<Self>, req: Request) -> Response {
        let Some(session) = self.session(req.headers()) else {
            return unknown_session();
        };
        let sent = self.forward_bodyless(Method::GET, req.headers()).await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => return self.upstream_failed(&session, &[], &e),
        };
        let (rparts, rbody) = resp.into_parts();
        let out_headers = pick_headers(&rparts.headers, &FORWARD_RESPONSE);
        if rparts.status.is_success() && is_content_type(&rparts.headers, "text/event-stream") {
            let none = Answering {
                sent: Vec::new(),
                named: true,
            };
            let body = relay_events(session, rbody, Vec::new(), none, self.config.idle_timeout);
            return (rparts.status, out_headers, body).into_response();
        }
        if rparts.status == StatusCode::NOT_FOUND {
            self.forget(req.headers());
        }
        self.pass_through(rparts.status, out_headers, rbody).await
    }

    /// Sends a body-less request (GET, DELETE) to the upstream endpoint with the forwarded headers.
    async fn forward_bodyless(
        &self,
        method: Method,
        headers: &HeaderMap,
    ) -> Result<hyper::Response<Incoming>, UpstreamError> {
        let headers = pick_headers(headers, &FORWARD_REQUEST);
        self.upstream
            .send(method, self.upstream.base().clone(), headers, Bytes::new())
            .await
    }

    async fn delete(self: Arc<Self>, req: Request) -> Response {
        if self.session(req.headers()).is_none() {
            return unknown_session();
        }
        let sent = self.forward_bodyless(Method::DELETE, req.headers()).await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => return bad_gateway(None, &e),
        };
        let (rparts, rbody) = resp.into_parts();
        if rparts.status.is_success() || rparts.status == StatusCode::NOT_FOUND {
            self.forget(req.headers());
        }
        let out_headers = pick_headers(&rparts.headers, &FORWARD_RESPONSE);
        self.pass_through(rparts.status, out_headers, rbody).await
    }

    async fn pass_through(
        &self,
        status: StatusCode,
        headers: HeaderMap,
        body: Incoming,
    ) -> Response {
        match self
            .upstream
            .read_body(body, self.config.max_body_bytes)
            .await
        {
            Ok(b) => (status, headers, b).into_response(),
            Err(e) => bad_gateway(None, &e),
        }
    }

    fn fail_pending(&self, session: &Shared<E>, sent: &[Sent]) {
        let mut s = lock(session);
        for r in sent {
            s.server_failed(&r.ours);
        }
    }

    fn upstream_failed(&self, session: &Shared<E>, sent: &[Sent], e: &UpstreamError) -> Response {
        tracing::warn!(error = %e, "MCP upstream failed");
        self.fail_pending(session, sent);
        bad_gateway(single(sent), e)
    }
}

/// Drops the least recently used session if it has been idle for `idle` or longer; whether one
/// was dropped. Its client, if it comes back, gets 404 and starts a new session (§2.5.3).
fn evict_idle<E>(sessions: &mut HashMap<String, Entry<E>>, idle: Duration) -> bool {
    let Some((id, used)) = sessions
        .iter()
        .min_by_key(|(_, e)| e.used)
        .map(|(id, e)| (id.clone(), e.used))
    else {
        return false;
    };
    if used.elapsed() < idle {
        return false;
    }
    sessions.remove(&id);
    tracing::info!(idle = ?used.elapsed(), "evicted the least recently used MCP session to make room");
    true
}

async fn handle<E: Enforcer + 'static>(
    State(proxy): State<Arc<McpHttpProxy<E>>>,
    req: Request,
) -> Response {
    if !proxy.origin_allowed(req.headers()) {
        return rpc_error(
            StatusCode::FORBIDDEN,
            None,
            ErrorCode::InvalidRequest,
            "Origin not allowed",
        );
    }
    // A client that leaves must not cut an exchange with the upstream short: the answer to a
    // forwarded call is still read, checked and logged, and the call stops counting as in
    // flight when the server is done with it.
    match *req.method() {
        Method::POST => detach::to_completion(proxy.post(req)).await,
        Method::GET => proxy.get(req).await,
        Method::DELETE => detach::to_completion(proxy.delete(req)).await,
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            [(ALLOW, "GET, POST, DELETE")],
        )
            .into_response(),
    }
}

/// Routes one message the upstream sent; `None` when it is not a JSON-RPC message (dropped).
fn route_from_server<E: Enforcer>(session: &mut McpSession<E>, value: Value) -> Option<Value> {
    match jsonrpc::from_value(value) {
        Ok(msg) => match session.from_server(msg) {
            Route::ToClient(v) => Some(v),
            Route::ToServer(_) | Route::Dropped => None,
        },
        Err(e) => {
            tracing::warn!(error = %e, "dropped a malformed message from the MCP upstream");
            None
        }
    }
}

/// Gives up on the requests in `sent` the server has not answered: each stops counting as in
/// flight, and the errors (saying `why`) to send their clients instead of answers.
fn give_up<E: Enforcer>(s: &mut McpSession<E>, sent: &[Sent], why: &str) -> Vec<Value> {
    let mut errors = Vec::new();
    for r in sent {
        if !s.awaits(&r.ours) {
            continue;
        }
        s.server_failed(&r.ours);
        errors.push(error_response(
            Some(&r.client),
            ErrorCode::InternalError,
            why,
            None,
        ));
    }
    errors
}

/// A request forwarded upstream: the client's id, and the guard's it was sent under.
struct Sent {
    client: Id,
    ours: Id,
}

/// The client's id of the only request forwarded, if only one was.
fn single(sent: &[Sent]) -> Option<&Id> {
    match sent {
        [r] => Some(&r.client),
        _ => None,
    }
}

fn pack(batch: bool, mut msgs: Vec<Value>) -> Value {
    if !batch && msgs.len() == 1 {
        msgs.pop().unwrap_or(Value::Null)
    } else {
        Value::Array(msgs)
    }
}

fn json_response(status: StatusCode, body: Value, mut headers: HeaderMap) -> Response {
    headers.insert(CONTENT_TYPE, upstream::JSON);
    (status, headers, json_bytes(&body)).into_response()
}

/// `v` as JSON text. `serde_json::to_vec` writes straight into a buffer; `Value`'s `Display`
/// (`to_string`) goes through `fmt::Write` token by token and costs several times more.
fn json_bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_else(|_| v.to_string().into_bytes())
}

/// `v` as a JSON string (see [`json_bytes`]).
fn json_string(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| v.to_string())
}

fn rpc_error(status: StatusCode, id: Option<&Id>, code: ErrorCode, msg: &str) -> Response {
    json_response(
        status,
        error_response(id, code, msg, None),
        HeaderMap::new(),
    )
}

fn bad_gateway(id: Option<&Id>, e: &UpstreamError) -> Response {
    let status = match e {
        UpstreamError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::BAD_GATEWAY,
    };
    rpc_error(
        status,
        id,
        ErrorCode::InternalError,
        &format!("guard: MCP upstream unavailable: {e}"),
    )
}

fn unknown_session() -> Response {
    rpc_error(
        StatusCode::NOT_FOUND,
        None,
        ErrorCode::InvalidRequest,
        "unknown Mcp-Session-Id; initialize a new session",
    )
}
