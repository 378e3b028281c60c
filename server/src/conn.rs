//! One client connection: a task on the event loop that reads frames,
//! hands each to the [`Session`] (routing), and writes the replies that
//! are ready, in request order, with one write.
//!
//! The loop: serve every complete frame already read (while the outbox has
//! room); write everything ready; then wait for the first of more input,
//! a reply being filled (by the engine's callback after an `fdatasync`, or
//! by the blocking pool), a frame's or the idle deadline, or the server's
//! stop. Pipelining falls out: frames keep being read while earlier
//! appends sync, up to the outbox's bound.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use proto::frame::{self, FrameError, FrameHeader};
use proto::msg::{ErrorCode, ErrorReply};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};

use crate::config::Listener;
use crate::ctx::{self, Ctx};
use crate::outbox::Outbox;
use crate::reply;
use crate::route::{Served, Session};

/// Replies a connection may have taken places for before it stops reading
/// requests. A reply is at most one page (1 MiB of events), so a client
/// that stops reading holds at most 64 MiB here, for at most the write
/// timeout.
const OUT_DEPTH: usize = 64;
/// How long a write may take before the client is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long closing our side (over TLS, sending close_notify) may take.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(1);
/// What an idle connection's input buffer holds: enough for small frames,
/// small enough that thousands of idle connections cost little.
const IDLE_BUFFER: usize = 4 << 10;
/// The most a read asks for at once while a large frame arrives; the
/// buffer grows only as bytes actually arrive, so a declared length is
/// never allocated up front.
const READ_CHUNK: usize = 64 << 10;

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The client closed, went idle, or the server is stopping.
    Normal,
    /// The server refused the client's input and sent an error frame.
    Refused,
    /// The socket failed or a write timed out: nothing more can be sent.
    Broken,
}

/// Serves one connection until it closes, the client misbehaves, or the
/// server stops: over TLS if the protocol listener speaks it.
pub(crate) async fn serve(stream: TcpStream, peer: SocketAddr, ctx: Arc<Ctx>) {
    let _ = stream.set_nodelay(true);
    let limit = ctx.config.frame_timeout();
    if let Some(io) = crate::tls::accept(&ctx, Listener::Protocol, stream, peer, limit).await {
        serve_on(io, peer, ctx).await;
    }
}

/// Serves the connection's byte stream (plain TCP or TLS).
async fn serve_on<S>(mut io: S, peer: SocketAddr, ctx: Arc<Ctx>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let frame_timeout = ctx.config.frame_timeout();
    // The handshake.
    let mut pre = [0u8; frame::PREAMBLE_LEN];
    let version = match timeout(frame_timeout, read_preamble(&mut io, &mut pre)).await {
        Ok(Ok(())) => frame::accept_preamble(&pre),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(FrameError::Stalled(frame_timeout)),
    };
    match version {
        Ok(v) => {
            if write_all(&mut io, &frame::server_preamble(v))
                .await
                .is_err()
            {
                return;
            }
        }
        Err(FrameError::Io(_) | FrameError::Closed) => return,
        Err(e) => {
            let code = match e {
                FrameError::UnsupportedVersion { .. } => ErrorCode::UnsupportedVersion,
                _ => ErrorCode::BadFrame,
            };
            tracing::info!(%peer, error = %e, "refused a connection at the handshake");
            let f = reply::error_frame(&ctx.metrics, 0, ErrorReply::new(code, e.to_string()));
            if write_all(&mut io, &f).await.is_ok() {
                linger(io).await;
            }
            return;
        }
    }
    let out = Arc::new(Outbox::new(OUT_DEPTH));
    let mut session = Session::new(ctx.clone(), peer, out.clone());
    let mut conn = Conn {
        io,
        buf: BytesMut::with_capacity(IDLE_BUFFER),
        wbuf: Vec::new(),
        ctx,
        out,
        peer,
    };
    let ending = conn.run(&mut session).await;
    session.end_tails().await;
    conn.out.close();
    if ending != Ending::Broken {
        // Every reply already owed (appends submitted before the end among
        // them) goes out if the socket still takes it.
        conn.drain().await;
    }
    match ending {
        Ending::Refused => linger(conn.io).await,
        // Over TLS, close_notify: the client can tell this end from a cut.
        Ending::Normal => {
            let _ = timeout(GOODBYE_TIMEOUT, conn.io.shutdown()).await;
        }
        Ending::Broken => {}
    }
}

