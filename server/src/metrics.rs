//! Counters and histograms, and the Prometheus text page of them (served
//! on its own, loopback by default, port by the HTTP stack: `http`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use proto::msg::ErrorCode;

/// A histogram with fixed upper bounds.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    /// The sum, in units of `1 / scale` (nanoseconds for seconds, whole
    /// records for group sizes): an integer that cannot drift.
    sum: AtomicU64,
    scale: f64,
}

impl Histogram {
    fn new(bounds: &'static [f64], scale: f64) -> Self {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
            scale,
        }
    }

    /// Records one observation.
    pub fn observe(&self, v: f64) {
        let i = self
            .bounds
            .iter()
            .position(|&b| v <= b)
            .unwrap_or(self.bounds.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum
            .fetch_add((v * self.scale) as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cum = 0;
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, c) in self.counts.iter().enumerate() {
            cum += c.load(Ordering::Relaxed);
            let le = self
                .bounds
                .get(i)
                .map_or("+Inf".to_string(), |b| b.to_string());
            out.push_str(&format!(
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cum}\n"
            ));
        }
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        out.push_str(&format!(
            "{name}_sum{braces} {}\n{name}_count{braces} {cum}\n",
            self.sum.load(Ordering::Relaxed) as f64 / self.scale
        ));
    }
}

const SYNC_BOUNDS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];
const GROUP_BOUNDS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
];

/// Per-log write-path metrics, fed by the engine's observer.
#[derive(Debug)]
pub struct LogMetrics {
    /// The log's name.
    pub log: String,
    /// Events acknowledged.
    pub appends: AtomicU64,
    /// Event bytes acknowledged.
    pub bytes: AtomicU64,
    /// Events answered as duplicates.
    pub duplicates: AtomicU64,
    /// Event index files rebuilt from their segments (missing, or not
    /// checking).
    pub index_rebuilds: AtomicU64,
    /// Seconds per `fdatasync`.
    pub sync_seconds: Histogram,
    /// Events per acknowledged group.
    pub group_size: Histogram,
}

impl LogMetrics {
    /// Zeroed metrics for `log`.
    pub fn new(log: &str) -> Self {
        LogMetrics {
            log: log.to_owned(),
            appends: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            index_rebuilds: AtomicU64::new(0),
            sync_seconds: Histogram::new(SYNC_BOUNDS, 1e9),
            group_size: Histogram::new(GROUP_BOUNDS, 1.0),
        }
    }
}

/// Server-wide metrics.
#[derive(Debug)]
pub struct Metrics {
    /// Connections open now.
    pub connections: AtomicU64,
    /// Connections accepted since start.
    pub connections_total: AtomicU64,
    /// Connections the server closed for the idle timeout.
    pub idle_closed: AtomicU64,
    /// TLS handshakes that failed or timed out.
    pub tls_handshake_failures: AtomicU64,
    /// TLS reloads (SIGHUP) that took effect.
    pub tls_reloads: AtomicU64,
    /// TLS reloads refused (the files were unusable; the old ones stay).
    pub tls_reload_failures: AtomicU64,
    /// Error replies, by code number (index = code).
    errors: Vec<AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            connections: AtomicU64::new(0),
            connections_total: AtomicU64::new(0),
            idle_closed: AtomicU64::new(0),
            tls_handshake_failures: AtomicU64::new(0),
            tls_reloads: AtomicU64::new(0),
            tls_reload_failures: AtomicU64::new(0),
            errors: (0..=ErrorCode::ALL.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
        }
    }
}

