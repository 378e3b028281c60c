//! The write path: one writer thread per log assigns seq and `created_at`,
//! extends the chain, and writes each group with one system call; one
//! syncer thread makes groups durable and acknowledges them.
//!
//! The two threads form a pipeline: while the syncer's `fdatasync` covers
//! group N, the writer gathers, hashes and writes group N+1. A sync that
//! returns covers every group written before it started, so the syncer
//! acknowledges all the groups it collected with one sync. Nothing is
//! acknowledged before the `fdatasync` covering it has returned; after a
//! failed write or sync, nothing is acknowledged again (the log is
//! poisoned until it is reopened, which recovers from disk).
//!
//! At light load (one append in flight, nothing queued or syncing) the
//! submitting thread does the writer's work itself, under the writer's lock
//! ([`commit_inline`]): write, sync, acknowledge, with no hand-off at all.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::handoff::{bounded, Receiver, RecvTimeoutError, SendError, Sender};
use parking_lot::{Mutex, RwLock};

use crate::chain;
use crate::chain::ChainState;
use crate::config::Durability;
use crate::error::{CorruptionKind, Error, PoisonCause, Result};
use crate::format::footer::Footer;
use crate::format::header::{SegmentHeader, HEADER_LEN};
use crate::format::levels::LevelNodes;
use crate::format::record::{self, RECORD_OVERHEAD};
use crate::format::Structure;
use crate::merkle::{self, Frontier};
use crate::segment::levels::SealedLevels;
use crate::segment::{self, ActiveState, LiveIndex, Segment, SegmentIndex, SegmentLevels};
use crate::shared::{Completion, HeadState, Receipt, Shared};
use crate::storage::{write_all_at, StorageFile};

/// Groups written but not yet synced, at most. Bounds the receipts held by
/// the syncer; the writer waits when the syncer falls this far behind.
const SYNC_QUEUE_DEPTH: usize = 64;

/// The longest the syncer waits for appenders to come back before a sync.
const MAX_GROUP_WAIT: Duration = Duration::from_micros(250);

/// The longest the writer sleeps before rechecking the segment age limit.
const AGE_POLL: Duration = Duration::from_secs(1);

/// An append waiting for the writer: its payloads back to back, their
/// lengths, and whom to call with the receipts.
pub(crate) struct Request {
    pub kind: u8,
    pub data: Vec<u8>,
    pub lens: Vec<u32>,
    pub reply: Completion,
}

impl Request {
    /// Bytes its records take on disk.
    pub fn encoded_len(&self) -> usize {
        self.data.len() + self.lens.len() * RECORD_OVERHEAD
    }
}

struct Waiter {
    reply: Completion,
    receipts: Vec<Receipt>,
}

struct Group {
    file: Arc<dyn StorageFile>,
    path: PathBuf,
    /// The segment offset after this group.
    end: u64,
    /// The chain after this group.
    chain: ChainState,
    /// The active segment's upper tree nodes, which this group's records
    /// complete as the tree grows in [`complete`].
    levels: Arc<RwLock<LevelNodes>>,
    waiters: Vec<Waiter>,
}

enum SyncJob {
    Group(Group),
    /// Answered once every job sent before it has been completed.
    Barrier(Sender<()>),
}

/// A file of zeros ready to become the next segment.
type Spare = (PathBuf, Arc<dyn StorageFile>);

/// The pre-writer's one spare, shared with the writer.
enum Slot {
    /// None ready: the pre-writer may prepare one.
    Empty,
    Ready(Spare),
    /// Taken by the writer and not yet renamed to its segment's name. The
    /// pre-writer must not prepare another meanwhile: it would remove and
    /// recreate the file under the same temporary name, so that the rename
    /// would give the segment's name to the new, headerless spare (and the
    /// next roll would write its header into that segment).
    Taken,
}

