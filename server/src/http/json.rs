//! Stored events and times as the HTTP API writes and reads them
//! (`docs/http.md`). Append bodies are parsed in `parse`.

use proto::event::StoredEvent;
use serde_json::Value;

/// The largest `occurred_at` in milliseconds that fits in nanoseconds.
const MAX_MILLIS: u64 = u64::MAX / 1_000_000;

/// A hash as lowercase hex.
pub(crate) fn hex(h: &[u8; 32]) -> String {
    engine::error::hex(h)
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

/// A stored event as the API returns it, written out as JSON text. Its
/// metadata is the stored text itself, byte for byte: the object that was
/// hashed, never a re-serialisation of it (which could round numbers,
/// merge duplicate keys or refuse what the append check accepted).
pub(crate) fn stored_event_text(s: &StoredEvent) -> String {
    let e = &s.event;
    let mut out: Vec<u8> = Vec::with_capacity(256 + e.metadata.len());
    let string = |out: &mut Vec<u8>, name: &str, v: &str| {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
        // Writing a string to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, v);
    };
    out.extend_from_slice(format!("{{\"seq\":{}", s.seq).as_bytes());
    string(&mut out, "created_at", &proto::time::format(s.created_at));
    string(&mut out, "hash", &hex(&s.hash));
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
            string(&mut out, name, v);
        }
    }
    out.extend_from_slice(b",\"metadata\":");
    if e.metadata.is_empty() {
        out.extend_from_slice(b"{}");
    } else {
        out.extend_from_slice(e.metadata.as_bytes());
    }
    string(&mut out, "occurred_at", &proto::time::format(e.occurred_at));
    out.extend_from_slice(format!(",\"backfilled\":{}}}", e.backfilled).as_bytes());
    // Built from strings and JSON text only.
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::event::Event;
    use serde_json::json;

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
        let v: serde_json::Value = serde_json::from_str(&stored_event_text(&stored)).expect("JSON");
        assert_eq!(v["created_at"], "2023-11-14T22:13:20.000000001Z");
        assert_eq!(v["hash"], "ab".repeat(32));
        assert_eq!(v["metadata"], json!({"k": [1, 2]}));
        assert!(v.get("actor_name").is_none());
        let mut again = v.clone();
        for k in ["seq", "created_at", "hash"] {
            again.as_object_mut().expect("object").remove(k);
        }
        match super::super::parse::json_body(again.to_string().as_bytes(), 1) {
            Ok(super::super::parse::Parsed::One(e)) => {
                assert_eq!(e.event_ref(), stored.event.as_ref())
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn metadata_comes_back_as_the_text_stored() {
        // Accepted by the append check, beyond what a JSON tree keeps:
        // a number out of f64's range, a duplicate key, spacing.
        let text = r#"{ "n": 1e400, "n": 2, "s": "\ud800" }"#;
        let stored = StoredEvent {
            seq: 0,
            created_at: 0,
            hash: [0; 32],
            event: Event {
                metadata: text.into(),
                ..Event::default()
            },
        };
        let out = stored_event_text(&stored);
        assert!(out.contains(&format!(",\"metadata\":{text},")), "{out}");
    }
}
