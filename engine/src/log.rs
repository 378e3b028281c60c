//! The log: a directory of segments, opened with recovery, appended to by
//! one writer, read by many.

use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::config::Config;
use crate::error::{Corruption, CorruptionKind, Error, Result};
use crate::format::header::HEADER_LEN;
use crate::format::record::{Record, KIND_DATA};
use crate::format::{Hash, LogId, Structure};
use crate::handoff::{bounded, Sender, TrySendError};
use crate::recovery::{self, RecoveryReport};
use crate::segment::{Cursor, Segment};
use crate::shared::{Completion, HeadState, Receipt, Shared};
use crate::storage::{FsStorage, Storage};
use crate::writer::{self, Request, WriterHandles};

/// A sealed segment: its records `first_seq..end_seq`, the hash of its
/// last record, and its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedSegment {
    /// The seq of its first record.
    pub first_seq: u64,
    /// The seq after its last record.
    pub end_seq: u64,
    /// The hash of its last record (from its footer).
    pub last_hash: Hash,
    /// Its file.
    pub path: PathBuf,
}

/// The newest durable record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Its sequence number.
    pub seq: u64,
    /// Its chain hash.
    pub hash: Hash,
    /// Its `created_at`.
    pub created_at: u64,
    /// The root of the log's Merkle tree over records `0..=seq` (tree size
    /// `seq + 1`; each leaf is a record's chain hash, see docs/format.md).
    pub tree_root: Hash,
}

/// Counters of the write path (and of the derived files the read path
/// rebuilds) since the log was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Records acknowledged.
    pub appends: u64,
    /// Group writes (one system call each).
    pub writes: u64,
    /// `fdatasync` calls that acknowledged groups.
    pub syncs: u64,
    /// Record bytes written.
    pub bytes: u64,
    /// Segments sealed.
    pub segments_sealed: u64,
    /// Segments started in a pre-written file (`prewrite_segments`).
    pub segments_prewritten: u64,
    /// Spares the pre-writer failed to prepare (each removed again, and
    /// the next segment created as a plain file).
    pub spares_failed: u64,
    /// Sealed segments' level files that a root or proof rebuilt from the
    /// records: missing, invalid, or holding a node the records do not
    /// give.
    pub level_files_rebuilt: u64,
}

/// A hash-chained, append-only log in a directory.
///
/// `Log` is `Send + Sync`: share it (for example in an `Arc`) and append
/// from many threads; their appends share `fdatasync` calls.
#[derive(Debug)]
pub struct Log {
    /// Held for the log's lifetime: the directory's lock.
    _lock: crate::storage::DirLock,
    shared: Arc<Shared>,
    tx: Option<Sender<Request>>,
    writer: Option<WriterHandles>,
    report: RecoveryReport,
}

impl Log {
    /// Opens the log in `dir` on the real file system, creating it if the
    /// directory holds no segments.
    pub fn open(dir: impl AsRef<Path>, config: Config) -> Result<Log> {
        Log::open_with_storage(Arc::new(FsStorage), dir, config)
    }

    /// Opens the log in `dir` through the given storage.
    pub fn open_with_storage(
        storage: Arc<dyn Storage>,
        dir: impl AsRef<Path>,
        config: Config,
    ) -> Result<Log> {
        config.validate()?;
        let dir = dir.as_ref().to_path_buf();
        storage
            .create_dir_all(&dir)
            .map_err(|e| Error::io("create directory", &dir, e))?;
        // One process at a time: a second opener's recovery would cut the
        // first one's in-flight group as a torn tail.
        let lock = storage.lock_dir(&dir).map_err(|e| {
            if e.kind() == std::io::ErrorKind::WouldBlock {
                Error::Locked { dir: dir.clone() }
            } else {
                Error::io("lock", &dir, e)
            }
        })?;
        let rec = recovery::recover(&*storage, &dir, &config)?;
        let segments: Vec<Arc<Segment>> = rec.sealed.into_iter().map(Arc::new).collect();
        let synced_end = rec.active.end;
        let queue_depth = config.queue_depth;
        let head = HeadState {
            next_seq: rec.chain.next_seq,
            last_hash: rec.chain.prev_hash,
            last_created_at: rec.chain.last_created_at,
            tree_root: rec.tree.root(),
        };
        let shared = Arc::new(Shared::new(
            dir, storage, config, rec.log_id, segments, head, rec.tree, synced_end,
        ));
        if rec.report.spare_failed {
            shared.stats.spares_failed.fetch_add(1, Ordering::Relaxed);
        }
        let (tx, rx) = bounded(queue_depth);
        let handles = writer::start(shared.clone(), rec.active, rec.chain, rx)?;
        Ok(Log {
            _lock: lock,
            shared,
            tx: Some(tx),
            writer: Some(handles),
            report: rec.report,
        })
    }

