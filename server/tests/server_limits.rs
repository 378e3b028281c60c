//! Limits, on in-process servers with small settings: event, metadata,
//! batch and frame sizes (exactly at and just over each bound), metadata
//! that is not a JSON object, future `occurred_at`, slow senders, idle
//! connections, `max_connections`, and the exact counts on the metrics
//! endpoint.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use client::{Client, ClientError, ErrorCode, Event};
use common::*;
use proto::frame;
use proto::msg::{kind, Request, Response};
use server::{Server, ServerConfig};

const MAX_EVENT: usize = 2048;
const MAX_METADATA: usize = 1536;

/// The test config with small event limits; callers adjust the rest.
fn small_config(dir: &std::path::Path, keys: &[&TestKey]) -> ServerConfig {
    let mut c = config(dir, keys);
    c.logs[0].max_event_bytes = MAX_EVENT;
    c.logs[0].max_metadata_bytes = MAX_METADATA;
    c
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// A valid-looking event whose encoding is exactly `len` bytes: the name,
/// resource id and correlation id fields are filled (at most 256 bytes
/// each), then the metadata object is padded.
fn sized_event(len: usize) -> Event {
    let mut e = event("t", "u", "a.b", "r");
    e.metadata = r#"{"p":""}"#.into();
    let base = e.as_ref().encoded_len();
    assert!(len >= base, "{len} < {base}");
    let mut pad = len - base;
    for f in [&mut e.actor_name, &mut e.resource_id, &mut e.correlation_id] {
        let n = pad.min(256);
        *f = "n".repeat(n);
        pad -= n;
    }
    e.metadata = format!(r#"{{"p":"{}"}}"#, "m".repeat(pad));
    assert_eq!(e.as_ref().encoded_len(), len);
    e
}

/// Metadata: a JSON object of exactly `len` bytes.
fn metadata_of(len: usize) -> String {
    let m = format!(r#"{{"p":"{}"}}"#, "m".repeat(len - 8));
    assert_eq!(m.len(), len);
    m
}

fn invalid_event(e: &client::ErrorReply, index: u32, field: &str) {
    assert_eq!(
        (e.code, e.index, e.field.as_str()),
        (ErrorCode::InvalidEvent, Some(index), field),
        "{e}"
    );
}

/// A batch of `n` good events with `bad` at `at`.
fn batch_with(n: usize, at: usize, bad: Event) -> Vec<Event> {
    let mut b: Vec<Event> = (0..n)
        .map(|i| event("t", &format!("u{i}"), "a.b", "r"))
        .collect();
    b[at] = bad;
    b
}

#[test]
fn events_over_the_size_limits_or_malformed_are_refused_by_index_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    let server = Server::start(small_config(dir.path(), &[&admin])).unwrap();
    let mut c = connect(server.addr(), &admin);
    let mut stored = 0u64;
    let mut refusals = 0u64;
    let mut refuse = |c: &mut Client, batch: &[Event], index: u32, field: &str| {
        let e = server_error(c.append_batch(batch));
        invalid_event(&e, index, field);
        refusals += 1;
    };

    // The whole event: exactly at the limit is stored, one byte over is not.
    let r = c.append(&sized_event(MAX_EVENT)).unwrap();
    assert_eq!(r.seq, stored);
    stored += 1;
    refuse(
        &mut c,
        &batch_with(4, 2, sized_event(MAX_EVENT + 1)),
        2,
        "event",
    );
    refuse(&mut c, &[sized_event(MAX_EVENT + 100)], 0, "event");

    // The metadata: at the limit stored, one over refused (even though the
    // event as a whole would fit).
    let mut e = event("t", "u", "a.b", "r");
    e.metadata = metadata_of(MAX_METADATA);
    assert_eq!(c.append(&e).unwrap().seq, stored);
    stored += 1;
    e.metadata = metadata_of(MAX_METADATA + 1);
    assert!(e.as_ref().encoded_len() < MAX_EVENT);
    refuse(&mut c, &batch_with(3, 1, e.clone()), 1, "metadata");

    // Metadata that is not one JSON object.
    for (i, m) in [
        "[1,2]",
        "\"text\"",
        "42",
        "null",
        "{\"a\":",
        "{\"a\":1} trailing",
        "{\"a\":1}{\"b\":2}",
        "not json",
    ]
    .into_iter()
    .enumerate()
    {
        let mut e = event("t", "u", "a.b", "r");
        e.metadata = m.into();
        let at = i % 3;
        refuse(&mut c, &batch_with(3, at, e), at as u32, "metadata");
    }
    // Objects with surrounding whitespace and nesting are fine.
    let mut e = event("t", "u", "a.b", "r");
    e.metadata = " {\"a\":{\"b\":[1,2,{}]},\"c\":null} ".into();
    assert_eq!(c.append(&e).unwrap().seq, stored);
    stored += 1;

    // occurred_at: within the allowed skew (one hour) stored; two hours
    // ahead refused.
    let mut e = event("t", "u", "a.b", "r");
    e.occurred_at = now_nanos() + 1800 * 1_000_000_000;
    assert_eq!(c.append(&e).unwrap().seq, stored);
    stored += 1;
    e.occurred_at = now_nanos() + 7200 * 1_000_000_000;
    refuse(&mut c, &batch_with(5, 4, e.clone()), 4, "occurred_at");
    e.occurred_at = u64::MAX;
    refuse(&mut c, &[e], 0, "occurred_at");

    // A field over max_field_bytes (256 by default) names that field.
    let mut e = event("t", "u", "a.b", "r");
    e.resource_id = "x".repeat(257);
    refuse(&mut c, &batch_with(2, 1, e), 1, "resource_id");

    // Batches: 1,000 events is the maximum; 1,001 is too large; 0 is not a
    // request.
    let thousand: Vec<Event> = (0..1000)
        .map(|i| event("t", &format!("b{i}"), "a.b", "r"))
        .collect();
    let rs = c.append_batch(&thousand).unwrap();
    assert_eq!(
        rs.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (stored..stored + 1000).collect::<Vec<_>>()
    );
    stored += 1000;
    let mut over = thousand.clone();
    over.push(event("t", "b1000", "a.b", "r"));
    let e = server_error(c.append_batch(&over));
    assert_eq!((e.code, e.index), (ErrorCode::TooLarge, None), "{e}");
    assert!(e.message.contains("1001"), "{}", e.message);
    let e = server_error(c.append_batch(&[]));
    assert_eq!(e.code, ErrorCode::InvalidRequest, "{e}");

    // Nothing refused was stored, and the connection is still good.
    assert_eq!(c.stats().unwrap().next_seq, stored);
    c.ping().unwrap();
    let text = server.metrics_text();
    assert!(text.contains(&format!(
        "chainlog_errors_total{{code=\"invalid_event\"}} {refusals}\n"
    )));
    assert!(text.contains("chainlog_errors_total{code=\"too_large\"} 1\n"));
    assert!(text.contains("chainlog_errors_total{code=\"invalid_request\"} 1\n"));
}

#[test]
fn a_frame_over_max_frame_bytes_is_refused_and_the_connection_closed() {
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    let mut cfg = small_config(dir.path(), &[&admin]);
    cfg.max_frame_bytes = 4096;
    let server = Server::start(cfg).unwrap();

    // An APPEND body is 2 bytes of count and, per event, 4 of length and
    // the event: two events of 2,043 bytes make a body of exactly 4,096.
    let mut c = connect(server.addr(), &admin);
    let rs = c
        .append_batch(&[sized_event(2043), sized_event(2043)])
        .unwrap();
    assert_eq!(rs.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![0, 1]);

    // One byte more: refused as too large, and the connection is closed.
    let e = server_error(c.append_batch(&[sized_event(2044), sized_event(2043)]));
    assert_eq!(e.code, ErrorCode::TooLarge, "{e}");
    assert_eq!(
        e.message,
        "frame declares 4102 bytes, more than the maximum of 4101"
    );
    match c.ping() {
        Err(ClientError::Frame(_)) => {}
        other => panic!("the connection should be closed: {other:?}"),
    }

    // The same over a raw socket, with a much larger frame: one error
    // frame, then an orderly close.
    let mut s = raw_handshake(server.addr());
    let mut f = Vec::new();
    let at = frame::begin_frame(&mut f, kind::APPEND, 9);
    f.resize(f.len() + (64 << 10), 0);
    frame::finish_frame(&mut f, at);
    let _ = s.write_all(&f);
    let e = read_error(&mut s);
    assert_eq!((e.code, e.index), (ErrorCode::TooLarge, None), "{e}");
    assert_eq!(ending(&mut s), Ending::Eof);

    let mut c = connect(server.addr(), &admin);
    assert_eq!(c.stats().unwrap().next_seq, 2);
}

/// The longest a test waits for the server to act on a deadline: only a
/// guard against a hang, never a claim about speed.
const HANG_LIMIT: Duration = Duration::from_secs(30);

/// The line of `name` (a series without labels) on the metrics page.
fn metric(server: &Server, name: &str) -> String {
    let text = server.metrics_text();
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
        .to_string()
}

#[test]
fn a_slow_sender_is_dropped_after_the_frame_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    let mut cfg = small_config(dir.path(), &[&admin]);
    cfg.frame_timeout_secs = 1;
    let server = Server::start(cfg).unwrap();
    let mut f = Vec::new();
    proto::msg::encode_request(&mut f, 1, &Request::Ping(1));

    // Five bytes of a frame; a whole header and part of the body; not even
    // a preamble. Each is dropped with bad_frame, never before the second
    // the frame may take (the three run side by side).
    let addr = server.addr();
    // (what, bytes of the frame sent after the handshake; None: no
    // handshake at all)
    let cases: [(&str, Option<usize>); 3] = [
        ("five bytes", Some(5)),
        (
            "header and part of the body",
            Some(frame::FRAME_HEADER_LEN + 3),
        ),
        ("no preamble", None),
    ];
    std::thread::scope(|scope| {
        for (what, sent) in cases {
            let f = &f;
            scope.spawn(move || {
                // Taken before the first byte is sent: the server's deadline
                // is at least a second after it.
                let start = Instant::now();
                let mut s = match sent {
                    Some(n) => {
                        let mut s = raw_handshake(addr);
                        s.write_all(&f[..n]).unwrap();
                        s
                    }
                    None => raw_connect(addr),
                };
                s.set_read_timeout(Some(HANG_LIMIT)).unwrap();
                let e = read_error(&mut s);
                let took = start.elapsed();
                assert_eq!(
                    (e.code, e.message.as_str()),
                    (
                        ErrorCode::BadFrame,
                        "a started frame did not complete within 1s"
                    ),
                    "{what}"
                );
                assert!(took >= Duration::from_secs(1), "{what}: after {took:?}");
                assert_eq!(ending(&mut s), Ending::Eof, "{what}");
            });
        }
    });

    // Meanwhile the server serves; it refused exactly those three, and
    // closed nothing for idleness.
    let mut c = connect(server.addr(), &admin);
    c.ping().unwrap();
    assert_eq!(
        metric(&server, "chainlog_errors_total{code=\"bad_frame\"}"),
        "chainlog_errors_total{code=\"bad_frame\"} 3"
    );
    assert_eq!(
        metric(&server, "chainlog_idle_closed_total"),
        "chainlog_idle_closed_total 0"
    );
}

#[test]
fn a_trickling_sender_is_dropped_at_the_frame_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    let mut cfg = small_config(dir.path(), &[&admin]);
    cfg.frame_timeout_secs = 1;
    let server = Server::start(cfg).unwrap();
    let mut s = raw_handshake(server.addr());
    s.set_read_timeout(Some(HANG_LIMIT)).unwrap();
    // A header declaring a 200-byte body, then the body a byte every 20 ms:
    // the sender is never quiet for anywhere near the 1 s frame timeout,
    // and the whole body would take 4 s. Only a deadline counted from the
    // frame's first byte can end it before it completes (a deadline that
    // each byte pushed back would let it complete, and a complete APPEND
    // of zeros gets a different error, on an open connection).
    const BODY: usize = 200;
    let mut f = Vec::new();
    let at = frame::begin_frame(&mut f, kind::APPEND, 1);
    f.resize(f.len() + BODY, 0);
    frame::finish_frame(&mut f, at);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let start = Instant::now();
    s.write_all(&f[..frame::FRAME_HEADER_LEN]).unwrap();
    let mut w = s.try_clone().unwrap();
    let trickle = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            // (body bytes sent, the longest gap between two writes)
            let (mut sent, mut gap, mut last) = (0usize, Duration::ZERO, start);
            for b in &f[frame::FRAME_HEADER_LEN..] {
                std::thread::sleep(Duration::from_millis(20));
                if stop.load(std::sync::atomic::Ordering::SeqCst) || w.write_all(&[*b]).is_err() {
                    break;
                }
                sent += 1;
                gap = gap.max(last.elapsed());
                last = Instant::now();
            }
            (sent, gap)
        })
    };
    let e = read_error(&mut s);
    let took = start.elapsed();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (sent, gap) = trickle.join().unwrap();
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            ErrorCode::BadFrame,
            "a started frame did not complete within 1s"
        )
    );
    assert!(took >= Duration::from_secs(1), "dropped after {took:?}");
    assert!(sent < BODY, "the whole body ({sent} bytes) was sent");
    assert!(
        gap < Duration::from_secs(1),
        "the sender was quiet for {gap:?}: this run cannot tell a frame deadline from a read timeout"
    );
    assert_eq!(ending(&mut s), Ending::Eof);
    assert_eq!(
        metric(&server, "chainlog_errors_total{code=\"bad_frame\"}"),
        "chainlog_errors_total{code=\"bad_frame\"} 1"
    );
    let _ = s.shutdown(Shutdown::Both);
}

