//! The requests and responses carried in frames, and their bodies.
//!
//! Requests use frame types below 0x80; a response carries the request's id
//! and a type of 0x80 or more. Byte layouts are in `docs/protocol.md`.

use crate::event::{Event, StoredEvent};
use crate::wire::{self, DecodeError, Reader};

/// Frame types.
pub mod kind {
    /// Request: authenticate with an API key.
    pub const AUTH: u8 = 0x01;
    /// Request: append events.
    pub const APPEND: u8 = 0x02;
    /// Request: query events by filters.
    pub const QUERY: u8 = 0x03;
    /// Request: read a seq range.
    pub const READ: u8 = 0x04;
    /// Request: subscribe to events as they become durable.
    pub const TAIL: u8 = 0x05;
    /// Request: end a tail subscription.
    pub const CANCEL: u8 = 0x06;
    /// Request: the log's head and counters.
    pub const STATS: u8 = 0x07;
    /// Request: liveness.
    pub const PING: u8 = 0x08;
    /// Request: the actions seen that the log's schema does not list.
    pub const UNKNOWN_ACTIONS: u8 = 0x09;
    /// Request (admin): the keys of the log.
    pub const LIST_KEYS: u8 = 0x0a;
    /// Request (admin): create a key; the server generates its text.
    pub const CREATE_KEY: u8 = 0x0b;
    /// Request (admin): revoke a key by id.
    pub const REVOKE_KEY: u8 = 0x0c;
    /// Request (admin): the log's action schema.
    pub const GET_SCHEMA: u8 = 0x0d;
    /// Request (admin): replace the log's action schema.
    pub const SET_SCHEMA: u8 = 0x0e;
    /// Request (read): a signed checkpoint of the log's durable records.
    pub const CHECKPOINT: u8 = 0x0f;
    /// Request (read): the inclusion proof of a record in a tree size.
    pub const INCLUSION_PROOF: u8 = 0x10;
    /// Request (read): the consistency proof between two tree sizes.
    pub const CONSISTENCY_PROOF: u8 = 0x11;

    /// Response to AUTH.
    pub const AUTH_OK: u8 = 0x81;
    /// Response to APPEND: one receipt per event.
    pub const RECEIPTS: u8 = 0x82;
    /// Response to QUERY and READ: a page of events.
    pub const EVENTS: u8 = 0x83;
    /// Pushed for a TAIL: events that became durable.
    pub const TAIL_EVENTS: u8 = 0x84;
    /// Response to STATS.
    pub const STATS_OK: u8 = 0x85;
    /// Response to PING.
    pub const PONG: u8 = 0x86;
    /// Response to UNKNOWN_ACTIONS.
    pub const ACTIONS: u8 = 0x87;
    /// Response to CANCEL, REVOKE_KEY and SET_SCHEMA, and the last frame of
    /// a cancelled tail.
    pub const DONE: u8 = 0x88;
    /// Response to LIST_KEYS.
    pub const KEYS: u8 = 0x89;
    /// Response to CREATE_KEY: the new key's text, sent once.
    pub const KEY_CREATED: u8 = 0x8a;
    /// Response to GET_SCHEMA.
    pub const SCHEMA: u8 = 0x8b;
    /// Response to CHECKPOINT: the signed note and the key that verifies it.
    pub const CHECKPOINT_OK: u8 = 0x8c;
    /// Response to INCLUSION_PROOF: the record's chain hash and the proof.
    pub const INCLUSION: u8 = 0x8d;
    /// Response to CONSISTENCY_PROOF: the proof.
    pub const CONSISTENCY: u8 = 0x8e;
    /// Response to anything: a typed error.
    pub const ERROR: u8 = 0xff;
}

/// Rights bits a key can hold.
pub mod rights {
    /// May append.
    pub const APPEND: u8 = 1;
    /// May query, read and tail.
    pub const READ: u8 = 2;
    /// May read the whole log's stats and unknown actions (a key with READ
    /// and no tenant limit may read stats too); with no tenant limit, may
    /// also manage the log's keys and schema.
    pub const ADMIN: u8 = 4;
    /// Every right.
    pub const ALL: u8 = APPEND | READ | ADMIN;
}

/// The most events one query or read page returns.
pub const MAX_PAGE: u16 = 1000;
/// The page size when a request asks for 0.
pub const DEFAULT_PAGE: u16 = 100;
/// The most hashes a proof response carries: an inclusion proof has at
/// most 64 and a consistency proof at most 128 for any tree size.
pub const MAX_PROOF_HASHES: usize = 128;

/// Error codes, carried in error frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The frame or preamble could not be parsed; the connection closes.
    BadFrame,
    /// No protocol version in common; the connection closes.
    UnsupportedVersion,
    /// No valid key was presented (wrong, truncated and unknown keys all
    /// get this same answer).
    Unauthenticated,
    /// The key does not allow this (right or tenant).
    Forbidden,
    /// An event failed validation; names its index and field.
    InvalidEvent,
    /// A well-formed request with values out of bounds.
    InvalidRequest,
    /// The log's queue is full: retry later.
    Busy,
    /// A frame or batch over its limit (an oversized event is an
    /// `InvalidEvent`, field `event`).
    TooLarge,
    /// A write or sync failed; nothing more is acknowledged until restart.
    Poisoned,
    /// The server is stopping.
    ShuttingDown,
    /// Anything else; the message says what.
    Internal,
    /// An event's idempotency key or source event id was stored (or comes
    /// earlier in the same batch) with other content; names its index and
    /// the key's field. Nothing in the batch is stored.
    Conflict,
    /// A code this side does not know.
    Other(u16),
}

