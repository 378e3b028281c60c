//! `chainlog append`, `query` (table and JSON) and `tail` against a real
//! server.
#![allow(clippy::unwrap_used)]

mod cli_common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use cli_common::*;
use serde_json::Value;

#[test]
fn append_then_query_as_a_table_and_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path());
    let out = s.run(
        &[
            "append",
            "--tenant",
            "acme",
            "--actor",
            "u1",
            "--action",
            "user.login",
            "--resource",
            "session",
            "--occurred-at",
            "2024-03-01T12:00:00Z",
            "--idempotency-key",
            "k1",
        ],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let first = text(&out.stdout);
    let (seq, hash) = first.trim().split_once('\t').unwrap();
    assert_eq!(seq, "0");
    assert_eq!(hash.len(), 64);
    // The same key again: the first receipt, marked duplicate.
    let again = s.run(
        &[
            "append",
            "--tenant",
            "acme",
            "--actor",
            "u1",
            "--action",
            "user.login",
            "--resource",
            "session",
            "--idempotency-key",
            "k1",
        ],
        "",
    );
    assert_eq!(text(&again.stdout), format!("0\t{hash}\tduplicate\n"));
    let lines = "{\"tenant_id\":\"acme\",\"actor_id\":\"u2\",\"action\":\"doc.read\",\"resource\":\"doc\",\"resource_id\":\"d1\",\"occurred_at\":\"2024-03-02T08:00:00Z\",\"metadata\":{\"ip\":\"10.0.0.1\"}}\n\n{\"tenant_id\":\"globex\",\"actor_id\":\"u3\",\"action\":\"doc.read\",\"resource\":\"doc\",\"occurred_at\":1709366400}\n";
    let out = s.run(&["append", "--json"], lines);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let receipts: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        receipts
            .iter()
            .map(|r| r["seq"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(receipts[0]["duplicate"], Value::Bool(false));
    // A bad line names itself; nothing after it is sent.
    let out = s.run(&["append"], "{\"tenant_id\":\"acme\",\"actor_id\":\"u\",\"action\":\"a.b\",\"resource\":\"r\"}\nnot json\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("line 2"),
        "{}",
        text(&out.stderr)
    );

    let table = s.run(&["query", "--action", "doc.read"], "");
    assert_eq!(
        text(&table.stdout),
        "     SEQ  OCCURRED_AT (UTC)    TENANT          ACTOR             ACTION                RESOURCE      RESOURCE_ID\n\
         \x20      1  2024-03-02 08:00:00  acme            u2                doc.read              doc           d1\n\
         \x20      2  2024-03-02 08:00:00  globex          u3                doc.read              doc           \n"
    );
    let json = s.run(
        &[
            "query",
            "--json",
            "--tenant",
            "acme",
            "--from",
            "2024-03-02",
            "--to",
            "2024-03-03",
        ],
        "",
    );
    let rows: Vec<Value> = text(&json.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(
        (
            r["seq"].as_u64(),
            r["actor_id"].as_str(),
            r["occurred_at"].as_str()
        ),
        (Some(1), Some("u2"), Some("2024-03-02T08:00:00Z"))
    );
    assert_eq!(r["metadata"]["ip"], "10.0.0.1");
    assert_eq!(r["hash"].as_str().unwrap().len(), 64);
    let count = s.run(
        &[
            "query",
            "--count",
            "--on",
            "occurred",
            "--from",
            "2024-03-01",
            "--to",
            "2024-03-03",
        ],
        "",
    );
    assert_eq!(text(&count.stdout), "3\n");
    let limited = s.run(&["query", "--json", "--limit", "2"], "");
    assert_eq!(text(&limited.stdout).lines().count(), 2);
}

/// The seqs of `chainlog query --json` output.
fn seqs(out: &std::process::Output) -> Vec<u64> {
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

#[test]
fn exact_lookups_by_key_and_correlation_in_either_order() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path());
    let lines: String = (0..12)
        .map(|i| {
            format!(
                "{{\"tenant_id\":\"acme\",\"actor_id\":\"u{i}\",\"action\":\"doc.read\",\"resource\":\"doc\",\"idempotency_key\":\"idem-{i}\",\"source_event_id\":\"src-{i}\",\"correlation_id\":\"corr-{}\"}}\n",
                i % 3
            )
        })
        .collect();
    let out = s.run(&["append", "--json"], &lines);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let q = |args: &[&str]| s.run(&[&["query", "--json"][..], args].concat(), "");
    assert_eq!(seqs(&q(&["--idempotency-key", "idem-7"])), vec![7]);
    assert_eq!(seqs(&q(&["--source-event-id", "src-4"])), vec![4]);
    assert_eq!(seqs(&q(&["--idempotency-key", "nope"])), Vec::<u64>::new());
    assert_eq!(seqs(&q(&["--correlation-id", "corr-1"])), vec![1, 4, 7, 10]);
    assert_eq!(
        seqs(&q(&["--correlation-id", "corr-1", "--order", "desc"])),
        vec![10, 7, 4, 1]
    );
    // Newest first, with a limit: the newest two.
    assert_eq!(seqs(&q(&["--order", "desc", "--limit", "2"])), vec![11, 10]);
    assert_eq!(
        seqs(&q(&[
            "--correlation-id",
            "corr-2",
            "--tenant",
            "acme",
            "--actor",
            "u5"
        ])),
        vec![5]
    );
    let count = s.run(&["query", "--count", "--correlation-id", "corr-0"], "");
    assert_eq!(text(&count.stdout), "4\n");
    let bad = s.run(&["query", "--order", "sideways"], "");
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad.stderr));
}

