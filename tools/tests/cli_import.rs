//! A migration end to end: a CSV and a JSON-lines file of 50,000 rows each,
//! in an old system's field names, with a few bad rows. The CSV import is
//! killed (kill -9) partway, re-run, and re-run again; the JSON lines are
//! imported, then re-sent from the start with --restart. Exactly the good
//! rows are stored, once; every bad row is reported once, with its reason;
//! the counts per day equal the files'.
#![allow(clippy::unwrap_used)]

mod cli_common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::time::{Duration, Instant};

use cli_common::*;
use serde_json::{json, Value};

const ROWS: u64 = 50_000;
const DAY: u64 = 86_400;
/// 2023-06-01T00:00:00Z.
const BASE: u64 = 1_685_577_600;

fn when(i: u64) -> u64 {
    BASE + (i % 10) * DAY + (i * 7919) % DAY
}

fn pg_time(secs: u64) -> String {
    // PostgreSQL's text form of a timestamptz.
    let iso = tools::cli::time::format(secs * 1_000_000_000);
    format!("{} {}.123456+00", &iso[..10], &iso[11..19])
}

fn write_csv(path: &std::path::Path) -> (BTreeSet<u64>, BTreeMap<u64, u64>) {
    let bad: BTreeSet<u64> = [101, 20_202, 33_333, 44_444].into();
    let mut per_day = BTreeMap::new();
    let mut w = csv::Writer::from_path(path).unwrap();
    w.write_record([
        "id",
        "organization_id",
        "user_id",
        "user_email",
        "event_type",
        "target_type",
        "target_id",
        "details",
        "created_at",
        "ip",
    ])
    .unwrap();
    for row in 1..=ROWS {
        let t = when(row);
        let mut rec = vec![
            format!("{row}"),
            format!("org-{}", row % 7),
            format!("user-{}", row % 100),
            format!("user{}@example.com", row % 100),
            ["user.login", "document.viewed", "document.deleted"][(row % 3) as usize].to_string(),
            "document".into(),
            format!("doc-{}", row % 1000),
            json!({ "n": row, "note": "a \"quoted\", comma" }).to_string(),
            pg_time(t),
            format!("10.0.{}.{}", row % 256, row % 200),
        ];
        match row {
            101 => rec[8] = "not a date".into(),
            20_202 => rec[7] = "[1,2]".into(),
            33_333 => rec[4] = String::new(),
            44_444 => rec[2] = "user\u{1}".into(),
            _ => *per_day.entry((t - BASE) / DAY).or_insert(0) += 1,
        }
        w.write_record(&rec).unwrap();
    }
    w.flush().unwrap();
    (bad, per_day)
}

fn write_jsonl(path: &std::path::Path) -> (BTreeSet<u64>, BTreeMap<u64, u64>) {
    let bad: BTreeSet<u64> = [7, 25_000, 40_000, 49_999].into();
    let mut per_day = BTreeMap::new();
    let mut out = String::new();
    for row in 1..=ROWS {
        let t = when(row + 3);
        let kind = ["role.granted", "role.revoked"][(row % 2) as usize];
        let mut v = json!({
            "event_id": format!("ev-{row}"),
            "org": format!("org-{}", row % 5),
            "actor": format!("svc-{}", row % 13),
            "kind": kind,
            "obj_type": "role",
            "obj_id": format!("r{}", row % 50),
            "payload": { "by": "migration" },
            "ts": t * 1000,
        });
        match row {
            7 => {
                out.push_str("this is not json\n");
                continue;
            }
            25_000 => {
                v.as_object_mut().unwrap().remove("ts");
            }
            40_000 => v["kind"] = json!("bad action"),
            49_999 => v["ts"] = json!(4_102_444_800_000u64),
            _ => *per_day.entry((t - BASE) / DAY).or_insert(0) += 1,
        }
        out.push_str(&v.to_string());
        out.push('\n');
    }
    std::fs::write(path, out).unwrap();
    (bad, per_day)
}

