//! `chainlog bench`: closed-loop append load against a running server, with
//! the disk's raw ceilings measured beside it in the same run, and the CPU
//! that the server and the load tool itself spent per event.
//!
//! Each client is one connection that sends a batch of `--batch` events of
//! `--payload` bytes (encoded) and waits for its receipts before sending the
//! next. Every client runs on one event-loop thread, so the load tool costs
//! one core at most and says how much of it it used.
//!
//! The ceilings (`--ceiling DIR`, a directory on the server's disk, such as
//! its data directory) are one thread doing what a perfect log would: one
//! write and one `fdatasync` per group of `clients x batch` records of the
//! same stored size, no server, into a growing file and into a file of
//! zeros written and synced beforehand (what a pre-written segment is).
//!
//! The server's figures come from its metrics endpoint (`--metrics`):
//! `process_cpu_seconds_total`, the sync count and group sizes, its threads
//! and resident memory, read before and after the run.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use client::Event;
use proto::frame;
use proto::msg::{self, Request, Response};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::{Cli, Failure, EXIT_OK};

/// `chainlog bench`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    /// Another benchmark than appends.
    #[command(subcommand)]
    pub what: Option<What>,
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
    /// First measure the raw write+fdatasync ceilings (growing and
    /// pre-written file) in this directory (put it on the server's disk).
    #[arg(long)]
    pub ceiling: Option<PathBuf>,
    /// Seconds each ceiling is measured for.
    #[arg(long, default_value_t = 3.0)]
    pub ceiling_seconds: f64,
    /// The server's metrics endpoint, for its CPU, syncs and threads ("" to skip).
    #[arg(long, default_value = "127.0.0.1:7401")]
    pub metrics: String,
    /// Idle authenticated connections held open beside the appenders (each
    /// must answer a ping afterwards).
    #[arg(long, default_value_t = 0)]
    pub idle: usize,
    /// Append over the HTTP/JSON API at this address (keep-alive, one
    /// connection per client; the batch as `{"events": [...]}`, or one
    /// event object for --batch 1) instead of the binary protocol.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<String>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The benchmarks other than appends.
#[derive(Debug, clap::Subcommand)]
pub enum What {
    /// Query times on a seeded data set (loaded first into an empty log).
    Query(super::bench_query::Args),
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

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    f64::from(sorted[i]) / 1000.0
}

/// Events per second of one thread writing and syncing groups of `group`
/// records for `secs`.
fn ceiling(
    dir: &Path,
    record_len: usize,
    group: usize,
    secs: f64,
    prewrite: bool,
) -> Result<f64, Failure> {
    std::fs::create_dir_all(dir)?;
    let mut c = chainlog_benches::RawCeiling::new(dir, record_len, group, prewrite)?;
    let start = Instant::now();
    let mut groups = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        c.group()?;
        groups += 1;
    }
    let rate = (groups * group as u64) as f64 / start.elapsed().as_secs_f64();
    drop(c);
    for name in ["ceiling-growing", "ceiling-prewritten"] {
        let _ = std::fs::remove_file(dir.join(name));
    }
    Ok(rate)
}

/// This process's user+system CPU seconds (`/proc/self/stat`, in
/// `USER_HZ` = 100 ticks a second).
fn own_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let u: u64 = f.get(11)?.parse().ok()?;
    let s: u64 = f.get(12)?.parse().ok()?;
    Some((u + s) as f64 / 100.0)
}

/// What the server's metrics endpoint said.
#[derive(Debug, Clone, Copy, Default)]
struct ServerFigures {
    cpu_seconds: f64,
    syncs: f64,
    synced_events: f64,
    threads: f64,
    resident_bytes: f64,
}

/// Sums every sample of `name` (over the labels) in a Prometheus page.
fn sample_sum(page: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in page.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        let v: f64 = rest.rsplit(' ').next()?.parse().ok()?;
        *found.get_or_insert(0.0) += v;
    }
    found
}

