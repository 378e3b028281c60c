//! Tenant isolation: a key limited to tenant "a" never writes another
//! tenant's events and never sees one, through appends, queries (with every
//! filter and both time ranges, paged), seq-range reads and tails. 1,000
//! randomized (deterministic) attempts are checked against a model of what
//! was stored.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use client::{Client, ErrorCode, Event, Query, TimeField};
use common::*;
use engine::testing::Rng;

const SEC: u64 = 1_000_000_000;
const BASE: u64 = 1_700_000_000 * SEC;
const TENANTS: [&str; 3] = ["a", "b", "c"];
const ACTORS: [&str; 4] = ["u0", "u1", "u2", "u3"];
const ACTIONS: [&str; 3] = ["doc.read", "doc.deleted", "user.login"];
const RESOURCES: [&str; 2] = ["doc", "user"];
const RESOURCE_IDS: [&str; 4] = ["r0", "r1", "r2", "r3"];

/// What the test knows about one stored event.
#[derive(Debug, Clone)]
struct Stored {
    seq: u64,
    created_at: u64,
    event: Event,
}

fn pick<'a>(rng: &mut Rng, from: &[&'a str]) -> &'a str {
    from[rng.below(from.len() as u64) as usize]
}

/// A random event of `tenant` (which may be empty).
fn random_event(rng: &mut Rng, tenant: &str) -> Event {
    let mut e = event(
        tenant,
        pick(rng, &ACTORS),
        pick(rng, &ACTIONS),
        pick(rng, &RESOURCES),
    );
    e.resource_id = pick(rng, &RESOURCE_IDS).into();
    e.occurred_at = BASE + rng.below(1000) * SEC;
    e
}

/// A filter, or none: one of the values, or (rarely) one nobody uses.
fn random_filter(rng: &mut Rng, values: &[&str]) -> String {
    match rng.below(10) {
        0..=4 => String::new(),
        5 => "nobody".into(),
        _ => pick(rng, values).into(),
    }
}

/// Whether the server should return `s` for `q` to a key limited to "a".
fn matches_for_a(q: &Query, s: &Stored) -> bool {
    let e = &s.event;
    let f = |filter: &str, v: &str| filter.is_empty() || filter == v;
    e.tenant_id == "a"
        && f(&q.actor_id, &e.actor_id)
        && f(&q.action, &e.action)
        && f(&q.resource, &e.resource)
        && f(&q.resource_id, &e.resource_id)
        && match q.time_field {
            TimeField::None => true,
            TimeField::CreatedAt => (q.from..q.to).contains(&s.created_at),
            TimeField::OccurredAt => (q.from..q.to).contains(&e.occurred_at),
        }
}

/// Adds the events an append stored to the model.
fn record(model: &mut Vec<Stored>, events: &[Event], rs: &[client::AppendReceipt]) {
    assert_eq!(events.len(), rs.len());
    for (e, r) in events.iter().zip(rs) {
        assert_eq!((r.seq, r.duplicate), (model.len() as u64, false));
        model.push(Stored {
            seq: r.seq,
            created_at: r.created_at,
            event: e.clone(),
        });
    }
}

