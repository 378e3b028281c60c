//! Events as the HTTP API reads and writes them (`docs/http.md`): the
//! event's field names, strictly typed. A wrong type or an unknown field is
//! the event's error, named, never coerced: a typo must not lose data.

use proto::event::{Event, StoredEvent};
use serde_json::{json, Map, Value};

use super::reply::HttpError;

/// The largest `occurred_at` in milliseconds that fits in nanoseconds.
const MAX_MILLIS: u64 = u64::MAX / 1_000_000;

/// A hash as lowercase hex.
pub(crate) fn hex(h: &[u8; 32]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

/// Time as RFC 3339, or as milliseconds since the Unix epoch (an integer),
/// into nanoseconds; `what` names it in the error.
pub(crate) fn parse_time(v: &Value, what: &str) -> Result<u64, String> {
    match v {
        Value::String(s) => proto::time::parse(s).map_err(|e| format!("{what}: {e}")),
        Value::Number(n) => match n.as_u64() {
            Some(ms) if ms <= MAX_MILLIS => Ok(ms * 1_000_000),
            _ => Err(format!(
                "{what}: {n} is not a number of milliseconds since 1970 (a non-negative integer)"
            )),
        },
        _ => Err(format!(
            "{what} must be an RFC 3339 string or milliseconds since 1970"
        )),
    }
}

/// The same, from a query parameter's text: all digits is milliseconds.
pub(crate) fn parse_time_param(s: &str, what: &str) -> Result<u64, String> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        let ms: u64 = s.parse().map_err(|_| format!("{what}: {s} is too large"))?;
        return parse_time(&Value::from(ms), what);
    }
    parse_time(&Value::String(s.to_owned()), what)
}

/// The event at `index` of a request, from its JSON object.
pub(crate) fn event_from_json(v: &Value, index: usize) -> Result<Event, HttpError> {
    let Value::Object(map) = v else {
        return Err(HttpError::invalid_event(
            index,
            "event",
            "an event must be a JSON object",
        ));
    };
    let mut e = Event::default();
    for (name, value) in map {
        set_field(&mut e, name, value).map_err(|m| HttpError::invalid_event(index, name, m))?;
    }
    Ok(e)
}

fn set_field(e: &mut Event, name: &str, v: &Value) -> Result<(), String> {
    if v.is_null() {
        return if is_field(name) {
            Ok(())
        } else {
            Err(unknown(name))
        };
    }
    let text = |v: &Value| match v {
        Value::String(s) => Ok(s.clone()),
        _ => Err(format!("{name} must be a string")),
    };
    match name {
        "tenant_id" => e.tenant_id = text(v)?,
        "actor_id" => e.actor_id = text(v)?,
        "actor_name" => e.actor_name = text(v)?,
        "action" => e.action = text(v)?,
        "resource" => e.resource = text(v)?,
        "resource_id" => e.resource_id = text(v)?,
        "idempotency_key" => e.idempotency_key = text(v)?,
        "source_event_id" => e.source_event_id = text(v)?,
        "correlation_id" => e.correlation_id = text(v)?,
        "metadata" => match v {
            Value::Object(m) if m.is_empty() => e.metadata.clear(),
            Value::Object(_) => e.metadata = v.to_string(),
            _ => return Err("metadata must be a JSON object".into()),
        },
        "occurred_at" => e.occurred_at = parse_time(v, "occurred_at")?,
        "backfilled" => match v {
            Value::Bool(b) => e.backfilled = *b,
            _ => return Err("backfilled must be true or false".into()),
        },
        other => return Err(unknown(other)),
    }
    Ok(())
}

fn is_field(name: &str) -> bool {
    proto::event::TEXT_FIELDS.contains(&name)
        || matches!(name, "metadata" | "occurred_at" | "backfilled")
}

fn unknown(name: &str) -> String {
    format!("{name:?} is not an event field")
}

