//! Admin operations at runtime: keys created with exactly their rights and
//! tenants and never stored or listed in clear, revocation that reaches
//! connections already authenticated (and their tails), changes that
//! survive a restart, who may use them, schemas that apply to the next
//! append and recount every stored event, and bad input refused.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use client::{rights, Client, ErrorCode, KeyInfo, Origin, SchemaInfo, SchemaMode, SchemaSpec};
use common::*;
use proto::msg::{kind, Request, Response};
use server::Server;

fn managed_path(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join("managed.json")
}

fn info(id: &str, origin: Origin, rights: u8, tenants: &[&str]) -> KeyInfo {
    KeyInfo {
        id: id.into(),
        origin,
        rights,
        tenants: tenants.iter().map(|t| t.to_string()).collect(),
    }
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn invalid_request<T: std::fmt::Debug>(r: client::Result<T>, what: &str) -> String {
    let e = server_error(r);
    assert_eq!(
        (e.code, e.index, e.field.as_str()),
        (ErrorCode::InvalidRequest, None, ""),
        "{what}: {e}"
    );
    e.message
}

/// Polls the unknown-action counts until they are `expect` (the indexer
/// counts events appended after a schema change shortly after they are
/// acknowledged).
fn wait_unknown(c: &mut Client, expect: &[(&str, u64)]) {
    let expect: Vec<(String, u64)> = expect.iter().map(|(a, n)| (a.to_string(), *n)).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.unknown_actions().unwrap() != expect && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(c.unknown_actions().unwrap(), expect);
}

fn unknown(c: &mut Client) -> Vec<(String, u64)> {
    c.unknown_actions().unwrap()
}

#[test]
fn a_created_key_has_exactly_its_rights_and_tenants_and_its_text_is_never_stored_or_listed() {
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    let reader = key("reader", "default", &["read"], &[]);
    let server = start(dir.path(), &[&admin, &reader]);
    let mut a = connect(server.addr(), &admin);
    assert!(!managed_path(dir.path()).exists());

    let created = a
        .create_key(
            "billing",
            rights::APPEND | rights::READ,
            &strings(&["acme", "globex"]),
        )
        .unwrap();
    assert_eq!(created.id, "billing");
    assert_eq!(created.key.len(), 52);
    assert!(created.key.starts_with("clk_"), "{}", created.key);

    // The returned text authenticates, with exactly those rights and tenants.
    let mut b = Client::connect(server.addr()).unwrap();
    let auth = b.auth(&created.key).unwrap();
    assert_eq!(auth.log, "default");
    assert_eq!(auth.rights, rights::APPEND | rights::READ);
    assert_eq!(auth.tenants, strings(&["acme", "globex"]));
    let r = b.append(&event("acme", "u", "user.login", "s")).unwrap();
    assert_eq!((r.seq, r.duplicate), (0, false));
    let e = server_error(b.append(&event("initech", "u", "user.login", "s")));
    assert_eq!(
        (e.code, e.index, e.field.as_str()),
        (ErrorCode::Forbidden, Some(0), "tenant_id")
    );
    let e = server_error(b.unknown_actions());
    assert_eq!(
        (e.code, e.message.as_str()),
        (ErrorCode::Forbidden, "this key lacks the admin right")
    );
    assert_eq!(
        b.query(client::Query::all())
            .collect::<Result<Vec<_>, _>>()
            .expect("query")
            .len(),
        1
    );

    // A second key: every tenant, read only.
    let audit = a.create_key("audit", rights::READ, &[]).unwrap();
    assert_ne!(audit.key, created.key);
    let mut c = Client::connect(server.addr()).unwrap();
    let auth = c.auth(&audit.key).unwrap();
    assert_eq!((auth.rights, auth.tenants.len()), (rights::READ, 0));
    assert_eq!(
        server_error(c.append(&event("acme", "u", "a.b", "r"))).code,
        ErrorCode::Forbidden
    );

    // The list: every key of the log, by id, with origin, rights, tenants.
    let expected = vec![
        info("admin", Origin::Config, rights::ALL, &[]),
        info("audit", Origin::Runtime, rights::READ, &[]),
        info(
            "billing",
            Origin::Runtime,
            rights::APPEND | rights::READ,
            &["acme", "globex"],
        ),
        info("reader", Origin::Config, rights::READ, &[]),
    ];
    assert_eq!(a.list_keys().unwrap(), expected);

    // On the wire, the list holds no key text and no hash.
    let mut s = raw_handshake(server.addr());
    let mut f = Vec::new();
    proto::msg::encode_request(
        &mut f,
        1,
        &Request::Auth {
            key: admin.text.clone(),
        },
    );
    proto::msg::encode_request(&mut f, 2, &Request::ListKeys);
    s.write_all(&f).unwrap();
    assert!(matches!(
        read_response(&mut s).unwrap(),
        (1, Response::AuthOk { .. })
    ));
    let mut body = Vec::new();
    let h = proto::frame::read_frame(&mut s, 1 << 20, Duration::from_secs(10), &mut body).unwrap();
    assert_eq!((h.kind, h.request_id), (kind::KEYS, 2));
    let raw = String::from_utf8_lossy(&body).to_string();
    for k in [&admin.text, &reader.text, &created.key, &audit.key] {
        assert!(!raw.contains(k.as_str()));
        let hash = server::auth::hash_key(k);
        assert!(!raw.contains(&hash["sha256:".len()..]));
    }
    assert!(!raw.contains("sha256"));
    assert_eq!(
        proto::msg::decode_response(h.kind, &body).unwrap(),
        Response::Keys(expected)
    );

    // The managed file holds the new keys' hashes, never their text.
    let text = std::fs::read_to_string(managed_path(dir.path())).unwrap();
    for k in [&created.key, &audit.key, &admin.text, &reader.text] {
        assert!(!text.contains(k.as_str()), "key text in managed.json");
    }
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "version": 1,
            "keys": [
                {
                    "id": "billing",
                    "hash": server::auth::hash_key(&created.key),
                    "log": "default",
                    "rights": ["append", "read"],
                    "tenants": ["acme", "globex"],
                },
                {
                    "id": "audit",
                    "hash": server::auth::hash_key(&audit.key),
                    "log": "default",
                    "rights": ["read"],
                    "tenants": [],
                },
            ],
            "revoked": [],
            "schemas": {},
        })
    );
    assert!(!dir.path().join("managed.json.tmp").exists());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(managed_path(dir.path()))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn a_revoked_key_stops_at_once_on_connections_and_tails_already_using_it() {
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    let ops = key("ops", "default", &["read"], &[]);
    let server = start(dir.path(), &[&admin, &ops]);
    let mut a = connect(server.addr(), &admin);
    let temp = a
        .create_key("temp", rights::APPEND | rights::READ, &[])
        .unwrap();
    let mut c1 = Client::connect(server.addr()).unwrap();
    c1.auth(&temp.key).unwrap();
    assert_eq!(c1.append(&event("t", "u", "a.b", "r")).unwrap().seq, 0);
    let mut c2 = Client::connect(server.addr()).unwrap();
    c2.auth(&temp.key).unwrap();
    let mut o = connect(server.addr(), &ops);
    assert_eq!(o.read(0, 10, 0).unwrap().events.len(), 1);
    let revoked = |e: client::ErrorReply| {
        assert_eq!(
            (e.code, e.message.as_str(), e.index),
            (
                ErrorCode::Unauthenticated,
                "this key has been revoked; authenticate again",
                None
            )
        );
    };
    {
        let mut tail = c2.tail(0).unwrap();
        assert_eq!(tail.next().unwrap().unwrap().seq, 0);

        a.revoke_key("temp").unwrap();
        // The tail ends with the error, promptly.
        let started = Instant::now();
        match tail.next() {
            Some(Err(client::ClientError::Server(e))) => revoked(e),
            other => panic!("tail after revocation: {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(tail.next().is_none());
    }
    // The next request on a connection authenticated with it is refused,
    // and the connection is left unauthenticated.
    revoked(server_error(c1.append(&event("t", "u", "a.b", "r"))));
    let e = server_error(c1.stats());
    assert_eq!(
        (e.code, e.message.as_str()),
        (ErrorCode::Unauthenticated, "authenticate first")
    );
    revoked(server_error(c2.read(0, 10, 0)));
    c1.ping().unwrap();
    // A new authentication fails like any unknown key.
    let e = server_error(Client::connect(server.addr()).unwrap().auth(&temp.key));
    assert_eq!(
        (e.code, e.message.as_str()),
        (ErrorCode::Unauthenticated, "invalid API key")
    );
    // The connection can authenticate again with another key.
    c1.auth(&admin.text).unwrap();
    assert_eq!(c1.stats().unwrap().next_seq, 1);

    // A config key is revoked too.
    a.revoke_key("ops").unwrap();
    revoked(server_error(o.read(0, 10, 0)));
    let e = server_error(Client::connect(server.addr()).unwrap().auth(&ops.text));
    assert_eq!(e.code, ErrorCode::Unauthenticated);
    assert_eq!(
        a.list_keys().unwrap(),
        vec![info("admin", Origin::Config, rights::ALL, &[])]
    );
    // Revoking again, or a key that never was: invalid_request.
    invalid_request(a.revoke_key("temp"), "revoke twice");
    invalid_request(a.revoke_key("ops"), "revoke a config key twice");
    invalid_request(a.revoke_key("nobody"), "revoke an unknown key");
    // Ids are not reused: a revoked config key's id is still in the config.
    let m = invalid_request(a.create_key("ops", rights::READ, &[]), "reuse a config id");
    assert_eq!(m, "key id \"ops\" is already in use");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(managed_path(dir.path())).unwrap()).unwrap();
    assert_eq!(json["keys"], serde_json::json!([]));
    assert_eq!(
        json["revoked"],
        serde_json::json!([{"id": "ops", "hash": ops.config.hash}])
    );

    // An admin may revoke its own key: its next request is refused.
    a.revoke_key("admin").unwrap();
    revoked(server_error(a.list_keys()));
    revoked(server_error(c1.stats()));
}

#[test]
fn runtime_changes_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    let ops = key("ops", "default", &["read"], &[]);
    let (k1, k2);
    {
        let server = start(dir.path(), &[&admin, &ops]);
        let mut a = connect(server.addr(), &admin);
        k1 = a
            .create_key("k1", rights::APPEND, &strings(&["acme"]))
            .unwrap();
        k2 = a.create_key("k2", rights::READ, &[]).unwrap();
        a.revoke_key("ops").unwrap();
        a.set_schema(SchemaMode::Strict, &strings(&["user.*"]))
            .unwrap();
        let mut c = Client::connect(server.addr()).unwrap();
        c.auth(&k1.key).unwrap();
        c.append(&event("", "u", "user.login", "s")).unwrap();
        c.append(&event("", "u", "user.logout", "s")).unwrap();
        server.shutdown();
    }
    let expected_keys = vec![
        info("admin", Origin::Config, rights::ALL, &[]),
        info("k1", Origin::Runtime, rights::APPEND, &["acme"]),
        info("k2", Origin::Runtime, rights::READ, &[]),
    ];
    {
        let server = start(dir.path(), &[&admin, &ops]);
        let mut a = connect(server.addr(), &admin);
        assert_eq!(a.list_keys().unwrap(), expected_keys);
        let mut c = Client::connect(server.addr()).unwrap();
        let auth = c.auth(&k1.key).unwrap();
        assert_eq!(
            (auth.rights, auth.tenants),
            (rights::APPEND, strings(&["acme"]))
        );
        assert_eq!(c.append(&event("", "u", "user.x", "s")).unwrap().seq, 2);
        // The strict schema is in force from the start.
        let e = server_error(c.append(&event("", "u", "doc.read", "s")));
        assert_eq!(
            (e.code, e.index, e.field.as_str()),
            (ErrorCode::InvalidEvent, Some(0), "action")
        );
        assert_eq!(
            a.schema().unwrap(),
            SchemaInfo {
                origin: Origin::Runtime,
                spec: SchemaSpec {
                    mode: SchemaMode::Strict,
                    actions: strings(&["user.*"]),
                },
            }
        );
        // The revoked config key stays revoked.
        let e = server_error(Client::connect(server.addr()).unwrap().auth(&ops.text));
        assert_eq!(e.code, ErrorCode::Unauthenticated);
        let mut r = Client::connect(server.addr()).unwrap();
        r.auth(&k2.key).unwrap();
        assert_eq!(r.read(0, 10, 0).unwrap().events.len(), 3);
        a.revoke_key("k1").unwrap();
        server.shutdown();
    }
    let server = start(dir.path(), &[&admin, &ops]);
    let mut a = connect(server.addr(), &admin);
    assert_eq!(
        a.list_keys().unwrap(),
        vec![expected_keys[0].clone(), expected_keys[2].clone()]
    );
    let e = server_error(Client::connect(server.addr()).unwrap().auth(&k1.key));
    assert_eq!(e.code, ErrorCode::Unauthenticated);
    Client::connect(server.addr())
        .unwrap()
        .auth(&k2.key)
        .unwrap();
}