fn scrape(addr: &str) -> Option<ServerFigures> {
    use std::io::{Read, Write};
    if addr.is_empty() {
        return None;
    }
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut page = String::new();
    s.read_to_string(&mut page).ok()?;
    Some(ServerFigures {
        cpu_seconds: sample_sum(&page, "process_cpu_seconds_total")?,
        syncs: sample_sum(&page, "chainlog_sync_seconds_count").unwrap_or(0.0),
        synced_events: sample_sum(&page, "chainlog_group_size_sum").unwrap_or(0.0),
        threads: sample_sum(&page, "process_threads").unwrap_or(0.0),
        resident_bytes: sample_sum(&page, "process_resident_memory_bytes").unwrap_or(0.0),
    })
}

/// A connection that has done the handshake and authenticated.
struct Conn {
    rd: BufReader<tokio::net::tcp::OwnedReadHalf>,
    wr: tokio::net::tcp::OwnedWriteHalf,
    body: Vec<u8>,
}

type Fail = String;

impl Conn {
    async fn open(addr: &str, key: &str) -> Result<Conn, Fail> {
        let s = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        let (rd, mut wr) = s.into_split();
        let mut rd = BufReader::with_capacity(64 << 10, rd);
        wr.write_all(&frame::client_preamble(
            frame::PROTOCOL_VERSION,
            frame::PROTOCOL_VERSION,
        ))
        .await
        .map_err(|e| e.to_string())?;
        let mut p = [0u8; frame::PREAMBLE_LEN];
        rd.read_exact(&mut p).await.map_err(|e| e.to_string())?;
        frame::parse_server_preamble(&p).map_err(|e| e.to_string())?;
        let mut c = Conn {
            rd,
            wr,
            body: Vec::new(),
        };
        let mut out = Vec::new();
        msg::encode_request(&mut out, 1, &Request::Auth { key: key.into() });
        match c.call(&out).await? {
            (1, Response::AuthOk { .. }) => Ok(c),
            (_, Response::Error(e)) => Err(format!("authentication: {e}")),
            (_, other) => Err(format!("authentication: unexpected {other:?}")),
        }
    }

    /// Sends one request frame and reads one response.
    async fn call(&mut self, request: &[u8]) -> Result<(u32, Response), Fail> {
        self.wr
            .write_all(request)
            .await
            .map_err(|e| e.to_string())?;
        self.response().await
    }

    async fn response(&mut self) -> Result<(u32, Response), Fail> {
        let mut h = [0u8; frame::FRAME_HEADER_LEN];
        self.rd
            .read_exact(&mut h)
            .await
            .map_err(|e| e.to_string())?;
        let header = frame::parse_header(&h, 64 << 20).map_err(|e| e.to_string())?;
        self.body.resize(header.body_len, 0);
        self.rd
            .read_exact(&mut self.body)
            .await
            .map_err(|e| e.to_string())?;
        let r = msg::decode_response(header.kind, &self.body).map_err(|e| e.to_string())?;
        Ok((header.request_id, r))
    }
}

/// Whether a client sends another request: the run's time is not up and
/// (with `--events`) requests are left, one of which it takes.
fn another(remaining: &AtomicU64, deadline: Option<Instant>) -> bool {
    deadline.is_none_or(|d| Instant::now() < d)
        && remaining
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| r.checked_sub(1))
            .is_ok()
}

/// The event as the HTTP API takes it.
fn event_json(e: &Event) -> serde_json::Value {
    json!({
        "tenant_id": e.tenant_id, "actor_id": e.actor_id, "actor_name": e.actor_name,
        "action": e.action, "resource": e.resource, "resource_id": e.resource_id,
        "metadata": serde_json::from_str::<serde_json::Value>(&e.metadata).unwrap_or_else(|_| json!({})),
    })
}

/// A keep-alive HTTP/1.1 connection that sends one prepared request at a
/// time and reads its reply by `Content-Length`.
struct HttpConn {
    rd: BufReader<tokio::net::tcp::OwnedReadHalf>,
    wr: tokio::net::tcp::OwnedWriteHalf,
    head: Vec<u8>,
    body: Vec<u8>,
}

