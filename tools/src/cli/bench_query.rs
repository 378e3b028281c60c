//! `chainlog bench query`: a reproducible query benchmark against a
//! running server. It loads a seeded data set (unless the log already holds
//! it), then times the queries of the queries-at-scale issue, each run
//! `--runs` times with different tenants, actors and days drawn from the
//! seed, and prints the median and 95th percentile.
//!
//! The data set: `--events` events of about 250 bytes, `tenant-000` to
//! `tenant-099`, 5,000 actors, 40 actions, `occurred_at` spread evenly over
//! the 30 days before 2026-01-01 (a backfill), every event with an
//! idempotency key `key-<i>`. The same `--events` and `--seed` make the same
//! events on every machine.

use std::time::Instant;

use client::{Event, Query, TimeField};
use serde_json::json;

use super::{Cli, Failure, EXIT_OK};

const DAY: u64 = 24 * 3600 * 1_000_000_000;
const HOUR: u64 = 3600 * 1_000_000_000;
/// 2025-12-02T00:00:00Z: the data set's first day.
const START: u64 = 1_764_633_600_000_000_000;
const TENANTS: u64 = 100;
const ACTORS: u64 = 5_000;
const ACTIONS: u64 = 40;

/// SplitMix64: the data set's generator, the same on every machine.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `chainlog bench query`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Events in the data set.
    #[arg(long, default_value_t = 2_000_000)]
    pub events: u64,
    /// The data set's seed.
    #[arg(long, default_value_t = 19)]
    pub seed: u64,
    /// Times each query is run (each with other values).
    #[arg(long, default_value_t = 50)]
    pub runs: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Event `i` of the data set with `seed`.
