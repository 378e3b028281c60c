//! A full disk under the server (a 1 MiB tmpfs; needs root to mount, and
//! skips without it, or fails under `.ci/run`): the log itself fills the
//! disk (no pre-writing, small segments that roll and seal), the append
//! that hits ENOSPC and every later one are answered `poisoned`, nothing is
//! acknowledged after the failure, and after a restart with space freed
//! every acknowledged event is there.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use client::ErrorCode;
use common::*;

struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Segments small enough that the log rolls and seals several times before
/// the disk is full.
const SEGMENT: u64 = 64 << 10;

#[test]
fn a_full_disk_poisons_the_log_until_restart() {
    let base = tempfile::tempdir().unwrap();
    let mnt = base.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&mnt)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        skip(
            "a_full_disk_poisons_the_log_until_restart",
            "mounting a tmpfs needs root (CAP_SYS_ADMIN)",
        );
        return;
    }
    let _guard = Mount(mnt.clone());
    std::fs::write(mnt.join("ballast"), vec![1u8; 256 << 10]).unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    let cfg = || {
        let mut c = config(&mnt, &[&admin]);
        c.logs[0].segment_size = SEGMENT;
        assert!(
            !c.logs[0].prewrite_segments,
            "the log, not a spare, must fill the disk"
        );
        c
    };
    let mut e = event("t", "a", "x.y", "r");
    e.metadata = format!("{{\"pad\":\"{}\"}}", "x".repeat(2000));
    let mut acked = Vec::new();
    {
        let server = server::Server::start(cfg()).unwrap();
        let mut c = connect(server.addr(), &admin);
        let first_err = loop {
            match c.append(&e) {
                Ok(r) => acked.push(r),
                Err(err) => break err,
            }
            assert!(acked.len() < 2000, "the tmpfs never filled");
        };
        assert_eq!(first_err.code(), Some(ErrorCode::Poisoned), "{first_err}");
        for _ in 0..3 {
            assert_eq!(c.append(&e).unwrap_err().code(), Some(ErrorCode::Poisoned));
        }
        // Reads still work.
        assert_eq!(c.stats().unwrap().next_seq, acked.len() as u64);
        // The metrics page says so, for the alert.
        assert!(
            server
                .metrics_text()
                .contains("\nchainlog_poisoned{log=\"default\"} 1\n"),
            "{}",
            server.metrics_text()
        );
    }
    // About 760 KiB were free for the log: its events (about 2.1 KB each
    // on disk, with their segments' footers and index files) filled most
    // of it. A bound well below that, and far above what a disk filled by
    // something else would leave (0 or 1 events).
    assert!(
        acked.len() >= 250,
        "only {} events acknowledged before the disk was full",
        acked.len()
    );
    std::fs::remove_file(mnt.join("ballast")).unwrap();
    let server = server::Server::start(cfg()).unwrap();
    assert!(server
        .metrics_text()
        .contains("\nchainlog_poisoned{log=\"default\"} 0\n"));
    let mut c = connect(server.addr(), &admin);
    assert_eq!(c.stats().unwrap().next_seq, acked.len() as u64);
    for (i, r) in acked.iter().enumerate() {
        assert_eq!(r.seq, i as u64);
        let got = c.read(r.seq, r.seq + 1, 1).unwrap();
        assert_eq!(got.events.len(), 1);
        assert_eq!(got.events[0].hash, r.hash, "seq {}", r.seq);
        assert_eq!(got.events[0].event.metadata, e.metadata, "seq {}", r.seq);
    }
    assert_eq!(
        c.append(&event("t", "a", "x.y", "r")).unwrap().seq,
        acked.len() as u64
    );
    eprintln!(
        "full tmpfs: {} events acknowledged before ENOSPC, all read back after the restart",
        acked.len()
    );
}
