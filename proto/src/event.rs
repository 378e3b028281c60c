//! The audit event: its fields, its versioned binary encoding, and its
//! validation.
//!
//! The encoding (version 1, specified in `docs/protocol.md`) is both the
//! payload of every stored record and the form in which clients send
//! events, so the server validates what it received and stores it without
//! a second format. An empty string means "absent" for every text field.
//!
//! ```text
//! u8      version (1)
//! u8      flags: bit 0 = backfilled; other bits must be 0
//! u64 LE  occurred_at, nanoseconds since the Unix epoch (0 = unset; the
//!         server stores its receive time instead)
//! 9 × (u16 LE length, UTF-8 bytes): tenant_id, actor_id, actor_name, action,
//!         resource, resource_id, idempotency_key, source_event_id,
//!         correlation_id
//! u32 LE length, UTF-8 bytes: metadata, a JSON object (empty = none)
//! ```

use std::time::Duration;

use crate::json::{self, JsonErrorKind};
use crate::wire::{self, DecodeError, Reader};

/// The version byte of the encoding this crate writes.
pub const EVENT_VERSION: u8 = 1;
/// Flag bit: the event was imported from an older system.
pub const FLAG_BACKFILLED: u8 = 1;
/// Bytes before the first text field.
pub const FIXED_LEN: usize = 10;

/// An audit event as a client submits it (the server adds `seq`,
/// `created_at` and `hash`; see [`StoredEvent`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    /// The tenant the event belongs to (required unless the log is
    /// single-tenant; filled in by the server when the key allows exactly
    /// one tenant).
    pub tenant_id: String,
    /// Who did it (required).
    pub actor_id: String,
    /// The actor's display name.
    pub actor_name: String,
    /// What was done, e.g. `document.deleted` (required).
    pub action: String,
    /// The type of thing it was done to (required).
    pub resource: String,
    /// Which one.
    pub resource_id: String,
    /// A JSON object, as text; empty for none.
    pub metadata: String,
    /// When it happened, by the client's clock, in nanoseconds since the
    /// Unix epoch; 0 lets the server use its receive time.
    pub occurred_at: u64,
    /// The client's retry key: a second event with the same key (per
    /// tenant) within the log's dedup window is not stored again.
    pub idempotency_key: String,
    /// The event's id in the system it came from; deduplicated like
    /// `idempotency_key`.
    pub source_event_id: String,
    /// Ties related events together.
    pub correlation_id: String,
    /// Imported from an older system (its `occurred_at` is historical).
    pub backfilled: bool,
}

/// An event decoded in place: the same fields, borrowed from the bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventRef<'a> {
    /// See [`Event::tenant_id`].
    pub tenant_id: &'a str,
    /// See [`Event::actor_id`].
    pub actor_id: &'a str,
    /// See [`Event::actor_name`].
    pub actor_name: &'a str,
    /// See [`Event::action`].
    pub action: &'a str,
    /// See [`Event::resource`].
    pub resource: &'a str,
    /// See [`Event::resource_id`].
    pub resource_id: &'a str,
    /// See [`Event::metadata`].
    pub metadata: &'a str,
    /// See [`Event::occurred_at`].
    pub occurred_at: u64,
    /// See [`Event::idempotency_key`].
    pub idempotency_key: &'a str,
    /// See [`Event::source_event_id`].
    pub source_event_id: &'a str,
    /// See [`Event::correlation_id`].
    pub correlation_id: &'a str,
    /// See [`Event::backfilled`].
    pub backfilled: bool,
}

/// The text fields' names, in encoding order.
pub const TEXT_FIELDS: [&str; 9] = [
    "tenant_id",
    "actor_id",
    "actor_name",
    "action",
    "resource",
    "resource_id",
    "idempotency_key",
    "source_event_id",
    "correlation_id",
];

impl<'a> EventRef<'a> {
    /// The text fields, in the order of [`TEXT_FIELDS`].
    pub fn texts(&self) -> [&'a str; 9] {
        [
            self.tenant_id,
            self.actor_id,
            self.actor_name,
            self.action,
            self.resource,
            self.resource_id,
            self.idempotency_key,
            self.source_event_id,
            self.correlation_id,
        ]
    }

