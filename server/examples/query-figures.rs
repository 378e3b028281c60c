//! Measures query times on a large log: one tenant's events in a one-hour
//! window, on `created_at` (an index seek) and on `occurred_at` (block
//! skipping), plus the server's start time over the log.
//!
//! ```sh
//! cargo run --release -p chainlog-server --example query-figures -- DIR [EVENTS]
//! ```
//!
//! Builds DIR/default with EVENTS events (default 10,000,000) if it is not
//! there: 100 tenants, created_at spread evenly over 30 days (a test clock),
//! occurred_at a few seconds before created_at, written with the engine
//! directly and no syncs (this measures queries, not appends).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use client::{Client, Query, TimeField};
use engine::{Clock, Config, Durability, Log};
use proto::event::Event;
use server::auth::{generate_key, hash_key};
use server::{KeyConfig, LogConfig, Server, ServerConfig};

const DAY: u64 = 24 * 3600 * 1_000_000_000;
const HOUR: u64 = 3600 * 1_000_000_000;
const START: u64 = 1_760_000_000_000_000_000;

#[derive(Debug)]
struct StepClock(AtomicU64, u64);

impl Clock for StepClock {
    fn now_nanos(&self) -> u64 {
        self.0.fetch_add(self.1, Ordering::Relaxed)
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(args.get(1).ok_or("usage: query-figures DIR [EVENTS]")?);
    let n: u64 = args
        .get(2)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10_000_000);
    let step = 30 * DAY / n;
    if !dir.join("default").exists() {
        let t = Instant::now();
        let log = Log::open(
            dir.join("default"),
            Config {
                durability: Durability::UnsafeNoSync,
                clock: Arc::new(StepClock(AtomicU64::new(START), step)),
                ..Config::default()
            },
        )?;
        let mut batch = Vec::with_capacity(1000);
        for i in 0..n {
            let e = Event {
                tenant_id: format!("tenant-{:03}", i * 7919 % 100),
                actor_id: format!("user-{}", i % 5000),
                action: [
                    "user.login",
                    "document.viewed",
                    "document.deleted",
                    "role.granted",
                ][(i % 4) as usize]
                    .into(),
                resource: "document".into(),
                resource_id: format!("doc-{}", i % 100_000),
                metadata: r#"{"ip":"10.1.2.3","ua":"bench"}"#.into(),
                occurred_at: START + i * step - 3_000_000_000,
                ..Event::default()
            };
            batch.push(e.encode());
            if batch.len() == 1000 {
                log.append_batch(&batch)?;
                batch.clear();
            }
        }
        if !batch.is_empty() {
            log.append_batch(&batch)?;
        }
        log.close()?;
        println!("built {n} events in {:.1} s", t.elapsed().as_secs_f64());
    }
    let key = generate_key()?;
    let config = ServerConfig {
        listen: "127.0.0.1:0".into(),
        metrics_listen: String::new(),
        http_listen: String::new(),
        data_dir: dir.clone(),
        logs: vec![LogConfig::default()],
        keys: vec![KeyConfig {
            id: "bench".into(),
            hash: hash_key(&key),
            log: "default".into(),
            rights: vec!["read".into()],
            tenants: vec![],
            events_per_sec: 0,
            burst: 0,
        }],
        ..ServerConfig::default()
    };
    let t = Instant::now();
    let server = Server::start(config)?;
    println!(
        "server start (recovery + index/dedup rebuild): {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let status = std::fs::read_to_string("/proc/self/status")?;
    for l in status
        .lines()
        .filter(|l| l.starts_with("VmRSS") || l.starts_with("RssAnon") || l.starts_with("RssFile"))
    {
        println!("after start: {l}");
    }
    let mut c = Client::connect(server.addr())?;
    c.auth(&key)?;
    let events = c.stats()?.next_seq;
    for field in [TimeField::CreatedAt, TimeField::OccurredAt] {
        let mut times = Vec::new();
        let mut found = 0;
        for k in 0..20u64 {
            let from = START + (k * 29 * DAY / 20) + 7 * HOUR;
            let q = Query {
                tenant_id: format!("tenant-{:03}", k * 13 % 100),
                time_field: field,
                from,
                to: from + HOUR,
                limit: 1000,
                ..Query::all()
            };
            let t = Instant::now();
            let mut count = 0;
            for e in c.query(q) {
                e?;
                count += 1;
            }
            times.push(t.elapsed().as_secs_f64() * 1e3);
            found += count;
        }
        times.sort_by(f64::total_cmp);
        println!(
            "{events} events: one tenant, one hour on {field:?}: median {:.2} ms, max {:.2} ms ({} events per query on average, 20 queries)",
            times[times.len() / 2],
            times[times.len() - 1],
            found / 20
        );
    }
    server.shutdown();
    Ok(())
}
