//! `chainlog import`: moves an existing audit trail into chainlog.
//!
//! Rows (JSON lines, or CSV with a header row) are mapped from the old
//! system's field names to chainlog's, marked `backfilled` with their
//! original `occurred_at`, and given an idempotency key derived from the
//! row (a prefix and the old id, or a digest of the row), so that a re-run
//! stores nothing twice. Batches are pipelined. Progress is checkpointed
//! beside the file (`FILE.chainlog-import`) after every batch that settles,
//! in file order, so a re-run resumes where the last one stopped; the
//! rejects file (`FILE.rejects.jsonl`, one JSON object per rejected row
//! with its row number and reason) is cut back to the checkpoint's length
//! on resume, so every rejected row is reported exactly once. A checkpoint
//! records what it belongs to (server, log, the file's first bytes, the
//! mapping): a resume against anything else is refused.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use client::{Client, ClientError, ErrorCode, Event, RequestId};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::{event_json, Cli, Failure, EXIT_OK, EXIT_REJECTED, MAX_REQUEST_BYTES};

/// `chainlog import`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files to import: `.csv` (with a header row) or JSON lines (`.jsonl`, `.ndjson`, `.json`).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// The files' format, if their extension does not say.
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Old field names to chainlog's: `user_id=actor_id,event_type=action,created_at=occurred_at,...`.
    #[arg(long, value_delimiter = ',')]
    pub map: Vec<String>,
    /// The column holding the old system's id; the idempotency key is the prefix plus it [default: a digest of the row].
    #[arg(long)]
    pub id_column: Option<String>,
    /// The idempotency key's prefix.
    #[arg(long, default_value = "import:")]
    pub key_prefix: String,
    /// The tenant of rows that name none.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Drop columns that are not mapped (by default they are kept in metadata).
    #[arg(long)]
    pub drop_unmapped: bool,
    /// Values for fields a row leaves empty: `actor_id=system,resource=unknown`.
    #[arg(long = "default", value_name = "FIELD=VALUE", value_delimiter = ',')]
    pub defaults: Vec<String>,
    /// Old action names to new: `USER_LOGIN=user.login,Document Exported=document.exported`.
    #[arg(long, value_name = "OLD=NEW", value_delimiter = ',')]
    pub action_map: Vec<String>,
    /// A rule for actions --action-map does not name.
    #[arg(long, value_enum)]
    pub action_rule: Option<ActionRule>,
    /// Wrap metadata that is a JSON array or scalar (or its text) into an object under KEY.
    #[arg(long, value_name = "KEY")]
    pub wrap_metadata: Option<String>,
    /// Cut text fields over the server's 256-byte limit to it (at a character boundary), noting each field's original length in metadata under `chainlog_truncated`.
    #[arg(long)]
    pub truncate: bool,
    /// Map and check every row as the server would (its default limits), send nothing, and report what would be rejected, with counts per reason.
    #[arg(long)]
    pub dry_run: bool,
    /// Events per request.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub batch: u16,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 8)]
    pub in_flight: usize,
    /// Start from the first row, ignoring (and replacing) the checkpoint.
    #[arg(long)]
    pub restart: bool,
    /// No progress bar, even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
}

/// Rules for rewriting actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ActionRule {
    /// Lowercase, and each run of spaces, underscores and hyphens a dot:
    /// `USER_LOGIN` is `user.login`, `Document Exported` is
    /// `document.exported`.
    LowercaseDot,
}

impl ActionRule {
    /// `action` under the rule.
    pub fn apply(self, action: &str) -> String {
        match self {
            ActionRule::LowercaseDot => {
                let mut out = String::with_capacity(action.len());
                let mut gap = false;
                for c in action.trim().chars() {
                    if c.is_whitespace() || c == '_' || c == '-' {
                        gap = true;
                    } else {
                        if gap && !out.is_empty() {
                            out.push('.');
                        }
                        gap = false;
                        out.extend(c.to_lowercase());
                    }
                }
                out
            }
        }
    }
}

/// Input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Comma-separated values with a header row.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

/// Where an import of one file stands: saved after every settled batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    /// What the checkpoint belongs to: a digest of the server address, the
    /// log, the file's first 64 KiB and the mapping options.
    pub identity: String,
    /// Data rows settled (stored, duplicate or rejected), from the start.
    pub rows_done: u64,
    /// Bytes of the rejects file that belong to those rows.
    pub rejects_len: u64,
    /// Rows stored, over every run.
    pub imported: u64,
    /// Rows that were already stored, over every run.
    pub duplicates: u64,
    /// Rows rejected, over every run.
    pub rejected: u64,
    /// The most rows the saving run sent ahead of `rows_done` (its batch
    /// times its requests in flight): a run killed after this was saved
    /// may have stored up to that many rows after `rows_done`.
    #[serde(default)]
    pub in_flight_rows: u64,
    /// The highest seq this import has stored, as of `rows_done`.
    #[serde(default)]
    pub last_seq: Option<u64>,
}

