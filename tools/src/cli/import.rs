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
//! on resume, so every rejected row is reported exactly once.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use client::{Client, ClientError, ErrorCode, Event, RequestId};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::{event_json, Cli, Failure, EXIT_OK, EXIT_REJECTED};

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

/// One data row: its number (from 1) and its fields.
type Row = (u64, Result<Map<String, Value>, String>);

/// Reads rows and reports how far into the file it is.
trait Rows {
    fn next_row(&mut self) -> Option<Row>;
    fn bytes_read(&self) -> u64;
}

struct CsvRows {
    reader: csv::Reader<File>,
    headers: Vec<String>,
    n: u64,
}

impl Rows for CsvRows {
    fn next_row(&mut self) -> Option<Row> {
        let mut rec = csv::StringRecord::new();
        match self.reader.read_record(&mut rec) {
            Ok(false) => None,
            Ok(true) => {
                self.n += 1;
                let mut m = Map::new();
                for (h, v) in self.headers.iter().zip(rec.iter()) {
                    m.insert(h.clone(), Value::String(v.to_string()));
                }
                if rec.len() != self.headers.len() {
                    return Some((
                        self.n,
                        Err(format!(
                            "{} fields, the header has {}",
                            rec.len(),
                            self.headers.len()
                        )),
                    ));
                }
                Some((self.n, Ok(m)))
            }
            Err(e) => {
                self.n += 1;
                // A record that cannot be parsed is a rejected row; the
                // reader resynchronises at the next line.
                Some((self.n, Err(format!("unreadable CSV: {e}"))))
            }
        }
    }

    fn bytes_read(&self) -> u64 {
        self.reader.position().byte()
    }
}

struct JsonRows {
    reader: BufReader<File>,
    line: String,
    n: u64,
    bytes: u64,
}

impl Rows for JsonRows {
    fn next_row(&mut self) -> Option<Row> {
        loop {
            self.line.clear();
            match self.reader.read_line(&mut self.line) {
                Ok(0) => return None,
                Ok(k) => self.bytes += k as u64,
                Err(e) => {
                    self.n += 1;
                    return Some((self.n, Err(format!("unreadable line: {e}"))));
                }
            }
            if self.line.trim().is_empty() {
                continue;
            }
            self.n += 1;
            return Some((
                self.n,
                match serde_json::from_str::<Value>(&self.line) {
                    Ok(Value::Object(m)) => Ok(m),
                    Ok(_) => Err("not a JSON object".into()),
                    Err(e) => Err(format!("not JSON: {e}")),
                },
            ));
        }
    }

    fn bytes_read(&self) -> u64 {
        self.bytes
    }
}

