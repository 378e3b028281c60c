//! Append bodies parsed straight into events, without building a JSON
//! tree: one pass of serde_json over the bytes, each field into its slot.
//! This is most of what an HTTP append costs beyond a binary one.
//!
//! serde's errors carry only text, so a refusal that names an event and a
//! field (`invalid_event`, index and field) is kept aside in a [`Slot`]
//! when it is found, and the parse is stopped with a plain error; the
//! caller reports the kept refusal, or, if there is none, the JSON error
//! as `malformed`.

use std::borrow::Cow;
use std::fmt;

use proto::event::{EventRef, TEXT_FIELDS};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::json::parse_time;
use super::reply::HttpError;

/// An event as parsed: its text fields borrowed from the body where they
/// have no escapes, so that it is encoded with no copy in between.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Draft<'a> {
    /// The text fields, in the order of [`TEXT_FIELDS`].
    pub texts: [Cow<'a, str>; 9],
    /// A JSON object's text, or empty.
    pub metadata: Cow<'a, str>,
    pub occurred_at: u64,
    pub backfilled: bool,
}

/// Where `idempotency_key` is in [`Draft::texts`].
pub(crate) const IDEMPOTENCY_KEY: usize = 6;
const _: () = assert!(matches!(
    TEXT_FIELDS[IDEMPOTENCY_KEY].as_bytes(),
    b"idempotency_key"
));

impl Draft<'_> {
    /// The event, as the encoding and validation take it.
    pub fn event_ref(&self) -> EventRef<'_> {
        let t = &self.texts;
        EventRef {
            tenant_id: &t[0],
            actor_id: &t[1],
            actor_name: &t[2],
            action: &t[3],
            resource: &t[4],
            resource_id: &t[5],
            idempotency_key: &t[6],
            source_event_id: &t[7],
            correlation_id: &t[8],
            metadata: &self.metadata,
            occurred_at: self.occurred_at,
            backfilled: self.backfilled,
        }
    }
}

/// The events of an append body.
#[derive(Debug, PartialEq)]
pub(crate) enum Parsed<'a> {
    /// One event object.
    One(Box<Draft<'a>>),
    /// `{"events": [...]}` or NDJSON.
    Many(Vec<Draft<'a>>),
}

/// Where a refusal found during the parse is kept.
type Slot = Option<HttpError>;

fn stop<E: de::Error>(slot: &mut Slot, e: HttpError) -> E {
    let message = e.message.clone();
    *slot = Some(e);
    E::custom(message)
}

/// Parses a JSON body: one event, or a batch of at most `max` events.
pub(crate) fn json_body(body: &[u8], max: usize) -> Result<Parsed<'_>, HttpError> {
    let mut slot = None;
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = Top {
        slot: &mut slot,
        max,
    }
    .deserialize(&mut de)
    .and_then(|p| de.end().map(|()| p));
    parsed.map_err(|e| {
        slot.take()
            .unwrap_or_else(|| HttpError::malformed(format!("the body is not JSON: {e}")))
    })
}

/// Parses an NDJSON body: one event a line, blank lines skipped, at most
/// `max` events.
pub(crate) fn ndjson_body(body: &[u8], max: usize) -> Result<Parsed<'_>, HttpError> {
    let mut events = Vec::new();
    for (n, line) in body.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if events.len() == max {
            return Err(too_many(max));
        }
        let mut slot = None;
        let mut de = serde_json::Deserializer::from_slice(line);
        let e = One {
            slot: &mut slot,
            index: events.len(),
        }
        .deserialize(&mut de)
        .and_then(|e| de.end().map(|()| e))
        .map_err(|e| {
            slot.take()
                .unwrap_or_else(|| HttpError::malformed(format!("line {}: not JSON: {e}", n + 1)))
        })?;
        events.push(e);
    }
    Ok(Parsed::Many(events))
}

fn too_many(max: usize) -> HttpError {
    proto::msg::ErrorReply::new(
        proto::msg::ErrorCode::TooLarge,
        format!("more events than the maximum of {max}"),
    )
    .into()
}

fn not_object(index: usize) -> HttpError {
    HttpError::invalid_event(index, "event", "an event must be a JSON object")
}