impl HttpConn {
    async fn open(addr: &str) -> Result<HttpConn, Fail> {
        let s = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        let (rd, wr) = s.into_split();
        Ok(HttpConn {
            rd: BufReader::with_capacity(64 << 10, rd),
            wr,
            head: Vec::new(),
            body: Vec::new(),
        })
    }

    /// Sends `request` and returns the reply's status (its body in
    /// `self.body`).
    async fn call(&mut self, request: &[u8]) -> Result<u16, Fail> {
        use tokio::io::AsyncBufReadExt;
        self.wr
            .write_all(request)
            .await
            .map_err(|e| e.to_string())?;
        self.head.clear();
        let mut len = 0usize;
        let mut status = 0u16;
        loop {
            let start = self.head.len();
            let n = self
                .rd
                .read_until(b'\n', &mut self.head)
                .await
                .map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("the server closed the connection".into());
            }
            let line = std::str::from_utf8(&self.head[start..])
                .map_err(|_| "a reply header is not UTF-8".to_string())?
                .trim_end();
            if start == 0 {
                status = line
                    .get(9..12)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| format!("not an HTTP status line: {line:?}"))?;
            } else if line.is_empty() {
                break;
            } else if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v
                        .trim()
                        .parse()
                        .map_err(|_| "a bad Content-Length".to_string())?;
                }
            }
        }
        self.body.resize(len, 0);
        self.rd
            .read_exact(&mut self.body)
            .await
            .map_err(|e| e.to_string())?;
        Ok(status)
    }
}

/// One closed-loop HTTP client.
async fn http_client(
    addr: Arc<str>,
    request: Arc<Vec<u8>>,
    batch: usize,
    remaining: Arc<AtomicU64>,
    deadline: Option<Instant>,
) -> Result<(u64, Vec<u32>), Fail> {
    let mut c = HttpConn::open(&addr).await?;
    let mut lat = Vec::with_capacity(1 << 16);
    let mut events = 0u64;
    loop {
        if !another(&remaining, deadline) {
            break;
        }
        let t0 = Instant::now();
        match c.call(&request).await? {
            200 | 201 => events += batch as u64,
            status => {
                return Err(format!(
                    "append: HTTP {status}: {}",
                    String::from_utf8_lossy(&c.body)
                ))
            }
        }
        lat.push(u32::try_from(t0.elapsed().as_micros()).unwrap_or(u32::MAX));
    }
    Ok((events, lat))
}