#[test]
fn only_an_admin_with_no_tenant_limit_may_manage_keys_and_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    let limited = key(
        "limited-admin",
        "default",
        &["append", "read", "admin"],
        &["acme"],
    );
    let worker = key("worker", "default", &["append", "read"], &[]);
    let server = start(dir.path(), &[&admin, &limited, &worker]);
    for k in [&limited, &worker] {
        let mut c = connect(server.addr(), k);
        let forbidden = |e: client::ErrorReply, what: &str| {
            assert_eq!(
                (e.code, e.message.as_str(), e.index),
                (
                    ErrorCode::Forbidden,
                    "this key lacks the admin (on every tenant) right",
                    None
                ),
                "{} {what}",
                k.config.id
            );
        };
        forbidden(server_error(c.list_keys()), "list");
        forbidden(server_error(c.create_key("x", rights::READ, &[])), "create");
        forbidden(server_error(c.revoke_key("admin")), "revoke");
        forbidden(server_error(c.schema()), "get schema");
        forbidden(
            server_error(c.set_schema(SchemaMode::Strict, &strings(&["a.*"]))),
            "set schema",
        );
        // Still authenticated, and nothing changed.
        c.ping().unwrap();
        assert_eq!(
            c.query(client::Query::all())
                .collect::<Result<Vec<_>, _>>()
                .expect("query")
                .len(),
            0
        );
    }
    let mut c = Client::connect(server.addr()).unwrap();
    let e = server_error(c.list_keys());
    assert_eq!(e.code, ErrorCode::Unauthenticated);
    let mut a = connect(server.addr(), &admin);
    assert_eq!(a.list_keys().unwrap().len(), 3);
    assert_eq!(a.schema().unwrap().origin, Origin::Config);
    assert!(!managed_path(dir.path()).exists());
}

