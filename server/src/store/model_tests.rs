//! Every query path against a naive model: seeded random events, written
//! into many small segments (most sealed before the server opens the log,
//! so their index files are built at open; more appended while it runs, so
//! that segments seal under the indexer and the active index serves too),
//! then random queries with every combination of filters, both orders,
//! paged with cursors. The planner's pages and totals must be exactly the
//! model's. Then the index files are deleted, truncated and garbled, and
//! the same queries give the same answers.
//!
//! `CHAINLOG_MODEL_EVENTS` and `CHAINLOG_MODEL_QUERIES` run more (100,000
//! and 1,000 by default).

use std::path::Path;
use std::sync::Arc;

use engine::testing::Rng;
use proto::event::Event;
use proto::msg::{self, Query, Response, TimeField};

use super::LogState;
use crate::auth::Key;
use crate::config::LogConfig;
use crate::evindex::{self, SegmentIndex};
use proto::msg::rights;

const SEGMENT: u64 = 1 << 20;

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn key(tenants: &[&str]) -> Key {
    let mut k = Key::internal("model".into(), "default".into());
    k.rights = rights::READ | rights::APPEND;
    k.tenants = tenants.iter().map(|t| (*t).to_owned()).collect();
    k
}

const TENANTS: [&str; 6] = ["t0", "t1", "t2", "t3", "t4", "t5"];

/// A random event: few tenants, actors, actions and resources, so that
/// filters match some; keys on some.
fn event(rng: &mut Rng, i: usize) -> Event {
    let pick = |rng: &mut Rng, n: u64| rng.below(n);
    let tenant = TENANTS[pick(rng, TENANTS.len() as u64) as usize];
    let resource = ["", "doc", "user"][pick(rng, 3) as usize];
    Event {
        tenant_id: tenant.into(),
        actor_id: format!("u{}", pick(rng, 20)),
        action: ["user.login", "doc.read", "doc.deleted", "x"][pick(rng, 4) as usize].into(),
        resource: resource.into(),
        resource_id: if resource.is_empty() {
            String::new()
        } else {
            format!("r{}", pick(rng, 10))
        },
        metadata: format!("{{\"i\":{i}}}"),
        occurred_at: 1_000_000 + pick(rng, 1_000_000),
        idempotency_key: if pick(rng, 3) == 0 {
            format!("k{i}")
        } else {
            String::new()
        },
        source_event_id: if pick(rng, 4) == 0 {
            format!("s{}", pick(rng, 1_000_000))
        } else {
            String::new()
        },
        correlation_id: if pick(rng, 2) == 0 {
            format!("c{}", pick(rng, 50))
        } else {
            String::new()
        },
        ..Event::default()
    }
}

/// What the model holds of a stored event.
struct Stored {
    seq: u64,
    created_at: u64,
    e: Event,
}

fn open(dir: &Path) -> Arc<LogState> {
    let config = LogConfig {
        segment_size: SEGMENT,
        prewrite_segments: false,
        ..LogConfig::default()
    };
    LogState::open(dir, config, None).expect("open")
}

/// Appends `n` random events through the engine, in batches; returns the
/// model's view.
fn append(log: &engine::Log, rng: &mut Rng, from: usize, n: usize) -> Vec<Stored> {
    let mut out = Vec::with_capacity(n);
    let mut i = from;
    while i < from + n {
        let batch: Vec<Event> = (i..(i + 500).min(from + n))
            .map(|j| event(rng, j))
            .collect();
        let payloads: Vec<Vec<u8>> = batch.iter().map(Event::encode).collect();
        let receipts = log.append_batch(&payloads).expect("append");
        for (r, e) in receipts.into_iter().zip(batch) {
            let rec = log.read(r.seq).expect("read");
            out.push(Stored {
                seq: r.seq,
                created_at: rec.created_at,
                e,
            });
        }
        i += payloads.len();
    }
    out
}