/// The background thread that keeps one [`Spare`] ready when
/// `prewrite_segments` is on. Asked for one after every roll; the writer
/// takes it at the next roll, or creates a plain segment if it is not
/// ready yet (the thread is still writing zeros, or failed: a failure
/// here costs speed, not data, so it is not a reason to poison the log).
struct Prewriter {
    ask: Sender<()>,
    slot: Arc<parking_lot::Mutex<Slot>>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Prewriter {
    fn start(shared: &Arc<Shared>) -> Result<Prewriter> {
        let (ask, asked) = bounded::<()>(1);
        let slot = Arc::new(parking_lot::Mutex::new(Slot::Empty));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (s, slot, stop) = (shared.clone(), slot.clone(), stop.clone());
            std::thread::Builder::new()
                .name("chainlog-prewrite".into())
                .spawn(move || {
                    for () in &asked {
                        // A request that was waiting while a spare was ready
                        // or taken is stale: `ask` sends a new one once the
                        // taken spare has its segment's name.
                        if !matches!(*slot.lock(), Slot::Empty) {
                            continue;
                        }
                        let cancelled = || stop.load(Ordering::Acquire);
                        let len = s.config.segment_size;
                        match segment::prepare_spare(&*s.storage, &s.dir, len, &cancelled) {
                            Ok(Some(spare)) => *slot.lock() = Slot::Ready(spare),
                            Ok(None) => {}
                            Err(_) => {
                                s.stats.spares_failed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                })
                .map_err(|e| Error::io("spawn pre-write thread", &shared.dir, e))?
        };
        let _ = ask.try_send(());
        Ok(Prewriter {
            ask,
            slot,
            stop,
            thread,
        })
    }

    fn take(&self) -> Option<Spare> {
        let mut slot = self.slot.lock();
        match std::mem::replace(&mut *slot, Slot::Empty) {
            Slot::Ready(spare) => {
                *slot = Slot::Taken;
                Some(spare)
            }
            other => {
                *slot = other;
                None
            }
        }
    }

    /// Once the spare taken (if any) has its segment's name (the spare's
    /// file name is reused): frees the slot, and asks for the next spare if
    /// `want_next`.
    fn after_roll(&self, want_next: bool) {
        {
            let mut slot = self.slot.lock();
            if matches!(*slot, Slot::Taken) {
                *slot = Slot::Empty;
            }
        }
        if !want_next {
            return;
        }
        // One request pending is enough; a full queue already holds it.
        let _ = self.ask.try_send(());
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Release);
        drop(self.ask);
        let _ = self.thread.join();
    }
}

/// The active segment, as the writer holds it.
struct Active {
    first_seq: u64,
    path: PathBuf,
    file: Arc<dyn StorageFile>,
    end: u64,
    records: u64,
    first_created_at: Option<u64>,
    /// Its index, shared with its entry in the segment list (where readers
    /// find it as [`SegmentIndex::Live`]): an active segment's index is
    /// always live, and holding it here says so.
    live: Arc<RwLock<LiveIndex>>,
    /// The Merkle tree before its first record.
    tree_start: Frontier,
    /// The tree's nodes at `tree_min_level` and up that its records complete,
    /// shared with its entry in the segment list as the index is (proofs
    /// read them as [`SegmentLevels::Live`]).
    levels: Arc<RwLock<LevelNodes>>,
}

/// The segment-list entry for an active segment starting at `first_seq`,
/// and the live index and level nodes it shares with the writer's
/// [`Active`].
fn active_segment(
    first_seq: u64,
    path: &std::path::Path,
    file: &Arc<dyn StorageFile>,
    live: LiveIndex,
    levels: LevelNodes,
) -> (
    Arc<Segment>,
    Arc<RwLock<LiveIndex>>,
    Arc<RwLock<LevelNodes>>,
) {
    let live = Arc::new(RwLock::new(live));
    let levels = Arc::new(RwLock::new(levels));
    let segment = Arc::new(Segment {
        first_seq,
        path: path.to_path_buf(),
        file: file.clone(),
        index: SegmentIndex::Live(live.clone()),
        levels: SegmentLevels::Live(levels.clone()),
        footer: None,
    });
    (segment, live, levels)
}

pub(crate) struct WriterHandles {
    pub writer: JoinHandle<()>,
    /// The writer's state: the writer thread locks it to write a group, and
    /// so does a submitter that commits on its own thread (see
    /// [`commit_inline`]).
    pub state: Arc<Mutex<Writer>>,
}

impl std::fmt::Debug for WriterHandles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterHandles").finish_non_exhaustive()
    }
}

