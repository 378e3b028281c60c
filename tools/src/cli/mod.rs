//! The `chainlog` command-line client: append, query, tail, import,
//! schema, keys; and verify-proof, which needs no server.
//!
//! The binary (`src/bin/chainlog.rs`) parses [`Cli`] and calls [`run`];
//! each command is a module here, over the Rust client.

use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use client::{Client, ClientError, Query, StoredEvent, TimeField};
use engine::error::hex;

pub mod admin;
pub mod append;
pub mod bench;
pub mod bench_query;
pub mod event_json;
pub mod import;
pub mod proofs;
pub use proto::time;
pub mod verify_proof;

/// The most event bytes one append request carries: under the server's
/// default frame limit (1 MiB of events plus their length prefixes).
pub const MAX_REQUEST_BYTES: usize = 1 << 20;

/// Exit code: done.
pub const EXIT_OK: i32 = 0;
/// Exit code: failed (connection, server error, bad input); an import can
/// be re-run to resume.
pub const EXIT_FAILED: i32 = 1;
/// Exit code: bad usage (from the argument parser).
pub const EXIT_USAGE: i32 = 2;
/// Exit code: an import finished, but some rows were rejected (see the
/// rejects file).
pub const EXIT_REJECTED: i32 = 3;
pub use proofs::EXIT_UNTRUSTED;

/// chainlog: append audit events to a chainlogd server, query them, follow
/// them, and import an existing audit trail.
#[derive(Debug, Parser)]
#[command(
    name = "chainlog",
    version,
    after_help = "Connection: --addr/--key, or CHAINLOG_ADDR/CHAINLOG_KEY, or a TOML file (--config, CHAINLOG_CONFIG, or ~/.config/chainlog/cli.toml) with `addr = \"...\"` and `key = \"...\"`. TLS: --tls (system CAs) or --tls-ca FILE, and --tls-cert/--tls-key for a client certificate; in the file `tls = true`, `tls_ca`, `tls_cert`, `tls_key`.\n\nExit codes: 0 done; 1 failed (an import can be re-run and resumes); 2 usage; 3 import finished with rejected rows; 4 a checkpoint or proof from the server did not check out (rolled back, forked, rewritten, or another key)."
)]
pub struct Cli {
    /// The server's address [default: 127.0.0.1:7400].
    #[arg(long, global = true, env = "CHAINLOG_ADDR")]
    pub addr: Option<String>,
    /// The API key.
    #[arg(long, global = true, env = "CHAINLOG_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// A TOML file with `addr` and `key` (and the `tls*` settings).
    #[arg(long, global = true, env = "CHAINLOG_CONFIG")]
    pub config: Option<PathBuf>,
    /// Connect over TLS, trusting the system's CAs (or --tls-ca's).
    /// CHAINLOG_TLS takes 1/0, true/false, yes/no, on/off.
    #[arg(
        long,
        global = true,
        env = "CHAINLOG_TLS",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub tls: bool,
    /// Connect over TLS, trusting the CA certificates in this PEM file.
    #[arg(long, global = true, env = "CHAINLOG_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// A client certificate chain (PEM) to present over TLS, with --tls-key.
    #[arg(long, global = true, env = "CHAINLOG_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, global = true, env = "CHAINLOG_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The name the server's certificate must carry, if not the address's host.
    #[arg(long, global = true, env = "CHAINLOG_TLS_SERVER_NAME")]
    pub tls_server_name: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Append one event from flags, or events as JSON lines on standard input; prints each receipt.
    Append(append::Args),
    /// Query events by tenant, actor, action, resource and time.
    Query(QueryArgs),
    /// Follow events as they become durable, from now or from a seq.
    Tail(TailArgs),
    /// Import JSON lines or CSV from another system: mapped, backfilled, deduplicated, resumable.
    Import(import::Args),
    /// Show or set the log's action schema; list unknown actions (admin key).
    #[command(subcommand)]
    Schema(admin::SchemaCmd),
    /// List, create and revoke the log's API keys (admin key).
    #[command(subcommand)]
    Keys(admin::KeysCmd),
    /// Closed-loop append load with latency percentiles, beside the disk's raw ceiling.
    Bench(bench::Args),
    /// Check a tlog-proof file offline: the checkpoint's signature, then the record's inclusion.
    VerifyProof(verify_proof::Args),
    /// Print a signed checkpoint of every durable record (a C2SP tlog-checkpoint note), for segment-verify --checkpoint; with --vkey and --trust, checked against the last one trusted.
    Checkpoint(proofs::CheckpointArgs),
    /// Print the inclusion proof of a record at a new checkpoint, verified, as a tlog-proof file for verify-proof.
    Proof(proofs::ProofArgs),
    /// Print the consistency proof between two tree sizes, one base64 hash a line.
    Consistency(proofs::ConsistencyArgs),
    /// Print the log's head and counters, and its ingests' state (admin key, or read with no tenant limit).
    Stats(StatsArgs),
    /// Print the newest event's SEQ:HASH, what segment-verify --expect-head takes (admin key, or read with no tenant limit).
    Head,
}

