//! Real faults on the real file system, where the machine allows them:
//! a full tmpfs (needs root to mount), and fdatasync failing with EIO under
//! `fiu-run` (Debian's fiu-utils, installed by .ci/run). Each test says why
//! it skips when it cannot run.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use common::{payload, skip};
use engine::format::record::RECORD_OVERHEAD;
use engine::{Config, Error, Log};

/// Taken by every test here that opens a log or starts a process. A child
/// process holds a copy of its parent's file descriptors from the fork until
/// its exec, the directory lock's among them, so a log dropped and reopened
/// in that window by another test finds its directory still locked.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn config() -> Config {
    Config {
        segment_size: 64 << 10,
        index_interval: 1024,
        log_id: Some(*b"real-faults-log!"),
        ..Config::default()
    }
}

/// A tmpfs mounted for a test, unmounted on drop.
struct Mount {
    path: std::path::PathBuf,
    _base: tempfile::TempDir,
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

/// Mounts a tmpfs of `size` (e.g. `1m`), or reports `test` skipped (a
/// failure under `.ci/run`) when this machine does not allow it.
fn mount_tmpfs(test: &str, size: &str) -> Option<Mount> {
    let base = tempfile::tempdir().expect("tempdir");
    let path = base.path().join("mnt");
    std::fs::create_dir(&path).expect("mkdir");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(&path)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        skip(
            test,
            "mounting a tmpfs needs root (CAP_SYS_ADMIN); run the tests as root to include it",
        );
        return None;
    }
    Some(Mount { path, _base: base })
}

#[test]
fn a_full_tmpfs_gives_no_space_and_recovers_once_space_is_freed() {
    let _serial = serial();
    let Some(mount) = mount_tmpfs(
        "a_full_tmpfs_gives_no_space_and_recovers_once_space_is_freed",
        "1m",
    ) else {
        return;
    };
    let mnt = &mount.path;
    let dir = mnt.join("log");
    // Ballast to free later.
    std::fs::write(mnt.join("ballast"), vec![1u8; 256 << 10]).expect("ballast");

    let log = Log::open(&dir, config()).expect("open");
    let mut acked = Vec::new();
    let err = loop {
        let p = vec![b'x'; 2000];
        match log.append(&p) {
            Ok(r) => acked.push(r),
            Err(e) => break e,
        }
        assert!(acked.len() < 10_000, "the 1 MiB tmpfs never filled");
    };
    assert!(err.is_no_space(), "expected ENOSPC, got {err}");
    assert!(err.to_string().contains("no space"), "{err}");
    assert!(matches!(log.append(b"more"), Err(Error::Poisoned { .. })));
    drop(log);

    std::fs::remove_file(mnt.join("ballast")).expect("free space");
    let log = Log::open(&dir, config()).expect("reopen after freeing space");
    let head = log.head().expect("head").seq;
    assert!(head + 1 >= acked.len() as u64);
    for r in &acked {
        assert_eq!(log.read(r.seq).expect("acknowledged record").hash, r.hash);
    }
    // Nothing partial: every record that is there reads back whole.
    let recs = log.scan(..).collect::<Result<Vec<_>, _>>().expect("scan");
    assert_eq!(recs.len() as u64, head + 1);
    for i in 0..10 {
        let r = log.append(&payload(i)).expect("append after freeing space");
        assert_eq!(r.seq, head + 1 + i);
    }
    drop(log);
    let report = engine::verify::verify_dir(&engine::storage::FsStorage, &dir).expect("verify");
    assert!(report.is_valid(), "{:?}", report.problems());
    eprintln!(
        "tmpfs full after {} acknowledged 2000-byte appends; recovered {} records, then 10 more",
        acked.len(),
        head + 1
    );
}

