//! One served log: the engine's `Log` and what the server keeps beside it
//! (schema, dedup window, query index, metrics), and the operations the
//! protocol offers on it. Connections call in from many threads.

use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use engine::format::record::KIND_DATA;
use engine::{Config as EngineConfig, Durability, Log, Receipt, Record, WriteObserver};
use parking_lot::{Condvar, Mutex, MutexGuard, RwLock};
use proto::event::EventRef;
use proto::msg::{self, AppendReceipt, ErrorCode, ErrorReply, LogStats, Query, TimeField};
use proto::wire;
use sha2::{Digest, Sha256};

use crate::auth::Key;
use crate::config::LogConfig;
use crate::dedup::{self, Claim, Dedup, KeyKind};
use crate::index::{EventIndex, Skip, TenantProbe};
use crate::metrics::{LogGauges, LogMetrics};
use crate::schema::{Mode, Schema, Tally, UnknownActions};

/// Events scanned for one page before it is returned short, with a
/// cursor: bounds the time a page request holds a connection. (A query
/// that asks for its total makes one full pass over its range on top.)
pub const SCAN_BUDGET: u64 = 1 << 18;
/// Bytes of events in one page (the first event always fits).
pub const PAGE_BYTES: usize = 1 << 20;
/// Records the indexer takes per step.
const INDEX_CHUNK: u64 = 1 << 14;

/// Wakes tailers and the indexer when the durable head moves.
#[derive(Debug, Default)]
pub struct HeadSignal {
    generation: Mutex<u64>,
    moved: Condvar,
}