/// `chainlog stats`.
#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `chainlog query`.
#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    /// Only this tenant.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Only this actor id.
    #[arg(long)]
    pub actor: Option<String>,
    /// Only this action.
    #[arg(long)]
    pub action: Option<String>,
    /// Only this resource type.
    #[arg(long)]
    pub resource: Option<String>,
    /// Only this resource id.
    #[arg(long)]
    pub resource_id: Option<String>,
    /// Only the event with this idempotency key (an exact lookup).
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Only the event with this source event id (an exact lookup).
    #[arg(long)]
    pub source_event_id: Option<String>,
    /// Only the events with this correlation id, in order.
    #[arg(long)]
    pub correlation_id: Option<String>,
    /// Oldest first (asc, the default) or newest first (desc).
    #[arg(long, value_enum, default_value_t = Order::Asc)]
    pub order: Order,
    /// From this time (inclusive): RFC 3339, YYYY-MM-DD or Unix time.
    #[arg(long)]
    pub from: Option<String>,
    /// Until this time (exclusive).
    #[arg(long)]
    pub to: Option<String>,
    /// Which time --from/--to apply to.
    #[arg(long, value_enum, default_value_t = On::Occurred)]
    pub on: On,
    /// Print at most this many events.
    #[arg(long, default_value_t = 100)]
    pub limit: u64,
    /// Print every match (no --limit).
    #[arg(long, conflicts_with = "limit")]
    pub all: bool,
    /// Print only the number of matching events (for comparing with the old system).
    #[arg(long)]
    pub count: bool,
    /// JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The order of a query's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Order {
    /// Oldest first (seq order).
    Asc,
    /// Newest first.
    Desc,
}

/// The time a query's range applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum On {
    /// `occurred_at`: when it happened (the client's time; kept on import).
    Occurred,
    /// `created_at`: when the server stored it.
    Created,
}

/// `chainlog tail`.
#[derive(Debug, clap::Args)]
pub struct TailArgs {
    /// Start at this seq instead of at the end.
    #[arg(long)]
    pub from: Option<u64>,
    /// JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    addr: Option<String>,
    key: Option<String>,
    #[serde(default)]
    tls: bool,
    tls_ca: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_server_name: Option<String>,
}

impl FileConfig {
    /// Reads the file; its relative TLS paths are taken from the file's
    /// directory, as chainlogd takes its config's.
    fn read(path: &Path) -> Result<FileConfig, Failure> {
        let fail = |e: &dyn std::fmt::Display| Failure::new(format!("{}: {e}", path.display()));
        let text = std::fs::read_to_string(path).map_err(|e| fail(&e))?;
        let mut file = toml::from_str::<FileConfig>(&text).map_err(|e| fail(&e))?;
        if file.tls_cert.is_some() != file.tls_key.is_some() {
            return Err(fail(
                &"tls_cert and tls_key go together: set both or neither",
            ));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [&mut file.tls_ca, &mut file.tls_cert, &mut file.tls_key]
            .into_iter()
            .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(file)
    }
}

/// How to reach the server: its address, the key, and TLS if asked for.
#[derive(Debug, Clone)]
pub struct Connection {
    /// `host:port`.
    pub addr: String,
    /// The API key.
    pub key: String,
    /// TLS settings; `None`: plain TCP.
    pub tls: Option<client::TlsOptions>,
}

/// An error for the user, with the exit code to end with.
#[derive(Debug)]
pub struct Failure {
    /// What went wrong.
    pub message: String,
    /// The exit code.
    pub code: i32,
    /// Standard output was closed (`chainlog query | head`): not an error.
    /// Set only for local I/O errors, never for the connection's.
    pub output_closed: bool,
}

impl Failure {
    /// A failure with [`EXIT_FAILED`].
    pub fn new(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            code: EXIT_FAILED,
            output_closed: false,
        }
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Failure::new(e.to_string())
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure {
            output_closed: e.kind() == io::ErrorKind::BrokenPipe,
            ..Failure::new(e.to_string())
        }
    }
}

