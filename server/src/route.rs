//! Request routing: what each request needs before it runs (one table),
//! and where it runs.
//!
//! - On the connection's task, at once: AUTH, PING, STATS, the unknown
//!   actions, CANCEL, and an append's validation and admission (the append
//!   itself is then the engine's, and its reply comes from the engine's
//!   callback).
//! - On the blocking pool (bounded, shared by every connection): what
//!   reads many records or writes files: QUERY, READ, the admin operations,
//!   checkpoints and proofs, and an append that must wait for a key another append holds.
//! - A task of its own: TAIL.
//!
//! Every request takes its reply's place in the outbox as it is read, so
//! replies leave in request order wherever they were made.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use proto::msg::{self, kind, rights, ErrorCode, ErrorReply, Request, Response};

use crate::admin;
use crate::auth::Key;
use crate::ctx::Ctx;
use crate::outbox::{Outbox, Ticket};
use crate::reply;
use crate::store::{KeyWait, LogState, Refused, Settled};
use crate::tail::{Tail, TailHandle, MAX_TAILS};

/// What a request needs before it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Nothing: served before authentication too.
    Nothing,
    /// An authenticated connection.
    Auth,
    /// A key with this right.
    Right(u8),
    /// A key with the admin right and no tenant limit.
    Admin,
    /// Whole-log figures: admin, or read on every tenant.
    WholeLog,
}

/// Every request's need, by frame type: the one place rights are decided.
pub const NEEDS: &[(u8, Need)] = &[
    (kind::AUTH, Need::Nothing),
    (kind::PING, Need::Nothing),
    (kind::APPEND, Need::Right(rights::APPEND)),
    (kind::QUERY, Need::Right(rights::READ)),
    (kind::READ, Need::Right(rights::READ)),
    (kind::TAIL, Need::Right(rights::READ)),
    (kind::CANCEL, Need::Auth),
    (kind::STATS, Need::WholeLog),
    (kind::UNKNOWN_ACTIONS, Need::Right(rights::ADMIN)),
    (kind::LIST_KEYS, Need::Admin),
    (kind::CREATE_KEY, Need::Admin),
    (kind::REVOKE_KEY, Need::Admin),
    (kind::GET_SCHEMA, Need::Admin),
    (kind::SET_SCHEMA, Need::Admin),
    // A checkpoint shows only the log's size and root: every reader needs
    // one to check a proof.
    (kind::CHECKPOINT, Need::Right(rights::READ)),
    // A tenant-limited key proves only its tenants' records (the store
    // checks the record); a consistency proof names no record.
    (kind::INCLUSION_PROOF, Need::Right(rights::READ)),
    (kind::CONSISTENCY_PROOF, Need::Right(rights::READ)),
];

/// The need of a request frame type; `None` for a type that is not a
/// request (the decoder refuses those first).
pub fn need(frame_kind: u8) -> Option<Need> {
    NEEDS
        .iter()
        .find(|(k, _)| *k == frame_kind)
        .map(|(_, n)| *n)
}

/// Why `key` may not make a request with `need`, if it may not.
pub(crate) fn refusal(need: Need, key: &Key) -> Option<ErrorReply> {
    let lacks = |what: &str| {
        Some(ErrorReply::new(
            ErrorCode::Forbidden,
            format!("this key lacks the {what} right"),
        ))
    };
    match need {
        Need::Nothing | Need::Auth => None,
        Need::Right(r) if key.has(r) => None,
        Need::Right(r) => lacks(match r {
            rights::APPEND => "append",
            rights::READ => "read",
            _ => "admin",
        }),
        Need::Admin if admin::allowed(key) => None,
        Need::Admin => lacks("admin (on every tenant)"),
        Need::WholeLog
            if key.has(rights::ADMIN) || (key.has(rights::READ) && key.tenants.is_empty()) =>
        {
            None
        }
        Need::WholeLog => lacks("admin (or read on every tenant)"),
    }
}

/// The error for a request made with a key revoked since it authenticated.
pub(crate) fn revoked() -> ErrorReply {
    ErrorReply::new(
        ErrorCode::Unauthenticated,
        "this key has been revoked; authenticate again",
    )
}

/// Whether the connection goes on after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Served {
    /// It does.
    Continue,
    /// The request was refused with an error frame; close after it.
    Refused,
}

/// A connection's request-level state: its key and its tails.
pub(crate) struct Session {
    pub ctx: Arc<Ctx>,
    /// Unique to the connection, for the log's sole-appender check.
    id: u64,
    pub peer: SocketAddr,
    pub out: Arc<Outbox>,
    /// The connection's key, and the key store's generation when it was
    /// last found in force.
    key: Option<(Key, u64)>,
    tails: HashMap<u32, TailHandle>,
    /// Tails cancelled and not yet ended: each still owes its DONE and the
    /// CANCEL's, which must be sent before an AUTH's answer or the close.
    cancelling: Vec<TailHandle>,
}

