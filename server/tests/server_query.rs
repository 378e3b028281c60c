//! Append 10,000 events and read them back through every query filter,
//! paging with exact counts; created_at and occurred_at windows; totals;
//! cursors bound to their query; reads by seq range; tail.

#![allow(clippy::unwrap_used)]

mod common;

use client::{ErrorCode, Event, Query, TimeField};
use common::*;

const N: u64 = 10_000;
const BASE: u64 = 1_700_000_000_000_000_000;
const SEC: u64 = 1_000_000_000;

fn gen(i: u64) -> Event {
    let actions = ["user.login", "user.logout", "doc.read", "doc.deleted"];
    let resources = ["doc", "session", "user"];
    let mut e = event(
        &format!("t{}", i % 5),
        &format!("a{}", i % 20),
        actions[(i % 4) as usize],
        resources[(i % 3) as usize],
    );
    e.resource_id = format!("r{}", i % 50);
    // Every 10th event is backfilled history, a million seconds older.
    e.backfilled = i.is_multiple_of(10);
    e.occurred_at = if e.backfilled {
        BASE - 1_000_000 * SEC + i * SEC
    } else {
        BASE + i * SEC
    };
    e
}

/// Every page of a query, by hand: (page sizes, seqs).
fn pages(c: &mut client::Client, mut q: Query) -> (Vec<usize>, Vec<u64>) {
    let mut sizes = Vec::new();
    let mut seqs = Vec::new();
    loop {
        let p = c.query_page(&q).unwrap();
        sizes.push(p.events.len());
        seqs.extend(p.events.iter().map(|e| e.seq));
        match p.cursor {
            Some(cur) => q.cursor = cur,
            None => return (sizes, seqs),
        }
    }
}

