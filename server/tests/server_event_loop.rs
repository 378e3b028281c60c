//! The event-loop front end: a thousand connections on a fixed set of
//! threads, the per-connection bound on tails, frame lengths refused as
//! soon as they are read, and kill -9 under pipelining clients.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use client::{AppendReceipt, Client, ErrorCode, Event};
use common::*;
use engine::testing::Rng;
use proto::msg::{self, Request, Response};

/// The server's thread count, from /proc.
fn threads_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

/// Raises this process's soft limit on open files to at least `want`
/// (children inherit it). Returns the limit in force.
#[allow(unsafe_code)]
fn raise_fd_limit(want: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct we
    // pass, which lives for the whole call.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < want {
            lim.rlim_cur = want.min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        }
    }
    lim.rlim_cur
}

const CONNECTIONS: usize = 1000;

#[test]
fn a_thousand_connections_append_and_read_back_on_a_fixed_set_of_threads() {
    let limit = raise_fd_limit(4 * CONNECTIONS as u64);
    assert!(
        limit >= 2 * CONNECTIONS as u64 + 64,
        "the open-files limit is {limit}: this test needs {} (run as root or raise the hard limit)",
        2 * CONNECTIONS + 64
    );
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    let cfg = write_config(
        dir.path(),
        "127.0.0.1:0",
        &[&admin],
        "prewrite_segments = false\nsegment_size = 4194304",
    );
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text = format!("max_connections = 2000\nio_threads = 2\n{text}");
    std::fs::write(&cfg, text).unwrap();
    let d = Daemon::with_config(dir.path());
    let pid = d.child.id();
    let before = threads_of(pid);

    // 8 threads, each opening 125 connections and appending on all of them
    // at once (submit on each, then wait on each): 1,000 appends in flight.
    let per = CONNECTIONS / 8;
    let workers: Vec<_> = (0..8)
        .map(|t| {
            let (addr, text) = (d.addr, admin.text.clone());
            std::thread::spawn(move || {
                let mut conns: Vec<Client> = (0..per)
                    .map(|_| {
                        let mut c = Client::connect(addr).unwrap();
                        c.auth(&text).unwrap();
                        c
                    })
                    .collect();
                let events: Vec<Event> = (0..per)
                    .map(|i| event("acme", &format!("conn-{t}-{i}"), "conn.opened", "conn"))
                    .collect();
                let ids: Vec<_> = conns
                    .iter_mut()
                    .zip(&events)
                    .map(|(c, e)| c.submit_append(std::slice::from_ref(e)).unwrap())
                    .collect();
                let receipts: Vec<AppendReceipt> = conns
                    .iter_mut()
                    .zip(ids)
                    .map(|(c, id)| {
                        let r = c.wait_receipts(id).unwrap();
                        assert_eq!(r.len(), 1);
                        r[0]
                    })
                    .collect();
                // Each connection reads its own event back.
                for ((c, r), e) in conns.iter_mut().zip(&receipts).zip(&events) {
                    let page = c.read(r.seq, r.seq + 1, 1).unwrap();
                    assert_eq!(page.events.len(), 1);
                    assert_eq!((page.events[0].hash, &page.events[0].event), (r.hash, e));
                }
                (conns, receipts)
            })
        })
        .collect();
    let mut conns = Vec::new();
    let mut seqs = Vec::new();
    for w in workers {
        let (c, r) = w.join().unwrap();
        conns.extend(c);
        seqs.extend(r.iter().map(|r| r.seq));
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (0..CONNECTIONS as u64).collect::<Vec<_>>());
    assert_eq!(conns.len(), CONNECTIONS);

    // All 1,000 are open and idle now: the thread count did not grow with
    // them. (2 event-loop threads, at most 4 blocking ones, the engine's
    // writer and syncer, the indexer, main and a signal thread.)
    let during = threads_of(pid);
    assert!(
        during <= 16,
        "{during} server threads with {CONNECTIONS} connections (started with {before})"
    );
    let rss = d.rss_kib();
    assert!(
        rss < 64 * 1024,
        "{rss} KiB resident with {CONNECTIONS} connections"
    );

    // Every connection still answers.
    for c in &mut conns {
        c.ping().unwrap();
    }
    let mut c = connect(d.addr, &admin);
    assert_eq!(c.stats().unwrap().next_seq, CONNECTIONS as u64);
    eprintln!(
        "{CONNECTIONS} connections: {during} server threads (at start {before}), {rss} KiB resident"
    );
}