fn rejects(path: &std::path::Path) -> Vec<(u64, String)> {
    let text = std::fs::read_to_string(tools::cli::import::rejects_path(path)).unwrap();
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["row"].as_u64().unwrap(),
                v["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn checkpoint(path: &std::path::Path) -> Option<tools::cli::import::Checkpoint> {
    let b = std::fs::read(tools::cli::import::checkpoint_path(path)).ok()?;
    serde_json::from_slice(&b).ok()
}

const CSV_MAP: &str = "organization_id=tenant_id,user_id=actor_id,user_email=actor_name,event_type=action,target_type=resource,target_id=resource_id,details=metadata,created_at=occurred_at";
const JSONL_MAP: &str = "org=tenant_id,actor=actor_id,kind=action,obj_type=resource,obj_id=resource_id,payload=metadata,ts=occurred_at";

#[test]
fn a_migration_killed_halfway_and_re_run_stores_every_good_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(&dir.path().join("data"));
    let csv_path = dir.path().join("old_audit.csv");
    let jsonl_path = dir.path().join("old_events.jsonl");
    let (csv_bad, csv_days) = write_csv(&csv_path);
    let (jsonl_bad, jsonl_days) = write_jsonl(&jsonl_path);
    let csv = csv_path.to_str().unwrap();
    let jsonl = jsonl_path.to_str().unwrap();

    // First run, slowed down (small batches, one in flight), killed -9
    // once a fifth of the file is settled.
    let mut child = s
        .cmd(&[
            "import",
            "--map",
            CSV_MAP,
            "--id-column",
            "id",
            "--key-prefix",
            "pg:",
            "--batch",
            "50",
            "--in-flight",
            "1",
            csv,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if checkpoint(&csv_path).is_some_and(|c| c.rows_done >= ROWS / 5)
            || Instant::now() > deadline
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let halfway = checkpoint(&csv_path).unwrap();
    assert!(
        halfway.rows_done >= ROWS / 5 && halfway.rows_done < ROWS,
        "killed at {halfway:?}"
    );

    // Re-run: resumes, finishes, reports the rejected rows (exit 3).
    let out = s.run(
        &[
            "import",
            "--map",
            CSV_MAP,
            "--id-column",
            "id",
            "--key-prefix",
            "pg:",
            csv,
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!("resumed after row {}", halfway.rows_done)),
        "{}",
        text(&out.stderr)
    );
    // And again: nothing left to send.
    let out = s.run(
        &[
            "import",
            "--map",
            CSV_MAP,
            "--id-column",
            "id",
            "--key-prefix",
            "pg:",
            csv,
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("stored 0, already stored 0, rejected 0 (this run)"),
        "{}",
        text(&out.stderr)
    );
    let done = checkpoint(&csv_path).unwrap();
    assert_eq!((done.rows_done, done.rejected), (ROWS, 4));
    // Over every run, every good row counted as stored once: the rows the
    // killed run had in flight (stored, not yet counted) are counted when
    // the re-run finds them stored, not as duplicates.
    assert_eq!((done.imported, done.duplicates), (ROWS - 4, 0));
    let csv_rejects = rejects(&csv_path);
    assert_eq!(
        csv_rejects.iter().map(|r| r.0).collect::<BTreeSet<_>>(),
        csv_bad
    );
    assert_eq!(
        csv_rejects.len(),
        4,
        "each bad row reported once: {csv_rejects:?}"
    );
    let reason = |rows: &[(u64, String)], row| rows.iter().find(|r| r.0 == row).unwrap().1.clone();
    assert!(
        reason(&csv_rejects, 101).contains("created_at"),
        "{csv_rejects:?}"
    );
    assert!(
        reason(&csv_rejects, 20_202).contains("metadata"),
        "{csv_rejects:?}"
    );
    assert!(
        reason(&csv_rejects, 33_333).starts_with("action"),
        "{csv_rejects:?}"
    );
    assert!(
        reason(&csv_rejects, 44_444).starts_with("actor_id"),
        "{csv_rejects:?}"
    );

    // JSON lines: a digest key per row (no id column), then everything
    // again from the start: all duplicates.
    let out = s.run(
        &["import", "--map", JSONL_MAP, "--drop-unmapped", jsonl],
        "",
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!(
            "stored {}, already stored 0, rejected 4 (this run)",
            ROWS - 4
        )),
        "{}",
        text(&out.stderr)
    );
    let out = s.run(
        &[
            "import",
            "--map",
            JSONL_MAP,
            "--drop-unmapped",
            "--restart",
            jsonl,
        ],
        "",
    );
    assert!(
        text(&out.stderr).contains(&format!(
            "stored 0, already stored {}, rejected 4 (this run)",
            ROWS - 4
        )),
        "{}",
        text(&out.stderr)
    );
    let jsonl_rejects = rejects(&jsonl_path);
    assert_eq!(
        jsonl_rejects.iter().map(|r| r.0).collect::<BTreeSet<_>>(),
        jsonl_bad
    );
    assert_eq!(jsonl_rejects.len(), 4, "{jsonl_rejects:?}");
    assert!(
        reason(&jsonl_rejects, 25_000).contains("occurred_at"),
        "{jsonl_rejects:?}"
    );
    assert!(
        reason(&jsonl_rejects, 49_999).starts_with("occurred_at"),
        "{jsonl_rejects:?}"
    );

    // Exactly the good rows, once each.
    let mut c = client::Client::connect(s.server.addr()).unwrap();
    c.auth(&s.key).unwrap();
    assert_eq!(c.stats().unwrap().next_seq, 2 * (ROWS - 4));
    // Counts per day, as the migration check runs them.
    for day in 0..10 {
        let from = tools::cli::time::format((BASE + day * DAY) * 1_000_000_000);
        let to = tools::cli::time::format((BASE + (day + 1) * DAY) * 1_000_000_000);
        let out = s.run(&["query", "--count", "--from", &from, "--to", &to], "");
        let want = csv_days.get(&day).unwrap_or(&0) + jsonl_days.get(&day).unwrap_or(&0);
        assert_eq!(text(&out.stdout).trim(), want.to_string(), "day {day}");
    }
    // An imported row keeps its history: backfilled, original time, the
    // unmapped column in metadata.
    let out = s.run(
        &[
            "query",
            "--json",
            "--resource-id",
            "doc-1",
            "--actor",
            "user-1",
            "--limit",
            "1",
        ],
        "",
    );
    let v: Value = serde_json::from_str(text(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(v["backfilled"], json!(true));
    assert_eq!(
        v["occurred_at"],
        json!(tools::cli::time::format(
            when(1) * 1_000_000_000 + 123_456_000
        ))
    );
    assert_eq!(v["metadata"]["ip"], json!("10.0.1.1"));
    assert_eq!(v["metadata"]["n"], json!(1));
    assert_eq!(v["actor_name"], json!("user1@example.com"));
}

/// The migration papercut: an old id reused with other content (in
/// another file, under the same key prefix) is a rejected row naming the
/// stored seq and the field that differs, not a silent "already stored";
/// an exact copy is still a duplicate.
#[test]
fn an_id_reused_with_other_content_is_rejected_as_a_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(&dir.path().join("data"));
    let first = dir.path().join("first.csv");
    let second = dir.path().join("second.csv");
    let header = "id,org,actor,kind,obj,ts\n";
    std::fs::write(
        &first,
        format!("{header}1,acme,u1,user.login,session,2024-01-01T00:00:00Z\n2,acme,u2,user.login,session,2024-01-01T00:00:00Z\n"),
    )
    .unwrap();
    std::fs::write(
        &second,
        format!(
            "{header}1,acme,u9,user.login,session,2024-01-01T00:00:00Z\n2,acme,u2,user.login,session,2024-01-01T00:00:00Z\n3,acme,u3,user.login,session,2024-01-01T00:00:00Z\n"
        ),
    )
    .unwrap();
    let import = |path: &std::path::Path| {
        s.run(
            &[
                "import",
                "--map",
                "org=tenant_id,actor=actor_id,kind=action,obj=resource,ts=occurred_at",
                "--id-column",
                "id",
                "--key-prefix",
                "pg:",
                path.to_str().unwrap(),
            ],
            "",
        )
    };
    let out = import(&first);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = import(&second);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("stored 1, already stored 1, rejected 1 (this run)"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        rejects(&second),
        vec![(
            1,
            "idempotency_key: this idempotency_key was used for another event: it was stored as seq 0, whose actor_id differs"
                .to_string()
        )]
    );
    // The reject line carries the old system's id.
    let line = std::fs::read_to_string(tools::cli::import::rejects_path(&second)).unwrap();
    let v: Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!((v["row"].as_u64(), v["id"].as_str()), (Some(1), Some("1")));
}

/// The README's import example, as written there, against the example
/// file it names: every row stored, the legacy rows transformed. Run in a
/// copy of the file's directory, so the checkpoint stays out of the tree.
#[test]
fn the_readme_import_example_works_as_written() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let at = readme
        .find("cargo run --release -p chainlog-tools --bin chainlog -- import ")
        .expect("an import example in the README");
    let command: String = readme[at..]
        .split_inclusive('\n')
        .scan(true, |more, line| {
            let go = *more;
            *more = line.trim_end().ends_with('\\');
            go.then(|| line.trim_end().trim_end_matches('\\').to_string())
        })
        .collect::<Vec<_>>()
        .join(" ");
    let args: Vec<&str> = command
        .split_whitespace()
        .skip_while(|w| *w != "--")
        .skip(1)
        .collect();
    assert_eq!(args[..2], ["import", "docs/examples/old_audit.csv"]);
    let dir = tempfile::tempdir().unwrap();
    let s = start(&dir.path().join("data"));
    let work = dir.path().join("work");
    std::fs::create_dir_all(work.join("docs/examples")).unwrap();
    std::fs::copy(
        root.join("docs/examples/old_audit.csv"),
        work.join("docs/examples/old_audit.csv"),
    )
    .unwrap();

    // A dry run first: nothing rejected, nothing sent.
    let mut dry = args.clone();
    dry.push("--dry-run");
    let out = s.cmd(&dry).current_dir(&work).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "docs/examples/old_audit.csv: dry run: read 6 rows; 6 would be sent, 0 rejected\n"
    );
    assert!(!work
        .join("docs/examples/old_audit.csv.chainlog-import")
        .exists());

    let out = s.cmd(&args).current_dir(&work).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr)
            .contains("read 6 rows; stored 6, already stored 0, rejected 0 (this run)"),
        "{}",
        text(&out.stderr)
    );
    let out = s.run(&["query", "--json"], "");
    let events: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "user.login",
            "document.exported",
            "role.granted",
            "user.logout",
            "password.reset",
            "document.exported"
        ]
    );
    assert_eq!(events[2]["actor_id"], "system");
    assert_eq!(events[2]["metadata"]["details"], json!(["nightly-sync"]));
    assert_eq!(events[4]["metadata"]["details"], "by support");
    assert_eq!(events[4]["actor_name"].as_str().unwrap().len(), 256);
    assert_eq!(
        events[4]["metadata"]["chainlog_truncated"],
        json!({"actor_name": 292})
    );
    assert_eq!(events[0]["tenant_id"], "org-1");
    assert_eq!(events[0]["idempotency_key"], "pg:1");
}