pub fn dataset_event(seed: u64, i: u64, events: u64) -> Event {
    let mut rng = Rng::new(seed ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let tenant = rng.below(TENANTS);
    let actor = rng.below(ACTORS);
    let action = rng.below(ACTIONS);
    Event {
        tenant_id: format!("tenant-{tenant:03}"),
        actor_id: format!("user-{actor:04}"),
        actor_name: format!("User {actor}"),
        action: format!(
            "{}.{}",
            ["user", "document", "role", "billing"][(action % 4) as usize],
            action
        ),
        resource: "document".into(),
        resource_id: format!("doc-{}", rng.below(100_000)),
        metadata: format!(
            r#"{{"ip":"10.{}.{}.{}","user_agent":"Mozilla/5.0 (bench)","request":"{:016x}"}}"#,
            rng.below(256),
            rng.below(256),
            rng.below(256),
            rng.next()
        ),
        occurred_at: START + i * (30 * DAY / events.max(1)),
        idempotency_key: format!("key-{i}"),
        backfilled: true,
        ..Event::default()
    }
}

/// Median and 95th percentile of `ms`, sorted.
fn stats(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    let at = |p: f64| ms[((ms.len() as f64 - 1.0) * p).round() as usize];
    (at(0.5), at(0.95))
}

/// Runs `chainlog bench query`.
pub fn run(cli: &Cli, a: &Args) -> Result<i32, Failure> {
    if a.runs == 0 || a.events == 0 {
        return Err(Failure::new("--runs and --events must be at least 1"));
    }
    let mut c = cli.connect()?;
    let have = c.stats().map_err(Failure::from)?.next_seq;
    if have == 0 {
        let t = Instant::now();
        let mut batch = Vec::with_capacity(1000);
        for i in 0..a.events {
            batch.push(dataset_event(a.seed, i, a.events));
            if batch.len() == 1000 || i + 1 == a.events {
                c.append_batch(&batch).map_err(Failure::from)?;
                batch.clear();
            }
        }
        if !a.json {
            println!(
                "loaded {} events in {:.1} s",
                a.events,
                t.elapsed().as_secs_f64()
            );
        }
    } else if have != a.events {
        return Err(Failure::new(format!(
            "the log holds {have} events, not the data set's {}: use an empty log",
            a.events
        )));
    }
    let mut rng = Rng::new(a.seed ^ 0x5eed);
    let tenant = |rng: &mut Rng| format!("tenant-{:03}", rng.below(TENANTS));
    let day = |rng: &mut Rng| START + rng.below(30) * DAY;
    let mut rows: Vec<(&str, f64, f64, f64)> = Vec::new();
    let mut time = |name: &'static str,
                    rng: &mut Rng,
                    c: &mut client::Client,
                    make: &dyn Fn(&mut Rng) -> Vec<Query>|
     -> Result<(), Failure> {
        let mut ms = Vec::with_capacity(a.runs);
        let mut found = 0u64;
        for _ in 0..a.runs {
            let qs = make(rng);
            let t = Instant::now();
            for q in &qs {
                let page = c.query_page(q).map_err(Failure::from)?;
                found += page.total.unwrap_or(page.events.len() as u64);
            }
            ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let (median, p95) = stats(ms);
        rows.push((name, median, p95, found as f64 / a.runs as f64));
        Ok(())
    };
    time("one tenant, one hour", &mut rng, &mut c, &|rng| {
        let from = day(rng) + rng.below(24) * HOUR;
        vec![Query {
            tenant_id: tenant(rng),
            time_field: TimeField::OccurredAt,
            from,
            to: from + HOUR,
            limit: 1000,
            ..Query::all()
        }]
    })?;
    time("one tenant, 30 daily counts", &mut rng, &mut c, &|rng| {
        let t = tenant(rng);
        (0..30)
            .map(|d| Query {
                tenant_id: t.clone(),
                time_field: TimeField::OccurredAt,
                from: START + d * DAY,
                to: START + (d + 1) * DAY,
                limit: 1,
                want_total: true,
                ..Query::all()
            })
            .collect()
    })?;
    time(
        "tenant + actor, whole range, first 100",
        &mut rng,
        &mut c,
        &|rng| {
            vec![Query {
                tenant_id: tenant(rng),
                actor_id: format!("user-{:04}", rng.below(ACTORS)),
                limit: 100,
                ..Query::all()
            }]
        },
    )?;
    time(
        "tenant + action, one day, count",
        &mut rng,
        &mut c,
        &|rng| {
            let a = rng.below(ACTIONS);
            let from = day(rng);
            vec![Query {
                tenant_id: tenant(rng),
                action: format!(
                    "{}.{a}",
                    ["user", "document", "role", "billing"][(a % 4) as usize]
                ),
                time_field: TimeField::OccurredAt,
                from,
                to: from + DAY,
                limit: 1,
                want_total: true,
                ..Query::all()
            }]
        },
    )?;
    time("newest 100 of a tenant", &mut rng, &mut c, &|rng| {
        vec![Query {
            tenant_id: tenant(rng),
            limit: 100,
            descending: true,
            ..Query::all()
        }]
    })?;
    let (seed, events) = (a.seed, a.events);
    time("by idempotency key", &mut rng, &mut c, &|rng| {
        let i = rng.below(events);
        vec![Query {
            tenant_id: dataset_event(seed, i, events).tenant_id,
            idempotency_key: format!("key-{i}"),
            limit: 1,
            ..Query::all()
        }]
    })?;
    if a.json {
        let list: Vec<_> = rows
            .iter()
            .map(|(n, m, p, f)| json!({"query": n, "median_ms": m, "p95_ms": p, "events_per_run": f}))
            .collect();
        println!(
            "{}",
            json!({"events": a.events, "seed": a.seed, "runs": a.runs, "queries": list})
        );
    } else {
        println!(
            "{} events (seed {}), {} runs per query; median / p95 ms:",
            a.events, a.seed, a.runs
        );
        for (n, m, p, f) in rows {
            println!("  {n:<40} {m:>8.2} / {p:>8.2}   ({f:.0} events or counted per run)");
        }
    }
    Ok(EXIT_OK)
}