/// Starts the writer and syncer threads for a recovered log, after adding
/// the active segment to the log's segment list.
pub(crate) fn start(
    shared: Arc<Shared>,
    active: ActiveState,
    chain: ChainState,
    rx: Receiver<Request>,
) -> Result<WriterHandles> {
    assert_eq!(
        shared.tree.lock().size(),
        chain.next_seq,
        "the Merkle tree holds one leaf per record"
    );
    assert_eq!(
        active.tree_start.size(),
        active.first_seq,
        "the active segment's tree starts before its first record"
    );
    let (segment, live, levels) = active_segment(
        active.first_seq,
        &active.path,
        &active.file,
        active.live,
        active.levels,
    );
    let records = chain.next_seq - active.first_seq;
    // The active segment joins the list before the writer can roll it.
    shared.segments.write().push(segment);
    let (sync_tx, sync_rx) = bounded(SYNC_QUEUE_DEPTH);
    let syncer = {
        let s = shared.clone();
        std::thread::Builder::new()
            .name("chainlog-syncer".into())
            .spawn(move || syncer_loop(&s, &sync_rx))
            .map_err(|e| Error::io("spawn syncer thread", &shared.dir, e))?
    };
    let prewriter = if shared.config.prewrite_segments && !shared.config.prewrite_inline {
        Some(Prewriter::start(&shared)?)
    } else {
        None
    };
    let rx = Arc::new(rx);
    let writer = Writer {
        prewriter,
        shared: shared.clone(),
        rx: rx.clone(),
        active: Active {
            first_seq: active.first_seq,
            path: active.path,
            file: active.file,
            end: active.end,
            records,
            first_created_at: active.first_created_at,
            live,
            tree_start: active.tree_start,
            levels,
        },
        chain,
        buf: Vec::new(),
        sync_tx,
        syncer: Some(syncer),
    };
    let state = Arc::new(Mutex::new(writer));
    let handle = {
        let state = state.clone();
        let ages = shared.config.segment_age.is_some();
        std::thread::Builder::new()
            .name("chainlog-writer".into())
            .spawn(move || run(&state, &rx, ages))
            .map_err(|e| Error::io("spawn writer thread", &shared.dir, e))?
    };
    Ok(WriterHandles {
        writer: handle,
        state,
    })
}

/// The writer thread: waits for requests without holding the writer's
/// lock, then takes it to write every request queued as one group. Only
/// with an age limit (`ages`) does it take the lock while idle.
fn run(state: &Mutex<Writer>, rx: &Receiver<Request>, ages: bool) {
    loop {
        // Only with an age limit does waiting need the writer's state.
        let wait = if ages { state.lock().age_wait() } else { None };
        let first = match wait {
            None => rx.recv().ok(),
            Some(t) => match rx.recv_timeout(t) {
                Ok(r) => Some(r),
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => None,
            },
        };
        let Some(first) = first else { break };
        let mut w = state.lock();
        let mut group = vec![first];
        let mut bytes = group[0].encoded_len();
        while bytes < w.shared.config.max_group_bytes {
            match rx.try_recv() {
                Ok(r) => {
                    bytes += r.encoded_len();
                    group.push(r);
                }
                Err(_) => break,
            }
        }
        w.write_group(group);
    }
    state.lock().finish();
}

/// Writes (and, alone, syncs and acknowledges) `req` on the calling thread
/// when nothing else is in flight: no other append submitted and not yet
/// answered, nothing queued, no group at the syncer. At light load this
/// saves both thread hand-offs of an append (to the writer, and back from
/// it): the submitter's thread does what the writer would, in the same
/// order, under the same lock. Returns the request if the writer is busy
/// or anything else is in flight; it then goes through the queue.
pub(crate) fn commit_inline(
    shared: &Shared,
    state: &Mutex<Writer>,
    req: Request,
) -> std::result::Result<(), Request> {
    // This request is counted in `in_flight` already (its completion). It
    // must have been alone at the last acknowledgement too: the first of a
    // cohort of appenders coming back is alone for a moment, and committing
    // it by itself would split the cohort (see `write_group`).
    if !shared.alone(1) {
        return Err(req);
    }
    // Briefly: the writer thread may be checking the segment's age. Never
    // indefinitely: a callback that submits again runs under this lock.
    let Some(mut w) = state.try_lock_for(INLINE_LOCK_WAIT) else {
        return Err(req);
    };
    if !(shared.alone(1) && w.rx.is_empty()) {
        return Err(req);
    }
    w.write_group(vec![req]);
    Ok(())
}

