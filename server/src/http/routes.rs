//! The route table: every route the HTTP API has, the right each needs
//! (the binary protocol's [`Need`]s, decided by the same function), and
//! dispatch. The OpenAPI document is built from this table, and a test
//! checks the two against each other.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{HeaderMap, AUTHORIZATION};
use hyper::{Method, Response, StatusCode};
use proto::msg::rights;

use super::body::{self, Body};
use super::reply::HttpError;
use super::{admin, events, openapi};
use crate::auth::Key;
use crate::ctx::Ctx;
use crate::route::{refusal, Need};
use crate::store::LogState;

/// What a route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Append,
    Query,
    GetEvent,
    Stream,
    Checkpoint,
    InclusionProof,
    ConsistencyProof,
    Head,
    Stats,
    GetSchema,
    PutSchema,
    UnknownActions,
    ListKeys,
    CreateKey,
    RevokeKey,
    Healthz,
    Readyz,
    OpenApi,
}

/// One route: `{name}` in a path matches one segment.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    pub method: Method,
    pub path: &'static str,
    pub need: Need,
    pub op: Op,
    /// For the OpenAPI document.
    pub summary: &'static str,
}

const fn route(
    method: Method,
    path: &'static str,
    need: Need,
    op: Op,
    summary: &'static str,
) -> Route {
    Route {
        method,
        path,
        need,
        op,
        summary,
    }
}

const READ: Need = Need::Right(rights::READ);

/// Every route. A more specific path comes before one with a parameter in
/// its place (`/events/stream` before `/events/{seq}`).
pub(crate) const ROUTES: &[Route] = &[
    route(Method::POST, "/api/v1/events", Need::Right(rights::APPEND), Op::Append,
        "Append one event, a batch ({\"events\": [...]}) or NDJSON; answered after the covering fdatasync"),
    route(Method::GET, "/api/v1/events", READ, Op::Query,
        "Query events by tenant, actor, action, resource and time, a page at a time, with the exact total"),
    route(Method::GET, "/api/v1/events/stream", READ, Op::Stream,
        "Follow events as they become durable (Server-Sent Events), resumable with Last-Event-ID"),
    route(Method::GET, "/api/v1/events/{seq}", READ, Op::GetEvent, "One event by seq"),
    route(Method::GET, "/api/v1/checkpoint", READ, Op::Checkpoint,
        "A signed checkpoint (C2SP tlog-checkpoint) of every durable event"),
    route(Method::GET, "/api/v1/proofs/inclusion", READ, Op::InclusionProof,
        "The inclusion proof of event seq in the tree of size events"),
    route(Method::GET, "/api/v1/proofs/consistency", READ, Op::ConsistencyProof,
        "The consistency proof between two tree sizes"),
    route(Method::GET, "/api/v1/head", Need::WholeLog, Op::Head,
        "The newest event's seq and hash (for segment-verify --expect-head)"),
    route(Method::GET, "/api/v1/stats", Need::WholeLog, Op::Stats, "The log's head and counters"),
    route(Method::GET, "/api/v1/schema", Need::Admin, Op::GetSchema, "The log's action schema"),
    route(Method::PUT, "/api/v1/schema", Need::Admin, Op::PutSchema, "Replace the log's action schema"),
    route(Method::GET, "/api/v1/schema/unknown-actions", Need::Right(rights::ADMIN), Op::UnknownActions,
        "Actions stored that the schema does not list, with counts"),
    route(Method::GET, "/api/v1/keys", Need::Admin, Op::ListKeys, "The log's API keys (never their text)"),
    route(Method::POST, "/api/v1/keys", Need::Admin, Op::CreateKey,
        "Create an API key; its text is in this reply only"),
    route(Method::DELETE, "/api/v1/keys/{id}", Need::Admin, Op::RevokeKey, "Revoke an API key"),
    route(Method::GET, "/healthz", Need::Nothing, Op::Healthz, "The process is up"),
    route(Method::GET, "/readyz", Need::Nothing, Op::Readyz, "Every log is open and not poisoned"),
    route(Method::GET, "/api/v1/openapi.json", Need::Nothing, Op::OpenApi, "This API's OpenAPI 3.1 document"),
];