impl HeadSignal {
    fn bump(&self) {
        *self.generation.lock() += 1;
        self.moved.notify_all();
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
    /// Its idempotency window.
    pub dedup: Dedup,
    /// Its query index.
    pub index: EventIndex,
    /// Its metrics.
    pub metrics: Arc<LogMetrics>,
    /// Signalled when the head moves.
    pub signal: Arc<HeadSignal>,
    /// The engine.
    pub log: Log,
    stopping: AtomicBool,
    indexer: Mutex<Option<JoinHandle<()>>>,
    /// Serialises index catch-up between the indexer and queries.
    catch_up: Mutex<()>,
}

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

fn now_nanos() -> u64 {
    engine::Clock::now_nanos(&engine::SystemClock)
}

fn invalid(index: usize, field: &str, reason: impl Into<String>) -> ErrorReply {
    ErrorReply {
        code: ErrorCode::InvalidEvent,
        index: Some(index as u32),
        field: field.into(),
        message: reason.into(),
    }
}

/// How each event of an append is answered.
#[derive(Debug, Clone, Copy)]
enum Plan {
    /// Stored as the n-th record of this append.
    New(usize),
    /// Already stored as this seq.
    Stored(u64),
    /// The same key as an earlier event of this batch (its index).
    SameAs(usize),
}

/// What an append needs, once its records are durable (or have failed),
/// to settle its keys and answer; [`finish`](AppendJob::finish) it.
#[derive(Debug)]
#[must_use]
pub struct AppendJob {
    state: Arc<LogState>,
    plan: Vec<Plan>,
    /// Keys to resolve, by the new record that carries them.
    keys: Vec<(usize, dedup::Key)>,
    bytes: u64,
}

impl AppendJob {
    /// Settles the keys with the engine's outcome for the new records;
    /// the receipts, one per event.
    pub fn finish(
        self,
        durable: engine::Result<Vec<Receipt>>,
    ) -> Result<Vec<AppendReceipt>, ErrorReply> {
        let s = &self.state;
        let receipts = match durable {
            Ok(r) => r,
            Err(e) => {
                for (_, k) in &self.keys {
                    s.dedup.resolve(*k, None);
                }
                let mut reply = engine_error(&e);
                // The write or sync that failed poisoned the log: say
                // so from the first failure on, not only the next.
                if s.log.is_poisoned() {
                    reply.code = ErrorCode::Poisoned;
                }
                return Err(reply);
            }
        };
        for (i, k) in &self.keys {
            let r = &receipts[*i];
            s.dedup.resolve(*k, Some((r.seq, r.created_at)));
        }
        s.metrics
            .appends
            .fetch_add(receipts.len() as u64, Ordering::Relaxed);
        s.metrics.bytes.fetch_add(self.bytes, Ordering::Relaxed);
        let mut out: Vec<AppendReceipt> = Vec::with_capacity(self.plan.len());
        for p in &self.plan {
            let r = match *p {
                Plan::New(i) => {
                    let r = &receipts[i];
                    AppendReceipt {
                        seq: r.seq,
                        created_at: r.created_at,
                        hash: r.hash,
                        duplicate: false,
                    }
                }
                Plan::Stored(seq) => {
                    let rec = s.log.read(seq).map_err(|e| engine_error(&e))?;
                    AppendReceipt {
                        seq,
                        created_at: rec.created_at,
                        hash: rec.hash,
                        duplicate: true,
                    }
                }
                Plan::SameAs(j) => AppendReceipt {
                    duplicate: true,
                    ..out[j]
                },
            };
            out.push(r);
        }
        let dups = out.iter().filter(|r| r.duplicate).count() as u64;
        s.metrics.duplicates.fetch_add(dups, Ordering::Relaxed);
        Ok(out)
    }
}

/// The tenants a key may read, and the tenant a query asked for, resolved.
fn read_scope<'k>(key: &'k Key, asked: &'k str) -> Result<Vec<&'k str>, ErrorReply> {
    if asked.is_empty() {
        return Ok(key.tenants.iter().map(String::as_str).collect());
    }
    if !key.allows_tenant(asked) {
        return Err(ErrorReply::new(
            ErrorCode::Forbidden,
            "this key may not read that tenant",
        ));
    }
    Ok(vec![asked])
}

/// A page being filled.
struct Page {
    events: Vec<u8>,
    count: u16,
}

/// Where a scan stopped.
enum Stop {
    /// Every range was scanned.
    End,
    /// Stopped with more to scan from this seq (a page filled up, or the
    /// scan budget ran out).
    At(u64),
}

/// A schema change in progress: the schema is in force, the counts are
/// not yet recomputed. See [`LogState::begin_schema_change`]; dropping it
/// recounts too.
#[derive(Debug)]
#[must_use = "the counts are the previous schema's until recount() runs"]
pub struct SchemaChange<'a> {
    state: &'a LogState,
    _one_change: MutexGuard<'a, ()>,
    schema: Arc<Schema>,
    /// Events before this seq were counted under the previous schema.
    upto: u64,
    /// The catch-up before the swap; `None` once recounted.
    caught_up: Option<Result<(), engine::Error>>,
}

impl SchemaChange<'_> {
    /// Counts the events before the change again, under the new schema,
    /// without holding the indexer back (it counts newer events apart
    /// meanwhile), then replaces the counts with the two together.
    ///
    /// A record that cannot be read ends the recount early with the error;
    /// the counts then cover the events read, until the next start counts
    /// everything again.
    pub fn recount(mut self) -> Result<(), engine::Error> {
        self.run()
    }

    /// Events before this seq are recounted; later ones are counted by
    /// the indexer.
    pub fn upto(&self) -> u64 {
        self.upto
    }

    fn run(&mut self) -> Result<(), engine::Error> {
        let Some(mut result) = self.caught_up.take() else {
            return Ok(());
        };
        let mut tally = Tally::default();
        for rec in self.state.log.scan(0..self.upto) {
            match rec {
                Ok(r) => {
                    if let Ok(e) = EventRef::decode(&r.payload) {
                        if !self.schema.allows(e.action) {
                            tally.add(e.action, 1);
                        }
                    }
                }
                Err(e) => {
                    result = result.and(Err(e));
                    break;
                }
            }
        }
        self.state.unknown.finish_recount(tally);
        result
    }
}

impl Drop for SchemaChange<'_> {
    fn drop(&mut self) {
        // The counts must not stay split between two schemas.
        if let Err(e) = self.run() {
            tracing::warn!(log = %self.state.config.name, error = %e, "recounting unknown actions failed");
        }
    }
}