impl ErrorCode {
    /// The code's number on the wire.
    pub fn to_u16(self) -> u16 {
        match self {
            ErrorCode::BadFrame => 1,
            ErrorCode::UnsupportedVersion => 2,
            ErrorCode::Unauthenticated => 3,
            ErrorCode::Forbidden => 4,
            ErrorCode::InvalidEvent => 5,
            ErrorCode::InvalidRequest => 6,
            ErrorCode::Busy => 7,
            ErrorCode::TooLarge => 8,
            ErrorCode::Poisoned => 9,
            ErrorCode::ShuttingDown => 10,
            ErrorCode::Internal => 11,
            ErrorCode::Conflict => 12,
            ErrorCode::Other(n) => n,
        }
    }

    /// The code for a number.
    pub fn from_u16(n: u16) -> Self {
        match n {
            1 => ErrorCode::BadFrame,
            2 => ErrorCode::UnsupportedVersion,
            3 => ErrorCode::Unauthenticated,
            4 => ErrorCode::Forbidden,
            5 => ErrorCode::InvalidEvent,
            6 => ErrorCode::InvalidRequest,
            7 => ErrorCode::Busy,
            8 => ErrorCode::TooLarge,
            9 => ErrorCode::Poisoned,
            10 => ErrorCode::ShuttingDown,
            11 => ErrorCode::Internal,
            12 => ErrorCode::Conflict,
            n => ErrorCode::Other(n),
        }
    }

    /// The code's name, as in `docs/protocol.md` and the metrics.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::BadFrame => "bad_frame",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::InvalidEvent => "invalid_event",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::Busy => "busy",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::Poisoned => "poisoned",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::Internal => "internal",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Other(_) => "other",
        }
    }

    /// Every known code, in number order.
    pub const ALL: [ErrorCode; 12] = [
        ErrorCode::BadFrame,
        ErrorCode::UnsupportedVersion,
        ErrorCode::Unauthenticated,
        ErrorCode::Forbidden,
        ErrorCode::InvalidEvent,
        ErrorCode::InvalidRequest,
        ErrorCode::Busy,
        ErrorCode::TooLarge,
        ErrorCode::Poisoned,
        ErrorCode::ShuttingDown,
        ErrorCode::Internal,
        ErrorCode::Conflict,
    ];
}

/// Which timestamp a query's time range applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimeField {
    /// No time range.
    #[default]
    None,
    /// The server's write time (an index seek).
    CreatedAt,
    /// The client's event time.
    OccurredAt,
}

/// A query: every non-empty filter must match. Results come in seq order,
/// oldest first unless `descending`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Query {
    /// Only this tenant's events (a tenant-limited key implies its tenants).
    pub tenant_id: String,
    /// Only this actor's.
    pub actor_id: String,
    /// Only this action.
    pub action: String,
    /// Only this resource type.
    pub resource: String,
    /// Only this resource id.
    pub resource_id: String,
    /// The timestamp `from..to` applies to.
    pub time_field: TimeField,
    /// Inclusive lower bound, nanoseconds since the Unix epoch.
    pub from: u64,
    /// Exclusive upper bound (`u64::MAX` for none).
    pub to: u64,
    /// Events per page, at most [`MAX_PAGE`]; 0 means [`DEFAULT_PAGE`].
    pub limit: u16,
    /// Where to continue: the cursor of the previous page, or empty.
    pub cursor: Vec<u8>,
    /// Whether to count every match (a full pass over the range).
    pub want_total: bool,
    /// Newest first (seq order, descending) instead of oldest first.
    pub descending: bool,
    /// Only the event with this `idempotency_key` (exact lookup).
    pub idempotency_key: String,
    /// Only the event with this `source_event_id` (exact lookup).
    pub source_event_id: String,
    /// Only the events with this `correlation_id`.
    pub correlation_id: String,
}

impl Query {
    /// Whether it filters on an exact key (and so needs flag bit 2 on the
    /// wire).
    pub fn has_keys(&self) -> bool {
        !(self.idempotency_key.is_empty()
            && self.source_event_id.is_empty()
            && self.correlation_id.is_empty())
    }
}

impl Query {
    /// A query with no filters and no time range.
    pub fn all() -> Self {
        Query {
            to: u64::MAX,
            ..Query::default()
        }
    }
}

/// What a log does with an action no pattern allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SchemaMode {
    /// Store the event and count it as unknown (wire value 0).
    #[default]
    Permissive,
    /// Refuse the event (wire value 1).
    Strict,
}

/// A log's action schema: its mode and patterns (empty: every action).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SchemaSpec {
    /// Strict or permissive.
    pub mode: SchemaMode,
    /// Allowed action patterns; `*` is one or more characters.
    pub actions: Vec<String>,
}

/// Where a key or a schema comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The config file (wire value 0).
    Config,
    /// Set at runtime by an admin, kept in the data directory's
    /// `managed.json` (wire value 1).
    Runtime,
}

/// A key as LIST_KEYS describes it: never its text or hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// The key's id.
    pub id: String,
    /// Config file or runtime.
    pub origin: Origin,
    /// [`rights`] bits.
    pub rights: u8,
    /// Tenants it may write and read; empty for every tenant.
    pub tenants: Vec<String>,
}

/// A log's schema as GET_SCHEMA describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaInfo {
    /// Config file, or set at runtime (which overrides the config).
    pub origin: Origin,
    /// Mode and patterns.
    pub spec: SchemaSpec,
}

