//! The HTTP/JSON API (`docs/http.md`) end to end over real sockets: every
//! route with its exact status and body, the same decisions as the binary
//! protocol (receipts, dedup, tenants, totals), and the OpenAPI document
//! against the docs and the live server.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;

use client::Query;
use common::*;
use serde_json::{json, Value};

struct Api {
    addr: SocketAddr,
    auth: String,
}

impl Api {
    fn new(server: &server::Server, key: &TestKey) -> Api {
        Api {
            addr: server.http_addr().expect("http is on in the test config"),
            auth: format!("Bearer {}", key.text),
        }
    }

    fn call(&self, method: &str, path: &str, extra: &[(&str, &str)], body: &[u8]) -> HttpReply {
        let mut headers = vec![("Authorization", self.auth.as_str())];
        headers.extend_from_slice(extra);
        http(self.addr, method, path, &headers, body)
    }

    fn get(&self, path: &str) -> HttpReply {
        self.call("GET", path, &[], b"")
    }

    fn post(&self, path: &str, body: &Value) -> HttpReply {
        self.call(
            "POST",
            path,
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        )
    }
}

fn ev(tenant: &str, actor: &str) -> Value {
    json!({"tenant_id": tenant, "actor_id": actor, "action": "doc.read", "resource": "doc",
           "occurred_at": 1_700_000_000_000u64})
}