impl Metrics {
    /// Counts an error reply.
    pub fn error(&self, code: ErrorCode) {
        let i = (code.to_u16() as usize).min(self.errors.len() - 1);
        self.errors[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Error replies with `code` so far.
    pub fn errors(&self, code: ErrorCode) -> u64 {
        let i = (code.to_u16() as usize).min(self.errors.len() - 1);
        self.errors[i].load(Ordering::Relaxed)
    }
}

/// One log's gauges at render time.
#[derive(Debug)]
pub struct LogGauges {
    /// Appends waiting for the writer.
    pub queue_depth: usize,
    /// Events stored.
    pub events: u64,
    /// Stored events with unknown actions.
    pub unknown_actions: u64,
    /// Keys in the in-memory dedup table (pending, or stored and not yet indexed).
    pub dedup_keys: usize,
    /// Whether a failed write or sync has stopped its appends.
    pub poisoned: bool,
    /// Bytes of its directory's files (segments, pre-written ones at their
    /// full size, and index files).
    pub disk_bytes: u64,
}

/// A per-log series: name, help, and how to read it.
type Series<T> = (&'static str, &'static str, fn(&T) -> u64);

/// Renders everything in the Prometheus text format.
pub fn render(m: &Metrics, logs: &[(Arc<LogMetrics>, LogGauges)]) -> String {
    let mut o = String::new();
    let head = |o: &mut String, name: &str, kind: &str, help: &str| {
        o.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
    };
    head(
        &mut o,
        "chainlog_build_info",
        "gauge",
        "The running build; always 1.",
    );
    o.push_str(&format!(
        "chainlog_build_info{{version=\"{}\"}} 1\n",
        env!("CARGO_PKG_VERSION")
    ));
    head(
        &mut o,
        "chainlog_connections_open",
        "gauge",
        "Connections open.",
    );
    o.push_str(&format!(
        "chainlog_connections_open {}\n",
        m.connections.load(Ordering::Relaxed)
    ));
    head(
        &mut o,
        "chainlog_connections_total",
        "counter",
        "Connections accepted.",
    );
    o.push_str(&format!(
        "chainlog_connections_total {}\n",
        m.connections_total.load(Ordering::Relaxed)
    ));
    head(
        &mut o,
        "chainlog_idle_closed_total",
        "counter",
        "Connections closed for the idle timeout.",
    );
    o.push_str(&format!(
        "chainlog_idle_closed_total {}\n",
        m.idle_closed.load(Ordering::Relaxed)
    ));
    for (name, help, v) in [
        (
            "chainlog_tls_handshake_failures_total",
            "TLS handshakes that failed or timed out.",
            &m.tls_handshake_failures,
        ),
        (
            "chainlog_tls_reloads_total",
            "TLS certificate reloads that took effect.",
            &m.tls_reloads,
        ),
        (
            "chainlog_tls_reload_failures_total",
            "TLS certificate reloads refused; the previous files stay in force.",
            &m.tls_reload_failures,
        ),
    ] {
        head(&mut o, name, "counter", help);
        o.push_str(&format!("{name} {}\n", v.load(Ordering::Relaxed)));
    }
    head(
        &mut o,
        "chainlog_errors_total",
        "counter",
        "Error replies by code.",
    );
    for c in ErrorCode::ALL {
        o.push_str(&format!(
            "chainlog_errors_total{{code=\"{}\"}} {}\n",
            c.name(),
            m.errors(c)
        ));
    }
    let counters: [Series<LogMetrics>; 4] = [
        (
            "chainlog_appends_total",
            "Events acknowledged durable.",
            |l| l.appends.load(Ordering::Relaxed),
        ),
        (
            "chainlog_append_bytes_total",
            "Encoded event bytes acknowledged.",
            |l| l.bytes.load(Ordering::Relaxed),
        ),
        (
            "chainlog_duplicates_total",
            "Events answered with an earlier receipt.",
            |l| l.duplicates.load(Ordering::Relaxed),
        ),
        (
            "chainlog_index_rebuilds_total",
            "Event index files rebuilt from their segments' records.",
            |l| l.index_rebuilds.load(Ordering::Relaxed),
        ),
    ];
    for (name, help, get) in counters {
        head(&mut o, name, "counter", help);
        for (l, _) in logs {
            o.push_str(&format!("{name}{{log=\"{}\"}} {}\n", l.log, get(l)));
        }
    }
    let gauges: [Series<LogGauges>; 6] = [
        (
            "chainlog_queue_depth",
            "Appends waiting for the writer.",
            |g| g.queue_depth as u64,
        ),
        ("chainlog_events", "Events stored.", |g| g.events),
        (
            "chainlog_unknown_action_events",
            "Stored events whose action the schema does not list.",
            |g| g.unknown_actions,
        ),
        (
            "chainlog_dedup_keys",
            "Idempotency keys and source ids in the window.",
            |g| g.dedup_keys as u64,
        ),
        (
            "chainlog_poisoned",
            "1 once a failed write or sync has stopped the log's appends (until restart), else 0.",
            |g| u64::from(g.poisoned),
        ),
        (
            "chainlog_disk_bytes",
            "Bytes of the log directory's files (pre-written segments at full size).",
            |g| g.disk_bytes,
        ),
    ];
    for (name, help, get) in gauges {
        head(&mut o, name, "gauge", help);
        for (l, g) in logs {
            o.push_str(&format!("{name}{{log=\"{}\"}} {}\n", l.log, get(g)));
        }
    }
    head(
        &mut o,
        "chainlog_head_seq",
        "gauge",
        "The newest durable event's seq (no sample for an empty log).",
    );
    for (l, g) in logs {
        if let Some(seq) = g.events.checked_sub(1) {
            o.push_str(&format!("chainlog_head_seq{{log=\"{}\"}} {seq}\n", l.log));
        }
    }
    head(
        &mut o,
        "chainlog_sync_seconds",
        "histogram",
        "fdatasync latency.",
    );
    for (l, _) in logs {
        l.sync_seconds.render(
            &mut o,
            "chainlog_sync_seconds",
            &format!("log=\"{}\"", l.log),
        );
    }
    head(
        &mut o,
        "chainlog_group_size",
        "histogram",
        "Events made durable per sync.",
    );
    for (l, _) in logs {
        l.group_size
            .render(&mut o, "chainlog_group_size", &format!("log=\"{}\"", l.log));
    }
    ProcessFigures::read().render(&mut o);
    o
}

/// The process's own figures, under the names Prometheus clients export
/// (`process_cpu_seconds_total` and the rest), read from `/proc/self`.
/// Missing figures (another OS, a restricted `/proc`) are left out.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessFigures {
    /// User and system CPU time, in seconds.
    pub cpu_seconds: Option<f64>,
    /// Resident set size, in bytes.
    pub resident_bytes: Option<u64>,
    /// Virtual memory size, in bytes.
    pub virtual_bytes: Option<u64>,
    /// Threads in the process.
    pub threads: Option<u64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// The soft limit on file descriptors.
    pub max_fds: Option<u64>,
    /// When the process started, in seconds since the epoch.
    pub start_time_seconds: Option<f64>,
}

/// `/proc`'s clock ticks per second: `USER_HZ`, which Linux fixes at 100
/// for every user-space interface on every architecture it runs on.
const USER_HZ: f64 = 100.0;

impl ProcessFigures {
    /// Reads this process's figures.
    pub fn read() -> ProcessFigures {
        let mut f = ProcessFigures::default();
        // /proc/self/stat: the fields after the command's closing paren
        // are space-separated; utime and stime are the 12th and 13th of
        // them, starttime the 20th (counting `state` as the 1st).
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            if let Some((_, rest)) = stat.rsplit_once(')') {
                let fields: Vec<&str> = rest.split_whitespace().collect();
                let num = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
                if let (Some(u), Some(s)) = (num(11), num(12)) {
                    f.cpu_seconds = Some((u + s) as f64 / USER_HZ);
                }
                let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|t| {
                    t.lines()
                        .find_map(|l| l.strip_prefix("btime "))
                        .and_then(|v| v.trim().parse::<u64>().ok())
                });
                if let (Some(start), Some(boot)) = (num(19), boot) {
                    f.start_time_seconds = Some(boot as f64 + start as f64 / USER_HZ);
                }
            }
        }
        if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
            let kib = |name: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            };
            f.resident_bytes = kib("VmRSS:").map(|k| k * 1024);
            f.virtual_bytes = kib("VmSize:").map(|k| k * 1024);
            f.threads = kib("Threads:");
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            // Less the descriptor of the directory being read.
            f.open_fds = Some(dir.count().saturating_sub(1) as u64);
        }
        if let Ok(limits) = std::fs::read_to_string("/proc/self/limits") {
            f.max_fds = limits
                .lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse().ok());
        }
        f
    }

    /// Appends the figures in the Prometheus text format.
    pub fn render(&self, o: &mut String) {
        let series: [(&str, &str, &str, Option<f64>); 7] = [
            (
                "process_cpu_seconds_total",
                "counter",
                "Total user and system CPU time spent in seconds.",
                self.cpu_seconds,
            ),
            (
                "process_resident_memory_bytes",
                "gauge",
                "Resident memory size in bytes.",
                self.resident_bytes.map(|v| v as f64),
            ),
            (
                "process_virtual_memory_bytes",
                "gauge",
                "Virtual memory size in bytes.",
                self.virtual_bytes.map(|v| v as f64),
            ),
            (
                "process_threads",
                "gauge",
                "Number of OS threads in the process.",
                self.threads.map(|v| v as f64),
            ),
            (
                "process_open_fds",
                "gauge",
                "Number of open file descriptors.",
                self.open_fds.map(|v| v as f64),
            ),
            (
                "process_max_fds",
                "gauge",
                "Maximum number of open file descriptors.",
                self.max_fds.map(|v| v as f64),
            ),
            (
                "process_start_time_seconds",
                "gauge",
                "Start time of the process since unix epoch in seconds.",
                self.start_time_seconds,
            ),
        ];
        for (name, kind, help, v) in series {
            if let Some(v) = v {
                o.push_str(&format!(
                    "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
                ));
            }
        }
    }
}
