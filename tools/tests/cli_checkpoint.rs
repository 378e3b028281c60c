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

fn ok(out: &std::process::Output) -> String {
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

fn appended(s: &Running, n: usize, actor: &str) {
    let events: String = (0..n)
        .map(|i| {
            format!(
                "{{\"tenant_id\":\"acme\",\"actor_id\":\"{actor}{i}\",\"action\":\"doc.read\",\"resource\":\"doc\"}}\n"
            )
        })
        .collect();
    ok(&s.run(&["append"], &events));
}

#[test]
fn a_proof_exported_by_chainlog_proof_verifies_offline_and_not_for_another_record() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path());
    appended(&s, 30, "u");
    let vkey = s.server.verifier_keys()[0].1.clone();
    let proof_file = dir.path().join("17.tlog-proof");
    ok(&s.run(
        &[
            "proof",
            "17",
            "--vkey",
            &vkey,
            "--out",
            proof_file.to_str().unwrap(),
        ],
        "",
    ));
    let proof = std::fs::read_to_string(&proof_file).unwrap();
    assert!(
        proof.starts_with("c2sp.org/tlog-proof@v1\nextra "),
        "{proof}"
    );
    assert!(proof.contains("\nindex 17\n"), "{proof}");
    assert!(proof.contains("\nchainlog/default\n30\n"), "{proof}");
    // Without --out, the same proof on standard output (the checkpoint is
    // reused: nothing was appended since).
    assert_eq!(ok(&s.run(&["proof", "17", "--vkey", &vkey], "")), proof);

    // The receipt's hash, from a query.
    let rows = ok(&s.run(&["query", "--json", "--all"], ""));
    let hash_of = |seq: u64| -> String {
        let row: serde_json::Value = rows
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|v| v["seq"] == seq)
            .unwrap();
        row["hash"].as_str().unwrap().to_owned()
    };
    let verify = |hash: &str| {
        Command::new(env!("CARGO_BIN_EXE_chainlog"))
            .args([
                "verify-proof",
                "--proof",
                proof_file.to_str().unwrap(),
                "--vkey",
                &vkey,
                "--hash",
                hash,
            ])
            .output()
            .unwrap()
    };
    let out = verify(&hash_of(17));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    // For another record's hash: refused, naming why.
    let out = verify(&hash_of(18));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("INVALID (HashMismatch)"),
        "{}",
        text(&out.stdout)
    );
    // The same hashes renumbered as record 18's proof: the root differs.
    let renumbered = proof.replace("\nindex 17\n", "\nindex 18\n").replace(
        &proof.lines().nth(1).unwrap().to_owned(),
        &format!(
            "extra {}",
            engine::note::base64::encode(&engine_hash(&hash_of(18)))
        ),
    );
    std::fs::write(&proof_file, renumbered).unwrap();
    let out = verify(&hash_of(18));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("INVALID (RootMismatch)"),
        "{}",
        text(&out.stdout)
    );

    // A seq past the log: a clear error, exit 1.
    let out = s.run(&["proof", "30", "--vkey", &vkey], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("index 30"),
        "{}",
        text(&out.stderr)
    );
    s.server.shutdown();
}

fn engine_hash(hex: &str) -> [u8; 32] {
    let mut h = [0u8; 32];
    for (i, b) in h.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    h
}

#[test]
fn checkpoint_trust_file_accepts_growth_and_refuses_a_rolled_back_log_with_exit_4() {
    let dir = tempfile::tempdir().unwrap();
    let trust = dir.path().join("trusted.checkpoint");
    let trust_arg = trust.to_str().unwrap().to_owned();
    let (vkey, second) = {
        let s = start(dir.path());
        let vkey = s.server.verifier_keys()[0].1.clone();
        appended(&s, 10, "u");
        let first = ok(&s.run(&["checkpoint", "--vkey", &vkey, "--trust", &trust_arg], ""));
        assert!(first.starts_with("chainlog/default\n10\n"), "{first}");
        assert_eq!(std::fs::read_to_string(&trust).unwrap(), first);
        // A snapshot at 10 records, then growth to 25: accepted and saved.
        std::fs::create_dir(dir.path().join("at10")).unwrap();
        for e in std::fs::read_dir(dir.path().join("default")).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), dir.path().join("at10").join(e.file_name())).unwrap();
        }
        appended(&s, 15, "v");
        let second = ok(&s.run(&["checkpoint", "--vkey", &vkey, "--trust", &trust_arg], ""));
        assert!(second.starts_with("chainlog/default\n25\n"), "{second}");
        assert_eq!(std::fs::read_to_string(&trust).unwrap(), second);
        // The consistency proof the check used, printed: 10 -> 25.
        let lines = ok(&s.run(&["consistency", "10", "25"], ""));
        assert!(
            !lines.is_empty() && lines.lines().all(|l| l.len() == 44),
            "{lines}"
        );
        assert_eq!(ok(&s.run(&["consistency", "25", "25"], "")), "");
        let out = s.run(&["consistency", "0", "25"], "");
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        s.server.shutdown();
        (vkey, second)
    };
    // The log rolled back to the snapshot of 10.
    let log_dir = dir.path().join("default");
    std::fs::remove_dir_all(&log_dir).unwrap();
    std::fs::rename(dir.path().join("at10"), &log_dir).unwrap();
    let s = start(dir.path());
    let out = s.run(&["checkpoint", "--vkey", &vkey, "--trust", &trust_arg], "");
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("rolled back: a checkpoint of 25 records was seen, now 10"),
        "{}",
        text(&out.stderr)
    );
    // The trust file still holds the checkpoint of 25.
    assert_eq!(std::fs::read_to_string(&trust).unwrap(), second);
    s.server.shutdown();
}