impl Cli {
    /// The address and key: flags, then environment (clap), then the file.
    pub fn connection(&self) -> Result<(String, String), Failure> {
        let c = self.settings()?;
        Ok((c.addr, c.key))
    }

    /// The address, key and TLS settings: flags, then environment (clap),
    /// then the file.
    pub fn settings(&self) -> Result<Connection, Failure> {
        // An empty value (`CHAINLOG_KEY=`) counts as unset.
        let given = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
        let (addr, key) = (given(&self.addr), given(&self.key));
        // The file gives what flags and environment leave out.
        let path = self.config.clone().or_else(|| {
            let p = PathBuf::from(std::env::var_os("HOME")?).join(".config/chainlog/cli.toml");
            p.exists().then_some(p)
        });
        let file = match path {
            Some(p) => FileConfig::read(&p)?,
            None => FileConfig::default(),
        };
        let addr = addr
            .or(file.addr)
            .unwrap_or_else(|| "127.0.0.1:7400".into());
        let key = key.or(file.key).ok_or_else(|| {
            Failure::new("no API key: pass --key, set CHAINLOG_KEY, or put `key = \"...\"` in the config file")
        })?;
        let ca = self.tls_ca.clone().or(file.tls_ca);
        let identity = match (&self.tls_cert, &self.tls_key) {
            (Some(c), Some(k)) => Some((c.clone(), k.clone())),
            _ => file.tls_cert.zip(file.tls_key),
        };
        let tls = if self.tls || file.tls || ca.is_some() || identity.is_some() {
            let id = identity.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
            let mut t = client::TlsOptions::new(ca.as_deref(), id)?;
            if let Some(name) = self.tls_server_name.clone().or(file.tls_server_name) {
                t = t.with_server_name(name);
            }
            Some(t)
        } else {
            None
        };
        Ok(Connection { addr, key, tls })
    }

    /// Connects and authenticates.
    pub fn connect(&self) -> Result<Client, Failure> {
        Ok(self.connect_with_info()?.0)
    }

    /// Connects and authenticates; also returns the address and the log
    /// the key opens.
    pub fn connect_with_info(&self) -> Result<(Client, String, String), Failure> {
        let Connection { addr, key, tls } = self.settings()?;
        let connected = match &tls {
            None => Client::connect(&addr),
            Some(t) => Client::connect_tls(&addr, t),
        };
        let mut c =
            connected.map_err(|e| Failure::new(format!("cannot connect to {addr}: {e}")))?;
        let info = c.auth(&key)?;
        Ok((c, addr, info.log))
    }
}

/// Runs a parsed command; returns the exit code.
pub fn run(cli: &Cli) -> i32 {
    let result = match &cli.command {
        Command::Append(a) => append::run(cli, a),
        Command::Query(q) => query(cli, q),
        Command::Tail(t) => tail(cli, t),
        Command::Import(i) => import::run(cli, i),
        Command::Schema(s) => admin::schema(cli, s),
        Command::Keys(k) => admin::keys(cli, k),
        Command::Bench(b) => bench::run(cli, b),
        Command::VerifyProof(v) => Ok(verify_proof::run(v, &mut io::stdout().lock())),
        Command::Checkpoint(a) => proofs::checkpoint(cli, a),
        Command::Proof(a) => proofs::proof(cli, a),
        Command::Consistency(a) => proofs::consistency(cli, a),
        Command::Stats(a) => stats(cli, a),
        Command::Head => head(cli),
    };
    match result {
        Ok(code) => code,
        Err(f) if f.output_closed => EXIT_OK,
        Err(f) => {
            eprintln!("chainlog: {}", f.message);
            f.code
        }
    }
}

