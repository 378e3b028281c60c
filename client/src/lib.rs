//! The Rust client for `chainlogd`.
//!
//! A [`Client`] is one TCP connection: connect, authenticate, then append
//! (one event, a batch, or many batches in flight with
//! [`Client::submit_append`] / [`Client::wait_receipts`]), query with
//! automatic paging, read seq ranges, tail as an iterator; with an admin
//! key, manage the log's keys ([`Client::list_keys`], [`Client::create_key`],
//! [`Client::revoke_key`]) and schema ([`Client::schema`],
//! [`Client::set_schema`]). Checkpoints and proofs are checked here, not
//! taken on the server's word: [`Client::verified_checkpoint`] accepts a
//! checkpoint only if a trusted key signed it and it extends the last one
//! accepted ([`Trust`]), and [`Client::prove`] verifies an inclusion proof
//! before returning it. Errors are typed: the server's error code arrives
//! as [`ClientError::Server`].
//!
//! ```no_run
//! use client::{Client, Event};
//! let mut c = Client::connect("127.0.0.1:7400")?;
//! c.auth("clk_...")?;
//! let receipt = c.append(&Event {
//!     tenant_id: "acme".into(),
//!     actor_id: "u1".into(),
//!     action: "document.deleted".into(),
//!     resource: "document".into(),
//!     ..Event::default()
//! })?;
//! println!("stored as seq {}", receipt.seq);
//! # Ok::<(), client::ClientError>(())
//! ```

use std::collections::HashMap;
use std::io::{BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

pub use proto::event::{Event, EventRef, StoredEvent};
use proto::frame::{self, FrameError, PROTOCOL_VERSION};
use proto::msg::{self, Request, Response};
pub use proto::msg::{
    rights, ActionSeen, AppendReceipt, ErrorCode, ErrorReply, EventPage, KeyInfo, LogStats, Origin,
    Query, SchemaInfo, SchemaMode, SchemaSpec, TimeField,
};
use proto::DecodeError;
pub use tlog::note::{Checkpoint, Proof, VerifierKey};
pub use tlog::Hash;

mod tls;
mod trust;
pub use tls::TlsOptions;
use tls::Transport;
use trust::Step;
pub use trust::{Trust, TrustError};

/// What a client call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with a typed error.
    #[error("server error {0}")]
    Server(ErrorReply),
    /// The connection failed or closed.
    #[error("connection: {0}")]
    Frame(#[from] FrameError),
    /// The server sent bytes this client cannot decode.
    #[error("undecodable response: {0}")]
    Decode(#[from] DecodeError),
    /// The server sent a response that does not fit the request.
    #[error("protocol: {0}")]
    Protocol(String),
    /// A checkpoint or proof the server sent does not check out.
    #[error("{0}")]
    Trust(#[from] TrustError),
    /// TLS could not be set up: an unusable CA or certificate file, or a
    /// handshake the server or this client refused.
    #[error("tls: {0}")]
    Tls(String),
}

impl ClientError {
    /// The server's error code, if the server answered with one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Server(e) => Some(e.code),
            _ => None,
        }
    }
}

impl From<std::io::Error> for ClientError {
    fn from(e: std::io::Error) -> Self {
        ClientError::Frame(FrameError::Io(e))
    }
}

/// Client results.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// A signed checkpoint as the server sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// The C2SP signed note: origin, tree size, base64 root, signatures.
    pub note: String,
    /// The verifier key (`name+keyid+base64`) the server says signs it.
    pub verifier_key: String,
}

/// What the server said the key allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthInfo {
    /// The log the key names.
    pub log: String,
    /// [`rights`] bits.
    pub rights: u8,
    /// The tenants it may write and read; empty for all.
    pub tenants: Vec<String>,
}

/// A key the server created: its text is shown this once (the server keeps
/// only its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedKey {
    /// The key's id.
    pub id: String,
    /// The key's text, for [`Client::auth`].
    pub key: String,
}

/// The id of a request in flight.
pub type RequestId = u32;

/// One connection to a chainlogd server.
#[derive(Debug)]
pub struct Client {
    /// The connection: reads are buffered, writes go to the transport.
    io: BufReader<Transport>,
    next_id: u32,
    out: Vec<u8>,
    body: Vec<u8>,
    /// Responses read while waiting for another request's.
    parked: HashMap<u32, Response>,
}

/// How long a response may take to arrive once it has started.
const FRAME_DEADLINE: Duration = Duration::from_secs(60);
/// The largest response accepted: a page of events is at most about 2 MiB,
/// an unknown-actions list a few MiB.
const MAX_RESPONSE: usize = 16 << 20;

