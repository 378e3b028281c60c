//! One served log: the engine's `Log` and what the server keeps beside it
//! (schema, dedup window, query index, metrics), and the operations the
//! protocol offers on it, one file a concern:
//!
//! - [`append`]: validation, dedup admission, submission, settlement;
//! - `query`: queries, reads by seq, tail steps;
//! - `cursor`: the query cursor's format;
//! - `indexer`: the block index and unknown-action counts following the log;
//! - `proof`: inclusion and consistency proofs;
//! - `schema_change`: swapping a schema while appends run.
//!
//! Connections call in from the event loop's threads and the blocking pool.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use engine::{Config as EngineConfig, Log, WriteObserver};
use parking_lot::{Condvar, Mutex, RwLock};
use proto::msg::{ErrorCode, ErrorReply, LogStats};

use crate::checkpoints::Checkpoints;
use crate::config::LogConfig;
use crate::dedup::Dedup;
use crate::metrics::{LogGauges, LogMetrics};
use crate::schema::{Schema, UnknownActions};

pub mod append;
mod cursor;
mod indexer;
mod proof;
mod query;
mod schema_change;

#[cfg(test)]
mod model_tests;

pub use append::{KeyWait, Refused, Settled};
pub use indexer::EventIndexes;
pub use query::{PAGE_BYTES, SCAN_BUDGET};
pub use schema_change::SchemaChange;

/// A text field or the metadata over the log's limits, checked before an
/// event is encoded (the encoding bounds a text field at 65,535 bytes;
/// validation, later, at far less): the field and why.
pub fn oversized(
    e: &proto::event::EventRef<'_>,
    limits: &proto::Limits,
) -> Option<(&'static str, String)> {
    let over = |len: usize, limit: usize| format!("is {len} bytes, more than the limit of {limit}");
    for (name, v) in proto::event::TEXT_FIELDS.into_iter().zip(e.texts()) {
        if v.len() > limits.max_field_bytes {
            return Some((name, over(v.len(), limits.max_field_bytes)));
        }
    }
    if e.metadata.len() > limits.max_metadata_bytes {
        return Some((
            "metadata",
            over(e.metadata.len(), limits.max_metadata_bytes),
        ));
    }
    None
}

/// Wakes tailers and the indexer when the durable head moves: threads
/// wait on a condition variable, tasks on a watch channel.
#[derive(Debug)]
pub struct HeadSignal {
    generation: Mutex<u64>,
    moved: Condvar,
    watch: tokio::sync::watch::Sender<u64>,
}