/// The checkpoint file of `file`.
pub fn checkpoint_path(file: &Path) -> PathBuf {
    suffixed(file, ".chainlog-import")
}

/// The rejects file of `file`.
pub fn rejects_path(file: &Path) -> PathBuf {
    suffixed(file, ".rejects.jsonl")
}

fn suffixed(file: &Path, suffix: &str) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// One data row: its number (from 1), the line it starts on, and its
/// fields or why they could not be read.
struct Row {
    n: u64,
    line: u64,
    fields: Result<Map<String, Value>, String>,
}

/// Reads rows and reports how far into the file it is. An error stops the
/// import (the file cannot be read); a row that cannot be parsed is a
/// [`Row`] with an error, and the import goes on.
trait Rows {
    fn next_row(&mut self) -> Result<Option<Row>, Failure>;
    fn bytes_read(&self) -> u64;
}

struct CsvRows {
    reader: csv::Reader<File>,
    headers: Vec<String>,
    n: u64,
}

impl Rows for CsvRows {
    fn next_row(&mut self) -> Result<Option<Row>, Failure> {
        let mut rec = csv::StringRecord::new();
        let read = self.reader.read_record(&mut rec);
        let line = rec
            .position()
            .or(self.reader.position().into())
            .map_or(0, csv::Position::line);
        match read {
            Ok(false) => Ok(None),
            Ok(true) => {
                self.n += 1;
                if rec.len() != self.headers.len() {
                    let why = format!(
                        "{} fields, the header has {}",
                        rec.len(),
                        self.headers.len()
                    );
                    return Ok(Some(Row {
                        n: self.n,
                        line,
                        fields: Err(why),
                    }));
                }
                let mut m = Map::new();
                for (h, v) in self.headers.iter().zip(rec.iter()) {
                    m.insert(h.clone(), Value::String(v.to_string()));
                }
                Ok(Some(Row {
                    n: self.n,
                    line,
                    fields: Ok(m),
                }))
            }
            Err(e) if matches!(e.kind(), csv::ErrorKind::Io(_)) => {
                Err(Failure::new(format!("reading: {e}")))
            }
            Err(e) => {
                // Bad UTF-8 and the like: a rejected row; the reader goes
                // on at the next record.
                self.n += 1;
                Ok(Some(Row {
                    n: self.n,
                    line,
                    fields: Err(format!("unreadable CSV record: {e}")),
                }))
            }
        }
    }

    fn bytes_read(&self) -> u64 {
        self.reader.position().byte()
    }
}

struct JsonRows {
    reader: BufReader<File>,
    buf: Vec<u8>,
    n: u64,
    line: u64,
    bytes: u64,
}

impl Rows for JsonRows {
    fn next_row(&mut self) -> Result<Option<Row>, Failure> {
        loop {
            self.buf.clear();
            let k = self
                .reader
                .read_until(b'\n', &mut self.buf)
                .map_err(|e| Failure::new(format!("reading: {e}")))?;
            if k == 0 {
                return Ok(None);
            }
            self.bytes += k as u64;
            self.line += 1;
            let mut bytes = &self.buf[..];
            if self.line == 1 {
                bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
            }
            let text = match std::str::from_utf8(bytes) {
                Ok(t) => t.trim(),
                Err(_) => {
                    self.n += 1;
                    return Ok(Some(Row {
                        n: self.n,
                        line: self.line,
                        fields: Err("not UTF-8".into()),
                    }));
                }
            };
            if text.is_empty() {
                continue;
            }
            if self.n == 0 && text.starts_with('[') {
                return Err(Failure::new(
                    "this is a JSON array, not JSON lines: write one object per line (e.g. jq -c '.[]')",
                ));
            }
            self.n += 1;
            let fields = match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(m)) => Ok(m),
                Ok(_) => Err("not a JSON object".into()),
                Err(e) => Err(format!("not JSON: {e}")),
            };
            return Ok(Some(Row {
                n: self.n,
                line: self.line,
                fields,
            }));
        }
    }

    fn bytes_read(&self) -> u64 {
        self.bytes
    }
}

fn open_rows(path: &Path, format: Format, mapper: &Mapper) -> Result<Box<dyn Rows>, Failure> {
    let at = |e: &dyn std::fmt::Display| Failure::new(format!("{}: {e}", path.display()));
    let f = File::open(path).map_err(|e| at(&e))?;
    if !f.metadata().map_err(|e| at(&e))?.is_file() {
        return Err(at(&"not a regular file"));
    }
    Ok(match format {
        Format::Csv => {
            let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(f);
            let headers: Vec<String> = reader
                .headers()
                .map_err(|e| at(&format!("no CSV header row: {e}")))?
                .iter()
                .map(str::to_string)
                .collect();
            mapper.check_header(&headers).map_err(|e| at(&e))?;
            Box::new(CsvRows {
                reader,
                headers,
                n: 0,
            })
        }
        Format::Jsonl => Box::new(JsonRows {
            reader: BufReader::new(f),
            buf: Vec::new(),
            n: 0,
            line: 0,
            bytes: 0,
        }),
    })
}

