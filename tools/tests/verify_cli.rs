//! segment-verify as a process: exit codes, the JSON schema, what the head
//! commitment can and cannot prove, and no progress bar when piped.

use std::path::Path;
use std::process::Command;

use engine::{Config, Log};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_segment-verify");

fn config(log_id: [u8; 16]) -> Config {
    Config {
        segment_size: 4096,
        index_interval: 512,
        log_id: Some(log_id),
        ..Config::default()
    }
}

/// A log of `n` records; returns each receipt.
fn make_log(dir: &Path, n: u64, salt: &str) -> Vec<engine::Receipt> {
    let log = Log::open(dir, config(*b"verify-cli-logid")).expect("open");
    (0..n)
        .map(|i| {
            log.append(format!("{salt} {i}").as_bytes())
                .expect("append")
        })
        .collect()
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .output()
        .expect("run segment-verify");
    (
        out.status.code().expect("exit code"),
        String::from_utf8(out.stdout).expect("utf8"),
        String::from_utf8(out.stderr).expect("utf8"),
    )
}

fn head_arg(r: &engine::Receipt) -> String {
    format!("{}:{}", r.seq, engine::error::hex(&r.hash))
}

#[test]
fn a_valid_log_exits_0_with_one_line_per_segment_and_a_summary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let receipts = make_log(dir.path(), 200, "a");
    let d = dir.path().to_str().expect("path");
    let (code, out, err) = run(&[d]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(err, "", "nothing on stderr when piped (no progress bar)");
    let segs = std::fs::read_dir(dir.path())
        .expect("read_dir")
        .filter(|e| {
            e.as_ref()
                .expect("entry")
                .path()
                .extension()
                .is_some_and(|x| x == "seg")
        })
        .count();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.iter().filter(|l| l.contains(".seg  valid")).count(),
        segs
    );
    let last = receipts.last().expect("receipts");
    assert!(
        out.contains(&format!(
            "{segs}/{segs} segments valid; 200 records checked; head {}",
            head_arg(last)
        )),
        "{out}"
    );
    assert!(out.contains("NOT CHECKED"), "{out}");
    // With the right head commitment.
    let (code, out, _) = run(&[d, "--expect-head", &head_arg(last)]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("head commitment: verified"), "{out}");
    assert!(!out.contains("NOT CHECKED"));
}

#[test]
fn tail_truncation_passes_without_a_head_commitment_and_fails_with_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let receipts = make_log(dir.path(), 50, "a");
    let head = head_arg(receipts.last().expect("receipts"));
    // Remove the newest record: cut the active segment back by its size.
    let active = std::fs::read_dir(dir.path())
        .expect("read_dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .max()
        .expect("segments");
    let len = std::fs::metadata(&active).expect("stat").len();
    let last_len = 64 + "a 49".len() as u64;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&active)
        .expect("open")
        .set_len(len - last_len)
        .expect("truncate");
    let d = dir.path().to_str().expect("path");
    let (code, out, _) = run(&[d]);
    assert_eq!(code, 0, "a truncated chain is still a valid chain: {out}");
    assert!(
        out.contains("NOT CHECKED"),
        "the output says what was not checked: {out}"
    );
    let (code, out, _) = run(&[d, "--expect-head", &head, "--json"]);
    assert_eq!(code, 1, "{out}");
    let v: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["head_commitment"]["valid"], false);
    assert_eq!(v["head_commitment"]["error"]["kind"], "HeadMissing");
    assert_eq!(v["head_commitment"]["error"]["seq"], 49);
    // Reported where the record should have been: the end of the log.
    assert_eq!(
        v["head_commitment"]["error"]["file"],
        active.display().to_string()
    );
    assert_eq!(v["head_commitment"]["error"]["offset"], len - last_len);
}

/// Where each record is: (segment file, offset), from segment-dump's walk.
fn record_places(dir: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let code = tools::dump_cmd::run(
        &tools::dump_cmd::Args {
            path: dir.to_path_buf(),
            ..Default::default()
        },
        &mut out,
    );
    assert_eq!(code, 0);
    String::from_utf8(out)
        .expect("utf8")
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("json");
            let seg = v["segment"].as_str().expect("segment").to_owned();
            (seg, v["offset"].as_u64().expect("offset"))
        })
        .collect()
}

