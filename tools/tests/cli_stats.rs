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

#[test]
fn head_prints_what_segment_verify_expect_head_takes() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path());
    let out = r.run(&["head"], "");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "chainlog: log default is empty: there is no head to commit to\n"
    );
    let mut last_hash = String::new();
    for actor in ["u1", "u2"] {
        let out = r.run(
            &[
                "append",
                "--tenant",
                "acme",
                "--actor",
                actor,
                "--action",
                "a.b",
                "--resource",
                "r",
            ],
            "",
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        last_hash = text(&out.stdout)
            .split('\t')
            .nth(1)
            .unwrap()
            .trim()
            .to_string();
    }
    let out = r.run(&["head"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let head = text(&out.stdout);
    assert_eq!(head, format!("1:{last_hash}\n"));
    // segment-verify takes it as it is.
    let verify = std::process::Command::new(env!("CARGO_BIN_EXE_segment-verify"))
        .arg(dir.path().join("default"))
        .args(["--expect-head", head.trim()])
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}{}",
        text(&verify.stdout),
        text(&verify.stderr)
    );
}

/// `segment-verify` given a chainlogd data directory (not one log)
/// verifies each log in it; a head commitment, being one log's, makes it
/// name the directories to give instead.
#[test]
fn segment_verify_on_a_data_directory_verifies_every_log_in_it() {
    let dir = tempfile::tempdir().unwrap();
    let r = start_with(dir.path(), |cfg| {
        let mut other = cfg.logs[0].clone();
        other.name = "other".into();
        cfg.logs.push(other);
    });
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
    let verify = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_segment-verify"))
            .arg(dir.path())
            .args(args)
            .output()
            .unwrap()
    };
    let out = verify(&[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let (default, other) = (dir.path().join("default"), dir.path().join("other"));
    let headers: Vec<&str> = stdout.lines().filter(|l| l.starts_with("== ")).collect();
    assert_eq!(
        headers,
        [
            format!("== {}", default.display()),
            format!("== {}", other.display())
        ]
    );
    let out = verify(&["--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let logs = v["logs"].as_array().unwrap();
    assert_eq!(
        logs.iter()
            .map(|l| l["log"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["default", "other"]
    );
    let out = verify(&["--expect-head", &format!("0:{}", "0".repeat(64))]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        format!(
            "segment-verify: {} is a chainlogd data directory with 2 logs; --expect-head and --checkpoint are one log's: give its directory ({}, {})\n",
            dir.path().display(),
            default.display(),
            other.display()
        )
    );
}
