//! One client connection: a reader thread that parses frames and runs
//! requests, and a writer thread that sends replies in request order
//! through an [`Outbox`]. An append's reply is made when the engine calls
//! back after the covering `fdatasync`. Pipelining falls out of the split:
//! the reader keeps reading while earlier appends sync.

use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use proto::frame::{self, FrameError};
use proto::msg::{self, kind, rights, ErrorCode, ErrorReply, Request, Response};

use crate::admin;
use crate::auth::Key;
use crate::outbox::Outbox;
use crate::server::Ctx;
use crate::store::{AppendJob, LogState};

/// Replies queued per connection before the reader waits. A reply is at
/// most one page (1 MiB of events), so a client that stops reading holds
/// at most 64 MiB here, for at most the write timeout.
const OUT_DEPTH: usize = 64;
/// How long a reply may take to write before the client is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

enum Out {
    /// A complete frame.
    Frame(Vec<u8>),
    /// An append the engine is done with: settle it, then reply.
    Append {
        id: u32,
        job: AppendJob,
        durable: engine::Result<Vec<engine::Receipt>>,
    },
}

/// What the reader shares with the writer and the tails.
struct Conn {
    ctx: Arc<Ctx>,
    peer: SocketAddr,
    out: Arc<Outbox<Out>>,
    /// Appends sent to the writer and not yet answered.
    in_flight: Arc<AtomicUsize>,
    /// Set when the connection is going away.
    closed: Arc<AtomicBool>,
}

impl Conn {
    fn send(&self, frame: Vec<u8>) {
        self.out.push(Out::Frame(frame));
    }

    fn reply(&self, id: u32, r: &Response) {
        let mut out = Vec::new();
        msg::encode_response(&mut out, id, r);
        self.send(out);
    }

    fn reply_body(&self, id: u32, k: u8, body: &[u8]) {
        self.send(frame_of(k, id, body));
    }

    fn error(&self, id: u32, e: ErrorReply) {
        self.send(self.error_frame(id, e));
    }

    /// An error reply, counted in the metrics.
    fn error_frame(&self, id: u32, e: ErrorReply) -> Vec<u8> {
        self.ctx.metrics.error(e.code);
        let mut out = Vec::new();
        msg::encode_response(&mut out, id, &Response::Error(e));
        out
    }
}

fn frame_of(k: u8, id: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(frame::FRAME_HEADER_LEN + body.len());
    let at = frame::begin_frame(&mut out, k, id);
    out.extend_from_slice(body);
    frame::finish_frame(&mut out, at);
    out
}

/// Serves one connection until it closes, the client misbehaves, or the
/// server stops.
pub(crate) fn serve(stream: TcpStream, peer: SocketAddr, ctx: Arc<Ctx>) {
    let poll = ctx
        .config
        .frame_timeout()
        .min(ctx.config.idle_timeout())
        .min(Duration::from_millis(250))
        .max(Duration::from_millis(10));
    if stream.set_read_timeout(Some(poll)).is_err()
        || stream.set_write_timeout(Some(WRITE_TIMEOUT)).is_err()
        || stream.set_nodelay(true).is_err()
    {
        return;
    }
    let mut reader = stream;
    let Ok(write_half) = reader.try_clone() else {
        return;
    };
    // The handshake, before any thread is started.
    let version = frame::read_preamble(&mut reader, ctx.config.frame_timeout())
        .and_then(|p| frame::accept_preamble(&p));
    let mut w = write_half;
    match version {
        Ok(v) => {
            if w.write_all(&frame::server_preamble(v)).is_err() {
                return;
            }
        }
        Err(e) => {
            let code = match e {
                FrameError::UnsupportedVersion { .. } => ErrorCode::UnsupportedVersion,
                _ => ErrorCode::BadFrame,
            };
            tracing::info!(%peer, error = %e, "refused a connection at the handshake");
            ctx.metrics.error(code);
            let mut out = Vec::new();
            msg::encode_response(
                &mut out,
                0,
                &Response::Error(ErrorReply::new(code, e.to_string())),
            );
            let _ = w.write_all(&out);
            linger(&mut reader);
            return;
        }
    }
    let out = Arc::new(Outbox::new(OUT_DEPTH));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(AtomicBool::new(false));
    let writer = {
        let in_flight = in_flight.clone();
        let closed = closed.clone();
        let ctx = ctx.clone();
        let out = out.clone();
        std::thread::Builder::new()
            .name("chainlog-conn-w".into())
            .spawn(move || write_loop(w, &out, &in_flight, &closed, &ctx))
    };
    let Ok(writer) = writer else { return };
    let conn = Conn {
        ctx,
        peer,
        out,
        in_flight,
        closed,
    };
    let mut tails = HashMap::new();
    let ending = read_loop(&mut reader, &conn, &mut tails);
    conn.closed.store(true, Ordering::Release);
    for (_, (_, h)) in tails.drain() {
        let _ = h.join();
    }
    conn.out.close();
    // The writer finishes every append already submitted (their receipts
    // go out if the socket still takes them) before the socket closes.
    let _ = writer.join();
    if ending == Ending::Refused {
        linger(&mut reader);
    }
    let _ = reader.shutdown(Shutdown::Both);
}