/// Builds the server query from the flags.
pub fn build_query(a: &QueryArgs) -> Result<Query, Failure> {
    let mut q = Query::all();
    q.tenant_id = a.tenant.clone().unwrap_or_default();
    q.actor_id = a.actor.clone().unwrap_or_default();
    q.action = a.action.clone().unwrap_or_default();
    q.resource = a.resource.clone().unwrap_or_default();
    q.resource_id = a.resource_id.clone().unwrap_or_default();
    q.idempotency_key = a.idempotency_key.clone().unwrap_or_default();
    q.source_event_id = a.source_event_id.clone().unwrap_or_default();
    q.correlation_id = a.correlation_id.clone().unwrap_or_default();
    q.descending = a.order == Order::Desc;
    if a.from.is_some() || a.to.is_some() {
        q.time_field = match a.on {
            On::Occurred => TimeField::OccurredAt,
            On::Created => TimeField::CreatedAt,
        };
        let t = |s: &Option<String>, default| {
            s.as_deref()
                .map_or(Ok(default), time::parse)
                .map_err(Failure::new)
        };
        q.from = t(&a.from, 0)?;
        q.to = t(&a.to, u64::MAX)?;
    }
    Ok(q)
}

fn query(cli: &Cli, a: &QueryArgs) -> Result<i32, Failure> {
    let mut q = build_query(a)?;
    let mut c = cli.connect()?;
    let mut out = BufWriter::new(io::stdout().lock());
    if a.count {
        q.want_total = true;
        q.limit = 1;
        let total = c
            .query_page(&q)?
            .total
            .ok_or_else(|| Failure::new("the server sent no total"))?;
        writeln!(out, "{total}")?;
        return Ok(EXIT_OK);
    }
    let max = if a.all { u64::MAX } else { a.limit };
    q.limit = max.clamp(1, 1000) as u16;
    let mut printer = Printer::new(a.json);
    for (printed, e) in c.query(q).enumerate() {
        let e = e?;
        if printed as u64 == max {
            out.flush()?;
            eprintln!("chainlog: more events match; showing the first {max} (--limit N or --all)");
            break;
        }
        printer.print(&mut out, &e)?;
    }
    out.flush()?;
    Ok(EXIT_OK)
}

fn tail(cli: &Cli, a: &TailArgs) -> Result<i32, Failure> {
    let mut c = cli.connect()?;
    let mut out = io::stdout().lock();
    let mut printer = Printer::new(a.json);
    for e in c.tail(a.from.unwrap_or(u64::MAX))? {
        printer.print(&mut out, &e?)?;
        out.flush()?;
    }
    Ok(EXIT_OK)
}

/// Prints events as a table (with a header first) or as JSON lines.
pub struct Printer {
    json: bool,
    header: bool,
}

impl Printer {
    /// A table printer, or JSON lines if `json`.
    pub fn new(json: bool) -> Self {
        Printer {
            json,
            header: false,
        }
    }

    /// Prints one event.
    pub fn print(&mut self, out: &mut impl Write, e: &StoredEvent) -> io::Result<()> {
        if self.json {
            return writeln!(out, "{}", event_json::to_json(e));
        }
        if !self.header {
            self.header = true;
            writeln!(
                out,
                "{:>8}  {:19}  {:14}  {:16}  {:20}  {:12}  RESOURCE_ID",
                "SEQ", "OCCURRED_AT (UTC)", "TENANT", "ACTOR", "ACTION", "RESOURCE"
            )?;
        }
        let ev = &e.event;
        writeln!(
            out,
            "{:>8}  {:19}  {:14}  {:16}  {:20}  {:12}  {}{}",
            e.seq,
            time::format_short(ev.occurred_at),
            cell(&ev.tenant_id, 14),
            cell(&ev.actor_id, 16),
            cell(&ev.action, 20),
            cell(&ev.resource, 12),
            cell(&ev.resource_id, 14),
            if ev.backfilled { "  (backfilled)" } else { "" }
        )
    }
}

