//! `chainlog stats`: the head and counters, as text and as JSON.
#![allow(clippy::unwrap_used)]

mod cli_common;

use cli_common::*;

#[test]
fn stats_prints_the_head_and_the_counters() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path());
    let out = r.run(&["stats"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "log              default\nevents           0\nappends, syncs   0 in 0 (since the server started)\nsegments         1\nunknown actions  0\n"
    );
    let out = r.run(
        &[
            "append",
            "--tenant",
            "acme",
            "--actor",
            "u1",
            "--action",
            "a.b",
            "--resource",
            "r",
        ],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let hash = text(&out.stdout)
        .split('\t')
        .nth(1)
        .unwrap()
        .trim()
        .to_string();
    let out = r.run(&["stats", "--json"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(v["log"], "default");
    assert_eq!(v["next_seq"], 1);
    assert_eq!(v["head_hash"], hash);
    assert_eq!(v["appends"], 1);
    assert_eq!(v["ingests"], serde_json::json!([]));
}
