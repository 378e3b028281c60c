//! `/api/v1/events`: append (one, a batch, NDJSON), query, one by seq, and
//! the stream. Each turns the JSON into what the binary protocol carries
//! and calls the same store operation, so validation, tenants, schemas and
//! dedup are decided in one place.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use proto::event::{EventRef, StoredEvent};
use proto::msg::{self, kind, AppendReceipt, ErrorCode, ErrorReply, EventPage, Query, TimeField};
use tokio::sync::{mpsc, oneshot};

use super::body::Body;
use super::json::{hex, parse_time_param, stored_event_text};
use super::parse::{self, Parsed};
use super::reply::{json_text_response, HttpError};
use super::routes::Request;
use crate::store::{KeyWait, LogState, Refused, Settled};

/// How the events of an append arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// One event object: one receipt back.
    One,
    /// `{"events": [...]}` or NDJSON: `{"receipts": [...]}` back.
    Many,
}

/// POST /api/v1/events.
pub(crate) async fn append(mut r: Request) -> Result<Response<Body>, HttpError> {
    let ndjson = match media_type(&r.headers).as_deref() {
        None | Some("application/json") => false,
        Some("application/x-ndjson") => true,
        Some(other) => {
            return Err(HttpError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("Content-Type {other:?}: send application/json or application/x-ndjson"),
            ))
        }
    };
    let body = r.body().await?;
    let max = r.ctx.config.max_batch_events;
    let parsed = if ndjson {
        parse::ndjson_body(&body, max)?
    } else {
        parse::json_body(&body, max)?
    };
    let (mut events, shape) = match parsed {
        Parsed::One(e) => (vec![*e], Shape::One),
        Parsed::Many(events) => (events, Shape::Many),
    };
    if events.is_empty() {
        return Err(ErrorReply::new(
            ErrorCode::InvalidRequest,
            "an append needs at least one event",
        )
        .into());
    }
    if let Some(k) = idempotency_header(&r.headers)? {
        if shape == Shape::Many {
            return Err(ErrorReply::new(
                ErrorCode::InvalidRequest,
                "the Idempotency-Key header is for a single event: give each event of a batch its idempotency_key",
            )
            .into());
        }
        let key = &mut events[0].texts[parse::IDEMPOTENCY_KEY];
        if key.is_empty() {
            *key = k.into();
        } else if *key != k {
            return Err(HttpError::invalid_event(
                0,
                "idempotency_key",
                "differs from the Idempotency-Key header",
            ));
        }
    }
    let limits = r.state.limits();
    let mut encoded = Vec::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        let e = e.event_ref();
        check_lengths(&e, i, limits)?;
        let mut out = Vec::with_capacity(e.encoded_len());
        e.encode(&mut out);
        encoded.push(out);
    }
    let receipts = submit(&r, encoded).await?;
    let mut text = String::with_capacity(16 + receipts.len() * RECEIPT_LEN);
    let status = match shape {
        Shape::One => {
            put_receipt(&mut text, &receipts[0]);
            if receipts[0].duplicate {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            }
        }
        Shape::Many => {
            text.push_str("{\"receipts\":[");
            for (i, r) in receipts.iter().enumerate() {
                if i > 0 {
                    text.push(',');
                }
                put_receipt(&mut text, r);
            }
            text.push_str("]}");
            StatusCode::OK
        }
    };
    Ok(json_text_response(status, text))
}

/// The media type of `Content-Type`, lowercase, without parameters.
fn media_type(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    Some(
        v.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase(),
    )
}

fn idempotency_header(headers: &HeaderMap) -> Result<Option<String>, HttpError> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(s.to_owned()))
            .map_err(|_| HttpError::malformed("the Idempotency-Key header is not visible ASCII")),
    }
}

/// Fields within the log's limits before they are encoded.
fn check_lengths(e: &EventRef<'_>, index: usize, limits: &proto::Limits) -> Result<(), HttpError> {
    match crate::store::oversized(e, limits) {
        None => Ok(()),
        Some((field, why)) => Err(HttpError::invalid_event(index, field, why)),
    }
}