/// Sends a request frame on a raw, authenticated connection.
fn send(s: &mut TcpStream, id: u32, req: &Request<'_>) {
    let mut out = Vec::new();
    msg::encode_request(&mut out, id, req);
    s.write_all(&out).unwrap();
}

fn authed_raw(addr: SocketAddr, key: &TestKey) -> TcpStream {
    let mut s = raw_handshake(addr);
    send(
        &mut s,
        1,
        &Request::Auth {
            key: key.text.clone(),
        },
    );
    let (id, r) = read_response(&mut s).unwrap();
    assert!(matches!((id, r), (1, Response::AuthOk { .. })));
    s
}

#[test]
fn tails_past_the_bound_are_refused_busy_and_the_rest_follow_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    let server = start(dir.path(), &[&admin]);
    let bound = server::tail::MAX_TAILS as u32;
    let mut s = authed_raw(server.addr(), &admin);
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // 200 tails from the head, ids 100..300.
    for id in 100..300u32 {
        send(&mut s, id, &Request::Tail { from: u64::MAX });
    }
    // The first `bound` run; every later one is refused, each exactly once.
    let mut refused = Vec::new();
    while refused.len() < 200 - bound as usize {
        match read_response(&mut s).unwrap() {
            (id, Response::Error(e)) => {
                assert_eq!(e.code, ErrorCode::Busy, "tail {id}: {e}");
                assert!(e.message.contains("tails per connection"), "{e}");
                refused.push(id);
            }
            other => panic!("expected refusals first, got {other:?}"),
        }
    }
    assert_eq!(refused, (100 + bound..300).collect::<Vec<_>>());

    // One event: each running tail sends it, once.
    let mut c = connect(server.addr(), &admin);
    let r = c.append(&event("acme", "u", "a.b", "r")).unwrap();
    let mut seen = HashMap::new();
    while seen.len() < bound as usize {
        match read_response(&mut s).unwrap() {
            (id, Response::TailEvents(events)) => {
                assert_eq!(events.len(), 1);
                assert_eq!((events[0].seq, events[0].hash), (r.seq, r.hash));
                assert!(seen.insert(id, ()).is_none(), "tail {id} sent it twice");
            }
            other => panic!("expected tail events, got {other:?}"),
        }
    }
    assert_eq!(
        seen.keys()
            .copied()
            .collect::<std::collections::BTreeSet<_>>(),
        (100..100 + bound).collect()
    );

    // Cancelling one makes room for one more: DONE for the tail and for the
    // cancel, then the new tail runs and is not refused.
    send(&mut s, 400, &Request::Cancel { request_id: 100 });
    let mut dones = Vec::new();
    while dones.len() < 2 {
        match read_response(&mut s).unwrap() {
            (id, Response::Done) => dones.push(id),
            other => panic!("expected DONE, got {other:?}"),
        }
    }
    dones.sort_unstable();
    assert_eq!(dones, vec![100, 400]);
    send(&mut s, 401, &Request::Tail { from: r.seq });
    match read_response(&mut s).unwrap() {
        (401, Response::TailEvents(events)) => assert_eq!(events[0].seq, r.seq),
        other => panic!("expected the new tail's events, got {other:?}"),
    }
    send(&mut s, 402, &Request::Tail { from: u64::MAX });
    match read_response(&mut s).unwrap() {
        (402, Response::Error(e)) => assert_eq!(e.code, ErrorCode::Busy),
        other => panic!("expected the bound again, got {other:?}"),
    }
}