/// How long an inline commit waits for the writer's lock before it queues.
const INLINE_LOCK_WAIT: Duration = Duration::from_micros(50);

pub(crate) struct Writer {
    prewriter: Option<Prewriter>,
    shared: Arc<Shared>,
    rx: Arc<Receiver<Request>>,
    active: Active,
    chain: ChainState,
    buf: Vec<u8>,
    sync_tx: Sender<SyncJob>,
    syncer: Option<JoinHandle<()>>,
}

impl Writer {
    /// Once every sender is gone: lets the syncer finish what was written,
    /// and stops the pre-writer.
    fn finish(&mut self) {
        let (tx, _rx) = bounded(1);
        drop(std::mem::replace(&mut self.sync_tx, tx));
        if let Some(s) = self.syncer.take() {
            let _ = s.join();
        }
        if let Some(p) = self.prewriter.take() {
            p.stop();
        }
    }

    /// How long the writer thread may wait for a request before the active
    /// segment reaches its age limit (`None`: no limit), sealing it first
    /// if it already has.
    fn age_wait(&mut self) -> Option<Duration> {
        loop {
            match (self.shared.config.segment_age, self.active.first_created_at) {
                (Some(age), Some(first)) if !self.shared.is_poisoned() => {
                    let deadline = first.saturating_add(age.as_nanos() as u64);
                    let now = self.shared.config.clock.now_nanos();
                    if now >= deadline {
                        if let Err(e) = self.roll() {
                            self.shared.poison("roll segment", &e);
                        }
                        continue;
                    }
                    return Some(Duration::from_nanos(deadline - now).min(AGE_POLL));
                }
                // An inline commit may start the segment's clock while this
                // thread waits: look again within the poll period.
                (Some(_), _) => return Some(AGE_POLL),
                _ => return None,
            }
        }
    }

