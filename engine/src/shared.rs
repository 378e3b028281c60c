//! The state the log's handle ([`Log`](crate::Log)) shares with its writer,
//! syncer and readers: the segment list, the durable head, the poison latch,
//! the counters, and each append's completion.
//!
//! Its own module, below both `log.rs` (the API) and `writer.rs` (the write
//! path), so that the two do not import each other.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::config::Config;
use crate::error::{Error, PoisonCause, Result};
use crate::format::{Hash, LogId};
use crate::merkle::Frontier;
use crate::segment::Segment;
use crate::storage::Storage;

/// The proof of a durable append: the record's place in the log and its
/// chain hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    /// The record's sequence number.
    pub seq: u64,
    /// The time the writer assigned, in nanoseconds since the Unix epoch.
    pub created_at: u64,
    /// The record's chain hash.
    pub hash: Hash,
}

#[derive(Debug, Default)]
pub(crate) struct StatCounters {
    pub appends: AtomicU64,
    pub writes: AtomicU64,
    pub syncs: AtomicU64,
    pub bytes: AtomicU64,
    pub segments_sealed: AtomicU64,
    pub segments_prewritten: AtomicU64,
    pub spares_failed: AtomicU64,
    pub level_files_rebuilt: AtomicU64,
}

/// Where durable data ends: the seq after the last durable record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeadState {
    pub next_seq: u64,
    pub last_hash: Hash,
    pub last_created_at: u64,
    /// The root of the Merkle tree over records `0..next_seq`.
    pub tree_root: Hash,
}

/// State shared by the log handle, the writer and the syncer.
#[derive(Debug)]
pub(crate) struct Shared {
    pub dir: PathBuf,
    pub storage: Arc<dyn Storage>,
    pub config: Config,
    pub log_id: LogId,
    /// Every segment in seq order; the last one is active.
    pub segments: RwLock<Vec<Arc<Segment>>>,
    pub head: RwLock<HeadState>,
    /// The Merkle tree over every record acknowledged (leaf data: each
    /// record's chain hash), grown as groups complete.
    pub tree: Mutex<Frontier>,
    /// The active segment's offset through which it is known durable.
    pub synced_end: AtomicU64,
    poisoned: AtomicBool,
    poison_cause: Mutex<Option<PoisonCause>>,
    pub stats: StatCounters,
    /// Appends submitted and not yet answered: the syncer's estimate of
    /// how many appenders a sync can cover.
    pub in_flight: AtomicUsize,
    /// Appends in flight just before the last acknowledgement (the ones
    /// acknowledged included): how many appenders were about lately.
    pub acked_in_flight: AtomicUsize,
    /// Jobs the writer has sent the syncer and the syncer has not finished;
    /// the writer syncs a group itself only when this is zero.
    pub sync_jobs: AtomicUsize,
}

impl Shared {
    /// The shared state of a log just recovered: `segments` are its sealed
    /// segments (the writer adds the active one), `head` where durable data
    /// ends.
    // Every field a recovered log starts from; bundling them would only
    // rename the list.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        dir: PathBuf,
        storage: Arc<dyn Storage>,
        config: Config,
        log_id: LogId,
        segments: Vec<Arc<Segment>>,
        head: HeadState,
        tree: Frontier,
        synced_end: u64,
    ) -> Shared {
        Shared {
            tree: Mutex::new(tree),
            dir,
            storage,
            config,
            log_id,
            segments: RwLock::new(segments),
            head: RwLock::new(head),
            synced_end: AtomicU64::new(synced_end),
            poisoned: AtomicBool::new(false),
            poison_cause: Mutex::new(None),
            stats: StatCounters::default(),
            in_flight: AtomicUsize::new(0),
            acked_in_flight: AtomicUsize::new(0),
            sync_jobs: AtomicUsize::new(0),
        }
    }

    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    pub fn poison_cause(&self) -> Option<PoisonCause> {
        if !self.is_poisoned() {
            return None;
        }
        self.poison_cause.lock().clone()
    }

    /// Whether `n` appends about to be committed are all there is: no other
    /// append in flight, none about at the last acknowledgement either (the
    /// first of a returning cohort is alone only for a moment), and nothing
    /// at the syncer (so a sync now completes everything written, in order).
    pub fn alone(&self, n: usize) -> bool {
        self.in_flight.load(Ordering::Acquire) <= n
            && self.acked_in_flight.load(Ordering::Acquire) <= n
            && self.sync_jobs.load(Ordering::Acquire) == 0
    }

    /// Latches the first failure (`e`, met in the step `during`); every
    /// later append reports it. Returns the cause latched, which is the
    /// first one.
    pub fn poison(&self, during: &'static str, e: &Error) -> PoisonCause {
        let mut cause = self.poison_cause.lock();
        let first = cause
            .get_or_insert_with(|| PoisonCause::of(during, e))
            .clone();
        self.poisoned.store(true, Ordering::Release);
        first
    }

    /// Publishes `next` as the durable head, before its appends are
    /// acknowledged (so that a reader who saw a receipt finds the record).
    /// Groups complete in write order, so the head only moves forward; a
    /// head that would move backwards is refused and poisons the log, so
    /// that nothing is acknowledged out of order.
    pub fn publish_head(&self, next: HeadState) -> Result<()> {
        let mut head = self.head.write();
        if next.next_seq < head.next_seq {
            let e = Error::HeadMovedBackwards {
                head_next_seq: head.next_seq,
                group_next_seq: next.next_seq,
            };
            drop(head);
            self.poison("publish head", &e);
            return Err(e);
        }
        *head = next;
        Ok(())
    }
}