#[test]
fn a_frame_length_below_the_minimum_is_refused_as_soon_as_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    let mut cfg = config(dir.path(), &[&admin]);
    // Long enough that an answer at the frame timeout fails the read below.
    cfg.frame_timeout_secs = 120;
    let server = server::Server::start(cfg).unwrap();
    for len in [0u32, 1, 4] {
        let mut s = raw_handshake(server.addr());
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        // Only the length: nothing after it.
        s.write_all(&len.to_le_bytes()).unwrap();
        let e = read_error(&mut s);
        assert_eq!(e.code, ErrorCode::BadFrame, "length {len}: {e}");
        assert!(e.message.contains("fewer than the 5"), "{e}");
        assert_eq!(ending(&mut s), Ending::Eof);
    }
    // And one over the maximum, also from its four bytes alone.
    let mut s = raw_handshake(server.addr());
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(&u32::MAX.to_le_bytes()).unwrap();
    assert_eq!(read_error(&mut s).code, ErrorCode::TooLarge);
}

fn kill9_rounds() -> usize {
    std::env::var("CHAINLOG_SERVER_KILL9_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
}

/// Appends kept in flight per pipelining client.
const PIPELINE: usize = 8;

#[test]
fn every_receipt_survives_kill_9_under_16_pipelining_clients() {
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    // As chainlogd runs by default (pre-written segments), with segments
    // small enough to roll several times a round.
    write_config(
        dir.path(),
        "127.0.0.1:0",
        &[&admin],
        "prewrite_segments = true",
    );
    let mut receipts: HashMap<u64, (AppendReceipt, Event)> = HashMap::new();
    let mut attempted = 0usize;
    for round in 0..kill9_rounds() {
        let d = Daemon::with_config(dir.path());
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..16u64)
            .map(|t| {
                let (addr, text, stop) = (d.addr, admin.text.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    let mut sent = 0usize;
                    let Ok(mut c) = Client::connect(addr) else {
                        return (got, sent);
                    };
                    if c.auth(&text).is_err() {
                        return (got, sent);
                    }
                    let mut rng = Rng::new(0x51f1_5eed + t * 31 + round as u64 * 1000);
                    let mut in_flight = std::collections::VecDeque::new();
                    let mut i = 0;
                    loop {
                        while in_flight.len() < PIPELINE && !stop.load(Ordering::Relaxed) {
                            let n = 1 + rng.below(4) as usize;
                            let batch: Vec<Event> = (0..n)
                                .map(|k| {
                                    let mut e = event("acme", &format!("p{t}"), "doc.write", "doc");
                                    e.resource_id = format!("r{round}-{t}-{i}-{k}");
                                    e
                                })
                                .collect();
                            i += 1;
                            match c.submit_append(&batch) {
                                Ok(id) => {
                                    sent += batch.len();
                                    in_flight.push_back((id, batch));
                                }
                                Err(_) => return (got, sent),
                            }
                        }
                        let Some((id, batch)) = in_flight.pop_front() else {
                            return (got, sent);
                        };
                        match c.wait_receipts(id) {
                            Ok(rs) => {
                                assert_eq!(rs.len(), batch.len());
                                got.extend(rs.into_iter().zip(batch));
                            }
                            Err(_) => return (got, sent),
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(800));
        d.kill9();
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            let (got, sent) = t.join().unwrap();
            attempted += sent;
            for (r, e) in got {
                assert!(
                    receipts.insert(r.seq, (r, e)).is_none(),
                    "seq {} receipted twice",
                    r.seq
                );
            }
        }
    }
    assert!(
        receipts.len() > 100,
        "only {} receipts: the load did not run",
        receipts.len()
    );
    let d = Daemon::with_config(dir.path());
    let mut c = connect(d.addr, &admin);
    let next = assert_every_receipt_stored(&mut c, &receipts);
    eprintln!(
        "{} receipted events ({attempted} sent) of {next} stored, all present after kill -9",
        receipts.len()
    );
}

#[test]
fn a_client_that_sends_more_than_the_outbox_holds_then_closes_gets_every_answer() {
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    let server = start(dir.path(), &[&admin]);
    // Several rounds: whether the last replies' room comes back with a
    // wake-up pending or not depends on timing.
    for round in 0..10u64 {
        half_close_round(server.addr(), &admin, round);
    }
}

fn half_close_round(addr: SocketAddr, admin: &TestKey, round: u64) {
    let mut s = authed_raw(addr, admin);
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    // 200 pings and 100 appends in one write (more than the 64 replies a
    // connection may owe at once), then the client's side closes.
    let mut out = Vec::new();
    for i in 0..200u32 {
        msg::encode_request(&mut out, 1000 + i, &Request::Ping(u64::from(i)));
    }
    let bodies: Vec<Vec<u8>> = (0..100)
        .map(|i| event("acme", &format!("u{i}"), "a.b", "r").encode())
        .collect();
    for (i, b) in bodies.iter().enumerate() {
        msg::encode_request(
            &mut out,
            2000 + i as u32,
            &Request::Append {
                events: vec![b.as_slice()],
            },
        );
    }
    s.write_all(&out).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    for i in 0..200u32 {
        assert_eq!(
            read_response(&mut s).unwrap(),
            (1000 + i, Response::Pong(u64::from(i)))
        );
    }
    for i in 0..100u32 {
        match read_response(&mut s).unwrap_or_else(|e| panic!("round {round}, append {i}: {e}")) {
            (id, Response::Receipts(r)) if id == 2000 + i => {
                assert_eq!(r[0].seq, round * 100 + u64::from(i))
            }
            other => panic!("round {round}, append {i}: {other:?}"),
        }
    }
    assert_eq!(ending(&mut s), Ending::Eof, "then an orderly close");
}

#[test]
fn a_cancel_then_a_close_still_gets_both_dones() {
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    let server = start(dir.path(), &[&admin]);
    for round in 0..20 {
        let mut s = authed_raw(server.addr(), &admin);
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut out = Vec::new();
        msg::encode_request(&mut out, 5, &Request::Tail { from: 0 });
        msg::encode_request(&mut out, 6, &Request::Cancel { request_id: 5 });
        s.write_all(&out).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut dones = Vec::new();
        loop {
            match read_response(&mut s) {
                Ok((id, Response::Done)) => dones.push(id),
                Ok(other) => panic!("round {round}: {other:?}"),
                Err(proto::FrameError::Closed) => break,
                Err(e) => panic!("round {round}: {e}"),
            }
        }
        dones.sort_unstable();
        assert_eq!(dones, vec![5, 6], "round {round}");
    }
}

#[test]
fn a_frame_begun_in_the_same_read_as_the_last_one_still_has_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    let mut cfg = config(dir.path(), &[&admin]);
    cfg.frame_timeout_secs = 1;
    cfg.idle_timeout_secs = 600;
    let server = server::Server::start(cfg).unwrap();
    let mut s = authed_raw(server.addr(), &admin);
    // Far below the idle timeout: only the frame deadline can end this.
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut out = Vec::new();
    msg::encode_request(&mut out, 7, &Request::Ping(7));
    let mut next = Vec::new();
    msg::encode_request(&mut next, 8, &Request::Ping(8));
    out.extend_from_slice(&next[..6]);
    s.write_all(&out).unwrap();
    assert_eq!(read_response(&mut s).unwrap(), (7, Response::Pong(7)));
    let e = read_error(&mut s);
    assert_eq!(e.code, ErrorCode::BadFrame, "{e}");
    assert!(e.message.contains("did not complete"), "{e}");
    assert_eq!(ending(&mut s), Ending::Eof);
}
