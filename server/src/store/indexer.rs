//! The event indexes and unknown-action counts following the log.
//!
//! At start, every sealed segment's index file is opened and checked (and
//! rebuilt from the segment's records when it is missing or does not
//! check), the unknown-action counts are summed from the files' action
//! tables, and only the active segment's records are read. While the log
//! grows, new events are added to the active segment's index in memory;
//! when a segment is sealed, its index is written beside it and read from
//! the file from then on.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use engine::{Record, SealedSegment};
use parking_lot::{MutexGuard, RwLock};
use proto::event::EventRef;
use proto::msg::ErrorReply;

use super::{engine_error, LogState};
use crate::dedup::KeyKind;
use crate::evindex::{self, Builder, SealedIndex, SegmentIndex};
use crate::schema::{Schema, Tally};

/// Records the indexer takes per step.
const INDEX_CHUNK: u64 = 1 << 14;

/// A log's event indexes: one per sealed segment, and the active one's.
#[derive(Debug)]
pub struct EventIndexes {
    sealed: RwLock<Arc<Vec<Arc<SealedIndex>>>>,
    active: RwLock<Builder>,
}

impl Default for EventIndexes {
    fn default() -> Self {
        EventIndexes {
            sealed: RwLock::new(Arc::new(Vec::new())),
            active: RwLock::new(Builder::new(0)),
        }
    }
}

impl EventIndexes {
    /// Events below this seq are indexed.
    pub fn indexed(&self) -> u64 {
        self.active.read().next_seq()
    }

    /// The sealed segments' indexes, in seq order.
    pub fn sealed(&self) -> Arc<Vec<Arc<SealedIndex>>> {
        self.sealed.read().clone()
    }

    /// The sealed indexes, where the active one begins, and how far it
    /// has got, at one moment.
    pub fn snapshot(&self) -> (Arc<Vec<Arc<SealedIndex>>>, u64, u64) {
        let active = self.active.read();
        (self.sealed(), active.first_seq(), active.next_seq())
    }

    /// Runs `f` on the active segment's index.
    pub fn with_active<T>(&self, f: impl FnOnce(&Builder) -> T) -> T {
        f(&self.active.read())
    }

    /// The unknown actions of every indexed event under `schema`.
    pub fn unknown_under(&self, schema: &Schema) -> Tally {
        let mut tally = Tally::default();
        let mut add = |t: Tally| {
            for (action, seen) in t.sorted_seen() {
                if schema.counts_as_unknown(&action) {
                    tally.add_seen(&action, seen);
                }
            }
        };
        for s in self.sealed().iter() {
            add(s.actions());
        }
        add(self.with_active(|b| b.actions()));
        tally
    }
}

impl LogState {
    /// Indexes every durable event not yet indexed; at start, first opens
    /// (or rebuilds) the sealed segments' index files and counts their
    /// unknown actions.
    pub(super) fn catch_up(&self, starting: bool) -> Result<(), engine::Error> {
        let held = self.catch_up.lock();
        self.catch_up_locked(&held, starting)
    }

    /// [`catch_up`](Self::catch_up), for a caller holding the catch-up
    /// lock (`_held`).
    pub(super) fn catch_up_locked(
        &self,
        _held: &MutexGuard<'_, ()>,
        starting: bool,
    ) -> Result<(), engine::Error> {
        if starting {
            self.open_sealed_indexes()?;
        }
        loop {
            // The head first, then the sealed list: if the active index's
            // segment was rolled before the head was read, the list shows
            // it sealed; if it does not, every record below the head is in
            // that segment.
            let head = self.head_next();
            let (first, from) = self.events.with_active(|b| (b.first_seq(), b.next_seq()));
            let sealed = self
                .log
                .sealed_segments()
                .into_iter()
                .find(|s| s.first_seq == first);
            if let Some(s) = sealed.as_ref().filter(|s| s.end_seq == from) {
                self.seal_active(s);
                continue;
            }
            if from >= head {
                return Ok(());
            }
            let end = sealed.as_ref().map_or(head, |s| s.end_seq.min(head));
            let to = end.min(from + INDEX_CHUNK);
            let records = self
                .log
                .scan(from..to)
                .collect::<Result<Vec<Record>, _>>()?;
            // Under the catch-up lock, which a schema change takes too: the
            // whole chunk is counted under one schema.
            let schema = self.schema();
            {
                let mut active = self.events.active.write();
                for r in &records {
                    let e = EventRef::decode(&r.payload);
                    match &e {
                        Ok(e) => {
                            if schema.counts_as_unknown(e.action) {
                                self.unknown.count(e.action, r.created_at);
                            }
                        }
                        Err(err) => {
                            tracing::warn!(log = %self.config.name, seq = r.seq, error = %err, "stored record is not an event");
                        }
                    }
                    active.add(r.seq, r.created_at, e.as_ref().ok());
                }
            }
            // Keys now in the index are found there: the dedup table lets
            // them go.
            self.dedup.forget_below(to);
        }
    }

    /// The active segment's index is complete for the sealed segment `s`:
    /// written beside it and put in the list, and a new active one begun.
    fn seal_active(&self, s: &SealedSegment) {
        let bytes = self
            .events
            .with_active(|b| evindex::encode(b, &s.last_hash));
        let index = self.publish_index(s, bytes);
        // Both at once, under the active index's lock: a view (see
        // `EventIndexes::snapshot`) sees the builder or the file, never
        // neither, and a lookup that read the builder before finds the file
        // after.
        let mut active = self.events.active.write();
        let mut sealed = self.events.sealed.write();
        let mut list = (**sealed).clone();
        list.push(Arc::new(index));
        *sealed = Arc::new(list);
        *active = Builder::new(s.end_seq);
    }