/// A random query: each filter drawn from values that exist or do not.
fn random_query(rng: &mut Rng, model: &[Stored]) -> (Query, Vec<&'static str>) {
    let mut q = Query::all();
    let sample = &model[rng.below(model.len() as u64) as usize].e;
    let maybe = |rng: &mut Rng, v: &str, odds: u64| -> String {
        match rng.below(odds) {
            0 => v.to_owned(),
            1 => "nothing-has-this".to_owned(),
            _ => String::new(),
        }
    };
    // The key's scope: every tenant, or two.
    let scope: Vec<&'static str> = match rng.below(3) {
        0 => Vec::new(),
        _ => vec![
            TENANTS[rng.below(3) as usize],
            TENANTS[3 + rng.below(3) as usize],
        ],
    };
    q.tenant_id = match rng.below(3) {
        0 if scope.is_empty() => sample.tenant_id.clone(),
        0 => scope[rng.below(2) as usize].to_owned(),
        _ => String::new(),
    };
    q.actor_id = maybe(rng, &sample.actor_id, 5);
    q.action = maybe(rng, &sample.action, 4);
    q.resource = maybe(rng, &sample.resource, 5);
    q.resource_id = maybe(rng, &sample.resource_id, 6);
    q.idempotency_key = maybe(rng, &sample.idempotency_key, 12);
    q.source_event_id = maybe(rng, &sample.source_event_id, 12);
    q.correlation_id = maybe(rng, &sample.correlation_id, 8);
    match rng.below(3) {
        0 => {}
        1 => {
            q.time_field = TimeField::OccurredAt;
            q.from = 1_000_000 + rng.below(1_000_000);
            q.to = q.from + 1 + rng.below(600_000);
        }
        _ => {
            let a = model[rng.below(model.len() as u64) as usize].created_at;
            let b = model[rng.below(model.len() as u64) as usize].created_at;
            q.time_field = TimeField::CreatedAt;
            (q.from, q.to) = (a.min(b), a.max(b) + 1);
        }
    }
    q.descending = rng.below(2) == 0;
    q.want_total = rng.below(2) == 0;
    q.limit = [1, 7, 100, 1000][rng.below(4) as usize];
    (q, scope)
}

/// The model's answer: every match's seq, in the order asked for.
fn expected(model: &[Stored], q: &Query, scope: &[&str]) -> Vec<u64> {
    let is = |want: &str, got: &str| want.is_empty() || want == got;
    let mut seqs: Vec<u64> = model
        .iter()
        .filter(|s| {
            let e = &s.e;
            (if q.tenant_id.is_empty() {
                scope.is_empty() || scope.contains(&e.tenant_id.as_str())
            } else {
                e.tenant_id == q.tenant_id
            }) && is(&q.actor_id, &e.actor_id)
                && is(&q.action, &e.action)
                && is(&q.resource, &e.resource)
                && is(&q.resource_id, &e.resource_id)
                && is(&q.idempotency_key, &e.idempotency_key)
                && is(&q.source_event_id, &e.source_event_id)
                && is(&q.correlation_id, &e.correlation_id)
                && match q.time_field {
                    TimeField::None => true,
                    TimeField::OccurredAt => (q.from..q.to).contains(&e.occurred_at),
                    TimeField::CreatedAt => (q.from..q.to).contains(&s.created_at),
                }
        })
        .map(|s| s.seq)
        .collect();
    if q.descending {
        seqs.reverse();
    }
    seqs
}

/// The server's answer, page by page (at most `pages`): the seqs, and the
/// total the first page gave.
fn answered(state: &LogState, q: &Query, scope: &[&str], pages: usize) -> (Vec<u64>, Option<u64>) {
    let k = key(scope);
    let mut q = q.clone();
    let mut seqs = Vec::new();
    let mut total = None;
    for page in 0..pages {
        let body = state.query(&k, &q).expect("query");
        let Response::Events(p) = msg::decode_response(msg::kind::EVENTS, &body).expect("decode")
        else {
            panic!("not an events page");
        };
        if page == 0 {
            total = p.total;
        }
        assert!(
            p.events.len() <= usize::from(q.limit),
            "a page over its limit"
        );
        seqs.extend(p.events.iter().map(|e| e.seq));
        match p.cursor {
            Some(c) => q.cursor = c,
            None => break,
        }
    }
    (seqs, total)
}

fn check_queries(state: &LogState, model: &[Stored], seed: u64, n: usize) {
    let mut rng = Rng::new(seed);
    for i in 0..n {
        let (q, scope) = random_query(&mut rng, model);
        let want = expected(model, &q, &scope);
        let pages = 8;
        let (got, total) = answered(state, &q, &scope, pages);
        let shown = want.len().min(pages * usize::from(q.limit));
        assert_eq!(
            got[..got.len().min(shown)],
            want[..shown],
            "query {i}: {q:?} scope {scope:?}"
        );
        if q.want_total {
            assert_eq!(
                total,
                Some(want.len() as u64),
                "query {i}'s total: {q:?} scope {scope:?}"
            );
        } else {
            assert_eq!(total, None);
        }
    }
}