/// A map key, borrowed from the body when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// The whole body: an event object, or `{"events": [...]}`.
struct Top<'s> {
    slot: &'s mut Slot,
    max: usize,
}

impl<'de> DeserializeSeed<'de> for Top<'_> {
    type Value = Parsed<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Parsed<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Top<'_> {
    type Value = Parsed<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event object or {\"events\": [...]}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Parsed<'de>, A::Error> {
        let Some(Key(first)) = map.next_key::<Key<'de>>()? else {
            return Ok(Parsed::One(Box::default()));
        };
        if first != "events" {
            let mut e = Draft::default();
            field(&mut map, &first, &mut e, 0, self.slot)?;
            while let Some(Key(name)) = map.next_key::<Key<'de>>()? {
                field(&mut map, &name, &mut e, 0, self.slot)?;
            }
            return Ok(Parsed::One(Box::new(e)));
        }
        let events = map.next_value_seed(Many {
            slot: &mut *self.slot,
            max: self.max,
        })?;
        if map.next_key::<IgnoredAny>()?.is_some() {
            return Err(stop(
                self.slot,
                HttpError::malformed("a batch is {\"events\": [...]} with no other member"),
            ));
        }
        Ok(Parsed::Many(events))
    }

    // Anything but an object is one event that is not an object.
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Parsed<'de>, E> {
        Err(stop(self.slot, not_object(0)))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Parsed<'de>, E> {
        Err(stop(self.slot, not_object(0)))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Parsed<'de>, E> {
        Err(stop(self.slot, not_object(0)))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Parsed<'de>, E> {
        Err(stop(self.slot, not_object(0)))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Parsed<'de>, E> {
        Err(stop(self.slot, not_object(0)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Parsed<'de>, E> {
        Err(stop(self.slot, not_object(0)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Parsed<'de>, A::Error> {
        Err(stop(self.slot, not_object(0)))
    }
}

/// The array of a batch.
struct Many<'s> {
    slot: &'s mut Slot,
    max: usize,
}

impl<'de> DeserializeSeed<'de> for Many<'_> {
    type Value = Vec<Draft<'de>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<Draft<'de>>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Many<'_> {
    type Value = Vec<Draft<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of events")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Draft<'de>>, A::Error> {
        let mut events = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(self.max));
        loop {
            let index = events.len();
            let next = seq.next_element_seed(One {
                slot: &mut *self.slot,
                index,
            })?;
            let Some(e) = next else {
                return Ok(events);
            };
            if index == self.max {
                return Err(stop(self.slot, too_many(self.max)));
            }
            events.push(e);
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Vec<Draft<'de>>, A::Error> {
        Err(stop(
            self.slot,
            HttpError::malformed("\"events\" must be an array of events"),
        ))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Vec<Draft<'de>>, E> {
        Err(stop(
            self.slot,
            HttpError::malformed("\"events\" must be an array of events"),
        ))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Vec<Draft<'de>>, E> {
        Err(stop(
            self.slot,
            HttpError::malformed("\"events\" must be an array of events"),
        ))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Vec<Draft<'de>>, E> {
        Err(stop(
            self.slot,
            HttpError::malformed("\"events\" must be an array of events"),
        ))
    }
}

/// One event object, the `index`-th of its body.
struct One<'s> {
    slot: &'s mut Slot,
    index: usize,
}