/// Sends `req` as request `id` on a raw connection.
fn send_raw(s: &mut TcpStream, id: u32, req: &Request<'_>) {
    let mut f = Vec::new();
    proto::msg::encode_request(&mut f, id, req);
    s.write_all(&f).unwrap();
}

/// A raw connection, handshaken and authenticated, that waits up to the
/// hang limit for anything.
fn raw_session(addr: std::net::SocketAddr, admin: &TestKey) -> TcpStream {
    let mut s = raw_handshake(addr);
    s.set_read_timeout(Some(HANG_LIMIT)).unwrap();
    send_raw(
        &mut s,
        1,
        &Request::Auth {
            key: admin.text.clone(),
        },
    );
    assert!(matches!(
        read_response(&mut s).unwrap(),
        (1, Response::AuthOk { .. })
    ));
    s
}

/// Pings as `id`; returns when the ping was sent (no later than the
/// server saw it).
fn ping_raw(s: &mut TcpStream, id: u32) -> Instant {
    let sent = Instant::now();
    send_raw(s, id, &Request::Ping(u64::from(id)));
    assert_eq!(
        read_response(s).unwrap(),
        (id, Response::Pong(u64::from(id)))
    );
    sent
}

#[test]
fn an_idle_connection_is_closed_after_the_idle_timeout() {
    // Activity is a ping every 50 ms, or a tail, for three idle timeouts:
    // a margin of 40 pings per timeout, so that only a machine stalled for
    // two whole seconds could close an active connection. Every close is
    // checked from the server's side too: it counts exactly the three.
    const IDLE: Duration = Duration::from_secs(2);
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    let mut cfg = small_config(dir.path(), &[&admin]);
    cfg.idle_timeout_secs = IDLE.as_secs();
    let server = Server::start(cfg).unwrap();

    let addr = server.addr();
    let admin = &admin;
    std::thread::scope(|scope| {
        // Authenticated, then silent: closed without an error frame, never
        // before the timeout.
        scope.spawn(move || {
            let start = Instant::now();
            let mut s = raw_session(addr, admin);
            assert_eq!(ending(&mut s), Ending::Eof);
            let took = start.elapsed();
            assert!(took >= IDLE, "closed after {took:?}");
        });
        // Requests keep a connection open past the timeout; once they
        // stop, it is closed, an idle timeout after the last one.
        scope.spawn(move || {
            let mut s = raw_session(addr, admin);
            let start = Instant::now();
            let mut last = start;
            let mut id = 2;
            while start.elapsed() < 3 * IDLE {
                std::thread::sleep(Duration::from_millis(50));
                last = ping_raw(&mut s, id);
                id += 1;
            }
            assert_eq!(ending(&mut s), Ending::Eof);
            let took = last.elapsed();
            assert!(took >= IDLE, "closed {took:?} after the last ping");
        });
        // So does a running tail, with no requests at all.
        scope.spawn(move || {
            let mut s = raw_session(addr, admin);
            send_raw(&mut s, 2, &Request::Tail { from: u64::MAX });
            std::thread::sleep(3 * IDLE);
            send_raw(&mut s, 3, &Request::Cancel { request_id: 2 });
            let mut ends = vec![
                read_response(&mut s).unwrap(),
                read_response(&mut s).unwrap(),
            ];
            ends.sort_by_key(|(id, _)| *id);
            assert_eq!(ends, vec![(2, Response::Done), (3, Response::Done)]);
            let last = ping_raw(&mut s, 4);
            assert_eq!(ending(&mut s), Ending::Eof);
            let took = last.elapsed();
            assert!(took >= IDLE, "closed {took:?} after the last request");
        });
    });
    assert_eq!(
        metric(&server, "chainlog_idle_closed_total"),
        "chainlog_idle_closed_total 3"
    );
    assert_eq!(
        metric(&server, "chainlog_errors_total{code=\"bad_frame\"}"),
        "chainlog_errors_total{code=\"bad_frame\"} 0"
    );
}