#[test]
fn every_filter_pages_through_exactly_the_matching_events() {
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    let server = start(dir.path(), &[&admin]);
    let mut c = connect(server.addr(), &admin);
    let events: Vec<Event> = (0..N).map(gen).collect();
    // Pipelined: all 20 batches in flight at once.
    let ids: Vec<_> = events
        .chunks(500)
        .map(|b| c.submit_append(b).unwrap())
        .collect();
    let mut receipts = Vec::new();
    for id in ids {
        receipts.extend(c.wait_receipts(id).unwrap());
    }
    assert_eq!(
        receipts.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (0..N).collect::<Vec<_>>()
    );

    let expect = |f: &dyn Fn(u64, &Event) -> bool| -> Vec<u64> {
        (0..N).filter(|&i| f(i, &events[i as usize])).collect()
    };
    let limit = 1000u16;
    let q = |f: fn(&mut Query)| {
        let mut q = Query::all();
        q.limit = limit;
        f(&mut q);
        q
    };
    let cases: Vec<(&str, Query, Vec<u64>)> = vec![
        ("all", q(|_| {}), expect(&|_, _| true)),
        (
            "tenant",
            q(|q| q.tenant_id = "t3".into()),
            expect(&|_, e| e.tenant_id == "t3"),
        ),
        (
            "actor",
            q(|q| q.actor_id = "a7".into()),
            expect(&|_, e| e.actor_id == "a7"),
        ),
        (
            "action",
            q(|q| q.action = "doc.deleted".into()),
            expect(&|_, e| e.action == "doc.deleted"),
        ),
        (
            "resource",
            q(|q| q.resource = "session".into()),
            expect(&|_, e| e.resource == "session"),
        ),
        (
            "resource_id",
            q(|q| q.resource_id = "r13".into()),
            expect(&|_, e| e.resource_id == "r13"),
        ),
        (
            "tenant+action",
            q(|q| {
                q.tenant_id = "t1".into();
                q.action = "user.logout".into();
            }),
            expect(&|_, e| e.tenant_id == "t1" && e.action == "user.logout"),
        ),
        (
            "occurred_at window",
            q(|q| {
                q.time_field = TimeField::OccurredAt;
                q.from = BASE + 2000 * SEC;
                q.to = BASE + 4500 * SEC;
            }),
            expect(&|_, e| (BASE + 2000 * SEC..BASE + 4500 * SEC).contains(&e.occurred_at)),
        ),
        (
            "backfilled occurred_at window",
            q(|q| {
                q.time_field = TimeField::OccurredAt;
                q.from = BASE - 1_000_000 * SEC;
                q.to = BASE - 1_000_000 * SEC + 5000 * SEC;
                q.tenant_id = "t0".into();
            }),
            expect(&|i, e| e.tenant_id == "t0" && e.backfilled && i < 5000),
        ),
    ];
    for (name, query, want) in cases {
        let (sizes, got) = pages(&mut c, query.clone());
        assert_eq!(got, want, "{name}");
        let full = want.len() / limit as usize;
        let mut expected_sizes = vec![limit as usize; full];
        if want.len() % limit as usize != 0 || want.is_empty() {
            expected_sizes.push(want.len() % limit as usize);
        }
        assert_eq!(sizes, expected_sizes, "{name}: page sizes");
        // The auto-paging iterator agrees, and so does the total.
        let via_iter: Vec<u64> = c.query(query.clone()).map(|e| e.unwrap().seq).collect();
        assert_eq!(via_iter, want, "{name}: iterator");
        let mut counted = query.clone();
        counted.want_total = true;
        counted.limit = 1;
        assert_eq!(
            c.query_page(&counted).unwrap().total,
            Some(want.len() as u64),
            "{name}: total"
        );
    }

    // created_at: a window between two receipts' times.
    let (from, to) = (receipts[3000].created_at, receipts[7000].created_at);
    let mut cq = Query::all();
    cq.time_field = TimeField::CreatedAt;
    cq.from = from;
    cq.to = to;
    cq.limit = limit;
    cq.tenant_id = "t2".into();
    let want: Vec<u64> = receipts
        .iter()
        .filter(|r| (from..to).contains(&r.created_at) && r.seq % 5 == 2)
        .map(|r| r.seq)
        .collect();
    assert!(!want.is_empty());
    assert_eq!(pages(&mut c, cq.clone()).1, want, "created_at window");

    // Events come back whole.
    let one = c.query_page(&q(|q| q.resource_id = "r49".into())).unwrap();
    assert_eq!(one.events[0].event, events[49]);
    assert_eq!(one.events[0].hash, receipts[49].hash);

    // A cursor belongs to its query.
    let mut first = q(|q| q.tenant_id = "t3".into());
    first.limit = 10;
    let cur = c.query_page(&first).unwrap().cursor.unwrap();
    let mut other = q(|q| q.tenant_id = "t4".into());
    other.cursor = cur;
    let err = c.query_page(&other).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::InvalidRequest));
    let mut over = Query::all();
    over.limit = 1001;
    assert_eq!(
        c.query_page(&over).unwrap_err().code(),
        Some(ErrorCode::InvalidRequest)
    );

    // Read by seq range, paged.
    let page = c.read(9_990, 20_000, 0).unwrap();
    assert_eq!(
        page.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (9_990..N).collect::<Vec<_>>()
    );
    assert_eq!(page.cursor, None);
    let page = c.read(100, 400, 50).unwrap();
    assert_eq!(page.events.len(), 50);
    assert_eq!(page.cursor, Some(150u64.to_le_bytes().to_vec()));

    // Tail from near the end, then new events as they become durable.
    let mut tailer = connect(server.addr(), &admin);
    let mut writer = connect(server.addr(), &admin);
    let mut tail = tailer.tail(N - 3).unwrap();
    let mut seen: Vec<u64> = (0..3).map(|_| tail.next().unwrap().unwrap().seq).collect();
    let more = writer.append_batch(&[gen(1), gen(2)]).unwrap();
    seen.extend((0..2).map(|_| tail.next().unwrap().unwrap().seq));
    assert_eq!(seen, vec![N - 3, N - 2, N - 1, more[0].seq, more[1].seq]);
    tail.cancel().unwrap();
    tailer.ping().unwrap();
}