impl Client {
    /// Connects and agrees on the protocol version.
    pub fn connect(addr: impl ToSocketAddrs) -> Result<Client> {
        let stream = TcpStream::connect(addr)?;
        Client::handshake(stream)
    }

    /// Connects, giving up after `timeout` per address.
    pub fn connect_timeout(addr: impl ToSocketAddrs, timeout: Duration) -> Result<Client> {
        let mut last = None;
        for a in addr.to_socket_addrs()? {
            match TcpStream::connect_timeout(&a, timeout) {
                Ok(s) => return Client::handshake(s),
                Err(e) => last = Some(e),
            }
        }
        Err(last
            .unwrap_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address"))
            .into())
    }

    /// Connects over TLS to `addr` (`host:port`; the host is checked
    /// against the server's certificate unless `tls` names another).
    pub fn connect_tls(addr: &str, tls: &TlsOptions) -> Result<Client> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        Client::handshake_on(tls.handshake(addr, stream)?)
    }

    fn handshake(stream: TcpStream) -> Result<Client> {
        stream.set_nodelay(true)?;
        Client::handshake_on(Transport::Plain(stream))
    }

    fn handshake_on(mut io: Transport) -> Result<Client> {
        // A TLS refusal that surfaces here is a TLS error, not a frame's.
        let refused = |e: FrameError| match &e {
            FrameError::Io(io) => tls::refusal(io).unwrap_or(ClientError::Frame(e)),
            _ => ClientError::Frame(e),
        };
        let mut preamble = || -> std::io::Result<()> {
            io.write_all(&frame::client_preamble(PROTOCOL_VERSION, PROTOCOL_VERSION))?;
            io.flush()
        };
        preamble().map_err(|e| refused(FrameError::Io(e)))?;
        let mut io = BufReader::with_capacity(64 << 10, io);
        let p = frame::read_preamble(&mut io, FRAME_DEADLINE).map_err(refused)?;
        if p[..4] != frame::MAGIC {
            // A refusal (busy, bad version) comes as an error frame in
            // place of the preamble: these 8 bytes are its start.
            let mut chained = std::io::Read::chain(&p[..], &mut io);
            let mut body = Vec::new();
            let h = frame::read_frame(&mut chained, 64 << 10, FRAME_DEADLINE, &mut body)?;
            return Err(match msg::decode_response(h.kind, &body)? {
                Response::Error(e) => ClientError::Server(e),
                other => ClientError::Protocol(format!("expected a preamble, got {other:?}")),
            });
        }
        frame::parse_server_preamble(&p)?;
        Ok(Client {
            io,
            next_id: 1,
            out: Vec::with_capacity(64 << 10),
            body: Vec::new(),
            parked: HashMap::new(),
        })
    }

    /// Authenticates the connection.
    pub fn auth(&mut self, key: &str) -> Result<AuthInfo> {
        match self.call(&Request::Auth { key: key.into() })? {
            Response::AuthOk {
                log,
                rights,
                tenants,
            } => Ok(AuthInfo {
                log,
                rights,
                tenants,
            }),
            other => Err(unexpected("auth", &other)),
        }
    }

    /// Sends a request without waiting; returns its id.
    pub fn send(&mut self, req: &Request<'_>) -> Result<RequestId> {
        // Ids start at 1 and skip 0 when they wrap: 0 is the server's.
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        self.out.clear();
        msg::encode_request(&mut self.out, id, req);
        self.write_out()?;
        Ok(id)
    }

    /// Waits for the response to request `id` (others that arrive first
    /// are kept for their own callers).
    pub fn wait(&mut self, id: RequestId) -> Result<Response> {
        if let Some(r) = self.parked.remove(&id) {
            return Ok(r);
        }
        loop {
            let (rid, resp) = self.read_response()?;
            // Id 0 is the server's: an error about the connection itself
            // (a refused frame), after which it closes.
            if rid == id || (rid == 0 && matches!(resp, Response::Error(_))) {
                return Ok(resp);
            }
            self.parked.insert(rid, resp);
        }
    }

    /// Writes `self.out` and flushes it (a no-op on plain TCP; over TLS
    /// it sends the records).
    fn write_out(&mut self) -> Result<()> {
        let io = self.io.get_mut();
        io.write_all(&self.out)?;
        io.flush()?;
        Ok(())
    }

    /// The server's certificate (DER) on a TLS connection; `None` on plain
    /// TCP.
    pub fn peer_certificate(&self) -> Option<Vec<u8>> {
        self.io.get_ref().peer_certificate()
    }

    fn read_response(&mut self) -> Result<(RequestId, Response)> {
        let h = frame::read_frame(&mut self.io, MAX_RESPONSE, FRAME_DEADLINE, &mut self.body)?;
        let resp = msg::decode_response(h.kind, &self.body)?;
        Ok((h.request_id, resp))
    }

    fn call(&mut self, req: &Request<'_>) -> Result<Response> {
        let id = self.send(req)?;
        match self.wait(id)? {
            Response::Error(e) => Err(ClientError::Server(e)),
            r => Ok(r),
        }
    }

    /// Appends one event; returns once it is durable.
    pub fn append(&mut self, event: &Event) -> Result<AppendReceipt> {
        let mut r = self.append_batch(std::slice::from_ref(event))?;
        r.pop()
            .ok_or_else(|| ClientError::Protocol("no receipt".into()))
    }

    /// Appends a batch (all or nothing); one receipt per event, in order.
    pub fn append_batch(&mut self, events: &[Event]) -> Result<Vec<AppendReceipt>> {
        let id = self.submit_append(events)?;
        self.wait_receipts(id)
    }

    /// Sends a batch without waiting: keep many in flight and collect each
    /// with [`wait_receipts`](Self::wait_receipts).
    pub fn submit_append(&mut self, events: &[Event]) -> Result<RequestId> {
        let encoded: Vec<Vec<u8>> = events.iter().map(Event::encode).collect();
        self.submit_encoded(&encoded)
    }

    /// Sends already-encoded events (see [`Event::encode`]) without waiting.
    pub fn submit_encoded<B: AsRef<[u8]>>(&mut self, events: &[B]) -> Result<RequestId> {
        let events = events.iter().map(AsRef::as_ref).collect();
        self.send(&Request::Append { events })
    }

    /// The receipts of a batch sent with [`submit_append`](Self::submit_append).
    pub fn wait_receipts(&mut self, id: RequestId) -> Result<Vec<AppendReceipt>> {
        match self.wait(id)? {
            Response::Receipts(r) => Ok(r),
            Response::Error(e) => Err(ClientError::Server(e)),
            other => Err(unexpected("append", &other)),
        }
    }

    /// One page of a query.
    pub fn query_page(&mut self, q: &Query) -> Result<EventPage> {
        match self.call(&Request::Query(q.clone()))? {
            Response::Events(p) => Ok(p),
            other => Err(unexpected("query", &other)),
        }
    }

    /// Every event matching `q`, fetching pages as the iterator needs them.
    pub fn query(&mut self, q: Query) -> QueryIter<'_> {
        QueryIter {
            client: self,
            query: q,
            page: Vec::new().into_iter(),
            done: false,
        }
    }

    /// Events with `from <= seq < to` (those the key may read), at most
    /// `limit` (0 = the server's default page).
    pub fn read(&mut self, from: u64, to: u64, limit: u16) -> Result<EventPage> {
        match self.call(&Request::Read { from, to, limit })? {
            Response::Events(p) => Ok(p),
            other => Err(unexpected("read", &other)),
        }
    }

    /// The log's head and counters.
    pub fn stats(&mut self) -> Result<LogStats> {
        match self.call(&Request::Stats)? {
            Response::Stats(s) => Ok(s),
            other => Err(unexpected("stats", &other)),
        }
    }

    /// Unknown actions stored, with counts (needs the admin right).
    pub fn unknown_actions(&mut self) -> Result<Vec<(String, u64)>> {
        Ok(self
            .actions_seen()?
            .into_iter()
            .map(|a| (a.action, a.count))
            .collect())
    }

    /// [`unknown_actions`](Self::unknown_actions) with when each action
    /// was first and last stored (every action, for a log with no schema
    /// patterns).
    pub fn actions_seen(&mut self) -> Result<Vec<ActionSeen>> {
        match self.call(&Request::UnknownActions)? {
            Response::Actions(a) => Ok(a),
            other => Err(unexpected("unknown actions", &other)),
        }
    }

    /// The keys in force on the key's log, by id, without their text or
    /// hash (needs the admin right and no tenant limit).
    pub fn list_keys(&mut self) -> Result<Vec<KeyInfo>> {
        match self.call(&Request::ListKeys)? {
            Response::Keys(k) => Ok(k),
            other => Err(unexpected("list keys", &other)),
        }
    }

    /// Creates a key on the key's log with [`rights`] bits `rights` and
    /// `tenants` (empty: every tenant); returns its text, which the server
    /// does not keep (needs the admin right and no tenant limit).
    pub fn create_key(&mut self, id: &str, rights: u8, tenants: &[String]) -> Result<CreatedKey> {
        let req = Request::CreateKey {
            id: id.into(),
            rights,
            tenants: tenants.to_vec(),
        };
        match self.call(&req)? {
            Response::KeyCreated { id, key } => Ok(CreatedKey { id, key }),
            other => Err(unexpected("create key", &other)),
        }
    }

    /// Revokes the key `id` of the key's log: no connection can use it from
    /// the reply on (needs the admin right and no tenant limit).
    pub fn revoke_key(&mut self, id: &str) -> Result<()> {
        match self.call(&Request::RevokeKey { id: id.into() })? {
            Response::Done => Ok(()),
            other => Err(unexpected("revoke key", &other)),
        }
    }

    /// A signed checkpoint of every durable record of the key's log: a C2SP
    /// tlog-checkpoint signed note, and the verifier key the server says
    /// signs it (check it against one obtained out of band: the server can
    /// sign with any key). Needs the read right.
    pub fn checkpoint(&mut self) -> Result<SignedCheckpoint> {
        match self.call(&Request::Checkpoint)? {
            Response::Checkpoint { note, verifier_key } => {
                Ok(SignedCheckpoint { note, verifier_key })
            }
            other => Err(unexpected("checkpoint", &other)),
        }
    }

    /// The inclusion proof of record `seq` in the tree of the first `size`
    /// records, unverified: the record's chain hash and the proof's hashes
    /// (check them against a checkpoint of `size`, or use
    /// [`prove`](Client::prove)). Needs the read right, and a
    /// tenant-limited key may prove only its tenants' records.
    pub fn inclusion_proof(&mut self, seq: u64, size: u64) -> Result<(Hash, Vec<Hash>)> {
        match self.call(&Request::InclusionProof { seq, size })? {
            Response::Inclusion { chain_hash, hashes } => Ok((chain_hash, hashes)),
            other => Err(unexpected("inclusion proof", &other)),
        }
    }

    /// The consistency proof from the tree of `old` records to that of
    /// `new`, unverified (needs the read right).
    pub fn consistency_proof(&mut self, old: u64, new: u64) -> Result<Vec<Hash>> {
        match self.call(&Request::ConsistencyProof { old, new })? {
            Response::Consistency { hashes } => Ok(hashes),
            other => Err(unexpected("consistency proof", &other)),
        }
    }

    /// A new checkpoint of the log, accepted by `trust`: signed by one of
    /// its keys (not the key the server names), of the same origin, and,
    /// when `trust` holds an older checkpoint, proven to extend it (a
    /// consistency proof from the server, checked here). On success it is
    /// `trust`'s newest. A rolled-back, forked or rewritten log fails with
    /// the [`TrustError`] that says which, and `trust` keeps what it had.
    pub fn verified_checkpoint(&mut self, trust: &mut Trust) -> Result<Checkpoint> {
        let signed = self.checkpoint()?;
        let (checkpoint, step) = trust.check(&signed.note)?;
        if let Step::Prove { old, old_root } = step {
            let hashes = self.consistency_proof(old, checkpoint.size)?;
            Trust::check_consistency(old, &old_root, &checkpoint, &hashes)?;
        }
        trust.accept(checkpoint.clone(), signed.note);
        Ok(checkpoint)
    }

    /// The inclusion proof of record `seq` at a new checkpoint accepted by
    /// `trust` ([`verified_checkpoint`](Client::verified_checkpoint)),
    /// verified here, as a C2SP tlog-proof ([`Proof::encode`] writes the
    /// file `chainlog verify-proof` checks). Its
    /// [`chain_hash`](Proof::chain_hash) is the record's; compare it with
    /// the receipt's or the event's hash.
    pub fn prove(&mut self, seq: u64, trust: &mut Trust) -> Result<Proof> {
        let checkpoint = self.verified_checkpoint(trust)?;
        let (chain_hash, hashes) = self.inclusion_proof(seq, checkpoint.size)?;
        let note = trust.note().unwrap_or_default().as_bytes().to_vec();
        let proof = Proof::for_record(seq, &chain_hash, hashes, &note)
            .map_err(|e| ClientError::Protocol(format!("inclusion proof of record {seq}: {e}")))?;
        proof
            .verify(trust.keys(), &chain_hash)
            .map_err(|cause| TrustError::Inclusion { seq, cause })?;
        Ok(proof)
    }

    /// The log's action schema, and whether it comes from the config or
    /// was set at runtime (needs the admin right and no tenant limit).
    pub fn schema(&mut self) -> Result<SchemaInfo> {
        match self.call(&Request::GetSchema)? {
            Response::Schema(s) => Ok(s),
            other => Err(unexpected("get schema", &other)),
        }
    }

    /// Replaces the log's action schema. It applies to appends at once,
    /// and the unknown-action counts have been recounted under it when this
    /// returns (needs the admin right and no tenant limit).
    pub fn set_schema(&mut self, mode: SchemaMode, actions: &[String]) -> Result<()> {
        let req = Request::SetSchema(SchemaSpec {
            mode,
            actions: actions.to_vec(),
        });
        match self.call(&req)? {
            Response::Done => Ok(()),
            other => Err(unexpected("set schema", &other)),
        }
    }

    /// A round trip; returns its time.
    pub fn ping(&mut self) -> Result<Duration> {
        let start = Instant::now();
        match self.call(&Request::Ping(0x5eed))? {
            Response::Pong(0x5eed) => Ok(start.elapsed()),
            other => Err(unexpected("ping", &other)),
        }
    }

    /// Subscribes to events from seq `from` on. The connection then belongs
    /// to the tail until it is cancelled or dropped.
    pub fn tail(&mut self, from: u64) -> Result<Tail<'_>> {
        let id = self.send(&Request::Tail { from })?;
        Ok(Tail {
            client: self,
            id,
            buffered: Vec::new().into_iter(),
            done: false,
        })
    }

    /// Writes raw bytes to the connection (for tests of bad input).
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<()> {
        let io = self.io.get_mut();
        io.write_all(bytes)?;
        io.flush()?;
        Ok(())
    }

    /// Reads the next response, whatever its id.
    pub fn next_response(&mut self) -> Result<(RequestId, Response)> {
        if let Some(&id) = self.parked.keys().next() {
            if let Some(r) = self.parked.remove(&id) {
                return Ok((id, r));
            }
        }
        self.read_response()
    }

    /// Closes the connection.
    pub fn close(mut self) {
        self.io.get_mut().close();
    }
}

