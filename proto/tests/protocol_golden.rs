//! Ties docs/protocol.md's worked example to the codec: the APPEND frame
//! and its RECEIPTS reply in the doc are exactly what the code encodes (the
//! receipt's hash is a real chain step from a previous hash of 32 × 0x11).

use proto::event::Event;
use proto::msg::{
    decode_request, encode_request, encode_response, AppendReceipt, Request, Response,
};

/// The bytes of the ```hex block after `<!-- golden:NAME -->` in the doc.
fn doc_block(doc: &str, name: &str) -> Vec<u8> {
    let marker = format!("<!-- golden:{name} -->");
    let at = doc
        .find(&marker)
        .unwrap_or_else(|| panic!("docs/protocol.md has no {marker}"));
    let rest = &doc[at + marker.len()..];
    let start = rest.find("```hex\n").expect("hex block") + "```hex\n".len();
    let end = rest[start..].find("```").expect("block end") + start;
    rest[start..end]
        .split_whitespace()
        .map(|h| u8::from_str_radix(h, 16).unwrap_or_else(|_| panic!("bad hex {h:?} in {name}")))
        .collect()
}

#[test]
fn the_worked_example_in_docs_protocol_md_is_what_the_codec_writes() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md"))
        .expect("doc");
    let event = Event {
        tenant_id: "acme".into(),
        actor_id: "u1".into(),
        action: "user.login".into(),
        resource: "session".into(),
        idempotency_key: "k1".into(),
        metadata: r#"{"mfa":true}"#.into(),
        occurred_at: 1_700_000_000_000_000_000,
        ..Event::default()
    };
    let encoded = event.encode();
    let mut append = Vec::new();
    encode_request(
        &mut append,
        2,
        &Request::Append {
            events: vec![&encoded],
        },
    );
    assert_eq!(append, doc_block(&doc, "append-frame"), "APPEND frame");
    assert_eq!(
        decode_request(append[4], &append[9..]).expect("decodes"),
        Request::Append {
            events: vec![&encoded[..]]
        }
    );
    let created_at = 1_700_000_000_000_000_001;
    let hash = engine::chain::step(&[0x11; 32], 42, created_at, 1, &encoded);
    let mut receipts = Vec::new();
    let receipt = AppendReceipt {
        seq: 42,
        created_at,
        hash,
        duplicate: false,
    };
    encode_response(&mut receipts, 2, &Response::Receipts(vec![receipt]));
    assert_eq!(
        receipts,
        doc_block(&doc, "receipts-frame"),
        "RECEIPTS frame"
    );
}

#[test]
fn the_create_key_example_in_docs_protocol_md_is_what_the_codec_writes() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md"))
        .expect("doc");
    let request = Request::CreateKey {
        id: "billing".into(),
        rights: proto::msg::rights::APPEND | proto::msg::rights::READ,
        tenants: vec!["acme".into()],
    };
    let mut frame = Vec::new();
    encode_request(&mut frame, 3, &request);
    assert_eq!(
        frame,
        doc_block(&doc, "create-key-frame"),
        "CREATE_KEY frame"
    );
    assert_eq!(
        decode_request(frame[4], &frame[9..]).expect("decodes"),
        request
    );
    let reply = Response::KeyCreated {
        id: "billing".into(),
        key: format!("clk_{}", "0123456789abcdef".repeat(3)),
    };
    let mut frame = Vec::new();
    encode_response(&mut frame, 3, &reply);
    assert_eq!(
        frame,
        doc_block(&doc, "key-created-frame"),
        "KEY_CREATED frame"
    );
    assert_eq!(
        proto::msg::decode_response(frame[4], &frame[9..]).expect("decodes"),
        reply
    );
}