#[test]
fn keys_and_schemas_are_those_of_the_admins_own_log() {
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    let other_admin = key("other-admin", "other", &["append", "read", "admin"], &[]);
    let mut cfg = config(dir.path(), &[&admin, &other_admin]);
    cfg.logs.push(test_log("other"));
    let server = Server::start(cfg).unwrap();
    let mut a = connect(server.addr(), &admin);
    let mut o = connect(server.addr(), &other_admin);
    let k = o.create_key("other-writer", rights::APPEND, &[]).unwrap();
    assert_eq!(
        a.list_keys().unwrap(),
        vec![info("admin", Origin::Config, rights::ALL, &[])]
    );
    assert_eq!(
        o.list_keys().unwrap(),
        vec![
            info("other-admin", Origin::Config, rights::ALL, &[]),
            info("other-writer", Origin::Runtime, rights::APPEND, &[]),
        ]
    );
    invalid_request(a.revoke_key("other-writer"), "revoke another log's key");
    invalid_request(
        a.revoke_key("other-admin"),
        "revoke another log's config key",
    );
    // Ids are unique across the server.
    invalid_request(
        a.create_key("other-writer", rights::READ, &[]),
        "id of another log",
    );
    let mut w = Client::connect(server.addr()).unwrap();
    assert_eq!(w.auth(&k.key).unwrap().log, "other");
    o.set_schema(SchemaMode::Strict, &strings(&["x.*"]))
        .unwrap();
    assert_eq!(a.schema().unwrap().origin, Origin::Config);
    a.append(&event("t", "u", "y.y", "r")).unwrap();
    assert_eq!(
        server_error(w.append(&event("t", "u", "y.y", "r"))).code,
        ErrorCode::InvalidEvent
    );
}