impl LogState {
    /// Opens (or creates) the log under `data_dir` and rebuilds the dedup
    /// window, query index and unknown-action counts from its events.
    /// `runtime_schema`, if given, replaces the config's schema (one an
    /// admin set at runtime).
    pub fn open(
        data_dir: &Path,
        config: LogConfig,
        runtime_schema: Option<Schema>,
    ) -> Result<Arc<LogState>, engine::Error> {
        let metrics = Arc::new(LogMetrics::new(&config.name));
        let signal = Arc::new(HeadSignal::default());
        let engine_config = EngineConfig {
            segment_size: config.segment_size,
            prewrite_segments: config.prewrite_segments,
            queue_depth: config.queue_depth,
            durability: if config.durability == "unsafe-no-sync" {
                Durability::UnsafeNoSync
            } else {
                Durability::SyncEveryGroup
            },
            max_record_len: config.max_event_bytes.max(1024),
            observer: Some(Arc::new(Observer {
                metrics: metrics.clone(),
                signal: signal.clone(),
            })),
            ..EngineConfig::default()
        };
        let log = Log::open(data_dir.join(&config.name), engine_config)?;
        let runtime = runtime_schema.is_some();
        let schema = runtime_schema
            .unwrap_or_else(|| Schema::new(config.schema_mode, config.actions.clone()));
        let state = Arc::new(LogState {
            limits: config.limits(),
            schema: RwLock::new((Arc::new(schema), runtime)),
            unknown: UnknownActions::default(),
            recount: Mutex::new(()),
            dedup: Dedup::new(Duration::from_secs(config.dedup_window_secs)),
            index: EventIndex::new(),
            metrics,
            signal,
            log,
            config,
            stopping: AtomicBool::new(false),
            indexer: Mutex::new(None),
            catch_up: Mutex::new(()),
        });
        state.catch_up(true)?;
        let weak = Arc::downgrade(&state);
        let handle = std::thread::Builder::new()
            .name(format!("chainlog-index-{}", state.config.name))
            .spawn(move || indexer(&weak))
            .map_err(|source| engine::Error::Io {
                op: "spawn indexer thread",
                path: data_dir.to_path_buf(),
                source,
            })?;
        *state.indexer.lock() = Some(handle);
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

    /// Replaces the action schema: appends validated from now on use it,
    /// and the unknown-action counts are recomputed under it before this
    /// returns. [`begin_schema_change`](Self::begin_schema_change), then
    /// [`SchemaChange::recount`].
    pub fn set_schema(&self, schema: Schema) -> Result<(), engine::Error> {
        self.begin_schema_change(schema).recount()
    }

    /// Puts `schema` in force; the counts follow once the returned change
    /// is [recounted](SchemaChange::recount) (until then, the previous
    /// schema's counts are reported). Changes are serialised: the next one
    /// begins once this one is dropped.
    ///
    /// Under the catch-up lock (the indexer's), so that every event is
    /// counted either before the swap (and recounted) or after it (and
    /// kept): index every durable event, so that the recount covers every
    /// event acknowledged before this call; swap the schema; start counting
    /// newly indexed events apart; note how far the index has got.
    pub fn begin_schema_change(&self, schema: Schema) -> SchemaChange<'_> {
        let one_change = self.recount.lock();
        let schema = Arc::new(schema);
        let held = self.catch_up.lock();
        let caught_up = self.catch_up_locked(&held, false);
        *self.schema.write() = (schema.clone(), true);
        self.unknown.begin_recount();
        SchemaChange {
            state: self,
            _one_change: one_change,
            schema,
            upto: self.index.indexed(),
            caught_up: Some(caught_up),
        }
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
    }

    /// Indexes every durable event not yet indexed; at start, also refills
    /// the dedup window.
    fn catch_up(&self, starting: bool) -> Result<(), engine::Error> {
        let held = self.catch_up.lock();
        self.catch_up_locked(&held, starting)
    }

