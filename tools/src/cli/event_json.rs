//! Events as JSON, the shape the CLI reads (append, import) and writes
//! (query, tail): chainlog's field names; times in RFC 3339 on output,
//! RFC 3339 or Unix time on input; metadata a JSON object.

use client::{Event, StoredEvent};
use engine::error::hex;
use serde_json::{json, Map, Value};

use super::time;

/// Text fields by their JSON names (the encoding's names).
pub const TEXT: [&str; 9] = proto::event::TEXT_FIELDS;

/// A text field's value, by name (`None`: not a text field).
pub fn text<'a>(e: &'a Event, name: &str) -> Option<&'a str> {
    Some(match name {
        "tenant_id" => &e.tenant_id,
        "actor_id" => &e.actor_id,
        "actor_name" => &e.actor_name,
        "action" => &e.action,
        "resource" => &e.resource,
        "resource_id" => &e.resource_id,
        "idempotency_key" => &e.idempotency_key,
        "source_event_id" => &e.source_event_id,
        "correlation_id" => &e.correlation_id,
        _ => return None,
    })
}

fn text_field<'a>(e: &'a mut Event, name: &str) -> Option<&'a mut String> {
    Some(match name {
        "tenant_id" => &mut e.tenant_id,
        "actor_id" => &mut e.actor_id,
        "actor_name" => &mut e.actor_name,
        "action" => &mut e.action,
        "resource" => &mut e.resource,
        "resource_id" => &mut e.resource_id,
        "idempotency_key" => &mut e.idempotency_key,
        "source_event_id" => &mut e.source_event_id,
        "correlation_id" => &mut e.correlation_id,
        _ => return None,
    })
}

/// Whether `name` is one of the event's fields.
pub fn is_field(name: &str) -> bool {
    TEXT.contains(&name) || matches!(name, "metadata" | "occurred_at" | "backfilled")
}

/// Sets one field from a JSON value; the error says why the value does not
/// fit.
pub fn set_field(e: &mut Event, name: &str, v: &Value) -> Result<(), String> {
    if let Some(slot) = text_field(e, name) {
        *slot = match v {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => return Err(format!("{name} must be a string")),
        };
        return Ok(());
    }
    match name {
        "metadata" => {
            e.metadata = match v {
                Value::Null => String::new(),
                Value::Object(_) => v.to_string(),
                Value::String(s) if s.trim().is_empty() => String::new(),
                // Old systems often keep JSON as text.
                Value::String(s) => match serde_json::from_str::<Value>(s) {
                    Ok(o @ Value::Object(_)) => o.to_string(),
                    _ => return Err("metadata must be a JSON object".into()),
                },
                _ => return Err("metadata must be a JSON object".into()),
            }
        }
        "occurred_at" => {
            e.occurred_at = match v {
                Value::Null => 0,
                Value::String(s) if s.trim().is_empty() => 0,
                Value::String(s) => time::parse(s)?,
                Value::Number(n) => time::parse(&n.to_string())?,
                _ => return Err("occurred_at must be a time".into()),
            }
        }
        "backfilled" => {
            e.backfilled = match v {
                Value::Bool(b) => *b,
                Value::Null => false,
                Value::String(s) => matches!(s.as_str(), "true" | "t" | "1" | "yes"),
                Value::Number(n) => n.as_u64() == Some(1),
                _ => return Err("backfilled must be true or false".into()),
            }
        }
        other => return Err(format!("{other} is not an event field")),
    }
    Ok(())
}

/// An event from a JSON object with chainlog's field names. Unknown fields
/// are an error (a typo would otherwise lose data).
pub fn from_json(v: &Value) -> Result<Event, String> {
    let Value::Object(map) = v else {
        return Err("an event must be a JSON object".into());
    };
    let mut e = Event::default();
    for (k, v) in map {
        if matches!(k.as_str(), "seq" | "created_at" | "hash") {
            continue; // what query --json prints; the server assigns these
        }
        set_field(&mut e, k, v)?;
    }
    Ok(e)
}

/// A stored event as one JSON object.
pub fn to_json(s: &StoredEvent) -> Value {
    let e = &s.event;
    let mut m = Map::new();
    m.insert("seq".into(), json!(s.seq));
    m.insert("created_at".into(), json!(time::format(s.created_at)));
    m.insert("hash".into(), json!(hex(&s.hash)));
    let mut copy = e.clone();
    for name in TEXT {
        if let Some(v) = text_field(&mut copy, name) {
            if !v.is_empty() {
                m.insert(name.into(), json!(v));
            }
        }
    }
    let meta = if e.metadata.is_empty() {
        json!({})
    } else {
        serde_json::from_str(&e.metadata).unwrap_or_else(|_| json!(e.metadata))
    };
    m.insert("metadata".into(), meta);
    m.insert("occurred_at".into(), json!(time::format(e.occurred_at)));
    m.insert("backfilled".into(), json!(e.backfilled));
    Value::Object(m)
}