/// A stored event as the API returns it.
pub(crate) fn stored_event_json(s: &StoredEvent) -> Value {
    let e = &s.event;
    let mut m = Map::new();
    m.insert("seq".into(), json!(s.seq));
    m.insert(
        "created_at".into(),
        json!(proto::time::format(s.created_at)),
    );
    m.insert("hash".into(), json!(hex(&s.hash)));
    for (name, v) in [
        ("tenant_id", &e.tenant_id),
        ("actor_id", &e.actor_id),
        ("actor_name", &e.actor_name),
        ("action", &e.action),
        ("resource", &e.resource),
        ("resource_id", &e.resource_id),
        ("idempotency_key", &e.idempotency_key),
        ("source_event_id", &e.source_event_id),
        ("correlation_id", &e.correlation_id),
    ] {
        if !v.is_empty() {
            m.insert(name.into(), json!(v));
        }
    }
    // Stored metadata passed the JSON object check when it was appended.
    let metadata = serde_json::from_str(&e.metadata).unwrap_or_else(|_| json!({}));
    m.insert("metadata".into(), metadata);
    m.insert(
        "occurred_at".into(),
        json!(proto::time::format(e.occurred_at)),
    );
    m.insert("backfilled".into(), json!(e.backfilled));
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(v: Value) -> Result<Event, HttpError> {
        event_from_json(&v, 2)
    }

    #[test]
    fn fields_are_strictly_typed_and_unknown_ones_named() {
        let e = event(json!({
            "tenant_id": "acme", "actor_id": "u1", "action": "a.b", "resource": "doc",
            "occurred_at": 1_700_000_000_123u64, "metadata": {"ip": "10.0.0.1"},
            "backfilled": true, "correlation_id": null
        }))
        .expect("valid");
        assert_eq!(e.occurred_at, 1_700_000_000_123_000_000);
        assert_eq!(e.metadata, r#"{"ip":"10.0.0.1"}"#);
        assert!(e.backfilled);
        let e = event(json!({"occurred_at": "2023-11-14T22:13:20.5+01:00"})).expect("valid");
        assert_eq!(e.occurred_at, 1_699_996_400_500_000_000);
        for (body, field, message) in [
            (json!({"actor_id": 7}), "actor_id", "actor_id must be a string"),
            (json!({"actr_id": "u"}), "actr_id", "\"actr_id\" is not an event field"),
            (json!({"metadata": "{}"}), "metadata", "metadata must be a JSON object"),
            (json!({"backfilled": "yes"}), "backfilled", "backfilled must be true or false"),
            (
                json!({"occurred_at": -5}),
                "occurred_at",
                "occurred_at: -5 is not a number of milliseconds since 1970 (a non-negative integer)",
            ),
        ] {
            let err = event(body).expect_err("refused");
            assert_eq!(err.index, Some(2));
            assert_eq!(err.field.as_deref(), Some(field));
            assert_eq!(err.message, message);
            assert_eq!(err.code, "invalid_event");
        }
        assert_eq!(
            event(json!([1])).expect_err("refused").message,
            "an event must be a JSON object"
        );
    }

    #[test]
    fn a_stored_event_round_trips() {
        let stored = StoredEvent {
            seq: 3,
            created_at: 1_700_000_000_000_000_001,
            hash: [0xab; 32],
            event: Event {
                tenant_id: "acme".into(),
                actor_id: "u1".into(),
                action: "a.b".into(),
                resource: "doc".into(),
                metadata: r#"{"k":[1,2]}"#.into(),
                occurred_at: 1_700_000_000_000_000_000,
                ..Event::default()
            },
        };
        let v = stored_event_json(&stored);
        assert_eq!(v["created_at"], "2023-11-14T22:13:20.000000001Z");
        assert_eq!(v["hash"], "ab".repeat(32));
        assert_eq!(v["metadata"], json!({"k": [1, 2]}));
        assert!(v.get("actor_name").is_none());
        let mut again = v.clone();
        for k in ["seq", "created_at", "hash"] {
            again.as_object_mut().expect("object").remove(k);
        }
        assert_eq!(event(again).expect("valid"), stored.event);
    }
}
