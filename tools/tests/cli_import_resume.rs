//! The import's harder paths: a checkpoint from another server is refused;
//! a stop between writing rejects and saving the checkpoint reports each
//! row once; `too_large` and `busy` are absorbed by splitting and retrying;
//! several refused rows in one batch; `append` prints every receipt of the
//! batches it sent before a bad line stops it.
#![allow(clippy::unwrap_used)]

mod cli_common;

use cli_common::*;
use serde_json::json;

fn rows(n: u64, bad: &[u64]) -> String {
    let mut s = String::new();
    for i in 1..=n {
        let action = if bad.contains(&i) {
            "has space"
        } else {
            "row.imported"
        };
        let row = json!({ "id": i, "tenant_id": "t", "actor_id": "a", "action": action, "resource": "r", "occurred_at": 1_700_000_000 + i });
        s.push_str(&row.to_string());
        s.push('\n');
    }
    s
}

fn import(s: &Running, args: &[&str]) -> (Option<i32>, String) {
    let mut all = vec!["import", "--id-column", "id"];
    all.extend_from_slice(args);
    let out = s.run(&all, "");
    (out.status.code(), text(&out.stderr))
}

#[test]
fn a_checkpoint_from_another_server_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rows.jsonl");
    std::fs::write(&path, rows(50, &[])).unwrap();
    let p = path.to_str().unwrap();
    let staging = start(&dir.path().join("staging"));
    assert_eq!(import(&staging, &[p]).0, Some(0));
    let production = start(&dir.path().join("production"));
    let (code, err) = import(&production, &[p]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("belongs to another import"), "{err}");
    let (code, err) = import(&production, &["--restart", p]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("stored 50, already stored 0, rejected 0 (this run)"),
        "{err}"
    );
}

#[test]
fn a_stop_after_writing_rejects_reports_each_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(&dir.path().join("data"));
    let path = dir.path().join("rows.jsonl");
    std::fs::write(&path, rows(40, &[3, 17])).unwrap();
    let p = path.to_str().unwrap();
    let (code, err) = import(&s, &["--batch", "10", p]);
    assert_eq!(code, Some(3), "{err}");
    let rejects = tools::cli::import::rejects_path(&path);
    let full = std::fs::read_to_string(&rejects).unwrap();
    assert_eq!(full.lines().count(), 2);
    // As if killed after the rejects of rows 11..=20 were written but before
    // the checkpoint passed row 10: the checkpoint says 10 rows, one reject.
    let cp_path = tools::cli::import::checkpoint_path(&path);
    let mut cp: tools::cli::import::Checkpoint =
        serde_json::from_slice(&std::fs::read(&cp_path).unwrap()).unwrap();
    let first_line = full.lines().next().unwrap().len() as u64 + 1;
    cp.rows_done = 10;
    cp.rejects_len = first_line;
    cp.imported = 9;
    cp.rejected = 1;
    std::fs::write(&cp_path, serde_json::to_vec(&cp).unwrap()).unwrap();
    let (code, err) = import(&s, &["--batch", "10", p]);
    assert_eq!(code, Some(3), "{err}");
    assert!(
        err.contains("stored 0, already stored 29, rejected 1 (this run)"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&rejects).unwrap(),
        full,
        "each bad row once"
    );
    // A rejects file shorter than its checkpoint says is not papered over.
    std::fs::write(&rejects, "").unwrap();
    cp.rows_done = 10;
    std::fs::write(&cp_path, serde_json::to_vec(&cp).unwrap()).unwrap();
    let (code, err) = import(&s, &[p]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("shorter than its checkpoint"), "{err}");
}

#[test]
fn too_large_and_busy_are_absorbed_and_refused_rows_are_all_reported() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_with(&dir.path().join("data"), |c| {
        c.max_batch_events = 64;
        c.logs[0].queue_depth = 1;
    });
    let path = dir.path().join("rows.jsonl");
    let bad = [5, 6, 7, 300, 999];
    std::fs::write(&path, rows(2000, &bad)).unwrap();
    let (code, err) = import(
        &s,
        &["--batch", "500", "--in-flight", "8", path.to_str().unwrap()],
    );
    assert_eq!(code, Some(3), "{err}");
    assert!(
        err.contains("stored 1995, already stored 0, rejected 5 (this run)"),
        "{err}"
    );
    let rejects = std::fs::read_to_string(tools::cli::import::rejects_path(&path)).unwrap();
    let rows: Vec<u64> = rejects
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["row"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(rows, bad);
    let mut c = client::Client::connect(s.server.addr()).unwrap();
    c.auth(&s.key).unwrap();
    assert_eq!(c.stats().unwrap().next_seq, 1995);
}

#[test]
fn append_prints_every_receipt_before_reporting_a_bad_line() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path());
    let mut input = String::new();
    for i in 1..=1200 {
        if i == 1100 {
            input.push_str("{not json\n");
        } else {
            input.push_str(&json!({ "tenant_id": "t", "actor_id": "a", "action": "x.y", "resource": "r", "resource_id": format!("{i}") }).to_string());
            input.push('\n');
        }
    }
    let out = s.run(&["append"], &input);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("line 1100"),
        "{}",
        text(&out.stderr)
    );
    // Lines 1..=1000 went in two batches before line 1100 was read.
    let printed: Vec<u64> = text(&out.stdout)
        .lines()
        .map(|l| l.split('\t').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(printed, (0..1000).collect::<Vec<_>>());
    let mut c = client::Client::connect(s.server.addr()).unwrap();
    c.auth(&s.key).unwrap();
    assert_eq!(c.stats().unwrap().next_seq, 1000);
}

#[test]
fn a_lost_connection_is_a_failure_not_a_closed_output() {
    use client::ClientError;
    let gone = ClientError::Frame(proto::frame::FrameError::Io(std::io::Error::from(
        std::io::ErrorKind::BrokenPipe,
    )));
    let f = tools::cli::Failure::from(gone);
    assert!(!f.output_closed);
    assert_eq!(f.code, tools::cli::EXIT_FAILED);
    let stdout_closed =
        tools::cli::Failure::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
    assert!(stdout_closed.output_closed);
}
