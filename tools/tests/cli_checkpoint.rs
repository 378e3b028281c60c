//! The auditor's path, with the binaries: `chainlog checkpoint` from a real
//! server, the log's directory copied, `segment-verify --checkpoint --key`
//! on the copy with no server.
#![allow(clippy::unwrap_used)]

mod cli_common;

use std::process::Command;

use cli_common::*;

#[test]
fn sign_copy_and_verify_offline_with_the_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path());
    let events: String = (0..40)
        .map(|i| {
            format!(
                "{{\"tenant_id\":\"acme\",\"actor_id\":\"u{i}\",\"action\":\"doc.read\",\"resource\":\"doc\"}}\n"
            )
        })
        .collect();
    let out = s.run(&["append"], &events);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = s.run(&["checkpoint"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let note = String::from_utf8(out.stdout).unwrap();
    assert!(note.starts_with("chainlog/default\n40\n"), "{note}");
    let out = s.run(&["checkpoint", "--verifier-key"], "");
    let vkey = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(
        vkey,
        s.server.verifier_keys()[0].1,
        "the key chainlogd printed"
    );

    // The copy an auditor gets: the log's directory, nothing else.
    let copy = dir.path().join("copy");
    std::fs::create_dir(&copy).unwrap();
    for e in std::fs::read_dir(dir.path().join("default")).unwrap() {
        let e = e.unwrap();
        if e.file_name() != "LOCK" {
            std::fs::copy(e.path(), copy.join(e.file_name())).unwrap();
        }
    }
    let cp = dir.path().join("checkpoint.txt");
    std::fs::write(&cp, &note).unwrap();
    let verify = |dir: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_segment-verify"))
            .args([
                dir.to_str().unwrap(),
                "--checkpoint",
                cp.to_str().unwrap(),
                "--key",
                &vkey,
            ])
            .output()
            .unwrap()
    };
    let out = verify(&copy);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("checkpoint: verified (chainlog/default, 40 records"),
        "{text}"
    );
    // The copy with its newest record cut off fails.
    let mut segs: Vec<_> = std::fs::read_dir(&copy)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    let active = segs.last().unwrap();
    let bytes = std::fs::read(active).unwrap();
    // The last record's length: its header's payload length plus 64.
    let mut pos = 128;
    let mut last = pos;
    while pos + 64 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        if len == 0 && bytes[pos..].iter().all(|&b| b == 0) {
            break;
        }
        last = pos;
        pos += 64 + len;
    }
    std::fs::write(active, &bytes[..last]).unwrap();
    let out = verify(&copy);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("checkpoint INVALID"), "{text}");
    assert!(text.contains("newest records removed"), "{text}");
    s.server.shutdown();
}