/// The path parameters of `path` if it matches `pattern`.
fn matches(pattern: &str, path: &str) -> Option<Vec<String>> {
    let mut params = Vec::new();
    let mut p = pattern.split('/');
    let mut s = path.split('/');
    loop {
        match (p.next(), s.next()) {
            (None, None) => return Some(params),
            (Some(want), Some(got)) if want.starts_with('{') => {
                if got.is_empty() {
                    return None;
                }
                params.push(percent_decode(got)?);
            }
            (Some(want), Some(got)) if want == got => {}
            _ => return None,
        }
    }
}

/// A request on its way to a handler, with what routing found.
pub(crate) struct Request {
    pub ctx: Arc<Ctx>,
    pub state: Arc<LogState>,
    pub key: Key,
    pub headers: HeaderMap,
    pub query: Option<String>,
    /// The path's `{...}` segments, in order.
    pub path_params: Vec<String>,
    /// The connection, for the engine's sole-appender rule.
    pub connection: u64,
    body: Option<Incoming>,
}

impl Request {
    /// The body, read within the server's bounds (once: a second call
    /// finds it gone).
    pub async fn body(&mut self) -> Result<Bytes, HttpError> {
        let body = self
            .body
            .take()
            .ok_or_else(|| HttpError::malformed("the body was already read"))?;
        let max = self.ctx.config.http_max_body_bytes;
        body::read(&self.headers, body, max, self.ctx.config.frame_timeout()).await
    }

    /// The query string's parameters, decoded, in order.
    pub fn params(&self) -> Vec<(String, String)> {
        let Some(q) = &self.query else {
            return Vec::new();
        };
        q.split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (form_decode(k), form_decode(v))
            })
            .collect()
    }

    /// The `i`-th path parameter.
    pub fn param(&self, i: usize) -> &str {
        self.path_params.get(i).map_or("", String::as_str)
    }
}

/// `%XX` decoding of a path segment; `None` if it is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A query string's `+` is a space; then `%XX`. Undecodable text stays as
/// it came (a filter on it then matches nothing).
fn form_decode(s: &str) -> String {
    let spaced = s.replace('+', " ");
    percent_decode(&spaced).unwrap_or(spaced)
}

/// Answers one request.
pub(crate) async fn handle(
    ctx: &Arc<Ctx>,
    peer: SocketAddr,
    connection: u64,
    req: hyper::Request<Incoming>,
) -> Response<Body> {
    match route_and_run(ctx, connection, req).await {
        Ok(r) => r,
        Err(e) => {
            if e.status.is_server_error() {
                tracing::warn!(%peer, code = e.code, message = %e.message, "http request failed");
            }
            e.into_response()
        }
    }
}