/// Submits the encoded events and waits for their receipts, which come
/// only after the covering `fdatasync`.
async fn submit(r: &Request, encoded: Vec<Vec<u8>>) -> Result<Vec<AppendReceipt>, HttpError> {
    let bodies: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
    let (tx, rx) = oneshot::channel::<Settled>();
    let done = move |s: Settled| {
        let _ = tx.send(s);
    };
    match r
        .state
        .submit_append(&r.key, &bodies, r.connection, KeyWait::Never, done)
    {
        Ok(()) => {}
        Err(Refused::Reply(e)) => return Err(e.into()),
        Err(Refused::KeysPending) => {
            // Another append holds one of its keys: wait for it on the
            // blocking pool, never on the event loop.
            let (state, key, connection) = (r.state.clone(), r.key.clone(), r.connection);
            let (tx, rx) = oneshot::channel::<Settled>();
            let waited = tokio::task::spawn_blocking(move || {
                let bodies: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
                let done = move |s: Settled| {
                    let _ = tx.send(s);
                };
                state
                    .submit_append(&key, &bodies, connection, KeyWait::Block, done)
                    .err()
            })
            .await;
            return match waited {
                Ok(None) => settled(rx.await),
                Ok(Some(Refused::Reply(e))) => Err(e.into()),
                Ok(Some(Refused::KeysPending)) => {
                    Err(ErrorReply::new(ErrorCode::Busy, "idempotency keys still pending").into())
                }
                Err(_) => {
                    Err(ErrorReply::new(ErrorCode::Internal, "the append's task failed").into())
                }
            };
        }
    }
    settled(rx.await)
}

fn settled(r: Result<Settled, oneshot::error::RecvError>) -> Result<Vec<AppendReceipt>, HttpError> {
    match r {
        Ok(Ok(receipts)) => Ok(receipts),
        Ok(Err(e)) => Err(e.into()),
        // The log stopped before it answered: nothing is acknowledged.
        Err(_) => Err(ErrorReply::new(ErrorCode::ShuttingDown, "the log is closing").into()),
    }
}

/// About the bytes of one receipt's JSON.
const RECEIPT_LEN: usize = 150;

/// One receipt's JSON, written out directly: every append answers with
/// one per event, so this is on the hot path.
fn put_receipt(out: &mut String, r: &AppendReceipt) {
    use std::fmt::Write;
    let _ = write!(
        out,
        "{{\"seq\":{},\"created_at\":\"{}\",\"hash\":\"{}\",\"duplicate\":{}}}",
        r.seq,
        proto::time::format(r.created_at),
        hex(&r.hash),
        r.duplicate
    );
}

/// The most events a query page holds.
const MAX_LIMIT: u16 = msg::MAX_PAGE;