/// A new connection must be refused with busy (before any preamble) and
/// closed.
fn expect_busy(addr: std::net::SocketAddr) {
    let mut s = raw_connect(addr);
    let (id, resp) = read_response(&mut s).unwrap();
    match resp {
        Response::Error(e) => assert_eq!(
            (e.code, e.message.as_str()),
            (ErrorCode::Busy, "too many connections")
        ),
        other => panic!("expected busy, got {other:?}"),
    }
    assert_eq!(id, 0);
    assert_eq!(ending(&mut s), Ending::Eof);
}

#[test]
fn the_connection_over_max_connections_gets_busy() {
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    let mut cfg = small_config(dir.path(), &[&admin]);
    cfg.max_connections = 4;
    let server = Server::start(cfg).unwrap();
    let mut open: Vec<Client> = (0..4).map(|_| connect(server.addr(), &admin)).collect();
    for c in &mut open {
        c.ping().unwrap();
    }
    let mut busy = 0u64;
    expect_busy(server.addr());
    expect_busy(server.addr());
    busy += 2;
    // The four are unaffected.
    for (i, c) in open.iter_mut().enumerate() {
        c.append(&event("t", &format!("u{i}"), "a.b", "r")).unwrap();
    }
    let text = server.metrics_text();
    assert!(text.contains("\nchainlog_connections_open 4\n"), "{text}");

    // One goes away: a new connection is served again (once the server
    // has seen the close), and the one after it is refused again.
    open.pop().unwrap().close();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut replacement = loop {
        let mut s = raw_connect(server.addr());
        s.write_all(&frame::client_preamble(1, 1)).unwrap();
        let mut p = [0u8; frame::PREAMBLE_LEN];
        std::io::Read::read_exact(&mut s, &mut p).unwrap();
        if p[..4] == frame::MAGIC {
            break s;
        }
        busy += 1;
        assert!(Instant::now() < deadline, "the closed slot was never freed");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut f = Vec::new();
    proto::msg::encode_request(&mut f, 5, &Request::Ping(5));
    replacement.write_all(&f).unwrap();
    assert_eq!(
        read_response(&mut replacement).unwrap(),
        (5, Response::Pong(5))
    );
    expect_busy(server.addr());
    busy += 1;
    assert_eq!(
        server
            .metrics_text()
            .lines()
            .find(|l| l.starts_with("chainlog_errors_total{code=\"busy\"}"))
            .unwrap(),
        format!("chainlog_errors_total{{code=\"busy\"}} {busy}")
    );
}

#[test]
fn the_client_reports_busy_as_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    let mut cfg = small_config(dir.path(), &[&admin]);
    cfg.max_connections = 1;
    let server = Server::start(cfg).unwrap();
    let _first = connect(server.addr(), &admin);
    let e = Client::connect(server.addr()).unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Busy), "{e}");
}