#[test]
fn a_schema_applies_to_the_next_append_and_the_counts_cover_events_stored_before() {
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    let server = start(dir.path(), &[&admin]);
    let mut a = connect(server.addr(), &admin);
    assert_eq!(
        a.schema().unwrap(),
        SchemaInfo {
            origin: Origin::Config,
            spec: SchemaSpec::default(),
        }
    );
    let mut batch = Vec::new();
    for (action, n) in [("user.login", 3), ("doc.read", 2), ("x.y", 1)] {
        for _ in 0..n {
            batch.push(event("t", "u", action, "r"));
        }
    }
    assert_eq!(a.append_batch(&batch).unwrap().len(), 6);
    // No patterns: every action is allowed, none unknown.
    assert_eq!(unknown(&mut a), vec![]);

    a.set_schema(SchemaMode::Strict, &strings(&["user.*", "doc.*"]))
        .unwrap();
    assert_eq!(
        a.schema().unwrap(),
        SchemaInfo {
            origin: Origin::Runtime,
            spec: SchemaSpec {
                mode: SchemaMode::Strict,
                actions: strings(&["user.*", "doc.*"]),
            },
        }
    );
    // Refused at once, with the whole batch.
    let e = server_error(a.append(&event("t", "u", "x.y", "r")));
    assert_eq!(
        (e.code, e.index, e.field.as_str()),
        (ErrorCode::InvalidEvent, Some(0), "action")
    );
    let e = server_error(a.append_batch(&[
        event("t", "u", "user.created", "r"),
        event("t", "u", "billing.charged", "r"),
    ]));
    assert_eq!(
        (e.code, e.index, e.field.as_str()),
        (ErrorCode::InvalidEvent, Some(1), "action")
    );
    assert_eq!(a.stats().unwrap().next_seq, 6);
    assert_eq!(a.append(&event("t", "u", "doc.write", "r")).unwrap().seq, 6);
    // The counts are the new schema's as soon as the change is answered:
    // the event stored before it is recounted.
    assert_eq!(unknown(&mut a), vec![("x.y".to_string(), 1)]);

    a.set_schema(SchemaMode::Permissive, &strings(&["user.*"]))
        .unwrap();
    assert_eq!(
        unknown(&mut a),
        vec![
            ("doc.read".to_string(), 2),
            ("doc.write".to_string(), 1),
            ("x.y".to_string(), 1),
        ]
    );
    assert_eq!(a.stats().unwrap().unknown_actions, 4);
    // Stored now, and counted by the indexer.
    assert_eq!(a.append(&event("t", "u", "x.y", "r")).unwrap().seq, 7);
    wait_unknown(&mut a, &[("doc.read", 2), ("x.y", 2), ("doc.write", 1)]);
    assert!(server
        .metrics_text()
        .contains("chainlog_unknown_action_events{log=\"default\"} 5\n"));

    // No patterns: every action is unknown (how a log's actions are
    // discovered before a schema is written).
    a.set_schema(SchemaMode::Permissive, &[]).unwrap();
    assert_eq!(
        unknown(&mut a),
        vec![
            ("user.login".to_string(), 3),
            ("doc.read".to_string(), 2),
            ("x.y".to_string(), 2),
            ("doc.write".to_string(), 1),
        ]
    );
    assert_eq!(a.stats().unwrap().unknown_actions, 8);
    a.set_schema(SchemaMode::Permissive, &strings(&["*.read", "*.y"]))
        .unwrap();
    assert_eq!(
        unknown(&mut a),
        vec![("user.login".to_string(), 3), ("doc.write".to_string(), 1)]
    );
    server.shutdown();

    // A restart counts under the schema set at runtime.
    let server = start(dir.path(), &[&admin]);
    let mut a = connect(server.addr(), &admin);
    assert_eq!(
        unknown(&mut a),
        vec![("user.login".to_string(), 3), ("doc.write".to_string(), 1)]
    );
}