/// Turns old rows into events.
#[derive(Debug)]
pub struct Mapper {
    map: HashMap<String, String>,
    id_column: Option<String>,
    key_prefix: String,
    tenant: Option<String>,
    keep_unmapped: bool,
    defaults: Vec<(String, String)>,
    action_map: HashMap<String, String>,
    action_rule: Option<ActionRule>,
    wrap_metadata: Option<String>,
    truncate: bool,
}

/// The longest text field the server takes, by default (`max_field_bytes`).
const MAX_FIELD_BYTES: usize = 256;

/// Splits `K=V` pairs of a flag.
fn pairs(flag: &str, items: &[String]) -> Result<Vec<(String, String)>, Failure> {
    items
        .iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .ok_or_else(|| Failure::new(format!("--{flag} {p:?}: expected KEY=VALUE")))
        })
        .collect()
}

impl Mapper {
    /// Parses `--map` pairs; every target must be an event field, and no
    /// two sources may feed one field.
    pub fn new(a: &Args) -> Result<Mapper, Failure> {
        let mut map: HashMap<String, String> = HashMap::new();
        for pair in &a.map {
            let (old, new) = pair
                .split_once('=')
                .ok_or_else(|| Failure::new(format!("--map {pair:?}: expected OLD=NEW")))?;
            let (old, new) = (old.trim(), new.trim());
            if !event_json::is_field(new) {
                return Err(Failure::new(format!(
                    "--map {pair:?}: {new:?} is not an event field"
                )));
            }
            if let Some((other, _)) = map.iter().find(|(_, t)| *t == new) {
                return Err(Failure::new(format!(
                    "--map: both {other:?} and {old:?} map to {new:?}"
                )));
            }
            if map.insert(old.to_string(), new.to_string()).is_some() {
                return Err(Failure::new(format!("--map: {old:?} is mapped twice")));
            }
        }
        let defaults = pairs("default", &a.defaults)?;
        for (field, _) in &defaults {
            if !event_json::TEXT.contains(&field.as_str()) {
                return Err(Failure::new(format!(
                    "--default {field}=...: {field:?} is not a text field of an event"
                )));
            }
        }
        Ok(Mapper {
            map,
            id_column: a.id_column.clone(),
            key_prefix: a.key_prefix.clone(),
            tenant: a.tenant.clone(),
            keep_unmapped: !a.drop_unmapped,
            defaults,
            action_map: pairs("action-map", &a.action_map)?.into_iter().collect(),
            action_rule: a.action_rule,
            wrap_metadata: a.wrap_metadata.clone(),
            truncate: a.truncate,
        })
    }

