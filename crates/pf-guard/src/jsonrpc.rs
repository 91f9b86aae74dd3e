//! JSON-RPC 2.0 messages as MCP frames them: one JSON object per line on stdio, or one per HTTP
//! body. Parsing is strict and bounded; every failure maps to the JSON-RPC error the peer expects.

use serde_json::{Map, Value, json};

/// Largest message accepted from either side, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// JSON-RPC 2.0 error codes (specification §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// Invalid JSON was received.
    ParseError,
    /// The JSON sent is not a valid request object.
    InvalidRequest,
    /// The method does not exist or is not available.
    MethodNotFound,
    /// Invalid method parameters.
    InvalidParams,
    /// Internal error.
    InternalError,
}

impl ErrorCode {
    /// The numeric code.
    pub fn code(self) -> i64 {
        match self {
            ErrorCode::ParseError => -32700,
            ErrorCode::InvalidRequest => -32600,
            ErrorCode::MethodNotFound => -32601,
            ErrorCode::InvalidParams => -32602,
            ErrorCode::InternalError => -32603,
        }
    }
}

/// A request or response id: a string or a number (never null in a request we track).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Id {
    /// Numeric id.
    Number(i64),
    /// String id.
    String(String),
}

impl Id {
    /// The id in a JSON value, when it is a string or an integer.
    pub fn from_value(v: &Value) -> Option<Id> {
        match v {
            Value::Number(n) => n.as_i64().map(Id::Number),
            Value::String(s) => Some(Id::String(s.clone())),
            _ => None,
        }
    }

    /// The id as JSON.
    pub fn to_value(&self) -> Value {
        match self {
            Id::Number(n) => json!(n),
            Id::String(s) => json!(s),
        }
    }
}

/// One decoded JSON-RPC message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A call that expects a response.
    Request {
        /// Its id.
        id: Id,
        /// Method name, e.g. `tools/call`.
        method: String,
        /// Parameters (object or array), `Null` when absent.
        params: Value,
    },
    /// A call without a response.
    Notification {
        /// Method name.
        method: String,
        /// Parameters, `Null` when absent.
        params: Value,
    },
    /// A successful or failed response.
    Response {
        /// The id of the request it answers (`None` for a null id, as in parse errors).
        id: Option<Id>,
        /// `Ok(result)` or `Err(error object)`.
        outcome: Result<Value, Value>,
    },
}

/// Why a frame is not a usable JSON-RPC message, with what to answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct FrameError {
    /// The JSON-RPC error code to answer with.
    pub code: ErrorCode,
    /// Human-readable reason.
    pub message: String,
    /// The request id, when it could be recovered, so the error answers the right request.
    pub id: Option<Id>,
}

impl FrameError {
    fn new(code: ErrorCode, message: impl Into<String>, id: Option<Id>) -> Self {
        FrameError {
            code,
            message: message.into(),
            id,
        }
    }

    /// The error response to send back to the peer.
    pub fn to_response(&self) -> Value {
        error_response(self.id.as_ref(), self.code, &self.message, None)
    }
}

/// Decodes one frame (a line or an HTTP body).
pub fn parse(frame: &[u8]) -> Result<Message, FrameError> {
    if frame.len() > MAX_MESSAGE_BYTES {
        return Err(FrameError::new(
            ErrorCode::InvalidRequest,
            format!(
                "message of {} bytes exceeds the limit of {MAX_MESSAGE_BYTES}",
                frame.len()
            ),
            None,
        ));
    }
    let text = std::str::from_utf8(frame).map_err(|e| {
        FrameError::new(
            ErrorCode::ParseError,
            format!("message is not valid UTF-8: {e}"),
            None,
        )
    })?;
    let value: Value = serde_json::from_str(text)
        .map_err(|e| FrameError::new(ErrorCode::ParseError, format!("invalid JSON: {e}"), None))?;
    from_value(value)
}

/// Interprets a JSON value as a JSON-RPC message.
pub fn from_value(value: Value) -> Result<Message, FrameError> {
    let Value::Object(mut obj) = value else {
        let what = if value.is_array() {
            "batches are not supported"
        } else {
            "a message must be a JSON object"
        };
        return Err(FrameError::new(ErrorCode::InvalidRequest, what, None));
    };
    let raw_id = obj.remove("id");
    let id = match &raw_id {
        None | Some(Value::Null) => None,
        Some(v) => Some(Id::from_value(v).ok_or_else(|| {
            FrameError::new(
                ErrorCode::InvalidRequest,
                "`id` must be a string or an integer",
                None,
            )
        })?),
    };
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(FrameError::new(
            ErrorCode::InvalidRequest,
            "`jsonrpc` must be \"2.0\"",
            id,
        ));
    }
    if let Some(method) = obj.remove("method") {
        let Value::String(method) = method else {
            return Err(FrameError::new(
                ErrorCode::InvalidRequest,
                "`method` must be a string",
                id,
            ));
        };
        let params = obj.remove("params").unwrap_or(Value::Null);
        if !(params.is_object() || params.is_array() || params.is_null()) {
            return Err(FrameError::new(
                ErrorCode::InvalidRequest,
                "`params` must be an object or an array",
                id,
            ));
        }
        return Ok(match (id, raw_id) {
            (Some(id), _) => Message::Request { id, method, params },
            (None, Some(Value::Null)) => {
                return Err(FrameError::new(
                    ErrorCode::InvalidRequest,
                    "request `id` must not be null",
                    None,
                ));
            }
            (None, _) => Message::Notification { method, params },
        });
    }
    match (obj.remove("result"), obj.remove("error")) {
        (Some(result), None) => Ok(Message::Response {
            id,
            outcome: Ok(result),
        }),
        (None, Some(error)) if error.is_object() => Ok(Message::Response {
            id,
            outcome: Err(error),
        }),
        _ => Err(FrameError::new(
            ErrorCode::InvalidRequest,
            "a message needs `method`, or exactly one of `result` and an `error` object",
            id,
        )),
    }
}