/// A request, decoded (append events borrow the frame body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request<'a> {
    /// Authenticate with an API key.
    Auth {
        /// The key's text.
        key: String,
    },
    /// Append events, each in the encoding of [`Event`].
    Append {
        /// The encoded events.
        events: Vec<&'a [u8]>,
    },
    /// Query events.
    Query(Query),
    /// Events with `from <= seq < to`, at most `limit`.
    Read {
        /// First seq.
        from: u64,
        /// End (exclusive).
        to: u64,
        /// Page size (0 = default).
        limit: u16,
    },
    /// Push events from `from` on as they become durable.
    Tail {
        /// First seq to send.
        from: u64,
    },
    /// End the tail started by `request_id`.
    Cancel {
        /// The tail's request id.
        request_id: u32,
    },
    /// The log's head and counters.
    Stats,
    /// Liveness; the reply echoes the value.
    Ping(u64),
    /// The unknown actions seen.
    UnknownActions,
    /// The keys of the log (admin).
    ListKeys,
    /// Create a key for the log (admin); the server generates its text.
    CreateKey {
        /// Its id: 1-64 bytes, printable, no whitespace, unused.
        id: String,
        /// [`rights`] bits, at least one.
        rights: u8,
        /// Tenants it may write and read; empty for every tenant.
        tenants: Vec<String>,
    },
    /// Revoke a key of the log (admin).
    RevokeKey {
        /// The key's id.
        id: String,
    },
    /// The log's action schema (admin).
    GetSchema,
    /// Replace the log's action schema (admin).
    SetSchema(SchemaSpec),
    /// A signed checkpoint of every durable record (read).
    Checkpoint,
    /// The inclusion proof of the record `seq` in the tree of the first
    /// `size` records (read; a tenant-limited key only for its tenants'
    /// records).
    InclusionProof {
        /// The record's seq, below `size`.
        seq: u64,
        /// The tree size: at most the durable records.
        size: u64,
    },
    /// The consistency proof from the tree of `old` records to that of
    /// `new` (read).
    ConsistencyProof {
        /// The older size, at least 1.
        old: u64,
        /// The newer size: at least `old`, at most the durable records.
        new: u64,
    },
}

/// Appends a complete request frame to `out`.
pub fn encode_request(out: &mut Vec<u8>, request_id: u32, req: &Request<'_>) {
    let k = match req {
        Request::Auth { .. } => kind::AUTH,
        Request::Append { .. } => kind::APPEND,
        Request::Query(_) => kind::QUERY,
        Request::Read { .. } => kind::READ,
        Request::Tail { .. } => kind::TAIL,
        Request::Cancel { .. } => kind::CANCEL,
        Request::Stats => kind::STATS,
        Request::Ping(_) => kind::PING,
        Request::UnknownActions => kind::UNKNOWN_ACTIONS,
        Request::ListKeys => kind::LIST_KEYS,
        Request::CreateKey { .. } => kind::CREATE_KEY,
        Request::RevokeKey { .. } => kind::REVOKE_KEY,
        Request::GetSchema => kind::GET_SCHEMA,
        Request::Checkpoint => kind::CHECKPOINT,
        Request::InclusionProof { .. } => kind::INCLUSION_PROOF,
        Request::ConsistencyProof { .. } => kind::CONSISTENCY_PROOF,
        Request::SetSchema(_) => kind::SET_SCHEMA,
    };
    let at = crate::frame::begin_frame(out, k, request_id);
    match req {
        Request::Auth { key } => wire::put_bytes16(out, key.as_bytes()),
        Request::Append { events } => {
            wire::put_u16(
                out,
                u16::try_from(events.len()).expect("more than 65535 events"),
            );
            for e in events {
                wire::put_bytes32(out, e);
            }
        }
        Request::Query(q) => {
            out.push(
                u8::from(q.want_total) | u8::from(q.descending) << 1 | u8::from(q.has_keys()) << 2,
            );
            out.push(match q.time_field {
                TimeField::None => 0,
                TimeField::CreatedAt => 1,
                TimeField::OccurredAt => 2,
            });
            wire::put_u64(out, q.from);
            wire::put_u64(out, q.to);
            for s in [
                &q.tenant_id,
                &q.actor_id,
                &q.action,
                &q.resource,
                &q.resource_id,
            ] {
                wire::put_bytes16(out, s.as_bytes());
            }
            wire::put_u16(out, q.limit);
            wire::put_bytes16(out, &q.cursor);
            if q.has_keys() {
                for s in [&q.idempotency_key, &q.source_event_id, &q.correlation_id] {
                    wire::put_bytes16(out, s.as_bytes());
                }
            }
        }
        Request::Read { from, to, limit } => {
            wire::put_u64(out, *from);
            wire::put_u64(out, *to);
            wire::put_u16(out, *limit);
        }
        Request::Tail { from } => wire::put_u64(out, *from),
        Request::Cancel { request_id } => wire::put_u32(out, *request_id),
        Request::Stats
        | Request::UnknownActions
        | Request::ListKeys
        | Request::GetSchema
        | Request::Checkpoint => {}
        Request::Ping(v) => wire::put_u64(out, *v),
        Request::InclusionProof { seq, size } => {
            wire::put_u64(out, *seq);
            wire::put_u64(out, *size);
        }
        Request::ConsistencyProof { old, new } => {
            wire::put_u64(out, *old);
            wire::put_u64(out, *new);
        }
        Request::CreateKey {
            id,
            rights,
            tenants,
        } => {
            wire::put_bytes16(out, id.as_bytes());
            out.push(*rights);
            put_strings16(out, tenants);
        }
        Request::RevokeKey { id } => wire::put_bytes16(out, id.as_bytes()),
        Request::SetSchema(spec) => put_schema(out, spec),
    }
    crate::frame::finish_frame(out, at);
}

