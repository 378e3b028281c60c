//! The query index and unknown-action counts following the log.

use std::sync::atomic::Ordering;
use std::sync::Weak;
use std::time::Duration;

use engine::Record;
use parking_lot::MutexGuard;
use proto::event::EventRef;

use super::LogState;
use crate::dedup::{self, KeyKind};

/// Records the indexer takes per step.
const INDEX_CHUNK: u64 = 1 << 14;

impl LogState {
    /// Indexes every durable event not yet indexed; at start, also refills
    /// the dedup window.
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
        let now = self.now_nanos();
        loop {
            let from = self.index.indexed();
            let head = self.log.head().map_or(0, |h| h.seq + 1);
            if from >= head {
                return Ok(());
            }
            let to = head.min(from + INDEX_CHUNK);
            let records = self
                .log
                .scan(from..to)
                .collect::<Result<Vec<Record>, _>>()?;
            // Under the catch-up lock, which a schema change takes too: the
            // whole chunk is counted under one schema.
            let schema = self.schema();
            let mut entries = Vec::with_capacity(records.len());
            for r in &records {
                match EventRef::decode(&r.payload) {
                    Ok(e) => {
                        if schema.counts_as_unknown(e.action) {
                            self.unknown.count(e.action, r.created_at);
                        }
                        if starting {
                            for (kind, v) in [
                                (KeyKind::Idempotency, e.idempotency_key),
                                (KeyKind::SourceEvent, e.source_event_id),
                            ] {
                                if !v.is_empty() {
                                    let k = dedup::key(kind, e.tenant_id, v);
                                    self.dedup.insert_stored(k, r.seq, r.created_at, now);
                                }
                            }
                        }
                        entries.push((r.seq, e.tenant_id, e.occurred_at));
                    }
                    Err(err) => {
                        tracing::warn!(log = %self.config.name, seq = r.seq, error = %err, "stored record is not an event");
                        entries.push((r.seq, "", r.created_at));
                    }
                }
            }
            self.index.add(entries);
        }
    }

    /// Brings the index up to the head, so that blocks can be skipped.
    pub(super) fn refresh_index(&self) {
        if self.index.indexed() < self.head_next() {
            if let Err(e) = self.catch_up(false) {
                tracing::warn!(log = %self.config.name, error = %e, "index catch-up failed");
            }
        }
    }
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
