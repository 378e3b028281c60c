//! Appends: validation, dedup admission, submission, settlement.
//!
//! Where each step runs, so that nothing doubles back: validation and dedup
//! admission on the connection's task (a duplicate's receipt is read there,
//! from the log, before anything is submitted); hashing and the write on
//! the engine's writer thread; settlement (the dedup keys resolved, the
//! receipts built, the metrics counted) in the engine's callback right
//! after the covering `fdatasync`, which hands the finished receipts to
//! the connection. The reply path never touches the store or the disk.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use engine::format::record::KIND_DATA;
use engine::Receipt;
use proto::event::EventRef;
use proto::msg::{AppendReceipt, ErrorCode, ErrorReply};

use super::{engine_error, LogState};
use crate::auth::Key;
use crate::dedup::{self, Claim, KeyKind};
use crate::schema::Mode;

/// How long an append may wait for a key that another append holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyWait {
    /// Not at all: the caller is on the event loop, which must not block;
    /// it gets [`Refused::KeysPending`] and retries on a blocking thread.
    Never,
    /// Up to the dedup window's pending limit (30 s), then `busy`.
    Block,
}

/// Why an append was not submitted (nothing was written, `done` was not
/// called).
#[derive(Debug)]
pub enum Refused {
    /// The answer for the client.
    Reply(ErrorReply),
    /// A key is pending for another append, and [`KeyWait::Never`] was asked.
    KeysPending,
}

impl From<ErrorReply> for Refused {
    fn from(e: ErrorReply) -> Self {
        Refused::Reply(e)
    }
}

/// The outcome an append's `done` callback receives: one receipt per
/// event, or the error for the whole append.
pub type Settled = Result<Vec<AppendReceipt>, ErrorReply>;

fn invalid(index: usize, field: &str, reason: impl Into<String>) -> ErrorReply {
    ErrorReply {
        code: ErrorCode::InvalidEvent,
        index: Some(index as u32),
        field: field.into(),
        message: reason.into(),
    }
}

/// How a conflict with an earlier event of the same append says so (the
/// NATS ingest tells the two kinds apart by it).
pub(crate) const IN_BATCH: &str = "of this batch";

/// An event whose key was stored, or is in the same batch, with other
/// content: `conflict`, naming the key's field.
fn conflict(index: usize, kind: KeyKind, why: String) -> ErrorReply {
    let field = match kind {
        KeyKind::Idempotency => "idempotency_key",
        KeyKind::SourceEvent => "source_event_id",
    };
    ErrorReply {
        code: ErrorCode::Conflict,
        index: Some(index as u32),
        field: field.into(),
        message: format!("this {field} was used for another event: {why}"),
    }
}

/// The first field in which `sent` differs from `stored`, an event with
/// the same key: `None` if it is the same event (a true duplicate).
///
/// The content is every field the client gives: actor, actor name,
/// action, resource, resource id, correlation id, the backfilled flag,
/// metadata as JSON (so key order and spacing do not count), and two
/// fields only when both sides have them: `occurred_at` when `sent` names
/// one (a retry that leaves it to the server gets a new receive time and
/// is still the same event), and the other key (an idempotency key added
/// on a retry of an event first stored by its source event id is the
/// same event; two different source ids under one idempotency key are
/// not). The tenant is the keys' scope, so always the same; the server's
/// fields (seq, created_at, hash) are not content.
pub(crate) fn content_differs(sent: &EventRef<'_>, stored: &EventRef<'_>) -> Option<&'static str> {
    let texts = [
        ("actor_id", sent.actor_id, stored.actor_id),
        ("actor_name", sent.actor_name, stored.actor_name),
        ("action", sent.action, stored.action),
        ("resource", sent.resource, stored.resource),
        ("resource_id", sent.resource_id, stored.resource_id),
        ("correlation_id", sent.correlation_id, stored.correlation_id),
    ];
    if let Some((field, _, _)) = texts.iter().find(|(_, a, b)| a != b) {
        return Some(field);
    }
    let keys = [
        (
            "idempotency_key",
            sent.idempotency_key,
            stored.idempotency_key,
        ),
        (
            "source_event_id",
            sent.source_event_id,
            stored.source_event_id,
        ),
    ];
    if let Some((field, _, _)) = keys
        .iter()
        .find(|(_, a, b)| !a.is_empty() && !b.is_empty() && a != b)
    {
        return Some(field);
    }
    if sent.backfilled != stored.backfilled {
        return Some("backfilled");
    }
    if sent.occurred_at != 0 && sent.occurred_at != stored.occurred_at {
        return Some("occurred_at");
    }
    if !same_json(sent.metadata, stored.metadata) {
        return Some("metadata");
    }
    None
}

