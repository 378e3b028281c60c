//! `chainlog append`: one event from flags, or JSON lines from standard
//! input, sent in pipelined batches; one receipt printed per event.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufWriter, Write};

use client::{Client, ClientError, Event, RequestId};
use serde_json::Value;

use super::{event_json, receipt_line, time, Cli, Failure, EXIT_OK};

/// `chainlog append`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The tenant (not needed if the key allows exactly one).
    #[arg(long)]
    pub tenant: Option<String>,
    /// Who did it.
    #[arg(long)]
    pub actor: Option<String>,
    /// The actor's display name.
    #[arg(long)]
    pub actor_name: Option<String>,
    /// What was done, e.g. document.deleted.
    #[arg(long)]
    pub action: Option<String>,
    /// The type of thing it was done to.
    #[arg(long)]
    pub resource: Option<String>,
    /// Which one.
    #[arg(long)]
    pub resource_id: Option<String>,
    /// A JSON object.
    #[arg(long)]
    pub metadata: Option<String>,
    /// When it happened (RFC 3339 or Unix time) [default: now, by the server].
    #[arg(long)]
    pub occurred_at: Option<String>,
    /// A retry key: the same key again returns the first receipt.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// The event's id in the system it came from (deduplicated too).
    #[arg(long)]
    pub source_event_id: Option<String>,
    /// Ties related events together.
    #[arg(long)]
    pub correlation_id: Option<String>,
    /// Mark it as imported history.
    #[arg(long)]
    pub backfilled: bool,
    /// Events per request when reading standard input.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub batch: u16,
    /// Receipts as JSON lines.
    #[arg(long)]
    pub json: bool,
}

impl Args {
    fn event_from_flags(&self) -> Option<Result<Event, Failure>> {
        // Any event flag means one event from flags (then standard input
        // is not read, and no flag is silently ignored).
        let any = [
            &self.tenant,
            &self.actor,
            &self.actor_name,
            &self.action,
            &self.resource,
            &self.resource_id,
            &self.metadata,
            &self.occurred_at,
            &self.idempotency_key,
            &self.source_event_id,
            &self.correlation_id,
        ]
        .iter()
        .any(|f| f.is_some())
            || self.backfilled;
        if !any {
            return None;
        }
        let s = |v: &Option<String>| v.clone().unwrap_or_default();
        let mut e = Event {
            tenant_id: s(&self.tenant),
            actor_id: s(&self.actor),
            actor_name: s(&self.actor_name),
            action: s(&self.action),
            resource: s(&self.resource),
            resource_id: s(&self.resource_id),
            idempotency_key: s(&self.idempotency_key),
            source_event_id: s(&self.source_event_id),
            correlation_id: s(&self.correlation_id),
            backfilled: self.backfilled,
            ..Event::default()
        };
        if let Some(m) = &self.metadata {
            let v = Value::String(m.clone());
            if let Err(why) = event_json::set_field(&mut e, "metadata", &v) {
                return Some(Err(Failure::new(why)));
            }
        }
        if let Some(t) = &self.occurred_at {
            match time::parse(t) {
                Ok(ns) => e.occurred_at = ns,
                Err(why) => return Some(Err(Failure::new(why))),
            }
        }
        Some(Ok(e))
    }
}

/// Runs `chainlog append`.
pub fn run(cli: &Cli, a: &Args) -> Result<i32, Failure> {
    let single = a.event_from_flags().transpose()?;
    let mut c = cli.connect()?;
    let mut out = BufWriter::new(io::stdout().lock());
    if let Some(e) = single {
        let r = c.append(&e)?;
        writeln!(out, "{}", receipt_line(&r, a.json))?;
        out.flush()?;
        return Ok(EXIT_OK);
    }
    // JSON lines: pipelined batches, at most 8 in flight, each with the
    // input line numbers of its events. On any failure, reading stops,
    // every batch already sent is still waited for and its receipts
    // printed, and then the failure is reported.
    let mut in_flight: VecDeque<(RequestId, Vec<u64>)> = VecDeque::new();
    let mut failure: Option<Failure> = None;
    let mut batch = Vec::new();
    let mut lines = Vec::new();
    let mut bytes = 0usize;
    'input: for (i, line) in io::stdin().lock().lines().enumerate() {
        let n = i as u64 + 1;
        let parsed = line.map_err(Failure::from).and_then(|l| {
            if l.trim().is_empty() {
                return Ok(None);
            }
            let v: Value =
                serde_json::from_str(&l).map_err(|e| Failure::new(format!("line {n}: {e}")))?;
            event_json::from_json(&v)
                .map(Some)
                .map_err(|e| Failure::new(format!("line {n}: {e}")))
        });
        let e = match parsed {
            Ok(Some(e)) => e,
            Ok(None) => continue,
            Err(f) => {
                failure = Some(f);
                break;
            }
        };
        let len = e.as_ref().encoded_len() + 4;
        // A request must stay under the server's frame limit.
        let full = !batch.is_empty() && bytes + len > super::MAX_REQUEST_BYTES;
        if full || batch.len() == usize::from(a.batch) {
            match c.submit_append(&batch) {
                Ok(id) => in_flight.push_back((id, std::mem::take(&mut lines))),
                Err(e) => {
                    failure = Some(e.into());
                    break;
                }
            }
            batch.clear();
            bytes = 0;
            while in_flight.len() >= 8 {
                if let Err(f) = collect(&mut c, &mut in_flight, &mut out, a.json) {
                    failure = Some(f);
                    break 'input;
                }
            }
        }
        bytes += len;
        batch.push(e);
        lines.push(n);
    }
    if failure.is_none() && !batch.is_empty() {
        match c.submit_append(&batch) {
            Ok(id) => in_flight.push_back((id, lines)),
            Err(e) => failure = Some(e.into()),
        }
    }
    while !in_flight.is_empty() {
        if let Err(f) = collect(&mut c, &mut in_flight, &mut out, a.json) {
            failure.get_or_insert(f);
        }
    }
    out.flush()?;
    match failure {
        Some(f) => Err(f),
        None => Ok(EXIT_OK),
    }
}

fn collect(
    c: &mut Client,
    q: &mut VecDeque<(RequestId, Vec<u64>)>,
    out: &mut impl Write,
    json: bool,
) -> Result<(), Failure> {
    let Some((id, lines)) = q.pop_front() else {
        return Ok(());
    };
    let rs = c.wait_receipts(id).map_err(|e| failure_at(e, &lines))?;
    for r in rs {
        writeln!(out, "{}", receipt_line(&r, json))?;
    }
    Ok(())
}

/// Names the input line of a refused event.
fn failure_at(e: ClientError, lines: &[u64]) -> Failure {
    match &e {
        ClientError::Server(r) => match r.index.and_then(|i| lines.get(i as usize)) {
            Some(line) => Failure::new(format!(
                "line {line}: {e} (nothing from its batch of lines {}..={} was stored; every receipt printed is for a stored event)",
                lines.first().unwrap_or(&0),
                lines.last().unwrap_or(&0)
            )),
            None => Failure::from(e),
        },
        _ => Failure::from(e),
    }
}