#[test]
fn every_query_path_answers_as_a_full_scan_does() {
    let events = env_count("CHAINLOG_MODEL_EVENTS", 100_000);
    let queries = env_count("CHAINLOG_MODEL_QUERIES", 1_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let log_dir = dir.path().join("default");
    let mut rng = Rng::new(19);
    // Most events before the server opens the log: their segments are
    // sealed with no index files, which the open builds.
    let before = events * 9 / 10;
    let mut model = {
        let log = engine::Log::open(
            &log_dir,
            engine::Config {
                segment_size: SEGMENT,
                ..engine::Config::default()
            },
        )
        .expect("engine");
        append(&log, &mut rng, 0, before)
    };
    let state = open(dir.path());
    let sealed = state.events.sealed().len();
    assert!(sealed >= 10, "only {sealed} sealed segments");
    // The rest while it runs: segments seal under the indexer.
    model.extend(append(&state.log, &mut rng, before, events - before));
    check_queries(&state, &model, 1, queries);
    assert!(
        state.events.sealed().len() > sealed,
        "no segment sealed while serving"
    );

    // Damage every index file: deleted, truncated, a byte flipped. The
    // next open rebuilds them, and the answers do not change.
    let files: Vec<_> = std::fs::read_dir(&log_dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "evx"))
        .collect();
    assert_eq!(files.len(), state.events.sealed().len());
    state.stop();
    drop(state);
    for (i, f) in files.iter().enumerate() {
        match i % 3 {
            0 => std::fs::remove_file(f).expect("remove"),
            1 => {
                let len = std::fs::metadata(f).expect("meta").len();
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(f)
                    .expect("open");
                file.set_len(len / 2).expect("truncate");
            }
            _ => {
                let mut b = std::fs::read(f).expect("read");
                let at = evindex::HEADER_LEN + 8;
                b[at] ^= 0x40;
                std::fs::write(f, b).expect("write");
            }
        }
    }
    let state = open(dir.path());
    assert_eq!(
        state
            .metrics
            .index_rebuilds
            .load(std::sync::atomic::Ordering::Relaxed),
        files.len() as u64
    );
    check_queries(&state, &model, 1, queries / 4);
    // Rebuilt files check at the next open: nothing is rebuilt again.
    state.stop();
    drop(state);
    let state = open(dir.path());
    assert_eq!(
        state
            .metrics
            .index_rebuilds
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    check_queries(&state, &model, 2, queries / 4);
}

/// A segment rolled after the index had caught up to its very end: the
/// index of that segment is sealed on its own, and the next one begins at
/// the new segment's first seq (the catch-up once ran on into the next
/// segment, and the file it then wrote named the wrong seqs).
#[test]
fn a_roll_after_the_index_reached_the_segment_end_seals_that_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_size: 32 << 10,
        prewrite_segments: false,
        ..LogConfig::default()
    };
    let state = LogState::open(dir.path(), config, None).expect("open");
    let mut rng = Rng::new(7);
    let mut model = Vec::new();
    let k = key(&[]);
    for round in 0..40 {
        // Each batch about 15 KiB: every few rounds one does not fit and
        // rolls the segment, after the last query caught the index up.
        model.extend(append(&state.log, &mut rng, round * 100, 100));
        let q = Query {
            tenant_id: "t1".into(),
            want_total: true,
            limit: 1,
            ..Query::all()
        };
        let body = state.query(&k, &q).expect("query");
        let Response::Events(p) = msg::decode_response(msg::kind::EVENTS, &body).expect("decode")
        else {
            panic!("not an events page");
        };
        let want = model.iter().filter(|s| s.e.tenant_id == "t1").count() as u64;
        assert_eq!(p.total, Some(want), "round {round}");
    }
    let sealed = state.log.sealed_segments();
    assert!(sealed.len() >= 10, "only {} sealed", sealed.len());
    // Every sealed segment has its own index, with the segment's seqs.
    state.catch_up(false).expect("catch up");
    let indexes = state.events.sealed();
    assert_eq!(indexes.len(), sealed.len());
    for (i, s) in indexes.iter().zip(&sealed) {
        assert_eq!((i.first_seq(), i.end_seq()), (s.first_seq, s.end_seq));
    }
}