#[test]
fn tail_sees_events_appended_after_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path());
    let append = |actor: &str| {
        let out = s.run(
            &[
                "append",
                "--tenant",
                "t",
                "--actor",
                actor,
                "--action",
                "x.y",
                "--resource",
                "r",
            ],
            "",
        );
        assert!(out.status.success());
    };
    // Three events before the tail starts; it starts at seq 2.
    for i in 0..3 {
        append(&format!("a{i}"));
    }
    let mut tail = s
        .cmd(&["tail", "--json", "--from", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = tail.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Bounded only against a hang.
    let next = || -> (u64, String) {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the tail printed nothing for 30 s");
        let v: Value = serde_json::from_str(&line).unwrap();
        (
            v["seq"].as_u64().unwrap(),
            v["actor_id"].as_str().unwrap().to_string(),
        )
    };
    // Seq 2 printed: the tail is subscribed (the server sent it), and it
    // is still running. Everything appended from now on comes after it
    // started, so only following the log can show it.
    assert_eq!(next(), (2, "a2".into()));
    assert!(tail.try_wait().unwrap().is_none(), "the tail exited");
    for i in 3..6 {
        append(&format!("a{i}"));
        assert_eq!(next(), (i, format!("a{i}")));
    }
    assert!(tail.try_wait().unwrap().is_none(), "the tail exited");
    let _ = tail.kill();
    let _ = tail.wait();
}

#[test]
fn bench_reports_its_load_the_server_and_both_ceilings_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_with(&dir.path().join("data"), |c| {
        c.metrics_listen = "127.0.0.1:0".into();
    });
    let metrics = s.server.metrics_addr().unwrap().to_string();
    let ceiling_dir = dir.path().join("data");
    let out = s.run(
        &[
            "bench",
            "--clients",
            "2",
            "--batch",
            "10",
            "--payload",
            "256",
            "--events",
            "200",
            "--ceiling",
            ceiling_dir.to_str().unwrap(),
            "--ceiling-seconds",
            "0.5",
            "--metrics",
            &metrics,
            "--idle",
            "3",
            "--json",
        ],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(
        (v["events"].as_u64(), v["requests"].as_u64()),
        (Some(200), Some(20))
    );
    assert_eq!(
        (v["event_bytes"].as_u64(), v["record_bytes"].as_u64()),
        (Some(256), Some(320))
    );
    assert!(v["events_per_sec"].as_f64().unwrap() > 0.0);
    assert_eq!(v["ceiling"]["group_records"].as_u64(), Some(20));
    for file in ["growing", "prewritten"] {
        let c = &v["ceiling"][file];
        assert!(c["events_per_sec"].as_f64().unwrap() > 0.0, "{v}");
        let ratio = c["ratio"].as_f64().unwrap();
        let expect = v["events_per_sec"].as_f64().unwrap() / c["events_per_sec"].as_f64().unwrap();
        assert!((ratio - expect).abs() < 1e-9, "{v}");
    }
    assert!(
        v["load_tool"]["cpu_us_per_event"].as_f64().unwrap() >= 0.0,
        "{v}"
    );
    // The server's own figures, from its metrics endpoint: only the bench
    // appended in the window, 200 events over at most 20 syncs.
    let srv = &v["server"];
    let syncs = srv["syncs"].as_f64().unwrap();
    assert!((1.0..=20.0).contains(&syncs), "{v}");
    let per_sync = srv["events_per_sync"].as_f64().unwrap();
    assert!((per_sync * syncs - 200.0).abs() < 1e-6, "{v}");
    assert!(srv["cpu_us_per_event"].as_f64().unwrap() >= 0.0, "{v}");
    assert!(srv["threads"].as_f64().unwrap() >= 2.0, "{v}");
    assert_eq!(
        (
            v["idle_connections"].as_u64(),
            v["idle_failed_ping"].as_u64()
        ),
        (Some(3), Some(0))
    );
    let mut c = client::Client::connect(s.server.addr()).unwrap();
    c.auth(&s.key).unwrap();
    assert_eq!(c.stats().unwrap().next_seq, 200);
    for f in ["ceiling-growing", "ceiling-prewritten"] {
        assert!(
            !ceiling_dir.join(f).exists(),
            "the ceiling's file {f} is removed"
        );
    }
}
