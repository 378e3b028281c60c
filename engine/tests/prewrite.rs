//! Pre-written segments: a segment started in a file of zeros is sealed to
//! exactly its records and footer, an active one is reopened and verified
//! with its zeros as its end, and a torn write into the zeros is still cut.

mod common;

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{payload, small_config};
use engine::format::header::HEADER_LEN;
use engine::format::record::RECORD_OVERHEAD;
use engine::storage::{FsStorage, Storage, StorageFile};
use engine::verify::verify_dir;
use engine::{Config, Log};

const SEGMENT: u64 = 64 << 10;
const FOOTER_LEN: u64 = 256;

fn config() -> Config {
    Config {
        prewrite_segments: true,
        ..small_config(SEGMENT)
    }
}

fn segment_files(dir: &Path) -> Vec<(String, u64)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry"))
        .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().expect("stat").len(),
            )
        })
        .collect();
    v.sort();
    v
}

/// Where the records `seqs` (the test payloads) of a segment end.
fn records_end(seqs: std::ops::Range<u64>) -> u64 {
    HEADER_LEN as u64
        + seqs
            .map(|i| (payload(i).len() + RECORD_OVERHEAD) as u64)
            .sum::<u64>()
}

fn first_seq(name: &str) -> u64 {
    engine::parse_segment_name(name).expect("a segment name")
}

/// Appends one record at a time until `want` segments were started in
/// pre-written files (each roll waits for nothing: a spare not ready yet
/// gives a plain segment). Returns the number of records appended.
fn append_until_prewritten(log: &Log, first: u64, want: u64) -> u64 {
    let started = Instant::now();
    let mut i = first;
    while log.stats().segments_prewritten < want {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "only {} pre-written segments after {} appends",
            log.stats().segments_prewritten,
            i - first
        );
        let r = log.append(&payload(i)).expect("append");
        assert_eq!(r.seq, i);
        i += 1;
    }
    i - first
}

#[test]
fn prewritten_segments_seal_to_their_records_and_reopen_at_their_last_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), config()).expect("open");
    let n = append_until_prewritten(&log, 0, 2);
    // A few more, so that the active segment holds records before its zeros.
    for i in n..n + 5 {
        assert_eq!(log.append(&payload(i)).expect("append").seq, i);
    }
    let total = n + 5;
    let stats = log.stats();
    drop(log);

    let files = segment_files(dir.path());
    assert_eq!(files.len() as u64, stats.segments_sealed + 1);
    let report = verify_dir(&FsStorage, dir.path()).expect("verify");
    assert!(report.is_valid(), "{:?}", report.problems());
    assert!(
        report.tail.is_none(),
        "zeros reported as a tail: {:?}",
        report.tail
    );
    assert_eq!(report.records_checked, total);
    assert_eq!(report.head.map(|(s, _)| s), Some(total - 1));
    // Sealed segments end with their footer, zeros cut; the active one was
    // started pre-written and keeps its full length.
    for w in files.windows(2) {
        let seqs = first_seq(&w[0].0)..first_seq(&w[1].0);
        assert_eq!(w[0].1, records_end(seqs) + FOOTER_LEN, "{}", w[0].0);
    }
    assert_eq!(files.last().expect("active").1, SEGMENT);

    // Reopen: no cut, the head is the last record, appends go on after it.
    let log = Log::open(dir.path(), config()).expect("reopen");
    assert!(log.recovery_report().cut.is_none());
    assert_eq!(log.head().map(|h| h.seq), Some(total - 1));
    for i in total..total + 3 {
        assert_eq!(log.append(&payload(i)).expect("append").seq, i);
    }
    for i in 0..total + 3 {
        assert_eq!(log.read(i).expect("read").payload, payload(i), "record {i}");
    }
    drop(log);
    let report = verify_dir(&FsStorage, dir.path()).expect("verify");
    assert!(report.is_valid(), "{:?}", report.problems());
    assert_eq!(report.records_checked, total + 3);
}

#[test]
fn a_torn_write_into_prewritten_space_is_cut_and_acknowledged_records_stay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), config()).expect("open");
    let n = append_until_prewritten(&log, 0, 1);
    let head = log.head().expect("head");
    drop(log);
    let (name, len) = segment_files(dir.path()).pop().expect("active segment");
    assert_eq!(len, SEGMENT);
    // Where the zeros start: after the last record.
    let path = dir.path().join(&name);
    let bytes = std::fs::read(&path).expect("read");
    let end = records_end(first_seq(&name)..n);
    assert!(bytes[end as usize..].iter().all(|&b| b == 0));
    // Half a record's worth of garbage there, as a torn group leaves it.
    let mut torn = bytes.clone();
    for b in &mut torn[end as usize..end as usize + 40] {
        *b = 0x5a;
    }
    std::fs::write(&path, &torn).expect("write");

    let log = Log::open(dir.path(), config()).expect("reopen");
    let cut = log.recovery_report().cut.as_ref().expect("a cut");
    assert_eq!(cut.offset, end);
    assert_eq!(cut.len, SEGMENT - end);
    assert_eq!(
        log.head().map(|h| (h.seq, h.hash)),
        Some((head.seq, head.hash))
    );
    assert_eq!(head.seq, n - 1);
    assert_eq!(std::fs::metadata(&path).expect("stat").len(), end);
    assert_eq!(log.append(b"after the cut").expect("append").seq, n);
}