    fn write_group(&mut self, group: Vec<Request>) {
        if let Some(cause) = self.shared.poison_cause() {
            fail_all(group.into_iter().map(|r| r.reply), || Error::Poisoned {
                cause: cause.clone(),
            });
            return;
        }
        let encoded: u64 = group.iter().map(|r| r.encoded_len() as u64).sum();
        let segment_size = self.shared.config.segment_size;
        if self.active.records > 0 && self.active.end + encoded > segment_size {
            if let Err(e) = self.roll() {
                let cause = self.shared.poison("roll segment", &e);
                fail_all(group.into_iter().map(|r| r.reply), || replicate(&e, &cause));
                return;
            }
        }

        // Assign seq and created_at, extend the chain, encode.
        let config = &self.shared.config;
        let durable_through = u32::try_from(self.shared.synced_end.load(Ordering::Acquire))
            .expect("segment offsets fit in 32 bits");
        self.buf.clear();
        let mut live = self.active.live.read().clone_tail();
        let mut waiters = Vec::with_capacity(group.len());
        for req in group {
            // One reading of the clock per request: a batch's records share
            // a time (the chain needs created_at never to decrease, not to
            // differ); separate requests get separate readings.
            let now = config.clock.now_nanos();
            let mut receipts = Vec::with_capacity(req.lens.len());
            let mut at = 0usize;
            for &len in &req.lens {
                let payload = &req.data[at..at + len as usize];
                at += len as usize;
                let created_at = now.max(self.chain.last_created_at);
                let seq = self.chain.next_seq;
                let hash = chain::step(&self.chain.prev_hash, seq, created_at, req.kind, payload);
                let pos = self.active.end + self.buf.len() as u64;
                live.observe(
                    (seq - self.active.first_seq) as u32,
                    pos,
                    created_at,
                    config.index_interval,
                );
                record::encode(
                    &mut self.buf,
                    seq,
                    created_at,
                    req.kind,
                    durable_through,
                    payload,
                    &hash,
                );
                self.chain = ChainState {
                    next_seq: seq + 1,
                    prev_hash: hash,
                    last_created_at: created_at,
                };
                self.active.first_created_at.get_or_insert(created_at);
                receipts.push(Receipt {
                    seq,
                    created_at,
                    hash,
                });
            }
            waiters.push(Waiter {
                reply: req.reply,
                receipts,
            });
        }
        let count: u64 = waiters.iter().map(|w| w.receipts.len() as u64).sum();
        // Right before the bytes go to disk: they decode, CRC by CRC, to the
        // records just assigned (debug builds only: it decodes the group).
        debug_assert_eq!(
            decode_receipts(&self.buf),
            Ok(waiters
                .iter()
                .flat_map(|w| w.receipts.iter().copied())
                .collect::<Vec<_>>()),
            "the group about to be written does not decode to the seqs and hashes the writer assigned"
        );

        // One write for the whole group.
        if let Err(e) = write_all_at(&*self.active.file, &self.buf, self.active.end) {
            let e = Error::io("write", &self.active.path, e);
            let cause = self.shared.poison("write group", &e);
            fail_all(waiters.into_iter().map(|w| w.reply), || {
                replicate(&e, &cause)
            });
            return;
        }
        self.shared.stats.writes.fetch_add(1, Ordering::Relaxed);
        self.shared
            .stats
            .bytes
            .fetch_add(self.buf.len() as u64, Ordering::Relaxed);
        self.active.end += self.buf.len() as u64;
        self.active.records += count;
        self.active.live.write().append_tail(live);
        let group = Group {
            file: self.active.file.clone(),
            path: self.active.path.clone(),
            end: self.active.end,
            chain: self.chain,
            levels: self.active.levels.clone(),
            waiters,
        };
        // Light load: nothing else waiting to be written and the syncer
        // idle. Sync here rather than wake the syncer: one thread handoff
        // fewer per append. `sync_jobs` counts jobs sent and not yet
        // completed (acknowledged, head published); only this thread sends
        // jobs, so at zero the syncer stays idle meanwhile, and this sync
        // covers everything written.
        // Light load means every append in flight is in this group: with
        // more appenders about, the syncer's group formation does better.
        // And it was last time: when appenders come back in a cohort, the
        // first to arrive is alone for a moment, and syncing it by itself
        // would split the cohort in two.
        if self.shared.alone(group.waiters.len()) && self.rx.is_empty() {
            complete(&self.shared, vec![group]);
            return;
        }
        let job = SyncJob::Group(group);
        self.shared.sync_jobs.fetch_add(1, Ordering::AcqRel);
        if let Err(SendError(SyncJob::Group(g))) = self.sync_tx.send(job) {
            fail_all(g.waiters.into_iter().map(|w| w.reply), || Error::Closed);
        }
    }