#[test]
fn a_failed_head_commitment_names_the_segment_and_offset_of_its_seq() {
    let dir = tempfile::tempdir().expect("tempdir");
    let receipts = make_log(dir.path(), 200, "a");
    let places = record_places(dir.path());
    assert_eq!(places.len(), 200);
    let d = dir.path().to_str().expect("path");
    // A seq in a middle segment, with another record's hash.
    let seq = 120;
    let wrong = format!("{seq}:{}", engine::error::hex(&receipts[7].hash));
    let (code, out, _) = run(&[d, "--expect-head", &wrong, "--json"]);
    assert_eq!(code, 1, "{out}");
    let v: Value = serde_json::from_str(&out).expect("json");
    let e = &v["head_commitment"]["error"];
    assert_eq!(e["kind"], "HeadHashMismatch");
    let (seg, offset) = &places[seq];
    assert_ne!(
        seg,
        &engine::segment_file_name(0),
        "not in the first segment"
    );
    assert_eq!(e["file"], dir.path().join(seg).display().to_string());
    assert_eq!(e["offset"], *offset);
    // A seq past the head: the end of the last segment's records.
    let past = format!("{}:{}", 500, engine::error::hex(&receipts[7].hash));
    let (code, out, _) = run(&[d, "--expect-head", &past, "--json"]);
    assert_eq!(code, 1, "{out}");
    let v: Value = serde_json::from_str(&out).expect("json");
    let e = &v["head_commitment"]["error"];
    assert_eq!(e["kind"], "HeadMissing");
    let last = dir.path().join(&places[199].0);
    assert_eq!(e["file"], last.display().to_string());
    assert_eq!(e["offset"], std::fs::metadata(&last).expect("stat").len());
}

#[test]
fn a_whole_log_rewrite_passes_without_a_head_commitment_and_fails_with_it() {
    let base = tempfile::tempdir().expect("tempdir");
    let original = make_log(&base.path().join("a"), 80, "original");
    let forged_dir = base.path().join("b");
    make_log(&forged_dir, 80, "forged!!"); // same identity, same length, other content
    let d = forged_dir.to_str().expect("path");
    let (code, out, _) = run(&[d]);
    assert_eq!(code, 0, "a rewritten log has a valid chain: {out}");
    assert!(out.contains("NOT CHECKED"));
    let (code, out, _) = run(&[d, "--expect-head", &head_arg(&original[79])]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("head commitment INVALID"), "{out}");
    assert!(out.contains("log rewritten"), "{out}");
}

#[test]
fn json_schema() {
    let dir = tempfile::tempdir().expect("tempdir");
    make_log(dir.path(), 120, "a");
    let (code, out, _) = run(&[dir.path().to_str().expect("path"), "--json", "--stats"]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).expect("one JSON document");
    assert_eq!(v["valid"], true);
    assert!(v["dir"].is_string());
    assert_eq!(v["log_id"], engine::error::hex(b"verify-cli-logid"));
    assert_eq!(v["records_checked"], 120);
    assert!(v["bytes_checked"].as_u64().expect("bytes") > 120 * 64);
    assert_eq!(v["head"]["seq"], 119);
    assert_eq!(v["head"]["hash"].as_str().expect("hash").len(), 64);
    assert_eq!(v["gaps"], Value::Array(vec![]));
    assert!(v["tail"].is_null());
    assert_eq!(v["head_commitment"]["checked"], false);
    assert!(v["head_commitment"]["valid"].is_null());
    assert!(v["head_commitment"]["note"]
        .as_str()
        .expect("note")
        .contains("NOT CHECKED"));
    assert!(v["summary"]
        .as_str()
        .expect("summary")
        .contains("segments valid"));
    let segs = v["segments"].as_array().expect("segments");
    assert!(segs.len() >= 3);
    let mut next = 0;
    for s in segs {
        assert_eq!(s["first_seq"], next);
        assert_eq!(s["valid"], true);
        assert!(s["error"].is_null());
        assert!(s["warnings"].is_array());
        assert!(s["file"].as_str().expect("file").ends_with(".seg"));
        assert!(s["bytes"].as_u64().expect("bytes") >= 128);
        next = s["last_seq"].as_u64().expect("last_seq") + 1;
        assert_eq!(s["records"], next - s["first_seq"].as_u64().expect("first"));
    }
    assert_eq!(next, 120);
    assert!(segs.last().expect("segs")["sealed"] == false);
    assert!(v["stats"]["records_per_sec"].as_f64().expect("rps") > 0.0);
    assert!(
        v["stats"]["sha256_chain_records_per_sec_one_core"]
            .as_f64()
            .expect("sha")
            > 0.0
    );
}

#[test]
fn exit_codes_for_invalid_usage_and_io_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    make_log(dir.path(), 30, "a");
    let d = dir.path().to_str().expect("path");
    // Invalid: a flipped byte in the first (sealed) segment.
    let first = dir.path().join(engine::segment_file_name(0));
    let mut b = std::fs::read(&first).expect("read");
    b[200] ^= 1;
    std::fs::set_permissions(&first, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .expect("chmod");
    std::fs::write(&first, b).expect("write");
    let (code, out, _) = run(&[d]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("00000000000000000000.seg  INVALID: "), "{out}");
    assert!(out.contains("INVALID"), "{out}");
    // Usage and I/O errors.
    assert_eq!(run(&[]).0, 2);
    assert_eq!(run(&[d, "--expect-head", "12:nothex"]).0, 2);
    // 64 bytes that are not 64 characters: a usage error, not a crash.
    let multibyte = format!("0:a{}", "é".repeat(31)) + "b";
    assert_eq!(multibyte.len(), 2 + 64);
    assert_eq!(run(&[d, "--expect-head", &multibyte]).0, 2);
    assert_eq!(run(&["/nonexistent/chainlog/dir"]).0, 2);
    let empty = tempfile::tempdir().expect("tempdir");
    let (code, _, err) = run(&[empty.path().to_str().expect("path")]);
    assert_eq!(code, 2);
    assert!(err.contains("no segment files"), "{err}");
    let (code, help, _) = run(&["--help"]);
    assert_eq!(code, 0);
    assert!(
        help.contains("Exit codes:") && help.contains("--expect-head"),
        "{help}"
    );
}

