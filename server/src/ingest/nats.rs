//! A NATS JetStream ingest (`docs/nats.md`): a durable pull consumer whose
//! messages become events of one log, exactly once.
//!
//! The loop: take what the consumer has delivered, up to `batch`
//! messages (waiting only for the first); map each to an event (a message
//! that cannot be one is dead-lettered: published with its reason, then
//! terminated); append the rest as one group, covered by one `fdatasync`;
//! and once the receipts are in, acknowledge each message with a double
//! ack (confirmed by the server). At most `max_in_flight` groups wait for
//! their sync at once. A message is acknowledged only after its event is
//! durable or was recognised as already stored, so a crash anywhere
//! leaves it unacknowledged, to be redelivered and then recognised by
//! dedup on its `source_event_id`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, AckKind, Message};
use futures_util::{FutureExt, StreamExt};
use proto::msg::{AppendReceipt, ErrorCode};
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::mapping::{self, Envelope, Rejection};
use super::{Ingest, IngestState};
use crate::auth::Key;
use crate::ctx::{self, Ctx};
use crate::store::{KeyWait, LogState, Refused, Settled};

/// Appender ids for the engine's inline-commit rule, one per ingest:
/// distinct from the connections'.
const APPENDER_BASE: u64 = 1 << 61;

/// How long to wait before connecting again, at most.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How a consumer session ended.
enum Ending {
    /// The server is stopping.
    Stopped,
    /// The log is poisoned: nothing more can be stored until a restart.
    Poisoned,
}