    /// Decodes one event occupying all of `b`.
    pub fn decode(b: &'a [u8]) -> Result<EventRef<'a>, DecodeError> {
        let mut r = Reader::new(b);
        let version = r.u8("version")?;
        if version != EVENT_VERSION {
            return Err(DecodeError::Invalid {
                what: "version",
                why: format!(
                    "event encoding version {version} is not supported (expected {EVENT_VERSION})"
                ),
            });
        }
        let flags = r.u8("flags")?;
        if flags & !FLAG_BACKFILLED != 0 {
            return Err(DecodeError::Invalid {
                what: "flags",
                why: format!("unknown flag bits {flags:#04x}"),
            });
        }
        let occurred_at = r.u64("occurred_at")?;
        let mut t = [""; 9];
        for (slot, name) in t.iter_mut().zip(TEXT_FIELDS) {
            *slot = r.str16(name)?;
        }
        let metadata = std::str::from_utf8(r.bytes32("metadata")?)
            .map_err(|_| DecodeError::NotUtf8("metadata"))?;
        r.finish()?;
        Ok(EventRef {
            tenant_id: t[0],
            actor_id: t[1],
            actor_name: t[2],
            action: t[3],
            resource: t[4],
            resource_id: t[5],
            idempotency_key: t[6],
            source_event_id: t[7],
            correlation_id: t[8],
            metadata,
            occurred_at,
            backfilled: flags & FLAG_BACKFILLED != 0,
        })
    }

    /// Bytes [`encode`](Self::encode) appends.
    pub fn encoded_len(&self) -> usize {
        FIXED_LEN
            + 9 * 2
            + self.texts().iter().map(|s| s.len()).sum::<usize>()
            + 4
            + self.metadata.len()
    }

    /// Appends the encoding. Text fields longer than 65,535 bytes are a
    /// caller bug ([`validate`](Self::validate) bounds them far lower).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        out.push(EVENT_VERSION);
        out.push(if self.backfilled { FLAG_BACKFILLED } else { 0 });
        wire::put_u64(out, self.occurred_at);
        for s in self.texts() {
            wire::put_bytes16(out, s.as_bytes());
        }
        wire::put_bytes32(out, self.metadata.as_bytes());
    }

    /// The owned copy.
    pub fn to_event(&self) -> Event {
        Event {
            tenant_id: self.tenant_id.into(),
            actor_id: self.actor_id.into(),
            actor_name: self.actor_name.into(),
            action: self.action.into(),
            resource: self.resource.into(),
            resource_id: self.resource_id.into(),
            metadata: self.metadata.into(),
            occurred_at: self.occurred_at,
            idempotency_key: self.idempotency_key.into(),
            source_event_id: self.source_event_id.into(),
            correlation_id: self.correlation_id.into(),
            backfilled: self.backfilled,
        }
    }

    /// Checks the event against `limits`: required fields, sizes, text
    /// without control characters, metadata a JSON object, `occurred_at`
    /// not unset and not further in the future than the allowed skew.
    /// `now` is the server's time in nanoseconds.
    pub fn validate(&self, limits: &Limits, now: u64) -> Result<(), EventError> {
        let mut required = vec![
            ("actor_id", self.actor_id),
            ("action", self.action),
            ("resource", self.resource),
        ];
        if limits.tenant_required {
            required.push(("tenant_id", self.tenant_id));
        }
        for (field, v) in required {
            if v.is_empty() {
                return Err(EventError::new(field, "is required"));
            }
        }
        for (field, v) in TEXT_FIELDS.into_iter().zip(self.texts()) {
            if v.len() > limits.max_field_bytes {
                return Err(EventError::new(
                    field,
                    format!(
                        "is {} bytes, more than the limit of {}",
                        v.len(),
                        limits.max_field_bytes
                    ),
                ));
            }
            if let Some(c) = v.chars().find(|c| c.is_control()) {
                return Err(EventError::new(
                    field,
                    format!("contains the control character U+{:04X}", c as u32),
                ));
            }
        }
        if self.action.chars().any(char::is_whitespace) {
            return Err(EventError::new("action", "contains whitespace"));
        }
        if self.metadata.len() > limits.max_metadata_bytes {
            return Err(EventError::new(
                "metadata",
                format!(
                    "is {} bytes, more than the limit of {}",
                    self.metadata.len(),
                    limits.max_metadata_bytes
                ),
            ));
        }
        if !self.metadata.is_empty() {
            check_json_object(self.metadata).map_err(|why| EventError::new("metadata", why))?;
        }
        let len = self.encoded_len();
        if len > limits.max_event_bytes {
            return Err(EventError::new(
                "event",
                format!(
                    "encodes to {len} bytes, more than the limit of {}",
                    limits.max_event_bytes
                ),
            ));
        }
        if self.occurred_at == 0 {
            return Err(EventError::new("occurred_at", "is unset"));
        }
        let skew = u64::try_from(limits.max_future_skew.as_nanos()).unwrap_or(u64::MAX);
        if self.occurred_at > now.saturating_add(skew) {
            return Err(EventError::new(
                "occurred_at",
                format!(
                    "is {} s in the future, more than the allowed skew of {} s",
                    (self.occurred_at - now) / 1_000_000_000,
                    limits.max_future_skew.as_secs()
                ),
            ));
        }
        Ok(())
    }
}