    /// Seals the active segment and starts the next one.
    fn roll(&mut self) -> Result<()> {
        // 1. Wait until the syncer has completed every group written to the
        //    active segment: sealing needs all of its records durable, and
        //    no acknowledgement may refer to a segment being sealed.
        let (tx, rx) = bounded(1);
        self.shared.sync_jobs.fetch_add(1, Ordering::AcqRel);
        if self.sync_tx.send(SyncJob::Barrier(tx)).is_ok() {
            let _ = rx.recv();
        }
        if let Some(cause) = self.shared.poison_cause() {
            return Err(Error::Poisoned { cause });
        }
        let shared = self.shared.clone();
        let storage = &*shared.storage;
        let a = &self.active;
        let live = a.live.read().clone();
        // Every group was completed (the barrier above): the tree holds
        // every record of the segment.
        let tree = shared.tree.lock().clone();
        assert_eq!(
            tree.size(),
            self.chain.next_seq,
            "the tree sealed with a segment holds its records"
        );
        let footer = Footer {
            first_seq: a.first_seq,
            last_seq: self.chain.next_seq - 1,
            record_count: a.records,
            records_end: a.end,
            first_created_at: a.first_created_at.unwrap_or(self.chain.last_created_at),
            last_created_at: self.chain.last_created_at,
            sealed_at: shared.config.clock.now_nanos(),
            last_hash: self.chain.prev_hash,
            merkle_root: tree.root(),
            signature: [0; 64],
        };
        let sealed_first_created_at = footer.first_created_at;
        // 2. Seal: footer, sync, index files, read-only, directory sync.
        segment::seal_segment(
            storage,
            &shared.dir,
            &a.path,
            &*a.file,
            &footer,
            &live,
            &tree,
            &a.levels.read(),
        )?;
        let index = segment::load_sealed_index(storage, &shared.dir, &footer)?
            .unwrap_or_else(|| SegmentIndex::Live(Arc::new(RwLock::new(live))));
        // The level nodes just written are loaded from their file (mapped)
        // when a proof first needs them: the writer's memory holds the
        // active segment's only.
        let sealed = Arc::new(Segment {
            first_seq: a.first_seq,
            path: a.path.clone(),
            file: a.file.clone(),
            index,
            levels: SegmentLevels::Sealed(SealedLevels::new(a.tree_start.clone())),
            footer: Some(footer),
        });
        // 3. Create the next segment: header durable under its final name,
        //    and the directory synced, before any record in it is written.
        let header = SegmentHeader {
            log_id: shared.log_id,
            first_seq: self.chain.next_seq,
            created_at: shared.config.clock.now_nanos(),
            prev_hash: self.chain.prev_hash,
        };
        // The segment just sealed filled fast: the next one is plain (with
        // the background pre-writer, the one after next: a spare already
        // ready is used, and no other is asked for).
        let filled_in = header.created_at.saturating_sub(sealed_first_created_at);
        let fast = shared
            .config
            .prewrite_min_fill
            .is_some_and(|min| u128::from(filled_in) < min.as_nanos());
        let spare = if fast && shared.config.prewrite_inline {
            None
        } else if shared.config.prewrite_segments && shared.config.prewrite_inline {
            let len = shared.config.segment_size;
            match segment::prepare_spare(storage, &shared.dir, len, &|| false) {
                Ok(spare) => spare,
                Err(_) => {
                    shared.stats.spares_failed.fetch_add(1, Ordering::Relaxed);
                    None
                }
            }
        } else {
            self.prewriter.as_ref().and_then(Prewriter::take)
        };
        if spare.is_some() {
            shared
                .stats
                .segments_prewritten
                .fetch_add(1, Ordering::Relaxed);
        }
        let (path, _) = segment::create_segment(storage, &shared.dir, &header, spare)?;
        if let Some(p) = &self.prewriter {
            p.after_roll(!fast);
        }
        let file = storage
            .open_write(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        let (segment, live, levels) = active_segment(
            header.first_seq,
            &path,
            &file,
            LiveIndex::default(),
            LevelNodes::new(header.first_seq, shared.config.tree_min_level),
        );
        {
            let mut segs = shared.segments.write();
            let last = segs.len() - 1;
            segs[last] = sealed;
            segs.push(segment);
        }
        shared
            .synced_end
            .store(HEADER_LEN as u64, Ordering::Release);
        shared.stats.segments_sealed.fetch_add(1, Ordering::Relaxed);
        self.active = Active {
            first_seq: header.first_seq,
            path,
            file,
            end: HEADER_LEN as u64,
            records: 0,
            first_created_at: None,
            live,
            tree_start: tree,
            levels,
        };
        Ok(())
    }
}

/// The jobs the syncer handles with one sync.
#[derive(Default)]
struct Batch {
    jobs: usize,
    groups: Vec<Group>,
    /// Appends waiting in `groups`.
    waiting: usize,
    /// A barrier ends the batch: it is answered after the batch's sync.
    barrier: Option<Sender<()>>,
}

impl Batch {
    fn take(&mut self, job: SyncJob) {
        self.jobs += 1;
        match job {
            SyncJob::Group(g) => {
                self.waiting += g.waiters.len();
                self.groups.push(g);
            }
            SyncJob::Barrier(b) => self.barrier = Some(b),
        }
    }
}

fn syncer_loop(shared: &Shared, rx: &Receiver<SyncJob>) {
    // Group formation. Appenders acknowledged by one sync come back with
    // their next append a few tens of microseconds later; if the next sync
    // starts at once it covers only those who arrived while the last one
    // ran, and the appenders split into cohorts that never share a sync
    // again. So before a sync, wait a little for as many appends as were in
    // flight at the last acknowledgement (`target`), at most as long as the
    // last sync took (a quarter of it left 16 closed-loop appenders at 12.7
    // per sync on this machine; the whole of it gathers all 16:
    // docs/benchmarks.md). With one appender, target is 1: no wait.
    let mut target = 1usize;
    let mut max_wait = Duration::ZERO;
    while let Ok(job) = rx.recv() {
        let mut batch = Batch::default();
        batch.take(job);
        // Everything already written is covered by the sync about to start.
        while batch.barrier.is_none() {
            match rx.try_recv() {
                Ok(job) => batch.take(job),
                Err(_) => break,
            }
        }
        if batch.barrier.is_none() && batch.waiting < target && !max_wait.is_zero() {
            let deadline = Instant::now() + max_wait;
            while batch.waiting < target && batch.barrier.is_none() {
                match rx.recv_deadline(deadline) {
                    Ok(job) => batch.take(job),
                    Err(_) => break,
                }
            }
        }
        let Batch {
            jobs,
            groups,
            barrier,
            ..
        } = batch;
        if !groups.is_empty() {
            let started = Instant::now();
            let in_flight = complete(shared, groups);
            target = in_flight.max(1);
            max_wait = started.elapsed().min(MAX_GROUP_WAIT);
        }
        if let Some(b) = barrier {
            let _ = b.send(());
        }
        shared.sync_jobs.fetch_sub(jobs, Ordering::AcqRel);
    }
}

/// Syncs once for all `groups` (all in one segment, in write order) and
/// acknowledges them, or fails them all. Returns the number of appends in
/// flight (queued, being written, or being acknowledged) just before the
/// acknowledgements were sent.
fn complete(shared: &Shared, groups: Vec<Group>) -> usize {
    let waiters = || groups.iter().flat_map(|g| g.waiters.iter());
    let replies = |groups: Vec<Group>| {
        groups
            .into_iter()
            .flat_map(|g| g.waiters.into_iter().map(|w| w.reply))
    };
    if let Some(cause) = shared.poison_cause() {
        fail_all(replies(groups), || Error::Poisoned {
            cause: cause.clone(),
        });
        return 0;
    }
    let last = groups.last().expect("at least one group");
    let mut sync_time = None;
    if shared.config.durability == Durability::SyncEveryGroup {
        let started = Instant::now();
        let synced = last.file.sync_data();
        sync_time = Some(started.elapsed());
        if let Err(e) = synced {
            // Never retry: after a failed fdatasync the kernel may have
            // dropped the dirty pages, so a later success proves nothing.
            let e = Error::io("fdatasync", &last.path, e);
            let cause = shared.poison("sync group", &e);
            fail_all(replies(groups), || replicate(&e, &cause));
            return 0;
        }
        shared.stats.syncs.fetch_add(1, Ordering::Relaxed);
        shared.synced_end.store(last.end, Ordering::Release);
    }
    // Publish the head before acknowledging, so that a reader who saw the
    // receipt finds the record. Groups complete in write order (the writer
    // syncs inline only when no job is outstanding), so the head only moves
    // forward; if it would not, the log is poisoned and nothing acknowledged.
    // The Merkle tree grows here, off the writer's path (the writer goes
    // on forming the next group meanwhile); groups complete in write order,
    // so it takes every record in seq order.
    // The upper nodes the records complete join their segment's levels
    // before the head moves (a proof reads only durable records' nodes).
    let min_level = shared.config.tree_min_level;
    let head = {
        let mut tree = shared.tree.lock();
        for g in &groups {
            let mut levels = None;
            for r in g.waiters.iter().flat_map(|w| w.receipts.iter()) {
                tree.push_with(merkle::leaf_hash(&r.hash), |level, index, h| {
                    if level >= min_level {
                        levels
                            .get_or_insert_with(|| g.levels.write())
                            .record(level, index, h);
                    }
                });
            }
        }
        HeadState {
            next_seq: last.chain.next_seq,
            last_hash: last.chain.prev_hash,
            last_created_at: last.chain.last_created_at,
            tree_root: tree.root(),
        }
    };
    if let Err(e) = shared.publish_head(head) {
        let cause = shared.poison("publish head", &e);
        fail_all(replies(groups), || replicate(&e, &cause));
        return 0;
    }
    if let Some(o) = &shared.config.observer {
        let records = waiters().map(|w| w.receipts.len() as u64).sum();
        o.on_durable(head.next_seq, records, sync_time);
    }
    let in_flight = shared.in_flight.load(Ordering::Acquire);
    shared.acked_in_flight.store(in_flight, Ordering::Release);
    for g in groups {
        shared.stats.appends.fetch_add(
            g.waiters.iter().map(|w| w.receipts.len() as u64).sum(),
            Ordering::Relaxed,
        );
        for w in g.waiters {
            w.reply.call(Ok(w.receipts));
        }
    }
    in_flight
}

/// The receipts that the records encoded back to back in `group` decode to,
/// checking each one's CRC and fields; for the check before a group is
/// written.
fn decode_receipts(group: &[u8]) -> std::result::Result<Vec<Receipt>, CorruptionKind> {
    let mut receipts = Vec::new();
    let mut at = 0;
    while at < group.len() {
        match record::decode(&group[at..], record::MAX_PAYLOAD_LEN)? {
            record::Decoded::Record(r) => {
                receipts.push(Receipt {
                    seq: r.seq,
                    created_at: r.created_at,
                    hash: r.hash,
                });
                at += r.encoded_len();
            }
            record::Decoded::Incomplete { needed } => {
                return Err(CorruptionKind::Truncated {
                    what: Structure::Record,
                    needed: needed as u64,
                    available: (group.len() - at) as u64,
                })
            }
        }
    }
    Ok(receipts)
}

fn fail_all(replies: impl Iterator<Item = Completion>, err: impl Fn() -> Error) {
    for r in replies {
        r.call(Err(err()));
    }
}

/// A copy of an error for each waiter of a failed group: the error itself
/// where it can be copied, else the poisoning it caused (`cause`).
fn replicate(e: &Error, cause: &PoisonCause) -> Error {
    match e {
        Error::Io { op, path, source } => Error::Io {
            op,
            path: path.clone(),
            source: match source.raw_os_error() {
                Some(code) => io::Error::from_raw_os_error(code),
                None => io::Error::new(source.kind(), source.to_string()),
            },
        },
        &Error::HeadMovedBackwards {
            head_next_seq,
            group_next_seq,
        } => Error::HeadMovedBackwards {
            head_next_seq,
            group_next_seq,
        },
        _ => Error::Poisoned {
            cause: cause.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_decodes_to_its_receipts_and_damage_is_caught() {
        let first = chain::step(&[0; 32], 7, 100, 1, b"a");
        let second = chain::step(&first, 8, 100, 1, b"bc");
        let mut group = Vec::new();
        record::encode(&mut group, 7, 100, 1, 128, b"a", &first);
        record::encode(&mut group, 8, 100, 1, 128, b"bc", &second);
        let receipt = |seq, hash| Receipt {
            seq,
            created_at: 100,
            hash,
        };
        assert_eq!(
            decode_receipts(&group),
            Ok(vec![receipt(7, first), receipt(8, second)])
        );

        let mut flipped = group.clone();
        flipped[RECORD_OVERHEAD + 1 + 40] ^= 1;
        assert!(
            matches!(
                decode_receipts(&flipped),
                Err(CorruptionKind::ChecksumMismatch { .. })
            ),
            "{:?}",
            decode_receipts(&flipped)
        );
        assert_eq!(
            decode_receipts(&group[..group.len() - 1]),
            Err(CorruptionKind::Truncated {
                what: Structure::Record,
                needed: (RECORD_OVERHEAD + 2) as u64,
                available: (RECORD_OVERHEAD + 1) as u64,
            })
        );
    }
}