fn open_rows(path: &Path, format: Format) -> Result<Box<dyn Rows>, Failure> {
    let f = File::open(path).map_err(|e| Failure::new(format!("{}: {e}", path.display())))?;
    Ok(match format {
        Format::Csv => {
            let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(f);
            let headers = reader
                .headers()
                .map_err(|e| Failure::new(format!("{}: no CSV header row: {e}", path.display())))?
                .iter()
                .map(str::to_string)
                .collect();
            Box::new(CsvRows {
                reader,
                headers,
                n: 0,
            })
        }
        Format::Jsonl => Box::new(JsonRows {
            reader: BufReader::new(f),
            line: String::new(),
            n: 0,
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
}

impl Mapper {
    /// Parses `--map` pairs; every target must be an event field.
    pub fn new(a: &Args) -> Result<Mapper, Failure> {
        let mut map = HashMap::new();
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
            map.insert(old.to_string(), new.to_string());
        }
        Ok(Mapper {
            map,
            id_column: a.id_column.clone(),
            key_prefix: a.key_prefix.clone(),
            tenant: a.tenant.clone(),
            keep_unmapped: !a.drop_unmapped,
        })
    }

    /// The event for a row, or why the row cannot be imported.
    pub fn event(&self, row: &Map<String, Value>) -> Result<Event, String> {
        let mut e = Event::default();
        let mut extra = Map::new();
        for (col, v) in row {
            let target = self
                .map
                .get(col)
                .map(String::as_str)
                .or_else(|| event_json::is_field(col).then_some(col.as_str()));
            match target {
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
                meta.entry(k).or_insert(v);
            }
            e.metadata = Value::Object(meta).to_string();
        }
        if e.tenant_id.is_empty() {
            if let Some(t) = &self.tenant {
                e.tenant_id = t.clone();
            }
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
                    Some(v @ Value::Number(_)) => format!("{}{v}", self.key_prefix),
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
}

/// What one file's import did in this run.
#[derive(Debug, Default, Clone, Copy)]
struct RunCounts {
    read: u64,
    skipped: u64,
    imported: u64,
    duplicates: u64,
    rejected: u64,
}

/// A batch sent and not yet settled: its rows, and rows rejected before
/// sending (reported when it settles, in file order).
struct Pending {
    id: Option<RequestId>,
    rows: Vec<(u64, Event)>,
    rejected: Vec<(u64, String)>,
    end_row: u64,
}

/// State of one file's import.
struct FileImport<'a> {
    client: &'a mut Client,
    checkpoint: Checkpoint,
    checkpoint_path: PathBuf,
    rejects: File,
    counts: RunCounts,
}

impl FileImport<'_> {
    /// Waits for the oldest batch, deals with refused rows, writes the
    /// rejects and the checkpoint.
    fn settle(&mut self, p: Pending) -> Result<(), Failure> {
        let mut rows = p.rows;
        let mut rejected = p.rejected;
        let mut id = p.id;
        while let Some(req) = id.take() {
            match self.client.wait_receipts(req) {
                Ok(rs) => {
                    let dups = rs.iter().filter(|r| r.duplicate).count() as u64;
                    self.counts.duplicates += dups;
                    self.counts.imported += rs.len() as u64 - dups;
                }
                Err(ClientError::Server(e))
                    if matches!(e.code, ErrorCode::InvalidEvent | ErrorCode::Forbidden)
                        && e.index.is_some() =>
                {
                    // All or nothing: drop the refused row, resend the rest.
                    let i = e.index.unwrap_or(0) as usize;
                    if i >= rows.len() {
                        return Err(Failure::new(format!(
                            "the server refused event {i} of a batch of {}",
                            rows.len()
                        )));
                    }
                    let (row, _) = rows.remove(i);
                    let why = if e.field.is_empty() {
                        e.message.clone()
                    } else {
                        format!("{}: {}", e.field, e.message)
                    };
                    rejected.push((row, why));
                    if !rows.is_empty() {
                        id = Some(self.resend(&rows)?);
                    }
                }
                Err(ClientError::Server(e)) if e.code == ErrorCode::Busy => {
                    std::thread::sleep(Duration::from_millis(50));
                    id = Some(self.resend(&rows)?);
                }
                Err(e) => return Err(Failure::new(format!("{e} (re-run to resume)"))),
            }
        }
        rejected.sort();
        for (row, why) in &rejected {
            writeln!(self.rejects, "{}", json!({ "row": row, "reason": why }))?;
        }
        self.rejects.flush()?;
        self.counts.rejected += rejected.len() as u64;
        let c = &mut self.checkpoint;
        c.rows_done = p.end_row;
        c.rejects_len = self.rejects.stream_position()?;
        save_checkpoint(&self.checkpoint_path, &self.checkpoint, &self.counts)?;
        Ok(())
    }

    fn resend(&mut self, rows: &[(u64, Event)]) -> Result<RequestId, Failure> {
        let events: Vec<Event> = rows.iter().map(|(_, e)| e.clone()).collect();
        Ok(self.client.submit_append(&events)?)
    }
}

/// The checkpoint as saved: the base (previous runs) plus this run.
fn save_checkpoint(path: &Path, base: &Checkpoint, run: &RunCounts) -> Result<(), Failure> {
    let c = Checkpoint {
        imported: base.imported + run.imported,
        duplicates: base.duplicates + run.duplicates,
        rejected: base.rejected + run.rejected,
        ..base.clone()
    };
    let tmp = suffixed(path, ".tmp");
    std::fs::write(
        &tmp,
        serde_json::to_vec(&c).map_err(|e| Failure::new(e.to_string()))?,
    )?;
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

/// Runs `chainlog import`.
pub fn run(cli: &Cli, a: &Args) -> Result<i32, Failure> {
    let mapper = Mapper::new(a)?;
    let formats = a
        .files
        .iter()
        .map(|f| format_of(f, a.format))
        .collect::<Result<Vec<_>, _>>()?;
    let mut client = cli.connect()?;
    let mut any_rejected = false;
    for (path, format) in a.files.iter().zip(formats) {
        let (c, run) = import_file(&mut client, a, &mapper, path, format)?;
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
    }
    Ok(if any_rejected { EXIT_REJECTED } else { EXIT_OK })
}

fn import_file(
    client: &mut Client,
    a: &Args,
    mapper: &Mapper,
    path: &Path,
    format: Format,
) -> Result<(Checkpoint, RunCounts), Failure> {
    let cp_path = checkpoint_path(path);
    let base = if a.restart {
        Checkpoint::default()
    } else {
        match std::fs::read(&cp_path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                Failure::new(format!(
                    "{}: {e} (use --restart to start over)",
                    cp_path.display()
                ))
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Checkpoint::default(),
            Err(e) => return Err(Failure::new(format!("{}: {e}", cp_path.display()))),
        }
    };
    let rejects = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(rejects_path(path))?;
    // Rows past the checkpoint will be settled (and their rejects written)
    // again: cut what a stopped run wrote after it.
    rejects.set_len(base.rejects_len)?;
    let mut rejects = rejects;
    rejects.seek(io::SeekFrom::End(0))?;
    let mut rows = open_rows(path, format)?;
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
        checkpoint: base.clone(),
        checkpoint_path: cp_path,
        rejects,
        counts: RunCounts::default(),
    };
    let mut queue: VecDeque<Pending> = VecDeque::new();
    let mut building = Pending {
        id: None,
        rows: Vec::new(),
        rejected: Vec::new(),
        end_row: 0,
    };
    let started = Instant::now();
    let mut last_draw = Instant::now();
    let batch = usize::from(a.batch);
    let mut building_bytes = 0usize;
    while let Some((n, row)) = rows.next_row() {
        imp.counts.read += 1;
        if n <= base.rows_done {
            imp.counts.skipped += 1;
            continue;
        }
        match row.and_then(|r| mapper.event(&r)) {
            Ok(e) => {
                let len = e.as_ref().encoded_len() + 4;
                if len > super::MAX_REQUEST_BYTES {
                    building.rejected.push((
                        n,
                        format!("event: encodes to {len} bytes, more than one request carries"),
                    ));
                } else {
                    // A request must stay under the server's frame limit.
                    if !building.rows.is_empty() && building_bytes + len > super::MAX_REQUEST_BYTES
                    {
                        send_bounded(&mut imp, &mut building, &mut queue, a.in_flight)?;
                        building_bytes = 0;
                    }
                    building_bytes += len;
                    building.rows.push((n, e));
                }
            }
            Err(why) => building.rejected.push((n, why)),
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
    if building.end_row > 0 {
        send(&mut imp, &mut building, &mut queue)?;
    }
    while let Some(p) = queue.pop_front() {
        imp.settle(p)?;
    }
    if let Some(pb) = progress {
        pb.finish_and_clear();
    }
    let c = Checkpoint {
        imported: base.imported + imp.counts.imported,
        duplicates: base.duplicates + imp.counts.duplicates,
        rejected: base.rejected + imp.counts.rejected,
        ..imp.checkpoint.clone()
    };
    Ok((c, imp.counts))
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
        p.id = Some(imp.resend(&p.rows)?);
    }
    queue.push_back(p);
    Ok(())
}
