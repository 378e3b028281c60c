//! Authentication and rights: every kind of bad key gets the same answer,
//! nothing but ping works before authenticating, each right is enforced,
//! and (on a child-process `chainlogd` logging at trace level) no key text,
//! right or wrong, ever reaches the logs.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use client::{Client, ErrorCode, Query};
use common::*;
use proto::msg::{kind, rights, Request, Response};

/// The key with the character at `i` replaced by another hex digit.
fn with_char_changed(key: &str, i: usize) -> String {
    let mut b = key.as_bytes().to_vec();
    b[i] = if b[i] == b'0' { b'1' } else { b'0' };
    String::from_utf8(b).unwrap()
}

/// The Prometheus line `name value`, parsed.
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no metric {name}"))
}

#[test]
fn wrong_truncated_unknown_and_empty_keys_get_the_same_answer() {
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    let server = start(dir.path(), &[&admin]);
    let real = admin.text.clone();
    let unknown = server::auth::generate_key().unwrap();
    let bad_keys = [
        (
            "wrong (last char changed)",
            with_char_changed(&real, real.len() - 1),
        ),
        (
            "wrong (first hex digit changed)",
            with_char_changed(&real, 4),
        ),
        ("truncated", real[..real.len() - 1].to_string()),
        ("truncated to the prefix", "clk_".to_string()),
        ("extended", format!("{real}0")),
        ("unknown", unknown),
        ("empty", String::new()),
        ("upper-cased", real.to_uppercase()),
        ("with a newline", format!("{real}\n")),
    ];
    let mut refusals = 0u64;
    let mut messages = Vec::new();
    // Each on a fresh connection...
    for (what, k) in &bad_keys {
        let mut c = Client::connect(server.addr()).unwrap();
        let e = server_error(c.auth(k));
        refusals += 1;
        assert_eq!(e.code, ErrorCode::Unauthenticated, "{what}: {e}");
        assert_eq!((e.index, e.field.as_str()), (None, ""), "{what}");
        messages.push(e.message);
        // ...which is still not authenticated, and still open.
        let e = server_error(c.stats());
        refusals += 1;
        assert_eq!(e.code, ErrorCode::Unauthenticated, "{what}: {e}");
        c.ping().unwrap();
    }
    // ...and all on one connection, which then authenticates properly.
    let mut c = Client::connect(server.addr()).unwrap();
    for (what, k) in &bad_keys {
        let e = server_error(c.auth(k));
        refusals += 1;
        assert_eq!(e.code, ErrorCode::Unauthenticated, "{what}: {e}");
        messages.push(e.message);
    }
    messages.dedup();
    assert_eq!(messages, vec!["invalid API key".to_string()]);
    let info = c.auth(&real).unwrap();
    assert_eq!(info.log, "default");
    assert_eq!(info.rights, rights::APPEND | rights::READ | rights::ADMIN);
    assert!(info.tenants.is_empty());
    assert_eq!(c.append(&event("t", "u", "a.b", "r")).unwrap().seq, 0);

    // A failed re-authentication drops the connection's earlier key.
    let e = server_error(c.auth(&bad_keys[0].1));
    refusals += 1;
    assert_eq!(e.code, ErrorCode::Unauthenticated);
    let e = server_error(c.append(&event("t", "u", "a.b", "r")));
    refusals += 1;
    assert_eq!(
        (e.code, e.message.as_str()),
        (ErrorCode::Unauthenticated, "authenticate first")
    );
    c.auth(&real).unwrap();
    assert_eq!(c.stats().unwrap().next_seq, 1);

    let m = server.metrics_text();
    assert_eq!(
        metric(&m, "chainlog_errors_total{code=\"unauthenticated\"}"),
        refusals
    );
    assert_eq!(metric(&m, "chainlog_errors_total{code=\"forbidden\"}"), 0);
}

