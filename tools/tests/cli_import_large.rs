//! Rows too big to send 500 to a request: the import splits its requests
//! under the server's frame limit and stores every row; a row over the
//! event size limit is rejected, with the rest of its batch stored.
#![allow(clippy::unwrap_used)]

mod cli_common;

use cli_common::*;
use serde_json::json;

#[test]
fn large_rows_are_split_across_requests() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(&dir.path().join("data"));
    let path = dir.path().join("big.jsonl");
    let mut text = String::new();
    for i in 1..=300u64 {
        // About 20 KiB each: 300 rows are about 6 MiB, a dozen requests.
        let pad = if i == 150 { 40_000 } else { 20_000 };
        let row = json!({
            "id": i,
            "tenant_id": "t",
            "actor_id": "a",
            "action": "blob.stored",
            "resource": "blob",
            "occurred_at": 1_700_000_000 + i,
            "metadata": { "pad": "x".repeat(pad) },
        });
        text.push_str(&row.to_string());
        text.push('\n');
    }
    std::fs::write(&path, text).unwrap();
    let out = s.run(&["import", "--id-column", "id", path.to_str().unwrap()], "");
    assert_eq!(out.status.code(), Some(3), "{}", text_of(&out));
    assert!(
        text_of(&out).contains("stored 299, already stored 0, rejected 1 (this run)"),
        "{}",
        text_of(&out)
    );
    let rejects = std::fs::read_to_string(tools::cli::import::rejects_path(&path)).unwrap();
    assert_eq!(rejects.lines().count(), 1);
    assert_eq!(
        rejects,
        "{\"id\":\"150\",\"line\":150,\"reason\":\"metadata: is 40019 bytes, more than the limit of 32768\",\"row\":150}\n"
    );
    let mut c = client::Client::connect(s.server.addr()).unwrap();
    c.auth(&s.key).unwrap();
    assert_eq!(c.stats().unwrap().next_seq, 299);
}

fn text_of(out: &std::process::Output) -> String {
    text(&out.stderr)
}