fn cell(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    let mut t: String = s.chars().take(width - 1).collect();
    t.push('…');
    t
}

/// A receipt as the commands print it.
pub fn receipt_line(r: &client::AppendReceipt, json: bool) -> String {
    if json {
        serde_json::json!({
            "seq": r.seq,
            "hash": hex(&r.hash),
            "created_at": time::format(r.created_at),
            "duplicate": r.duplicate,
        })
        .to_string()
    } else {
        format!(
            "{}\t{}{}",
            r.seq,
            hex(&r.hash),
            if r.duplicate { "\tduplicate" } else { "" }
        )
    }
}

/// Whether standard error is a terminal (progress bars go there).
pub fn stderr_is_terminal() -> bool {
    io::stderr().is_terminal()
}

/// `chainlog stats`.
/// `chainlog head`: `SEQ:HASH` of the newest durable event, for
/// `segment-verify --expect-head` (a commitment kept outside the log).
fn head(cli: &Cli) -> Result<i32, Failure> {
    let s = cli.connect()?.stats()?;
    let Some(seq) = s.next_seq.checked_sub(1) else {
        return Err(Failure::new(format!(
            "log {} is empty: there is no head to commit to",
            s.log
        )));
    };
    writeln!(io::stdout().lock(), "{seq}:{}", hex(&s.head_hash))?;
    Ok(EXIT_OK)
}

fn stats(cli: &Cli, a: &StatsArgs) -> Result<i32, Failure> {
    let mut c = cli.connect()?;
    let s = c.stats()?;
    let mut out = io::stdout().lock();
    let head_at = (s.next_seq > 0).then(|| time::format(s.head_created_at));
    if a.json {
        let ingests: Vec<serde_json::Value> = s
            .ingests
            .iter()
            .map(|i| {
                serde_json::json!({
                    "name": i.name, "state": i.state, "detail": i.detail,
                    "received": i.received, "stored": i.stored, "duplicates": i.duplicates,
                    "dead_lettered": i.dead_lettered, "redelivered": i.redelivered,
                    "pending": i.pending,
                    "last_ack_at": (i.last_ack_ms > 0).then(|| time::format(i.last_ack_ms * 1_000_000)),
                })
            })
            .collect();
        let v = serde_json::json!({
            "log": s.log, "next_seq": s.next_seq, "head_hash": hex(&s.head_hash),
            "head_created_at": head_at, "appends": s.appends, "syncs": s.syncs,
            "segments": s.segments, "unknown_actions": s.unknown_actions, "ingests": ingests,
        });
        writeln!(out, "{v}")?;
        return Ok(EXIT_OK);
    }
    writeln!(out, "log              {}", s.log)?;
    writeln!(out, "events           {}", s.next_seq)?;
    if let Some(at) = head_at {
        writeln!(
            out,
            "head             seq {} {} at {at}",
            s.next_seq - 1,
            hex(&s.head_hash)
        )?;
    }
    writeln!(
        out,
        "appends, syncs   {} in {} (since the server started)",
        s.appends, s.syncs
    )?;
    writeln!(out, "segments         {}", s.segments)?;
    writeln!(out, "unknown actions  {}", s.unknown_actions)?;
    for i in &s.ingests {
        let detail = if i.detail.is_empty() {
            String::new()
        } else {
            format!(" ({})", i.detail)
        };
        writeln!(out, "ingest {}: {}{detail}", i.name, i.state)?;
        writeln!(
            out,
            "  received {}, stored {}, duplicates {}, dead-lettered {}, redelivered {}, pending {}, last ack {}",
            i.received, i.stored, i.duplicates, i.dead_lettered, i.redelivered, i.pending,
            if i.last_ack_ms > 0 { time::format(i.last_ack_ms * 1_000_000) } else { "never".into() }
        )?;
    }
    Ok(EXIT_OK)
}