/// Decodes a request body of frame type `k`.
pub fn decode_request(k: u8, body: &[u8]) -> Result<Request<'_>, DecodeError> {
    let mut r = Reader::new(body);
    let req = match k {
        kind::AUTH => Request::Auth {
            key: r.str16("key")?.to_owned(),
        },
        kind::APPEND => {
            let n = r.u16("event count")? as usize;
            // Each event takes at least its 4-byte length: a count the body
            // cannot hold is refused before the vector is sized by it.
            if n > r.remaining() / 4 {
                return Err(DecodeError::Invalid {
                    what: "event count",
                    why: format!("{n} events cannot fit in {} bytes", r.remaining()),
                });
            }
            let mut events = Vec::with_capacity(n);
            for _ in 0..n {
                events.push(r.bytes32("event")?);
            }
            Request::Append { events }
        }
        kind::QUERY => {
            let flags = r.u8("flags")?;
            if flags & !7 != 0 {
                return Err(DecodeError::Invalid {
                    what: "flags",
                    why: format!("unknown query flag bits {flags:#04x}"),
                });
            }
            let time_field = match r.u8("time field")? {
                0 => TimeField::None,
                1 => TimeField::CreatedAt,
                2 => TimeField::OccurredAt,
                n => {
                    return Err(DecodeError::Invalid {
                        what: "time field",
                        why: format!("{n} is not 0 (none), 1 (created_at) or 2 (occurred_at)"),
                    })
                }
            };
            let from = r.u64("from")?;
            let to = r.u64("to")?;
            let mut s = [""; 5];
            for (slot, name) in
                s.iter_mut()
                    .zip(["tenant_id", "actor_id", "action", "resource", "resource_id"])
            {
                *slot = r.str16(name)?;
            }
            let limit = r.u16("limit")?;
            let cursor = r.bytes16("cursor")?.to_vec();
            let mut keys = [""; 3];
            if flags & 4 != 0 {
                for (slot, name) in
                    keys.iter_mut()
                        .zip(["idempotency_key", "source_event_id", "correlation_id"])
                {
                    *slot = r.str16(name)?;
                }
            }
            Request::Query(Query {
                tenant_id: s[0].into(),
                actor_id: s[1].into(),
                action: s[2].into(),
                resource: s[3].into(),
                resource_id: s[4].into(),
                time_field,
                from,
                to,
                limit,
                cursor,
                want_total: flags & 1 != 0,
                descending: flags & 2 != 0,
                idempotency_key: keys[0].into(),
                source_event_id: keys[1].into(),
                correlation_id: keys[2].into(),
            })
        }
        kind::READ => Request::Read {
            from: r.u64("from")?,
            to: r.u64("to")?,
            limit: r.u16("limit")?,
        },
        kind::TAIL => Request::Tail {
            from: r.u64("from")?,
        },
        kind::CANCEL => Request::Cancel {
            request_id: r.u32("request id")?,
        },
        kind::STATS => Request::Stats,
        kind::PING => Request::Ping(r.u64("ping value")?),
        kind::UNKNOWN_ACTIONS => Request::UnknownActions,
        kind::LIST_KEYS => Request::ListKeys,
        kind::CREATE_KEY => Request::CreateKey {
            id: r.str16("key id")?.to_owned(),
            rights: r.u8("rights")?,
            tenants: strings16(&mut r, "tenant")?,
        },
        kind::REVOKE_KEY => Request::RevokeKey {
            id: r.str16("key id")?.to_owned(),
        },
        kind::GET_SCHEMA => Request::GetSchema,
        kind::CHECKPOINT => Request::Checkpoint,
        kind::INCLUSION_PROOF => Request::InclusionProof {
            seq: r.u64("seq")?,
            size: r.u64("tree size")?,
        },
        kind::CONSISTENCY_PROOF => Request::ConsistencyProof {
            old: r.u64("old tree size")?,
            new: r.u64("new tree size")?,
        },
        kind::SET_SCHEMA => Request::SetSchema(schema(&mut r)?),
        k => {
            return Err(DecodeError::Invalid {
                what: "frame type",
                why: format!("{k:#04x} is not a request"),
            })
        }
    };
    r.finish()?;
    Ok(req)
}

/// The receipt for one appended event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendReceipt {
    /// The event's seq.
    pub seq: u64,
    /// When the server wrote it.
    pub created_at: u64,
    /// Its chain hash.
    pub hash: [u8; 32],
    /// True if the event was not stored because its idempotency key or
    /// source event id was already stored: the receipt is the original's.
    pub duplicate: bool,
}

/// The log's head and counters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogStats {
    /// The log's name.
    pub log: String,
    /// The seq the next event gets (the number of events stored).
    pub next_seq: u64,
    /// The newest event's hash (zeros when empty).
    pub head_hash: [u8; 32],
    /// The newest event's `created_at` (0 when empty).
    pub head_created_at: u64,
    /// Events acknowledged since the server started.
    pub appends: u64,
    /// `fdatasync` calls that acknowledged them.
    pub syncs: u64,
    /// Segments in the log.
    pub segments: u64,
    /// Stored events whose action the schema does not list.
    pub unknown_actions: u64,
    /// The ingests that append to this log (`[[ingest.nats]]`), in config
    /// order; empty from a server without them.
    pub ingests: Vec<IngestStats>,
}

/// One action in an `ACTIONS` answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ActionSeen {
    /// The action.
    pub action: String,
    /// Stored events with it.
    pub count: u64,
    /// The `created_at` of the first of them (0 from a server that does
    /// not send times).
    pub first_seen: u64,
    /// The `created_at` of the last of them (0 likewise).
    pub last_seen: u64,
}

/// One ingest's state and counters, as STATS_OK carries them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IngestStats {
    /// Its name.
    pub name: String,
    /// `connecting`, `consuming` or `stopped`.
    pub state: String,
    /// The last connection error, or why it stopped; empty if none.
    pub detail: String,
    /// Messages delivered to it, redeliveries included.
    pub received: u64,
    /// Messages stored as new events.
    pub stored: u64,
    /// Messages recognised as events already stored.
    pub duplicates: u64,
    /// Messages dead-lettered.
    pub dead_lettered: u64,
    /// Messages delivered more than once.
    pub redelivered: u64,
    /// Messages left in the consumer at the last delivery.
    pub pending: u64,
    /// When the last acknowledgement was confirmed, in milliseconds since
    /// 1970; 0 for never.
    pub last_ack_ms: u64,
}