    /// The row's id column value, as text ("" without one).
    fn row_id(&self, row: &Map<String, Value>) -> String {
        match self.id_column.as_ref().and_then(|c| row.get(c)) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(v) => v.to_string(),
        }
    }

    /// A metadata value that is not an object, wrapped under the key.
    fn wrapped(&self, v: &Value) -> Option<Value> {
        let key = self.wrap_metadata.as_ref()?;
        let inner = match v {
            Value::Object(_) | Value::Null => return None,
            Value::String(s) if s.trim().is_empty() => return None,
            // JSON kept as text: an object stays as it is; an array or a
            // scalar is wrapped as its value.
            Value::String(s) => match serde_json::from_str::<Value>(s) {
                Ok(Value::Object(_)) => return None,
                Ok(parsed) => parsed,
                Err(_) => v.clone(),
            },
            other => other.clone(),
        };
        let mut m = Map::new();
        m.insert(key.clone(), inner);
        Some(Value::Object(m))
    }

    /// The CSV header must have each mapped column and the id column once.
    fn check_header(&self, headers: &[String]) -> Result<(), String> {
        let mut seen = BTreeSet::new();
        for h in headers {
            if !seen.insert(h.as_str()) {
                return Err(format!("the header names column {h:?} twice"));
            }
        }
        for old in self.map.keys().chain(self.id_column.iter()) {
            if !seen.contains(old.as_str()) {
                return Err(format!(
                    "no column {old:?} in the header (columns: {})",
                    headers.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// The field a column feeds, if any.
    fn target<'a>(&'a self, col: &'a str) -> Option<&'a str> {
        match self.map.get(col) {
            Some(t) => Some(t),
            // A column named like a field feeds it, unless something is
            // mapped onto that field (then it is just another column).
            None if event_json::is_field(col) && !self.map.values().any(|t| t == col) => Some(col),
            None => None,
        }
    }

    /// The event for a row, or why the row cannot be imported.
    pub fn event(&self, row: &Map<String, Value>) -> Result<Event, String> {
        let mut e = Event::default();
        let mut extra = Map::new();
        for (col, v) in row {
            match self.target(col) {
                Some("metadata") if self.wrapped(v).is_some() => {
                    let w = self.wrapped(v).unwrap_or_default();
                    event_json::set_field(&mut e, "metadata", &w)
                        .map_err(|why| format!("column {col}: {why}"))?
                }
                Some(t) => event_json::set_field(&mut e, t, v)
                    .map_err(|why| format!("column {col}: {why}"))?,
                None if self.keep_unmapped => {
                    extra.insert(col.clone(), v.clone());
                }
                None => {}
            }
        }
        if !extra.is_empty() {
            let mut meta = match serde_json::from_str::<Value>(if e.metadata.is_empty() {
                "{}"
            } else {
                &e.metadata
            }) {
                Ok(Value::Object(m)) => m,
                _ => Map::new(),
            };
            for (k, v) in extra {
                // Never lose a column to a key already in the metadata.
                let mut key = k.clone();
                while meta.contains_key(&key) {
                    key.push_str("_column");
                }
                meta.insert(key, v);
            }
            e.metadata = Value::Object(meta).to_string();
        }
        if e.tenant_id.is_empty() {
            if let Some(t) = &self.tenant {
                e.tenant_id = t.clone();
            }
        }
        for (field, value) in &self.defaults {
            if event_json::text(&e, field).is_some_and(str::is_empty) {
                event_json::set_field(&mut e, field, &Value::String(value.clone()))?;
            }
        }
        if let Some(new) = self.action_map.get(&e.action) {
            e.action = new.clone();
        } else if let Some(rule) = self.action_rule {
            e.action = rule.apply(&e.action);
        }
        if self.truncate {
            self.truncate_fields(&mut e)?;
        }
        if e.occurred_at == 0 {
            return Err(
                "no occurred_at: map the old time column with --map COLUMN=occurred_at".into(),
            );
        }
        if e.idempotency_key.is_empty() {
            e.idempotency_key = match &self.id_column {
                Some(col) => match row.get(col) {
                    Some(Value::String(s)) if !s.is_empty() => format!("{}{s}", self.key_prefix),
                    Some(Value::Number(n)) if n.is_u64() || n.is_i64() => {
                        format!("{}{n}", self.key_prefix)
                    }
                    Some(Value::Number(n)) => {
                        return Err(format!("id {n} in column {col} is not an integer"))
                    }
                    _ => return Err(format!("no id in column {col}")),
                },
                None => {
                    // The row's own digest: the same row always gets the
                    // same key, in any file.
                    let d = Sha256::digest(Value::Object(row.clone()).to_string().as_bytes());
                    format!("{}sha256:{}", self.key_prefix, engine::error::hex(&d[..16]))
                }
            };
        }
        e.backfilled = true;
        Ok(e)
    }

    /// Cuts text fields over [`MAX_FIELD_BYTES`] to it, at a character
    /// boundary, and records each one's original length in metadata under
    /// `chainlog_truncated`.
    fn truncate_fields(&self, e: &mut Event) -> Result<(), String> {
        let mut cut = Map::new();
        for field in event_json::TEXT {
            let Some(v) = event_json::text(e, field) else {
                continue;
            };
            if v.len() <= MAX_FIELD_BYTES {
                continue;
            }
            let mut end = MAX_FIELD_BYTES;
            while !v.is_char_boundary(end) {
                end -= 1;
            }
            let (len, short) = (v.len(), v[..end].to_string());
            event_json::set_field(e, field, &Value::String(short))?;
            cut.insert(field.to_string(), json!(len));
        }
        if cut.is_empty() {
            return Ok(());
        }
        let mut meta = match serde_json::from_str::<Value>(if e.metadata.is_empty() {
            "{}"
        } else {
            &e.metadata
        }) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        meta.insert("chainlog_truncated".into(), Value::Object(cut));
        e.metadata = Value::Object(meta).to_string();
        Ok(())
    }

    /// Mapped columns never seen in `seen` (a typo in --map, for JSON).
    fn unseen(&self, seen: &BTreeSet<String>) -> Vec<String> {
        let mut v: Vec<String> = self
            .map
            .keys()
            .filter(|k| !seen.contains(*k))
            .cloned()
            .collect();
        v.sort();
        v
    }
}

/// What one file's import did in this run.
#[derive(Debug, Default, Clone, Copy)]
struct RunCounts {
    read: u64,
    skipped: u64,
    imported: u64,
    duplicates: u64,
    rejected: u64,
    /// Of `imported`: rows a stopped run stored and had not counted.
    resumed_in_flight: u64,
}

/// Where a row is: its number (from 1), the line it starts on, and its
/// id column's value ("" without `--id-column`).
type RowAt = (u64, u64, String);

/// A batch sent and not yet settled: its rows, and rows rejected before
/// sending (reported when it settles, in file order).
struct Pending {
    id: Option<RequestId>,
    rows: Vec<(RowAt, Event)>,
    rejected: Vec<(RowAt, String)>,
    end_row: u64,
}

/// How many times a batch answered `busy` is retried before giving up.
const BUSY_RETRIES: u32 = 100;

/// State of one file's import.
struct FileImport<'a> {
    client: &'a mut Client,
    base: Checkpoint,
    checkpoint: Checkpoint,
    checkpoint_path: PathBuf,
    rejects: File,
    counts: RunCounts,
    /// The most rows this run sends ahead of the checkpoint.
    in_flight_rows: u64,
}

impl FileImport<'_> {
    /// Waits for the oldest batch, deals with refused rows, writes the
    /// rejects and the checkpoint.
    fn settle(&mut self, p: Pending) -> Result<(), Failure> {
        let mut rejected = p.rejected;
        if let Some(id) = p.id {
            let answer = self.client.wait_receipts(id);
            self.handle(answer, p.rows, &mut rejected, 0)?;
        }
        rejected.sort();
        for ((row, line, id), why) in &rejected {
            let mut v = json!({ "row": row, "line": line, "reason": why });
            if !id.is_empty() {
                v["id"] = json!(id);
            }
            writeln!(self.rejects, "{v}")?;
        }
        if !rejected.is_empty() {
            // The reasons are durable before the checkpoint passes them.
            self.rejects.flush()?;
            self.rejects.sync_data()?;
        }
        self.counts.rejected += rejected.len() as u64;
        self.checkpoint.rows_done = p.end_row;
        self.checkpoint.rejects_len = self.rejects.stream_position()?;
        self.checkpoint.imported = self.base.imported + self.counts.imported;
        self.checkpoint.duplicates = self.base.duplicates + self.counts.duplicates;
        self.checkpoint.rejected = self.base.rejected + self.counts.rejected;
        self.checkpoint.in_flight_rows = self.in_flight_rows;
        save_checkpoint(&self.checkpoint_path, &self.checkpoint)
    }

    /// Accounts for the answer to `rows`; on a refusal that names a row,
    /// rejects it and resends the rest; on `too_large`, halves the batch;
    /// on `busy`, retries after a pause.
    fn handle(
        &mut self,
        answer: Result<Vec<client::AppendReceipt>, ClientError>,
        mut rows: Vec<(RowAt, Event)>,
        rejected: &mut Vec<(RowAt, String)>,
        busy_tries: u32,
    ) -> Result<(), Failure> {
        let e = match answer {
            Ok(rs) if rs.len() == rows.len() => {
                for (((n, _, _), _), r) in rows.iter().zip(&rs) {
                    if !r.duplicate {
                        self.counts.imported += 1;
                        self.checkpoint.last_seq = self.checkpoint.last_seq.max(Some(r.seq));
                    } else if self.stored_before_a_stop(*n, r.seq) {
                        // Stored by the run that stopped with this row in
                        // flight: this import's, counted now.
                        self.counts.imported += 1;
                        self.counts.resumed_in_flight += 1;
                        self.checkpoint.last_seq = self.checkpoint.last_seq.max(Some(r.seq));
                    } else {
                        self.counts.duplicates += 1;
                    }
                }
                return Ok(());
            }
            Ok(rs) => {
                return Err(Failure::new(format!(
                    "the server sent {} receipts for {} events (re-run to resume)",
                    rs.len(),
                    rows.len()
                )))
            }
            Err(ClientError::Server(e)) => e,
            Err(e) => return Err(Failure::new(format!("{e} (re-run to resume)"))),
        };
        match (e.code, e.index) {
            (ErrorCode::InvalidEvent | ErrorCode::Forbidden | ErrorCode::Conflict, Some(i))
                if (i as usize) < rows.len() =>
            {
                // All or nothing: drop the refused row, resend the rest.
                let (row, _) = rows.remove(i as usize);
                let why = if e.field.is_empty() {
                    e.message.clone()
                } else {
                    format!("{}: {}", e.field, e.message)
                };
                rejected.push((row, why));
                self.resend(rows, rejected, 0)
            }
            (ErrorCode::TooLarge, _) if rows.len() > 1 => {
                let second = rows.split_off(rows.len() / 2);
                self.resend(rows, rejected, 0)?;
                self.resend(second, rejected, 0)
            }
            (ErrorCode::TooLarge, _) => {
                let (row, _) = rows.remove(0);
                rejected.push((row, format!("event: {}", e.message)));
                Ok(())
            }
            (ErrorCode::Busy, _) if busy_tries < BUSY_RETRIES => {
                std::thread::sleep(Duration::from_millis(10 << busy_tries.min(6)));
                self.resend(rows, rejected, busy_tries + 1)
            }
            _ => Err(Failure::new(format!("server error {e} (re-run to resume)"))),
        }
    }

    /// Sends `rows` and waits for their answer (nothing to send: done).
    fn resend(
        &mut self,
        rows: Vec<(RowAt, Event)>,
        rejected: &mut Vec<(RowAt, String)>,
        busy_tries: u32,
    ) -> Result<(), Failure> {
        if rows.is_empty() {
            return Ok(());
        }
        let id = self.submit(&rows)?;
        let answer = self.client.wait_receipts(id);
        self.handle(answer, rows, rejected, busy_tries)
    }

    /// Whether row `n`, answered as a duplicate of `seq`, is one that an
    /// earlier run of this import sent and stored, then stopped before
    /// counting: a row the stopped run could have had in flight (at most
    /// `in_flight_rows` after `rows_done`) whose event is newer than every
    /// event the import had counted (the server stores one connection's
    /// appends in order, so in-flight rows come after the settled ones).
    fn stored_before_a_stop(&self, n: u64, seq: u64) -> bool {
        n > self.base.rows_done
            && n <= self.base.rows_done + self.base.in_flight_rows
            && self.base.last_seq.is_none_or(|last| seq > last)
    }

    fn submit(&mut self, rows: &[(RowAt, Event)]) -> Result<RequestId, Failure> {
        let events: Vec<Event> = rows.iter().map(|(_, e)| e.clone()).collect();
        self.client
            .submit_append(&events)
            .map_err(|e| Failure::new(format!("{e} (re-run to resume)")))
    }
}

/// Writes the checkpoint durably: a temporary file, fsynced, renamed over
/// the old one.
fn save_checkpoint(path: &Path, c: &Checkpoint) -> Result<(), Failure> {
    let tmp = suffixed(path, ".tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(&serde_json::to_vec(c).map_err(|e| Failure::new(e.to_string()))?)?;
    f.sync_data()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn format_of(path: &Path, forced: Option<Format>) -> Result<Format, Failure> {
    if let Some(f) = forced {
        return Ok(f);
    }
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("csv") => Ok(Format::Csv),
        Some("jsonl" | "ndjson" | "json") => Ok(Format::Jsonl),
        _ => Err(Failure::new(format!(
            "{}: say --format csv or --format jsonl",
            path.display()
        ))),
    }
}

/// What a checkpoint belongs to.
fn identity(
    addr: &str,
    log: &str,
    path: &Path,
    a: &Args,
    format: Format,
) -> Result<String, Failure> {
    let mut first = Vec::with_capacity(64 << 10);
    File::open(path)?.take(64 << 10).read_to_end(&mut first)?;
    let mut map: Vec<&String> = a.map.iter().collect();
    map.sort();
    let opts = json!({
        "addr": addr,
        "log": log,
        "format": format!("{format:?}"),
        "map": map,
        "id_column": a.id_column,
        "key_prefix": a.key_prefix,
        "tenant": a.tenant,
        "drop_unmapped": a.drop_unmapped,
        "defaults": a.defaults,
        "action_map": a.action_map,
        "action_rule": a.action_rule.map(|r| format!("{r:?}")),
        "wrap_metadata": a.wrap_metadata,
        "truncate": a.truncate,
    });
    let mut h = Sha256::new();
    h.update(opts.to_string().as_bytes());
    h.update(&first);
    Ok(engine::error::hex(&h.finalize()[..16]))
}

/// Runs `chainlog import`.
pub fn run(cli: &Cli, a: &Args) -> Result<i32, Failure> {
    let mapper = Mapper::new(a)?;
    let formats = a
        .files
        .iter()
        .map(|f| format_of(f, a.format))
        .collect::<Result<Vec<_>, _>>()?;
    if a.dry_run {
        return dry_run(a, &mapper, &formats);
    }
    let (mut client, addr, log) = cli.connect_with_info()?;
    let mut any_rejected = false;
    for (path, format) in a.files.iter().zip(formats) {
        let id = identity(&addr, &log, path, a, format)
            .map_err(|e| Failure::new(format!("{}: {}", path.display(), e.message)))?;
        let (c, run, fresh) = import_file(&mut client, a, &mapper, path, format, id)?;
        any_rejected |= c.rejected > 0;
        eprintln!(
            "{}: read {} rows{}; stored {}, already stored {}, rejected {} (this run); over every run: stored {}, duplicates {}, rejected {}{}",
            path.display(),
            run.read,
            if run.skipped > 0 { format!(" (resumed after row {})", run.skipped) } else { String::new() },
            run.imported,
            run.duplicates,
            run.rejected,
            c.imported,
            c.duplicates,
            c.rejected,
            if c.rejected > 0 { format!("; reasons in {}", rejects_path(path).display()) } else { String::new() },
        );
        if run.resumed_in_flight > 0 {
            eprintln!(
                "{}: {} of the rows stored this run had been stored by the run that stopped, which had sent them and not counted them yet",
                path.display(),
                run.resumed_in_flight
            );
        }
        if fresh && run.duplicates > 0 {
            eprintln!(
                "{}: note: on this file's first run {} rows were already stored, with the same keys and the same content \
                 (imported before, from another file or under another checkpoint), and were not stored again; \
                 a reused key with other content is rejected as a conflict instead",
                path.display(),
                run.duplicates
            );
        }
    }
    Ok(if any_rejected { EXIT_REJECTED } else { EXIT_OK })
}

/// `--dry-run`: every row mapped and checked as the server would check it
/// (its default limits, a tenant required), nothing sent and nothing
/// written. Prints each row that would be rejected, then the counts per
/// reason; exit 3 if any would be.
fn dry_run(a: &Args, mapper: &Mapper, formats: &[Format]) -> Result<i32, Failure> {
    let limits = proto::event::Limits::default();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut out = io::stdout().lock();
    let mut any = false;
    for (path, &format) in a.files.iter().zip(formats) {
        let mut rows = open_rows(path, format, mapper)?;
        let (mut read, mut rejected) = (0u64, 0u64);
        let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
        while let Some(Row { n, line, fields }) = rows.next_row()? {
            read += 1;
            let id = fields
                .as_ref()
                .map(|r| mapper.row_id(r))
                .unwrap_or_default();
            let verdict = fields.and_then(|r| mapper.event(&r)).and_then(|e| {
                let len = e.as_ref().encoded_len() + 4;
                if len > MAX_REQUEST_BYTES {
                    return Err(format!(
                        "event: encodes to {len} bytes, more than one request carries"
                    ));
                }
                e.as_ref()
                    .validate(&limits, now)
                    .map_err(|err| format!("{}: {}", err.field, err.reason))
            });
            if let Err(why) = verdict {
                rejected += 1;
                let id = if id.is_empty() {
                    String::new()
                } else {
                    format!(", id {id}")
                };
                writeln!(out, "{}: row {n} (line {line}{id}): {why}", path.display())?;
                *reasons.entry(reason_class(&why)).or_default() += 1;
            }
        }
        writeln!(
            out,
            "{}: dry run: read {read} rows; {} would be sent, {rejected} rejected",
            path.display(),
            read - rejected
        )?;
        let mut by_count: Vec<_> = reasons.into_iter().collect();
        by_count.sort_by(|x, y| y.1.cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
        for (why, count) in by_count {
            writeln!(out, "{count:>8}  {why}")?;
        }
        any |= rejected > 0;
    }
    Ok(if any { EXIT_REJECTED } else { EXIT_OK })
}

/// A reason with its particulars (numbers, quoted values) taken out, so
/// that rows rejected for the same thing count together.
fn reason_class(why: &str) -> String {
    let mut out = String::with_capacity(why.len());
    let mut chars = why.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            while chars.peek().is_some_and(char::is_ascii_digit) {
                chars.next();
            }
            out.push('N');
        } else if c == '"' {
            for d in chars.by_ref() {
                if d == '"' {
                    break;
                }
            }
            out.push_str("\"...\"");
        } else {
            out.push(c);
        }
    }
    out
}

fn import_file(
    client: &mut Client,
    a: &Args,
    mapper: &Mapper,
    path: &Path,
    format: Format,
    identity: String,
) -> Result<(Checkpoint, RunCounts, bool), Failure> {
    let cp_path = checkpoint_path(path);
    let at = |m: String| Failure::new(format!("{}: {m}", path.display()));
    let existing = if a.restart {
        None
    } else {
        match std::fs::read(&cp_path) {
            Ok(b) => Some(serde_json::from_slice::<Checkpoint>(&b).map_err(|e| {
                at(format!(
                    "{}: {e} (use --restart to start over)",
                    cp_path.display()
                ))
            })?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(at(format!("{}: {e}", cp_path.display()))),
        }
    };
    let fresh = existing.is_none() && !a.restart;
    let base = existing.unwrap_or_default();
    if base.rows_done > 0 && base.identity != identity {
        return Err(at(format!(
            "{} belongs to another import (a different server, log, file content or mapping); \
             use --restart to import this file from its first row (stored rows come back as duplicates)",
            cp_path.display()
        )));
    }
    let rejects = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(rejects_path(path))?;
    let len = rejects.metadata()?.len();
    if len < base.rejects_len {
        return Err(at(format!(
            "{} is shorter than its checkpoint says (moved or truncated?): use --restart",
            rejects_path(path).display()
        )));
    }
    // Rows past the checkpoint will be settled (and their rejects written)
    // again: cut what a stopped run wrote after it.
    rejects.set_len(base.rejects_len)?;
    let mut rejects = rejects;
    rejects.seek(io::SeekFrom::End(0))?;
    let mut rows = open_rows(path, format, mapper)?;
    let total_bytes = std::fs::metadata(path)?.len();
    let progress = (super::stderr_is_terminal() && !a.no_progress).then(|| {
        let pb = indicatif::ProgressBar::new(total_bytes);
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{prefix} [{bar:30}] {percent:>3}% {msg} ETA {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        pb.set_prefix(path.display().to_string());
        pb
    });
    let mut imp = FileImport {
        client,
        checkpoint: Checkpoint {
            identity,
            ..base.clone()
        },
        base: base.clone(),
        checkpoint_path: cp_path,
        rejects,
        counts: RunCounts::default(),
        in_flight_rows: (a.in_flight.max(1) * usize::from(a.batch)) as u64,
    };
    let mut queue: VecDeque<Pending> = VecDeque::new();
    let mut building = Pending {
        id: None,
        rows: Vec::new(),
        rejected: Vec::new(),
        end_row: base.rows_done,
    };
    let started = Instant::now();
    let mut last_draw = Instant::now();
    let batch = usize::from(a.batch);
    let mut building_bytes = 0usize;
    let mut seen_columns = BTreeSet::new();
    while let Some(Row { n, line, fields }) = rows.next_row()? {
        imp.counts.read += 1;
        if n <= base.rows_done {
            imp.counts.skipped += 1;
            continue;
        }
        if let Ok(m) = &fields {
            if format == Format::Jsonl && seen_columns.len() < 10_000 {
                seen_columns.extend(m.keys().cloned());
            }
        }
        let id = fields
            .as_ref()
            .ok()
            .map(|r| mapper.row_id(r))
            .unwrap_or_default();
        let at = (n, line, id);
        match fields.and_then(|r| mapper.event(&r)) {
            Ok(e) => {
                let len = e.as_ref().encoded_len() + 4;
                if len > MAX_REQUEST_BYTES {
                    building.rejected.push((
                        at,
                        format!("event: encodes to {len} bytes, more than one request carries"),
                    ));
                } else {
                    // A request must stay under the server's frame limit.
                    if !building.rows.is_empty() && building_bytes + len > MAX_REQUEST_BYTES {
                        send_bounded(&mut imp, &mut building, &mut queue, a.in_flight)?;
                        building_bytes = 0;
                    }
                    building_bytes += len;
                    building.rows.push((at, e));
                }
            }
            Err(why) => building.rejected.push((at, why)),
        }
        building.end_row = n;
        if building.rows.len() + building.rejected.len() >= batch {
            send_bounded(&mut imp, &mut building, &mut queue, a.in_flight)?;
            building_bytes = 0;
        }
        if let Some(pb) = &progress {
            if last_draw.elapsed() > Duration::from_millis(100) {
                last_draw = Instant::now();
                pb.set_position(rows.bytes_read());
                let rate = (imp.counts.read - imp.counts.skipped) as f64
                    / started.elapsed().as_secs_f64().max(1e-3);
                pb.set_message(format!("{} rows, {:.0} rows/s", imp.counts.read, rate));
            }
        }
    }
    if !building.rows.is_empty() || !building.rejected.is_empty() {
        send(&mut imp, &mut building, &mut queue)?;
    }
    while let Some(p) = queue.pop_front() {
        imp.settle(p)?;
    }
    if let Some(pb) = progress {
        pb.finish_and_clear();
    }
    if format == Format::Jsonl && imp.counts.read > imp.counts.skipped {
        let unseen = mapper.unseen(&seen_columns);
        if !unseen.is_empty() {
            eprintln!(
                "{}: warning: --map names columns no row had: {}",
                path.display(),
                unseen.join(", ")
            );
        }
    }
    Ok((imp.checkpoint.clone(), imp.counts, fresh))
}

/// Sends the batch being built, then settles the oldest batches until at
/// most `in_flight` are outstanding.
fn send_bounded(
    imp: &mut FileImport<'_>,
    building: &mut Pending,
    queue: &mut VecDeque<Pending>,
    in_flight: usize,
) -> Result<(), Failure> {
    send(imp, building, queue)?;
    while queue.len() >= in_flight.max(1) {
        let p = queue.pop_front().expect("non-empty");
        imp.settle(p)?;
    }
    Ok(())
}

fn send(
    imp: &mut FileImport<'_>,
    building: &mut Pending,
    queue: &mut VecDeque<Pending>,
) -> Result<(), Failure> {
    let mut p = std::mem::replace(
        building,
        Pending {
            id: None,
            rows: Vec::new(),
            rejected: Vec::new(),
            end_row: building.end_row,
        },
    );
    if !p.rows.is_empty() {
        p.id = Some(imp.submit(&p.rows)?);
    }
    queue.push_back(p);
    Ok(())
}