fn unexpected(what: &str, r: &Response) -> ClientError {
    match r {
        Response::Error(e) => ClientError::Server(e.clone()),
        other => ClientError::Protocol(format!("unexpected answer to {what}: {other:?}")),
    }
}

/// The events of a query, page after page; see [`Client::query`].
#[derive(Debug)]
pub struct QueryIter<'a> {
    client: &'a mut Client,
    query: Query,
    page: std::vec::IntoIter<StoredEvent>,
    done: bool,
}

impl Iterator for QueryIter<'_> {
    type Item = Result<StoredEvent>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.page.next() {
                return Some(Ok(e));
            }
            if self.done {
                return None;
            }
            match self.client.query_page(&self.query) {
                Ok(p) => {
                    match p.cursor {
                        Some(c) => self.query.cursor = c,
                        None => self.done = true,
                    }
                    // A total is a full pass: once is enough.
                    self.query.want_total = false;
                    self.page = p.events.into_iter();
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// A tail subscription: yields events as they become durable, forever
/// (until cancelled, or the connection ends).
#[derive(Debug)]
pub struct Tail<'a> {
    client: &'a mut Client,
    id: RequestId,
    buffered: std::vec::IntoIter<StoredEvent>,
    done: bool,
}

impl Tail<'_> {
    /// Ends the subscription and gives the connection back.
    pub fn cancel(mut self) -> Result<()> {
        if self.done {
            // The server already ended it (and said why).
            return Ok(());
        }
        let cancel = self.client.send(&Request::Cancel {
            request_id: self.id,
        })?;
        let mut cancelled = false;
        let mut tail_done = false;
        while !(cancelled && tail_done) {
            let (id, resp) = self.client.read_response()?;
            match resp {
                Response::Done if id == cancel => cancelled = true,
                Response::Error(e) if id == cancel || id == 0 => {
                    return Err(ClientError::Server(e))
                }
                // The tail's last frame: DONE, or the error that ended it
                // before the cancel arrived.
                Response::Done | Response::Error(_) if id == self.id => tail_done = true,
                _ if id == self.id => {}
                other => {
                    self.client.parked.insert(id, other);
                }
            }
        }
        self.done = true;
        Ok(())
    }
}

impl Iterator for Tail<'_> {
    type Item = Result<StoredEvent>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.buffered.next() {
                return Some(Ok(e));
            }
            if self.done {
                return None;
            }
            match self.client.wait(self.id) {
                Ok(Response::TailEvents(events)) => self.buffered = events.into_iter(),
                Ok(Response::Done) => self.done = true,
                Ok(Response::Error(e)) => {
                    self.done = true;
                    return Some(Err(ClientError::Server(e)));
                }
                Ok(other) => {
                    self.done = true;
                    return Some(Err(unexpected("tail", &other)));
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}
