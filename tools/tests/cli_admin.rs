//! `chainlog schema` and `chainlog keys` against a real server.
#![allow(clippy::unwrap_used)]

mod cli_common;

use cli_common::*;

#[test]
fn schema_set_show_and_unknown_actions() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path());
    let show = s.run(&["schema", "show"], "");
    assert_eq!(
        text(&show.stdout),
        "mode: permissive (from the config)\nactions: any\n"
    );
    let ok = s.run(
        &[
            "append",
            "--tenant",
            "t",
            "--actor",
            "a",
            "--action",
            "billing.charged",
            "--resource",
            "r",
        ],
        "",
    );
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    // With no schema every action is unknown: discovery before writing one.
    let stored = text(&s.run(&["query", "--json"], "").stdout);
    let stored: serde_json::Value = serde_json::from_str(stored.trim()).unwrap();
    let at = stored["created_at"].as_str().unwrap().to_string();
    let expected = format!(
        "{:>10}  {:30}  {:30}  ACTION\n{:>10}  {at:30}  {at:30}  billing.charged\n",
        "EVENTS", "FIRST STORED", "LAST STORED", 1
    );
    let unknown_now = || -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut unknown = String::new();
        while std::time::Instant::now() < deadline {
            unknown = text(&s.run(&["schema", "unknown"], "").stdout);
            if unknown.contains("billing.charged") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        unknown
    };
    assert_eq!(unknown_now(), expected);
    let set = s.run(
        &[
            "schema",
            "set",
            "--mode",
            "strict",
            "--actions",
            "user.*,document.deleted",
        ],
        "",
    );
    assert!(set.status.success(), "{}", text(&set.stderr));
    let show = s.run(&["schema", "show"], "");
    assert_eq!(
        text(&show.stdout),
        "mode: strict (from the runtime)\nactions:\n  user.*\n  document.deleted\n"
    );
    let refused = s.run(
        &[
            "append",
            "--tenant",
            "t",
            "--actor",
            "a",
            "--action",
            "billing.charged",
            "--resource",
            "r",
        ],
        "",
    );
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("invalid_event"),
        "{}",
        text(&refused.stderr)
    );
    let fine = s.run(
        &[
            "append",
            "--tenant",
            "t",
            "--actor",
            "a",
            "--action",
            "user.login",
            "--resource",
            "r",
        ],
        "",
    );
    assert!(fine.status.success());
    // The event stored before the change counts as unknown under the new
    // schema (user.login is in it, so not counted).
    assert_eq!(unknown_now(), expected);
}

#[test]
fn keys_create_list_and_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path());
    let created = s.run(
        &[
            "keys",
            "create",
            "billing",
            "--rights",
            "append,read",
            "--tenants",
            "acme",
        ],
        "",
    );
    assert!(created.status.success(), "{}", text(&created.stderr));
    let key = text(&created.stdout).trim().to_string();
    assert!(key.starts_with("clk_") && key.len() == 52, "{key}");
    let list = s.run(&["keys", "list"], "");
    let lines: Vec<String> = text(&list.stdout)
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        lines,
        vec![
            "ID ORIGIN RIGHTS TENANTS",
            "admin config append,read,admin (all)",
            "billing runtime append,read acme"
        ]
    );
    assert!(!text(&list.stdout).contains(&key));
    // The new key works, for its tenant only.
    let mut as_billing = s.cmd(&[
        "append",
        "--actor",
        "a",
        "--action",
        "x.y",
        "--resource",
        "r",
    ]);
    as_billing.env("CHAINLOG_KEY", &key);
    let out = as_billing.output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let revoked = s.run(&["keys", "revoke", "billing"], "");
    assert!(revoked.status.success(), "{}", text(&revoked.stderr));
    let mut again = s.cmd(&[
        "append",
        "--actor",
        "a",
        "--action",
        "x.y",
        "--resource",
        "r",
    ]);
    again.env("CHAINLOG_KEY", &key);
    let out = again.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("unauthenticated"),
        "{}",
        text(&out.stderr)
    );
}