/// GET /api/v1/events.
pub(crate) async fn query(r: Request) -> Result<Response<Body>, HttpError> {
    let mut q = Query::all();
    let mut time_field = TimeField::OccurredAt;
    let (mut from, mut to) = (None, None);
    let mut carried_total = None;
    q.limit = msg::DEFAULT_PAGE;
    for (name, value) in r.params() {
        match name.as_str() {
            "tenant_id" => q.tenant_id = value,
            "actor_id" => q.actor_id = value,
            "action" => q.action = value,
            "resource" => q.resource = value,
            "resource_id" => q.resource_id = value,
            "idempotency_key" => q.idempotency_key = value,
            "source_event_id" => q.source_event_id = value,
            "correlation_id" => q.correlation_id = value,
            "from" => from = Some(parse_time_param(&value, "from").map_err(HttpError::malformed)?),
            "to" => to = Some(parse_time_param(&value, "to").map_err(HttpError::malformed)?),
            "time" => {
                time_field = match value.as_str() {
                    "occurred" => TimeField::OccurredAt,
                    "created" => TimeField::CreatedAt,
                    _ => return Err(HttpError::malformed("time must be occurred or created")),
                }
            }
            "limit" => {
                let n: u64 = value
                    .parse()
                    .map_err(|_| HttpError::malformed("limit must be a number"))?;
                q.limit = match u16::try_from(n) {
                    Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                    _ => {
                        return Err(ErrorReply::new(
                            ErrorCode::InvalidRequest,
                            format!("limit must be 1 to {MAX_LIMIT}"),
                        )
                        .into())
                    }
                }
            }
            "cursor" => {
                // The total first, counted on the first page; then the
                // store's cursor.
                let bad = || {
                    HttpError::from(ErrorReply::new(
                        ErrorCode::InvalidRequest,
                        "the cursor is not one this server gave",
                    ))
                };
                let c = base64url_decode(&value)
                    .filter(|c| c.len() > 8)
                    .ok_or_else(bad)?;
                let (t, inner) = c.split_at(8);
                carried_total = Some(u64::from_le_bytes(t.try_into().map_err(|_| bad())?));
                q.cursor = inner.to_vec();
            }
            "order" => {
                q.descending = match value.as_str() {
                    "asc" => false,
                    "desc" => true,
                    _ => return Err(HttpError::malformed("order must be asc or desc")),
                }
            }
            other => {
                return Err(HttpError::malformed(format!(
                    "{other:?} is not a query parameter"
                )))
            }
        }
    }
    if from.is_some() || to.is_some() {
        q.time_field = time_field;
        q.from = from.unwrap_or(0);
        q.to = to.unwrap_or(u64::MAX);
    }
    // The total is counted once, on the first page (a full pass over the
    // filter's range), and carried in the cursor to the pages after, so
    // that a later page costs only its own bounded scan.
    q.want_total = carried_total.is_none();
    let limit = q.limit;
    let state = r.state.clone();
    let key = r.key.clone();
    let body = blocking(move || state.query(&key, &q)).await?;
    let page = decode_page(kind::EVENTS, &body)?;
    let total = carried_total.or(page.total).unwrap_or(0);
    let mut text = String::with_capacity(64 + page.events.len() * 400);
    text.push_str("{\"data\":[");
    for (i, e) in page.events.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&stored_event_text(e));
    }
    text.push_str(&format!(
        "],\"pagination\":{{\"limit\":{limit},\"total\":{total},\"next_cursor\":"
    ));
    match &page.cursor {
        Some(c) => {
            let mut carried = total.to_le_bytes().to_vec();
            carried.extend_from_slice(c);
            text.push_str(&format!("\"{}\"", base64url_encode(&carried)));
        }
        None => text.push_str("null"),
    }
    text.push_str("}}");
    Ok(json_text_response(StatusCode::OK, text))
}

/// GET /api/v1/events/{seq}.
pub(crate) async fn get(r: Request) -> Result<Response<Body>, HttpError> {
    let seq: u64 = r
        .param(0)
        .parse()
        .map_err(|_| HttpError::malformed("the seq must be a non-negative integer"))?;
    let (state, key) = (r.state.clone(), r.key.clone());
    let body = blocking(move || state.read_range(&key, seq, seq.saturating_add(1), 1)).await?;
    let page = decode_page(kind::EVENTS, &body)?;
    match page.events.first() {
        Some(e) if e.seq == seq => Ok(json_text_response(StatusCode::OK, stored_event_text(e))),
        _ => Err(HttpError::not_found(format!(
            "no event {seq} this key may read"
        ))),
    }
}

/// Runs a store read on the blocking pool.
async fn blocking<F>(op: F) -> Result<Vec<u8>, HttpError>
where
    F: FnOnce() -> Result<Vec<u8>, ErrorReply> + Send + 'static,
{
    match tokio::task::spawn_blocking(op).await {
        Ok(r) => r.map_err(HttpError::from),
        Err(_) => Err(ErrorReply::new(ErrorCode::Internal, "the read's task failed").into()),
    }
}

fn decode_page(k: u8, body: &[u8]) -> Result<EventPage, HttpError> {
    match msg::decode_response(k, body) {
        Ok(msg::Response::Events(page)) => Ok(page),
        Ok(msg::Response::TailEvents(events)) => Ok(EventPage {
            events,
            cursor: None,
            total: None,
        }),
        _ => Err(ErrorReply::new(
            ErrorCode::Internal,
            "a page the server made does not decode",
        )
        .into()),
    }
}

/// How often an idle stream says it is alive.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How often a stream looks again with no signal (the query index that
/// reads go through may trail the durable head by a moment), as the
/// binary protocol's tails do.
const RECHECK: Duration = Duration::from_millis(200);
/// Chunks a stream may have waiting for a slow reader.
const STREAM_DEPTH: usize = 4;