#[test]
fn schema_changes_while_appends_run_leave_exact_counts() {
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    let server = start(dir.path(), &[&admin]);
    let addr = server.addr();
    let mut a = connect(addr, &admin);
    // Enough stored events that a recount takes a while, so that the
    // indexer counts new events while it runs.
    const BEFORE: u64 = 40_000;
    for _ in 0..BEFORE / 1000 {
        let batch = vec![event("t", "u", "r.c", "r"); 1000];
        a.append_batch(&batch).unwrap();
    }
    // Schema changes completed so far. The appender waits, before each of
    // its batches after the first, for a change made since its previous
    // batch: changes and appends interleave, whatever the machine's speed
    // (the overlap this test is about, proved rather than hoped for).
    let changed = Arc::new(AtomicUsize::new(0));
    let appender = {
        let text = admin.text.clone();
        let changed = changed.clone();
        std::thread::spawn(move || {
            let mut c = Client::connect(addr).unwrap();
            c.auth(&text).unwrap();
            let mut seen = 0;
            let mut interleaved = 0;
            for i in 0..60 {
                if i > 0 {
                    let deadline = Instant::now() + Duration::from_secs(60);
                    while changed.load(Ordering::SeqCst) == seen {
                        assert!(Instant::now() < deadline, "no schema change for 60 s");
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    interleaved += 1;
                }
                seen = changed.load(Ordering::SeqCst);
                let batch: Vec<_> = (0..25)
                    .map(|j| {
                        let action = if (i + j) % 3 == 0 { "q.b" } else { "p.a" };
                        event("t", "u", action, "r")
                    })
                    .collect();
                c.append_batch(&batch).unwrap();
            }
            interleaved
        })
    };
    // Schema changes, one after another, for as long as the appends run:
    // each recount overlaps appends being indexed.
    let schemas = [&["p.*"][..], &["q.*"], &[], &["p.*", "q.*"]];
    let mut changes = 0;
    let mut last: &[&str] = &[];
    // At least one full cycle, however fast the appends finish (the
    // machine's speed decides how many changes overlap them).
    while !appender.is_finished() || changes < schemas.len() {
        last = schemas[changes % schemas.len()];
        a.set_schema(SchemaMode::Permissive, &strings(last))
            .unwrap();
        changes += 1;
        changed.store(changes, Ordering::SeqCst);
    }
    // Each of the 59 gaps between the appender's batches held a change.
    assert_eq!(appender.join().unwrap(), 59);
    assert!(changes >= 59, "{changes} changes");
    assert_eq!(a.stats().unwrap().next_seq, BEFORE + 1500);
    let p_count = (0..60u64)
        .map(|i| (0..25u64).filter(|j| (i + j) % 3 != 0).count() as u64)
        .sum::<u64>();
    assert_eq!(p_count, 1000);
    let q_count = 1500 - p_count;
    // No schema allows r.c; an empty one allows nothing (every action is
    // unknown to it, which is how actions are discovered).
    let p_known = last.contains(&"p.*");
    let q_known = last.contains(&"q.*");
    let mut expect = vec![("r.c", BEFORE)];
    if !p_known {
        expect.push(("p.a", p_count));
    }
    if !q_known {
        expect.push(("q.b", q_count));
    }
    wait_unknown(&mut a, &expect);
    a.set_schema(SchemaMode::Permissive, &strings(&["p.*", "r.*"]))
        .unwrap();
    assert_eq!(unknown(&mut a), vec![("q.b".to_string(), q_count)]);
}

#[test]
fn bad_inputs_are_invalid_requests_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    let server = start(dir.path(), &[&admin]);
    let mut a = connect(server.addr(), &admin);
    let long_id = "k".repeat(65);
    let bad_ids = [
        "",
        long_id.as_str(),
        "has space",
        "tab\there",
        "new\nline",
        "nbsp\u{a0}x",
        "bell\u{7}",
    ];
    for id in bad_ids {
        let m = invalid_request(a.create_key(id, rights::READ, &[]), id);
        assert!(m.contains("need 1-64 bytes of printable characters"), "{m}");
    }
    invalid_request(
        a.create_key("admin", rights::READ, &[]),
        "the config key's id",
    );
    for r in [0, 8, 0x80, 0xff, rights::READ | 0x10] {
        let m = invalid_request(a.create_key("k", r, &[]), "rights");
        assert!(m.starts_with("rights"), "{m}");
    }
    let long_tenant = "t".repeat(257);
    for tenants in [
        vec![String::new()],
        vec!["a".into(), "a".into()],
        vec!["bell\u{7}".into()],
        vec![long_tenant.clone()],
        (0..257).map(|i| format!("t{i}")).collect(),
    ] {
        invalid_request(a.create_key("k", rights::READ, &tenants), "tenants");
    }
    for patterns in [
        strings(&[""]),
        strings(&["user.*", "a b"]),
        strings(&["a\u{1}"]),
        vec!["a".repeat(257)],
        (0..1001).map(|i| format!("a{i}.*")).collect(),
    ] {
        invalid_request(a.set_schema(SchemaMode::Strict, &patterns), "patterns");
    }
    invalid_request(a.revoke_key(""), "revoke no id");
    // Nothing changed, and the connection is still good.
    assert!(!managed_path(dir.path()).exists());
    assert_eq!(a.list_keys().unwrap().len(), 1);
    assert_eq!(a.schema().unwrap().origin, Origin::Config);
    a.append(&event("t", "u", "any.thing", "r")).unwrap();

    // The limits themselves are accepted.
    let id64 = "é".repeat(32);
    let t256 = "t".repeat(256);
    let k = a
        .create_key(&id64, rights::ALL, std::slice::from_ref(&t256))
        .unwrap();
    assert_eq!(k.id, id64);
    let mut c = Client::connect(server.addr()).unwrap();
    assert_eq!(c.auth(&k.key).unwrap().tenants, vec![t256]);
    let many: Vec<String> = (0..1000).map(|i| format!("a{i}.*")).collect();
    a.set_schema(SchemaMode::Strict, &many).unwrap();
    assert_eq!(a.schema().unwrap().spec.actions, many);
    // A duplicate of a key created at runtime.
    invalid_request(
        a.create_key(&id64, rights::READ, &[]),
        "duplicate runtime id",
    );

    // A schema mode the codec does not know is a bad frame (the body does
    // not decode): the connection is refused.
    let mut s = raw_handshake(server.addr());
    let mut f = Vec::new();
    proto::msg::encode_request(
        &mut f,
        1,
        &Request::Auth {
            key: admin.text.clone(),
        },
    );
    proto::msg::encode_request(
        &mut f,
        2,
        &Request::SetSchema(SchemaSpec {
            mode: SchemaMode::Strict,
            actions: vec![],
        }),
    );
    let last = f.len() - 3;
    assert_eq!(f[last], 1, "the mode byte");
    f[last] = 2;
    s.write_all(&f).unwrap();
    assert!(matches!(
        read_response(&mut s).unwrap(),
        (1, Response::AuthOk { .. })
    ));
    let e = read_error(&mut s);
    assert_eq!(e.code, ErrorCode::BadFrame);
    assert_eq!(ending(&mut s), Ending::Eof);
    assert_eq!(a.schema().unwrap().spec.actions.len(), 1000);
}