/// The HTTP request a client sends, again and again.
fn http_request(addr: &str, key: &str, events: &[Event]) -> Vec<u8> {
    let body = if events.len() == 1 {
        event_json(&events[0])
    } else {
        json!({"events": events.iter().map(event_json).collect::<Vec<_>>()})
    }
    .to_string();
    format!(
        "POST /api/v1/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// One closed-loop client: its events and the latency of each request.
async fn client(
    addr: Arc<str>,
    key: Arc<str>,
    request: Arc<Vec<u8>>,
    batch: usize,
    remaining: Arc<AtomicU64>,
    deadline: Option<Instant>,
) -> Result<(u64, Vec<u32>), Fail> {
    let mut c = Conn::open(&addr, &key).await?;
    let mut lat = Vec::with_capacity(1 << 16);
    let mut events = 0u64;
    loop {
        if !another(&remaining, deadline) {
            break;
        }
        let t0 = Instant::now();
        match c.call(&request).await? {
            (2, Response::Receipts(rs)) if rs.len() == batch => events += rs.len() as u64,
            (_, Response::Error(e)) => return Err(format!("append: {e}")),
            (id, other) => return Err(format!("append: unexpected reply {id}: {other:?}")),
        }
        lat.push(u32::try_from(t0.elapsed().as_micros()).unwrap_or(u32::MAX));
    }
    Ok((events, lat))
}

/// Runs `chainlog bench`.
pub fn run(cli: &Cli, a: &Args) -> Result<i32, Failure> {
    if let Some(What::Query(q)) = &a.what {
        return super::bench_query::run(cli, q);
    }
    if a.clients == 0 {
        return Err(Failure::new("--clients must be at least 1"));
    }
    let connection = cli.settings()?;
    if connection.tls.is_some() {
        // Its clients speak the protocol over plain tokio sockets.
        return Err(Failure {
            code: crate::cli::EXIT_USAGE,
            ..Failure::new("bench does not speak TLS: run it against a plain (loopback) listener")
        });
    }
    let batch = usize::from(a.batch);
    let event_len = sized_event(0, 0, a.payload).as_ref().encoded_len();
    let record_len = event_len + engine::format::record::RECORD_OVERHEAD;
    let group = a.clients * batch;
    let secs = a.duration.max(1) as f64;
    let ceilings = match &a.ceiling {
        Some(dir) => {
            let s = a.ceiling_seconds.max(0.1);
            Some((
                ceiling(dir, record_len, group, s, false)?,
                ceiling(dir, record_len, group, s, true)?,
            ))
        }
        None => None,
    };
    let crate::cli::Connection { addr, key, .. } = connection;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (addr, key): (Arc<str>, Arc<str>) = (addr.into(), key.into());
    // Idle connections first, so that the appenders run beside them.
    let mut idle = Vec::with_capacity(a.idle);
    for _ in 0..a.idle {
        idle.push(rt.block_on(Conn::open(&addr, &key)).map_err(Failure::new)?);
    }
    let before = scrape(&a.metrics);
    let cpu_before = own_cpu_seconds();
    let remaining = Arc::new(AtomicU64::new(
        a.events.map_or(u64::MAX, |n| n.div_ceil(batch as u64)),
    ));
    let start = Instant::now();
    let deadline = a
        .events
        .is_none()
        .then(|| start + Duration::from_secs_f64(secs));
    let results = rt.block_on(async {
        let tasks: Vec<_> = (0..a.clients)
            .map(|t| {
                if let Some(http) = &a.http {
                    let events: Vec<Event> =
                        (0..batch).map(|i| sized_event(t, i, a.payload)).collect();
                    let request = http_request(http, &key, &events);
                    return tokio::spawn(http_client(
                        http.as_str().into(),
                        Arc::new(request),
                        batch,
                        remaining.clone(),
                        deadline,
                    ));
                }
                let events: Vec<Vec<u8>> = (0..batch)
                    .map(|i| sized_event(t, i, a.payload).encode())
                    .collect();
                let mut request = Vec::new();
                let refs: Vec<&[u8]> = events.iter().map(Vec::as_slice).collect();
                msg::encode_request(&mut request, 2, &Request::Append { events: refs });
                tokio::spawn(client(
                    addr.clone(),
                    key.clone(),
                    Arc::new(request),
                    batch,
                    remaining.clone(),
                    deadline,
                ))
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.map_err(|e| e.to_string()).and_then(|r| r));
        }
        out
    });
    let seconds = start.elapsed().as_secs_f64();
    let cpu_after = own_cpu_seconds();
    let after = scrape(&a.metrics);
    let mut events = 0u64;
    let mut latencies: Vec<u32> = Vec::new();
    for r in results {
        let (n, lat) = r.map_err(Failure::new)?;
        events += n;
        latencies.extend(lat);
    }
    // Every idle connection must still answer.
    let mut idle_failed = 0usize;
    rt.block_on(async {
        let mut ping = Vec::new();
        msg::encode_request(&mut ping, 3, &Request::Ping(7));
        for c in &mut idle {
            if !matches!(c.call(&ping).await, Ok((3, Response::Pong(7)))) {
                idle_failed += 1;
            }
        }
    });
    latencies.sort_unstable();
    let rate = events as f64 / seconds;
    let mbs = rate * event_len as f64 / 1e6;
    let (p50, p99, p999) = (
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        percentile(&latencies, 0.999),
    );
    let tool_us = match (cpu_before, cpu_after) {
        (Some(b), Some(a)) if events > 0 => Some((a - b) * 1e6 / events as f64),
        _ => None,
    };
    let tool_cores = match (cpu_before, cpu_after) {
        (Some(b), Some(a)) => Some((a - b) / seconds),
        _ => None,
    };
    let server = match (before, after) {
        (Some(b), Some(a)) if events > 0 => Some(json!({
            "cpu_us_per_event": (a.cpu_seconds - b.cpu_seconds) * 1e6 / events as f64,
            "cpu_cores": (a.cpu_seconds - b.cpu_seconds) / seconds,
            "syncs": a.syncs - b.syncs,
            "events_per_sync": if a.syncs > b.syncs { (a.synced_events - b.synced_events) / (a.syncs - b.syncs) } else { 0.0 },
            "threads": a.threads,
            "resident_mib": a.resident_bytes / (1 << 20) as f64,
        })),
        _ => None,
    };
    let mut v = json!({
        "protocol": if a.http.is_some() { "http" } else { "binary" },
        "clients": a.clients, "batch": batch, "event_bytes": event_len, "record_bytes": record_len,
        "seconds": seconds, "events": events, "requests": latencies.len(),
        "events_per_sec": rate, "mb_per_sec": mbs,
        "latency_ms": { "p50": p50, "p99": p99, "p999": p999 },
        "load_tool": { "cpu_us_per_event": tool_us, "cpu_cores": tool_cores },
        "idle_connections": a.idle, "idle_failed_ping": idle_failed,
    });
    if let Some(s) = &server {
        v["server"] = s.clone();
    }
    if let Some((growing, pre)) = ceilings {
        v["ceiling"] = json!({
            "group_records": group,
            "growing": { "events_per_sec": growing, "ratio": rate / growing },
            "prewritten": { "events_per_sec": pre, "ratio": rate / pre },
        });
    }
    if a.json {
        println!("{v}");
    } else {
        println!(
            "chainlog bench{}: {} client(s) x {} event(s) of {} bytes ({} stored), {:.1} s, {} requests{}",
            if a.http.is_some() { " (http)" } else { "" },
            a.clients,
            batch,
            event_len,
            record_len,
            seconds,
            latencies.len(),
            if a.idle > 0 { format!(", {} idle connections beside ({} failed a ping after)", a.idle, idle_failed) } else { String::new() }
        );
        println!(
            "{:>12}  {:>8}  {:>8}  {:>8}  {:>9}",
            "events/s", "MB/s", "p50 ms", "p99 ms", "p99.9 ms"
        );
        println!("{rate:>12.0}  {mbs:>8.2}  {p50:>8.3}  {p99:>8.3}  {p999:>9.3}");
        let fmt = |x: Option<f64>| x.map_or("n/a".to_string(), |x| format!("{x:.2}"));
        println!(
            "load tool: {} us CPU per event ({} cores)",
            fmt(tool_us),
            fmt(tool_cores)
        );
        if let Some(s) = &server {
            println!(
                "server: {:.2} us CPU per event ({:.2} cores), {:.0} syncs, {:.1} events per sync, {} threads, {:.1} MiB resident",
                s["cpu_us_per_event"].as_f64().unwrap_or(0.0),
                s["cpu_cores"].as_f64().unwrap_or(0.0),
                s["syncs"].as_f64().unwrap_or(0.0),
                s["events_per_sync"].as_f64().unwrap_or(0.0),
                s["threads"],
                s["resident_mib"].as_f64().unwrap_or(0.0),
            );
        } else {
            println!(
                "server: no figures (metrics endpoint {:?} not reachable)",
                a.metrics
            );
        }
        if let Some((growing, pre)) = ceilings {
            println!(
                "ceilings (one write + fdatasync per {group} records of {record_len} bytes): growing file {growing:.0} events/s, ratio {:.2}; pre-written file {pre:.0} events/s, ratio {:.2}",
                rate / growing,
                rate / pre
            );
        }
    }
    Ok(EXIT_OK)
}