#[test]
fn the_metrics_endpoint_reports_exact_counts() {
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    let mut cfg = small_config(dir.path(), &[&admin]);
    cfg.metrics_listen = "127.0.0.1:0".into();
    let server = Server::start(cfg).unwrap();
    let maddr = server.metrics_addr().expect("metrics enabled");
    let mut c = connect(server.addr(), &admin);

    // 19 events in four batches, one with an idempotency key, then the
    // same key again (a duplicate: not stored, not counted as appended).
    let mut appended = 0u64;
    for n in [1usize, 5, 10, 3] {
        let b: Vec<Event> = (0..n)
            .map(|i| event("t", &format!("u{i}"), "a.b", "r"))
            .collect();
        appended += c.append_batch(&b).unwrap().len() as u64;
    }
    let mut keyed = event("t", "u", "a.b", "r");
    keyed.idempotency_key = "k-1".into();
    assert!(!c.append(&keyed).unwrap().duplicate);
    appended += 1;
    assert!(c.append(&keyed).unwrap().duplicate);
    // Three invalid events, one too-large batch.
    let mut invalid = 0u64;
    for bad in [
        event("t", "", "a.b", "r"),
        sized_event(MAX_EVENT + 1),
        Event {
            metadata: "[]".into(),
            ..event("t", "u", "a.b", "r")
        },
    ] {
        assert_eq!(server_error(c.append(&bad)).code, ErrorCode::InvalidEvent);
        invalid += 1;
    }
    let big: Vec<Event> = (0..1001).map(|_| event("t", "u", "a.b", "r")).collect();
    assert_eq!(server_error(c.append_batch(&big)).code, ErrorCode::TooLarge);
    let syncs = c.stats().unwrap().syncs;
    assert!(syncs >= 1);

    let (status, body) = http_get(maddr, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    let lines: Vec<&str> = body.lines().collect();
    // The log directory's files, as the page counts them.
    let disk: u64 = std::fs::read_dir(dir.path().join("default"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum();
    assert!(disk > 0);
    for want in [
        format!(
            "chainlog_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        ),
        format!("chainlog_head_seq{{log=\"default\"}} {}", appended - 1),
        "chainlog_poisoned{log=\"default\"} 0".to_string(),
        format!("chainlog_disk_bytes{{log=\"default\"}} {disk}"),
        format!("chainlog_appends_total{{log=\"default\"}} {appended}"),
        "chainlog_duplicates_total{log=\"default\"} 1".to_string(),
        format!("chainlog_events{{log=\"default\"}} {appended}"),
        format!("chainlog_errors_total{{code=\"invalid_event\"}} {invalid}"),
        "chainlog_errors_total{code=\"too_large\"} 1".to_string(),
        "chainlog_errors_total{code=\"unauthenticated\"} 0".to_string(),
        "chainlog_connections_open 1".to_string(),
        format!("chainlog_sync_seconds_bucket{{log=\"default\",le=\"+Inf\"}} {syncs}"),
        format!("chainlog_sync_seconds_count{{log=\"default\"}} {syncs}"),
        format!("chainlog_group_size_sum{{log=\"default\"}} {appended}"),
        "# TYPE chainlog_sync_seconds histogram".to_string(),
    ] {
        assert!(
            lines.contains(&want.as_str()),
            "no line {want:?} in:\n{body}"
        );
    }
    assert!(body.contains("chainlog_sync_seconds_bucket{log=\"default\",le=\"0.001\"} "));
    assert_eq!(appended, 20);

    // The process's own figures, as Prometheus clients name them.
    let figure = |name: &str| -> f64 {
        let line = lines
            .iter()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in:\n{body}"));
        line[name.len() + 1..].parse().unwrap()
    };
    let threads = figure("process_threads");
    assert!((2.0..=64.0).contains(&threads), "process_threads {threads}");
    assert!(figure("process_resident_memory_bytes") > 1e6);
    assert!(figure("process_open_fds") >= 3.0);
    assert!(figure("process_max_fds") >= figure("process_open_fds"));
    assert!(figure("process_cpu_seconds_total") >= 0.0);
    assert!(figure("process_start_time_seconds") > 1.7e9);
    // The page is the same one the server renders in-process (but for the
    // process figures, which move), and other paths are not found.
    let own = |text: &str| -> String {
        text.lines()
            .filter(|l| !l.starts_with("process_"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(own(&body), own(&server.metrics_text()));
    let (status, _) = http_get(maddr, "/");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
}
