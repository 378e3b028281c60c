//! Bad input and faults over HTTP: malformed and hostile requests each get
//! their status and the one JSON error shape, the server keeps serving and
//! its memory stays bounded; kill -9 during appends from 8 clients loses
//! no event that got a 2xx receipt.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn post(addr: SocketAddr, key: &TestKey, content_type: &str, body: &[u8]) -> HttpReply {
    let auth = format!("Bearer {}", key.text);
    http(
        addr,
        "POST",
        "/api/v1/events",
        &[("Authorization", &auth), ("Content-Type", content_type)],
        body,
    )
}

fn ev(actor: &str) -> Value {
    json!({"tenant_id": "acme", "actor_id": actor, "action": "doc.read", "resource": "doc"})
}

/// One request on a keep-alive connection, and its reply (by its
/// Content-Length).
fn keep_alive_request(s: &mut TcpStream, req: &str) -> (u16, Vec<u8>) {
    s.write_all(req.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "closed mid-reply");
        head.push(byte[0]);
    }
    let text = String::from_utf8(head).unwrap();
    let status = text[9..12].parse().unwrap();
    let len: usize = text
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap();
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    (status, body)
}

#[test]
fn malformed_oversized_and_hostile_requests_get_their_status_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    let mut config = common::config(dir.path(), &[&admin]);
    config.http_max_body_bytes = 64 << 10;
    config.frame_timeout_secs = 1;
    let server = server::Server::start(config).unwrap();
    let addr = server.http_addr().unwrap();
    let json_type = "application/json";

    // What, the body, and the status, code and field it gets.
    type Case<'a> = (&'a str, Vec<u8>, u16, &'a str, Option<&'a str>);
    let cases: Vec<Case> = vec![
        (
            "not JSON",
            b"{\"actor_id\": ".to_vec(),
            400,
            "malformed",
            None,
        ),
        (
            "not UTF-8",
            b"{\"actor_id\": \"\xff\"}".to_vec(),
            400,
            "malformed",
            None,
        ),
        (
            "a number",
            b"7".to_vec(),
            422,
            "invalid_event",
            Some("event"),
        ),
        (
            "wrong type",
            br#"{"tenant_id":"acme","actor_id":1,"action":"a","resource":"r"}"#.to_vec(),
            422,
            "invalid_event",
            Some("actor_id"),
        ),
        (
            "unknown field",
            br#"{"tenant_id":"acme","actor_id":"u","action":"a","resource":"r","actr":"x"}"#
                .to_vec(),
            422,
            "invalid_event",
            Some("actr"),
        ),
        (
            "empty batch",
            br#"{"events":[]}"#.to_vec(),
            400,
            "invalid_request",
            None,
        ),
        (
            "batch with more",
            br#"{"events":[],"x":1}"#.to_vec(),
            400,
            "malformed",
            None,
        ),
        (
            "a field over its limit",
            json!({"tenant_id":"acme","actor_id":"u".repeat(5000),"action":"a","resource":"r"})
                .to_string()
                .into_bytes(),
            422,
            "invalid_event",
            Some("actor_id"),
        ),
    ];
    for (what, body, status, code, field) in cases {
        let r = post(addr, &admin, json_type, &body);
        assert_eq!(
            r.status,
            status,
            "{what}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.error_code(), code, "{what}");
        assert_eq!(r.json()["error"]["field"].as_str(), field, "{what}");
    }
    // More events than the batch limit: 413.
    let many: Vec<Value> = (0..1001).map(|i| ev(&format!("u{i}"))).collect();
    let r = post(
        addr,
        &admin,
        json_type,
        json!({"events": many}).to_string().as_bytes(),
    );
    assert_eq!((r.status, r.error_code().as_str()), (413, "too_large"));
    // Another media type: 415.
    let r = post(addr, &admin, "text/plain", b"hello");
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (415, "unsupported_media_type")
    );

    // A body over the limit, by Content-Length: refused before it is sent.
    let mut s = raw_connect(addr);
    write!(s, "POST /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n", admin.text).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let r = parse_http_reply(&raw);
    assert_eq!((r.status, r.error_code().as_str()), (413, "too_large"));
    // Chunked, with no length: cut off at the limit.
    let mut s = raw_connect(addr);
    write!(s, "POST /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n", admin.text).unwrap();
    let chunk = vec![b' '; 16 << 10];
    for _ in 0..8 {
        if write!(s, "{:x}\r\n", chunk.len())
            .and_then(|()| s.write_all(&chunk))
            .and_then(|()| s.write_all(b"\r\n"))
            .is_err()
        {
            break;
        }
    }
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let r = parse_http_reply(&raw);
    assert_eq!((r.status, r.error_code().as_str()), (413, "too_large"));
    // A gzip bomb: 40 MB of zeros in a few KB.
    let bomb = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(&vec![b' '; 40 << 20]).unwrap();
        e.finish().unwrap()
    };
    assert!(bomb.len() < 64 << 10, "{} bytes", bomb.len());
    let auth = format!("Bearer {}", admin.text);
    let r = http(
        addr,
        "POST",
        "/api/v1/events",
        &[
            ("Authorization", &auth),
            ("Content-Type", json_type),
            ("Content-Encoding", "gzip"),
        ],
        &bomb,
    );
    assert_eq!((r.status, r.error_code().as_str()), (413, "too_large"));
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("inflates to more than"));
    // A stalled body: 408 after the frame timeout.
    let mut s = raw_connect(addr);
    write!(s, "POST /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"actor", admin.text).unwrap();
    let started = std::time::Instant::now();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let r = parse_http_reply(&raw);
    assert_eq!((r.status, r.error_code().as_str()), (408, "timeout"));
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    // Headers over 16 KiB: hyper answers 431 and closes.
    let mut s = raw_connect(addr);
    let _ = write!(
        s,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(40 << 10)
    );
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    assert!(
        raw.starts_with(b"HTTP/1.1 431"),
        "{:?}",
        String::from_utf8_lossy(&raw[..raw.len().min(200)])
    );

    // 10,000 requests with wrong keys, on keep-alive connections: each a
    // 401, and the process's memory stays put.
    let before = rss_kib(std::process::id());
    for conn in 0..10 {
        let mut s = raw_connect(addr);
        for i in 0..1000 {
            let req = format!("GET /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer clk_{conn}x{i}\r\n\r\n");
            let (status, body) = keep_alive_request(&mut s, &req);
            assert_eq!(status, 401);
            let v: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["error"]["code"], "unauthenticated");
        }
    }
    let grown = rss_kib(std::process::id()).saturating_sub(before);
    assert!(
        grown < 32 << 10,
        "RSS grew by {grown} KiB over 10,000 refused requests"
    );
    // And the server still serves.
    let r = post(addr, &admin, json_type, ev("after").to_string().as_bytes());
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["seq"], 0);
    server.shutdown();
}