/// How a connection's reader stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The client closed, went idle, or the server is stopping.
    Normal,
    /// The server refused the client's input and sent an error frame.
    Refused,
}

/// Closes our side and discards what the client still sends, briefly, so
/// that the error frame just written is not destroyed by a reset (closing
/// a socket with unread input makes the kernel send RST, and the peer may
/// then lose data it had not read yet).
pub(crate) fn linger(s: &mut TcpStream) {
    use std::io::Read;
    let _ = s.shutdown(Shutdown::Write);
    let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut buf = [0u8; 16 << 10];
    let mut budget = 1usize << 20;
    while Instant::now() < deadline && budget > 0 {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => budget = budget.saturating_sub(n),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

type Tails = HashMap<u32, (Arc<AtomicBool>, JoinHandle<()>)>;

/// The error for a request made with a key revoked since it authenticated.
fn revoked() -> ErrorReply {
    ErrorReply::new(
        ErrorCode::Unauthenticated,
        "this key has been revoked; authenticate again",
    )
}

fn read_loop(reader: &mut TcpStream, conn: &Conn, tails: &mut Tails) -> Ending {
    let ctx = &conn.ctx;
    let mut body = Vec::new();
    // The connection's key, and the key store's generation when it was
    // last found in force.
    let mut key: Option<(Key, u64)> = None;
    let mut last_activity = Instant::now();
    loop {
        if ctx.stopping.load(Ordering::Acquire) || conn.closed.load(Ordering::Acquire) {
            return Ending::Normal;
        }
        let header = match frame::read_frame(
            reader,
            ctx.config.max_frame_bytes,
            ctx.config.frame_timeout(),
            &mut body,
        ) {
            Ok(h) => h,
            Err(FrameError::Idle) => {
                tails.retain(|_, (_, h)| !h.is_finished());
                let busy = conn.in_flight.load(Ordering::Acquire) > 0 || !tails.is_empty();
                if busy {
                    last_activity = Instant::now();
                } else if last_activity.elapsed() >= ctx.config.idle_timeout() {
                    tracing::debug!(peer = %conn.peer, "closing an idle connection");
                    return Ending::Normal;
                }
                continue;
            }
            Err(FrameError::Closed) => return Ending::Normal,
            Err(FrameError::Io(e)) => {
                tracing::debug!(peer = %conn.peer, error = %e, "connection failed");
                return Ending::Normal;
            }
            Err(e) => {
                let code = match e {
                    FrameError::TooLarge { .. } => ErrorCode::TooLarge,
                    _ => ErrorCode::BadFrame,
                };
                tracing::info!(peer = %conn.peer, error = %e, "dropping a connection after a bad frame");
                conn.error(0, ErrorReply::new(code, e.to_string()));
                return Ending::Refused;
            }
        };
        last_activity = Instant::now();
        let id = header.request_id;
        let req = match msg::decode_request(header.kind, &body) {
            Ok(r) => r,
            Err(e) => {
                tracing::info!(peer = %conn.peer, kind = header.kind, error = %e, "dropping a connection after an undecodable frame");
                conn.error(
                    id,
                    ErrorReply::new(
                        ErrorCode::BadFrame,
                        format!("frame type {:#04x}: {e}", header.kind),
                    ),
                );
                return Ending::Refused;
            }
        };
        if matches!(req, Request::Auth { .. }) {
            // Tails run with the key that started them: a new
            // authentication, good or bad, ends them first (each sends DONE).
            end_tails(conn, tails);
        }
        // A key revoked since it was found ends here: one atomic load per
        // request while nothing has changed, a lookup after a change.
        if let Some((k, seen)) = &key {
            if !matches!(req, Request::Auth { .. } | Request::Ping(_)) {
                let now = ctx.keys.generation();
                if now != *seen {
                    match ctx.keys.current(k) {
                        Some(k) => key = Some((k, now)),
                        None => {
                            tracing::warn!(peer = %conn.peer, key = %k.id, "request with a revoked key");
                            key = None;
                            conn.error(id, revoked());
                            continue;
                        }
                    }
                }
            }
        }
        match (&req, &key) {
            (Request::Auth { key: text }, _) => match ctx.keys.authenticate(text) {
                Some((k, generation)) => {
                    tracing::debug!(peer = %conn.peer, key = %k.id, "authenticated");
                    conn.reply(
                        id,
                        &Response::AuthOk {
                            log: k.log.clone(),
                            rights: k.rights,
                            tenants: k.tenants.clone(),
                        },
                    );
                    key = Some((k, generation));
                }
                None => {
                    // Never log what was presented.
                    tracing::warn!(peer = %conn.peer, "authentication failed");
                    key = None;
                    conn.error(
                        id,
                        ErrorReply::new(ErrorCode::Unauthenticated, "invalid API key"),
                    );
                }
            },
            (Request::Ping(v), _) => conn.reply(id, &Response::Pong(*v)),
            (_, None) => conn.error(
                id,
                ErrorReply::new(ErrorCode::Unauthenticated, "authenticate first"),
            ),
            (_, Some((k, generation))) => {
                let Some(state) = ctx.logs.get(&k.log) else {
                    conn.error(
                        id,
                        ErrorReply::new(ErrorCode::Internal, "the key's log is not served"),
                    );
                    continue;
                };
                handle(conn, id, req, (k, *generation), state, tails);
            }
        }
    }
}

fn end_tails(conn: &Conn, tails: &mut Tails) {
    for (_, (cancel, _)) in tails.iter() {
        cancel.store(true, Ordering::Release);
    }
    for state in conn.ctx.logs.values() {
        state.signal_wake();
    }
    for (_, (_, h)) in tails.drain() {
        let _ = h.join();
    }
}

fn forbidden(what: &str) -> ErrorReply {
    ErrorReply::new(
        ErrorCode::Forbidden,
        format!("this key lacks the {what} right"),
    )
}

/// Serves a request from an authenticated connection whose key `k` was
/// found in force at the key store's `generation`.
fn handle(
    conn: &Conn,
    id: u32,
    req: Request<'_>,
    (k, generation): (&Key, u64),
    state: &Arc<LogState>,
    tails: &mut Tails,
) {
    let ctx = &conn.ctx;
    match req {
        Request::Append { events } => {
            if !k.has(rights::APPEND) {
                return conn.error(id, forbidden("append"));
            }
            if events.is_empty() {
                return conn.error(
                    id,
                    ErrorReply::new(
                        ErrorCode::InvalidRequest,
                        "an append needs at least one event",
                    ),
                );
            }
            if events.len() > ctx.config.max_batch_events {
                return conn.error(
                    id,
                    ErrorReply::new(
                        ErrorCode::TooLarge,
                        format!(
                            "{} events, more than the maximum of {}",
                            events.len(),
                            ctx.config.max_batch_events
                        ),
                    ),
                );
            }
            let place = conn.out.reserve();
            conn.in_flight.fetch_add(1, Ordering::AcqRel);
            let out = conn.out.clone();
            let submitted = state.submit_append(k, &events, move |job, durable| {
                out.fill(place, Out::Append { id, job, durable });
            });
            if let Err(e) = submitted {
                conn.in_flight.fetch_sub(1, Ordering::AcqRel);
                conn.out.fill(place, Out::Frame(conn.error_frame(id, e)));
            }
        }
        Request::Query(q) => {
            if !k.has(rights::READ) {
                return conn.error(id, forbidden("read"));
            }
            match state.query(k, &q) {
                Ok(body) => conn.reply_body(id, kind::EVENTS, &body),
                Err(e) => conn.error(id, e),
            }
        }
        Request::Read { from, to, limit } => {
            if !k.has(rights::READ) {
                return conn.error(id, forbidden("read"));
            }
            match state.read_range(k, from, to, limit) {
                Ok(body) => conn.reply_body(id, kind::EVENTS, &body),
                Err(e) => conn.error(id, e),
            }
        }
        Request::Tail { from } => {
            if !k.has(rights::READ) {
                return conn.error(id, forbidden("read"));
            }
            if tails.contains_key(&id) {
                return conn.error(
                    id,
                    ErrorReply::new(
                        ErrorCode::InvalidRequest,
                        "a tail with this request id is running",
                    ),
                );
            }
            let cancel = Arc::new(AtomicBool::new(false));
            let t = TailTask {
                id,
                from,
                key: k.clone(),
                state: state.clone(),
                out: conn.out.clone(),
                cancel: cancel.clone(),
                closed: conn.closed.clone(),
                ctx: ctx.clone(),
                // What the connection checked: a revocation since then is
                // seen by the tail's first step.
                generation,
            };
            match std::thread::Builder::new()
                .name("chainlog-tail".into())
                .spawn(move || t.run())
            {
                Ok(h) => {
                    tails.insert(id, (cancel, h));
                }
                Err(e) => conn.error(
                    id,
                    ErrorReply::new(ErrorCode::Internal, format!("cannot start a tail: {e}")),
                ),
            }
        }
        Request::Cancel { request_id } => match tails.remove(&request_id) {
            Some((cancel, h)) => {
                cancel.store(true, Ordering::Release);
                state.signal_wake();
                let _ = h.join();
                conn.reply(id, &Response::Done);
            }
            None => conn.error(
                id,
                ErrorReply::new(ErrorCode::InvalidRequest, "no tail with that request id"),
            ),
        },
        Request::Stats => {
            // Whole-log counts and the head: not for a tenant-limited key
            // unless it is an admin's.
            if !(k.has(rights::ADMIN) || (k.has(rights::READ) && k.tenants.is_empty())) {
                return conn.error(id, forbidden("admin (or read on every tenant)"));
            }
            conn.reply(id, &Response::Stats(state.stats()));
        }
        Request::UnknownActions => {
            if !k.has(rights::ADMIN) {
                return conn.error(id, forbidden("admin"));
            }
            conn.reply(id, &Response::Actions(state.unknown.list()));
        }
        Request::ListKeys => admin_op(conn, id, k, || {
            Ok(Response::Keys(admin::list_keys(ctx, &k.log)))
        }),
        Request::CreateKey {
            id: key_id,
            rights,
            tenants,
        } => admin_op(conn, id, k, || {
            let key = admin::create_key(ctx, k, state, key_id.clone(), rights, tenants)?;
            Ok(Response::KeyCreated { id: key_id, key })
        }),
        Request::RevokeKey { id: key_id } => admin_op(conn, id, k, || {
            admin::revoke_key(ctx, k, &key_id).map(|()| Response::Done)
        }),
        Request::GetSchema => admin_op(conn, id, k, || Ok(Response::Schema(admin::schema(state)))),
        Request::SetSchema(spec) => admin_op(conn, id, k, || {
            admin::set_schema(ctx, k, state, spec).map(|()| Response::Done)
        }),
        Request::Auth { .. } | Request::Ping(_) => unreachable!("handled before authentication"),
    }
}

/// Runs an admin operation for a key allowed to, and answers it.
fn admin_op(conn: &Conn, id: u32, k: &Key, op: impl FnOnce() -> Result<Response, ErrorReply>) {
    if !admin::allowed(k) {
        return conn.error(id, forbidden("admin (on every tenant)"));
    }
    match op() {
        Ok(r) => conn.reply(id, &r),
        Err(e) => conn.error(id, e),
    }
}

struct TailTask {
    id: u32,
    from: u64,
    key: Key,
    state: Arc<LogState>,
    out: Arc<Outbox<Out>>,
    cancel: Arc<AtomicBool>,
    closed: Arc<AtomicBool>,
    ctx: Arc<Ctx>,
    /// The key store's generation when the key was last found in force.
    generation: u64,
}

impl TailTask {
    fn run(mut self) {
        let s = self.state.clone();
        let mut next = if self.from == u64::MAX {
            s.log.head().map_or(0, |h| h.seq + 1)
        } else {
            self.from
        };
        loop {
            if self.cancel.load(Ordering::Acquire) {
                let mut out = Vec::new();
                msg::encode_response(&mut out, self.id, &Response::Done);
                self.out.push(Out::Frame(out));
                return;
            }
            if self.closed.load(Ordering::Acquire) || self.ctx.stopping.load(Ordering::Acquire) {
                return;
            }
            // A tail runs with the key that started it, while it is in force.
            let now = self.ctx.keys.generation();
            if now != self.generation {
                if self.ctx.keys.current(&self.key).is_none() {
                    let e = revoked();
                    self.ctx.metrics.error(e.code);
                    let mut out = Vec::new();
                    msg::encode_response(&mut out, self.id, &Response::Error(e));
                    self.out.push(Out::Frame(out));
                    return;
                }
                self.generation = now;
            }
            let seen = s.signal.generation();
            match s.tail_step(&self.key, next) {
                Ok((body, n)) => {
                    let moved = n > next;
                    next = n;
                    if let Some(body) = body {
                        self.out
                            .push(Out::Frame(frame_of(kind::TAIL_EVENTS, self.id, &body)));
                    }
                    if !moved {
                        s.signal.wait_past(seen, Duration::from_millis(200));
                    }
                }
                Err(e) => {
                    self.ctx.metrics.error(e.code);
                    let mut out = Vec::new();
                    msg::encode_response(&mut out, self.id, &Response::Error(e));
                    self.out.push(Out::Frame(out));
                    return;
                }
            }
        }
    }
}

fn write_loop(
    stream: TcpStream,
    outbox: &Outbox<Out>,
    in_flight: &AtomicUsize,
    closed: &AtomicBool,
    ctx: &Ctx,
) {
    let mut w = BufWriter::with_capacity(64 << 10, stream);
    let mut broken = false;
    let mut ready = Vec::new();
    while outbox.drain_ready(&mut ready) {
        for out in ready.drain(..) {
            let frame = match out {
                Out::Frame(f) => f,
                Out::Append { id, job, durable } => {
                    // Settled even if the client is gone: the dedup window
                    // and metrics must learn the outcome.
                    let response = match job.finish(durable) {
                        Ok(receipts) => Response::Receipts(receipts),
                        Err(e) => {
                            ctx.metrics.error(e.code);
                            Response::Error(e)
                        }
                    };
                    in_flight.fetch_sub(1, Ordering::AcqRel);
                    let mut frame = Vec::new();
                    msg::encode_response(&mut frame, id, &response);
                    frame
                }
            };
            if !broken && w.write_all(&frame).is_err() {
                broken = true;
                closed.store(true, Ordering::Release);
                let _ = w.get_ref().shutdown(Shutdown::Both);
            }
        }
        // One flush for everything that was ready.
        if !broken && w.flush().is_err() {
            broken = true;
            closed.store(true, Ordering::Release);
            let _ = w.get_ref().shutdown(Shutdown::Both);
        }
    }
}