/// Pre-writing on a disk too full for a spare (docs/durability.md: the
/// pre-writer's failures cost speed only): the failed spare is removed at
/// once, its space comes back to the log, which fills the disk with
/// acknowledged records; after space is freed every one of them reopens.
#[test]
fn a_spare_that_fills_a_tmpfs_is_removed_and_its_space_goes_to_the_log() {
    let _serial = serial();
    let Some(mount) = mount_tmpfs(
        "a_spare_that_fills_a_tmpfs_is_removed_and_its_space_goes_to_the_log",
        "1m",
    ) else {
        return;
    };
    let mnt = &mount.path;
    let dir = mnt.join("log");
    // 640 KiB of ballast leaves about 380 KiB: less than a 512 KiB spare.
    std::fs::write(mnt.join("ballast"), vec![1u8; 640 << 10]).expect("ballast");
    let config = Config {
        segment_size: 512 << 10,
        prewrite_segments: true,
        ..config()
    };
    let log = Log::open(&dir, config.clone()).expect("open");
    // Recovery's spare for the new log's first segment failed at open;
    // the background pre-writer starts on the next at open: wait for it
    // to fail too.
    let started = std::time::Instant::now();
    while log.stats().spares_failed < 2 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "the spare never failed: {:?}",
            log.stats()
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let spare = dir.join("next-segment.seg.tmp");
    assert!(!spare.exists(), "the partial spare was left on the disk");
    let mut acked = Vec::new();
    let err = loop {
        match log.append(&[b'x'; 2000]) {
            Ok(r) => acked.push(r),
            Err(e) => break e,
        }
        assert!(acked.len() < 10_000, "the tmpfs never filled");
    };
    assert!(err.is_no_space(), "expected ENOSPC, got {err}");
    // What the spare had taken came back: the log itself wrote at least
    // 300 KiB of the ~380 KiB left (a partial spare would have kept it all).
    let stored = acked.len() as u64 * (2000 + RECORD_OVERHEAD as u64);
    assert!(
        stored >= 300 << 10,
        "only {} records ({stored} bytes) fit after the spare failed",
        acked.len()
    );
    assert_eq!(log.stats().segments_prewritten, 0);
    drop(log);
    assert!(!spare.exists(), "a spare was left on the disk");

    std::fs::remove_file(mnt.join("ballast")).expect("free space");
    let log = Log::open(&dir, config).expect("reopen after freeing space");
    assert_eq!(log.head().map(|h| h.seq + 1), Some(acked.len() as u64));
    for r in &acked {
        assert_eq!(log.read(r.seq).expect("acknowledged record").hash, r.hash);
    }
    for i in 0..10 {
        let r = log.append(&payload(i)).expect("append after freeing space");
        assert_eq!(r.seq, acked.len() as u64 + i);
    }
    drop(log);
    let report = engine::verify::verify_dir(&engine::storage::FsStorage, &dir).expect("verify");
    assert!(report.is_valid(), "{:?}", report.problems());
    assert_eq!(report.records_checked, acked.len() as u64 + 10);
    eprintln!(
        "tmpfs: the spare failed with ENOSPC and was removed; the log then stored {} acknowledged 2000-byte records ({stored} bytes)",
        acked.len()
    );
}

const FIU_CHILD_ENV: &str = "CHAINLOG_FIU_CHILD_DIR";