impl Session {
    pub(crate) fn new(ctx: Arc<Ctx>, peer: SocketAddr, out: Arc<Outbox>) -> Session {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        Session {
            ctx,
            id: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            peer,
            out,
            key: None,
            tails: HashMap::new(),
            cancelling: Vec::new(),
        }
    }

    fn reply(&self, id: u32, r: &Response) {
        self.out.push_now(reply::frame(id, r));
    }

    fn error(&self, id: u32, e: ErrorReply) {
        self.out
            .push_now(reply::error_frame(&self.ctx.metrics, id, e));
    }

    /// Whether tails are running (a connection with tails is not idle).
    pub(crate) fn has_tails(&mut self) -> bool {
        self.tails.retain(|_, t| !t.is_finished());
        self.cancelling.retain(|t| !t.is_finished());
        !(self.tails.is_empty() && self.cancelling.is_empty())
    }

    /// Ends every tail (each answers DONE, and a cancelled one the CANCEL
    /// too) and waits for them.
    pub(crate) async fn end_tails(&mut self) {
        let tails: Vec<TailHandle> = self.tails.drain().map(|(_, t)| t).collect();
        for t in &tails {
            t.cancel(None);
        }
        for t in tails.into_iter().chain(self.cancelling.drain(..)) {
            t.join().await;
        }
    }

    /// Serves one request frame. `body` is the frame's body (an append's
    /// events borrow it; a request sent to the blocking pool takes it).
    /// An undecodable frame is answered `bad_frame` and ends the
    /// connection.
    pub(crate) async fn serve(&mut self, frame_kind: u8, id: u32, body: Bytes) -> Served {
        let req = match msg::decode_request(frame_kind, &body) {
            Ok(r) => r,
            Err(e) => {
                tracing::info!(peer = %self.peer, kind = frame_kind, error = %e, "dropping a connection after an undecodable frame");
                self.error(
                    id,
                    ErrorReply::new(
                        ErrorCode::BadFrame,
                        format!("frame type {frame_kind:#04x}: {e}"),
                    ),
                );
                return Served::Refused;
            }
        };
        self.route(frame_kind, id, req, &body).await;
        Served::Continue
    }

    async fn route(&mut self, frame_kind: u8, id: u32, req: Request<'_>, body: &Bytes) {
        if matches!(req, Request::Auth { .. }) {
            // Tails run with the key that started them: a new
            // authentication, good or bad, ends them first.
            self.end_tails().await;
        }
        let Some(need) = need(frame_kind) else {
            return self.error(id, ErrorReply::new(ErrorCode::BadFrame, "not a request"));
        };
        if need == Need::Nothing {
            return self.serve_open(id, req);
        }
        let Some((k, generation)) = self.current_key(id) else {
            return;
        };
        if let Some(e) = refusal(need, &k) {
            return self.error(id, e);
        }
        let Some(state) = self.ctx.logs.get(&k.log).cloned() else {
            return self.error(
                id,
                ErrorReply::new(ErrorCode::Internal, "the key's log is not served"),
            );
        };
        self.serve_keyed(id, req, body, (k, generation), state)
            .await;
    }

    /// The connection's key if it is still in force, else answers `id`.
    /// One atomic load per request while nothing has changed, a lookup
    /// after a change.
    fn current_key(&mut self, id: u32) -> Option<(Key, u64)> {
        let Some((k, seen)) = &self.key else {
            self.error(
                id,
                ErrorReply::new(ErrorCode::Unauthenticated, "authenticate first"),
            );
            return None;
        };
        let now = self.ctx.keys.generation();
        if now != *seen {
            match self.ctx.keys.current(k) {
                Some(k) => self.key = Some((k, now)),
                None => {
                    tracing::warn!(peer = %self.peer, key = %k.id, "request with a revoked key");
                    self.key = None;
                    self.error(id, revoked());
                    return None;
                }
            }
        }
        self.key.clone()
    }

    /// AUTH and PING.
    fn serve_open(&mut self, id: u32, req: Request<'_>) {
        match req {
            Request::Auth { key: text } => match self.ctx.keys.authenticate(&text) {
                Some((k, generation)) => {
                    tracing::debug!(peer = %self.peer, key = %k.id, "authenticated");
                    self.reply(
                        id,
                        &Response::AuthOk {
                            log: k.log.clone(),
                            rights: k.rights,
                            tenants: k.tenants.clone(),
                        },
                    );
                    self.key = Some((k, generation));
                }
                None => {
                    // Never log what was presented.
                    tracing::warn!(peer = %self.peer, "authentication failed");
                    self.key = None;
                    self.error(
                        id,
                        ErrorReply::new(ErrorCode::Unauthenticated, "invalid API key"),
                    );
                }
            },
            Request::Ping(v) => self.reply(id, &Response::Pong(v)),
            other => self.error(
                id,
                ErrorReply::new(ErrorCode::Internal, format!("misrouted {other:?}")),
            ),
        }
    }