/// A page of events, and where the next page starts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventPage {
    /// The events, in seq order.
    pub events: Vec<StoredEvent>,
    /// Where the next page starts; `None` when there is no more. For a
    /// query, pass it back as the query's cursor; for a read, it is the
    /// next `from` (8 bytes, little-endian).
    pub cursor: Option<Vec<u8>>,
    /// Every match, when the query asked for the total.
    pub total: Option<u64>,
}

/// An error frame's content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}{}", code.name(), index.map(|i| format!(" (event {i}, field {field})")).unwrap_or_default())]
pub struct ErrorReply {
    /// What kind of error.
    pub code: ErrorCode,
    /// For an invalid event, its index in the batch.
    pub index: Option<u32>,
    /// For an invalid event, the field at fault.
    pub field: String,
    /// What went wrong, for a person.
    pub message: String,
}

impl ErrorReply {
    /// An error without an event index.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorReply {
            code,
            index: None,
            field: String::new(),
            message: message.into(),
        }
    }
}

/// A response, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// Authenticated: the key's log, rights and tenants (empty = all).
    AuthOk {
        /// The log the key names.
        log: String,
        /// [`rights`] bits.
        rights: u8,
        /// Tenants the key may write and read; empty for every tenant.
        tenants: Vec<String>,
    },
    /// One receipt per appended event, in order.
    Receipts(Vec<AppendReceipt>),
    /// A page of a query or read.
    Events(EventPage),
    /// Events pushed for a tail.
    TailEvents(Vec<StoredEvent>),
    /// Head and counters.
    Stats(LogStats),
    /// The ping's value.
    Pong(u64),
    /// Unknown actions (every action, for a log with no schema patterns):
    /// how many stored events carry each, and when they were stored.
    Actions(Vec<ActionSeen>),
    /// A cancel took effect (sent for the cancel and for the tail); a key
    /// was revoked; a schema was set.
    Done,
    /// The log's keys, by id.
    Keys(Vec<KeyInfo>),
    /// A key was created: its text, sent this once.
    KeyCreated {
        /// The key's id.
        id: String,
        /// The key's text, to give to its user; the server keeps only its
        /// hash.
        key: String,
    },
    /// The log's schema.
    Schema(SchemaInfo),
    /// A signed checkpoint: a C2SP tlog-checkpoint signed note, and the
    /// C2SP verifier key (`name+keyid+base64`) that verifies it.
    Checkpoint {
        /// The note's text, signature lines included.
        note: String,
        /// The log's verifier key. Check it against one obtained out of
        /// band: a server can sign with any key it likes.
        verifier_key: String,
    },
    /// An inclusion proof, to check against a signed checkpoint of the
    /// size asked for (RFC 9162 section 2.1.3.2, leaf data the chain hash).
    Inclusion {
        /// The record's chain hash: the leaf's data.
        chain_hash: [u8; 32],
        /// The proof, lowest sibling first.
        hashes: Vec<[u8; 32]>,
    },
    /// A consistency proof, to check against two signed checkpoints'
    /// roots (RFC 9162 section 2.1.4.2); empty when the sizes are equal.
    Consistency {
        /// The proof.
        hashes: Vec<[u8; 32]>,
    },
    /// A typed error.
    Error(ErrorReply),
}

/// Appends one stored event as response bodies carry it: seq, created_at,
/// hash, then the event's encoding with a u32 length.
pub fn put_stored_event(
    out: &mut Vec<u8>,
    seq: u64,
    created_at: u64,
    hash: &[u8; 32],
    event: &[u8],
) {
    wire::put_u64(out, seq);
    wire::put_u64(out, created_at);
    out.extend_from_slice(hash);
    wire::put_bytes32(out, event);
}

/// Bytes [`put_stored_event`] appends for an event of `len` bytes.
pub const fn stored_event_len(len: usize) -> usize {
    8 + 8 + 32 + 4 + len
}