async fn route_and_run(
    ctx: &Arc<Ctx>,
    connection: u64,
    req: hyper::Request<Incoming>,
) -> Result<Response<Body>, HttpError> {
    let path = req.uri().path().to_owned();
    let mut allowed = Vec::new();
    let mut found = None;
    for r in ROUTES {
        if let Some(params) = matches(r.path, &path) {
            if r.method == req.method() && found.is_none() {
                found = Some((r, params));
            } else if !allowed.contains(&r.method.as_str()) {
                allowed.push(r.method.as_str());
            }
        }
    }
    let Some((route, path_params)) = found else {
        if allowed.is_empty() {
            return Err(HttpError::not_found(format!("no route {path}")));
        }
        return Err(HttpError {
            allow: Some(allow_header(&allowed)),
            ..HttpError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{path} allows {}", allowed.join(", ")),
            )
        });
    };
    match route.op {
        Op::Healthz => return Ok(admin::healthz()),
        Op::Readyz => return Ok(admin::readyz(ctx)),
        Op::OpenApi => return Ok(openapi::reply()),
        _ => {}
    }
    let key = authenticate(ctx, req.headers())?;
    if let Some(e) = refusal(route.need, &key) {
        return Err(e.into());
    }
    let state = ctx.logs.get(&key.log).cloned().ok_or_else(|| {
        HttpError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the key's log is not served",
        )
    })?;
    let (parts, body) = req.into_parts();
    let r = Request {
        ctx: ctx.clone(),
        state,
        key,
        headers: parts.headers,
        query: parts.uri.query().map(str::to_owned),
        path_params,
        connection,
        body: Some(body),
    };
    match route.op {
        Op::Append => events::append(r).await,
        Op::Query => events::query(r).await,
        Op::GetEvent => events::get(r).await,
        Op::Stream => events::stream(r).await,
        Op::Checkpoint => admin::checkpoint(r).await,
        Op::InclusionProof => admin::inclusion_proof(r).await,
        Op::ConsistencyProof => admin::consistency_proof(r).await,
        Op::Head => Ok(admin::head(&r)),
        Op::Stats => Ok(admin::stats(&r)),
        Op::GetSchema => Ok(admin::get_schema(&r)),
        Op::PutSchema => admin::put_schema(r).await,
        Op::UnknownActions => Ok(admin::unknown_actions(&r)),
        Op::ListKeys => Ok(admin::list_keys(&r)),
        Op::CreateKey => admin::create_key(r).await,
        Op::RevokeKey => admin::revoke_key(r).await,
        // Answered before authentication, above; the same answers here.
        Op::Healthz => Ok(admin::healthz()),
        Op::Readyz => Ok(admin::readyz(&r.ctx)),
        Op::OpenApi => Ok(openapi::reply()),
    }
}

/// The methods a path allows, for `Allow` (one of a few fixed strings).
fn allow_header(methods: &[&str]) -> &'static str {
    match methods {
        ["GET"] => "GET",
        ["POST"] => "POST",
        ["PUT"] => "PUT",
        ["DELETE"] => "DELETE",
        ["GET", "POST"] | ["POST", "GET"] => "GET, POST",
        ["GET", "PUT"] | ["PUT", "GET"] => "GET, PUT",
        _ => "GET, POST, PUT, DELETE",
    }
}

/// The key of `Authorization: Bearer <key>`. Every failure gets the same
/// answer, as over the binary protocol.
fn authenticate(ctx: &Ctx, headers: &HeaderMap) -> Result<Key, HttpError> {
    let unauthenticated = || {
        HttpError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "send a valid API key: Authorization: Bearer <key>",
        )
    };
    let text = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            // The scheme's name is case-insensitive (RFC 9110 11.1).
            let (scheme, key) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(key)
        })
        .ok_or_else(unauthenticated)?;
    ctx.keys
        .authenticate(text.trim())
        .map(|(k, _)| k)
        .ok_or_else(unauthenticated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_their_patterns_only() {
        assert_eq!(matches("/api/v1/events", "/api/v1/events"), Some(vec![]));
        assert_eq!(matches("/api/v1/events", "/api/v1/events/"), None);
        assert_eq!(
            matches("/api/v1/events/{seq}", "/api/v1/events/42"),
            Some(vec!["42".into()])
        );
        assert_eq!(matches("/api/v1/events/{seq}", "/api/v1/events/"), None);
        assert_eq!(
            matches("/api/v1/keys/{id}", "/api/v1/keys/billing%20svc"),
            Some(vec!["billing svc".into()])
        );
        assert_eq!(matches("/api/v1/keys/{id}", "/api/v1/keys/a/b"), None);
    }

    #[test]
    fn query_strings_decode() {
        assert_eq!(form_decode("a+b%2Bc%3D"), "a b+c=");
        assert_eq!(form_decode("100%"), "100%");
        assert_eq!(percent_decode("%e2%82%ac"), Some("€".into()));
        assert_eq!(percent_decode("%ff"), None);
    }
}
