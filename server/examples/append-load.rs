//! A small closed-loop append load against a running chainlogd, for the
//! figures in issue 5's note (the full load tool is `chainlog bench`).
//!
//! ```sh
//! cargo run --release -p chainlog-server --example append-load -- ADDR KEY [CLIENTS] [BATCH] [SECONDS]
//! ```
//!
//! Each client appends batches of BATCH events (about 256-byte payloads)
//! one at a time, waiting for each receipt; prints appends/s and latency
//! percentiles, and the server's RSS if PID is in CHAINLOGD_PID.

use std::time::{Duration, Instant};

use client::{Client, Event};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().collect();
    let addr = a
        .get(1)
        .ok_or("usage: append-load ADDR KEY [CLIENTS] [BATCH] [SECONDS]")?
        .clone();
    let key = a.get(2).ok_or("missing KEY")?.clone();
    let clients: usize = a.get(3).map(|s| s.parse()).transpose()?.unwrap_or(16);
    let batch: usize = a.get(4).map(|s| s.parse()).transpose()?.unwrap_or(1);
    let secs: u64 = a.get(5).map(|s| s.parse()).transpose()?.unwrap_or(10);
    let until = Instant::now() + Duration::from_secs(secs);
    let threads: Vec<_> = (0..clients)
        .map(|t| {
            let (addr, key) = (addr.clone(), key.clone());
            std::thread::spawn(move || -> Result<Vec<Duration>, String> {
                let mut c = Client::connect(&addr).map_err(|e| e.to_string())?;
                c.auth(&key).map_err(|e| e.to_string())?;
                let events: Vec<Event> = (0..batch)
                    .map(|i| Event {
                        tenant_id: format!("tenant-{}", t % 10),
                        actor_id: format!("user-{t}-{i}"),
                        action: "document.viewed".into(),
                        resource: "document".into(),
                        resource_id: "doc-0001".into(),
                        metadata: format!("{{\"pad\":\"{}\"}}", "x".repeat(160)),
                        ..Event::default()
                    })
                    .collect();
                let mut lat = Vec::new();
                while Instant::now() < until {
                    let s = Instant::now();
                    c.append_batch(&events).map_err(|e| e.to_string())?;
                    lat.push(s.elapsed());
                }
                Ok(lat)
            })
        })
        .collect();
    let start = Instant::now();
    let mut rss_peak = 0;
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(200));
        if let Ok(pid) = std::env::var("CHAINLOGD_PID") {
            if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
                let kb: u64 = s
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                    .unwrap_or(0);
                rss_peak = rss_peak.max(kb);
            }
        }
    }
    let mut lat = Vec::new();
    for t in threads {
        lat.extend(t.join().map_err(|_| "client panicked")??);
    }
    let elapsed = start.elapsed().as_secs_f64();
    lat.sort();
    let pct =
        |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)].as_secs_f64() * 1e3;
    println!(
        "{clients} clients x batch {batch}: {:.0} events/s, batch latency p50 {:.2} ms p99 {:.2} ms; server peak RSS {} KiB",
        (lat.len() * batch) as f64 / elapsed,
        pct(0.5),
        pct(0.99),
        rss_peak
    );
    Ok(())
}
