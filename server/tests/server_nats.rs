//! NATS JetStream ingest end to end: a real nats-server (`-js -sd DIR`) on
//! a loopback port, real chainlogd processes consuming it, and the log
//! read back through the Rust client. Dual-published events stored once;
//! kill -9 of chainlogd during ingest, three times; nats-server restarted
//! during ingest; malformed messages dead-lettered with their reasons
//! while the stream flows; two chainlogd nodes on disjoint filters of one
//! stream.
//!
//! `CHAINLOG_NATS_MESSAGES` sets the size of the big runs (default 20,000
//! messages in CI; the issue's figure is 100,000).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use client::{Query, StoredEvent};
use common::nats::{binary, Js, Msg, NatsServer};
use common::*;

fn nats_or_skip(test: &str) -> Option<std::path::PathBuf> {
    match binary() {
        Ok(b) => Some(b),
        Err(why) => {
            skip(test, &why);
            None
        }
    }
}

/// Turns on chainlogd's metrics listener in the config written in `data`.
fn enable_metrics(data: &Path) {
    let cfg = data.join("chainlogd.toml");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("metrics_listen = \"\"", "metrics_listen = \"127.0.0.1:0\"");
    std::fs::write(&cfg, text).unwrap();
}

/// The metrics page of a chainlogd started after [`enable_metrics`].
fn metrics_page(d: &Daemon) -> String {
    let out = d.stdout.lock().unwrap().clone();
    let metrics: std::net::SocketAddr = out
        .split("metrics on http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap()
        .parse()
        .unwrap();
    http_get(metrics, "/metrics").1
}

fn messages_env(default: usize) -> usize {
    std::env::var("CHAINLOG_NATS_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A chainlogd config in `dir` with one ingest section per entry of
/// `ingests` (its TOML body after `[[ingest.nats]]`).
fn daemon_config(dir: &Path, keys: &[&TestKey], log_extra: &str, ingests: &[String]) {
    let path = write_config(dir, "127.0.0.1:0", keys, log_extra);
    let mut text = std::fs::read_to_string(&path).unwrap();
    for i in ingests {
        text.push_str(&format!("\n[[ingest.nats]]\n{i}\n"));
    }
    std::fs::write(&path, text).unwrap();
}

fn ingest_toml(url: &str, durable: &str, subjects: &[&str], extra: &str) -> String {
    format!(
        "name = \"{durable}\"\nservers = [\"{url}\"]\nstream = \"EVENTS\"\ndurable = \"{durable}\"\nsubjects = {subjects:?}\nlog = \"default\"\n{extra}"
    )
}

/// Every event of the log, in seq order.
fn all_events(addr: std::net::SocketAddr, k: &TestKey) -> Vec<StoredEvent> {
    let mut c = connect(addr, k);
    c.query(Query::all()).map(|e| e.unwrap()).collect()
}

/// Waits until the log holds `n` events.
fn wait_events(addr: std::net::SocketAddr, k: &TestKey, n: u64, limit: Duration) {
    let deadline = Instant::now() + limit;
    let mut c = connect(addr, k);
    loop {
        let got = c.stats().unwrap().next_seq;
        if got >= n {
            assert_eq!(got, n, "more events than distinct messages");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{got} of {n} events after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn source_ids(events: &[StoredEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| e.event.source_event_id.clone())
        .collect()
}

fn metadata(e: &StoredEvent) -> serde_json::Value {
    serde_json::from_str(&e.event.metadata).unwrap()
}

/// `distinct` events on the canonical subject, every third of them also
/// on a legacy subject with the same `source_event_id` (and the action in
/// the body, as a legacy publisher would send it).
fn dual_published(distinct: usize) -> Vec<Msg> {
    dual_published_range(0..distinct)
}

/// [`dual_published`] for the events numbered `range`.
fn dual_published_range(range: std::ops::Range<usize>) -> Vec<Msg> {
    let mut out = Vec::with_capacity(range.len() + range.len() / 3 + 1);
    for i in range {
        let body = format!(
            r#"{{"tenant_id":"t{}","actor_id":"u{}","resource":"user","resource_id":"r{i}","source_event_id":"evt-{i}","occurred_at":1764583200000,"pad":"{}"}}"#,
            i % 20,
            i % 500,
            "x".repeat(64)
        );
        out.push((
            "identity.user.created.v1".to_string(),
            vec![],
            body.into_bytes(),
        ));
        if i.is_multiple_of(3) {
            let legacy = format!(
                r#"{{"tenant_id":"t{}","actor_id":"u{}","action":"identity.user.created","resource":"user","resource_id":"r{i}","source_event_id":"evt-{i}","occurred_at":1764583200000,"pad":"{}"}}"#,
                i % 20,
                i % 500,
                "x".repeat(64)
            );
            out.push((
                "com.ghasi-ehr.iam.user.created".to_string(),
                vec![],
                legacy.into_bytes(),
            ));
        }
    }
    out
}

#[test]
fn dual_published_events_are_stored_once_each() {
    let test = "dual_published_events_are_stored_once_each";
    let Some(bin) = nats_or_skip(test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let nats = NatsServer::start(&bin, dir.path());
    let js = Js::connect(&nats.url());
    js.stream("EVENTS", &["identity.>", "com.ghasi-ehr.>"]);
    let total = messages_env(20_000);
    // distinct + distinct/3 (rounded up) = total.
    let distinct = total * 3 / 4;
    let msgs = dual_published(distinct);
    js.publish(&msgs);

    let k = key("reader", "default", &["read"], &[]);
    let data = dir.path().join("chainlog");
    std::fs::create_dir_all(&data).unwrap();
    daemon_config(
        &data,
        &[&k],
        "",
        &[ingest_toml(
            &nats.url(),
            "audit",
            &["identity.>", "com.ghasi-ehr.iam.>"],
            "",
        )],
    );
    enable_metrics(&data);
    let d = Daemon::with_config(&data);
    wait_events(d.addr, &k, distinct as u64, Duration::from_secs(300));
    js.wait_drained("EVENTS", "audit", Duration::from_secs(60));

    let events = all_events(d.addr, &k);
    let ids = source_ids(&events);
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(ids.len(), distinct);
    assert_eq!(unique.len(), distinct, "a source_event_id stored twice");
    let expected: BTreeSet<String> = (0..distinct).map(|i| format!("evt-{i}")).collect();
    assert_eq!(
        unique.into_iter().cloned().collect::<BTreeSet<_>>(),
        expected
    );
    // Per subject family: events published only canonically came from the
    // canonical subject; a dual-published one from either copy, with the
    // same action.
    let mut families: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &events {
        let m = metadata(e);
        let subject = m["nats_subject"].as_str().unwrap().to_string();
        let i: usize = e.event.source_event_id["evt-".len()..].parse().unwrap();
        if !i.is_multiple_of(3) {
            assert_eq!(subject, "identity.user.created.v1");
        }
        assert_eq!(e.event.action, "identity.user.created");
        assert_eq!(m["pad"], "x".repeat(64), "unknown fields kept in metadata");
        *families
            .entry(if subject.starts_with("identity.") {
                "canonical"
            } else {
                "legacy"
            })
            .or_default() += 1;
    }
    let only_canonical = distinct - distinct.div_ceil(3);
    assert!(families["canonical"] >= only_canonical, "{families:?}");
    assert_eq!(families.values().sum::<usize>(), distinct, "{families:?}");
    // Its counters, over the protocol's STATS: every message stored or
    // recognised (a redelivery, had there been one, is a duplicate too).
    let mut c = connect(d.addr, &k);
    let s = c.stats().unwrap();
    assert_eq!(s.ingests.len(), 1);
    let i = &s.ingests[0];
    assert_eq!((i.name.as_str(), i.state.as_str()), ("audit", "consuming"));
    assert_eq!(i.stored, distinct as u64);
    assert_eq!(i.duplicates, (msgs.len() - distinct) as u64 + i.redelivered);
    assert_eq!(i.received, msgs.len() as u64 + i.redelivered);
    assert_eq!((i.dead_lettered, i.pending), (0, 0));
    assert!(i.last_ack_ms > 0);
    // Every second copy came on the other subject family, so its metadata
    // (nats_subject) differs from the stored copy's: a conflict anywhere
    // else, here a duplicate of the first copy, counted as both. (A
    // redelivered second copy counts again; a redelivered first copy is a
    // plain duplicate.)
    let page = metrics_page(&d);
    let conflicts: u64 = page
        .lines()
        .find_map(|l| l.strip_prefix("chainlog_ingest_conflicts_total{ingest=\"audit\"} "))
        .unwrap_or_else(|| panic!("no conflicts series in\n{page}"))
        .parse()
        .unwrap();
    let second_copies = (msgs.len() - distinct) as u64;
    assert!(
        (second_copies..=second_copies + i.redelivered).contains(&conflicts),
        "{conflicts} conflicts, {second_copies} second copies, {} redelivered",
        i.redelivered
    );
    // Its state on /readyz.
    let (status, body) = http_get(d.http_addr(), "/readyz");
    assert_eq!(status, "HTTP/1.1 200 OK");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["ingests"]["audit"]["state"], "consuming", "{body}");
    assert_eq!(v["ingests"]["audit"]["pending"], 0, "{body}");
}

#[test]
fn malformed_messages_are_dead_lettered_with_their_reasons_and_the_stream_flows() {
    let test = "malformed_messages_are_dead_lettered_with_their_reasons_and_the_stream_flows";
    let Some(bin) = nats_or_skip(test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let nats = NatsServer::start(&bin, dir.path());
    let js = Js::connect(&nats.url());
    js.stream("EVENTS", &["audit.>"]);
    js.stream("DEAD", &["chainlog.dead"]);
    let good = |i: usize| -> Msg {
        (
            "audit.user.login.v1".into(),
            vec![("Nats-Msg-Id".into(), format!("good-{i}"))],
            format!(r#"{{"tenant_id":"acme","actor_id":"u{i}","resource":"session"}}"#)
                .into_bytes(),
        )
    };
    let bad: Vec<(Msg, &str, &str)> = vec![
        (
            ("audit.user.login.v1".into(), vec![], b"{not json".to_vec()),
            "",
            "the body is not JSON",
        ),
        (
            (
                "audit.user.login.v1".into(),
                vec![],
                br#"{"tenant_id":"acme","resource":"session"}"#.to_vec(),
            ),
            "actor_id",
            "invalid_event",
        ),
        (
            (
                "audit.billing.refund.v1".into(),
                vec![],
                br#"{"tenant_id":"acme","actor_id":"u","resource":"invoice"}"#.to_vec(),
            ),
            "action",
            "not in the log's schema",
        ),
        (
            (
                "audit.user.login.v1".into(),
                vec![],
                format!(
                    r#"{{"tenant_id":"acme","actor_id":"u","resource":"s","metadata":{{"blob":"{}"}}}}"#,
                    "b".repeat(40_000)
                )
                .into_bytes(),
            ),
            "metadata",
            "more than the limit of 32768",
        ),
        (
            (
                "audit.user.login.v1".into(),
                vec![],
                br#"{"tenant_id":"acme","actor_id":["u"],"resource":"s"}"#.to_vec(),
            ),
            "actor_id",
            "must be a string",
        ),
    ];
    // Good and bad interleaved: good 0, bad 0, good 1, bad 1, ...
    let mut msgs = Vec::new();
    for (i, (m, _, _)) in bad.iter().enumerate() {
        msgs.push(good(i));
        msgs.push(m.clone());
    }
    for i in bad.len()..50 {
        msgs.push(good(i));
    }
    js.publish(&msgs);

    let k = key("reader", "default", &["read"], &[]);
    let data = dir.path().join("chainlog");
    std::fs::create_dir_all(&data).unwrap();
    daemon_config(
        &data,
        &[&k],
        "schema_mode = \"strict\"\nactions = [\"audit.user.*\"]\n",
        &[ingest_toml(
            &nats.url(),
            "audit",
            &["audit.>"],
            "dead_letter_subject = \"chainlog.dead\"\n",
        )],
    );
    enable_metrics(&data);
    let d = Daemon::with_config(&data);
    wait_events(d.addr, &k, 50, Duration::from_secs(60));
    js.wait_drained("EVENTS", "audit", Duration::from_secs(30));
    let events = all_events(d.addr, &k);
    let ids = source_ids(&events);
    let mut c = connect(d.addr, &k);
    let i = c.stats().unwrap().ingests.remove(0);
    assert_eq!((i.stored, i.dead_lettered), (50, bad.len() as u64));
    // The same counters on the metrics page.
    let page = metrics_page(&d);
    for line in [
        "chainlog_ingest_stored_total{ingest=\"audit\"} 50",
        "chainlog_ingest_dead_lettered_total{ingest=\"audit\"} 5",
        "chainlog_ingest_received_total{ingest=\"audit\"} 55",
        "chainlog_ingest_duplicates_total{ingest=\"audit\"} 0",
        "chainlog_ingest_conflicts_total{ingest=\"audit\"} 0",
        "chainlog_ingest_pending{ingest=\"audit\"} 0",
        "chainlog_ingest_consuming{ingest=\"audit\"} 1",
        "chainlog_ingest_stopped{ingest=\"audit\"} 0",
    ] {
        assert!(page.lines().any(|l| l == line), "{line} not in\n{page}");
    }
    let expected: Vec<String> = (0..50).map(|i| format!("good-{i}")).collect();
    assert_eq!(ids, expected, "the good messages, in order, once each");

    // Each bad message on the dead-letter subject once, with its reason
    // (in any order: mapping refusals go out before the append's).
    let dead = js.read_all("DEAD");
    assert_eq!(dead.len(), bad.len(), "{} dead letters", dead.len());
    for ((src_subject, _, src_body), field, reason) in &bad {
        let found: Vec<&Msg> = dead.iter().filter(|(_, _, b)| b == src_body).collect();
        assert_eq!(
            found.len(),
            1,
            "{}",
            String::from_utf8_lossy(&src_body[..40.min(src_body.len())])
        );
        let (subject, headers, _) = found[0];
        let h: BTreeMap<&str, &str> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(subject, "chainlog.dead");
        assert_eq!(h["Chainlog-Subject"], src_subject);
        assert_eq!(h["Chainlog-Field"], *field, "{h:?}");
        assert!(h["Chainlog-Reason"].contains(reason), "{h:?}");
        assert_eq!(h["Chainlog-Ingest"], "audit");
        assert_eq!(h["Chainlog-Stream"], "EVENTS");
    }
}

#[test]
fn kill_9_during_ingest_three_times_loses_nothing_and_stores_nothing_twice() {
    let test = "kill_9_during_ingest_three_times_loses_nothing_and_stores_nothing_twice";
    let Some(bin) = nats_or_skip(test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let nats = NatsServer::start(&bin, dir.path());
    let js = Js::connect(&nats.url());
    js.stream("EVENTS", &["identity.>", "com.ghasi-ehr.>"]);
    let total = messages_env(20_000);
    let distinct = total * 3 / 4;
    js.publish(&dual_published(distinct));

    let k = key("reader", "default", &["read"], &[]);
    let data = dir.path().join("chainlog");
    std::fs::create_dir_all(&data).unwrap();
    daemon_config(
        &data,
        &[&k],
        "",
        &[ingest_toml(
            &nats.url(),
            "audit",
            &["identity.>", "com.ghasi-ehr.iam.>"],
            "ack_wait_secs = 2\n",
        )],
    );
    let mut rng = engine::testing::Rng::new(17);
    let mut last = 0;
    for round in 0..3 {
        let d = Daemon::with_config(&data);
        // Kill it once it has stored more than before: in the middle.
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut c = connect(d.addr, &k);
        let target = last + 1 + rng.below((distinct as u64 / 6).max(1));
        loop {
            let n = c.stats().unwrap().next_seq;
            if n >= target {
                last = n;
                break;
            }
            assert!(Instant::now() < deadline, "round {round}: stuck at {n}");
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(c);
        d.kill9();
        assert!(
            last < distinct as u64,
            "round {round}: finished before the kill"
        );
    }
    let d = Daemon::with_config(&data);
    wait_events(d.addr, &k, distinct as u64, Duration::from_secs(300));
    js.wait_drained("EVENTS", "audit", Duration::from_secs(60));
    let ids = source_ids(&all_events(d.addr, &k));
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!((ids.len(), unique.len()), (distinct, distinct));
}

#[test]
fn a_nats_server_restart_during_ingest_is_ridden_out() {
    let test = "a_nats_server_restart_during_ingest_is_ridden_out";
    let Some(bin) = nats_or_skip(test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut nats = NatsServer::start(&bin, dir.path());
    let js = Js::connect(&nats.url());
    js.stream("EVENTS", &["identity.>", "com.ghasi-ehr.>"]);
    let distinct = messages_env(20_000) / 4;
    let msgs = dual_published(distinct);
    let half = msgs.len() / 2;
    js.publish(&msgs[..half]);

    let k = key("reader", "default", &["read"], &[]);
    let data = dir.path().join("chainlog");
    std::fs::create_dir_all(&data).unwrap();
    daemon_config(
        &data,
        &[&k],
        "",
        &[ingest_toml(
            &nats.url(),
            "audit",
            &["identity.>", "com.ghasi-ehr.iam.>"],
            "",
        )],
    );
    let d = Daemon::with_config(&data);
    let mut c = connect(d.addr, &k);
    let deadline = Instant::now() + Duration::from_secs(60);
    while c.stats().unwrap().next_seq == 0 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    nats.restart();
    drop(js);
    let js = Js::connect(&nats.url());
    js.publish(&msgs[half..]);
    wait_events(d.addr, &k, distinct as u64, Duration::from_secs(180));
    js.wait_drained("EVENTS", "audit", Duration::from_secs(60));
    let ids = source_ids(&all_events(d.addr, &k));
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!((ids.len(), unique.len()), (distinct, distinct));
    let stderr = d.stderr.lock().unwrap().clone();
    assert!(
        stderr.matches("nats ingest consuming").count() >= 1,
        "{stderr}"
    );
}

#[test]
fn two_nodes_on_disjoint_filters_of_one_stream_store_each_event_in_exactly_one_log() {
    let test = "two_nodes_on_disjoint_filters_of_one_stream_store_each_event_in_exactly_one_log";
    let Some(bin) = nats_or_skip(test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let nats = NatsServer::start(&bin, dir.path());
    let js = Js::connect(&nats.url());
    js.stream("EVENTS", &["audit.>"]);
    // Tenants in two groups, by subject.
    let mut msgs = Vec::new();
    let mut per_group = [0u64; 2];
    for i in 0..3000usize {
        let g = i % 2;
        per_group[g] += 1;
        msgs.push((
            format!("audit.group-{}.t{}.user.login", ["a", "b"][g], i % 7),
            vec![("Nats-Msg-Id".to_string(), format!("m-{i}"))],
            format!(
                r#"{{"tenant_id":"t{}","actor_id":"u","action":"user.login","resource":"s"}}"#,
                i % 7
            )
            .into_bytes(),
        ));
    }
    js.publish(&msgs);
    let k = key("reader", "default", &["read"], &[]);
    let mut nodes = Vec::new();
    for (g, durable) in [("a", "node-a"), ("b", "node-b")] {
        let data = dir.path().join(durable);
        std::fs::create_dir_all(&data).unwrap();
        let filter = format!("audit.group-{g}.>");
        daemon_config(
            &data,
            &[&k],
            "",
            &[ingest_toml(&nats.url(), durable, &[filter.as_str()], "")],
        );
        nodes.push(Daemon::with_config(&data));
    }
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (n, d) in nodes.iter().enumerate() {
        wait_events(d.addr, &k, per_group[n], Duration::from_secs(120));
        js.wait_drained("EVENTS", ["node-a", "node-b"][n], Duration::from_secs(30));
        for e in all_events(d.addr, &k) {
            let subject = metadata(&e)["nats_subject"].as_str().unwrap().to_string();
            assert!(
                subject.starts_with(&format!("audit.group-{}.", ["a", "b"][n])),
                "{subject} in node {n}"
            );
            *seen.entry(e.event.source_event_id.clone()).or_default() += 1;
        }
    }
    assert_eq!(seen.len(), 3000);
    assert!(seen.values().all(|&n| n == 1));
}

/// A full disk under chainlogd while it ingests (a 1 MiB tmpfs; needs
/// root): the log is poisoned, the ingest stops and says why, the messages
/// it could not store stay unacknowledged in JetStream; moved to a disk
/// with room and restarted, chainlogd stores every message exactly once.
#[test]
fn a_poisoned_log_stops_the_ingest_and_nothing_unstored_is_acknowledged() {
    let test = "a_poisoned_log_stops_the_ingest_and_nothing_unstored_is_acknowledged";
    let Some(bin) = nats_or_skip(test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&mnt)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        skip(test, "mounting a tmpfs needs root (CAP_SYS_ADMIN)");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mnt.clone());
    std::fs::write(mnt.join("ballast"), vec![1u8; 256 << 10]).unwrap();

    let nats = NatsServer::start(&bin, dir.path());
    let js = Js::connect(&nats.url());
    js.stream("EVENTS", &["identity.>", "com.ghasi-ehr.>"]);
    let distinct = 4000;
    js.publish(&dual_published(distinct));
    let k = key("reader", "default", &["read"], &[]);
    let data = mnt.join("chainlog");
    std::fs::create_dir_all(&data).unwrap();
    daemon_config(
        &data,
        &[&k],
        "segment_size = 65536\n",
        &[ingest_toml(
            &nats.url(),
            "audit",
            &["identity.>", "com.ghasi-ehr.iam.>"],
            "ack_wait_secs = 2\n",
        )],
    );
    let d = Daemon::with_config(&data);
    let deadline = Instant::now() + Duration::from_secs(60);
    let readyz = loop {
        let (status, body) = http_get(d.http_addr(), "/readyz");
        if status.contains("503") {
            break body;
        }
        assert!(Instant::now() < deadline, "never poisoned: {body}");
        std::thread::sleep(Duration::from_millis(20));
    };
    // The ingest notices at its next append.
    let deadline = Instant::now() + Duration::from_secs(30);
    let stats = loop {
        let s = connect(d.addr, &k).stats().unwrap();
        if s.ingests[0].state == "stopped" {
            break s;
        }
        assert!(Instant::now() < deadline, "{readyz}: {:?}", s.ingests);
        std::thread::sleep(Duration::from_millis(20));
    };
    let i = &stats.ingests[0];
    assert_eq!(i.detail, "its log is poisoned");
    assert!(
        (i.stored as usize) < distinct,
        "the disk should have filled first"
    );
    // What it acknowledged is at most what it stored: the rest waits.
    let (pending, unacked) = js.consumer_state("EVENTS", "audit").unwrap();
    assert!(pending + unacked > 0, "everything acknowledged?");
    let stored_before = stats.next_seq;
    d.kill9();

    // To a disk with room, and again.
    let moved = dir.path().join("moved");
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(&data)
        .arg(&moved)
        .status()
        .unwrap();
    assert!(copied.success());
    let d = Daemon::with_config(&moved);
    wait_events(d.addr, &k, distinct as u64, Duration::from_secs(120));
    js.wait_drained("EVENTS", "audit", Duration::from_secs(60));
    let ids = source_ids(&all_events(d.addr, &k));
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!((ids.len(), unique.len()), (distinct, distinct));
    assert!(stored_before < distinct as u64);
}

/// A busy log (a queue of one append, eight groups in flight): the
/// messages it refuses are given back with the delay, come again, and are
/// stored once each. Whether an append finds the queue full is a matter of
/// timing, so rounds of messages are sent until one has (almost always the
/// first), each round checked exactly.
#[test]
fn busy_appends_are_given_back_and_come_again() {
    let test = "busy_appends_are_given_back_and_come_again";
    let Some(bin) = nats_or_skip(test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let nats = NatsServer::start(&bin, dir.path());
    let js = Js::connect(&nats.url());
    js.stream("EVENTS", &["identity.>", "com.ghasi-ehr.>"]);
    let k = key("reader", "default", &["read"], &[]);
    let data = dir.path().join("chainlog");
    std::fs::create_dir_all(&data).unwrap();
    daemon_config(
        &data,
        &[&k],
        "queue_depth = 1\ncommit_inline = false\n",
        &[ingest_toml(
            &nats.url(),
            "audit",
            &["identity.>", "com.ghasi-ehr.iam.>"],
            "batch = 16\nmax_in_flight = 8\nbusy_delay_ms = 20\n",
        )],
    );
    let d = Daemon::with_config(&data);
    let round = 3000;
    for r in 0..5 {
        js.publish(&dual_published_range(r * round..(r + 1) * round));
        let stored = ((r + 1) * round) as u64;
        wait_events(d.addr, &k, stored, Duration::from_secs(120));
        js.wait_drained("EVENTS", "audit", Duration::from_secs(60));
        let ids = source_ids(&all_events(d.addr, &k));
        let unique: BTreeSet<&String> = ids.iter().collect();
        assert_eq!((ids.len() as u64, unique.len() as u64), (stored, stored));
        let i = connect(d.addr, &k).stats().unwrap().ingests.remove(0);
        assert_eq!(i.stored, stored);
        // Within the 30 s ack wait, a redelivery can only follow a nak.
        if i.redelivered > 0 {
            return;
        }
    }
    panic!("no append found the log busy in five rounds");
}
