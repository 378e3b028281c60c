//! Verifying a live log: a writer appends without pause while verification
//! runs again and again. Every run sees a valid, consistent prefix (at most
//! a tail still being written, reported as unverified), and the writer is
//! never blocked: in every run, verification is held inside its first file
//! open until the writer has had 100 more appends acknowledged (no wall
//! time: a writer that verification blocked would never get there, and the
//! run fails at a one-minute hang bound).

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::storage::{FsStorage, Storage, StorageFile};
use engine::{Config, Durability, Log};

/// The real file system, except that the first `open_read` of a run waits
/// until `acked` has reached `until`.
#[derive(Debug)]
struct HeldVerify {
    acked: Arc<AtomicU64>,
    until: u64,
    held: AtomicBool,
}

impl HeldVerify {
    fn hold(&self) {
        if self.held.swap(true, Ordering::SeqCst) {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.acked.load(Ordering::SeqCst) < self.until {
            assert!(
                Instant::now() < deadline,
                "the writer made no progress while verification held a file open"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Storage for HeldVerify {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        FsStorage.create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        FsStorage.list(dir)
    }
    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        FsStorage.create_new(path)
    }
    fn open_read(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        let f = FsStorage.open_read(path)?;
        self.hold();
        Ok(f)
    }
    fn open_write(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        FsStorage.open_write(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        FsStorage.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        FsStorage.remove(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        FsStorage.sync_dir(dir)
    }
    fn set_read_only(&self, path: &Path) -> io::Result<()> {
        FsStorage.set_read_only(path)
    }
    fn is_read_only(&self, path: &Path) -> io::Result<bool> {
        FsStorage.is_read_only(path)
    }
}

#[test]
fn verification_of_a_live_log_sees_a_valid_prefix_and_never_blocks_the_writer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        segment_size: 16 << 10,
        durability: Durability::UnsafeNoSync,
        log_id: Some(*b"verify-live-test"),
        ..Config::default()
    };
    let log = Arc::new(Log::open(dir.path(), config).expect("open"));
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let writer = {
        let (log, stop, acked) = (log.clone(), stop.clone(), acked.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let batch: Vec<Vec<u8>> = (0..10)
                    .map(|k| format!("live {i} {k}").into_bytes())
                    .collect();
                log.append_batch(&batch).expect("append");
                acked.fetch_add(10, Ordering::SeqCst);
                i += 1;
            }
        })
    };
    while acked.load(Ordering::Relaxed) < 1000 {
        std::thread::yield_now();
    }
    let mut runs = 0;
    let mut last_checked = 0;
    while runs < 20 || acked.load(Ordering::Relaxed) < 20_000 {
        let before = acked.load(Ordering::SeqCst);
        let storage = HeldVerify {
            acked: acked.clone(),
            until: before + 100,
            held: AtomicBool::new(false),
        };
        let report = engine::verify::verify(
            &storage,
            dir.path(),
            &engine::verify::Options {
                threads: 2,
                ..Default::default()
            },
        )
        .expect("verify");
        assert!(
            storage.held.load(Ordering::SeqCst),
            "run {runs} opened no file"
        );
        assert!(report.is_valid(), "run {runs}: {:?}", report.problems());
        // The prefix verified holds at least what was acknowledged before
        // the run started (in this no-sync mode, acknowledged = written).
        assert!(
            report.records_checked >= before,
            "run {runs}: {} < {before}",
            report.records_checked
        );
        assert!(
            report.records_checked >= last_checked,
            "the verified prefix only grows"
        );
        last_checked = report.records_checked;
        runs += 1;
    }
    let during = acked.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
    eprintln!("{runs} verifications of a live log, each held until 100 more appends were acknowledged; {during} records appended");
}