#[test]
fn nothing_but_ping_works_before_authentication() {
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    let server = start(dir.path(), &[&admin]);
    let mut c = Client::connect(server.addr()).unwrap();
    c.ping().unwrap();
    let unauth = |e: client::ErrorReply, what: &str| {
        assert_eq!(
            (e.code, e.message.as_str(), e.index),
            (ErrorCode::Unauthenticated, "authenticate first", None),
            "{what}"
        );
    };
    unauth(
        server_error(c.append(&event("t", "u", "a.b", "r"))),
        "append",
    );
    unauth(
        server_error(c.append_batch(&[event("t", "u", "a.b", "r"), event("t", "u", "a.b", "r")])),
        "append batch",
    );
    unauth(server_error(c.query_page(&Query::all())), "query");
    unauth(server_error(c.read(0, 10, 0)), "read");
    unauth(server_error(c.stats()), "stats");
    unauth(server_error(c.unknown_actions()), "unknown actions");
    {
        let mut t = c.tail(0).unwrap();
        match t.next() {
            Some(Err(client::ClientError::Server(e))) => unauth(e, "tail"),
            other => panic!("tail before auth: {other:?}"),
        }
        assert!(t.next().is_none());
    }
    let id = c.send(&Request::Cancel { request_id: 1 }).unwrap();
    match c.wait(id).unwrap() {
        Response::Error(e) => unauth(e, "cancel"),
        other => panic!("cancel before auth: {other:?}"),
    }
    // The connection is still good: ping, then authenticate and see that
    // nothing was stored.
    c.ping().unwrap();
    c.auth(&admin.text).unwrap();
    assert_eq!(c.stats().unwrap().next_seq, 0);
    let m = server.metrics_text();
    assert_eq!(
        metric(&m, "chainlog_errors_total{code=\"unauthenticated\"}"),
        8
    );
    // Raw: a ping frame answered before any auth, with the value echoed.
    let mut s = raw_handshake(server.addr());
    let mut f = Vec::new();
    proto::msg::encode_request(&mut f, 77, &Request::Ping(0xdead_beef));
    std::io::Write::write_all(&mut s, &f).unwrap();
    assert_eq!(
        read_response(&mut s).unwrap(),
        (77, Response::Pong(0xdead_beef))
    );
}

#[test]
fn each_right_is_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    let reader = key("reader", "default", &["read"], &[]);
    let appender = key("appender", "default", &["append"], &[]);
    let server = start(dir.path(), &[&admin, &reader, &appender]);
    let forbidden = |e: client::ErrorReply, right: &str| {
        assert_eq!(
            (e.code, e.message.clone(), e.index),
            (
                ErrorCode::Forbidden,
                format!("this key lacks the {right} right"),
                None
            )
        );
    };

    // Read only: may query, read and tail; not append, not admin.
    let mut r = Client::connect(server.addr()).unwrap();
    let info = r.auth(&reader.text).unwrap();
    assert_eq!(info.rights, rights::READ);
    forbidden(
        server_error(r.append(&event("t", "u", "a.b", "r"))),
        "append",
    );
    forbidden(server_error(r.unknown_actions()), "admin");

    // Append only: may append; not query, read, tail, nor admin.
    let mut a = Client::connect(server.addr()).unwrap();
    let info = a.auth(&appender.text).unwrap();
    assert_eq!(info.rights, rights::APPEND);
    let receipt = a.append(&event("t", "u", "x.y", "r")).unwrap();
    assert_eq!((receipt.seq, receipt.duplicate), (0, false));
    forbidden(server_error(a.query_page(&Query::all())), "read");
    forbidden(server_error(a.read(0, 10, 0)), "read");
    {
        let mut t = a.tail(0).unwrap();
        match t.next() {
            Some(Err(client::ClientError::Server(e))) => forbidden(e, "read"),
            other => panic!("tail with an append-only key: {other:?}"),
        }
    }
    forbidden(server_error(a.unknown_actions()), "admin");
    // The connection is still usable after the refusals.
    assert_eq!(a.append(&event("t", "u", "x.y", "r")).unwrap().seq, 1);

    // The reader sees exactly what the appender stored; its refused append
    // stored nothing.
    let all: Vec<_> = r.query(Query::all()).collect::<Result<_, _>>().unwrap();
    assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![0, 1]);
    assert_eq!(r.read(0, 10, 0).unwrap().events.len(), 2);

    // Admin may do everything.
    let mut ad = connect(server.addr(), &admin);
    // The log has no schema: both events' action is unknown, once the
    // indexer (which runs behind the appends) has counted them.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while ad.unknown_actions().unwrap() != [("x.y".to_string(), 2)]
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(ad.unknown_actions().unwrap(), [("x.y".to_string(), 2)]);
    assert_eq!(ad.stats().unwrap().next_seq, 2);

    // Re-authenticating switches the rights: admin -> reader.
    ad.auth(&reader.text).unwrap();
    forbidden(
        server_error(ad.append(&event("t", "u", "a.b", "r"))),
        "append",
    );
    let m = server.metrics_text();
    assert_eq!(metric(&m, "chainlog_errors_total{code=\"forbidden\"}"), 7);
}

