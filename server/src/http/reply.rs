//! JSON replies, and the one error shape every route answers with:
//! `{"error": {"code", "message", "index", "field"}}` (`docs/http.md`).

use bytes::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Response, StatusCode};
use proto::msg::{ErrorCode, ErrorReply};
use serde_json::{json, Value};

use super::body::Body;

/// What an error is answered with.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HttpError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// The event's position in a batch, for an event's error.
    pub index: Option<u32>,
    /// The field at fault, for an event's error.
    pub field: Option<String>,
    /// Seconds to wait before retrying (429 and 503 busy answers).
    pub retry_after: Option<u64>,
    /// The methods the route allows (405).
    pub allow: Option<&'static str>,
}

impl HttpError {
    /// An error with no event or field.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> HttpError {
        HttpError {
            status,
            code,
            message: message.into(),
            index: None,
            field: None,
            retry_after: None,
            allow: None,
        }
    }

    /// 400: the request could not be parsed.
    pub fn malformed(message: impl Into<String>) -> HttpError {
        HttpError::new(StatusCode::BAD_REQUEST, "malformed", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> HttpError {
        HttpError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 422 for the event at `index`, field `field`.
    pub fn invalid_event(index: usize, field: &str, message: impl Into<String>) -> HttpError {
        HttpError {
            index: Some(index as u32),
            field: Some(field.to_owned()),
            ..HttpError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_event", message)
        }
    }

    /// The response.
    pub fn into_response(self) -> Response<Body> {
        let body = json!({"error": {
            "code": self.code,
            "message": self.message,
            "index": self.index,
            "field": self.field,
        }});
        let mut r = json_response(self.status, &body);
        if let Some(secs) = self.retry_after {
            r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        if matches!(
            self.status,
            StatusCode::REQUEST_TIMEOUT | StatusCode::PAYLOAD_TOO_LARGE
        ) {
            // The rest of the body was not read: the connection ends.
            r.headers_mut()
                .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(allow) = self.allow {
            r.headers_mut()
                .insert(hyper::header::ALLOW, HeaderValue::from_static(allow));
        }
        r
    }
}

/// The binary protocol's error, as HTTP answers it: the same decision,
/// another status line.
impl From<ErrorReply> for HttpError {
    fn from(e: ErrorReply) -> HttpError {
        let (status, code) = match e.code {
            ErrorCode::BadFrame | ErrorCode::UnsupportedVersion => {
                (StatusCode::BAD_REQUEST, "malformed")
            }
            ErrorCode::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            ErrorCode::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            ErrorCode::InvalidEvent => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_event"),
            ErrorCode::InvalidRequest => (StatusCode::BAD_REQUEST, "invalid_request"),
            ErrorCode::Busy => (StatusCode::TOO_MANY_REQUESTS, "busy"),
            ErrorCode::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            ErrorCode::Poisoned => (StatusCode::SERVICE_UNAVAILABLE, "poisoned"),
            ErrorCode::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
            ErrorCode::Conflict => (StatusCode::CONFLICT, "conflict"),
            ErrorCode::Internal | ErrorCode::Other(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        HttpError {
            index: e.index,
            field: (!e.field.is_empty()).then_some(e.field),
            retry_after: matches!(e.code, ErrorCode::Busy | ErrorCode::ShuttingDown)
                .then(|| retry_after_secs(&e.message)),
            ..HttpError::new(status, code, e.message)
        }
    }
}

/// Whole seconds to wait: what a rate limit's message says ("retry in N
/// ms"), rounded up, else 1.
fn retry_after_secs(message: &str) -> u64 {
    message
        .split_once("retry in ")
        .and_then(|(_, rest)| rest.strip_suffix(" ms"))
        .and_then(|ms| ms.parse::<u64>().ok())
        .map_or(1, |ms| ms.div_ceil(1000).max(1))
}

/// A JSON response.
pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    json_text_response(status, body.to_string())
}

/// A response of JSON already written out.
pub(crate) fn json_text_response(status: StatusCode, text: String) -> Response<Body> {
    let mut r = Response::new(Body::from(Bytes::from(text)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// A 200 JSON response.
pub(crate) fn ok(body: &Value) -> Response<Body> {
    json_response(StatusCode::OK, body)
}