/// Appends a complete response frame to `out`.
pub fn encode_response(out: &mut Vec<u8>, request_id: u32, resp: &Response) {
    let k = match resp {
        Response::AuthOk { .. } => kind::AUTH_OK,
        Response::Receipts(_) => kind::RECEIPTS,
        Response::Events(_) => kind::EVENTS,
        Response::TailEvents(_) => kind::TAIL_EVENTS,
        Response::Stats(_) => kind::STATS_OK,
        Response::Pong(_) => kind::PONG,
        Response::Actions(_) => kind::ACTIONS,
        Response::Done => kind::DONE,
        Response::Keys(_) => kind::KEYS,
        Response::KeyCreated { .. } => kind::KEY_CREATED,
        Response::Schema(_) => kind::SCHEMA,
        Response::Checkpoint { .. } => kind::CHECKPOINT_OK,
        Response::Inclusion { .. } => kind::INCLUSION,
        Response::Consistency { .. } => kind::CONSISTENCY,
        Response::Error(_) => kind::ERROR,
    };
    let at = crate::frame::begin_frame(out, k, request_id);
    let put_events = |out: &mut Vec<u8>, events: &[StoredEvent]| {
        wire::put_u16(out, u16::try_from(events.len()).expect("page over 65535"));
        for e in events {
            put_stored_event(out, e.seq, e.created_at, &e.hash, &e.event.encode());
        }
    };
    match resp {
        Response::AuthOk {
            log,
            rights,
            tenants,
        } => {
            wire::put_bytes16(out, log.as_bytes());
            out.push(*rights);
            wire::put_u16(
                out,
                u16::try_from(tenants.len()).expect("tenants over 65535"),
            );
            for t in tenants {
                wire::put_bytes16(out, t.as_bytes());
            }
        }
        Response::Receipts(rs) => encode_receipts(out, rs),
        Response::Events(page) => {
            put_events(out, &page.events);
            put_page_tail(out, page.cursor.as_deref(), page.total);
        }
        Response::TailEvents(events) => put_events(out, events),
        Response::Stats(s) => {
            wire::put_bytes16(out, s.log.as_bytes());
            wire::put_u64(out, s.next_seq);
            out.extend_from_slice(&s.head_hash);
            for v in [
                s.head_created_at,
                s.appends,
                s.syncs,
                s.segments,
                s.unknown_actions,
            ] {
                wire::put_u64(out, v);
            }
            if !s.ingests.is_empty() {
                wire::put_u16(out, s.ingests.len().min(u16::MAX as usize) as u16);
                for i in s.ingests.iter().take(u16::MAX as usize) {
                    wire::put_bytes16(out, i.name.as_bytes());
                    wire::put_bytes16(out, i.state.as_bytes());
                    let mut end = i.detail.len().min(1024);
                    while !i.detail.is_char_boundary(end) {
                        end -= 1;
                    }
                    wire::put_bytes16(out, &i.detail.as_bytes()[..end]);
                    for v in [
                        i.received,
                        i.stored,
                        i.duplicates,
                        i.dead_lettered,
                        i.redelivered,
                        i.pending,
                        i.last_ack_ms,
                    ] {
                        wire::put_u64(out, v);
                    }
                }
            }
        }
        Response::Pong(v) => wire::put_u64(out, *v),
        Response::Actions(list) => {
            wire::put_u32(out, u32::try_from(list.len()).expect("actions over 4G"));
            for a in list {
                wire::put_bytes16(out, a.action.as_bytes());
                wire::put_u64(out, a.count);
            }
            // Then, in the same order, when each was first and last stored.
            for a in list {
                wire::put_u64(out, a.first_seen);
                wire::put_u64(out, a.last_seen);
            }
        }
        Response::Done => {}
        Response::Keys(keys) => {
            wire::put_u32(out, u32::try_from(keys.len()).expect("keys over 4G"));
            for k in keys {
                wire::put_bytes16(out, k.id.as_bytes());
                out.push(origin_byte(k.origin));
                out.push(k.rights);
                put_strings16(out, &k.tenants);
            }
        }
        Response::KeyCreated { id, key } => {
            wire::put_bytes16(out, id.as_bytes());
            wire::put_bytes16(out, key.as_bytes());
        }
        Response::Schema(info) => {
            out.push(origin_byte(info.origin));
            put_schema(out, &info.spec);
        }
        Response::Checkpoint { note, verifier_key } => {
            wire::put_bytes16(out, note.as_bytes());
            wire::put_bytes16(out, verifier_key.as_bytes());
        }
        Response::Inclusion { chain_hash, hashes } => {
            out.extend_from_slice(chain_hash);
            put_hashes(out, hashes);
        }
        Response::Consistency { hashes } => put_hashes(out, hashes),
        Response::Error(e) => encode_error_body(out, e),
    }
    crate::frame::finish_frame(out, at);
}

/// A receipts body.
pub fn encode_receipts(out: &mut Vec<u8>, rs: &[AppendReceipt]) {
    wire::put_u16(out, u16::try_from(rs.len()).expect("receipts over 65535"));
    for r in rs {
        out.push(u8::from(r.duplicate));
        wire::put_u64(out, r.seq);
        wire::put_u64(out, r.created_at);
        out.extend_from_slice(&r.hash);
    }
}

/// The end of an events page body: the cursor (u8 present + bytes16) and
/// the total (u8 present + u64).
pub fn put_page_tail(out: &mut Vec<u8>, cursor: Option<&[u8]>, total: Option<u64>) {
    match cursor {
        Some(c) => {
            out.push(1);
            wire::put_bytes16(out, c);
        }
        None => out.push(0),
    }
    match total {
        Some(t) => {
            out.push(1);
            wire::put_u64(out, t);
        }
        None => out.push(0),
    }
}

/// An error body. Messages longer than 4 KiB are cut (at a character
/// boundary).
pub fn encode_error_body(out: &mut Vec<u8>, e: &ErrorReply) {
    wire::put_u16(out, e.code.to_u16());
    wire::put_u32(out, e.index.unwrap_or(u32::MAX));
    wire::put_bytes16(out, cut(&e.field, 256).as_bytes());
    wire::put_bytes16(out, cut(&e.message, 4096).as_bytes());
}

fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn decode_events(r: &mut Reader<'_>) -> Result<Vec<StoredEvent>, DecodeError> {
    let n = r.u16("event count")? as usize;
    let mut events = Vec::with_capacity(n.min(r.remaining() / stored_event_len(0)));
    for _ in 0..n {
        let seq = r.u64("seq")?;
        let created_at = r.u64("created_at")?;
        let hash = r.hash("hash")?;
        let event = Event::decode(r.bytes32("event")?)?;
        events.push(StoredEvent {
            seq,
            created_at,
            hash,
            event,
        });
    }
    Ok(events)
}

/// A `u16` count, then that many 32-byte hashes.
fn put_hashes(out: &mut Vec<u8>, hashes: &[[u8; 32]]) {
    assert!(
        hashes.len() <= MAX_PROOF_HASHES,
        "a proof over {MAX_PROOF_HASHES} hashes"
    );
    wire::put_u16(out, hashes.len() as u16);
    for h in hashes {
        out.extend_from_slice(h);
    }
}

fn hashes(r: &mut Reader<'_>) -> Result<Vec<[u8; 32]>, DecodeError> {
    let n = r.u16("hash count")? as usize;
    if n > MAX_PROOF_HASHES {
        return Err(DecodeError::Invalid {
            what: "hash count",
            why: format!("{n} is over {MAX_PROOF_HASHES}"),
        });
    }
    (0..n).map(|_| r.hash("proof hash")).collect()
}

/// A `u16` count, then that many `str16`.
fn put_strings16(out: &mut Vec<u8>, list: &[String]) {
    wire::put_u16(out, u16::try_from(list.len()).expect("list over 65535"));
    for s in list {
        wire::put_bytes16(out, s.as_bytes());
    }
}