#[test]
fn no_key_text_reaches_the_daemons_output() {
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    let reader = key("reader", "default", &["read"], &[]);
    let cfg = write_config(dir.path(), "127.0.0.1:0", &[&admin, &reader], "");
    let daemon = Daemon::start(
        &["--config", cfg.to_str().unwrap(), "--log-level", "trace"],
        dir.path(),
    );
    let stderr = daemon.stderr.clone();
    let stdout = daemon.stdout.clone();
    let real = admin.text.clone();
    let wrong = vec![
        with_char_changed(&real, real.len() - 1),
        real[..real.len() - 1].to_string(),
        real[..real.len() - 9].to_string(),
        format!("{real}ff"),
        server::auth::generate_key().unwrap(),
        "hunter2-not-a-key-at-all".to_string(),
        with_char_changed(&reader.text, 10),
    ];

    // Good keys, used.
    let mut c = connect(daemon.addr, &admin);
    c.append(&event("t", "u", "a.b", "r")).unwrap();
    let mut r = connect(daemon.addr, &reader);
    assert_eq!(
        r.query(Query::all())
            .collect::<Result<Vec<_>, _>>()
            .expect("query")
            .len(),
        1
    );
    // Wrong keys, each on its own connection and all on one.
    let mut failed = 0;
    for k in &wrong {
        let mut w = Client::connect(daemon.addr).unwrap();
        assert_eq!(server_error(w.auth(k)).code, ErrorCode::Unauthenticated);
        failed += 1;
    }
    for k in &wrong {
        assert_eq!(server_error(c.auth(k)).code, ErrorCode::Unauthenticated);
        failed += 1;
    }
    // A key inside an undecodable AUTH frame (trailing bytes): refused as
    // a bad frame, and its text not logged either.
    {
        let mut s = raw_handshake(daemon.addr);
        let mut f = Vec::new();
        let at = proto::frame::begin_frame(&mut f, kind::AUTH, 1);
        proto::wire::put_bytes16(&mut f, wrong[4].as_bytes());
        f.extend_from_slice(b"trailing");
        proto::frame::finish_frame(&mut f, at);
        std::io::Write::write_all(&mut s, &f).unwrap();
        assert_eq!(read_error(&mut s).code, ErrorCode::BadFrame);
        assert_eq!(ending(&mut s), Ending::Eof);
    }
    // The real key again, after the failures, still works.
    c.auth(&real).unwrap();
    assert_eq!(c.stats().unwrap().next_seq, 1);
    drop((c, r));

    let status = daemon.terminate();
    assert!(status.success(), "{status:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !stderr.lock().unwrap().contains("chainlogd stopped") {
        assert!(
            Instant::now() < deadline,
            "no 'chainlogd stopped' in the log"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    let out = format!("{}{}", stderr.lock().unwrap(), stdout.lock().unwrap());
    assert!(
        out.contains("TRACE") || out.contains("DEBUG"),
        "trace-level log"
    );
    for (name, text) in [("admin key", &real), ("reader key", &reader.text)]
        .into_iter()
        .chain(wrong.iter().map(|w| ("a wrong key", w)))
    {
        assert!(
            !out.contains(text.as_str()),
            "{name} {text:?} is in the output"
        );
    }
    // The 48 hex digits without the prefix do not appear either.
    assert!(!out.contains(&real[4..]));
    assert!(!out.contains(&real[4..real.len() - 1]));
    assert_eq!(
        out.matches("authentication failed").count(),
        failed,
        "one warning per failed authentication"
    );
}