#[test]
fn kill9_during_http_appends_from_8_clients_loses_no_receipted_event() {
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    write_config(dir.path(), "127.0.0.1:0", &[&admin], "");
    let daemon = Daemon::with_config(dir.path());
    let addr = daemon.http_addr();
    let receipts = Arc::new(Mutex::new(Vec::<(u64, String, String)>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let (receipts, stop, text) = (receipts.clone(), stop.clone(), admin.text.clone());
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let actor = format!("w{w}-{i}");
                    let body = json!({"events": [
                        {"tenant_id": "acme", "actor_id": actor, "action": "doc.read", "resource": "doc"},
                        {"tenant_id": "acme", "actor_id": format!("{actor}b"), "action": "doc.read", "resource": "doc"},
                    ]})
                    .to_string();
                    let req = format!(
                        "POST /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {text}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let Ok(mut s) = TcpStream::connect(addr) else { return };
                    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                    if s.write_all(req.as_bytes()).is_err() {
                        return;
                    }
                    let mut raw = Vec::new();
                    if s.read_to_end(&mut raw).is_err() || !raw.windows(4).any(|w| w == b"\r\n\r\n") {
                        return; // killed mid-reply: no receipt
                    }
                    let r = parse_http_reply(&raw);
                    if r.status != 200 {
                        return;
                    }
                    for (n, rc) in r.json()["receipts"].as_array().unwrap().iter().enumerate() {
                        let who = if n == 0 { actor.clone() } else { format!("{actor}b") };
                        receipts.lock().unwrap().push((
                            rc["seq"].as_u64().unwrap(),
                            rc["hash"].as_str().unwrap().to_owned(),
                            who,
                        ));
                    }
                    i += 1;
                }
            })
        })
        .collect();
    // Kill once a good number are receipted.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while receipts.lock().unwrap().len() < 400 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    daemon.kill9();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let receipts = receipts.lock().unwrap().clone();
    assert!(
        receipts.len() >= 400,
        "only {} receipts before the deadline",
        receipts.len()
    );

    // Restarted: every receipted event is there with its hash and content.
    let server = server::Server::start(server::ServerConfig {
        http_listen: String::new(),
        ..common::config(dir.path(), &[&admin])
    })
    .unwrap();
    let mut c = connect(server.addr(), &admin);
    let mut stored = std::collections::HashMap::new();
    let mut from = 0;
    loop {
        let page = c.read(from, u64::MAX, 1000).unwrap();
        if page.events.is_empty() {
            break;
        }
        for e in &page.events {
            stored.insert(e.seq, (e.hash, e.event.actor_id.clone()));
        }
        from = page.events.last().unwrap().seq + 1;
    }
    for (seq, hash, actor) in &receipts {
        let (h, a) = stored
            .get(seq)
            .unwrap_or_else(|| panic!("receipted seq {seq} is missing"));
        let h: String = h.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!((&h, a), (hash, actor), "seq {seq}");
    }
    server.shutdown();
}