/// What an append's submitter gets called with, exactly once.
pub(crate) type OnDone = Box<dyn FnOnce(Result<Vec<Receipt>>) + Send>;

/// An append's callback, counted in [`Shared::in_flight`] from submission
/// until it is called. Dropped uncalled (the writer is gone), it is called
/// with [`Error::Closed`], so that no submitter waits forever.
pub(crate) struct Completion {
    done: Option<OnDone>,
    shared: Arc<Shared>,
}

impl Completion {
    pub(crate) fn new(shared: &Arc<Shared>, done: OnDone) -> Completion {
        // Counted from here until the submitter is called: the write
        // path's estimate of how many appends a sync could cover.
        shared.in_flight.fetch_add(1, Ordering::AcqRel);
        Completion {
            done: Some(done),
            shared: shared.clone(),
        }
    }

    /// Calls the submitter with `result`.
    pub(crate) fn call(mut self, result: Result<Vec<Receipt>>) {
        self.finish(result);
    }

    /// Takes the callback back uncalled: the append was never queued.
    pub(crate) fn defuse(mut self) {
        if self.done.take().is_some() {
            self.shared.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }

    fn finish(&mut self, result: Result<Vec<Receipt>>) {
        if let Some(done) = self.done.take() {
            self.shared.in_flight.fetch_sub(1, Ordering::AcqRel);
            done(result);
        }
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        self.finish(Err(Error::Closed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::FsStorage;

    fn head(next_seq: u64) -> HeadState {
        HeadState {
            next_seq,
            last_hash: [next_seq as u8; 32],
            last_created_at: next_seq * 10,
            tree_root: [next_seq as u8 ^ 0xff; 32],
        }
    }

    #[test]
    fn a_head_that_would_move_backwards_poisons_the_log() {
        let shared = Shared::new(
            PathBuf::from("/nonexistent/log"),
            Arc::new(FsStorage),
            Config::default(),
            [0; 16],
            Vec::new(),
            head(0),
            Frontier::new(),
            0,
        );
        shared.publish_head(head(5)).expect("forward");
        shared.publish_head(head(9)).expect("forward");
        assert!(!shared.is_poisoned());

        let err = shared.publish_head(head(7)).expect_err("backwards");
        assert!(
            matches!(
                err,
                Error::HeadMovedBackwards {
                    head_next_seq: 9,
                    group_next_seq: 7
                }
            ),
            "{err}"
        );
        // The head stays where it was, and every later call says why.
        assert_eq!(*shared.head.read(), head(9));
        let cause = shared.poison_cause().expect("poisoned");
        assert_eq!(
            (cause.op, cause.path.as_deref(), cause.kind),
            ("publish head", None, None)
        );
        assert_eq!(
            cause.to_string(),
            "publish head: the durable head would move backwards: records before seq 9 are \
             published, and a group completing now ends before seq 7 (a write-path bug; \
             nothing more is acknowledged)"
        );
    }

    #[test]
    fn the_first_failure_is_the_cause() {
        let shared = Shared::new(
            PathBuf::from("/nonexistent/log"),
            Arc::new(FsStorage),
            Config::default(),
            [0; 16],
            Vec::new(),
            head(0),
            Frontier::new(),
            0,
        );
        assert_eq!(shared.poison_cause(), None);
        let path = PathBuf::from("/nonexistent/log/00000000000000000000.seg");
        let full = Error::io("write", &path, std::io::ErrorKind::StorageFull.into());
        let first = shared.poison("write group", &full);
        assert_eq!(first.op, "write");
        assert_eq!(first.path.as_deref(), Some(path.as_path()));
        assert_eq!(first.kind, Some(std::io::ErrorKind::StorageFull));
        let eio = Error::io("fdatasync", &path, std::io::Error::from_raw_os_error(5));
        assert_eq!(shared.poison("sync group", &eio), first);
        assert_eq!(shared.poison_cause(), Some(first));
    }
}
