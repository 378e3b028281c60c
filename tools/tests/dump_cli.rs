//! segment-dump: records as JSON lines, ranges, headers, damaged input.

use std::path::Path;
use std::process::Command;

use engine::{Config, Log};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_segment-dump");

fn make_log(dir: &Path, n: u64) -> Vec<engine::Receipt> {
    let config = Config {
        segment_size: 2048,
        log_id: Some(*b"dump-cli-test-id"),
        ..Config::default()
    };
    let log = Log::open(dir, config).expect("open");
    let mut r: Vec<_> = (0..n - 1)
        .map(|i| {
            log.append(format!("{{\"event\":{i}}}").as_bytes())
                .expect("append")
        })
        .collect();
    r.push(log.append(&[0xff, 0xfe, 0x00]).expect("append binary"));
    r
}

fn dump(args: &[&str]) -> (i32, Vec<Value>) {
    let out = Command::new(BIN)
        .args(args)
        .output()
        .expect("run segment-dump");
    let lines = String::from_utf8(out.stdout)
        .expect("utf8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    (out.status.code().expect("code"), lines)
}

#[test]
fn dumps_every_record_in_order_with_its_receipt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let receipts = make_log(dir.path(), 60);
    let (code, lines) = dump(&[dir.path().to_str().expect("path")]);
    assert_eq!(code, 0);
    assert_eq!(lines.len(), 60);
    for (i, (l, r)) in lines.iter().zip(&receipts).enumerate() {
        assert_eq!(l["seq"], i as u64);
        assert_eq!(l["created_at"], r.created_at);
        assert_eq!(l["hash"], engine::error::hex(&r.hash));
        assert_eq!(l["kind"], 1);
        if i < 59 {
            assert_eq!(l["payload"], format!("{{\"event\":{i}}}"));
        }
    }
    assert_eq!(lines[59]["payload_hex"], "fffe00");
    assert!(lines[59]["payload"].is_null());
}

#[test]
fn ranges_single_files_and_headers() {
    let dir = tempfile::tempdir().expect("tempdir");
    make_log(dir.path(), 60);
    let d = dir.path().to_str().expect("path");
    let (code, lines) = dump(&[d, "--from", "10", "--to", "19"]);
    assert_eq!(code, 0);
    assert_eq!(
        lines
            .iter()
            .map(|l| l["seq"].as_u64().expect("seq"))
            .collect::<Vec<_>>(),
        (10..=19).collect::<Vec<_>>()
    );
    let first = dir.path().join(engine::segment_file_name(0));
    let (code, lines) = dump(&[first.to_str().expect("path"), "--headers"]);
    assert_eq!(code, 0);
    assert_eq!(lines[0]["header"]["first_seq"], 0);
    assert_eq!(
        lines[0]["header"]["log_id"],
        engine::error::hex(b"dump-cli-test-id")
    );
    let footer = &lines[0]["footer"];
    assert_eq!(footer["first_seq"], 0);
    let last = footer["last_seq"].as_u64().expect("sealed");
    assert_eq!(lines.len() as u64, 1 + last + 1);
    assert_eq!(lines.last().expect("lines")["hash"], footer["last_hash"]);
}

#[test]
fn damaged_records_get_an_error_line_and_exit_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    make_log(dir.path(), 60);
    let first = dir.path().join(engine::segment_file_name(0));
    std::fs::set_permissions(&first, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .expect("chmod");
    let mut b = std::fs::read(&first).expect("read");
    b[128 + 75 + 40] ^= 0xff; // inside the second record (the first is 75 bytes)
    std::fs::write(&first, &b).expect("write");
    let (code, lines) = dump(&[first.to_str().expect("path")]);
    assert_eq!(code, 1);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["seq"], 0);
    assert!(
        lines[1]["error"]
            .as_str()
            .expect("error")
            .contains("checksum"),
        "{}",
        lines[1]
    );
    assert_eq!(
        lines[1]["offset"],
        lines[0]["offset"].as_u64().expect("offset") + 64 + "{\"event\":0}".len() as u64
    );
    assert_eq!(dump(&["/nonexistent/x.seg"]).0, 2);
}

#[test]
fn zeros_after_the_last_record_of_the_active_segment_end_it_quietly() {
    // What a pre-written segment looks like (Config::prewrite_segments).
    let dir = tempfile::tempdir().expect("tempdir");
    make_log(dir.path(), 60);
    let mut segs: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    let active = segs.last().expect("a segment");
    let len = std::fs::metadata(active).expect("stat").len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(active)
        .expect("open");
    f.set_len(len + 4096).expect("extend with zeros");
    let (code, lines) = dump(&[dir.path().to_str().expect("path")]);
    assert_eq!(code, 0);
    assert_eq!(lines.len(), 60);
    assert_eq!(lines[59]["seq"], 59);
    // Anything else after the records is still reported.
    f.set_len(len).expect("truncate");
    std::fs::write(active, {
        let mut b = std::fs::read(active).expect("read");
        b.extend_from_slice(&[0u8, 0, 7, 0]);
        b
    })
    .expect("write");
    let (code, lines) = dump(&[dir.path().to_str().expect("path")]);
    assert_eq!(code, 1);
    assert_eq!(lines.len(), 61);
    assert!(lines[60]["error"].is_string(), "{}", lines[60]);
}

/// A record holding an event in chainlogd's encoding is shown as the
/// event's fields, not as its bytes.
#[test]
fn events_in_chainlogds_encoding_are_decoded_into_their_fields() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        segment_size: 2048,
        ..Config::default()
    };
    let log = Log::open(dir.path(), config).expect("open");
    let e = proto::event::Event {
        tenant_id: "acme".into(),
        actor_id: "u1".into(),
        action: "document.deleted".into(),
        resource: "document".into(),
        resource_id: "doc-7".into(),
        metadata: r#"{"ip":"10.0.0.1"}"#.into(),
        occurred_at: 1_700_000_000_000_000_000,
        idempotency_key: "k-1".into(),
        ..proto::event::Event::default()
    };
    log.append(&e.encode()).expect("append");
    drop(log);
    let (code, lines) = dump(&[dir.path().to_str().expect("path")]);
    assert_eq!(code, 0);
    assert_eq!(lines.len(), 1);
    assert!(lines[0]["payload"].is_null() && lines[0]["payload_hex"].is_null());
    assert_eq!(
        lines[0]["event"],
        serde_json::json!({
            "tenant_id": "acme", "actor_id": "u1", "action": "document.deleted",
            "resource": "document", "resource_id": "doc-7", "idempotency_key": "k-1",
            "metadata": {"ip": "10.0.0.1"},
            "occurred_at": "2023-11-14T22:13:20Z", "backfilled": false,
        })
    );
}
