//! Ingest from other systems into the logs, inside chainlogd, on the same
//! event loop: today NATS JetStream (`docs/nats.md`). Each configured
//! ingest is a task with its own metrics and state, shown on the metrics
//! page, on `GET /readyz` and in the log stats.

use std::sync::atomic::AtomicU64;

use parking_lot::Mutex;

use crate::config::NatsIngest;

pub mod mapping;
pub(crate) mod nats;

/// Where an ingest is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestState {
    /// Connecting, or waiting to reconnect (the last error, if any).
    Connecting(String),
    /// Consuming messages.
    Consuming,
    /// Stopped for good until a restart (the reason: its log is poisoned).
    Stopped(String),
}

impl IngestState {
    /// Its name: `connecting`, `consuming` or `stopped`.
    pub fn name(&self) -> &'static str {
        match self {
            IngestState::Connecting(_) => "connecting",
            IngestState::Consuming => "consuming",
            IngestState::Stopped(_) => "stopped",
        }
    }

    /// The error or reason, if any.
    pub fn detail(&self) -> &str {
        match self {
            IngestState::Connecting(e) | IngestState::Stopped(e) => e,
            IngestState::Consuming => "",
        }
    }
}

/// One ingest's counters.
#[derive(Debug, Default)]
pub struct IngestMetrics {
    /// Messages delivered to it (redeliveries included).
    pub received: AtomicU64,
    /// Messages stored as new events.
    pub stored: AtomicU64,
    /// Messages recognised as events already stored.
    pub duplicates: AtomicU64,
    /// Of the duplicates, those whose content differed from the stored
    /// event's (a dual-published copy on another subject): the first copy
    /// stands.
    pub conflicts: AtomicU64,
    /// Messages terminated as unusable (and published to the dead-letter
    /// subject, if one is configured).
    pub dead_lettered: AtomicU64,
    /// Messages delivered more than once.
    pub redelivered: AtomicU64,
    /// Messages given back to JetStream for later (busy log, failed
    /// dead-letter publish, failed append).
    pub naked: AtomicU64,
    /// Acknowledgements that failed (the message will be redelivered and
    /// recognised as a duplicate).
    pub ack_failures: AtomicU64,
    /// Messages left in the consumer, as of the last delivery.
    pub pending: AtomicU64,
    /// When the last acknowledgement was confirmed, in milliseconds since
    /// 1970; 0 for never.
    pub last_ack_ms: AtomicU64,
}

/// One configured ingest.
#[derive(Debug)]
pub struct Ingest {
    /// Its configuration.
    pub config: NatsIngest,
    /// Its counters.
    pub metrics: IngestMetrics,
    state: Mutex<IngestState>,
}

impl Ingest {
    /// A new ingest, not yet connected.
    pub fn new(config: NatsIngest) -> Ingest {
        Ingest {
            config,
            metrics: IngestMetrics::default(),
            state: Mutex::new(IngestState::Connecting(String::new())),
        }
    }

    /// Its name.
    pub fn label(&self) -> &str {
        self.config.label()
    }

    /// Where it is.
    pub fn state(&self) -> IngestState {
        self.state.lock().clone()
    }

    pub(crate) fn set_state(&self, s: IngestState) {
        *self.state.lock() = s;
    }
}

/// The ingests' series in the Prometheus text format, labelled
/// `ingest="NAME"`.
pub fn render_metrics(ingests: &[std::sync::Arc<Ingest>], o: &mut String) {
    use std::fmt::Write;
    use std::sync::atomic::Ordering;
    if ingests.is_empty() {
        return;
    }
    type Read = fn(&Ingest) -> f64;
    let series: [(&str, &str, &str, Read); 12] = [
        (
            "chainlog_ingest_received_total",
            "counter",
            "Messages delivered to the ingest, redeliveries included.",
            |i| i.metrics.received.load(Ordering::Relaxed) as f64,
        ),
        (
            "chainlog_ingest_stored_total",
            "counter",
            "Messages stored as new events.",
            |i| i.metrics.stored.load(Ordering::Relaxed) as f64,
        ),
        (
            "chainlog_ingest_duplicates_total",
            "counter",
            "Messages recognised as events already stored.",
            |i| i.metrics.duplicates.load(Ordering::Relaxed) as f64,
        ),
        (
            "chainlog_ingest_conflicts_total",
            "counter",
            "Duplicates whose content differed from the stored event's; the first copy stands.",
            |i| i.metrics.conflicts.load(Ordering::Relaxed) as f64,
        ),
        (
            "chainlog_ingest_dead_lettered_total",
            "counter",
            "Messages terminated as unusable (and dead-lettered).",
            |i| i.metrics.dead_lettered.load(Ordering::Relaxed) as f64,
        ),
        (
            "chainlog_ingest_redelivered_total",
            "counter",
            "Messages delivered more than once.",
            |i| i.metrics.redelivered.load(Ordering::Relaxed) as f64,
        ),
        (
            "chainlog_ingest_naked_total",
            "counter",
            "Messages given back to JetStream for later.",
            |i| i.metrics.naked.load(Ordering::Relaxed) as f64,
        ),
        (
            "chainlog_ingest_ack_failures_total",
            "counter",
            "Acknowledgements that failed (redelivered, then recognised as duplicates).",
            |i| i.metrics.ack_failures.load(Ordering::Relaxed) as f64,
        ),
        (
            "chainlog_ingest_pending",
            "gauge",
            "Messages left in the consumer, as of the last delivery (consumer lag).",
            |i| i.metrics.pending.load(Ordering::Relaxed) as f64,
        ),
        (
            "chainlog_ingest_last_ack_timestamp_seconds",
            "gauge",
            "When the last acknowledgement was confirmed; 0 for never.",
            |i| i.metrics.last_ack_ms.load(Ordering::Relaxed) as f64 / 1000.0,
        ),
        (
            "chainlog_ingest_consuming",
            "gauge",
            "1 while the ingest is consuming, else 0.",
            |i| f64::from(u8::from(i.state() == IngestState::Consuming)),
        ),
        (
            "chainlog_ingest_stopped",
            "gauge",
            "1 once the ingest has stopped for good (its log poisoned), else 0.",
            |i| f64::from(u8::from(matches!(i.state(), IngestState::Stopped(_)))),
        ),
    ];
    for (name, kind, help, read) in series {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for i in ingests {
            let _ = writeln!(o, "{name}{{ingest=\"{}\"}} {}", i.label(), read(i));
        }
    }
}

/// The stats of the ingests that append to `log`, for STATS_OK.
pub fn stats_for(ingests: &[std::sync::Arc<Ingest>], log: &str) -> Vec<proto::msg::IngestStats> {
    use std::sync::atomic::Ordering::Relaxed;
    ingests
        .iter()
        .filter(|i| i.config.log == log)
        .map(|i| {
            let (m, s) = (&i.metrics, i.state());
            proto::msg::IngestStats {
                name: i.label().to_string(),
                state: s.name().to_string(),
                detail: s.detail().to_string(),
                received: m.received.load(Relaxed),
                stored: m.stored.load(Relaxed),
                duplicates: m.duplicates.load(Relaxed),
                dead_lettered: m.dead_lettered.load(Relaxed),
                redelivered: m.redelivered.load(Relaxed),
                pending: m.pending.load(Relaxed),
                last_ack_ms: m.last_ack_ms.load(Relaxed),
            }
        })
        .collect()
}
