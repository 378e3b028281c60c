//! How a [`Log`](crate::Log) is configured.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::format::{footer::FOOTER_LEN, header::HEADER_LEN, record::MAX_PAYLOAD_LEN, LogId};

/// What an acknowledged append survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// The default. Every group of appends is written and `fdatasync`ed
    /// before any append in it is acknowledged: an acknowledged record
    /// survives a process crash, a kernel crash and a power loss (on a
    /// device that honours flushes).
    #[default]
    SyncEveryGroup,
    /// FOR TESTS AND BENCHMARKS ONLY. Appends are acknowledged once written
    /// to the operating system, never synced: they survive a process crash
    /// but a kernel crash or power loss may lose any of them, and recovery
    /// then cuts the log back to whatever reached the disk. Segment headers,
    /// seals and directory entries are still synced.
    UnsafeNoSync,
}

/// The source of `created_at` timestamps, in nanoseconds since the Unix
/// epoch. The writer never lets `created_at` go backwards, whatever the
/// clock does.
pub trait Clock: Send + Sync + Debug {
    /// Now, in nanoseconds since the Unix epoch.
    fn now_nanos(&self) -> u64;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_nanos(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}

/// The largest segment the format allows: record positions are stored as
/// 32-bit offsets in the index files and in `durable_through`.
pub const MAX_SEGMENT_SIZE: u64 = 1 << 30;
/// The smallest segment size accepted.
pub const MIN_SEGMENT_SIZE: u64 = 1024;

/// The default [`Config::tree_min_level`]: nodes recomputed from at most 64
/// records, stored nodes about one byte per record (docs/format.md gives
/// the measurements behind it).
pub const DEFAULT_TREE_MIN_LEVEL: u32 = 6;
/// The largest [`Config::tree_min_level`]: a proof then reads at most
/// 65,536 records per edge of the tree it touches.
pub const MAX_TREE_MIN_LEVEL: u32 = 16;

/// Configuration of a log.
#[derive(Debug, Clone)]
pub struct Config {
    /// A segment is sealed when its next group would take it past this many
    /// bytes (a single group larger than this fills a segment of its own).
    pub segment_size: u64,
    /// A segment is sealed when its first record is older than this.
    pub segment_age: Option<Duration>,
    /// Bytes between sparse index entries.
    pub index_interval: u32,
    /// What an acknowledgement promises.
    pub durability: Durability,
    /// The largest payload accepted.
    pub max_record_len: usize,
    /// The largest `append_batch` call, as stored (payloads plus 64 bytes
    /// per record).
    pub max_batch_bytes: usize,
    /// Append requests that may wait for the writer; more gets `Busy`.
    pub queue_depth: usize,
    /// The writer stops gathering a group at this many payload bytes.
    pub max_group_bytes: usize,
    /// When an append finds nothing else in flight (no other append
    /// submitted and unanswered, nothing queued, nothing being synced), the
    /// submitting thread writes it, syncs it and calls its callback itself,
    /// before the submit returns, instead of waking the writer thread and
    /// being woken back: the same steps in the same order under the same
    /// lock, two thread hand-offs fewer. Off: every append goes through the
    /// writer thread, and a submit never blocks on the disk.
    pub commit_inline: bool,
    /// The identity to give a new log; a random one when `None`. Opening an
    /// existing log with a different identity fails.
    pub log_id: Option<LogId>,
    /// The source of `created_at`.
    pub clock: Arc<dyn Clock>,
    /// Told about every acknowledged group (metrics, waking tailers).
    pub observer: Option<Arc<dyn WriteObserver>>,
    /// Start each new segment in a file already filled with zeros to
    /// `segment_size` and synced, prepared by a background thread while the
    /// previous segment fills. Overwriting allocated, written blocks needs
    /// no block allocation or size change in the covering `fdatasync`,
    /// which on ext4 makes each sync 25-50% cheaper (docs/benchmarks.md).
    /// Recovery and verification read zeros after the last record of the
    /// active segment as its end; sealing cuts them off. Costs one
    /// segment's worth of disk space ahead of use.
    pub prewrite_segments: bool,
    /// With `prewrite_segments`: a segment that filled in less than this
    /// (by its records' `created_at`) is followed by a plain segment, and
    /// pre-writing resumes after one that fills more slowly. At such rates
    /// each `fdatasync` covers many records, so a pre-written file saves
    /// little per record while doubling the bytes written to the disk.
    /// `None`: every segment is pre-written.
    pub prewrite_min_fill: Option<Duration>,
    /// FOR TESTS. With `prewrite_segments`, prepare each spare on the
    /// writer thread at the roll, just before the next segment is created
    /// in it, instead of on a background thread: the order of storage
    /// operations is then the same on every run, which the crash and
    /// fail-Nth sweeps need to replay a case. (The segments recovery creates
    /// are pre-written there and then either way.) Slows each roll by one
    /// segment's worth of writing.
    pub prewrite_inline: bool,
    /// The lowest level of the Merkle tree whose nodes are stored (in each
    /// sealed segment's level file, and in memory for the active segment):
    /// a proof recomputes a node below it from at most `2^tree_min_level`
    /// consecutive records. Lower: larger level files (32 bytes per
    /// `2^(tree_min_level - 1)` records) and fewer records read per proof.
    /// 1 to [`MAX_TREE_MIN_LEVEL`]. A level file written with another value
    /// is rebuilt from its records when a proof first needs it.
    pub tree_min_level: u32,
}

/// Told, on the write path, each time appends become durable: after the
/// head is published and before the appenders are answered. Must be quick.
pub trait WriteObserver: Send + Sync + Debug {
    /// `records` appends became durable; the head is now `next_seq - 1`.
    /// `sync` is how long the covering `fdatasync` took (`None` when the
    /// durability level does not sync).
    fn on_durable(&self, next_seq: u64, records: u64, sync: Option<Duration>);
}

impl Default for Config {
    fn default() -> Self {
        Config {
            segment_size: 64 << 20,
            segment_age: Some(Duration::from_secs(24 * 3600)),
            index_interval: 4096,
            durability: Durability::SyncEveryGroup,
            max_record_len: 1 << 20,
            max_batch_bytes: 16 << 20,
            queue_depth: 4096,
            max_group_bytes: 4 << 20,
            commit_inline: true,
            log_id: None,
            clock: Arc::new(SystemClock),
            observer: None,
            prewrite_segments: false,
            prewrite_min_fill: None,
            prewrite_inline: false,
            tree_min_level: DEFAULT_TREE_MIN_LEVEL,
        }
    }
}

impl Config {
    /// Checks the configuration's bounds.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        if !(MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE).contains(&self.segment_size) {
            return bad(format!(
                "segment_size {} is outside {MIN_SEGMENT_SIZE}..={MAX_SEGMENT_SIZE}",
                self.segment_size
            ));
        }
        if self.index_interval == 0 {
            return bad("index_interval must be positive".into());
        }
        if self.max_record_len > MAX_PAYLOAD_LEN {
            return bad(format!(
                "max_record_len {} exceeds the format maximum {MAX_PAYLOAD_LEN}",
                self.max_record_len
            ));
        }
        if self.max_record_len as u64 + (HEADER_LEN + FOOTER_LEN) as u64 > MAX_SEGMENT_SIZE {
            return bad("max_record_len does not fit in a segment".into());
        }
        // Offsets in a segment are 32-bit: a segment holds at most its size
        // limit, plus one group, plus one more batch (a group stops
        // gathering once past its limit).
        let worst = self.segment_size as u128
            + self.max_group_bytes as u128
            + self.max_batch_bytes as u128
            + FOOTER_LEN as u128;
        if worst > u32::MAX as u128 {
            return bad(format!(
                "segment_size + max_group_bytes + max_batch_bytes ({worst}) must stay below 4 GiB"
            ));
        }
        if self.max_batch_bytes < self.max_record_len + crate::format::record::RECORD_OVERHEAD {
            return bad("max_batch_bytes must hold at least one record of max_record_len".into());
        }
        if !(1..=MAX_TREE_MIN_LEVEL).contains(&self.tree_min_level) {
            return bad(format!(
                "tree_min_level {} is outside 1..={MAX_TREE_MIN_LEVEL}",
                self.tree_min_level
            ));
        }
        if self.queue_depth == 0 || self.max_batch_bytes == 0 || self.max_group_bytes == 0 {
            return bad("queue_depth, max_batch_bytes and max_group_bytes must be positive".into());
        }
        Ok(())
    }
}