impl Default for HeadSignal {
    fn default() -> Self {
        HeadSignal {
            generation: Mutex::new(0),
            moved: Condvar::new(),
            watch: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl HeadSignal {
    fn bump(&self) {
        let g = {
            let mut g = self.generation.lock();
            *g += 1;
            *g
        };
        self.moved.notify_all();
        self.watch.send_replace(g);
    }

    /// A receiver that sees every later move (for tasks).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.watch.subscribe()
    }

    /// The current generation.
    pub fn generation(&self) -> u64 {
        *self.generation.lock()
    }

    /// Waits until the generation passes `seen`, or `timeout`.
    pub fn wait_past(&self, seen: u64, timeout: Duration) {
        let mut g = self.generation.lock();
        if *g == seen {
            let _ = self.moved.wait_for(&mut g, timeout);
        }
    }
}

#[derive(Debug)]
struct Observer {
    metrics: Arc<LogMetrics>,
    signal: Arc<HeadSignal>,
}

impl WriteObserver for Observer {
    fn on_durable(&self, _next_seq: u64, records: u64, sync: Option<Duration>) {
        if let Some(d) = sync {
            self.metrics.sync_seconds.observe(d.as_secs_f64());
        }
        self.metrics.group_size.observe(records as f64);
        self.signal.bump();
    }
}

/// Which connection appended to a log last, and since when it alone has.
/// An append may be committed on the event loop's own thread (see
/// `commit_inline` in the config) only when one connection has been the
/// log's only appender for [`SOLE_FOR`]: while that thread syncs, it reads
/// no other connection's appends, so with several appenders about, inline
/// commits would serialise them one sync each instead of grouping them.
#[derive(Debug)]
pub(crate) struct SoleAppender {
    last: AtomicU64,
    /// Milliseconds since `epoch` when `last` last changed.
    since_ms: AtomicU64,
    epoch: Instant,
}

/// How long one connection must have been a log's only appender before its
/// appends are committed inline.
pub(crate) const SOLE_FOR: Duration = Duration::from_millis(20);

impl SoleAppender {
    fn new() -> SoleAppender {
        SoleAppender {
            last: AtomicU64::new(u64::MAX),
            since_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// Notes an append from connection `conn`; whether it has been the only
    /// appender for [`SOLE_FOR`].
    pub(crate) fn note(&self, conn: u64) -> bool {
        let now = self.epoch.elapsed().as_millis() as u64;
        if self.last.swap(conn, Ordering::AcqRel) != conn {
            self.since_ms.store(now, Ordering::Release);
            return false;
        }
        now.saturating_sub(self.since_ms.load(Ordering::Acquire)) >= SOLE_FOR.as_millis() as u64
    }
}

/// A served log.
#[derive(Debug)]
pub struct LogState {
    /// The log's configuration (its `schema_mode` and `actions` are the
    /// config file's; [`schema`](Self::schema) is the one in force).
    pub config: LogConfig,
    limits: proto::Limits,
    /// Its action schema (swapped whole when an admin sets it) and whether
    /// it was set at runtime.
    schema: RwLock<(Arc<Schema>, bool)>,
    /// Stored events whose action the schema does not allow.
    pub unknown: UnknownActions,
    /// Serialises schema changes (and their recounts).
    recount: Mutex<()>,
    /// Its idempotency keys in flight and just stored.
    pub dedup: Dedup,
    /// Its event indexes.
    pub events: EventIndexes,
    /// Its metrics.
    pub metrics: Arc<LogMetrics>,
    /// Signalled when the head moves.
    pub signal: Arc<HeadSignal>,
    sole: SoleAppender,
    /// The engine.
    pub log: Log,
    /// Its signing key and signed checkpoints.
    pub checkpoints: Checkpoints,
    stopping: AtomicBool,
    indexer: Mutex<Option<JoinHandle<()>>>,
    /// Issues checkpoints on time, on count and at seals.
    issuer: Mutex<Option<JoinHandle<()>>>,
    /// Serialises index catch-up between the indexer and queries.
    catch_up: Mutex<()>,
}

/// The checkpoint issuer of one log: wakes when the head moves (at most
/// every [`CHECKPOINT_PERIOD`]) and issues a checkpoint when one is due: a
/// segment was sealed, `checkpoint_every_records` records were added, or
/// `checkpoint_interval_secs` passed with records added.
fn issue_checkpoints(state: &std::sync::Weak<LogState>) {
    let mut since = std::time::Instant::now();
    let mut sealed = None;
    loop {
        let Some(s) = state.upgrade() else { return };
        if s.stopping.load(Ordering::Acquire) {
            return;
        }
        let seen = s.signal.generation();
        let size = s.log.head().map_or(0, |h| h.seq + 1);
        let now_sealed = s.log.stats().segments_sealed;
        let sealed_since = sealed.is_some_and(|n| now_sealed > n);
        sealed = Some(now_sealed);
        let c = &s.config;
        if s.checkpoints.due(
            size,
            sealed_since,
            since.elapsed(),
            c.checkpoint_every_records,
            Duration::from_secs(c.checkpoint_interval_secs),
        ) {
            match s.checkpoints.issue(&s.log) {
                Ok(_) => since = std::time::Instant::now(),
                Err(e) => tracing::warn!(log = %c.name, error = %e, "cannot issue a checkpoint"),
            }
        }
        let signal = s.signal.clone();
        drop(s);
        std::thread::sleep(CHECKPOINT_PERIOD);
        signal.wait_past(seen, Duration::from_millis(500));
    }
}

/// How often, at most, the checkpoint issuer looks at the log.
const CHECKPOINT_PERIOD: Duration = Duration::from_millis(50);

/// Maps an engine error to the protocol's.
pub fn engine_error(e: &engine::Error) -> ErrorReply {
    let code = match e {
        engine::Error::Busy { .. } => ErrorCode::Busy,
        engine::Error::Poisoned { .. } => ErrorCode::Poisoned,
        engine::Error::RecordTooLarge { .. } | engine::Error::BatchTooLarge { .. } => {
            ErrorCode::TooLarge
        }
        engine::Error::Closed => ErrorCode::ShuttingDown,
        _ => ErrorCode::Internal,
    };
    ErrorReply::new(code, e.to_string())
}

impl LogState {
    /// The bounds every event is validated against.
    pub fn limits(&self) -> &proto::Limits {
        &self.limits
    }

    /// Now, by the log's clock (the engine's `created_at` clock too).
    fn now_nanos(&self) -> u64 {
        self.config.clock.now_nanos()
    }

    /// Opens (or creates) the log under `data_dir`, opens (or rebuilds) its
    /// sealed segments' event indexes, and indexes its active segment.
    /// `runtime_schema`, if given, replaces the config's schema (one an
    /// admin set at runtime).
    pub fn open(
        data_dir: &Path,
        config: LogConfig,
        runtime_schema: Option<Schema>,
    ) -> Result<Arc<LogState>, crate::ServerError> {
        let name = config.name.clone();
        let log_error = |e| crate::ServerError::Log(name.clone(), e);
        let key_file = if config.checkpoint_key_file.as_os_str().is_empty() {
            data_dir.join("keys").join(format!("{}.key", config.name))
        } else {
            config.checkpoint_key_file.clone()
        };
        let metrics = Arc::new(LogMetrics::new(&config.name));
        let signal = Arc::new(HeadSignal::default());
        let engine_config = EngineConfig {
            segment_size: config.segment_size,
            prewrite_segments: config.prewrite_segments,
            prewrite_min_fill: (config.prewrite_min_fill_secs > 0)
                .then(|| Duration::from_secs(config.prewrite_min_fill_secs)),
            queue_depth: config.queue_depth,
            commit_inline: config.commit_inline,
            durability: config.durability.engine(),
            max_record_len: config.max_event_bytes.max(1024),
            clock: config.clock.clone(),
            observer: Some(Arc::new(Observer {
                metrics: metrics.clone(),
                signal: signal.clone(),
            })),
            ..EngineConfig::default()
        };
        let log = Log::open(data_dir.join(&config.name), engine_config).map_err(log_error)?;
        let checkpoints =
            Checkpoints::open(&data_dir.join(&config.name), &key_file, config.origin())
                .map_err(|e| crate::ServerError::Checkpoints(name.clone(), e))?;
        let runtime = runtime_schema.is_some();
        let schema = runtime_schema
            .unwrap_or_else(|| Schema::new(config.schema_mode, config.actions.clone()));
        let state = Arc::new(LogState {
            limits: config.limits(),
            schema: RwLock::new((Arc::new(schema), runtime)),
            unknown: UnknownActions::default(),
            recount: Mutex::new(()),
            dedup: Dedup::new(
                (config.dedup_window_secs > 0)
                    .then(|| Duration::from_secs(config.dedup_window_secs)),
            ),
            events: EventIndexes::default(),
            metrics,
            signal,
            sole: SoleAppender::new(),
            log,
            checkpoints,
            config,
            stopping: AtomicBool::new(false),
            indexer: Mutex::new(None),
            issuer: Mutex::new(None),
            catch_up: Mutex::new(()),
        });
        state.catch_up(true).map_err(log_error)?;
        let spawn_error = |e| crate::ServerError::Io("spawn a log's thread".into(), e);
        let weak = Arc::downgrade(&state);
        let handle = std::thread::Builder::new()
            .name(format!("chainlog-index-{}", state.config.name))
            .spawn(move || indexer::follow(&weak))
            .map_err(spawn_error)?;
        *state.indexer.lock() = Some(handle);
        let weak = Arc::downgrade(&state);
        let handle = std::thread::Builder::new()
            .name(format!("chainlog-checkpoint-{}", state.config.name))
            .spawn(move || issue_checkpoints(&weak))
            .map_err(spawn_error)?;
        *state.issuer.lock() = Some(handle);
        Ok(state)
    }

    /// The action schema in force.
    pub fn schema(&self) -> Arc<Schema> {
        self.schema.read().0.clone()
    }

    /// The action schema in force, and whether it was set at runtime
    /// (rather than coming from the config).
    pub fn schema_info(&self) -> (Arc<Schema>, bool) {
        let s = self.schema.read();
        (s.0.clone(), s.1)
    }

    /// Wakes tailers and the indexer (to see a cancellation promptly).
    pub fn signal_wake(&self) {
        self.signal.bump();
    }

    /// Stops the indexer; the engine closes when the last reference drops.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        self.signal.bump();
        if let Some(h) = self.indexer.lock().take() {
            let _ = h.join();
        }
        if let Some(h) = self.issuer.lock().take() {
            let _ = h.join();
        }
    }

    fn head_next(&self) -> u64 {
        self.log.head().map_or(0, |h| h.seq + 1)
    }

    /// Head and counters.
    pub fn stats(&self) -> LogStats {
        let head = self.log.head();
        let s = self.log.stats();
        LogStats {
            log: self.config.name.clone(),
            next_seq: head.map_or(0, |h| h.seq + 1),
            head_hash: head.map_or([0; 32], |h| h.hash),
            head_created_at: head.map_or(0, |h| h.created_at),
            appends: s.appends,
            syncs: s.syncs,
            segments: self.log.segment_count() as u64,
            unknown_actions: self.unknown.total(),
            ingests: Vec::new(),
        }
    }

    /// Gauges for the metrics page.
    pub fn gauges(&self) -> LogGauges {
        LogGauges {
            queue_depth: self.log.queue_len(),
            events: self.head_next(),
            unknown_actions: self.unknown.total(),
            dedup_keys: self.dedup.len(),
            poisoned: self.log.is_poisoned(),
            disk_bytes: dir_bytes(self.log.dir()),
        }
    }
}

/// The bytes of the files in `dir` (not below it); what cannot be read
/// counts 0.
fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok()?.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_connection_alone_for_a_while_is_the_sole_appender() {
        let s = SoleAppender::new();
        assert!(!s.note(1), "the first append starts the clock");
        assert!(!s.note(1), "alone, but not for long");
        std::thread::sleep(SOLE_FOR + Duration::from_millis(5));
        assert!(s.note(1), "alone for longer than SOLE_FOR");
        assert!(!s.note(2), "another connection appended");
        assert!(!s.note(1), "and the first is no longer alone");
        std::thread::sleep(SOLE_FOR + Duration::from_millis(5));
        assert!(s.note(1));
        assert!(s.note(1));
    }
}