/// Appends until fdatasync fails, then 5 more times; reports each outcome.
/// Run by `fdatasync_eio_under_fiu_run` under fiu-run; ignored otherwise.
#[test]
#[ignore = "run by fdatasync_eio_under_fiu_run as a child process"]
fn fiu_child() {
    let dir = std::env::var(FIU_CHILD_ENV).expect("run by the parent test");
    let log = Log::open(&dir, config()).expect("child open");
    let out = std::io::stdout();
    let mut out = out.lock();
    // The harness has printed "test fiu_child ... " without a newline:
    // start the reports on a line of their own, where the parent looks.
    writeln!(out).expect("report");
    let mut after_failure = None;
    for i in 0..100_000u64 {
        match log.append(&payload(i)) {
            Ok(r) => writeln!(out, "ACK {} {}", r.seq, engine::error::hex(&r.hash)),
            Err(Error::Io { op, source, .. }) => {
                writeln!(out, "IOERR {op} {}", source.raw_os_error().unwrap_or(-1))
            }
            Err(Error::Poisoned { .. }) => writeln!(out, "POISONED"),
            Err(e) => writeln!(out, "OTHER {e}"),
        }
        .expect("report");
        if after_failure.is_none() && log.is_poisoned() {
            after_failure = Some(0);
        }
        if let Some(n) = after_failure.as_mut() {
            *n += 1;
            if *n > 5 {
                break;
            }
        }
    }
    out.flush().expect("flush");
}

#[test]
fn fdatasync_eio_under_fiu_run() {
    let _serial = serial();
    if Command::new("fiu-run")
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        skip(
            "fdatasync_eio_under_fiu_run",
            "fiu-run not found (Debian package fiu-utils; .ci/run installs it)",
        );
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    // Create the log here, with no records: the child's open then has no
    // records to rewrite (recovery rewrites and fdatasyncs an active
    // segment's records) and makes no fdatasync, so the random faults,
    // which libfiu seeds from the clock, can only hit the child's appends.
    drop(Log::open(dir.path(), config()).expect("create"));
    {
        use engine::storage::FsStorage;
        use engine::testing::{FaultPlan, FaultyStorage, Op};
        let counting = FaultyStorage::new(std::sync::Arc::new(FsStorage));
        counting.set_plan(Some(FaultPlan::eio(Op::Sync, u64::MAX)));
        let log =
            Log::open_with_storage(std::sync::Arc::new(counting.clone()), dir.path(), config())
                .expect("reopen");
        assert_eq!(counting.matched(), 0, "opening the empty log fdatasyncs");
        drop(log);
    }
    let exe = std::env::current_exe().expect("test binary");
    let child = Command::new("fiu-run")
        .args([
            "-x",
            "-f",
            "",
            "-c",
            "enable_random name=posix/io/sync/fdatasync,probability=0.02,failinfo=5",
        ])
        .arg(&exe)
        .args([
            "--ignored",
            "--exact",
            "fiu_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(FIU_CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn fiu-run");
    let output = child.wait_with_output().expect("child");
    assert!(output.status.success(), "child failed: {:?}", output.status);
    let lines: Vec<String> = BufReader::new(&output.stdout[..])
        .lines()
        .map(|l| l.expect("line"))
        .filter(|l| {
            l.starts_with("ACK ")
                || l.starts_with("IOERR")
                || l.starts_with("POISONED")
                || l.starts_with("OTHER")
        })
        .collect();
    let first_err = lines
        .iter()
        .position(|l| !l.starts_with("ACK "))
        .expect("fdatasync never failed");
    assert_eq!(
        lines[first_err], "IOERR fdatasync 5",
        "the failing group gets the EIO"
    );
    let after = &lines[first_err + 1..];
    assert_eq!(after.len(), 5);
    assert!(
        after.iter().all(|l| l == "POISONED"),
        "after the failure: {after:?}"
    );
    let acked: Vec<(u64, String)> = lines[..first_err]
        .iter()
        .map(|l| {
            let mut p = l[4..].split(' ');
            (
                p.next().and_then(|s| s.parse().ok()).expect("seq"),
                p.next().expect("hash").to_owned(),
            )
        })
        .collect();
    // Everything acknowledged before the failure is in the reopened log.
    let log = Log::open(dir.path(), config()).expect("reopen");
    for (seq, hash) in &acked {
        assert_eq!(
            &engine::error::hex(&log.read(*seq).expect("acked record").hash),
            hash
        );
    }
    eprintln!("fiu-run: fdatasync failed with EIO after {} acknowledged appends; the group and 5 later appends failed", acked.len());
}
