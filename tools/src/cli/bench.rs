//! `chainlog bench`: closed-loop append load against a running server, with
//! the disk's raw ceiling measured beside it in the same run.
//!
//! Each client is one connection that sends a batch of `--batch` events of
//! `--payload` bytes (encoded) and waits for its receipts before sending the
//! next. The ceiling (`--ceiling DIR`, a directory on the server's disk,
//! such as its data directory) is one thread doing what a perfect log
//! would: one write and one `fdatasync` per group of `clients x batch`
//! records of the same stored size, appended to a growing file, no server.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use client::Event;
use serde_json::json;

use super::{Cli, Failure, EXIT_OK};

/// `chainlog bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Connections appending at once.
    #[arg(long, default_value_t = 1)]
    pub clients: usize,
    /// Events per request.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub batch: u16,
    /// Bytes per event, as encoded (padding goes into metadata).
    #[arg(long, default_value_t = 256)]
    pub payload: usize,
    /// Stop after this many events (instead of --duration).
    #[arg(long, conflicts_with = "duration")]
    pub events: Option<u64>,
    /// Seconds to run.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// First measure the raw write+fdatasync ceiling in this directory (put it on the server's disk).
    #[arg(long)]
    pub ceiling: Option<PathBuf>,
    /// Seconds the ceiling is measured for.
    #[arg(long, default_value_t = 3.0)]
    pub ceiling_seconds: f64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// An event that encodes to `size` bytes (or the smallest it can be).
pub fn sized_event(client: usize, i: usize, size: usize) -> Event {
    let mut e = Event {
        tenant_id: format!("tenant-{:02}", client % 100),
        actor_id: format!("user-{client}-{i}"),
        actor_name: "Load Generator".into(),
        action: "document.viewed".into(),
        resource: "document".into(),
        resource_id: format!("doc-{:06}", i),
        metadata: r#"{"pad":""}"#.into(),
        ..Event::default()
    };
    let base = e.as_ref().encoded_len();
    if size > base {
        e.metadata = format!(r#"{{"pad":"{}"}}"#, "x".repeat(size - base));
    }
    e
}

struct Measured {
    events: u64,
    seconds: f64,
    latencies_us: Vec<u32>,
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    f64::from(sorted[i]) / 1000.0
}

fn ceiling(
    dir: &std::path::Path,
    record_len: usize,
    group: usize,
    secs: f64,
) -> Result<f64, Failure> {
    std::fs::create_dir_all(dir)?;
    let mut c = chainlog_benches::RawCeiling::new(dir, record_len, group, false)?;
    let start = Instant::now();
    let mut groups = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        c.group()?;
        groups += 1;
    }
    let rate = (groups * group as u64) as f64 / start.elapsed().as_secs_f64();
    drop(c);
    let _ = std::fs::remove_file(dir.join("ceiling-growing"));
    Ok(rate)
}

/// Runs `chainlog bench`.
pub fn run(cli: &Cli, a: &Args) -> Result<i32, Failure> {
    if a.clients == 0 {
        return Err(Failure::new("--clients must be at least 1"));
    }
    let batch = usize::from(a.batch);
    let event_len = sized_event(0, 0, a.payload).as_ref().encoded_len();
    let record_len = event_len + engine::format::record::RECORD_OVERHEAD;
    let secs = a.duration.max(1) as f64;
    let ceiling_rate = match &a.ceiling {
        Some(dir) => Some(ceiling(
            dir,
            record_len,
            a.clients * batch,
            a.ceiling_seconds.max(0.1),
        )?),
        None => None,
    };
    let (addr, key) = cli.connection()?;
    let remaining = Arc::new(AtomicU64::new(
        a.events.map_or(u64::MAX, |n| n.div_ceil(batch as u64)),
    ));
    let deadline = a
        .events
        .is_none()
        .then(|| Instant::now() + Duration::from_secs_f64(secs));
    let start = Instant::now();
    let threads: Vec<_> = (0..a.clients)
        .map(|t| {
            let (addr, key, remaining) = (addr.clone(), key.clone(), remaining.clone());
            let payload = a.payload;
            std::thread::spawn(move || -> Result<(u64, Vec<u32>), String> {
                let mut c = client::Client::connect(&addr).map_err(|e| e.to_string())?;
                c.auth(&key).map_err(|e| e.to_string())?;
                let encoded: Vec<Vec<u8>> = (0..batch)
                    .map(|i| sized_event(t, i, payload).encode())
                    .collect();
                let mut lat = Vec::new();
                let mut events = 0;
                loop {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        break;
                    }
                    if remaining
                        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| r.checked_sub(1))
                        .is_err()
                    {
                        break;
                    }
                    let t0 = Instant::now();
                    let id = c.submit_encoded(&encoded).map_err(|e| e.to_string())?;
                    let rs = c.wait_receipts(id).map_err(|e| e.to_string())?;
                    lat.push(u32::try_from(t0.elapsed().as_micros()).unwrap_or(u32::MAX));
                    events += rs.len() as u64;
                }
                Ok((events, lat))
            })
        })
        .collect();
    let mut m = Measured {
        events: 0,
        seconds: 0.0,
        latencies_us: Vec::new(),
    };
    for t in threads {
        let (events, lat) = t
            .join()
            .map_err(|_| Failure::new("a client thread panicked"))?
            .map_err(Failure::new)?;
        m.events += events;
        m.latencies_us.extend(lat);
    }
    m.seconds = start.elapsed().as_secs_f64();
    m.latencies_us.sort_unstable();
    let rate = m.events as f64 / m.seconds;
    let mbs = rate * event_len as f64 / 1e6;
    let (p50, p99, p999) = (
        percentile(&m.latencies_us, 0.5),
        percentile(&m.latencies_us, 0.99),
        percentile(&m.latencies_us, 0.999),
    );
    if a.json {
        let mut v = json!({
            "clients": a.clients, "batch": batch, "event_bytes": event_len, "record_bytes": record_len,
            "seconds": m.seconds, "events": m.events, "requests": m.latencies_us.len(),
            "events_per_sec": rate, "mb_per_sec": mbs,
            "latency_ms": { "p50": p50, "p99": p99, "p999": p999 },
        });
        if let Some(c) = ceiling_rate {
            v["ceiling"] = json!({ "group_records": a.clients * batch, "events_per_sec": c, "ratio": rate / c });
        }
        println!("{v}");
    } else {
        println!(
            "chainlog bench: {} client(s) x {} event(s) of {} bytes ({} stored), {:.1} s, {} requests",
            a.clients,
            batch,
            event_len,
            record_len,
            m.seconds,
            m.latencies_us.len()
        );
        println!(
            "{:>12}  {:>8}  {:>8}  {:>8}  {:>9}",
            "events/s", "MB/s", "p50 ms", "p99 ms", "p99.9 ms"
        );
        println!("{rate:>12.0}  {mbs:>8.2}  {p50:>8.3}  {p99:>8.3}  {p999:>9.3}");
        if let Some(c) = ceiling_rate {
            println!(
                "ceiling: {c:.0} events/s (one write + fdatasync per {} records of {record_len} bytes, growing file); ratio {:.2}",
                a.clients * batch,
                rate / c
            );
        }
    }
    Ok(EXIT_OK)
}
