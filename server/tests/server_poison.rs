//! A full disk under the server (a 1 MiB tmpfs; needs root to mount, and
//! skips without it): the append that hits ENOSPC and every later one are
//! answered `poisoned`, nothing is acknowledged after the failure, and
//! after a restart with space freed every acknowledged event is there.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use client::ErrorCode;
use common::*;

struct Mount<'a>(&'a Path);

impl Drop for Mount<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0).status();
    }
}

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
        eprintln!("SKIPPED: mounting a tmpfs needs root (CAP_SYS_ADMIN)");
        return;
    }
    let _guard = Mount(&mnt);
    std::fs::write(mnt.join("ballast"), vec![1u8; 256 << 10]).unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    let mut acked = Vec::new();
    {
        let server = start(&mnt, &[&admin]);
        let mut c = connect(server.addr(), &admin);
        let mut e = event("t", "a", "x.y", "r");
        e.metadata = format!("{{\"pad\":\"{}\"}}", "x".repeat(2000));
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
    }
    std::fs::remove_file(mnt.join("ballast")).unwrap();
    let server = start(&mnt, &[&admin]);
    let mut c = connect(server.addr(), &admin);
    assert_eq!(c.stats().unwrap().next_seq, acked.len() as u64);
    for r in &acked {
        assert_eq!(c.read(r.seq, r.seq + 1, 1).unwrap().events[0].hash, r.hash);
    }
    assert_eq!(
        c.append(&event("t", "a", "x.y", "r")).unwrap().seq,
        acked.len() as u64
    );
}