fn strings16(r: &mut Reader<'_>, what: &'static str) -> Result<Vec<String>, DecodeError> {
    let n = r.u16(what)? as usize;
    // Each string takes at least its 2-byte length.
    let mut list = Vec::with_capacity(n.min(r.remaining() / 2));
    for _ in 0..n {
        list.push(r.str16(what)?.to_owned());
    }
    Ok(list)
}

fn put_schema(out: &mut Vec<u8>, spec: &SchemaSpec) {
    out.push(match spec.mode {
        SchemaMode::Permissive => 0,
        SchemaMode::Strict => 1,
    });
    put_strings16(out, &spec.actions);
}

fn schema(r: &mut Reader<'_>) -> Result<SchemaSpec, DecodeError> {
    let mode = match r.u8("schema mode")? {
        0 => SchemaMode::Permissive,
        1 => SchemaMode::Strict,
        n => {
            return Err(DecodeError::Invalid {
                what: "schema mode",
                why: format!("{n} is not 0 (permissive) or 1 (strict)"),
            })
        }
    };
    Ok(SchemaSpec {
        mode,
        actions: strings16(r, "action pattern")?,
    })
}

fn origin_byte(o: Origin) -> u8 {
    match o {
        Origin::Config => 0,
        Origin::Runtime => 1,
    }
}

fn origin(r: &mut Reader<'_>) -> Result<Origin, DecodeError> {
    match r.u8("origin")? {
        0 => Ok(Origin::Config),
        1 => Ok(Origin::Runtime),
        n => Err(DecodeError::Invalid {
            what: "origin",
            why: format!("{n} is not 0 (config) or 1 (runtime)"),
        }),
    }
}

fn flag(r: &mut Reader<'_>, what: &'static str) -> Result<bool, DecodeError> {
    match r.u8(what)? {
        0 => Ok(false),
        1 => Ok(true),
        n => Err(DecodeError::Invalid {
            what,
            why: format!("{n} is not 0 or 1"),
        }),
    }
}