    async fn serve_keyed(
        &mut self,
        id: u32,
        req: Request<'_>,
        body: &Bytes,
        (k, generation): (Key, u64),
        state: Arc<LogState>,
    ) {
        let ctx = self.ctx.clone();
        match req {
            Request::Append { events } => self.append(id, &k, &events, body, state).await,
            Request::Query(q) => self.blocking(id, move || {
                state
                    .query(&k, &q)
                    .map(|b| reply::body_frame(kind::EVENTS, id, &b))
            }),
            Request::Read { from, to, limit } => self.blocking(id, move || {
                state
                    .read_range(&k, from, to, limit)
                    .map(|b| reply::body_frame(kind::EVENTS, id, &b))
            }),
            Request::Tail { from } => self.tail(id, from, k, generation, state),
            Request::Cancel { request_id } => match self.tails.remove(&request_id) {
                Some(t) => {
                    if t.cancel(Some(id)) {
                        // It answers; the connection waits for it before an
                        // AUTH is answered or the connection closes.
                        self.cancelling.push(t);
                    } else {
                        self.reply(id, &Response::Done);
                    }
                }
                None => self.error(
                    id,
                    ErrorReply::new(ErrorCode::InvalidRequest, "no tail with that request id"),
                ),
            },
            Request::Stats => {
                let mut s = state.stats();
                s.ingests = crate::ingest::stats_for(&self.ctx.ingests, &state.config.name);
                self.reply(id, &Response::Stats(s))
            }
            Request::UnknownActions => {
                let list = state
                    .unknown
                    .list_seen()
                    .into_iter()
                    .map(|(action, s)| proto::msg::ActionSeen {
                        action,
                        count: s.count,
                        first_seen: s.first,
                        last_seen: s.last,
                    })
                    .collect();
                self.reply(id, &Response::Actions(list))
            }
            Request::ListKeys => self.blocking(id, move || {
                Ok(reply::frame(
                    id,
                    &Response::Keys(admin::list_keys(&ctx, &k.log)),
                ))
            }),
            Request::CreateKey {
                id: key_id,
                rights,
                tenants,
            } => self.blocking(id, move || {
                let key = admin::create_key(&ctx, &k, &state, key_id.clone(), rights, tenants)?;
                Ok(reply::frame(id, &Response::KeyCreated { id: key_id, key }))
            }),
            Request::RevokeKey { id: key_id } => self.blocking(id, move || {
                admin::revoke_key(&ctx, &k, &key_id).map(|()| reply::frame(id, &Response::Done))
            }),
            Request::GetSchema => {
                self.reply(id, &Response::Schema(admin::schema(&state)));
            }
            Request::Checkpoint => self.blocking(id, move || {
                let issued = state.checkpoints.issue(&state.log).map_err(|e| {
                    tracing::warn!(log = %state.config.name, error = %e, "cannot issue a checkpoint");
                    ErrorReply::new(ErrorCode::Internal, "cannot issue a checkpoint")
                })?;
                let verifier_key = state.checkpoints.verifier().to_string();
                Ok(reply::frame(
                    id,
                    &Response::Checkpoint {
                        note: issued.note,
                        verifier_key,
                    },
                ))
            }),
            Request::InclusionProof { seq, size } => self.blocking(id, move || {
                state
                    .inclusion_proof(&k, seq, size)
                    .map(|r| reply::frame(id, &r))
            }),
            Request::ConsistencyProof { old, new } => self.blocking(id, move || {
                state
                    .consistency_proof(old, new)
                    .map(|r| reply::frame(id, &r))
            }),
            Request::SetSchema(spec) => self.blocking(id, move || {
                admin::set_schema(&ctx, &k, &state, spec)
                    .map(|()| reply::frame(id, &Response::Done))
            }),
            Request::Auth { .. } | Request::Ping(_) => self.serve_open(id, req),
        }
    }

    /// Runs `op` on the blocking pool; its frame (or error) fills the
    /// request's place.
    fn blocking<F>(&self, id: u32, op: F)
    where
        F: FnOnce() -> Result<Vec<u8>, ErrorReply> + Send + 'static,
    {
        let place = self.out.reserve();
        let (out, ctx) = (self.out.clone(), self.ctx.clone());
        tokio::task::spawn_blocking(move || {
            let frame = op().unwrap_or_else(|e| reply::error_frame(&ctx.metrics, id, e));
            out.fill(place, frame);
        });
    }