    /// [`catch_up`](Self::catch_up), for a caller holding the catch-up
    /// lock (`_held`).
    fn catch_up_locked(
        &self,
        _held: &MutexGuard<'_, ()>,
        starting: bool,
    ) -> Result<(), engine::Error> {
        let now = now_nanos();
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
                        if !schema.allows(e.action) {
                            self.unknown.count(e.action);
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

    /// Validates, deduplicates and submits an append from `key`. Errors
    /// come back at once (nothing is written, `done` is not called);
    /// otherwise `done` is called once with the job and the engine's
    /// outcome, on the engine's writer or syncer thread (so it must not
    /// block), or at once on this thread when every event is a duplicate.
    pub fn submit_append<F>(
        self: &Arc<Self>,
        key: &Key,
        bodies: &[&[u8]],
        done: F,
    ) -> Result<(), ErrorReply>
    where
        F: FnOnce(AppendJob, engine::Result<Vec<Receipt>>) + Send + 'static,
    {
        let now = now_nanos();
        let schema = self.schema();
        // An event the server did not change is stored as the client's
        // bytes: the decoder accepts only the canonical encoding (decode
        // then encode gives back the same bytes; fuzzed), so this is what
        // re-encoding would produce, without the copy.
        let mut payloads: Vec<std::borrow::Cow<'_, [u8]>> = Vec::with_capacity(bodies.len());
        let mut changed = vec![false; bodies.len()];
        let mut plan = Vec::with_capacity(bodies.len());
        // Keys of this batch: (digest, event index).
        let mut batch_keys: Vec<(dedup::Key, usize)> = Vec::new();
        let mut events = Vec::with_capacity(bodies.len());
        for (i, body) in bodies.iter().enumerate() {
            let mut e = EventRef::decode(body).map_err(|err| {
                let field = match &err {
                    proto::DecodeError::Truncated { what, .. }
                    | proto::DecodeError::NotUtf8(what)
                    | proto::DecodeError::Invalid { what, .. } => what,
                    proto::DecodeError::Trailing(_) => "event",
                };
                invalid(i, field, err.to_string())
            })?;
            if e.tenant_id.is_empty() && key.tenants.len() == 1 {
                e.tenant_id = &key.tenants[0];
                changed[i] = true;
            } else if e.tenant_id.is_empty() && !key.tenants.is_empty() {
                // Even on a single-tenant log: a tenant-limited key writes
                // only events it can read back.
                return Err(ErrorReply {
                    code: ErrorCode::Forbidden,
                    index: Some(i as u32),
                    field: "tenant_id".into(),
                    message: "this key is limited to several tenants: name one".into(),
                });
            } else if !e.tenant_id.is_empty() && !key.allows_tenant(e.tenant_id) {
                return Err(ErrorReply {
                    code: ErrorCode::Forbidden,
                    index: Some(i as u32),
                    field: "tenant_id".into(),
                    message: "this key may not write that tenant".into(),
                });
            }
            if e.occurred_at == 0 {
                e.occurred_at = now;
                changed[i] = true;
            }
            e.validate(&self.limits, now)
                .map_err(|err| invalid(i, &err.field, err.reason))?;
            if schema.mode == Mode::Strict && !schema.allows(e.action) {
                return Err(invalid(
                    i,
                    "action",
                    format!("{:?} is not in the log's schema (strict mode)", e.action),
                ));
            }
            for (kind, v) in [
                (KeyKind::Idempotency, e.idempotency_key),
                (KeyKind::SourceEvent, e.source_event_id),
            ] {
                if !v.is_empty() {
                    batch_keys.push((dedup::key(kind, e.tenant_id, v), i));
                }
            }
            events.push(e);
        }
        // Within the batch: a later event with an earlier event's key is
        // that event's duplicate.
        let mut same_as: Vec<Option<usize>> = vec![None; events.len()];
        for (n, (k, i)) in batch_keys.iter().enumerate() {
            if let Some((_, j)) = batch_keys[..n].iter().find(|(k2, j)| k2 == k && j != i) {
                same_as[*i] = Some(same_as[*j].unwrap_or(*j));
            }
        }
        let unique: Vec<(dedup::Key, usize)> = batch_keys
            .iter()
            .filter(|(_, i)| same_as[*i].is_none())
            .copied()
            .collect();
        let claims = if unique.is_empty() {
            Vec::new()
        } else {
            let ks: Vec<dedup::Key> = unique.iter().map(|(k, _)| *k).collect();
            self.dedup.claim(&ks, now).map_err(|_| {
                ErrorReply::new(
                    ErrorCode::Busy,
                    "an append with the same idempotency key is still in flight",
                )
            })?
        };
        let mut stored_as: Vec<Option<u64>> = vec![None; events.len()];
        for ((_, i), c) in unique.iter().zip(&claims) {
            if let Claim::Duplicate(seq) = c {
                stored_as[*i].get_or_insert(*seq);
            }
        }
        let mut keys = Vec::new();
        let mut bytes = 0u64;
        for (i, e) in events.iter().enumerate() {
            if let Some(j) = same_as[i] {
                plan.push(Plan::SameAs(j));
            } else if let Some(seq) = stored_as[i] {
                plan.push(Plan::Stored(seq));
            } else {
                let n = payloads.len();
                let p = if changed[i] {
                    let mut p = Vec::with_capacity(e.encoded_len());
                    e.encode(&mut p);
                    std::borrow::Cow::Owned(p)
                } else {
                    debug_assert_eq!(
                        e.encoded_len(),
                        bodies[i].len(),
                        "the decoder accepted a non-canonical event"
                    );
                    std::borrow::Cow::Borrowed(bodies[i])
                };
                bytes += p.len() as u64;
                payloads.push(p);
                plan.push(Plan::New(n));
            }
        }
        // Claimed keys: those of stored events are resolved with their
        // receipts; those of duplicates are released now.
        for ((k, i), c) in unique.iter().zip(&claims) {
            match (plan[*i], c) {
                (Plan::New(n), Claim::New) => keys.push((n, *k)),
                (_, Claim::New) => self.dedup.resolve(*k, None),
                _ => {}
            }
        }
        let job = AppendJob {
            state: self.clone(),
            plan,
            keys,
            bytes,
        };
        if payloads.is_empty() {
            done(job, Ok(Vec::new()));
            return Ok(());
        }
        // The keys stay claimed until the job settles them; if the engine
        // refuses the append, `done` is dropped uncalled with the job, so
        // release them here.
        let claimed: Vec<dedup::Key> = job.keys.iter().map(|(_, k)| *k).collect();
        self.log
            .submit_then(KIND_DATA, &payloads, move |r| done(job, r))
            .map_err(|e| {
                for k in claimed {
                    self.dedup.resolve(k, None);
                }
                engine_error(&e)
            })
    }

    fn head_next(&self) -> u64 {
        self.log.head().map_or(0, |h| h.seq + 1)
    }

    /// Scans `ranges` for events `matches` accepts, filling `page` up to
    /// `limit` events and [`PAGE_BYTES`], within `budget` scanned records.
    fn fill(
        &self,
        ranges: &[Range<u64>],
        limit: u16,
        budget: u64,
        page: &mut Page,
        matches: &dyn Fn(&Record, &EventRef<'_>) -> bool,
    ) -> Result<Stop, ErrorReply> {
        let mut scanned = 0u64;
        for r in ranges {
            for rec in self.log.scan(r.clone()) {
                let rec = rec.map_err(|e| engine_error(&e))?;
                if scanned >= budget {
                    return Ok(Stop::At(rec.seq));
                }
                scanned += 1;
                let Ok(e) = EventRef::decode(&rec.payload) else {
                    continue;
                };
                if !matches(&rec, &e) {
                    continue;
                }
                let len = msg::stored_event_len(rec.payload.len());
                if page.count == limit || (page.count > 0 && page.events.len() + len > PAGE_BYTES) {
                    return Ok(Stop::At(rec.seq));
                }
                msg::put_stored_event(
                    &mut page.events,
                    rec.seq,
                    rec.created_at,
                    &rec.hash,
                    &rec.payload,
                );
                page.count += 1;
            }
        }
        Ok(Stop::End)
    }

    /// Runs a query for `key`; returns the EVENTS body.
    pub fn query(&self, key: &Key, q: &Query) -> Result<Vec<u8>, ErrorReply> {
        let limit = page_limit(q.limit)?;
        let tenants = read_scope(key, &q.tenant_id)?;
        if q.time_field != TimeField::None && q.from >= q.to {
            return Err(ErrorReply::new(
                ErrorCode::InvalidRequest,
                "the time range is empty (from >= to)",
            ));
        }
        self.refresh_index();
        let fingerprint = query_fingerprint(q, &tenants);
        let head = self.head_next();
        let mut range = 0..head;
        if q.time_field == TimeField::CreatedAt {
            let seek = |t: u64| self.log.seek_time(t).map_err(|e| engine_error(&e));
            range.start = seek(q.from)?.unwrap_or(head);
            if q.to != u64::MAX {
                range.end = seek(q.to)?.unwrap_or(head).min(head);
            }
        }
        let base = range.clone();
        if !q.cursor.is_empty() {
            range.start = range.start.max(parse_cursor(&q.cursor, fingerprint)?);
        }
        let skip = Skip {
            tenants: tenants.iter().map(|t| TenantProbe::new(t)).collect(),
            occurred: (q.time_field == TimeField::OccurredAt).then_some(q.from..q.to),
        };
        let matches = |rec: &Record, e: &EventRef<'_>| -> bool {
            (tenants.is_empty() || tenants.contains(&e.tenant_id))
                && (q.actor_id.is_empty() || e.actor_id == q.actor_id)
                && (q.action.is_empty() || e.action == q.action)
                && (q.resource.is_empty() || e.resource == q.resource)
                && (q.resource_id.is_empty() || e.resource_id == q.resource_id)
                && match q.time_field {
                    TimeField::None => true,
                    TimeField::CreatedAt => (q.from..q.to).contains(&rec.created_at),
                    TimeField::OccurredAt => (q.from..q.to).contains(&e.occurred_at),
                }
        };
        let mut page = Page {
            events: Vec::new(),
            count: 0,
        };
        let ranges = self.index.candidates(range, &skip);
        let stop = self.fill(&ranges, limit, SCAN_BUDGET, &mut page, &matches)?;
        let total = if q.want_total {
            let mut count = 0u64;
            for r in self.index.candidates(base, &skip) {
                for rec in self.log.scan(r) {
                    let rec = rec.map_err(|e| engine_error(&e))?;
                    if let Ok(e) = EventRef::decode(&rec.payload) {
                        count += u64::from(matches(&rec, &e));
                    }
                }
            }
            Some(count)
        } else {
            None
        };
        let cursor = match stop {
            Stop::End => None,
            Stop::At(seq) => Some(make_cursor(seq, fingerprint)),
        };
        Ok(events_body(&page, cursor.as_ref().map(|c| &c[..]), total))
    }

    /// Events `from..to` that `key` may read, as an EVENTS body.
    pub fn read_range(
        &self,
        key: &Key,
        from: u64,
        to: u64,
        limit: u16,
    ) -> Result<Vec<u8>, ErrorReply> {
        let limit = page_limit(limit)?;
        let range = from..to.min(self.head_next());
        let (page, stop) = self.scoped_page(key, range, limit)?;
        let cursor = match stop {
            Stop::End => None,
            Stop::At(seq) => Some(seq.to_le_bytes()),
        };
        Ok(events_body(&page, cursor.as_ref().map(|c| &c[..]), None))
    }

    fn scoped_page(
        &self,
        key: &Key,
        range: Range<u64>,
        limit: u16,
    ) -> Result<(Page, Stop), ErrorReply> {
        self.refresh_index();
        let tenants: Vec<&str> = key.tenants.iter().map(String::as_str).collect();
        let skip = Skip {
            tenants: tenants.iter().map(|t| TenantProbe::new(t)).collect(),
            occurred: None,
        };
        let mut page = Page {
            events: Vec::new(),
            count: 0,
        };
        let ranges = self.index.candidates(range, &skip);
        let stop = self.fill(&ranges, limit, SCAN_BUDGET, &mut page, &|_, e| {
            tenants.is_empty() || tenants.contains(&e.tenant_id)
        })?;
        Ok((page, stop))
    }

    /// The next batch of a tail from `from`: a TAIL_EVENTS body (None when
    /// no event the key may read became durable) and the seq to continue
    /// from.
    pub fn tail_step(&self, key: &Key, from: u64) -> Result<(Option<Vec<u8>>, u64), ErrorReply> {
        let head = self.head_next();
        if from >= head {
            return Ok((None, from));
        }
        let (page, stop) = self.scoped_page(key, from..head, msg::MAX_PAGE)?;
        let next = match stop {
            Stop::End => head,
            Stop::At(seq) => seq,
        };
        if page.count == 0 {
            return Ok((None, next));
        }
        let mut body = Vec::with_capacity(2 + page.events.len());
        wire::put_u16(&mut body, page.count);
        body.extend_from_slice(&page.events);
        Ok((Some(body), next))
    }

    /// Brings the index up to the head, so that blocks can be skipped.
    fn refresh_index(&self) {
        if self.index.indexed() < self.head_next() {
            if let Err(e) = self.catch_up(false) {
                tracing::warn!(log = %self.config.name, error = %e, "index catch-up failed");
            }
        }
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
        }
    }

    /// Gauges for the metrics page.
    pub fn gauges(&self) -> LogGauges {
        LogGauges {
            queue_depth: self.log.queue_len(),
            events: self.head_next(),
            unknown_actions: self.unknown.total(),
            dedup_keys: self.dedup.len(),
        }
    }
}

fn indexer(state: &Weak<LogState>) {
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

fn page_limit(limit: u16) -> Result<u16, ErrorReply> {
    match limit {
        0 => Ok(msg::DEFAULT_PAGE),
        n if n <= msg::MAX_PAGE => Ok(n),
        n => Err(ErrorReply::new(
            ErrorCode::InvalidRequest,
            format!("limit {n} is over the maximum of {}", msg::MAX_PAGE),
        )),
    }
}

fn events_body(page: &Page, cursor: Option<&[u8]>, total: Option<u64>) -> Vec<u8> {
    let mut body = Vec::with_capacity(page.events.len() + 32);
    wire::put_u16(&mut body, page.count);
    body.extend_from_slice(&page.events);
    msg::put_page_tail(&mut body, cursor, total);
    body
}

const CURSOR_VERSION: u8 = 1;

/// A query cursor: version, the seq to continue from, and a fingerprint of
/// the query, so that a cursor cannot be replayed against another query.
fn make_cursor(seq: u64, fingerprint: u64) -> [u8; 17] {
    let mut c = [0u8; 17];
    c[0] = CURSOR_VERSION;
    c[1..9].copy_from_slice(&seq.to_le_bytes());
    c[9..].copy_from_slice(&fingerprint.to_le_bytes());
    c
}

fn parse_cursor(c: &[u8], fingerprint: u64) -> Result<u64, ErrorReply> {
    let bad = |why: &str| {
        Err(ErrorReply::new(
            ErrorCode::InvalidRequest,
            format!("bad cursor: {why}"),
        ))
    };
    if c.len() != 17 || c[0] != CURSOR_VERSION {
        return bad("not a cursor this server issued");
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&c[1..9]);
    let mut fp = [0u8; 8];
    fp.copy_from_slice(&c[9..]);
    if u64::from_le_bytes(fp) != fingerprint {
        return bad("it belongs to a different query");
    }
    Ok(u64::from_le_bytes(seq))
}

fn query_fingerprint(q: &Query, tenants: &[&str]) -> u64 {
    // SHA-256 over length-prefixed fields: the same on every build, so a
    // cursor stays valid across a server upgrade.
    let mut h = Sha256::new();
    let mut text = |s: &str| {
        h.update((s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    };
    for s in [&q.actor_id, &q.action, &q.resource, &q.resource_id] {
        text(s);
    }
    for t in tenants {
        text(t);
    }
    h.update([q.time_field as u8]);
    // The bounds only where they apply: ignored values cannot void a cursor.
    if q.time_field != TimeField::None {
        h.update(q.from.to_le_bytes());
        h.update(q.to.to_le_bytes());
    }
    h.update((tenants.len() as u64).to_le_bytes());
    let d = h.finalize();
    u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}