struct Conn<S> {
    io: S,
    /// Input read and not yet served.
    buf: BytesMut,
    /// Replies being written.
    wbuf: Vec<u8>,
    ctx: Arc<Ctx>,
    out: Arc<Outbox>,
    peer: SocketAddr,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Conn<S> {
    async fn run(&mut self, session: &mut Session) -> Ending {
        let cfg = &self.ctx.config;
        let (max_body, frame_timeout, idle_timeout) =
            (cfg.max_frame_bytes, cfg.frame_timeout(), cfg.idle_timeout());
        let mut stop = self.ctx.stop_signal();
        // When the first byte of the frame now in `buf` arrived.
        let mut frame_started: Option<Instant> = None;
        let mut last_activity = Instant::now();
        let mut eof = false;
        loop {
            // 1. Serve every complete frame, while there is room for replies.
            while self.out.has_room() {
                match next_frame(&mut self.buf, max_body) {
                    Ok(Some((h, body))) => {
                        frame_started = None;
                        last_activity = Instant::now();
                        let served = session.serve(h.kind, h.request_id, body.freeze()).await;
                        if served == Served::Refused {
                            return Ending::Refused;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return self.refuse(&e),
                }
            }
            // Whether the loop stopped for want of a whole frame (not of room).
            let room = self.out.has_room();
            if self.buf.is_empty() {
                frame_started = None;
                self.shrink_idle_buffer();
            } else if !room {
                // Whole frames wait for room: the client is not slow, the
                // replies are.
                frame_started = None;
            } else if frame_started.is_none() {
                // The start of the next frame came with the end of the last.
                frame_started = Some(Instant::now());
            }
            // 2. Write everything ready, with one write.
            if self.flush().await.is_err() {
                return Ending::Broken;
            }
            // The write made room for frames already read: serve them now
            // (nothing else would wake this task for them).
            if !room && self.out.has_room() && !self.buf.is_empty() {
                continue;
            }
            if eof && (room || self.buf.is_empty()) {
                if self.buf.is_empty() {
                    return Ending::Normal;
                }
                let expected = match self.buf.get(..4) {
                    Some(l) => 4 + u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize,
                    None => frame::FRAME_HEADER_LEN,
                };
                let got = self.buf.len();
                return self.refuse(&FrameError::Truncated { got, expected });
            }
            // 3. Wait for something to do.
            let busy = self.out.len() > 0 || session.has_tails();
            let deadline = match frame_started {
                Some(t) => t + frame_timeout,
                None if busy => Instant::now() + idle_timeout,
                None => last_activity + idle_timeout,
            };
            if busy {
                last_activity = Instant::now();
            }
            // After the client's close, only room for the frames it sent is
            // waited for.
            let room = self.out.has_room() && !eof;
            if room && self.buf.capacity() - self.buf.len() < 1024 {
                self.buf
                    .reserve(READ_CHUNK.min(self.buf.capacity().max(IDLE_BUFFER)));
            }
            tokio::select! {
                r = self.io.read_buf(&mut self.buf), if room => match r {
                    // The client closed its side: answer what it sent. Over
                    // TLS a close without close_notify is UnexpectedEof; it
                    // is a close all the same (what was read was whole
                    // records, each authenticated).
                    Ok(0) => eof = true,
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => eof = true,
                    Ok(_) => {
                        if frame_started.is_none() {
                            frame_started = Some(Instant::now());
                        }
                    }
                    Err(e) => {
                        tracing::debug!(peer = %self.peer, error = %e, "connection failed");
                        return Ending::Broken;
                    }
                },
                () = self.out.wait_filled() => {}
                () = tokio::time::sleep_until(deadline) => {
                    if frame_started.is_some() {
                        return self.refuse(&FrameError::Stalled(frame_timeout));
                    }
                    if !busy {
                        tracing::debug!(peer = %self.peer, "closing an idle connection");
                        self.ctx.metrics.idle_closed.fetch_add(1, Ordering::Relaxed);
                        return Ending::Normal;
                    }
                }
                () = ctx::stopped(&mut stop) => return Ending::Normal,
            }
        }
    }

    /// Answers a frame that cannot be served with an error frame.
    fn refuse(&self, e: &FrameError) -> Ending {
        let code = match e {
            FrameError::TooLarge { .. } => ErrorCode::TooLarge,
            _ => ErrorCode::BadFrame,
        };
        tracing::info!(peer = %self.peer, error = %e, "dropping a connection after a bad frame");
        self.out.push_now(reply::error_frame(
            &self.ctx.metrics,
            0,
            ErrorReply::new(code, e.to_string()),
        ));
        Ending::Refused
    }

    /// After a large frame, gives its buffer back.
    fn shrink_idle_buffer(&mut self) {
        if self.buf.capacity() > READ_CHUNK {
            self.buf = BytesMut::with_capacity(IDLE_BUFFER);
        }
    }

    /// Writes every reply that is ready.
    async fn flush(&mut self) -> std::io::Result<()> {
        self.wbuf.clear();
        if self.out.take_ready(&mut self.wbuf) == 0 {
            return Ok(());
        }
        let r = write_all(&mut self.io, &self.wbuf).await;
        if self.wbuf.capacity() > READ_CHUNK {
            self.wbuf = Vec::new();
        }
        r
    }

    /// Writes replies until none is owed (each place filled and sent).
    async fn drain(&mut self) {
        loop {
            if self.flush().await.is_err() {
                return;
            }
            if self.out.len() == 0 {
                return;
            }
            if self.out.unfilled() > 0 || !self.out.has_room() {
                self.out.wait_filled().await;
            }
        }
    }
}

/// Parses the next frame from the front of `buf`, if it is all there.
/// The declared length is checked as soon as its four bytes are in, so a
/// frame too short or too long is refused at once, not at the deadline.
fn next_frame(
    buf: &mut BytesMut,
    max_body: usize,
) -> Result<Option<(FrameHeader, BytesMut)>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    frame::check_length([buf[0], buf[1], buf[2], buf[3]], max_body)?;
    if buf.len() < frame::FRAME_HEADER_LEN {
        return Ok(None);
    }
    let mut h = [0u8; frame::FRAME_HEADER_LEN];
    h.copy_from_slice(&buf[..frame::FRAME_HEADER_LEN]);
    let header = frame::parse_header(&h, max_body)?;
    let total = frame::FRAME_HEADER_LEN + header.body_len;
    if buf.len() < total {
        let more = (total - buf.len()).min(READ_CHUNK);
        buf.reserve(more);
        return Ok(None);
    }
    let mut body = buf.split_to(total);
    body.advance(frame::FRAME_HEADER_LEN);
    Ok(Some((header, body)))
}

/// Reads the client's preamble; a close inside it is `Truncated`.
async fn read_preamble<R: AsyncRead + Unpin>(
    rd: &mut R,
    pre: &mut [u8; frame::PREAMBLE_LEN],
) -> Result<(), FrameError> {
    let mut got = 0;
    while got < pre.len() {
        match rd.read(&mut pre[got..]).await? {
            0 if got == 0 => return Err(FrameError::Closed),
            0 => {
                return Err(FrameError::Truncated {
                    got,
                    expected: frame::PREAMBLE_LEN,
                })
            }
            n => got += n,
        }
    }
    Ok(())
}

/// Writes `bytes` within the write timeout. The flush is a no-op on TCP;
/// over TLS it sends what the session still holds.
pub(crate) async fn write_all<W: AsyncWrite + Unpin>(
    wr: &mut W,
    bytes: &[u8],
) -> std::io::Result<()> {
    let write = async {
        wr.write_all(bytes).await?;
        wr.flush().await
    };
    match timeout(WRITE_TIMEOUT, write).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "write timed out",
        )),
    }
}

/// Closes our side and discards what the client still sends, briefly, so
/// that the error frame just written is not destroyed by a reset (closing
/// a socket with unread input makes the kernel send RST, and the peer may
/// then lose data it had not read yet).
pub(crate) async fn linger<S: AsyncRead + AsyncWrite + Unpin>(mut io: S) {
    let _ = timeout(GOODBYE_TIMEOUT, io.shutdown()).await;
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut buf = vec![0u8; 16 << 10];
    let mut budget = 1usize << 20;
    while budget > 0 {
        match tokio::time::timeout_at(deadline, io.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => budget = budget.saturating_sub(n),
            _ => return,
        }
    }
}