impl Message {
    /// The message as JSON, consuming it (no copies of params or results).
    pub fn into_value(self) -> Value {
        let mut obj = Map::new();
        obj.insert("jsonrpc".into(), json!("2.0"));
        match self {
            Message::Request { id, method, params } => {
                obj.insert("id".into(), id.to_value());
                obj.insert("method".into(), Value::String(method));
                if !params.is_null() {
                    obj.insert("params".into(), params);
                }
            }
            Message::Notification { method, params } => {
                obj.insert("method".into(), Value::String(method));
                if !params.is_null() {
                    obj.insert("params".into(), params);
                }
            }
            Message::Response { id, outcome } => {
                obj.insert(
                    "id".into(),
                    id.as_ref().map(Id::to_value).unwrap_or(Value::Null),
                );
                match outcome {
                    Ok(result) => obj.insert("result".into(), result),
                    Err(error) => obj.insert("error".into(), error),
                };
            }
        }
        Value::Object(obj)
    }

    /// The message as JSON.
    pub fn to_value(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("jsonrpc".into(), json!("2.0"));
        match self {
            Message::Request { id, method, params } => {
                obj.insert("id".into(), id.to_value());
                obj.insert("method".into(), json!(method));
                if !params.is_null() {
                    obj.insert("params".into(), params.clone());
                }
            }
            Message::Notification { method, params } => {
                obj.insert("method".into(), json!(method));
                if !params.is_null() {
                    obj.insert("params".into(), params.clone());
                }
            }
            Message::Response { id, outcome } => {
                obj.insert(
                    "id".into(),
                    id.as_ref().map(Id::to_value).unwrap_or(Value::Null),
                );
                match outcome {
                    Ok(result) => obj.insert("result".into(), result.clone()),
                    Err(error) => obj.insert("error".into(), error.clone()),
                };
            }
        }
        Value::Object(obj)
    }
}

/// A JSON-RPC error response.
pub fn error_response(
    id: Option<&Id>,
    code: ErrorCode,
    message: &str,
    data: Option<Value>,
) -> Value {
    let mut error = json!({ "code": code.code(), "message": message });
    if let Some(data) = data {
        error["data"] = data;
    }
    json!({ "jsonrpc": "2.0", "id": id.map(Id::to_value).unwrap_or(Value::Null), "error": error })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_notifications_and_responses_round_trip() {
        for text in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            r#"{"jsonrpc":"2.0","id":"a","result":{"tools":[]}}"#,
            r#"{"jsonrpc":"2.0","id":2,"error":{"code":-32601,"message":"no"}}"#,
        ] {
            let msg = parse(text.as_bytes()).expect(text);
            let back: Value = serde_json::from_str(text).expect("json");
            assert_eq!(msg.to_value(), back);
        }
    }

    #[test]
    fn malformed_frames_get_the_right_error_code() {
        let cases: [(&[u8], ErrorCode); 8] = [
            (b"{not json", ErrorCode::ParseError),
            (b"\xff\xfe", ErrorCode::ParseError),
            (b"[1,2]", ErrorCode::InvalidRequest),
            (b"42", ErrorCode::InvalidRequest),
            (
                br#"{"jsonrpc":"1.0","id":1,"method":"x"}"#,
                ErrorCode::InvalidRequest,
            ),
            (
                br#"{"jsonrpc":"2.0","id":1,"method":7}"#,
                ErrorCode::InvalidRequest,
            ),
            (
                br#"{"jsonrpc":"2.0","id":1,"method":"x","params":3}"#,
                ErrorCode::InvalidRequest,
            ),
            (br#"{"jsonrpc":"2.0","id":1}"#, ErrorCode::InvalidRequest),
        ];
        for (frame, code) in cases {
            let err = parse(frame).expect_err("must be rejected");
            assert_eq!(err.code, code, "{}", String::from_utf8_lossy(frame));
        }
    }

    #[test]
    fn errors_answer_the_request_id_when_known() {
        let err = parse(br#"{"jsonrpc":"1.0","id":9,"method":"x"}"#).expect_err("bad version");
        assert_eq!(err.to_response()["id"], json!(9));
        assert_eq!(err.to_response()["error"]["code"], json!(-32600));
    }

    #[test]
    fn oversize_frames_are_rejected_before_parsing() {
        let big = vec![b' '; MAX_MESSAGE_BYTES + 1];
        assert_eq!(
            parse(&big).expect_err("too big").code,
            ErrorCode::InvalidRequest
        );
    }
}