impl<'de> DeserializeSeed<'de> for One<'_> {
    type Value = Draft<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Draft<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for One<'_> {
    type Value = Draft<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Draft<'de>, A::Error> {
        let mut e = Draft::default();
        while let Some(Key(name)) = map.next_key::<Key<'de>>()? {
            field(&mut map, &name, &mut e, self.index, self.slot)?;
        }
        Ok(e)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Draft<'de>, E> {
        Err(stop(self.slot, not_object(self.index)))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Draft<'de>, E> {
        Err(stop(self.slot, not_object(self.index)))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Draft<'de>, E> {
        Err(stop(self.slot, not_object(self.index)))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Draft<'de>, E> {
        Err(stop(self.slot, not_object(self.index)))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Draft<'de>, E> {
        Err(stop(self.slot, not_object(self.index)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Draft<'de>, E> {
        Err(stop(self.slot, not_object(self.index)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Draft<'de>, A::Error> {
        Err(stop(self.slot, not_object(self.index)))
    }
}

/// A member's value as it came.
enum Scalar<'de> {
    Text(Cow<'de, str>),
    Unsigned(u64),
    /// A negative or fractional number, as written.
    OtherNumber(String),
    Bool(bool),
    Null,
    /// An object, as its text (for metadata only).
    Object(&'de str),
    /// An object or array where a plain value belongs.
    Compound,
}

/// Any value but metadata: read by type, borrowing strings without
/// escapes from the body.
struct ScalarSeed;

impl<'de> DeserializeSeed<'de> for ScalarSeed {
    type Value = Scalar<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Scalar<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ScalarSeed {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Text(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Text(Cow::Owned(v.to_owned())))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Unsigned(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::OtherNumber(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::OtherNumber(v.to_string()))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Null)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Compound)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Compound)
    }
}

/// Metadata: kept as the text it came as, when it is an object.
struct MetadataSeed;

impl<'de> DeserializeSeed<'de> for MetadataSeed {
    type Value = Scalar<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Scalar<'de>, D::Error> {
        let raw: &'de RawValue = de::Deserialize::deserialize(d)?;
        let text = raw.get();
        Ok(match text.as_bytes().first() {
            Some(b'{') => Scalar::Object(text),
            Some(b'n') => Scalar::Null,
            _ => Scalar::Compound,
        })
    }
}