/// Fails the test (instead of hanging CI) if it runs far too long.
fn watchdog(limit: Duration) -> Arc<AtomicBool> {
    let done = Arc::new(AtomicBool::new(false));
    let d = done.clone();
    std::thread::spawn(move || {
        let start = std::time::Instant::now();
        while !d.load(Ordering::Acquire) {
            if start.elapsed() > limit {
                eprintln!("server_isolation: no progress after {limit:?}; aborting");
                std::process::exit(101);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    done
}

/// Every event `client` may read in `from..to`, following the cursor.
fn read_all(client: &mut Client, from: u64, to: u64, limit: u16) -> Vec<client::StoredEvent> {
    let mut out = Vec::new();
    let mut at = from;
    loop {
        let page = client.read(at, to, limit).unwrap();
        assert!(limit == 0 || page.events.len() <= limit as usize);
        out.extend(page.events);
        match page.cursor {
            None => return out,
            Some(c) => {
                let next = u64::from_le_bytes(c[..].try_into().unwrap());
                assert!(next > at, "the cursor moves forward");
                at = next;
            }
        }
    }
}

#[test]
fn a_tenant_limited_key_sees_and_writes_only_its_tenant() {
    let done = watchdog(Duration::from_secs(120));
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    let key_a = key("tenant-a", "default", &["append", "read"], &["a"]);
    let key_b = key("tenant-b", "default", &["append", "read"], &["b"]);
    let server = start(dir.path(), &[&admin, &key_a, &key_b]);
    let mut adm = connect(server.addr(), &admin);
    let mut ca = connect(server.addr(), &key_a);
    let mut cb = connect(server.addr(), &key_b);
    let info = ca.auth(&key_a.text).unwrap();
    assert_eq!(info.tenants, vec!["a".to_string()]);
    let mut rng = Rng::new(0x1501_a7e5);
    let mut model: Vec<Stored> = Vec::new();
    // Seed: 300 events of b and c only (so the first index block holds no
    // "a"), then 400 of all three, in batches of 100.
    for round in 0..7 {
        let batch: Vec<Event> = (0..100)
            .map(|_| {
                let t = if round < 3 {
                    TENANTS[1 + rng.below(2) as usize]
                } else {
                    pick(&mut rng, &TENANTS)
                };
                random_event(&mut rng, t)
            })
            .collect();
        let rs = adm.append_batch(&batch).unwrap();
        record(&mut model, &batch, &rs);
    }
    // Tenant b's idempotency key: the same text from tenant a is a
    // different key.
    let mut b_keyed = random_event(&mut rng, "b");
    b_keyed.idempotency_key = "shared-key".into();
    let rs = adm.append_batch(std::slice::from_ref(&b_keyed)).unwrap();
    record(&mut model, std::slice::from_ref(&b_keyed), &rs);
    let mut a_keyed = random_event(&mut rng, "");
    a_keyed.idempotency_key = "shared-key".into();
    let r = ca.append(&a_keyed).unwrap();
    a_keyed.tenant_id = "a".into();
    record(&mut model, std::slice::from_ref(&a_keyed), &[r]);
    let again = ca.append(&a_keyed).unwrap();
    assert_eq!((again.seq, again.duplicate), (r.seq, true));
    assert_ne!(r.seq, rs[0].seq);

    let (mut forbidden_appends, mut forbidden_queries) = (0u64, 0u64);
    let (mut attempted_foreign_appends, mut attempted_foreign_queries) = (0u64, 0u64);
    let mut ops = [0u32; 6];
    // Attempts whose answer held at least one event (queries, reads).
    let (mut nonempty_queries, mut nonempty_reads) = (0u32, 0u32);
    for attempt in 0..1000 {
        let op = match rng.below(100) {
            0..=19 => 0,
            20..=34 => 1,
            35..=49 => 2,
            50..=74 => 3,
            75..=94 => 4,
            _ => 5,
        };
        ops[op] += 1;
        let ctx = format!("attempt {attempt}, op {op}");
        match op {
            // A batch with one foreign event: refused, naming it; nothing
            // stored.
            0 => {
                attempted_foreign_appends += 1;
                let n = 1 + rng.below(4) as usize;
                let bad = rng.below(n as u64) as usize;
                let batch: Vec<Event> = (0..n)
                    .map(|i| {
                        let t = if i == bad {
                            pick(&mut rng, &["b", "c"])
                        } else {
                            pick(&mut rng, &["a", ""])
                        };
                        random_event(&mut rng, t)
                    })
                    .collect();
                let e = server_error(ca.append_batch(&batch));
                assert_eq!(
                    (e.code, e.index, e.field.as_str()),
                    (ErrorCode::Forbidden, Some(bad as u32), "tenant_id"),
                    "{ctx}: {e}"
                );
                forbidden_appends += 1;
                assert_eq!(adm.stats().unwrap().next_seq, model.len() as u64, "{ctx}");
            }
            // A batch without tenants: stored as tenant "a".
            1 => {
                let n = 1 + rng.below(3) as usize;
                let mut batch: Vec<Event> = (0..n)
                    .map(|_| {
                        let t = if rng.below(4) == 0 { "a" } else { "" };
                        random_event(&mut rng, t)
                    })
                    .collect();
                let rs = ca.append_batch(&batch).unwrap();
                for e in &mut batch {
                    e.tenant_id = "a".into();
                }
                let first = model.len() as u64;
                record(&mut model, &batch, &rs);
                let back = ca.read(first, first + n as u64, 0).unwrap();
                assert_eq!(back.events.len(), n, "{ctx}");
                for (got, want) in back.events.iter().zip(&batch) {
                    assert_eq!(&got.event, want, "{ctx}");
                }
                let back = adm.read(first, first + n as u64, 0).unwrap();
                assert!(back.events.iter().all(|e| e.event.tenant_id == "a"));
            }
            // A query naming another tenant: refused.
            2 => {
                attempted_foreign_queries += 1;
                let mut q = Query::all();
                q.tenant_id = pick(&mut rng, &["b", "c", "nobody"]).into();
                q.actor_id = random_filter(&mut rng, &ACTORS);
                let e = server_error(ca.query_page(&q));
                assert_eq!(e.code, ErrorCode::Forbidden, "{ctx}: {e}");
                forbidden_queries += 1;
            }
            // A query without a tenant (or naming "a"), random filters.
            3 => {
                let mut q = Query::all();
                q.tenant_id = if rng.below(4) == 0 { "a" } else { "" }.into();
                q.actor_id = random_filter(&mut rng, &ACTORS);
                q.action = random_filter(&mut rng, &ACTIONS);
                q.resource = random_filter(&mut rng, &RESOURCES);
                q.resource_id = random_filter(&mut rng, &RESOURCE_IDS);
                match rng.below(3) {
                    0 => {}
                    1 => {
                        let x = model[rng.below(model.len() as u64) as usize].created_at;
                        let y = model[rng.below(model.len() as u64) as usize].created_at;
                        q.time_field = TimeField::CreatedAt;
                        (q.from, q.to) = (x.min(y), x.max(y) + 1);
                    }
                    _ => {
                        q.time_field = TimeField::OccurredAt;
                        q.from = BASE + rng.below(1000) * SEC;
                        q.to = q.from + 1 + rng.below(400) * SEC;
                    }
                }
                q.limit = [0, 1, 7, 100, 1000][rng.below(5) as usize];
                let want: Vec<u64> = model
                    .iter()
                    .filter(|s| matches_for_a(&q, s))
                    .map(|s| s.seq)
                    .collect();
                let got: Vec<client::StoredEvent> =
                    ca.query(q.clone()).collect::<Result<_, _>>().unwrap();
                assert!(got.iter().all(|e| e.event.tenant_id == "a"), "{ctx}");
                assert_eq!(
                    got.iter().map(|e| e.seq).collect::<Vec<_>>(),
                    want,
                    "{ctx}: {q:?}"
                );
                for g in &got {
                    assert_eq!(g.event, model[g.seq as usize].event, "{ctx}");
                }
                nonempty_queries += u32::from(!got.is_empty());
                if rng.below(3) == 0 {
                    let mut tq = q.clone();
                    tq.want_total = true;
                    let page = ca.query_page(&tq).unwrap();
                    assert_eq!(page.total, Some(want.len() as u64), "{ctx}: {q:?}");
                }
            }
            // A seq range: only "a", exactly those in range.
            4 => {
                let end = model.len() as u64;
                let from = rng.below(end + 10);
                let to = from + rng.below(300);
                let limit = [0, 5, 100, 1000][rng.below(4) as usize];
                let want: Vec<u64> = model
                    .iter()
                    .filter(|s| s.event.tenant_id == "a" && (from..to).contains(&s.seq))
                    .map(|s| s.seq)
                    .collect();
                let got = read_all(&mut ca, from, to, limit);
                assert!(got.iter().all(|e| e.event.tenant_id == "a"), "{ctx}");
                assert_eq!(
                    got.iter().map(|e| e.seq).collect::<Vec<_>>(),
                    want,
                    "{ctx}: read {from}..{to} limit {limit}"
                );
                nonempty_reads += u32::from(!got.is_empty());
            }
            // A tail from 0: every "a" event so far, in order, and nothing
            // else.
            _ => {
                let want: Vec<u64> = model
                    .iter()
                    .filter(|s| s.event.tenant_id == "a")
                    .map(|s| s.seq)
                    .collect();
                let mut tail = ca.tail(0).unwrap();
                let got: Vec<client::StoredEvent> = tail
                    .by_ref()
                    .take(want.len())
                    .collect::<Result<_, _>>()
                    .unwrap();
                tail.cancel().unwrap();
                assert!(got.iter().all(|e| e.event.tenant_id == "a"), "{ctx}");
                assert_eq!(got.iter().map(|e| e.seq).collect::<Vec<_>>(), want, "{ctx}");
            }
        }
    }
    assert!(
        ops.iter().all(|&n| n > 20),
        "every kind of attempt ran: {ops:?}"
    );
    assert!(
        nonempty_queries > ops[3] / 3 && nonempty_reads > ops[4] / 2,
        "the filters select something: {nonempty_queries} of {} queries, {nonempty_reads} of {} reads",
        ops[3],
        ops[4]
    );
    assert_eq!(forbidden_appends, attempted_foreign_appends);
    assert_eq!(forbidden_queries, attempted_foreign_queries);
    assert_eq!(
        forbidden_appends + forbidden_queries,
        u64::from(ops[0] + ops[2])
    );

    // A tail started before new events sees only "a"'s new ones: the admin
    // appends b, a, c, a; the tail from the current head yields exactly the
    // two "a" events.
    let head = model.len() as u64;
    let mut tail = ca.tail(head).unwrap();
    let burst: Vec<Event> = ["b", "a", "c", "a"]
        .iter()
        .map(|t| random_event(&mut rng, t))
        .collect();
    let rs = adm.append_batch(&burst).unwrap();
    record(&mut model, &burst, &rs);
    let got: Vec<client::StoredEvent> = tail.by_ref().take(2).collect::<Result<_, _>>().unwrap();
    tail.cancel().unwrap();
    assert_eq!(
        got.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![head + 1, head + 3]
    );

    // Tenant b's key, symmetrically: exactly b's events; "a" refused.
    let b_seqs: Vec<u64> = model
        .iter()
        .filter(|s| s.event.tenant_id == "b")
        .map(|s| s.seq)
        .collect();
    let got: Vec<u64> = cb.query(Query::all()).map(|e| e.unwrap().seq).collect();
    assert_eq!(got, b_seqs);
    let e = server_error(cb.append(&random_event(&mut rng, "a")));
    assert_eq!((e.code, e.index), (ErrorCode::Forbidden, Some(0)));
    let mut q = Query::all();
    q.tenant_id = "a".into();
    assert_eq!(server_error(cb.query_page(&q)).code, ErrorCode::Forbidden);

    // The whole log is exactly the model, and the refusals were counted.
    let all: Vec<client::StoredEvent> = adm.query(Query::all()).collect::<Result<_, _>>().unwrap();
    assert_eq!(all.len(), model.len());
    for (got, want) in all.iter().zip(&model) {
        assert_eq!((got.seq, got.created_at), (want.seq, want.created_at));
        assert_eq!(got.event, want.event);
    }
    let forbidden_total = forbidden_appends + forbidden_queries + 2;
    assert!(server.metrics_text().contains(&format!(
        "chainlog_errors_total{{code=\"forbidden\"}} {forbidden_total}\n"
    )));
    done.store(true, Ordering::Release);
}

/// A tail runs with the key that started it: re-authenticating, even
/// unsuccessfully, ends it (DONE), so it cannot outlive the key's rights.
#[test]
fn re_authentication_ends_running_tails() {
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    let server = start(dir.path(), &[&admin]);
    let mut c = connect(server.addr(), &admin);
    let tail = c.send(&proto::msg::Request::Tail { from: 0 }).unwrap();
    let auth = c
        .send(&proto::msg::Request::Auth {
            key: "clk_wrong".into(),
        })
        .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let (id, resp) = c.next_response().unwrap();
        seen.push((id, resp));
    }
    assert_eq!(seen[0], (tail, proto::msg::Response::Done));
    assert!(
        matches!(&seen[1], (id, proto::msg::Response::Error(e)) if *id == auth && e.code == ErrorCode::Unauthenticated)
    );
}

/// Whole-log stats are for admins and unrestricted readers; a key limited
/// to several tenants must name one on every event it appends.
#[test]
fn tenant_limited_keys_get_no_whole_log_view() {
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    let reader = key("reader", "default", &["read"], &[]);
    let two = key("two", "default", &["append", "read"], &["a", "b"]);
    let server = start(dir.path(), &[&admin, &reader, &two]);
    let mut c = connect(server.addr(), &two);
    assert_eq!(c.stats().unwrap_err().code(), Some(ErrorCode::Forbidden));
    let mut e = event("", "u", "x.y", "r");
    let err = c
        .append_batch(&[event("a", "u", "x.y", "r"), e.clone()])
        .unwrap_err();
    match err {
        client::ClientError::Server(r) => {
            assert_eq!(
                (r.code, r.index, r.field.as_str()),
                (ErrorCode::Forbidden, Some(1), "tenant_id")
            );
        }
        other => panic!("{other:?}"),
    }
    e.tenant_id = "b".into();
    assert_eq!(c.append(&e).unwrap().seq, 0);
    assert_eq!(connect(server.addr(), &reader).stats().unwrap().next_seq, 1);
    assert_eq!(connect(server.addr(), &admin).stats().unwrap().next_seq, 1);
}

/// An event as the HTTP API takes it.
fn event_json(e: &Event) -> serde_json::Value {
    let mut v = serde_json::json!({
        "actor_id": e.actor_id, "action": e.action, "resource": e.resource,
        "resource_id": e.resource_id, "occurred_at": e.occurred_at / 1_000_000,
    });
    if !e.tenant_id.is_empty() {
        v["tenant_id"] = e.tenant_id.clone().into();
    }
    v
}

/// Percent-encodes a query parameter's value.
fn param(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The same model test over HTTP: 1,000 seeded attempts by a key limited
/// to tenant "a" (appends, queries with every filter both ways, reads by
/// seq, streams), none of which may write or show another tenant's event.
#[test]
fn a_tenant_limited_key_sees_and_writes_only_its_tenant_over_http() {
    let done = watchdog(Duration::from_secs(180));
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    let key_a = key("tenant-a", "default", &["append", "read"], &["a"]);
    let server = start(dir.path(), &[&admin, &key_a]);
    let addr = server.http_addr().unwrap();
    let auth = format!("Bearer {}", key_a.text);
    let get = |path: &str| http(addr, "GET", path, &[("Authorization", &auth)], b"");
    let post = |body: &serde_json::Value| {
        http(
            addr,
            "POST",
            "/api/v1/events",
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            body.to_string().as_bytes(),
        )
    };
    let mut adm = connect(server.addr(), &admin);
    let mut rng = Rng::new(0x1501_a7e6);
    let mut model: Vec<Stored> = Vec::new();
    for _ in 0..6 {
        let batch: Vec<Event> = (0..100)
            .map(|_| {
                let t = pick(&mut rng, &TENANTS);
                random_event(&mut rng, t)
            })
            .collect();
        let rs = adm.append_batch(&batch).unwrap();
        record(&mut model, &batch, &rs);
    }
    let mut ops = [0u32; 6];
    let mut leaks_checked = 0u64;
    for attempt in 0..1000 {
        let op = match rng.below(100) {
            0..=19 => 0,
            20..=34 => 1,
            35..=49 => 2,
            50..=74 => 3,
            75..=96 => 4,
            _ => 5,
        };
        ops[op] += 1;
        let ctx = format!("attempt {attempt}, op {op}");
        match op {
            0 => {
                let n = 1 + rng.below(4) as usize;
                let bad = rng.below(n as u64) as usize;
                let batch: Vec<serde_json::Value> = (0..n)
                    .map(|i| {
                        let t = if i == bad {
                            pick(&mut rng, &["b", "c"])
                        } else {
                            pick(&mut rng, &["a", ""])
                        };
                        event_json(&random_event(&mut rng, t))
                    })
                    .collect();
                let r = post(&serde_json::json!({"events": batch}));
                assert_eq!(r.status, 403, "{ctx}");
                let v = r.json();
                assert_eq!(v["error"]["index"], bad, "{ctx}");
                assert_eq!(v["error"]["field"], "tenant_id", "{ctx}");
                assert_eq!(adm.stats().unwrap().next_seq, model.len() as u64, "{ctx}");
            }
            1 => {
                let n = 1 + rng.below(3) as usize;
                let mut batch: Vec<Event> = (0..n)
                    .map(|_| {
                        let t = if rng.below(4) == 0 { "a" } else { "" };
                        random_event(&mut rng, t)
                    })
                    .collect();
                let body =
                    serde_json::json!({"events": batch.iter().map(event_json).collect::<Vec<_>>()});
                let r = post(&body);
                assert_eq!(r.status, 200, "{ctx}: {}", String::from_utf8_lossy(&r.body));
                let rs: Vec<client::AppendReceipt> = r.json()["receipts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| client::AppendReceipt {
                        seq: x["seq"].as_u64().unwrap(),
                        created_at: proto::time::parse(x["created_at"].as_str().unwrap()).unwrap(),
                        hash: [0; 32],
                        duplicate: x["duplicate"].as_bool().unwrap(),
                    })
                    .collect();
                for e in &mut batch {
                    e.tenant_id = "a".into();
                }
                record(&mut model, &batch, &rs);
            }
            2 => {
                let t = pick(&mut rng, &["b", "c", "nobody"]);
                let r = get(&format!("/api/v1/events?tenant_id={t}&limit=5"));
                assert_eq!(
                    (r.status, r.error_code().as_str()),
                    (403, "forbidden"),
                    "{ctx}"
                );
            }
            3 => {
                let mut q = Query::all();
                q.actor_id = random_filter(&mut rng, &ACTORS);
                q.action = random_filter(&mut rng, &ACTIONS);
                q.resource = random_filter(&mut rng, &RESOURCES);
                q.resource_id = random_filter(&mut rng, &RESOURCE_IDS);
                let mut params = String::new();
                for (name, v) in [
                    ("actor_id", &q.actor_id),
                    ("action", &q.action),
                    ("resource", &q.resource),
                    ("resource_id", &q.resource_id),
                ] {
                    if !v.is_empty() {
                        params.push_str(&format!("&{name}={}", param(v)));
                    }
                }
                if rng.below(4) == 0 {
                    params.push_str("&tenant_id=a");
                }
                match rng.below(3) {
                    0 => {}
                    1 => {
                        let x = model[rng.below(model.len() as u64) as usize].created_at;
                        let y = model[rng.below(model.len() as u64) as usize].created_at;
                        q.time_field = TimeField::CreatedAt;
                        (q.from, q.to) = (x.min(y), x.max(y) + 1);
                        params.push_str(&format!(
                            "&time=created&from={}&to={}",
                            param(&proto::time::format(q.from)),
                            param(&proto::time::format(q.to))
                        ));
                    }
                    _ => {
                        q.time_field = TimeField::OccurredAt;
                        q.from = BASE + rng.below(1000) * SEC;
                        q.to = q.from + 1 + rng.below(400) * SEC;
                        // Milliseconds: q.to is a whole second plus 1 ns,
                        // so the next millisecond is the same bound.
                        params.push_str(&format!(
                            "&from={}&to={}",
                            q.from / 1_000_000,
                            q.to.div_ceil(1_000_000)
                        ));
                    }
                }
                let desc = rng.below(2) == 0;
                let limit = [1, 7, 100, 1000][rng.below(4) as usize];
                let mut want: Vec<u64> = model
                    .iter()
                    .filter(|s| matches_for_a(&q, s))
                    .map(|s| s.seq)
                    .collect();
                if desc {
                    want.reverse();
                    params.push_str("&order=desc");
                }
                let mut got = Vec::new();
                let mut cursor: Option<String> = None;
                loop {
                    let mut path = format!("/api/v1/events?limit={limit}{params}");
                    if let Some(c) = &cursor {
                        path.push_str(&format!("&cursor={c}"));
                    }
                    let r = get(&path);
                    assert_eq!(r.status, 200, "{ctx}: {path}");
                    let v = r.json();
                    assert_eq!(v["pagination"]["total"], want.len(), "{ctx}: {path}");
                    for e in v["data"].as_array().unwrap() {
                        assert_eq!(e["tenant_id"], "a", "{ctx}: a leak");
                        leaks_checked += 1;
                        got.push(e["seq"].as_u64().unwrap());
                    }
                    match v["pagination"]["next_cursor"].as_str() {
                        Some(c) => cursor = Some(c.to_owned()),
                        None => break,
                    }
                }
                assert_eq!(got, want, "{ctx}: {params}");
            }
            4 => {
                let seq = rng.below(model.len() as u64 + 5);
                let r = get(&format!("/api/v1/events/{seq}"));
                match model.get(seq as usize) {
                    Some(s) if s.event.tenant_id == "a" => {
                        assert_eq!(r.status, 200, "{ctx}");
                        assert_eq!(r.json()["actor_id"], s.event.actor_id.as_str(), "{ctx}");
                        leaks_checked += 1;
                    }
                    _ => assert_eq!(
                        (r.status, r.error_code().as_str()),
                        (404, "not_found"),
                        "{ctx}: seq {seq}"
                    ),
                }
            }
            _ => {
                let want: Vec<u64> = model
                    .iter()
                    .filter(|s| s.event.tenant_id == "a")
                    .map(|s| s.seq)
                    .collect();
                let mut s = raw_connect(addr);
                use std::io::{Read, Write};
                write!(s, "GET /api/v1/events/stream?from=0 HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n").unwrap();
                let mut text = String::new();
                let mut buf = [0u8; 8192];
                let ids = loop {
                    let whole = text.rfind("\n\n").map_or("", |end| &text[..end]);
                    let ids: Vec<u64> = whole
                        .lines()
                        .filter_map(|l| l.strip_prefix("id: "))
                        .map(|v| v.parse().unwrap())
                        .collect();
                    if ids.len() >= want.len() {
                        break ids;
                    }
                    let n = s.read(&mut buf).unwrap();
                    assert!(n > 0, "{ctx}: the stream ended");
                    text.push_str(&String::from_utf8_lossy(&buf[..n]));
                };
                assert_eq!(ids, want, "{ctx}");
                assert!(
                    !text.contains("\"tenant_id\":\"b\"") && !text.contains("\"tenant_id\":\"c\""),
                    "{ctx}: a leak"
                );
                leaks_checked += ids.len() as u64;
            }
        }
    }
    assert!(
        ops.iter().all(|&n| n > 10),
        "every kind of attempt ran: {ops:?}"
    );
    assert!(leaks_checked > 1000, "events checked: {leaks_checked}");
    // The whole log is the model: nothing foreign was written.
    let all: Vec<client::StoredEvent> = adm.query(Query::all()).collect::<Result<_, _>>().unwrap();
    assert_eq!(all.len(), model.len());
    for (got, want) in all.iter().zip(&model) {
        assert_eq!(
            (got.seq, got.created_at, &got.event),
            (want.seq, want.created_at, &want.event)
        );
    }
    done.store(true, Ordering::Release);
}