fn hex(h: &[u8; 32]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn appends_one_a_batch_ndjson_and_gzip_and_answers_with_receipts_the_protocol_agrees_with() {
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    let server = start(dir.path(), &[&admin]);
    let api = Api::new(&server, &admin);
    let mut c = connect(server.addr(), &admin);

    // One event: 201 and its receipt.
    let r = api.post("/api/v1/events", &ev("acme", "u0"));
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let receipt = r.json();
    let stored = c.read(0, 1, 0).unwrap().events;
    assert_eq!(stored.len(), 1);
    assert_eq!(
        receipt,
        json!({"seq": 0, "created_at": proto::time::format(stored[0].created_at),
               "hash": hex(&stored[0].hash), "duplicate": false})
    );
    // The stored event is what was sent.
    assert_eq!(stored[0].event.actor_id, "u0");
    assert_eq!(stored[0].event.occurred_at, 1_700_000_000_000_000_000);

    // The Idempotency-Key header: stored once, then the original's receipt
    // with 200.
    let keyed = |body: &Value| {
        api.call(
            "POST",
            "/api/v1/events",
            &[
                ("Content-Type", "application/json"),
                ("Idempotency-Key", "k-1"),
            ],
            body.to_string().as_bytes(),
        )
    };
    let first = keyed(&ev("acme", "u1"));
    assert_eq!(first.status, 201);
    let again = keyed(&ev("acme", "u1"));
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["seq"], first.json()["seq"]);
    assert_eq!(again.json()["duplicate"], true);
    assert_eq!(
        c.read(1, 2, 0).unwrap().events[0].event.idempotency_key,
        "k-1"
    );

    // A batch: all receipts, in order.
    let r = api.post(
        "/api/v1/events",
        &json!({"events": [ev("acme", "b0"), ev("globex", "b1"), ev("acme", "b2")]}),
    );
    assert_eq!(r.status, 200);
    let seqs: Vec<u64> = r.json()["receipts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [2, 3, 4]);

    // NDJSON, a blank line skipped, and gzip.
    let ndjson = format!("{}\n\n{}\n", ev("acme", "n0"), ev("acme", "n1"));
    let r = api.call(
        "POST",
        "/api/v1/events",
        &[("Content-Type", "application/x-ndjson")],
        ndjson.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["receipts"].as_array().unwrap().len(), 2);
    let gz = {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(ev("acme", "g0").to_string().as_bytes())
            .unwrap();
        e.finish().unwrap()
    };
    let r = api.call(
        "POST",
        "/api/v1/events",
        &[
            ("Content-Type", "application/json"),
            ("Content-Encoding", "gzip"),
        ],
        &gz,
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["seq"], 7);
    assert_eq!(c.read(7, 8, 0).unwrap().events[0].event.actor_id, "g0");

    // A batch is all or nothing: the third event's error, nothing stored.
    let r = api.post(
        "/api/v1/events",
        &json!({"events": [ev("acme", "x0"), ev("acme", "x1"), {"tenant_id": "acme", "action": "a", "resource": "r"}]}),
    );
    assert_eq!(r.status, 422);
    assert_eq!(
        r.json(),
        json!({"error": {"code": "invalid_event", "message": "is required", "index": 2, "field": "actor_id"}})
    );
    assert_eq!(c.stats().unwrap().next_seq, 8);

    // GET one event: the same as a read over the protocol.
    let r = api.get("/api/v1/events/3");
    assert_eq!(r.status, 200);
    let e = c.read(3, 4, 0).unwrap().events.remove(0);
    assert_eq!(
        r.json(),
        json!({"seq": 3, "created_at": proto::time::format(e.created_at), "hash": hex(&e.hash),
               "tenant_id": "globex", "actor_id": "b1", "action": "doc.read", "resource": "doc",
               "metadata": {}, "occurred_at": "2023-11-14T22:13:20Z", "backfilled": false})
    );
    let r = api.get("/api/v1/events/8");
    assert_eq!(r.status, 404);
    assert_eq!(r.error_code(), "not_found");

    // The head, as segment-verify --expect-head takes it.
    let head = server.log("default").unwrap().log.head().unwrap();
    assert_eq!(
        api.get("/api/v1/head").json(),
        json!({"seq": 7, "hash": hex(&head.hash)})
    );
    server.shutdown();
}

#[test]
fn queries_page_with_exact_totals_equal_to_the_protocols() {
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    let server = start(dir.path(), &[&admin]);
    let api = Api::new(&server, &admin);
    let mut c = connect(server.addr(), &admin);
    // 10,000 events over 4 tenants, 7 actors, 3 actions, 500 correlation
    // ids, each with its own idempotency key.
    let actions = ["doc.read", "doc.deleted", "user.login"];
    for batch in 0..10 {
        let events: Vec<client::Event> = (0..1000)
            .map(|i| {
                let n = batch * 1000 + i;
                let mut e = event(
                    &format!("t{}", n % 4),
                    &format!("u{}", n % 7),
                    actions[n % 3],
                    "doc",
                );
                e.occurred_at = 1_700_000_000_000_000_000 + n as u64 * 1_000_000_000;
                e.idempotency_key = format!("k{n}");
                e.correlation_id = format!("c{}", n % 500);
                e
            })
            .collect();
        c.append_batch(&events).unwrap();
    }
    let filters = [
        ("", Query::all()),
        (
            "tenant_id=t1",
            Query {
                tenant_id: "t1".into(),
                ..Query::all()
            },
        ),
        (
            "actor_id=u3&action=doc.deleted",
            Query {
                actor_id: "u3".into(),
                action: "doc.deleted".into(),
                ..Query::all()
            },
        ),
        (
            "tenant_id=t2&from=1700000100000&to=2023-11-14T23:00:00Z",
            Query {
                tenant_id: "t2".into(),
                time_field: client::TimeField::OccurredAt,
                from: 1_700_000_100_000_000_000,
                to: 1_700_002_800_000_000_000,
                ..Query::all()
            },
        ),
        (
            "correlation_id=c17",
            Query {
                correlation_id: "c17".into(),
                ..Query::all()
            },
        ),
        (
            "tenant_id=t3&idempotency_key=k4567",
            Query {
                tenant_id: "t3".into(),
                idempotency_key: "k4567".into(),
                ..Query::all()
            },
        ),
    ];
    for (params, q) in filters {
        let want_total = c
            .query_page(&Query {
                want_total: true,
                limit: 1,
                ..q.clone()
            })
            .unwrap()
            .total
            .unwrap();
        let want: Vec<u64> = c.query(q.clone()).map(|e| e.unwrap().seq).collect();
        assert_eq!(want.len() as u64, want_total);
        match q.correlation_id.as_str() {
            "" if q.idempotency_key.is_empty() => {}
            "" => assert_eq!(want, vec![4567]),
            _ => assert_eq!(want, (0..20).map(|i| 17 + 500 * i).collect::<Vec<u64>>()),
        }
        let mut got = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/api/v1/events?limit=1000&{params}");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let page = api.get(&path);
            assert_eq!(page.status, 200, "{}", String::from_utf8_lossy(&page.body));
            let v = page.json();
            assert_eq!(v["pagination"]["total"], want_total, "{params}");
            assert_eq!(v["pagination"]["limit"], 1000);
            got.extend(
                v["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["seq"].as_u64().unwrap()),
            );
            match v["pagination"]["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        assert_eq!(got, want, "{params}");
        // Newest first: the same events the other way, paged by 300.
        let mut got = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/api/v1/events?limit=300&order=desc&{params}");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let v = api.get(&path).json();
            assert_eq!(v["pagination"]["total"], want_total, "{params}");
            got.extend(
                v["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["seq"].as_u64().unwrap()),
            );
            match v["pagination"]["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        let mut reversed = want.clone();
        reversed.reverse();
        assert_eq!(got, reversed, "{params}, newest first");
        // limit=1 gives the total at once, as a migration check does.
        let v = api.get(&format!("/api/v1/events?limit=1&{params}")).json();
        assert_eq!(v["pagination"]["total"], want_total);
        assert_eq!(
            v["data"].as_array().unwrap().len(),
            usize::from(want_total > 0)
        );
    }
    // Bad parameters: 400 with the shape.
    for (path, code) in [
        ("/api/v1/events?limit=0", "invalid_request"),
        ("/api/v1/events?limit=1001", "invalid_request"),
        ("/api/v1/events?limit=x", "malformed"),
        ("/api/v1/events?from=yesterday", "malformed"),
        ("/api/v1/events?tenant=t1", "malformed"),
        ("/api/v1/events?cursor=!!", "invalid_request"),
        ("/api/v1/events?time=updated", "malformed"),
        ("/api/v1/events?order=up", "malformed"),
    ] {
        let r = api.get(path);
        assert_eq!(r.status, 400, "{path}");
        assert_eq!(r.error_code(), code, "{path}");
    }
    server.shutdown();
}

#[test]
fn admin_proof_and_health_routes_answer_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    let reader = key("reader", "default", &["read"], &["acme"]);
    let server = start(dir.path(), &[&admin, &reader]);
    let api = Api::new(&server, &admin);
    let limited = Api::new(&server, &reader);
    for i in 0..5 {
        assert_eq!(
            api.post("/api/v1/events", &ev("acme", &format!("u{i}")))
                .status,
            201
        );
    }
    let anon = |path: &str| http(api.addr, "GET", path, &[], b"");
    assert_eq!(anon("/healthz").json(), json!({"status": "ok"}));
    assert_eq!(anon("/readyz").json(), json!({"status": "ready"}));
    assert_eq!(anon("/api/v1/openapi.json").json()["openapi"], "3.1.0");

    // Authentication and rights.
    let r = anon("/api/v1/events");
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (401, "unauthenticated")
    );
    let r = http(
        api.addr,
        "GET",
        "/api/v1/events",
        &[("Authorization", "Bearer clk_nope")],
        b"",
    );
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (401, "unauthenticated")
    );
    let r = limited.post("/api/v1/events", &ev("acme", "x"));
    assert_eq!((r.status, r.error_code().as_str()), (403, "forbidden"));
    let r = limited.get("/api/v1/events?tenant_id=globex");
    assert_eq!((r.status, r.error_code().as_str()), (403, "forbidden"));
    for path in [
        "/api/v1/keys",
        "/api/v1/schema",
        "/api/v1/stats",
        "/api/v1/head",
    ] {
        assert_eq!(limited.get(path).status, 403, "{path}");
    }
    // Routing.
    let r = api.get("/api/v1/nothing");
    assert_eq!((r.status, r.error_code().as_str()), (404, "not_found"));
    let r = api.call("DELETE", "/api/v1/events", &[], b"");
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (405, "method_not_allowed")
    );
    assert_eq!(r.header("allow"), Some("GET, POST"));

    // Stats and checkpoint.
    let stats = api.get("/api/v1/stats").json();
    assert_eq!(stats["log"], "default");
    assert_eq!(stats["next_seq"], 5);
    assert_eq!(stats["appends"], 5);
    let cp = api.get("/api/v1/checkpoint").json();
    let vkey = engine::note::VerifierKey::parse(cp["verifier_key"].as_str().unwrap()).unwrap();
    let checkpoint =
        engine::note::Checkpoint::open(cp["note"].as_str().unwrap().as_bytes(), &[vkey]).unwrap();
    assert_eq!(checkpoint.size, 5);
    // Proofs: they verify against that checkpoint.
    let p = api.get("/api/v1/proofs/inclusion?seq=2&size=5").json();
    let hashes: Vec<[u8; 32]> = p["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| unhex(h.as_str().unwrap()))
        .collect();
    let leaf = engine::merkle::leaf_hash(&unhex(p["chain_hash"].as_str().unwrap()));
    engine::merkle::verify_inclusion(2, 5, &leaf, &hashes, &checkpoint.root_hash).unwrap();
    let p = api.get("/api/v1/proofs/consistency?old=2&new=5").json();
    assert_eq!((p["old"].as_u64(), p["new"].as_u64()), (Some(2), Some(5)));
    let r = api.get("/api/v1/proofs/inclusion?seq=5&size=5");
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (400, "invalid_request")
    );
    let r = api.get("/api/v1/proofs/inclusion?seq=1");
    assert_eq!((r.status, r.error_code().as_str()), (400, "malformed"));

    // Schema: set, read, unknown actions counted under it.
    let r = api.call(
        "PUT",
        "/api/v1/schema",
        &[("Content-Type", "application/json")],
        json!({"mode": "permissive", "actions": ["user.*"]})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.json(),
        json!({"origin": "runtime", "mode": "permissive", "actions": ["user.*"]})
    );
    assert_eq!(api.get("/api/v1/schema").json(), r.json());
    // With when the first and the last of them were stored.
    let docs = api.get("/api/v1/events?action=doc.read&limit=10").json();
    let created: Vec<Value> = docs["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["created_at"].clone())
        .collect();
    assert_eq!(created.len(), 5);
    assert_eq!(
        api.get("/api/v1/schema/unknown-actions").json(),
        json!({"actions": [{"action": "doc.read", "count": 5,
            "first_seen": created[0], "last_seen": created[4]}]})
    );
    let r = api.call(
        "PUT",
        "/api/v1/schema",
        &[("Content-Type", "application/json")],
        br#"{"mode":"loose"}"#,
    );
    assert_eq!((r.status, r.error_code().as_str()), (400, "malformed"));

    // Keys: create, list, use, revoke.
    let r = api.post(
        "/api/v1/keys",
        &json!({"id": "svc", "rights": ["append"], "tenants": ["acme"]}),
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let created = r.json();
    assert_eq!(created["id"], "svc");
    let text = created["key"].as_str().unwrap().to_owned();
    assert!(text.starts_with("clk_"));
    let listed = api.get("/api/v1/keys").json();
    assert!(listed["keys"].as_array().unwrap().contains(
        &json!({"id": "svc", "origin": "runtime", "rights": ["append"], "tenants": ["acme"]})
    ));
    let svc = |body: &Value| {
        http(
            api.addr,
            "POST",
            "/api/v1/events",
            &[
                ("Authorization", &format!("Bearer {text}")),
                ("Content-Type", "application/json"),
            ],
            body.to_string().as_bytes(),
        )
    };
    assert_eq!(svc(&ev("acme", "svc")).status, 201);
    let r = api.call("DELETE", "/api/v1/keys/svc", &[], b"");
    assert_eq!(r.status, 204);
    assert!(r.body.is_empty());
    assert_eq!(svc(&ev("acme", "svc")).status, 401);
    let r = api.call("DELETE", "/api/v1/keys/svc", &[], b"");
    assert_eq!((r.status, r.error_code().as_str()), (404, "not_found"));
    server.shutdown();
}

fn unhex(s: &str) -> [u8; 32] {
    let mut h = [0u8; 32];
    for (i, b) in h.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
    }
    h
}

/// `METHOD /path` as docs/http.md writes its routes (in headings and
/// tables): the set the document and the server must both have.
fn documented_routes() -> BTreeSet<(String, String)> {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/http.md")).unwrap();
    let mut found = BTreeSet::new();
    for method in ["GET", "POST", "PUT", "DELETE"] {
        let needle = format!("{method} /");
        let mut rest = doc.as_str();
        while let Some(at) = rest.find(&needle) {
            let path: String = rest[at + method.len() + 1..]
                .chars()
                .take_while(|c| !c.is_whitespace() && !matches!(c, '`' | '?' | ')' | ':' | ','))
                .collect();
            found.insert((method.to_owned(), path));
            rest = &rest[at + needle.len()..];
        }
    }
    found
}

#[test]
fn the_openapi_document_lists_every_route_the_server_answers_and_the_docs_name() {
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    let server = start(dir.path(), &[&admin]);
    let api = Api::new(&server, &admin);
    let doc = http(api.addr, "GET", "/api/v1/openapi.json", &[], b"").json();
    let mut listed = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            listed.insert((method.to_ascii_uppercase(), path.clone()));
        }
    }
    assert_eq!(
        listed,
        documented_routes(),
        "the OpenAPI document against docs/http.md"
    );
    // The copy in docs/ is the document the server serves.
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
    if std::env::var("CHAINLOG_WRITE_OPENAPI").is_ok_and(|v| v == "1") {
        std::fs::write(
            file,
            format!("{}\n", serde_json::to_string_pretty(&doc).unwrap()),
        )
        .unwrap();
    }
    let kept: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    assert_eq!(
        kept, doc,
        "docs/openapi.json is stale: rerun this test with CHAINLOG_WRITE_OPENAPI=1"
    );
    // Each answers: never the router's 404 or 405.
    for (method, path) in &listed {
        if path == "/api/v1/events/stream" {
            continue; // never ends: the stream test reads it
        }
        let concrete = path.replace("{seq}", "0").replace("{id}", "nobody");
        let r = api.call(
            method,
            &concrete,
            &[("Content-Type", "application/json")],
            b"{}",
        );
        let routed = !(r.status == 404
            && r.json()["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("no route"))
            && r.status != 405;
        assert!(routed, "{method} {concrete}: {}", r.status);
    }
    server.shutdown();
}

/// Reads an SSE stream until `n` more events arrived; their ids, and the
/// text read.
fn read_events(s: &mut std::net::TcpStream, n: usize) -> (Vec<u64>, String) {
    use std::io::Read;
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    loop {
        // Whole messages only: a read may end inside one.
        let whole = text.rfind("\n\n").map_or("", |end| &text[..end]);
        let ids: Vec<u64> = whole
            .lines()
            .filter_map(|l| l.strip_prefix("id: "))
            .map(|v| v.parse().unwrap())
            .collect();
        if ids.len() >= n {
            return (ids, text);
        }
        let got = s
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("{e} after {ids:?}: {text}"));
        assert!(got > 0, "the stream ended: {text}");
        text.push_str(&String::from_utf8_lossy(&buf[..got]));
    }
}

#[test]
fn the_stream_sends_durable_events_as_sse_and_resumes_after_last_event_id() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    let acme = key("acme", "default", &["read"], &["acme"]);
    let server = start(dir.path(), &[&admin, &acme]);
    let api = Api::new(&server, &admin);
    for (i, t) in ["acme", "globex", "acme"].iter().enumerate() {
        assert_eq!(
            api.post("/api/v1/events", &ev(t, &format!("u{i}"))).status,
            201
        );
    }
    let open = |key: &TestKey, path: &str, extra: &str| {
        let mut s = raw_connect(api.addr);
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n{extra}\r\n",
            key.text
        )
        .unwrap();
        s
    };
    // From seq 0: the three stored, then one appended while it is open.
    let mut s = open(&admin, "/api/v1/events/stream?from=0", "");
    let (ids, text) = read_events(&mut s, 3);
    assert_eq!(ids, [0, 1, 2]);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("content-type: text/event-stream"), "{text}");
    assert!(
        text.contains("id: 0\nevent: event\ndata: {\"seq\":0,\"created_at\":"),
        "{text}"
    );
    assert_eq!(api.post("/api/v1/events", &ev("acme", "late")).status, 201);
    // (Each call reads on from where the last stopped.)
    let (ids, text) = read_events(&mut s, 1);
    assert_eq!(ids, [3]);
    assert!(text.contains("\"actor_id\":\"late\""), "{text}");
    // Resumed after 1: from 2 on. A tenant-limited key sees its tenant only.
    let mut s = open(&admin, "/api/v1/events/stream", "Last-Event-ID: 1\r\n");
    assert_eq!(read_events(&mut s, 2).0, [2, 3]);
    let mut s = open(&acme, "/api/v1/events/stream?from=0", "");
    assert_eq!(read_events(&mut s, 3).0, [0, 2, 3]);
    server.shutdown();
}