/// A checkpoint of the log's head, signed by a key made from `seed`; its
/// verifier key.
fn signed_checkpoint(dir: &Path, size: u64, root: engine::Hash, seed: u8) -> (String, String) {
    let key =
        engine::note::SignerKey::from_seed("chainlog.test/verify-cli", &[seed; 32]).expect("key");
    let note = engine::note::Checkpoint {
        origin: "chainlog.test/verify-cli".to_owned(),
        size,
        root_hash: root,
        extensions: Vec::new(),
    }
    .sign(&key)
    .expect("sign");
    let path = dir.join(format!("checkpoint-{size}-{seed}.txt"));
    std::fs::write(&path, note).expect("write");
    (
        path.to_str().expect("path").to_owned(),
        key.verifier().to_string(),
    )
}

#[test]
fn a_signed_checkpoint_proves_nothing_was_cut_or_rewritten() {
    let base = tempfile::tempdir().expect("tempdir");
    let dir = base.path().join("log");
    let receipts = make_log(&dir, 120, "a");
    let log = Log::open(&dir, config(*b"verify-cli-logid")).expect("open");
    let head = log.head().expect("head");
    drop(log);
    assert_eq!((head.seq, head.hash), (119, receipts[119].hash));
    let (cp, vkey) = signed_checkpoint(base.path(), 120, head.tree_root, 1);
    let d = dir.to_str().expect("path");
    let (code, out, err) = run(&[d, "--checkpoint", &cp, "--key", &vkey]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("checkpoint: verified (chainlog.test/verify-cli, 120 records"),
        "{out}"
    );
    assert!(!out.contains("NOT CHECKED"), "{out}");
    // The key from a file.
    let key_file = base.path().join("vkey");
    std::fs::write(&key_file, format!("{vkey}\n")).expect("write");
    let at = format!("@{}", key_file.display());
    assert_eq!(run(&[d, "--checkpoint", &cp, "--key", &at]).0, 0);

    let verdict = |cp: &str, key: &str| -> (i32, Value) {
        let (code, out, _) = run(&[d, "--checkpoint", cp, "--key", key, "--json"]);
        (code, serde_json::from_str(&out).expect("json"))
    };
    // Signed by another key: not accepted.
    let (other_cp, _) = signed_checkpoint(base.path(), 120, head.tree_root, 2);
    let (code, v) = verdict(&other_cp, &vkey);
    assert_eq!(code, 1);
    assert_eq!(v["checkpoint"]["valid"], false);
    assert_eq!(v["checkpoint"]["error"]["kind"], "CheckpointNotAccepted");
    // An edited size: the signature no longer holds.
    let edited = std::fs::read_to_string(&cp)
        .expect("read")
        .replacen("\n120\n", "\n119\n", 1);
    let edited_path = base.path().join("edited.txt");
    std::fs::write(&edited_path, edited).expect("write");
    let (code, v) = verdict(edited_path.to_str().expect("path"), &vkey);
    assert_eq!(code, 1);
    assert_eq!(v["checkpoint"]["error"]["kind"], "CheckpointNotAccepted");
    // The newest record removed.
    let active = std::fs::read_dir(&dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .max()
        .expect("segments");
    let len = std::fs::metadata(&active).expect("stat").len();
    let truncated = base.path().join("truncated");
    std::fs::create_dir(&truncated).expect("mkdir");
    for e in std::fs::read_dir(&dir).expect("read_dir") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), truncated.join(e.file_name())).expect("copy");
    }
    let t_active = truncated.join(active.file_name().expect("name"));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&t_active)
        .expect("open")
        .set_len(len - (64 + "a 119".len() as u64))
        .expect("truncate");
    let (code, out, _) = run(&[
        truncated.to_str().expect("path"),
        "--checkpoint",
        &cp,
        "--key",
        &vkey,
        "--json",
    ]);
    assert_eq!(code, 1, "{out}");
    let v: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["checkpoint"]["error"]["kind"], "CheckpointBeyondLog");
    // A rewrite: same identity and length, other content.
    let forged = base.path().join("forged");
    make_log(&forged, 120, "b");
    let (code, out, _) = run(&[
        forged.to_str().expect("path"),
        "--checkpoint",
        &cp,
        "--key",
        &vkey,
        "--json",
    ]);
    assert_eq!(code, 1, "{out}");
    let v: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["checkpoint"]["error"]["kind"], "CheckpointRootMismatch");
    assert_eq!(v["valid"], false);
    // --checkpoint without --key is a usage error.
    assert_eq!(run(&[d, "--checkpoint", &cp]).0, 2);
}