#[test]
fn a_managed_file_that_does_not_parse_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    std::fs::write(managed_path(dir.path()), b"{\"version\": 1, \"revoked\": [").unwrap();
    let e = Server::start(config(dir.path(), &[&admin])).unwrap_err();
    assert!(e.to_string().contains("managed.json"), "{e}");
    // A runtime key whose id a config key now also has: refused, naming it.
    let text = server::auth::generate_key().unwrap();
    std::fs::write(
        managed_path(dir.path()),
        serde_json::json!({
            "version": 1,
            "keys": [{"id": "admin", "hash": server::auth::hash_key(&text), "log": "default",
                      "rights": ["read"], "tenants": []}],
        })
        .to_string(),
    )
    .unwrap();
    let e = Server::start(config(dir.path(), &[&admin])).unwrap_err();
    assert!(e.to_string().contains("\"admin\""), "{e}");
    assert!(e.to_string().contains("managed.json"), "{e}");
}

#[test]
fn events_indexed_while_a_recount_runs_are_counted_under_the_new_schema() {
    use server::schema::{Mode, Schema};
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    let server = start(dir.path(), &[&admin]);
    let mut a = connect(server.addr(), &admin);
    let mut batch = vec![event("t", "u", "old.x", "r"); 10];
    batch.extend(vec![event("t", "u", "new.y", "r"); 5]);
    a.append_batch(&batch).unwrap();
    let state = server.log("default").unwrap();

    let change = state.begin_schema_change(Schema::new(Mode::Permissive, strings(&["new.*"])));
    // Every event acknowledged before the change is recounted.
    assert_eq!(change.upto(), 15);
    let mut batch = vec![event("t", "u", "old.x", "r"); 3];
    batch.extend(vec![event("t", "u", "other.z", "r"); 2]);
    a.append_batch(&batch).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while state.events.indexed() < 20 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(state.events.indexed(), 20);
    // Until the recount ends, the previous schema's counts are reported:
    // with no patterns, every action stored before the change.
    assert_eq!(
        unknown(&mut a),
        vec![("old.x".to_string(), 10), ("new.y".to_string(), 5)]
    );
    change.recount().unwrap();
    assert_eq!(
        unknown(&mut a),
        vec![("old.x".to_string(), 13), ("other.z".to_string(), 2)]
    );
    assert_eq!(a.stats().unwrap().unknown_actions, 15);
}

