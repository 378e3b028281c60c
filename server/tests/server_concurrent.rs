//! Sixteen clients appending at once: every receipt is durable and unique,
//! and group commit makes syncs far fewer than appends.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use common::*;

#[test]
fn sixteen_clients_share_syncs_and_get_unique_durable_receipts() {
    const CLIENTS: u64 = 16;
    const EACH: u64 = 100;
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    let server = start(dir.path(), &[&admin]);
    let addr = server.addr();
    let threads: Vec<_> = (0..CLIENTS)
        .map(|t| {
            let text = admin.text.clone();
            std::thread::spawn(move || {
                let mut c = client::Client::connect(addr).unwrap();
                c.auth(&text).unwrap();
                (0..EACH)
                    .map(|i| {
                        let e = event("acme", &format!("c{t}"), "doc.read", &format!("{i}"));
                        (c.append(&e).unwrap(), e)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut by_seq = BTreeMap::new();
    for t in threads {
        for (r, e) in t.join().unwrap() {
            assert!(
                by_seq.insert(r.seq, (r, e)).is_none(),
                "seq {} acknowledged twice",
                r.seq
            );
        }
    }
    assert_eq!(
        by_seq.keys().copied().collect::<Vec<_>>(),
        (0..CLIENTS * EACH).collect::<Vec<_>>()
    );
    let mut c = connect(addr, &admin);
    let stored = c.read(0, u64::MAX, 1000).unwrap();
    let mut stored = stored.events;
    stored.extend(c.read(1000, u64::MAX, 1000).unwrap().events);
    assert_eq!(stored.len() as u64, CLIENTS * EACH);
    for s in &stored {
        let (r, e) = &by_seq[&s.seq];
        assert_eq!(
            (&s.hash, s.created_at, &s.event),
            (&r.hash, r.created_at, e)
        );
    }
    let stats = c.stats().unwrap();
    assert_eq!(stats.appends, CLIENTS * EACH);
    eprintln!("{} appends in {} syncs", stats.appends, stats.syncs);
    assert!(
        stats.syncs * 4 <= stats.appends,
        "group commit: {} syncs for {} appends",
        stats.syncs,
        stats.appends
    );
}