/// `--dry-run` without the transforms: what the legacy rows would hit,
/// each row with its id, and the counts per reason.
#[test]
fn a_dry_run_reports_each_rejected_row_with_its_id_and_counts_per_reason() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("old_audit.csv");
    std::fs::copy(root.join("docs/examples/old_audit.csv"), &file).unwrap();
    // No server: a dry run never connects.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chainlog"))
        .args([
            "--addr",
            "127.0.0.1:1",
            "--key",
            "unused",
            "import",
            "--id-column",
            "id",
            "--map",
            "organization_id=tenant_id,user_id=actor_id,user_email=actor_name,event_type=action,target_type=resource,target_id=resource_id,details=metadata,created_at=occurred_at",
            "--dry-run",
            file.to_str().unwrap(),
        ])
        .env("HOME", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let f = file.display();
    assert_eq!(
        text(&out.stdout),
        format!(
            "{f}: row 2 (line 3, id 2): action: contains whitespace\n\
             {f}: row 3 (line 4, id 3): column details: metadata must be a JSON object\n\
             {f}: row 5 (line 6, id 5): column details: metadata must be a JSON object\n\
             {f}: row 6 (line 7, id 6): action: contains whitespace\n\
             {f}: dry run: read 6 rows; 2 would be sent, 4 rejected\n\
             \x20      2  action: contains whitespace\n\
             \x20      2  column details: metadata must be a JSON object\n"
        )
    );
}