    async fn append(&self, id: u32, k: &Key, events: &[&[u8]], body: &Bytes, state: Arc<LogState>) {
        let max = self.ctx.config.max_batch_events;
        if events.is_empty() {
            return self.error(
                id,
                ErrorReply::new(
                    ErrorCode::InvalidRequest,
                    "an append needs at least one event",
                ),
            );
        }
        if events.len() > max {
            return self.error(
                id,
                ErrorReply::new(
                    ErrorCode::TooLarge,
                    format!("{} events, more than the maximum of {max}", events.len()),
                ),
            );
        }
        let place = self.out.reserve();
        let done = settle(self.out.clone(), self.ctx.clone(), place, id);
        match state.submit_append(k, events, self.id, KeyWait::Never, done) {
            Ok(()) => {}
            Err(Refused::Reply(e)) => self
                .out
                .fill(place, reply::error_frame(&self.ctx.metrics, id, e)),
            Err(Refused::KeysPending) => {
                // Another append holds one of its keys: wait for its outcome
                // on the blocking pool, not on the event loop; this
                // connection reads its next request only after, so that its
                // appends reach the log in the order it sent them.
                let (body, k, out, ctx, conn) = (
                    body.clone(),
                    k.clone(),
                    self.out.clone(),
                    self.ctx.clone(),
                    self.id,
                );
                let waited = tokio::task::spawn_blocking(move || {
                    // The same bytes decoded as an append a moment ago.
                    let refused = match msg::decode_request(kind::APPEND, &body) {
                        Ok(Request::Append { events }) => {
                            let done = settle(out.clone(), ctx.clone(), place, id);
                            state
                                .submit_append(&k, &events, conn, KeyWait::Block, done)
                                .err()
                        }
                        _ => Some(Refused::Reply(ErrorReply::new(
                            ErrorCode::Internal,
                            "an append's body no longer decodes",
                        ))),
                    };
                    if let Some(e) = refused {
                        let e = match e {
                            Refused::Reply(e) => e,
                            Refused::KeysPending => {
                                ErrorReply::new(ErrorCode::Busy, "idempotency keys still pending")
                            }
                        };
                        out.fill(place, reply::error_frame(&ctx.metrics, id, e));
                    }
                });
                // The place is filled either way; a join error (a panic) is
                // not this connection's to report.
                let _ = waited.await;
            }
        }
    }

    fn tail(&mut self, id: u32, from: u64, key: Key, generation: u64, state: Arc<LogState>) {
        self.tails.retain(|_, t| !t.is_finished());
        if self.tails.contains_key(&id) {
            return self.error(
                id,
                ErrorReply::new(
                    ErrorCode::InvalidRequest,
                    "a tail with this request id is running",
                ),
            );
        }
        if self.tails.len() >= MAX_TAILS {
            return self.error(
                id,
                ErrorReply::new(
                    ErrorCode::Busy,
                    format!("at most {MAX_TAILS} tails per connection: cancel one first"),
                ),
            );
        }
        let t = Tail {
            id,
            from,
            key,
            state,
            out: self.out.clone(),
            ctx: self.ctx.clone(),
            // What the connection checked: a revocation since then is
            // seen by the tail's first step.
            generation,
        };
        self.tails.insert(id, t.spawn());
    }
}

/// The callback that answers an append: the receipts (or the error) as a
/// frame in the append's place. Runs on the engine's thread.
fn settle(
    out: Arc<Outbox>,
    ctx: Arc<Ctx>,
    place: Ticket,
    id: u32,
) -> impl FnOnce(Settled) + Send + 'static {
    move |settled| {
        let frame = match settled {
            Ok(receipts) => reply::frame(id, &Response::Receipts(receipts)),
            Err(e) => reply::error_frame(&ctx.metrics, id, e),
        };
        out.fill(place, frame);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_request_type_has_exactly_one_need() {
        for k in 0u8..=0x7f {
            let n = NEEDS.iter().filter(|(t, _)| *t == k).count();
            assert!(n <= 1, "frame type {k:#04x} is in the table {n} times");
        }
        // Every request the protocol defines is routed.
        for k in [
            kind::AUTH,
            kind::APPEND,
            kind::QUERY,
            kind::READ,
            kind::TAIL,
            kind::CANCEL,
            kind::STATS,
            kind::PING,
            kind::UNKNOWN_ACTIONS,
            kind::LIST_KEYS,
            kind::CREATE_KEY,
            kind::REVOKE_KEY,
            kind::GET_SCHEMA,
            kind::SET_SCHEMA,
            kind::CHECKPOINT,
        ] {
            assert!(need(k).is_some(), "frame type {k:#04x} has no need");
        }
        assert_eq!(need(kind::RECEIPTS), None, "a response type is not routed");
    }
}