/// Whether two metadata texts (each empty or a JSON object, as validated)
/// hold the same JSON value.
fn same_json(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    let value = |t: &str| -> Option<serde_json::Value> {
        if t.is_empty() {
            Some(serde_json::Value::Object(Default::default()))
        } else {
            serde_json::from_str(t).ok()
        }
    };
    match (value(a), value(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

fn forbidden_tenant(index: usize, why: &str) -> Refused {
    Refused::Reply(ErrorReply {
        code: ErrorCode::Forbidden,
        index: Some(index as u32),
        field: "tenant_id".into(),
        message: why.into(),
    })
}

/// How each event of an append is answered.
#[derive(Debug, Clone, Copy)]
enum Plan {
    /// Stored as the n-th record of this append.
    New(usize),
    /// Already stored: its receipt, read at admission.
    Stored(AppendReceipt),
    /// The same key as an earlier event of this batch (its index).
    SameAs(usize),
}

/// What an append needs, once its records are durable (or have failed),
/// to settle its keys and answer; [`finish`](AppendJob::finish) it.
#[derive(Debug)]
#[must_use]
struct AppendJob {
    state: Arc<LogState>,
    plan: Vec<Plan>,
    /// Keys to resolve, by the new record that carries them.
    keys: Vec<(usize, dedup::Key)>,
    bytes: u64,
}

impl AppendJob {
    /// Settles the keys with the engine's outcome for the new records;
    /// the receipts, one per event.
    fn finish(self, durable: engine::Result<Vec<Receipt>>) -> Settled {
        let s = &self.state;
        let receipts = match durable {
            Ok(r) => r,
            Err(e) => {
                for (_, k) in &self.keys {
                    s.dedup.resolve(*k, None);
                }
                let mut reply = engine_error(&e);
                // The write or sync that failed poisoned the log: say
                // so from the first failure on, not only the next.
                if s.log.is_poisoned() {
                    reply.code = ErrorCode::Poisoned;
                }
                return Err(reply);
            }
        };
        for (i, k) in &self.keys {
            let r = &receipts[*i];
            s.dedup.resolve(*k, Some((r.seq, r.created_at)));
        }
        s.metrics
            .appends
            .fetch_add(receipts.len() as u64, Ordering::Relaxed);
        s.metrics.bytes.fetch_add(self.bytes, Ordering::Relaxed);
        let mut out: Vec<AppendReceipt> = Vec::with_capacity(self.plan.len());
        for p in &self.plan {
            let r = match *p {
                Plan::New(i) => {
                    let r = &receipts[i];
                    AppendReceipt {
                        seq: r.seq,
                        created_at: r.created_at,
                        hash: r.hash,
                        duplicate: false,
                    }
                }
                Plan::Stored(r) => r,
                Plan::SameAs(j) => AppendReceipt {
                    duplicate: true,
                    ..out[j]
                },
            };
            out.push(r);
        }
        let dups = out.iter().filter(|r| r.duplicate).count() as u64;
        s.metrics.duplicates.fetch_add(dups, Ordering::Relaxed);
        Ok(out)
    }
}

impl LogState {
    /// Validates, deduplicates and submits an append from `key`. A refusal
    /// comes back at once (nothing is written, `done` is not called);
    /// otherwise `done` is called once with the settled outcome, on the
    /// engine's writer or syncer thread right after the covering
    /// `fdatasync` (so it must not block: hand the result on), or at once
    /// on this thread when every event is a duplicate.
    ///
    /// `appender` names the connection (any number unique to it): an append
    /// is committed on this thread only after one connection has been the
    /// log's only appender for a while (20 ms).
    pub fn submit_append<F>(
        self: &Arc<Self>,
        key: &Key,
        bodies: &[&[u8]],
        appender: u64,
        wait: KeyWait,
        done: F,
    ) -> Result<(), Refused>
    where
        F: FnOnce(Settled) + Send + 'static,
    {
        // The key's rate limit first: a throttled key costs the log nothing.
        if let Some(limit) = &key.limit {
            if let Err(wait) = limit.take(bodies.len()) {
                return Err(Refused::Reply(ErrorReply::new(
                    ErrorCode::Busy,
                    format!(
                        "rate limit of key {:?}: retry in {} ms",
                        key.id,
                        wait.as_millis().max(1)
                    ),
                )));
            }
        }
        let refused = self.admit_and_submit(key, bodies, appender, wait, done);
        if let (Some(limit), Err(_)) = (&key.limit, &refused) {
            // Not submitted: nothing to count against the key.
            limit.refund(bodies.len());
        }
        refused
    }

    fn admit_and_submit<F>(
        self: &Arc<Self>,
        key: &Key,
        bodies: &[&[u8]],
        appender: u64,
        wait: KeyWait,
        done: F,
    ) -> Result<(), Refused>
    where
        F: FnOnce(Settled) + Send + 'static,
    {
        let now = self.now_nanos();
        let schema = self.schema();
        // An event the server did not change is stored as the client's
        // bytes: the decoder accepts only the canonical encoding (decode
        // then encode gives back the same bytes; fuzzed), so this is what
        // re-encoding would produce, without the copy.
        let mut payloads: Vec<std::borrow::Cow<'_, [u8]>> = Vec::with_capacity(bodies.len());
        let mut changed = vec![false; bodies.len()];
        let mut plan = Vec::with_capacity(bodies.len());
        // Keys of this batch: (digest, event index, which field).
        let mut batch_keys: Vec<(dedup::Key, usize, KeyKind)> = Vec::new();
        let mut events = Vec::with_capacity(bodies.len());
        // Events whose occurred_at the server filled in (not content).
        let mut server_time = vec![false; bodies.len()];
        for (i, body) in bodies.iter().enumerate() {
            let mut e = EventRef::decode(body).map_err(|err| {
                let field = match &err {
                    proto::DecodeError::Truncated { what, .. }
                    | proto::DecodeError::NotUtf8(what)
                    | proto::DecodeError::Invalid { what, .. } => what,
                    proto::DecodeError::Trailing(_) => "event",
                };
                invalid(i, field, err.to_string())
            })?;
            if e.tenant_id.is_empty() && key.tenants.len() == 1 {
                e.tenant_id = &key.tenants[0];
                changed[i] = true;
            } else if e.tenant_id.is_empty() && !key.tenants.is_empty() {
                // Even on a single-tenant log: a tenant-limited key writes
                // only events it can read back.
                return Err(forbidden_tenant(
                    i,
                    "this key is limited to several tenants: name one",
                ));
            } else if !e.tenant_id.is_empty() && !key.allows_tenant(e.tenant_id) {
                return Err(forbidden_tenant(i, "this key may not write that tenant"));
            }
            if e.occurred_at == 0 {
                e.occurred_at = now;
                changed[i] = true;
                server_time[i] = true;
            }
            e.validate(&self.limits, now)
                .map_err(|err| invalid(i, &err.field, err.reason))?;
            if schema.mode == Mode::Strict && !schema.allows(e.action) {
                return Err(invalid(
                    i,
                    "action",
                    format!("{:?} is not in the log's schema (strict mode)", e.action),
                )
                .into());
            }
            for (kind, v) in [
                (KeyKind::Idempotency, e.idempotency_key),
                (KeyKind::SourceEvent, e.source_event_id),
            ] {
                if !v.is_empty() {
                    batch_keys.push((dedup::key(kind, e.tenant_id, v), i, kind));
                }
            }
            events.push(e);
        }
        // Event `i` as the client sent it, for comparing content.
        let as_sent = |i: usize| EventRef {
            occurred_at: if server_time[i] {
                0
            } else {
                events[i].occurred_at
            },
            ..events[i]
        };
        // Within the batch: a later event with an earlier event's key is
        // that event's duplicate, if its content is the same as every
        // earlier event sharing a key with it (equality does not carry
        // from one to the next: the other key and occurred_at count only
        // when both sides have them); a conflict if not.
        let mut same_as: Vec<Option<usize>> = vec![None; events.len()];
        for (n, &(k, i, kind)) in batch_keys.iter().enumerate() {
            for &(_, j, _) in batch_keys[..n]
                .iter()
                .filter(|(k2, j, _)| *k2 == k && *j != i)
            {
                if let Some(field) = content_differs(&as_sent(i), &events[j]) {
                    return Err(conflict(
                        i,
                        kind,
                        format!("it is also event {j} {IN_BATCH}, whose {field} differs"),
                    )
                    .into());
                }
                if same_as[i].is_none() {
                    same_as[i] = Some(same_as[j].unwrap_or(j));
                }
            }
        }
        let unique: Vec<(dedup::Key, usize, KeyKind)> = batch_keys
            .iter()
            .filter(|(_, i, _)| same_as[*i].is_none())
            .copied()
            .collect();
        let mut claims = if unique.is_empty() {
            Vec::new()
        } else {
            let ks: Vec<dedup::Key> = unique.iter().map(|(k, _, _)| *k).collect();
            let limit = match wait {
                KeyWait::Never => Duration::ZERO,
                KeyWait::Block => dedup::PENDING_WAIT,
            };
            match self.dedup.claim_within(&ks, now, limit) {
                Ok(c) => c,
                Err(_) if wait == KeyWait::Never => return Err(Refused::KeysPending),
                Err(_) => {
                    return Err(Refused::Reply(ErrorReply::new(
                        ErrorCode::Busy,
                        "an append with the same idempotency key is still in flight",
                    )))
                }
            }
        };
        // A key the table does not hold may have been stored long ago: the
        // event index knows (at any age).
        let mut found = Vec::new();
        for (n, (&(_, i, kind), c)) in unique.iter().zip(&claims).enumerate() {
            if *c != Claim::New {
                continue;
            }
            let e = &events[i];
            let value = match kind {
                KeyKind::Idempotency => e.idempotency_key,
                KeyKind::SourceEvent => e.source_event_id,
            };
            match self.find_key(kind, e.tenant_id, value) {
                Ok(Some(hit)) => found.push((n, hit)),
                Ok(None) => {}
                Err(refusal) => {
                    for ((k, _, _), c) in unique.iter().zip(&claims) {
                        if *c == Claim::New {
                            self.dedup.resolve(*k, None);
                        }
                    }
                    return Err(Refused::Reply(refusal));
                }
            }
        }
        for (n, (seq, created_at)) in found {
            if self.dedup.within_window(created_at, now) {
                self.dedup.resolve(unique[n].0, Some((seq, created_at)));
                claims[n] = Claim::Duplicate(seq);
            }
        }
        // A duplicate's receipt is read now, on the admitting side, so that
        // settlement never reads the disk; the stored event is compared with
        // this one on the way, and a key reused for other content refuses
        // the append.
        let mut stored_as: Vec<Option<AppendReceipt>> = vec![None; events.len()];
        // The first event of `i`'s copies in this batch (itself, then the
        // later ones) whose content differs from `stored`, and the field.
        let differs = |i: usize, stored: &EventRef<'_>| -> Option<(usize, &'static str)> {
            std::iter::once(i)
                .chain((0..events.len()).filter(|&c| same_as[c] == Some(i)))
                .find_map(|c| content_differs(&as_sent(c), stored).map(|f| (c, f)))
        };
        for (&(_, i, kind), c) in unique.iter().zip(&claims) {
            let Claim::Duplicate(seq) = *c else { continue };
            let refusal = match self.log.read(seq) {
                Ok(rec) => match EventRef::decode(&rec.payload) {
                    Ok(stored) => match differs(i, &stored) {
                        None => {
                            stored_as[i].get_or_insert(AppendReceipt {
                                seq,
                                created_at: rec.created_at,
                                hash: rec.hash,
                                duplicate: true,
                            });
                            continue;
                        }
                        Some((at, field)) => conflict(
                            at,
                            kind,
                            format!("it was stored as seq {seq}, whose {field} differs"),
                        ),
                    },
                    Err(e) => ErrorReply::new(
                        ErrorCode::Internal,
                        format!("the event stored as seq {seq} does not decode: {e}"),
                    ),
                },
                Err(e) => engine_error(&e),
            };
            for ((k, _, _), c) in unique.iter().zip(&claims) {
                if *c == Claim::New {
                    self.dedup.resolve(*k, None);
                }
            }
            return Err(Refused::Reply(refusal));
        }
        let mut keys = Vec::new();
        let mut bytes = 0u64;
        for (i, e) in events.iter().enumerate() {
            if let Some(j) = same_as[i] {
                plan.push(Plan::SameAs(j));
            } else if let Some(r) = stored_as[i] {
                plan.push(Plan::Stored(r));
            } else {
                let n = payloads.len();
                let p = if changed[i] {
                    let mut p = Vec::with_capacity(e.encoded_len());
                    e.encode(&mut p);
                    std::borrow::Cow::Owned(p)
                } else {
                    debug_assert_eq!(
                        e.encoded_len(),
                        bodies[i].len(),
                        "the decoder accepted a non-canonical event"
                    );
                    std::borrow::Cow::Borrowed(bodies[i])
                };
                bytes += p.len() as u64;
                payloads.push(p);
                plan.push(Plan::New(n));
            }
        }
        // Claimed keys: those of stored events are resolved with their
        // receipts; those of duplicates are released now.
        for ((k, i, _), c) in unique.iter().zip(&claims) {
            match (plan[*i], c) {
                (Plan::New(n), Claim::New) => keys.push((n, *k)),
                (_, Claim::New) => self.dedup.resolve(*k, None),
                _ => {}
            }
        }
        let job = AppendJob {
            state: self.clone(),
            plan,
            keys,
            bytes,
        };
        if payloads.is_empty() {
            done(job.finish(Ok(Vec::new())));
            return Ok(());
        }
        // The keys stay claimed until the job settles them; if the engine
        // refuses the append, `done` is dropped uncalled with the job, so
        // release them here.
        let claimed: Vec<dedup::Key> = job.keys.iter().map(|(_, k)| *k).collect();
        let may_inline =
            self.config.commit_inline && wait == KeyWait::Never && self.sole.note(appender);
        self.log
            .submit_with(KIND_DATA, &payloads, may_inline, move |r| {
                done(job.finish(r))
            })
            .map_err(|e| {
                for k in claimed {
                    self.dedup.resolve(k, None);
                }
                Refused::Reply(engine_error(&e))
            })
    }
}