    /// What recovery found and did when this log was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.report
    }

    /// The log's identity.
    pub fn log_id(&self) -> LogId {
        self.shared.log_id
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Appends one payload; returns once it is durable (per the configured
    /// [`Durability`](crate::Durability)).
    pub fn append(&self, payload: &[u8]) -> Result<Receipt> {
        let mut r = self.append_kind(KIND_DATA, &[payload])?;
        Ok(r.remove(0))
    }

    /// Appends payloads as consecutive records; returns once all are
    /// durable, with one receipt each. All or none are acknowledged.
    pub fn append_batch<P: AsRef<[u8]>>(&self, payloads: &[P]) -> Result<Vec<Receipt>> {
        self.append_kind(KIND_DATA, payloads)
    }

    /// Appends payloads with an explicit record kind (not 0).
    pub fn append_kind<P: AsRef<[u8]>>(&self, kind: u8, payloads: &[P]) -> Result<Vec<Receipt>> {
        self.submit_kind(kind, payloads)?.wait()
    }

    /// Queues payloads as consecutive records without waiting for them:
    /// the returned [`PendingAppend`] yields the receipts once the records
    /// are durable. A caller can keep many submissions in flight (a server
    /// pipelining one connection's requests); they complete in submission
    /// order. All or none of one submission's records are acknowledged.
    ///
    /// Fails at once, with nothing queued, if the batch is out of bounds,
    /// the log is poisoned or closed, or the queue is full
    /// ([`Error::Busy`]).
    pub fn submit_kind<P: AsRef<[u8]>>(&self, kind: u8, payloads: &[P]) -> Result<PendingAppend> {
        let (reply, rx) = bounded(1);
        self.submit_then(kind, payloads, move |r| {
            let _ = reply.send(r);
        })?;
        Ok(PendingAppend { rx })
    }

    /// Queues payloads as [`submit_kind`](Log::submit_kind) does, and calls
    /// `done` exactly once with the outcome: the receipts once the records
    /// are durable, or the error that failed them. `done` runs right after
    /// the covering `fdatasync`, on the log's writer or syncer thread, or
    /// (with [`Config::commit_inline`](crate::Config::commit_inline), when
    /// nothing else is in flight) on this thread before this call returns;
    /// so it must be quick, must not block, and must not wait for this
    /// call: hand the result on (a server queues the response for its
    /// connection). This
    /// saves the waiting thread that a [`PendingAppend`] needs, and its
    /// wake-up, on every append.
    ///
    /// Fails at once, without calling `done`, for the reasons
    /// [`submit_kind`](Log::submit_kind) does.
    pub fn submit_then<P, F>(&self, kind: u8, payloads: &[P], done: F) -> Result<()>
    where
        P: AsRef<[u8]>,
        F: FnOnce(Result<Vec<Receipt>>) + Send + 'static,
    {
        self.submit_with(kind, payloads, self.shared.config.commit_inline, done)
    }

    /// [`submit_then`](Log::submit_then), with the caller deciding whether
    /// this append may be committed on its thread when nothing else is in
    /// flight (`may_inline`; [`Config::commit_inline`](crate::Config::commit_inline)
    /// is not consulted). An event loop that serves many clients on a few
    /// threads knows better than the log whether its other clients are
    /// idle: while its thread syncs, it reads no one else's appends.
    pub fn submit_with<P, F>(
        &self,
        kind: u8,
        payloads: &[P],
        may_inline: bool,
        done: F,
    ) -> Result<()>
    where
        P: AsRef<[u8]>,
        F: FnOnce(Result<Vec<Receipt>>) + Send + 'static,
    {
        let config = &self.shared.config;
        if payloads.is_empty() {
            return Err(Error::InvalidArgument("empty batch".into()));
        }
        if kind == 0 {
            return Err(Error::InvalidArgument("record kind 0 is reserved".into()));
        }
        let mut total = 0usize;
        let mut encoded = 0usize;
        for p in payloads {
            let len = p.as_ref().len();
            if len > config.max_record_len {
                return Err(Error::RecordTooLarge {
                    len,
                    max: config.max_record_len,
                });
            }
            total += len;
            encoded += len + crate::format::record::RECORD_OVERHEAD;
        }
        // The bound is on bytes as stored, so that many empty payloads
        // cannot make a group of unbounded size.
        if encoded > config.max_batch_bytes {
            return Err(Error::BatchTooLarge {
                bytes: encoded,
                max: config.max_batch_bytes,
            });
        }
        if let Some(cause) = self.shared.poison_cause() {
            return Err(Error::Poisoned { cause });
        }
        let tx = self.tx.as_ref().ok_or(Error::Closed)?;
        let mut data = Vec::with_capacity(total);
        let mut lens = Vec::with_capacity(payloads.len());
        for p in payloads {
            data.extend_from_slice(p.as_ref());
            lens.push(p.as_ref().len() as u32);
        }
        let request = Request {
            kind,
            data,
            lens,
            reply: Completion::new(&self.shared, Box::new(done)),
        };
        let request = match &self.writer {
            Some(w) if may_inline => match writer::commit_inline(&self.shared, &w.state, request) {
                Ok(()) => return Ok(()),
                Err(r) => r,
            },
            _ => request,
        };
        match tx.try_send(request) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(r)) => {
                r.reply.defuse();
                Err(Error::Busy {
                    depth: config.queue_depth,
                })
            }
            Err(TrySendError::Disconnected(r)) => {
                r.reply.defuse();
                Err(Error::Closed)
            }
        }
    }

    /// The newest durable record, or `None` for an empty log.
    pub fn head(&self) -> Option<Head> {
        let h = *self.shared.head.read();
        (h.next_seq > 0).then(|| Head {
            seq: h.next_seq - 1,
            hash: h.last_hash,
            created_at: h.last_created_at,
            tree_root: h.tree_root,
        })
    }

    /// Write-path counters since open.
    pub fn stats(&self) -> Stats {
        let s = &self.shared.stats;
        Stats {
            appends: s.appends.load(Ordering::Relaxed),
            writes: s.writes.load(Ordering::Relaxed),
            syncs: s.syncs.load(Ordering::Relaxed),
            bytes: s.bytes.load(Ordering::Relaxed),
            segments_sealed: s.segments_sealed.load(Ordering::Relaxed),
            segments_prewritten: s.segments_prewritten.load(Ordering::Relaxed),
            spares_failed: s.spares_failed.load(Ordering::Relaxed),
            level_files_rebuilt: s.level_files_rebuilt.load(Ordering::Relaxed),
        }
    }

    /// Append requests queued for the writer (bounded by `queue_depth`).
    pub fn queue_len(&self) -> usize {
        self.tx.as_ref().map_or(0, Sender::len)
    }

    /// The sealed segments, in seq order: what each holds and where it
    /// is (for derived data kept beside them, such as the server's event
    /// indexes). The active segment is not among them.
    pub fn sealed_segments(&self) -> Vec<SealedSegment> {
        self.shared
            .segments
            .read()
            .iter()
            .filter_map(|s| {
                s.footer.as_ref().map(|f| SealedSegment {
                    first_seq: f.first_seq,
                    end_seq: f.last_seq + 1,
                    last_hash: f.last_hash,
                    path: s.path.clone(),
                })
            })
            .collect()
    }

    /// Segments in the log, the active one included.
    pub fn segment_count(&self) -> usize {
        self.shared.segments.read().len()
    }

    /// True once a write or sync has failed; appends then fail until the
    /// log is reopened.
    pub fn is_poisoned(&self) -> bool {
        self.shared.is_poisoned()
    }

    /// Reads the durable record `seq`.
    pub fn read(&self, seq: u64) -> Result<Record> {
        let next = self.shared.head.read().next_seq;
        if seq >= next {
            return Err(Error::NotFound {
                seq,
                head: next.checked_sub(1),
            });
        }
        let (_, rec) = locate(&self.shared, seq)?;
        Ok(rec)
    }

    /// The durable records in `range`, in seq order, crossing segments.
    /// The upper end is fixed when the scan starts: records appended later
    /// are not included.
    pub fn scan(&self, range: impl RangeBounds<u64>) -> Scan {
        let start = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&e) => e.saturating_add(1),
            Bound::Excluded(&e) => e,
            Bound::Unbounded => u64::MAX,
        };
        let head = self.shared.head.read().next_seq;
        Scan {
            shared: self.shared.clone(),
            next: start,
            end: end.min(head),
            cursor: None,
            done: false,
        }
    }

    /// The root of the Merkle tree over the first `size` durable records
    /// (any size from 0, the empty tree, to the durable head's `seq + 1`,
    /// whose root is [`Head::tree_root`]): what a checkpoint of that size
    /// signs. A past size's root is read from the stored tree and checked
    /// by a consistency proof to the head's root before it is returned.
    ///
    /// Fails with [`Error::TreeSizeBeyondDurable`] past the durable
    /// records, and with a corruption error
    /// ([`CorruptionKind::TreeProofRejected`]) if the stored tree and the
    /// records do not give the head's root even after the level files were
    /// rebuilt.
    pub fn tree_root_at(&self, size: u64) -> Result<Hash> {
        crate::prove::tree_root_at(&self.shared, &|a, b| self.chain_hashes(a, b), size)
    }

    /// The inclusion proof (RFC 9162 section 2.1.3) of record `seq` in the
    /// tree of the first `size` durable records: lowest sibling first, to
    /// check with [`merkle::verify_inclusion`](crate::merkle::verify_inclusion)
    /// against [`tree_root_at`](Log::tree_root_at)`(size)`, the leaf hash
    /// being `merkle::leaf_hash` of the record's chain hash. About
    /// `log2(size)` stored hashes, and the records of one or two aligned
    /// blocks of `2^tree_min_level` (64 by default), are read; the proof is
    /// verified before it is returned.
    ///
    /// Fails with [`Error::TreeSizeBeyondDurable`] for a size past the
    /// durable records and [`Error::InvalidTreeArguments`] unless
    /// `seq < size`; a proof that does not verify is never returned
    /// ([`CorruptionKind::TreeProofRejected`]).
    pub fn inclusion_proof(&self, seq: u64, size: u64) -> Result<Vec<Hash>> {
        crate::prove::inclusion_proof(&self.shared, &|a, b| self.chain_hashes(a, b), seq, size)
    }

    /// The consistency proof (RFC 9162 section 2.1.4) that the tree of the
    /// first `old` durable records is a prefix of the tree of the first
    /// `new`: empty when they are equal; to check with
    /// [`merkle::verify_consistency`](crate::merkle::verify_consistency)
    /// against the two sizes' [`tree_root_at`](Log::tree_root_at). Verified
    /// before it is returned.
    ///
    /// Fails with [`Error::TreeSizeBeyondDurable`] for a `new` past the
    /// durable records and [`Error::InvalidTreeArguments`] unless
    /// `0 < old <= new`.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>> {
        crate::prove::consistency_proof(&self.shared, &|a, b| self.chain_hashes(a, b), old, new)
    }

    /// The chain hashes of the durable records `[start, end)`: a proof's
    /// leaves, read through the sparse index.
    fn chain_hashes(&self, start: u64, end: u64) -> Result<Vec<Hash>> {
        let mut hashes = Vec::with_capacity(end.saturating_sub(start) as usize);
        for r in self.scan(start..end) {
            hashes.push(r?.hash);
        }
        if hashes.len() as u64 != end - start {
            let head = self.shared.head.read().next_seq.checked_sub(1);
            return Err(Error::NotFound {
                seq: start + hashes.len() as u64,
                head,
            });
        }
        Ok(hashes)
    }

    /// The seq of the first durable record whose `created_at` is at or
    /// after `t`, or `None` if every record is older.
    pub fn seek_time(&self, t: u64) -> Result<Option<u64>> {
        let head = *self.shared.head.read();
        if head.next_seq == 0 || head.last_created_at < t {
            return Ok(None);
        }
        let segments = self.shared.segments.read().clone();
        // The first segment whose last record is at or after t.
        let i = segments.partition_point(|s| match &s.footer {
            Some(f) => f.last_created_at < t,
            None => false,
        });
        let Some(seg) = segments.get(i) else {
            return Ok(None);
        };
        let hint = seg
            .index
            .time_before(t)
            .map(|e| (u64::from(e.pos), seg.first_seq + u64::from(e.rel_seq)));
        let found = find_in_segment(&self.shared, seg, hint, head.next_seq, |r| {
            r.created_at >= t
        })?;
        Ok(found.map(|(_, rec)| rec.seq))
    }

    /// Stops the writer after it has completed every append already queued.
    /// The active segment stays unsealed; the next open continues it.
    pub fn close(mut self) -> Result<()> {
        self.shutdown();
        Ok(())
    }

    fn shutdown(&mut self) {
        self.tx = None;
        if let Some(h) = self.writer.take() {
            let _ = h.writer.join();
        }
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A cursor at `pos` in `seg`, where the record `seq` starts.
fn segment_cursor(shared: &Shared, seg: &Segment, pos: u64, seq: u64) -> Cursor {
    let end = seg.footer.as_ref().map_or(u64::MAX, |f| f.records_end);
    Cursor::new(
        seg.file.clone(),
        seg.path.clone(),
        pos,
        seq,
        end,
        shared
            .config
            .max_record_len
            .max(crate::format::record::MAX_PAYLOAD_LEN),
    )
}

/// Finds the durable record `seq`: its segment, a cursor just after it, and
/// the record. The sparse index gives a starting point; if the record there
/// is not the one the entry names, the index is not trusted and the segment
/// is scanned from its first record.
fn locate(shared: &Shared, seq: u64) -> Result<(Cursor, Record)> {
    let seg = {
        let segs = shared.segments.read();
        let i = segs.partition_point(|s| s.first_seq <= seq);
        match i.checked_sub(1) {
            Some(i) => segs[i].clone(),
            None => {
                return Err(Error::NotFound {
                    seq,
                    head: shared.head.read().next_seq.checked_sub(1),
                })
            }
        }
    };
    let rel = u32::try_from(seq - seg.first_seq).map_err(|_| {
        Error::from(Corruption::new(
            &seg.path,
            0,
            Some(seq),
            CorruptionKind::BadField {
                what: Structure::Record,
                field: "seq",
                expected: "within 2^32 of the segment's first seq".into(),
                found: seq.to_string(),
            },
        ))
    })?;
    let hint = seg
        .index
        .offset_for(rel)
        .map(|e| (u64::from(e.pos), seg.first_seq + u64::from(e.rel_seq)));
    let next_seq = shared.head.read().next_seq;
    match find_in_segment(shared, &seg, hint, next_seq, |r| r.seq == seq)? {
        Some(found) => Ok(found),
        None => Err(Corruption::new(
            &seg.path,
            0,
            Some(seq),
            CorruptionKind::MissingSegment {
                expected_first_seq: seq,
                found: "no such record in the segment that should hold it".into(),
            },
        )
        .into()),
    }
}

/// Scans a segment for the first record that satisfies `stop`, before
/// `next_seq` (the durable end). Starts at the index's hint; if the record
/// there is not the one the entry names, or does not decode, the index is
/// not trusted and the scan restarts at the segment's first record.
/// Returns the record and a cursor positioned after it.
fn find_in_segment(
    shared: &Shared,
    seg: &Segment,
    hint: Option<(u64, u64)>,
    next_seq: u64,
    mut stop: impl FnMut(&Record) -> bool,
) -> Result<Option<(Cursor, Record)>> {
    let start = (HEADER_LEN as u64, seg.first_seq);
    if let Some(hint) = hint.filter(|&h| h != start) {
        if let Ok(found) = scan_segment(shared, seg, hint, next_seq, &mut stop) {
            return Ok(found);
        }
    }
    scan_segment(shared, seg, start, next_seq, &mut stop)
}

/// Reads `seg` from `(pos, seq)` until a record satisfies `stop` or the
/// durable end (`next_seq`); the cursor checks each record's seq.
fn scan_segment(
    shared: &Shared,
    seg: &Segment,
    (pos, seq): (u64, u64),
    next_seq: u64,
    stop: &mut impl FnMut(&Record) -> bool,
) -> Result<Option<(Cursor, Record)>> {
    let mut cursor = segment_cursor(shared, seg, pos, seq);
    for _ in seq..next_seq {
        let Some((_, rec)) = cursor.next_record()? else {
            return Ok(None);
        };
        if stop(&rec) {
            return Ok(Some((cursor, rec)));
        }
    }
    Ok(None)
}

/// Appends submitted with [`Log::submit_kind`] and not yet collected.
#[derive(Debug)]
#[must_use = "an append is acknowledged only through its PendingAppend"]
pub struct PendingAppend {
    rx: crate::handoff::Receiver<Result<Vec<Receipt>>>,
}

impl PendingAppend {
    /// Blocks until the records are durable (one receipt each, in order)
    /// or have failed.
    pub fn wait(self) -> Result<Vec<Receipt>> {
        self.rx.recv().map_err(|_| Error::Closed).and_then(|r| r)
    }
}

/// An iterator over durable records; see [`Log::scan`].
#[derive(Debug)]
pub struct Scan {
    shared: Arc<Shared>,
    next: u64,
    end: u64,
    cursor: Option<Cursor>,
    done: bool,
}

impl Iterator for Scan {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Result<Record>> {
        if self.done || self.next >= self.end {
            return None;
        }
        let step = match self.cursor.as_mut() {
            // The cursor checks that the record is `self.next`.
            Some(cursor) => cursor.next_record().map(|r| r.map(|(_, rec)| rec)),
            None => Ok(None),
        };
        let result = match step {
            Ok(Some(rec)) => Ok(rec),
            Ok(None) => match locate(&self.shared, self.next) {
                Ok((cursor, rec)) => {
                    self.cursor = Some(cursor);
                    Ok(rec)
                }
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        match result {
            Ok(rec) => {
                self.next += 1;
                Some(Ok(rec))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}