    /// Writes `bytes`, the index of `s`, beside it and maps the file; if it
    /// cannot be written or mapped, keeps the bytes in memory (and the next
    /// start tries again).
    fn publish_index(&self, s: &SealedSegment, bytes: Vec<u8>) -> SealedIndex {
        let path = evindex::file_path(&s.path);
        let written = write_file(&path, &bytes)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                SealedIndex::open(&path, s.first_seq, s.end_seq, &s.last_hash)
                    .map_err(|e| e.to_string())
            });
        match written {
            Ok(index) => index,
            Err(e) => {
                tracing::warn!(log = %self.config.name, file = %path.display(), error = %e, "cannot write an event index file; keeping it in memory");
                SealedIndex::from_bytes(bytes, s.first_seq, s.end_seq, &s.last_hash)
                    .expect("bytes just encoded check")
            }
        }
    }

    /// At start: the sealed segments' index files, each checked (and
    /// rebuilt from its records when it is missing or does not check), and
    /// their unknown-action counts.
    fn open_sealed_indexes(&self) -> Result<(), engine::Error> {
        let schema = self.schema();
        let mut list = Vec::new();
        let mut unknown = Tally::default();
        let mut next = 0u64;
        for s in self.log.sealed_segments() {
            let path = evindex::file_path(&s.path);
            let index = match SealedIndex::open(&path, s.first_seq, s.end_seq, &s.last_hash) {
                Ok(i) => i,
                Err(why) => {
                    if why != evindex::FileError::Missing {
                        tracing::warn!(log = %self.config.name, file = %path.display(), reason = %why, "event index file does not check; rebuilding it");
                    }
                    self.metrics.index_rebuilds.fetch_add(1, Ordering::Relaxed);
                    let mut b = Builder::new(s.first_seq);
                    for r in self.log.scan(s.first_seq..s.end_seq) {
                        let r = r?;
                        b.add(
                            r.seq,
                            r.created_at,
                            EventRef::decode(&r.payload).ok().as_ref(),
                        );
                    }
                    self.publish_index(&s, evindex::encode(&b, &s.last_hash))
                }
            };
            for (action, seen) in index.actions().sorted_seen() {
                if schema.counts_as_unknown(&action) {
                    unknown.add_seen(&action, seen);
                }
            }
            next = s.end_seq;
            list.push(Arc::new(index));
        }
        self.unknown.add_tally(unknown);
        *self.events.sealed.write() = Arc::new(list);
        *self.events.active.write() = Builder::new(next);
        Ok(())
    }

    /// The newest indexed event whose `kind` key in `tenant` is `value`:
    /// its seq and `created_at`. Looked up in the active segment's index,
    /// then the sealed ones' newest first; a hit is read and checked
    /// against the record.
    pub(super) fn find_key(
        &self,
        kind: KeyKind,
        tenant: &str,
        value: &str,
    ) -> Result<Option<(u64, u64)>, ErrorReply> {
        let t = match kind {
            KeyKind::Idempotency => evindex::term(evindex::Kind::Idempotency, &[tenant, value]),
            KeyKind::SourceEvent => evindex::term(evindex::Kind::SourceEvent, &[tenant, value]),
        };
        // The active one first: a segment sealed meanwhile is in the
        // sealed list before the active index is replaced.
        let (first, active) = self.events.with_active(|b| (b.first_seq(), b.postings(&t)));
        let mut segments = vec![(first, active)];
        for s in self.events.sealed().iter().rev() {
            segments.push((s.first_seq(), s.postings(&t)));
        }
        for (first, offs) in segments {
            for &o in offs.iter().rev() {
                let seq = first + u64::from(o);
                let rec = self.log.read(seq).map_err(|e| engine_error(&e))?;
                let Ok(e) = EventRef::decode(&rec.payload) else {
                    continue;
                };
                let stored = match kind {
                    KeyKind::Idempotency => e.idempotency_key,
                    KeyKind::SourceEvent => e.source_event_id,
                };
                if e.tenant_id == tenant && stored == value {
                    return Ok(Some((seq, rec.created_at)));
                }
            }
        }
        Ok(None)
    }

    /// Brings the index up to the head, so that queries see every durable
    /// event.
    pub(super) fn refresh_index(&self) {
        if self.events.indexed() < self.head_next() {
            if let Err(e) = self.catch_up(false) {
                tracing::warn!(log = %self.config.name, error = %e, "index catch-up failed");
            }
        }
    }
}

/// Writes `bytes` to `path` by way of a temporary file renamed over it.
/// Not synced: a file a crash tore fails its check at the next open and is
/// rebuilt.
fn write_file(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

pub(super) fn follow(state: &Weak<LogState>) {
    loop {
        let Some(s) = state.upgrade() else { return };
        if s.stopping.load(Ordering::Acquire) {
            return;
        }
        let seen = s.signal.generation();
        if let Err(e) = s.catch_up(false) {
            tracing::warn!(log = %s.config.name, error = %e, "indexing failed; retrying");
        }
        let signal = s.signal.clone();
        drop(s);
        // Batch the work: wake at most every INDEX_PERIOD, not on every
        // sync (queries catch the index up themselves when they need it).
        std::thread::sleep(INDEX_PERIOD);
        signal.wait_past(seen, Duration::from_millis(500));
    }
}

/// How often the indexer follows the log under load.
const INDEX_PERIOD: Duration = Duration::from_millis(50);