/// GET /api/v1/events/stream: a tail as Server-Sent Events.
pub(crate) async fn stream(r: Request) -> Result<Response<Body>, HttpError> {
    let mut from = None;
    for (name, value) in r.params() {
        match name.as_str() {
            "from" => {
                from = Some(value.parse::<u64>().map_err(|_| {
                    HttpError::malformed("from must be a seq (a non-negative integer)")
                })?)
            }
            other => {
                return Err(HttpError::malformed(format!(
                    "{other:?} is not a stream parameter"
                )))
            }
        }
    }
    if let Some(last) = r.headers.get("last-event-id") {
        let last: u64 = last
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| HttpError::malformed("Last-Event-ID must be a seq"))?;
        from = Some(last.saturating_add(1));
    }
    let state = r.state.clone();
    let start = from.unwrap_or_else(|| state.log.head().map_or(0, |h| h.seq + 1));
    let (tx, rx) = mpsc::channel(STREAM_DEPTH);
    tokio::spawn(follow(r, start, tx));
    let mut resp = Response::new(Body::Stream(rx));
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(resp)
}

/// Sends the events from `next` on as they become durable, until the
/// client goes, the key is revoked, or the server stops.
async fn follow(r: Request, mut next: u64, tx: mpsc::Sender<Bytes>) {
    let state: Arc<LogState> = r.state.clone();
    let mut head = state.signal.subscribe();
    let mut stop = r.ctx.stop_signal();
    let mut generation = r.ctx.keys.generation();
    // The first bytes go at once, so that the client sees the stream open.
    if tx.send(Bytes::from_static(b": open\n\n")).await.is_err() {
        return;
    }
    let mut last_sent = tokio::time::Instant::now();
    loop {
        if r.ctx.stopping() {
            return;
        }
        let now = r.ctx.keys.generation();
        if now != generation {
            if r.ctx.keys.current(&r.key).is_none() {
                let _ = tx
                    .send(Bytes::from_static(b"event: error\ndata: {\"error\":{\"code\":\"unauthenticated\",\"message\":\"this key has been revoked\",\"index\":null,\"field\":null}}\n\n"))
                    .await;
                return;
            }
            generation = now;
        }
        head.borrow_and_update();
        let (s, key) = (state.clone(), r.key.clone());
        let step = tokio::task::spawn_blocking(move || s.tail_step(&key, next)).await;
        let (body, n) = match step {
            Ok(Ok(step)) => step,
            _ => return,
        };
        let moved = n > next;
        next = n;
        if let Some(body) = body {
            let Ok(page) = decode_page(kind::TAIL_EVENTS, &body) else {
                return;
            };
            if tx.send(sse_chunk(&page.events)).await.is_err() {
                return;
            }
            last_sent = tokio::time::Instant::now();
        }
        // On every pass: a stream that moves through other tenants' events
        // sends nothing for a while, and must still say it is alive.
        if last_sent.elapsed() >= KEEP_ALIVE {
            if tx
                .send(Bytes::from_static(b": keep-alive\n\n"))
                .await
                .is_err()
            {
                return;
            }
            last_sent = tokio::time::Instant::now();
        }
        if !moved {
            tokio::select! {
                _ = head.changed() => {}
                () = crate::ctx::stopped(&mut stop) => return,
                () = tokio::time::sleep(RECHECK) => {}
                () = tx.closed() => return,
            }
        }
    }
}

/// Events as SSE messages: `id`, `event`, `data`, a blank line.
fn sse_chunk(events: &[StoredEvent]) -> Bytes {
    let mut out = String::new();
    for e in events {
        out.push_str(&format!(
            "id: {}\nevent: event\ndata: {}\n\n",
            e.seq,
            stored_event_text(e)
        ));
    }
    Bytes::from(out)
}

const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// A cursor as unpadded base64url, safe in a query string.
fn base64url_encode(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &c)| n | u32::from(c) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(URL_SAFE[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = URL_SAFE.iter().position(|&u| u == c)? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // Leftover bits must be zero padding, fewer than a byte's worth.
    (acc == 0 && s.len() % 4 != 1).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_as_base64url() {
        for len in 0..40 {
            let b: Vec<u8> = (0..len).map(|i| (i * 37 + 250) as u8).collect();
            let s = base64url_encode(&b);
            assert!(s.bytes().all(|c| URL_SAFE.contains(&c)), "{s}");
            assert_eq!(base64url_decode(&s), Some(b), "{s}");
        }
        assert_eq!(base64url_encode(b"\xff\xfe"), "__4");
        assert_eq!(base64url_decode("a+b"), None);
        assert_eq!(base64url_decode("A"), None);
    }
}
