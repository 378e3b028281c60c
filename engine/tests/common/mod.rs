//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use engine::{Clock, Config};

pub mod sim;

/// A clock the test moves by hand.
#[derive(Debug, Default)]
pub struct ManualClock(pub AtomicU64);

impl ManualClock {
    pub fn new(start: u64) -> Arc<ManualClock> {
        Arc::new(ManualClock(AtomicU64::new(start)))
    }
    pub fn set(&self, t: u64) {
        self.0.store(t, Ordering::SeqCst);
    }
    pub fn advance(&self, by: u64) {
        self.0.fetch_add(by, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_nanos(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A configuration with small segments, for tests that roll often.
pub fn small_config(segment_size: u64) -> Config {
    Config {
        segment_size,
        index_interval: 256,
        log_id: Some(*b"chainlog-test-id"),
        ..Config::default()
    }
}

/// The payload of record `i` in tests: recognisable and of varying length.
pub fn payload(i: u64) -> Vec<u8> {
    let len = 16 + (i % 48) as usize;
    let mut p = format!("record-{i:08}-").into_bytes();
    p.resize(len.max(p.len()), b'a' + (i % 26) as u8);
    p
}

/// Every file in a directory with its bytes and read-only flag, to prove
/// that a refused open modified nothing.
pub fn snapshot(dir: &Path) -> BTreeMap<String, (Vec<u8>, bool)> {
    let mut m = BTreeMap::new();
    for e in std::fs::read_dir(dir).expect("read_dir") {
        let e = e.expect("entry");
        let ro = e.metadata().expect("metadata").permissions().readonly();
        m.insert(
            e.file_name().to_string_lossy().into_owned(),
            (std::fs::read(e.path()).expect("read"), ro),
        );
    }
    m
}

/// Segment file paths in seq order.
pub fn segment_paths(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    v.sort();
    v
}

/// Makes a file writable again (sealed segments are read-only).
pub fn make_writable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut p = std::fs::metadata(path).expect("metadata").permissions();
    p.set_mode(0o644);
    std::fs::set_permissions(path, p).expect("chmod");
}

/// Copies a directory's files (flat).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let dst = to.join(e.file_name());
        std::fs::copy(e.path(), &dst).expect("copy");
        make_writable(&dst);
        if e.metadata().expect("metadata").permissions().readonly() {
            let mut p = std::fs::metadata(&dst).expect("metadata").permissions();
            p.set_readonly(true);
            std::fs::set_permissions(&dst, p).expect("chmod");
        }
    }
}

/// Set to `1` by `.ci/run`: a test that cannot run in this environment
/// (no root to mount a tmpfs, no `fiu-run`) fails instead of skipping.
pub const MUST_RUN_ENV: &str = "CHAINLOG_TESTS_MUST_RUN";

/// Reports that `test` cannot run here, for `why`. Fails it when
/// [`MUST_RUN_ENV`] is `1`. Otherwise writes `SKIPPED test: why` straight
/// to the process's stderr, past the test harness's capture (which would
/// show a skipped test as a plain "ok"); `.ci/run` counts these lines.
pub fn skip(test: &str, why: &str) {
    use std::io::Write;
    if std::env::var(MUST_RUN_ENV).is_ok_and(|v| v == "1") {
        panic!("{test} must run here ({MUST_RUN_ENV}=1) but cannot: {why}");
    }
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED {test}: {why}");
}
