//! `segment-dump`: what is inside a segment, record by record, as JSON
//! lines. It reads the files directly (never opening the log, so it never
//! repairs anything and works on damaged copies) through the engine's one
//! segment walk ([`engine::walk`]): it prints the records that recovery and
//! `segment-verify` accept, and where and why they end. It checks each
//! segment on its own (CRCs, the chain inside it, its seal); the links
//! between segments are `segment-verify`'s job.

use std::io::Write;
use std::path::{Path, PathBuf};

use engine::error::hex;
use engine::format::footer::{Footer, FOOTER_LEN};
use engine::format::header::{SegmentHeader, HEADER_LEN};
use engine::format::record::{self, KIND_DATA};
use engine::walk;
use serde_json::{json, Value};

use crate::{EXIT_ERROR, EXIT_INVALID, EXIT_VALID};

/// What `segment-dump` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct Args {
    /// A log directory or one segment file.
    pub path: PathBuf,
    /// First seq to print.
    pub from: Option<u64>,
    /// Last seq to print (inclusive).
    pub to: Option<u64>,
    /// Also print each segment's header and footer.
    pub headers: bool,
}

/// One record as JSON: a data record that holds an event in chainlogd's
/// encoding as the event's fields (under `event`, as `chainlog query
/// --json` prints them); any other payload as text when it is valid UTF-8,
/// as hex otherwise.
pub fn record_json(segment: &str, offset: u64, r: &record::RecordRef<'_>) -> Value {
    let mut v = json!({
        "segment": segment,
        "offset": offset,
        "seq": r.seq,
        "created_at": r.created_at,
        "kind": r.kind,
        "hash": hex(&r.hash),
    });
    if r.kind == KIND_DATA {
        if let Ok(e) = proto::event::Event::decode(r.payload) {
            let mut fields = crate::cli::event_json::to_json(&proto::event::StoredEvent {
                seq: r.seq,
                created_at: r.created_at,
                hash: r.hash,
                event: e,
            });
            // The record's own fields are beside it already.
            if let Some(m) = fields.as_object_mut() {
                for k in ["seq", "created_at", "hash"] {
                    m.remove(k);
                }
            }
            v["event"] = fields;
            return v;
        }
    }
    match std::str::from_utf8(r.payload) {
        Ok(text) if r.kind == KIND_DATA => v["payload"] = json!(text),
        _ => v["payload_hex"] = json!(hex(r.payload)),
    }
    v
}

fn header_json(h: &SegmentHeader) -> Value {
    json!({
        "log_id": hex(&h.log_id),
        "first_seq": h.first_seq,
        "created_at": h.created_at,
        "prev_hash": hex(&h.prev_hash),
    })
}

fn footer_json(f: &Footer) -> Value {
    json!({
        "first_seq": f.first_seq,
        "last_seq": f.last_seq,
        "record_count": f.record_count,
        "records_end": f.records_end,
        "first_created_at": f.first_created_at,
        "last_created_at": f.last_created_at,
        "sealed_at": f.sealed_at,
        "last_hash": hex(&f.last_hash),
        "merkle_root": hex(&f.merkle_root),
        "signature": hex(&f.signature),
    })
}

/// The segment files to dump, in seq order.
fn segment_files(path: &Path) -> Result<Vec<PathBuf>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<(u64, PathBuf)> = Vec::new();
    for e in std::fs::read_dir(path).map_err(|e| format!("{}: {e}", path.display()))? {
        let e = e.map_err(|e| e.to_string())?;
        if let Some(seq) = e.file_name().to_str().and_then(engine::parse_segment_name) {
            files.push((seq, e.path()));
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(format!("{}: no segment files (*.seg)", path.display()));
    }
    Ok(files.into_iter().map(|(_, p)| p).collect())
}

/// Dumps and returns the exit code: 0 when every byte decoded, 1 when some
/// structure did not (an error line says where), 2 on usage or I/O errors.
pub fn run(args: &Args, out: &mut dyn Write) -> i32 {
    match run_inner(args, out) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("segment-dump: {msg}");
            EXIT_ERROR
        }
    }
}

fn run_inner(args: &Args, out: &mut dyn Write) -> Result<i32, String> {
    let from = args.from.unwrap_or(0);
    let to = args.to.unwrap_or(u64::MAX);
    let mut code = EXIT_VALID;
    let mut emit = |v: Value| writeln!(out, "{v}").map_err(|e| e.to_string());
    let files = segment_files(&args.path)?;
    for (i, file) in files.iter().enumerate() {
        let name = file
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let bytes = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let writable = !std::fs::metadata(file)
            .map_err(|e| format!("{}: {e}", file.display()))?
            .permissions()
            .readonly();
        // A file given alone is taken as the last of its log.
        let place = walk::Place {
            name_seq: engine::parse_segment_name(&name),
            may_be_open: i + 1 == files.len() && writable,
            prev_created_at: 0,
        };
        let mut lines = Vec::new();
        let walked = walk::segment(file, &bytes, place, |pos, r| {
            if (from..=to).contains(&r.seq) {
                lines.push(record_json(&name, pos, r));
            }
        });
        if args.headers {
            if let Some(h) = &walked.header {
                // The footer as stored, valid seal or not (the walk's verdict
                // follows the records).
                let footer = (bytes.len() >= HEADER_LEN + FOOTER_LEN)
                    .then(|| Footer::parse(&bytes[bytes.len() - FOOTER_LEN..]).ok())
                    .flatten()
                    .filter(|f| f.records_end as usize + FOOTER_LEN == bytes.len());
                emit(json!({
                    "segment": name,
                    "header": header_json(h),
                    "footer": footer.as_ref().map(footer_json),
                }))?;
            }
        }
        for l in lines {
            emit(l)?;
        }
        let problem = match walked.end {
            Ok(walk::End::Sealed(_) | walk::End::Open | walk::End::Zeros) => None,
            // Recovery would cut it; it is still not a whole record.
            Ok(walk::End::Torn(cause)) => Some((walked.valid_end, cause.to_string())),
            Err(d) => {
                let c = d.into_corruption();
                Some((c.offset, c.kind.to_string()))
            }
        };
        if let Some((offset, error)) = problem {
            emit(json!({ "segment": name, "offset": offset, "error": error }))?;
            code = EXIT_INVALID;
        }
    }
    Ok(code)
}