/// Decodes a response body of frame type `k`.
pub fn decode_response(k: u8, body: &[u8]) -> Result<Response, DecodeError> {
    let mut r = Reader::new(body);
    let resp = match k {
        kind::AUTH_OK => {
            let log = r.str16("log")?.to_owned();
            let rights = r.u8("rights")?;
            let n = r.u16("tenant count")?;
            let mut tenants = Vec::new();
            for _ in 0..n {
                tenants.push(r.str16("tenant")?.to_owned());
            }
            Response::AuthOk {
                log,
                rights,
                tenants,
            }
        }
        kind::RECEIPTS => {
            let n = r.u16("receipt count")? as usize;
            let mut rs = Vec::with_capacity(n.min(r.remaining() / 49));
            for _ in 0..n {
                let duplicate = flag(&mut r, "duplicate")?;
                rs.push(AppendReceipt {
                    duplicate,
                    seq: r.u64("seq")?,
                    created_at: r.u64("created_at")?,
                    hash: r.hash("hash")?,
                });
            }
            Response::Receipts(rs)
        }
        kind::EVENTS => {
            let events = decode_events(&mut r)?;
            let cursor = if flag(&mut r, "has cursor")? {
                Some(r.bytes16("cursor")?.to_vec())
            } else {
                None
            };
            let total = if flag(&mut r, "has total")? {
                Some(r.u64("total")?)
            } else {
                None
            };
            Response::Events(EventPage {
                events,
                cursor,
                total,
            })
        }
        kind::TAIL_EVENTS => Response::TailEvents(decode_events(&mut r)?),
        kind::STATS_OK => Response::Stats(LogStats {
            log: r.str16("log")?.to_owned(),
            next_seq: r.u64("next seq")?,
            head_hash: r.hash("head hash")?,
            head_created_at: r.u64("head created_at")?,
            appends: r.u64("appends")?,
            syncs: r.u64("syncs")?,
            segments: r.u64("segments")?,
            unknown_actions: r.u64("unknown actions")?,
            // A server from before ingests sends nothing more.
            ingests: if r.remaining() == 0 {
                Vec::new()
            } else {
                let n = r.u16("ingest count")? as usize;
                let mut list = Vec::with_capacity(n.min(r.remaining() / 62));
                for _ in 0..n {
                    list.push(IngestStats {
                        name: r.str16("ingest name")?.to_owned(),
                        state: r.str16("ingest state")?.to_owned(),
                        detail: r.str16("ingest detail")?.to_owned(),
                        received: r.u64("received")?,
                        stored: r.u64("stored")?,
                        duplicates: r.u64("duplicates")?,
                        dead_lettered: r.u64("dead lettered")?,
                        redelivered: r.u64("redelivered")?,
                        pending: r.u64("pending")?,
                        last_ack_ms: r.u64("last ack")?,
                    });
                }
                list
            },
        }),
        kind::PONG => Response::Pong(r.u64("ping value")?),
        kind::ACTIONS => {
            let n = r.u32("action count")? as usize;
            let mut list = Vec::with_capacity(n.min(r.remaining() / 10));
            for _ in 0..n {
                list.push(ActionSeen {
                    action: r.str16("action")?.to_owned(),
                    count: r.u64("count")?,
                    ..ActionSeen::default()
                });
            }
            // A server from before the times sends nothing more.
            if r.remaining() > 0 {
                for a in &mut list {
                    a.first_seen = r.u64("first seen")?;
                    a.last_seen = r.u64("last seen")?;
                }
            }
            Response::Actions(list)
        }
        kind::DONE => Response::Done,
        kind::KEYS => {
            let n = r.u32("key count")? as usize;
            // An entry is at least 6 bytes: empty id, origin, rights, count.
            let mut keys = Vec::with_capacity(n.min(r.remaining() / 6));
            for _ in 0..n {
                keys.push(KeyInfo {
                    id: r.str16("key id")?.to_owned(),
                    origin: origin(&mut r)?,
                    rights: r.u8("rights")?,
                    tenants: strings16(&mut r, "tenant")?,
                });
            }
            Response::Keys(keys)
        }
        kind::KEY_CREATED => Response::KeyCreated {
            id: r.str16("key id")?.to_owned(),
            key: r.str16("key")?.to_owned(),
        },
        kind::CHECKPOINT_OK => Response::Checkpoint {
            note: r.str16("note")?.to_owned(),
            verifier_key: r.str16("verifier key")?.to_owned(),
        },
        kind::INCLUSION => Response::Inclusion {
            chain_hash: r.hash("chain hash")?,
            hashes: hashes(&mut r)?,
        },
        kind::CONSISTENCY => Response::Consistency {
            hashes: hashes(&mut r)?,
        },
        kind::SCHEMA => {
            let origin = origin(&mut r)?;
            Response::Schema(SchemaInfo {
                origin,
                spec: schema(&mut r)?,
            })
        }
        kind::ERROR => {
            let code = ErrorCode::from_u16(r.u16("code")?);
            let index = r.u32("index")?;
            Response::Error(ErrorReply {
                code,
                index: (index != u32::MAX).then_some(index),
                field: r.str16("field")?.to_owned(),
                message: r.str16("message")?.to_owned(),
            })
        }
        k => {
            return Err(DecodeError::Invalid {
                what: "frame type",
                why: format!("{k:#04x} is not a response"),
            })
        }
    };
    r.finish()?;
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(frame: &[u8]) -> (u8, &[u8]) {
        let (h, body) = frame.split_at(crate::frame::FRAME_HEADER_LEN);
        (h[4], body)
    }

    #[test]
    fn proof_requests_and_responses_round_trip() {
        for req in [
            Request::InclusionProof { seq: 5, size: 9 },
            Request::ConsistencyProof {
                old: 1,
                new: u64::MAX,
            },
        ] {
            let mut out = Vec::new();
            encode_request(&mut out, 3, &req);
            let (k, b) = body(&out);
            assert_eq!(b.len(), 16);
            assert_eq!(decode_request(k, b).expect("decodes"), req);
        }
        let most: Vec<[u8; 32]> = (0..MAX_PROOF_HASHES as u8).map(|i| [i; 32]).collect();
        for resp in [
            Response::Inclusion {
                chain_hash: [9; 32],
                hashes: vec![],
            },
            Response::Inclusion {
                chain_hash: [9; 32],
                hashes: most.clone(),
            },
            Response::Consistency { hashes: most },
        ] {
            let mut out = Vec::new();
            encode_response(&mut out, 3, &resp);
            let (k, b) = body(&out);
            assert_eq!(decode_response(k, b).expect("decodes"), resp);
        }
    }

    #[test]
    fn stats_round_trip_with_and_without_ingests() {
        let plain = LogStats {
            log: "default".into(),
            next_seq: 7,
            head_hash: [1; 32],
            head_created_at: 9,
            appends: 7,
            syncs: 3,
            segments: 1,
            unknown_actions: 2,
            ingests: vec![],
        };
        let with = LogStats {
            ingests: vec![IngestStats {
                name: "identity".into(),
                state: "consuming".into(),
                detail: "é".repeat(600),
                received: 10,
                stored: 6,
                duplicates: 3,
                dead_lettered: 1,
                redelivered: 2,
                pending: 5,
                last_ack_ms: 1_700_000_000_000,
            }],
            ..plain.clone()
        };
        let mut out = Vec::new();
        encode_response(&mut out, 1, &Response::Stats(plain.clone()));
        let (k, b) = body(&out);
        // Without ingests, the body is what servers before them sent.
        assert_eq!(b.len(), 2 + 7 + 8 + 32 + 5 * 8);
        assert_eq!(
            decode_response(k, b).expect("decodes"),
            Response::Stats(plain)
        );
        let mut out = Vec::new();
        encode_response(&mut out, 1, &Response::Stats(with.clone()));
        let (k, b) = body(&out);
        let Response::Stats(got) = decode_response(k, b).expect("decodes") else {
            panic!("not stats");
        };
        // The detail is cut at 1,024 bytes, on a character boundary.
        assert_eq!(got.ingests[0].detail, "é".repeat(512));
        let mut expected = with;
        expected.ingests[0].detail = "é".repeat(512);
        assert_eq!(got, expected);
        // Cut short inside the ingests: refused.
        assert!(decode_response(k, &b[..b.len() - 3]).is_err());
    }

    #[test]
    fn proof_bodies_over_the_bound_or_cut_short_are_refused() {
        // 129 hashes claimed: refused before any is read.
        let mut b = vec![0u8; 32];
        b.extend_from_slice(&129u16.to_le_bytes());
        assert_eq!(
            decode_response(kind::INCLUSION, &b),
            Err(DecodeError::Invalid {
                what: "hash count",
                why: "129 is over 128".into(),
            })
        );
        // Two claimed, one and a half present.
        let mut b = 2u16.to_le_bytes().to_vec();
        b.extend_from_slice(&[1; 48]);
        assert!(matches!(
            decode_response(kind::CONSISTENCY, &b),
            Err(DecodeError::Truncated {
                what: "proof hash",
                ..
            })
        ));
        // A request one byte short, and one with a byte left over.
        assert!(matches!(
            decode_request(kind::INCLUSION_PROOF, &[0; 15]),
            Err(DecodeError::Truncated {
                what: "tree size",
                ..
            })
        ));
        assert!(matches!(
            decode_request(kind::CONSISTENCY_PROOF, &[0; 17]),
            Err(DecodeError::Trailing(1))
        ));
    }
}