#[test]
fn a_change_that_cannot_be_written_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    let ops = key("ops", "default", &["read"], &[]);
    let server = start(dir.path(), &[&admin, &ops]);
    let mut a = connect(server.addr(), &admin);
    let mut o = connect(server.addr(), &ops);
    // The temporary file's name is taken by a directory: the write fails.
    std::fs::create_dir(dir.path().join("managed.json.tmp")).unwrap();
    let internal = |e: client::ErrorReply| {
        assert_eq!(e.code, ErrorCode::Internal, "{e}");
        assert!(e.message.contains("nothing changed"), "{}", e.message);
    };
    internal(server_error(a.create_key("new", rights::READ, &[])));
    internal(server_error(a.revoke_key("ops")));
    internal(server_error(
        a.set_schema(SchemaMode::Strict, &strings(&["user.*"])),
    ));
    assert_eq!(a.list_keys().unwrap().len(), 2);
    assert_eq!(o.read(0, 10, 0).unwrap().events.len(), 0);
    assert_eq!(a.schema().unwrap().origin, Origin::Config);
    a.append(&event("t", "u", "doc.read", "r")).unwrap();
    assert!(!managed_path(dir.path()).exists());
    // Once the file can be written, the same change goes through.
    std::fs::remove_dir(dir.path().join("managed.json.tmp")).unwrap();
    a.create_key("new", rights::READ, &[]).unwrap();
    assert_eq!(a.list_keys().unwrap().len(), 3);
}
