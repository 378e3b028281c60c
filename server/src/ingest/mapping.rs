//! From a NATS message to an event (`docs/nats.md`, "Mapping"): the JSON
//! body's fields by the event's names (after the rename table), and what
//! the body leaves out from the message itself: `action` from the
//! subject, `tenant_id` from a header, `source_event_id` from
//! `Nats-Msg-Id` (or the message's place in its stream), `occurred_at`
//! from its timestamp. Pure: no I/O, so each rule is tested here.

use proto::Event;
use serde_json::{Map, Value};

use crate::config::{ActionFromSubject, NatsIngest, UnknownFields};

/// The event fields a body (or a rename) may name.
const FIELDS: [&str; 12] = [
    "tenant_id",
    "actor_id",
    "actor_name",
    "action",
    "resource",
    "resource_id",
    "metadata",
    "occurred_at",
    "idempotency_key",
    "source_event_id",
    "correlation_id",
    "backfilled",
];

/// Whether `name` is an event field.
pub fn is_event_field(name: &str) -> bool {
    FIELDS.contains(&name)
}

/// A message that cannot become an event: why, and the field at fault
/// (empty for the body as a whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The field, by its event name.
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

impl Rejection {
    fn new(field: &str, reason: impl Into<String>) -> Rejection {
        Rejection {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// What the mapping reads from a message besides its body.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    /// The message's subject.
    pub subject: &'a str,
    /// The `Nats-Msg-Id` header, if any.
    pub msg_id: Option<&'a str>,
    /// The `tenant_header` header's value, if configured and present.
    pub tenant: Option<&'a str>,
    /// The stream that holds it.
    pub stream: &'a str,
    /// Its sequence number in the stream.
    pub stream_seq: u64,
    /// When the stream stored it, in nanoseconds since 1970.
    pub published: u64,
}

/// Maps one message. The event is checked against the log's rules later,
/// by the append itself, as every way in is.
pub fn map(cfg: &NatsIngest, env: &Envelope<'_>, body: &[u8]) -> Result<Event, Rejection> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Rejection::new("", format!("the body is not JSON: {e}")))?;
    let Value::Object(fields) = value else {
        return Err(Rejection::new("", "the body is not a JSON object"));
    };
    let mut e = Event::default();
    let mut metadata: Option<Map<String, Value>> = None;
    let mut extra = Map::new();
    for (name, v) in fields {
        let field = cfg.rename.get(&name).map_or(name.as_str(), String::as_str);
        let text = |v: &Value| -> Result<String, Rejection> {
            match v {
                Value::String(s) => Ok(s.clone()),
                // Legacy ids are often numbers: their decimal text.
                Value::Number(n) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
                Value::Null => Ok(String::new()),
                _ => Err(Rejection::new(field, "must be a string")),
            }
        };
        match field {
            "tenant_id" => e.tenant_id = text(&v)?,
            "actor_id" => e.actor_id = text(&v)?,
            "actor_name" => e.actor_name = text(&v)?,
            "action" => e.action = text(&v)?,
            "resource" => e.resource = text(&v)?,
            "resource_id" => e.resource_id = text(&v)?,
            "idempotency_key" => e.idempotency_key = text(&v)?,
            "source_event_id" => e.source_event_id = text(&v)?,
            "correlation_id" => e.correlation_id = text(&v)?,
            "occurred_at" => {
                if !v.is_null() {
                    e.occurred_at = crate::http::json::parse_time(&v, "occurred_at")
                        .map_err(|m| Rejection::new("occurred_at", m))?;
                }
            }
            "backfilled" => match v {
                Value::Bool(b) => e.backfilled = b,
                Value::Null => {}
                _ => return Err(Rejection::new("backfilled", "must be true or false")),
            },
            "metadata" => match v {
                Value::Object(m) => metadata = Some(m),
                Value::Null => {}
                _ => return Err(Rejection::new("metadata", "must be a JSON object")),
            },
            _ => match cfg.unknown_fields {
                UnknownFields::Metadata => {
                    extra.insert(name, v);
                }
                UnknownFields::Ignore => {}
                UnknownFields::Reject => {
                    return Err(Rejection::new(
                        &name,
                        "is not an event field (unknown_fields = \"reject\")",
                    ))
                }
            },
        }
    }
    if e.action.is_empty() {
        e.action = match cfg.action_from_subject {
            ActionFromSubject::WithoutVersion => without_version(env.subject).to_string(),
            ActionFromSubject::Subject => env.subject.to_string(),
            ActionFromSubject::None => String::new(),
        };
    }
    if e.tenant_id.is_empty() {
        e.tenant_id = env.tenant.unwrap_or_default().to_string();
    }
    if e.source_event_id.is_empty() {
        e.source_event_id = match env.msg_id {
            Some(id) if !id.is_empty() => id.to_string(),
            // Without an id, the message's place in its stream: a
            // redelivery of it is then still recognised.
            _ => format!("nats:{}:{}", env.stream, env.stream_seq),
        };
    }
    if e.occurred_at == 0 {
        e.occurred_at = env.published;
    }
    let mut meta = metadata.unwrap_or_default();
    for (k, v) in extra {
        // The body's own metadata wins over a top-level field of its name.
        meta.entry(k).or_insert(v);
    }
    if !cfg.subject_metadata_key.is_empty() {
        meta.insert(
            cfg.subject_metadata_key.clone(),
            Value::String(env.subject.to_string()),
        );
    }
    if !meta.is_empty() {
        e.metadata = Value::Object(meta).to_string();
    }
    Ok(e)
}

/// `a.b.c.v1` without its version token; any other subject as it is.
fn without_version(subject: &str) -> &str {
    match subject.rsplit_once('.') {
        Some((head, last))
            if last.len() > 1
                && last.starts_with('v')
                && last[1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            head
        }
        _ => subject,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn env(subject: &str) -> Envelope<'_> {
        Envelope {
            subject,
            msg_id: None,
            tenant: None,
            stream: "EVENTS",
            stream_seq: 42,
            published: 1_700_000_000_123_000_000,
        }
    }

    fn cfg() -> NatsIngest {
        NatsIngest {
            stream: "EVENTS".into(),
            durable: "audit".into(),
            ..NatsIngest::default()
        }
    }

    #[test]
    fn a_body_with_every_field_maps_field_for_field() {
        let body = br#"{"tenant_id":"acme","actor_id":"u1","actor_name":"Ann","action":"user.created",
            "resource":"user","resource_id":"u9","idempotency_key":"k1","source_event_id":"s1",
            "correlation_id":"c1","occurred_at":"2026-12-01T10:00:00Z","metadata":{"ip":"10.0.0.1"}}"#;
        let e = map(&cfg(), &env("identity.user.created.v1"), body).unwrap();
        assert_eq!(
            (
                e.tenant_id.as_str(),
                e.actor_id.as_str(),
                e.actor_name.as_str(),
                e.action.as_str(),
                e.resource.as_str(),
                e.resource_id.as_str(),
                e.idempotency_key.as_str(),
                e.source_event_id.as_str(),
                e.correlation_id.as_str()
            ),
            (
                "acme",
                "u1",
                "Ann",
                "user.created",
                "user",
                "u9",
                "k1",
                "s1",
                "c1"
            )
        );
        assert_eq!(e.occurred_at, 1_796_119_200_000_000_000);
        assert_eq!(
            e.metadata,
            r#"{"ip":"10.0.0.1","nats_subject":"identity.user.created.v1"}"#
        );
    }

    #[test]
    fn what_the_body_leaves_out_comes_from_the_message() {
        let body = br#"{"actor_id":42,"resource":"user"}"#;
        let mut c = cfg();
        c.tenant_header = "Tenant-Id".into();
        let mut en = env("identity.user.created.v12");
        en.tenant = Some("acme");
        let e = map(&c, &en, body).unwrap();
        assert_eq!(e.action, "identity.user.created");
        assert_eq!(e.actor_id, "42");
        assert_eq!(e.tenant_id, "acme");
        assert_eq!(e.source_event_id, "nats:EVENTS:42");
        assert_eq!(e.occurred_at, 1_700_000_000_123_000_000);
        en.msg_id = Some("msg-7");
        assert_eq!(map(&c, &en, body).unwrap().source_event_id, "msg-7");
        c.action_from_subject = ActionFromSubject::Subject;
        assert_eq!(
            map(&c, &en, body).unwrap().action,
            "identity.user.created.v12"
        );
        c.action_from_subject = ActionFromSubject::None;
        assert_eq!(map(&c, &en, body).unwrap().action, "");
        // Only a last token of v and digits is a version.
        assert_eq!(
            without_version("com.ghasi-ehr.iam.user.created"),
            "com.ghasi-ehr.iam.user.created"
        );
        assert_eq!(without_version("a.v"), "a.v");
        assert_eq!(without_version("a.v1x"), "a.v1x");
        assert_eq!(without_version("v1"), "v1");
    }

    #[test]
    fn renames_and_unknown_fields() {
        let mut c = cfg();
        c.rename.insert("eventType".into(), "action".into());
        c.rename.insert("userId".into(), "actor_id".into());
        c.subject_metadata_key = String::new();
        let body = br#"{"eventType":"Login","userId":"u1","resource":"session","tenant_id":"t","ip":"1.2.3.4","metadata":{"ip":"kept"}}"#;
        let e = map(&c, &env("x.y"), body).unwrap();
        assert_eq!((e.action.as_str(), e.actor_id.as_str()), ("Login", "u1"));
        assert_eq!(e.metadata, r#"{"ip":"kept"}"#);
        let body = br#"{"action":"a","actor_id":"u","resource":"r","device":"phone"}"#;
        assert_eq!(
            map(&c, &env("x.y"), body).unwrap().metadata,
            r#"{"device":"phone"}"#
        );
        c.unknown_fields = UnknownFields::Ignore;
        assert_eq!(map(&c, &env("x.y"), body).unwrap().metadata, "");
        c.unknown_fields = UnknownFields::Reject;
        assert_eq!(
            map(&c, &env("x.y"), body).unwrap_err(),
            Rejection::new(
                "device",
                "is not an event field (unknown_fields = \"reject\")"
            )
        );
    }

    #[test]
    fn bodies_that_cannot_be_events_are_rejected_with_the_field() {
        let c = cfg();
        let e = |b: &[u8]| map(&c, &env("a.b"), b).unwrap_err();
        assert!(e(b"not json").reason.starts_with("the body is not JSON: "));
        assert_eq!(
            e(b"[1,2]"),
            Rejection::new("", "the body is not a JSON object")
        );
        assert_eq!(
            e(br#"{"actor_id":{"id":1}}"#),
            Rejection::new("actor_id", "must be a string")
        );
        assert_eq!(
            e(br#"{"metadata":[1]}"#),
            Rejection::new("metadata", "must be a JSON object")
        );
        assert_eq!(
            e(br#"{"backfilled":"yes"}"#),
            Rejection::new("backfilled", "must be true or false")
        );
        assert_eq!(e(br#"{"occurred_at":true}"#).field, "occurred_at");
        assert!(is_event_field("correlation_id") && !is_event_field("seq"));
    }
}