/// Metadata must be one JSON object (checked without building it).
fn check_json_object(text: &str) -> Result<(), String> {
    json::check_object(text).map_err(|e| match e.kind {
        JsonErrorKind::Object => "is not a JSON object".into(),
        _ => format!("is not valid JSON: {e}"),
    })
}

impl Event {
    /// The borrowed view.
    pub fn as_ref(&self) -> EventRef<'_> {
        EventRef {
            tenant_id: &self.tenant_id,
            actor_id: &self.actor_id,
            actor_name: &self.actor_name,
            action: &self.action,
            resource: &self.resource,
            resource_id: &self.resource_id,
            metadata: &self.metadata,
            occurred_at: self.occurred_at,
            idempotency_key: &self.idempotency_key,
            source_event_id: &self.source_event_id,
            correlation_id: &self.correlation_id,
            backfilled: self.backfilled,
        }
    }

    /// The encoding, in a new buffer.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.as_ref().encode(&mut out);
        out
    }

    /// Decodes one event occupying all of `b`.
    pub fn decode(b: &[u8]) -> Result<Event, DecodeError> {
        EventRef::decode(b).map(|e| e.to_event())
    }
}

/// An event as stored: the client's fields plus what the server assigned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Its place in the log: gapless, starting at 0.
    pub seq: u64,
    /// The server's time when it was written, nanoseconds since the Unix
    /// epoch; never decreases along the log.
    pub created_at: u64,
    /// Its chain hash.
    pub hash: [u8; 32],
    /// The event.
    pub event: Event,
}

/// Why an event was refused: the field and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {reason}")]
pub struct EventError {
    /// The field at fault (`event` for the whole).
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl EventError {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        EventError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Bounds on one event; each is configurable per server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Whether `tenant_id` is required (false for single-tenant logs).
    pub tenant_required: bool,
    /// The longest identifier or name field, in bytes.
    pub max_field_bytes: usize,
    /// The longest metadata object, in bytes of JSON text.
    pub max_metadata_bytes: usize,
    /// The longest encoded event.
    pub max_event_bytes: usize,
    /// How far in the future `occurred_at` may be (clients' clocks drift).
    pub max_future_skew: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            tenant_required: true,
            max_field_bytes: 256,
            max_metadata_bytes: 32 << 10,
            max_event_bytes: 64 << 10,
            max_future_skew: Duration::from_secs(3600),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Event {
        Event {
            tenant_id: "acme".into(),
            actor_id: "u1".into(),
            actor_name: "Ada".into(),
            action: "document.deleted".into(),
            resource: "document".into(),
            resource_id: "d-9".into(),
            metadata: r#"{"ip":"10.0.0.1"}"#.into(),
            occurred_at: 1_700_000_000_000_000_000,
            idempotency_key: "k1".into(),
            source_event_id: String::new(),
            correlation_id: "c".into(),
            backfilled: true,
        }
    }

    #[test]
    fn round_trips_and_rejects_trailing_bytes() {
        let e = sample();
        let mut b = e.encode();
        assert_eq!(b.len(), e.as_ref().encoded_len());
        assert_eq!(Event::decode(&b).expect("decodes"), e);
        b.push(0);
        assert_eq!(Event::decode(&b), Err(DecodeError::Trailing(1)));
    }

    #[test]
    fn validation_names_the_field() {
        let limits = Limits::default();
        let now = 1_700_000_000_000_000_000;
        assert_eq!(sample().as_ref().validate(&limits, now), Ok(()));
        let mut e = sample();
        e.actor_id.clear();
        assert_eq!(
            e.as_ref().validate(&limits, now).map_err(|e| e.field),
            Err("actor_id".into())
        );
        let mut e = sample();
        e.metadata = "[1,2]".into();
        assert_eq!(
            e.as_ref().validate(&limits, now).map_err(|e| e.field),
            Err("metadata".into())
        );
        let mut e = sample();
        e.metadata = "{\"a\":".into();
        assert_eq!(
            e.as_ref().validate(&limits, now).map_err(|e| e.field),
            Err("metadata".into())
        );
        let mut e = sample();
        e.resource_id = "x".repeat(257);
        assert_eq!(
            e.as_ref().validate(&limits, now).map_err(|e| e.field),
            Err("resource_id".into())
        );
        let mut e = sample();
        e.occurred_at = now + 3601 * 1_000_000_000;
        assert_eq!(
            e.as_ref().validate(&limits, now).map_err(|e| e.field),
            Err("occurred_at".into())
        );
        let mut e = sample();
        e.tenant_id.clear();
        assert_eq!(
            e.as_ref().validate(&limits, now).map_err(|e| e.field),
            Err("tenant_id".into())
        );
        let single = Limits {
            tenant_required: false,
            ..Limits::default()
        };
        assert_eq!(e.as_ref().validate(&single, now), Ok(()));
    }
}