/// Reads the value of member `name` into `e`.
fn field<'de, A: MapAccess<'de>>(
    map: &mut A,
    name: &str,
    e: &mut Draft<'de>,
    index: usize,
    slot: &mut Slot,
) -> Result<(), A::Error> {
    let value = if name == "metadata" {
        map.next_value_seed(MetadataSeed)?
    } else {
        map.next_value_seed(ScalarSeed)?
    };
    let refuse = |slot: &mut Slot, message: String| {
        stop(slot, HttpError::invalid_event(index, name, message))
    };
    if let Some(i) = TEXT_FIELDS.iter().position(|f| *f == name) {
        return match value {
            Scalar::Text(s) => {
                e.texts[i] = s;
                Ok(())
            }
            Scalar::Null => Ok(()),
            _ => Err(refuse(slot, format!("{name} must be a string"))),
        };
    }
    match (name, value) {
        (_, Scalar::Null) if matches!(name, "metadata" | "occurred_at" | "backfilled") => Ok(()),
        ("metadata", Scalar::Object(text)) => {
            let empty = text[1..text.len() - 1]
                .bytes()
                .all(|b| b.is_ascii_whitespace());
            e.metadata = Cow::Borrowed(if empty { "" } else { text });
            Ok(())
        }
        ("metadata", _) => Err(refuse(slot, "metadata must be a JSON object".into())),
        ("occurred_at", v) => {
            let parsed = match v {
                Scalar::Text(s) => parse_time(&serde_json::Value::String(s.into_owned()), name),
                Scalar::Unsigned(ms) => parse_time(&serde_json::Value::from(ms), name),
                Scalar::OtherNumber(n) => Err(format!(
                    "occurred_at: {n} is not a number of milliseconds since 1970 (a non-negative integer)"
                )),
                _ => Err("occurred_at must be an RFC 3339 string or milliseconds since 1970".into()),
            };
            match parsed {
                Ok(ns) => {
                    e.occurred_at = ns;
                    Ok(())
                }
                Err(m) => Err(refuse(slot, m)),
            }
        }
        ("backfilled", Scalar::Bool(b)) => {
            e.backfilled = b;
            Ok(())
        }
        ("backfilled", _) => Err(refuse(slot, "backfilled must be true or false".into())),
        _ => Err(refuse(slot, format!("{name:?} is not an event field"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The event of a one-event body, owned.
    fn one(body: &str) -> Result<proto::event::Event, HttpError> {
        match json_body(body.as_bytes(), 10)? {
            Parsed::One(e) => Ok(e.event_ref().to_event()),
            Parsed::Many(_) => panic!("a batch"),
        }
    }

    #[test]
    fn fields_are_strictly_typed_and_refusals_name_the_event_and_field() {
        let e = one(
            r#"{"tenant_id":"acme","actor_id":"u\u00e9","action":"a.b","resource":"doc",
               "occurred_at":1700000000123,"metadata":{"ip": "10.0.0.1"},"backfilled":true,
               "correlation_id":null}"#,
        )
        .expect("valid");
        assert_eq!(e.actor_id, "u\u{e9}");
        assert_eq!(e.occurred_at, 1_700_000_000_123_000_000);
        assert_eq!(e.metadata, r#"{"ip": "10.0.0.1"}"#);
        assert!(e.backfilled);
        assert_eq!(one(r#"{"metadata": { }}"#).expect("valid").metadata, "");
        assert_eq!(
            one(r#"{"occurred_at":"2023-11-14T22:13:20.5+01:00"}"#)
                .expect("valid")
                .occurred_at,
            1_699_996_400_500_000_000
        );
        for (body, index, field, message) in [
            (r#"{"actor_id": 7}"#, 0, "actor_id", "actor_id must be a string"),
            (r#"{"actr_id": "u"}"#, 0, "actr_id", "\"actr_id\" is not an event field"),
            (r#"{"metadata": "{}"}"#, 0, "metadata", "metadata must be a JSON object"),
            (r#"{"backfilled": "yes"}"#, 0, "backfilled", "backfilled must be true or false"),
            (
                r#"{"occurred_at": -5}"#,
                0,
                "occurred_at",
                "occurred_at: -5 is not a number of milliseconds since 1970 (a non-negative integer)",
            ),
            (r#"7"#, 0, "event", "an event must be a JSON object"),
            (r#"{"events": [{}, {}, [1]]}"#, 2, "event", "an event must be a JSON object"),
            (r#"{"events": [{}, {"tenant_id": false}]}"#, 1, "tenant_id", "tenant_id must be a string"),
        ] {
            let err = json_body(body.as_bytes(), 10).expect_err(body);
            assert_eq!(err.code, "invalid_event", "{body}");
            assert_eq!(err.index, Some(index), "{body}");
            assert_eq!(err.field.as_deref(), Some(field), "{body}");
            assert_eq!(err.message, message, "{body}");
        }
    }

    #[test]
    fn bodies_that_are_not_one_event_or_a_batch_are_malformed() {
        for (body, message) in [
            (
                r#"{"events": []"#,
                "the body is not JSON: EOF while parsing an object at line 1 column 13",
            ),
            (
                r#"{"events": [], "x": 1}"#,
                "a batch is {\"events\": [...]} with no other member",
            ),
            (r#"{"events": {}}"#, "\"events\" must be an array of events"),
            (
                r#"{} {}"#,
                "the body is not JSON: trailing characters at line 1 column 4",
            ),
        ] {
            let err = json_body(body.as_bytes(), 10).expect_err(body);
            assert_eq!(
                (err.code, err.message.as_str()),
                ("malformed", message),
                "{body}"
            );
        }
        let err = json_body(br#"{"events": [{}, {}, {}]}"#, 2).expect_err("too many");
        assert_eq!(err.code, "too_large");
        assert_eq!(
            json_body(br#"{"events": [{}, {}]}"#, 2).expect("two"),
            Parsed::Many(vec![Draft::default(), Draft::default()])
        );
    }

    #[test]
    fn ndjson_lines_are_events_and_errors_name_their_line_or_index() {
        let body = b"{\"actor_id\":\"a\"}\n\n  \n{\"actor_id\":\"b\"}\n";
        let Parsed::Many(events) = ndjson_body(body, 10).expect("valid") else {
            panic!("not a batch")
        };
        assert_eq!(
            events
                .iter()
                .map(|e| e.event_ref().actor_id)
                .collect::<Vec<_>>(),
            ["a", "b"]
        );
        let err = ndjson_body(b"{}\n{\"actor_id\":1}\n", 10).expect_err("typed");
        assert_eq!(
            (err.index, err.field.as_deref()),
            (Some(1), Some("actor_id"))
        );
        let err = ndjson_body(b"{}\n\n{oops\n", 10).expect_err("not JSON");
        assert_eq!(err.code, "malformed");
        assert!(
            err.message.starts_with("line 3: not JSON"),
            "{}",
            err.message
        );
        assert_eq!(
            ndjson_body(b"{}\n{}\n{}\n", 2).expect_err("3 > 2").code,
            "too_large"
        );
    }
}
