//! Replays the stored fuzz inputs of the protocol's decoders
//! (fuzz/corpus/{frame_decoder,event_decoder,json_check}) and a bounded, seeded
//! mutation loop over them (CHAINLOG_FUZZ_ITERS per target, default 2,000).
//! Long runs use cargo-fuzz in fuzz/.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use proto::event::Event;
use proto::fuzz;
use proto::msg::{
    encode_request, encode_response, AppendReceipt, EventPage, KeyInfo, Origin, Query, Request,
    Response, SchemaInfo, SchemaMode, SchemaSpec, TimeField,
};
use proto::StoredEvent;

type Body = fn(&[u8]);

const TARGETS: [(&str, Body); 3] = [
    ("frame_decoder", fuzz::frame_decoder),
    ("event_decoder", fuzz::event_decoder),
    ("json_check", json_check),
];

/// `fuzz::json_check` with serde_json as the reference, as in
/// fuzz/fuzz_targets/json_check.rs.
fn json_check(data: &[u8]) {
    fuzz::json_check(data, |t| {
        serde_json::from_str::<serde::de::IgnoredAny>(t).is_ok()
    });
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

#[test]
fn stored_inputs_and_seeded_mutations_never_crash() {
    let iters: u64 = std::env::var("CHAINLOG_FUZZ_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000);
    for (target, body) in TARGETS {
        let stored = engine::testing::fuzz::replay_corpus(&fuzz_dir(), target, body, iters);
        assert!(stored > 0, "no stored corpus for {target}");
        eprintln!("{target}: {stored} stored inputs, {iters} mutations");
    }
}

fn sample_event() -> Event {
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
        source_event_id: "s1".into(),
        correlation_id: "c".into(),
        backfilled: true,
    }
}

/// Writes the seed corpus from real frames. Run by hand after a protocol
/// change: `cargo test -p chainlog-proto --test fuzz_corpus -- --ignored`.
#[test]
#[ignore = "regenerates fuzz/corpus seeds"]
fn write_seed_corpus() {
    let e = sample_event();
    let enc = e.encode();
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let d = fuzz_dir().join("corpus").join(target);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(name), bytes).unwrap();
    };
    write("event_decoder", "full", &enc);
    write(
        "event_decoder",
        "minimal",
        &proto::event::Event {
            actor_id: "a".into(),
            ..Event::default()
        }
        .encode(),
    );
    let q = Query {
        tenant_id: "t".into(),
        action: "a.b".into(),
        time_field: TimeField::OccurredAt,
        from: 5,
        to: 10,
        limit: 10,
        cursor: vec![1, 2, 3],
        want_total: true,
        ..Query::default()
    };
    let requests: Vec<(&str, Request<'_>)> = vec![
        (
            "auth",
            Request::Auth {
                key: "clk_0123".into(),
            },
        ),
        (
            "append",
            Request::Append {
                events: vec![&enc, &enc],
            },
        ),
        ("query", Request::Query(q)),
        (
            "read",
            Request::Read {
                from: 1,
                to: 99,
                limit: 5,
            },
        ),
        ("tail", Request::Tail { from: u64::MAX }),
        ("cancel", Request::Cancel { request_id: 3 }),
        ("stats", Request::Stats),
        ("ping", Request::Ping(7)),
        ("unknown", Request::UnknownActions),
        ("list-keys", Request::ListKeys),
        (
            "create-key",
            Request::CreateKey {
                id: "billing".into(),
                rights: 3,
                tenants: vec!["acme".into(), "globex".into()],
            },
        ),
        (
            "revoke-key",
            Request::RevokeKey {
                id: "billing".into(),
            },
        ),
        ("get-schema", Request::GetSchema),
        ("checkpoint", Request::Checkpoint),
        (
            "inclusion-proof",
            Request::InclusionProof { seq: 5, size: 9 },
        ),
        (
            "consistency-proof",
            Request::ConsistencyProof { old: 3, new: 9 },
        ),
        (
            "set-schema",
            Request::SetSchema(SchemaSpec {
                mode: SchemaMode::Strict,
                actions: vec!["user.*".into(), "*.deleted".into()],
            }),
        ),
    ];
    let mut stream = Vec::new();
    for (i, (name, r)) in requests.iter().enumerate() {
        let mut out = Vec::new();
        encode_request(&mut out, i as u32 + 1, r);
        write("frame_decoder", &format!("req-{name}"), &out);
        stream.extend_from_slice(&out);
    }
    write("frame_decoder", "req-pipelined", &stream);
    let stored = StoredEvent {
        seq: 4,
        created_at: 9,
        hash: [7; 32],
        event: e,
    };
    let responses: Vec<(&str, Response)> = vec![
        (
            "auth-ok",
            Response::AuthOk {
                log: "default".into(),
                rights: 3,
                tenants: vec!["a".into()],
            },
        ),
        (
            "receipts",
            Response::Receipts(vec![AppendReceipt {
                seq: 1,
                created_at: 2,
                hash: [3; 32],
                duplicate: true,
            }]),
        ),
        (
            "events",
            Response::Events(EventPage {
                events: vec![stored.clone()],
                cursor: Some(vec![1; 17]),
                total: Some(1),
            }),
        ),
        ("tail-events", Response::TailEvents(vec![stored])),
        ("pong", Response::Pong(7)),
        (
            "actions",
            Response::Actions(vec![proto::msg::ActionSeen {
                action: "x.y".into(),
                count: 3,
                first_seen: 4,
                last_seen: 5,
            }]),
        ),
        ("done", Response::Done),
        (
            "keys",
            Response::Keys(vec![
                KeyInfo {
                    id: "admin".into(),
                    origin: Origin::Config,
                    rights: 7,
                    tenants: vec![],
                },
                KeyInfo {
                    id: "billing".into(),
                    origin: Origin::Runtime,
                    rights: 1,
                    tenants: vec!["acme".into()],
                },
            ]),
        ),
        (
            "key-created",
            Response::KeyCreated {
                id: "billing".into(),
                key: "clk_0123".into(),
            },
        ),
        (
            "schema",
            Response::Schema(SchemaInfo {
                origin: Origin::Runtime,
                spec: SchemaSpec {
                    mode: SchemaMode::Permissive,
                    actions: vec!["user.*".into()],
                },
            }),
        ),
        (
            "checkpoint",
            Response::Checkpoint {
                note: "chainlog/default\n9\nAAAA\n\n— k AAAA\n".into(),
                verifier_key: "k+00000000+AQ==".into(),
            },
        ),
        (
            "inclusion",
            Response::Inclusion {
                chain_hash: [4; 32],
                hashes: vec![[5; 32], [6; 32]],
            },
        ),
        (
            "consistency",
            Response::Consistency {
                hashes: vec![[7; 32]],
            },
        ),
        (
            "error",
            Response::Error(proto::msg::ErrorReply {
                code: proto::ErrorCode::InvalidEvent,
                index: Some(2),
                field: "action".into(),
                message: "no".into(),
            }),
        ),
    ];
    for (name, r) in responses {
        let mut out = Vec::new();
        encode_response(&mut out, 1, &r);
        write("frame_decoder", &format!("resp-{name}"), &out);
    }
    write(
        "frame_decoder",
        "huge-length",
        &[
            0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
        ],
    );
}