/// Runs ingest `n` until the server stops; `done` is held until its last
/// acknowledgement has been sent.
pub(crate) async fn run(ctx: Arc<Ctx>, ingest: Arc<Ingest>, n: usize, done: mpsc::Sender<()>) {
    let Some(state) = ctx.logs.get(&ingest.config.log).cloned() else {
        ingest.set_state(IngestState::Stopped("its log is not served".into()));
        return;
    };
    let key = Key::internal(
        format!("ingest:{}", ingest.label()),
        ingest.config.log.clone(),
    );
    let mut stop = ctx.stop_signal();
    let mut backoff = Duration::from_millis(250);
    loop {
        match session(&ctx, &ingest, &state, &key, APPENDER_BASE + n as u64).await {
            Ok(Ending::Stopped) => break,
            Ok(Ending::Poisoned) => {
                tracing::error!(ingest = %ingest.label(), log = %ingest.config.log, "the log is poisoned: the ingest stops consuming (its messages wait in JetStream)");
                ingest.set_state(IngestState::Stopped("its log is poisoned".into()));
                break;
            }
            Err(e) => {
                tracing::warn!(ingest = %ingest.label(), error = %e, retry_ms = backoff.as_millis() as u64, "nats ingest: connecting again");
                ingest.set_state(IngestState::Connecting(e));
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = ctx::stopped(&mut stop) => break,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    drop(done);
}

/// One connection's worth of consuming; an error is a reason to connect
/// again.
async fn session(
    ctx: &Arc<Ctx>,
    ingest: &Arc<Ingest>,
    state: &Arc<LogState>,
    key: &Key,
    appender: u64,
) -> Result<Ending, String> {
    let c = &ingest.config;
    let mut opts = async_nats::ConnectOptions::new()
        .name(format!("chainlogd ingest {}", ingest.label()))
        .connection_timeout(Duration::from_secs(5));
    if !c.token.is_empty() {
        opts = opts.token(c.token.clone());
    }
    if !c.credentials_file.as_os_str().is_empty() {
        opts = opts
            .credentials_file(&c.credentials_file)
            .await
            .map_err(|e| format!("credentials file {}: {e}", c.credentials_file.display()))?;
    }
    let mut addrs = Vec::new();
    for s in &c.servers {
        addrs.push(
            s.parse::<async_nats::ServerAddr>()
                .map_err(|e| format!("server {s:?}: {e}"))?,
        );
    }
    let client = opts
        .connect(addrs)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let js = jetstream::new(client);
    let stream = js
        .get_stream(&c.stream)
        .await
        .map_err(|e| format!("stream {:?}: {e}", c.stream))?;
    let in_flight = c.batch * c.max_in_flight;
    let consumer = stream
        .get_or_create_consumer(
            &c.durable,
            pull::Config {
                durable_name: Some(c.durable.clone()),
                filter_subjects: c.subjects.clone(),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(c.ack_wait_secs),
                // Room beyond the groups in flight for what the client
                // has buffered and for messages given back and not yet
                // redelivered: a consumer at its limit stops delivering
                // until its pull requests expire.
                max_ack_pending: (in_flight * 4).max(1000) as i64,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| format!("consumer {:?}: {e}", c.durable))?;
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(c.batch)
        .heartbeat(Duration::from_secs(2))
        .expires(Duration::from_secs(5))
        .messages()
        .await
        .map_err(|e| format!("pull: {e}"))?;
    ingest.set_state(IngestState::Consuming);
    tracing::info!(ingest = %ingest.label(), stream = %c.stream, durable = %c.durable, "nats ingest consuming");
    let slots = Arc::new(Semaphore::new(c.max_in_flight));
    let mut stop = ctx.stop_signal();
    let ending = loop {
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => break Ok(Ending::Stopped),
            },
            () = ctx::stopped(&mut stop) => break Ok(Ending::Stopped),
        };
        let first = tokio::select! {
            m = messages.next() => m,
            () = ctx::stopped(&mut stop) => break Ok(Ending::Stopped),
        };
        let mut batch = match first {
            None => break Err("the consumer's message stream ended".to_string()),
            Some(Err(e)) => {
                tracing::debug!(ingest = %ingest.label(), error = %e, "nats ingest: pull error");
                continue;
            }
            Some(Ok(m)) => vec![m],
        };
        while batch.len() < c.batch {
            match messages.next().now_or_never() {
                Some(Some(Ok(m))) => batch.push(m),
                _ => break,
            }
        }
        match append_batch(ingest, &js, state, key, appender, batch, slot).await {
            Ok(()) => {}
            Err(e) => break Ok(e),
        }
    };
    // Every group submitted gets its acknowledgements before the session
    // ends: wait for the slots to come back.
    let _ = slots.acquire_many(c.max_in_flight as u32).await;
    ending
}

/// A message ready to append: the message and its encoded event.
struct Ready {
    msg: Message,
    encoded: Vec<u8>,
}

/// Maps, dead-letters and appends one batch; the acknowledgements are sent
/// by a task that holds `slot` until they are. `Err` ends the session.
async fn append_batch(
    ingest: &Arc<Ingest>,
    js: &jetstream::Context,
    state: &Arc<LogState>,
    key: &Key,
    appender: u64,
    batch: Vec<Message>,
    slot: tokio::sync::OwnedSemaphorePermit,
) -> Result<(), Ending> {
    let m = &ingest.metrics;
    let c = &ingest.config;
    let mut ready = Vec::with_capacity(batch.len());
    for msg in batch {
        m.received.fetch_add(1, Ordering::Relaxed);
        let (stream_name, stream_seq, published, delivered, pending) = match msg.info() {
            Ok(i) => (
                i.stream.to_string(),
                i.stream_sequence,
                i.published.unix_timestamp_nanos().max(0) as u64,
                i.delivered,
                i.pending,
            ),
            Err(e) => {
                // Never from a pull consumer; without its place in the
                // stream it could not be told from another message.
                let why = Rejection {
                    field: String::new(),
                    reason: format!("no JetStream metadata in its reply subject: {e}"),
                };
                dead_letter(ingest, js, &msg, &why).await;
                continue;
            }
        };
        if delivered > 1 {
            m.redelivered.fetch_add(1, Ordering::Relaxed);
        }
        m.pending.store(pending, Ordering::Relaxed);
        let header =
            |name: &str| -> Option<&str> { msg.headers.as_ref()?.get(name).map(|v| v.as_str()) };
        let env = Envelope {
            subject: msg.subject.as_str(),
            msg_id: header("Nats-Msg-Id"),
            tenant: if c.tenant_header.is_empty() {
                None
            } else {
                header(&c.tenant_header)
            },
            stream: &stream_name,
            stream_seq,
            published,
        };
        let mapped = mapping::map(c, &env, &msg.payload).and_then(|e| {
            let e = e.as_ref();
            if let Some((field, why)) = crate::store::oversized(&e, state.limits()) {
                return Err(Rejection {
                    field: field.into(),
                    reason: why,
                });
            }
            let mut out = Vec::with_capacity(e.encoded_len());
            e.encode(&mut out);
            Ok(out)
        });
        match mapped {
            Ok(encoded) => ready.push(Ready { msg, encoded }),
            Err(r) => dead_letter(ingest, js, &msg, &r).await,
        }
    }
    // Messages whose source_event_id was stored (or comes earlier in this
    // group) with other content: the copies of a dual-published event
    // differ in subject, and perhaps in a timestamp taken from the
    // message. The first copy stands; these are acknowledged as its
    // duplicates once the group is durable (the copy they match may be
    // in it).
    let mut held: Vec<Message> = Vec::new();
    loop {
        if ready.is_empty() {
            // Whatever is held matched events already stored.
            ack_held(ingest, &held).await;
            return Ok(());
        }
        let bodies: Vec<&[u8]> = ready.iter().map(|r| r.encoded.as_slice()).collect();
        let (tx, rx) = oneshot::channel::<Settled>();
        let submitted = state.submit_append(key, &bodies, appender, KeyWait::Never, move |s| {
            let _ = tx.send(s);
        });
        match submitted {
            Ok(()) => {
                let ingest = ingest.clone();
                tokio::spawn(async move {
                    settle(&ingest, ready, held, rx.await).await;
                    drop(slot);
                });
                return Ok(());
            }
            Err(Refused::KeysPending) => {
                // Another append (often this ingest's previous group, with
                // the other copy of a dual-published event) holds a key
                // until its sync: a moment, then again.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Err(Refused::Reply(e)) => match (e.code, e.index) {
                (ErrorCode::InvalidEvent | ErrorCode::Forbidden, Some(i))
                    if (i as usize) < ready.len() =>
                {
                    let bad = ready.remove(i as usize);
                    let r = Rejection {
                        field: e.field.clone(),
                        reason: format!("{}: {}", e.code.name(), e.message),
                    };
                    dead_letter(ingest, js, &bad.msg, &r).await;
                }
                (ErrorCode::Conflict, Some(i)) if (i as usize) < ready.len() => {
                    let copy = ready.remove(i as usize);
                    tracing::debug!(ingest = %ingest.label(), subject = %copy.msg.subject, reason = %e.message, "nats ingest: a copy that differs from the stored event; the first stands");
                    held.push(copy.msg);
                }
                (ErrorCode::Poisoned, _) => return Err(Ending::Poisoned),
                (ErrorCode::ShuttingDown, _) => return Err(Ending::Stopped),
                _ => {
                    // Busy, or an error the messages are not to blame for:
                    // they come back after the delay.
                    tracing::info!(ingest = %ingest.label(), error = %e.message, "nats ingest: giving messages back for later");
                    nak_all(ingest, ready.iter().map(|r| &r.msg).chain(&held)).await;
                    return Ok(());
                }
            },
        }
    }
}

/// Acknowledges copies that differ from their stored event, as its
/// duplicates (counted among the duplicates, and as conflicts).
async fn ack_held(ingest: &Ingest, held: &[Message]) {
    let m = &ingest.metrics;
    let results = futures_util::future::join_all(held.iter().map(|msg| msg.double_ack())).await;
    for ack in results {
        match ack {
            Ok(()) => {
                m.duplicates.fetch_add(1, Ordering::Relaxed);
                m.conflicts.fetch_add(1, Ordering::Relaxed);
                m.last_ack_ms.store(now_ms(), Ordering::Relaxed);
            }
            Err(e) => {
                tracing::debug!(ingest = %ingest.label(), error = %e, "nats ingest: an ack failed");
                m.ack_failures.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Acknowledges a group once its receipts are in; on a failure gives the
/// messages back (a poisoned log's messages are left to their ack wait).
async fn settle(
    ingest: &Ingest,
    ready: Vec<Ready>,
    held: Vec<Message>,
    outcome: Result<Settled, oneshot::error::RecvError>,
) {
    let m = &ingest.metrics;
    let receipts: Vec<AppendReceipt> = match outcome {
        Ok(Ok(r)) => r,
        Ok(Err(e)) if e.code == ErrorCode::Poisoned => return,
        Ok(Err(e)) => {
            tracing::warn!(ingest = %ingest.label(), error = %e.message, "nats ingest: an append failed; its messages come back later");
            nak_all(ingest, ready.iter().map(|r| &r.msg).chain(&held)).await;
            return;
        }
        // The log closed before it answered: nothing acknowledged.
        Err(_) => return,
    };
    let acks = ready.iter().map(|r| r.msg.double_ack());
    let results = futures_util::future::join_all(acks).await;
    let mut acked = 0;
    for (r, ack) in receipts.iter().zip(results) {
        match ack {
            Ok(()) => {
                acked += 1;
                if r.duplicate {
                    m.duplicates.fetch_add(1, Ordering::Relaxed);
                } else {
                    m.stored.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(e) => {
                // Durable, but not acknowledged: it will be redelivered and
                // recognised as a duplicate.
                tracing::debug!(ingest = %ingest.label(), error = %e, "nats ingest: an ack failed");
                m.ack_failures.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    if acked > 0 {
        m.last_ack_ms.store(now_ms(), Ordering::Relaxed);
    }
    ack_held(ingest, &held).await;
}

/// Publishes a message that cannot be stored to the dead-letter subject,
/// with the reason, then terminates it. If the publish fails, the message
/// is given back for later instead: it is never dropped unrecorded.
async fn dead_letter(ingest: &Ingest, js: &jetstream::Context, msg: &Message, why: &Rejection) {
    let c = &ingest.config;
    tracing::info!(ingest = %ingest.label(), subject = %msg.subject, field = %why.field, reason = %why.reason, "nats ingest: dead-lettering a message");
    if !c.dead_letter_subject.is_empty() {
        let mut h = async_nats::HeaderMap::new();
        h.insert("Chainlog-Reason", one_line(&why.reason).as_str());
        h.insert("Chainlog-Field", why.field.as_str());
        h.insert("Chainlog-Ingest", ingest.label());
        h.insert("Chainlog-Subject", msg.subject.as_str());
        if let Ok(i) = msg.info() {
            h.insert("Chainlog-Stream", i.stream);
            h.insert(
                "Chainlog-Stream-Seq",
                i.stream_sequence.to_string().as_str(),
            );
        }
        let published = match js
            .publish_with_headers(c.dead_letter_subject.clone(), h, msg.payload.clone())
            .await
        {
            Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = published {
            tracing::warn!(ingest = %ingest.label(), subject = %c.dead_letter_subject, error = %e, "nats ingest: the dead-letter publish failed; the message comes back later");
            nak_all(ingest, std::iter::once(msg)).await;
            return;
        }
    }
    match msg.double_ack_with(AckKind::Term).await {
        Ok(()) => {
            ingest.metrics.dead_lettered.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => {
            ingest.metrics.ack_failures.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(ingest = %ingest.label(), error = %e, "nats ingest: a term failed");
        }
    }
}

/// Gives messages back to JetStream, redelivered after `busy_delay_ms`.
async fn nak_all<'a>(ingest: &Ingest, msgs: impl Iterator<Item = &'a Message>) {
    let delay = Duration::from_millis(ingest.config.busy_delay_ms);
    for msg in msgs {
        ingest.metrics.naked.fetch_add(1, Ordering::Relaxed);
        let _ = msg.ack_with(AckKind::Nak(Some(delay))).await;
    }
}

/// A header value must be one line.
fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