/// The real file system, except that the pre-writer's spare file holds at
/// most `room` bytes: a write past that writes what fits and fails with
/// `ENOSPC`, as on a disk that filled up while the spare was written.
#[derive(Debug)]
struct SpareDiskFull {
    room: u64,
}

#[derive(Debug)]
struct FullFile {
    inner: Arc<dyn StorageFile>,
    room: u64,
}

const SPARE_NAME: &str = "next-segment.seg.tmp";

impl Storage for SpareDiskFull {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        FsStorage.create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        FsStorage.list(dir)
    }
    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        let f = FsStorage.create_new(path)?;
        if path.file_name().is_some_and(|n| n == SPARE_NAME) {
            return Ok(Arc::new(FullFile {
                inner: f,
                room: self.room,
            }));
        }
        Ok(f)
    }
    fn open_read(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        FsStorage.open_read(path)
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

impl StorageFile for FullFile {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        let fits = self.room.saturating_sub(offset).min(buf.len() as u64) as usize;
        if fits < buf.len() {
            if fits > 0 {
                self.inner.write_at(&buf[..fits], offset)?;
            }
            return Err(io::Error::from_raw_os_error(28));
        }
        self.inner.write_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.inner.sync_data()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
}

/// Pre-writing on a disk with no room for a spare: every spare fails, is
/// removed at once (its space comes back), each roll creates a plain
/// segment, the log never poisons, and every acknowledged record reopens.
/// Both ways of pre-writing: on the background thread (as chainlogd runs)
/// and at the roll (as the sweeps run).
#[test]
fn a_spare_that_fills_the_disk_is_removed_and_the_log_keeps_working() {
    for inline in [false, true] {
        let dir = tempfile::tempdir().expect("tempdir");
        let spare = dir.path().join(SPARE_NAME);
        let storage: Arc<dyn Storage> = Arc::new(SpareDiskFull { room: 16 << 10 });
        let config = Config {
            prewrite_inline: inline,
            ..config()
        };
        let log = Log::open_with_storage(storage, dir.path(), config.clone()).expect("open");
        if !inline {
            // Recovery's spare for the first segment failed at open, and the
            // background pre-writer tries once more: wait for it.
            let started = Instant::now();
            while log.stats().spares_failed < 2 {
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "the pre-writer never failed"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            assert!(!spare.exists(), "the failed spare was left on the disk");
        }
        let mut acked = Vec::new();
        let mut i = 0;
        while log.stats().segments_sealed < 3 {
            let r = log
                .append(&payload(i))
                .expect("append with no room for a spare");
            assert_eq!(r.seq, i);
            acked.push(r);
            i += 1;
            assert!(i < 100_000, "no roll after {i} appends");
        }
        let stats = log.stats();
        assert!(!log.is_poisoned());
        assert_eq!(stats.segments_prewritten, 0, "inline = {inline}");
        if inline {
            // One attempt for the new log's first segment (recovery's) and
            // one per roll, each failed.
            assert_eq!(stats.spares_failed, 4, "inline = {inline}");
        } else {
            assert!(stats.spares_failed >= 2, "inline = {inline}");
        }
        drop(log);
        assert!(
            !spare.exists(),
            "a failed spare was left on the disk (inline = {inline})"
        );
        // Plain segments: each sealed one holds exactly its records and footer.
        let files = segment_files(dir.path());
        assert_eq!(files.len(), 4, "inline = {inline}");
        for w in files.windows(2) {
            let seqs = first_seq(&w[0].0)..first_seq(&w[1].0);
            assert_eq!(w[0].1, records_end(seqs) + FOOTER_LEN, "{}", w[0].0);
        }

        let log = Log::open(dir.path(), small_config(SEGMENT)).expect("reopen");
        assert!(log.recovery_report().cut.is_none());
        assert_eq!(log.head().map(|h| h.seq + 1), Some(acked.len() as u64));
        for r in &acked {
            let rec = log.read(r.seq).expect("acknowledged record");
            assert_eq!((rec.hash, rec.payload), (r.hash, payload(r.seq)));
        }
        drop(log);
        let report = verify_dir(&FsStorage, dir.path()).expect("verify");
        assert!(report.is_valid(), "{:?}", report.problems());
        assert_eq!(report.records_checked, acked.len() as u64);
    }
}
