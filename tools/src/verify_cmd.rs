//! `segment-verify`: the verdict on a log directory, for people and for
//! automation.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use engine::note::checkpoint::Checkpoint;
use engine::note::key::VerifierKey;
use engine::storage::FsStorage;
use engine::verify::{self, Options, Report};
use engine::Hash;
use serde_json::{json, Value};

use crate::json::{corruption, head_string};
use crate::{EXIT_ERROR, EXIT_INVALID, EXIT_VALID};

/// What `segment-verify` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct Args {
    /// The log directory.
    pub dir: PathBuf,
    /// One JSON document instead of text.
    pub json: bool,
    /// The head committed to outside the log.
    pub expect_head: Option<(u64, Hash)>,
    /// A signed checkpoint (a C2SP tlog-checkpoint signed note) to check
    /// the log against, with `key`.
    pub checkpoint: Option<PathBuf>,
    /// The checkpoint's verifier key (`name+keyid+base64`), or `@FILE`
    /// holding one.
    pub key: Option<String>,
    /// Worker threads (default: the machine's cores).
    pub threads: Option<usize>,
    /// Report speeds, beside the single-core SHA-256 chain speed.
    pub stats: bool,
    /// Show a progress bar on standard error (only when it is a terminal
    /// and the output is text).
    pub progress: bool,
}

/// What a guarantee line says when no head commitment was given.
pub const NOT_CHECKED: &str = "NOT CHECKED: without an external commitment to the head \
(--checkpoint FILE --key VKEY, or --expect-head SEQ:HASH), the removal of the newest records and a rewrite of the whole log \
cannot be detected by a hash chain";

/// Parses `SEQ:HASH` (HASH: 64 hex digits).
pub fn parse_head(s: &str) -> Result<(u64, Hash), String> {
    let (seq, hash) = s
        .split_once(':')
        .ok_or_else(|| format!("expected SEQ:HASH, got {s:?}"))?;
    let seq: u64 = seq.parse().map_err(|_| format!("bad seq {seq:?}"))?;
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("hash must be 64 hex digits, got {hash:?}"));
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hash[2 * i..2 * i + 2], 16)
            .map_err(|_| format!("bad hex in hash {hash:?}"))?;
    }
    Ok((seq, out))
}

/// Speed figures for `--stats`.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    /// Wall time of the verification.
    pub elapsed: Duration,
    /// Threads used.
    pub threads: usize,
    /// Chain steps per second on one core over 256-byte records, measured
    /// in the same run.
    pub sha_records_per_sec: f64,
}

/// Chain steps per second on one core for 256-byte payloads, over about a
/// quarter of a second.
pub fn measure_chain_speed() -> f64 {
    let payload = [0x5au8; 256];
    let mut prev = [0u8; 32];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_millis(250) {
        for _ in 0..1000 {
            prev = engine::chain::step(&prev, n, n, 1, &payload);
            n += 1;
        }
    }
    std::hint::black_box(prev);
    n as f64 / start.elapsed().as_secs_f64()
}

/// Runs the verification and writes the verdict; returns the exit code.
pub fn run(args: &Args, out: &mut dyn Write) -> i32 {
    match run_inner(args, out) {
        Ok(code) => code,
        Err(msg) => {
            if args.json {
                let _ = writeln!(out, "{}", json!({ "error": msg }));
            }
            eprintln!("segment-verify: {msg}");
            EXIT_ERROR
        }
    }
}

fn run_inner(args: &Args, out: &mut dyn Write) -> Result<i32, String> {
    let meta = std::fs::metadata(&args.dir).map_err(|e| format!("{}: {e}", args.dir.display()))?;
    if !meta.is_dir() {
        return Err(format!("{} is not a directory", args.dir.display()));
    }
    let segment_bytes = segment_sizes(&args.dir)?;
    if segment_bytes.is_empty() {
        let logs = log_dirs(&args.dir)?;
        if logs.is_empty() {
            return Err(format!("{}: no segment files (*.seg)", args.dir.display()));
        }
        return verify_each(args, &logs, out);
    }
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let bar = (args.progress && !args.json && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(segment_bytes.iter().sum());
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let progress = |n: u64| {
        if let Some(b) = &bar {
            b.inc(n);
        }
    };
    let checkpoint = match (&args.checkpoint, &args.key) {
        (None, None) => None,
        (Some(path), Some(key)) => Some(open_checkpoint(path, key)?),
        _ => return Err("--checkpoint and --key go together".to_owned()),
    };
    let options = Options {
        threads,
        expect_head: args.expect_head,
        checkpoint: checkpoint
            .as_ref()
            .and_then(|c| c.as_ref().ok())
            .map(|c| (c.size, c.root_hash)),
        progress: Some(&progress),
    };
    let started = Instant::now();
    let report = verify::verify(&FsStorage, &args.dir, &options).map_err(|e| e.to_string())?;
    let elapsed = started.elapsed();
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let stats = args.stats.then(|| Stats {
        elapsed,
        threads,
        sha_records_per_sec: measure_chain_speed(),
    });
    let checkpoint = checkpoint.as_ref();
    let text = if args.json {
        serde_json::to_string_pretty(&to_json(&args.dir, &report, checkpoint, stats.as_ref()))
            .map_err(|e| e.to_string())?
    } else {
        to_text(&report, checkpoint, stats.as_ref())
    };
    writeln!(out, "{text}").map_err(|e| e.to_string())?;
    Ok(
        if report.is_valid() && checkpoint.is_none_or(|c| c.is_ok()) {
            EXIT_VALID
        } else {
            EXIT_INVALID
        },
    )
}

fn checkpoint_json(report: &Report, checkpoint: Option<&Opened>) -> Value {
    match checkpoint {
        None => json!({ "checked": false }),
        Some(Err(e)) => json!({
            "checked": true,
            "valid": false,
            "error": { "kind": "CheckpointNotAccepted", "message": e },
        }),
        Some(Ok(c)) => json!({
            "checked": true,
            "valid": report.checkpoint_problem.is_none(),
            "origin": c.origin,
            "size": c.size,
            "root": engine::error::hex(&c.root_hash),
            "error": report.checkpoint_problem.as_ref().map(corruption),
        }),
    }
}

/// A checkpoint given to check the log against: parsed and its signature
/// verified, or why not (which makes the verdict invalid, exit 1).
type Opened = Result<Checkpoint, String>;

/// Reads the checkpoint file and the key. A file or key that cannot be read
/// or parsed is a usage error; a note the key did not sign is a verdict.
fn open_checkpoint(path: &Path, key: &str) -> Result<Opened, String> {
    let key_text = match key.strip_prefix('@') {
        Some(file) => std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?,
        None => key.to_owned(),
    };
    let key = VerifierKey::parse(key_text.trim()).map_err(|e| format!("--key: {e}"))?;
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Checkpoint::open(&bytes, &[key]).map_err(|e| e.to_string()))
}

/// The subdirectories of `dir` that hold segment files: the logs of a
/// chainlogd data directory, in name order.
fn log_dirs(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let rd = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut logs = Vec::new();
    for e in rd {
        let e = e.map_err(|e| e.to_string())?;
        let path = e.path();
        if !path.is_dir() {
            continue;
        }
        // A subdirectory that cannot be read may be a log: never skip it
        // silently.
        match segment_sizes(&path) {
            Ok(s) if s.is_empty() => {}
            Ok(_) => logs.push(path),
            Err(e) => return Err(format!("{e} (in the data directory {})", dir.display())),
        }
    }
    logs.sort();
    Ok(logs)
}

/// A chainlogd data directory: every log in it, one after another (one
/// JSON document listing them with `--json`); the exit code is 1 if any
/// log is invalid, else 2 if any could not be checked, else 0. A head or checkpoint is one log's, so with either the
/// answer names the directories to give instead.
fn verify_each(args: &Args, logs: &[PathBuf], out: &mut dyn Write) -> Result<i32, String> {
    let names = || {
        logs.iter()
            .map(|l| l.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if args.expect_head.is_some() || args.checkpoint.is_some() {
        return Err(format!(
            "{} is a chainlogd data directory with {} logs; --expect-head and --checkpoint are one log's: give its directory ({})",
            args.dir.display(),
            logs.len(),
            names()
        ));
    }
    // Invalid (1) is the verdict that matters most: an I/O error on one
    // log (2) must not hide tampering found in another.
    let (mut invalid, mut failed) = (false, false);
    let mut docs = Vec::new();
    for (i, log) in logs.iter().enumerate() {
        let one = Args {
            dir: log.clone(),
            ..args.clone()
        };
        let mut buf = Vec::new();
        let code = run(&one, &mut buf);
        invalid |= code == EXIT_INVALID;
        failed |= code == EXIT_ERROR;
        if args.json {
            let doc: Value = serde_json::from_slice(&buf).map_err(|e| e.to_string())?;
            docs.push(json!({ "log": file_name(log), "report": doc }));
        } else {
            if i > 0 {
                writeln!(out).map_err(|e| e.to_string())?;
            }
            writeln!(out, "== {}", log.display()).map_err(|e| e.to_string())?;
            out.write_all(&buf).map_err(|e| e.to_string())?;
        }
    }
    if args.json {
        let v = json!({ "data_dir": args.dir.display().to_string(), "logs": docs });
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?
        )
        .map_err(|e| e.to_string())?;
    }
    Ok(if invalid {
        EXIT_INVALID
    } else if failed {
        EXIT_ERROR
    } else {
        EXIT_VALID
    })
}

fn segment_sizes(dir: &Path) -> Result<Vec<u64>, String> {
    let rd = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut sizes = Vec::new();
    for e in rd {
        let e = e.map_err(|e| e.to_string())?;
        let name = e.file_name();
        if name.to_str().and_then(engine::parse_segment_name).is_some() {
            sizes.push(e.metadata().map_err(|e| e.to_string())?.len());
        }
    }
    Ok(sizes)
}

fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// The one-line summary.
pub fn summary(report: &Report) -> String {
    let total = report.segments.len();
    let bad = report.segments.iter().filter(|s| s.error.is_some()).count();
    let mut s = format!("{}/{total} segments valid", total - bad);
    if bad > 0 {
        s.push_str(&format!(", {bad} INVALID"));
    }
    if !report.gaps.is_empty() {
        s.push_str(&format!(", {} gap(s)", report.gaps.len()));
    }
    s.push_str(&format!("; {} records checked", report.records_checked));
    match report.head {
        Some((seq, hash)) => s.push_str(&format!("; head {}", head_string(seq, &hash))),
        None => s.push_str("; no verified head"),
    }
    s
}

/// The verdict as text: one line per segment, gaps, warnings, a summary,
/// and what the head commitment did or could not check.
pub fn to_text(report: &Report, checkpoint: Option<&Opened>, stats: Option<&Stats>) -> String {
    let mut lines = Vec::new();
    for seg in &report.segments {
        let name = file_name(&seg.path);
        match &seg.error {
            None => {
                let range = seg.last_seq().map_or_else(
                    || "no records".to_owned(),
                    |l| format!("seqs {}..={l}", seg.first_seq),
                );
                let sealed = if seg.sealed { "sealed" } else { "active" };
                lines.push(format!(
                    "{name}  valid  ({sealed}, {range}, {} bytes)",
                    seg.bytes
                ));
            }
            Some(c) => {
                let seq = c.seq.map_or_else(String::new, |s| format!(" at seq {s}"));
                let file = if c.file == seg.path {
                    String::new()
                } else {
                    format!(" in {}", file_name(&c.file))
                };
                lines.push(format!(
                    "{name}  INVALID: {}{seq}, offset {}{file}",
                    c.kind, c.offset
                ));
            }
        }
        for w in &seg.warnings {
            lines.push(format!("  warning: {w}"));
        }
    }
    for g in &report.gaps {
        let seq = g.seq.map_or_else(String::new, |s| format!(" at seq {s}"));
        lines.push(format!(
            "gap before {}: {}{seq}",
            file_name(&g.file),
            g.kind
        ));
    }
    lines.push(summary(report));
    match checkpoint {
        None => {}
        Some(Err(e)) => lines.push(format!("checkpoint INVALID: {e}")),
        Some(Ok(_)) if report.checkpoint_problem.is_some() => {
            let kind = report
                .checkpoint_problem
                .as_ref()
                .map(|p| p.kind.to_string());
            lines.push(format!("checkpoint INVALID: {}", kind.unwrap_or_default()));
        }
        Some(Ok(c)) => lines.push(format!(
            "checkpoint: verified ({}, {} records, root {}): no newest records removed, no rewrite",
            c.origin,
            c.size,
            engine::error::hex(&c.root_hash)
        )),
    }
    if report.head_checked {
        if let Some(p) = &report.head_problem {
            lines.push(format!("head commitment INVALID: {}", p.kind));
        } else {
            lines.push(
                "head commitment: verified (no newest records removed, no rewrite)".to_owned(),
            );
        }
    } else if checkpoint.is_none() {
        lines.push(NOT_CHECKED.to_owned());
    }
    if let Some(s) = stats {
        lines.push(stats_line(report, s));
    }
    lines.join("\n")
}

fn stats_line(report: &Report, s: &Stats) -> String {
    let secs = s.elapsed.as_secs_f64().max(1e-9);
    let rps = report.records_checked as f64 / secs;
    format!(
        "stats: {} bytes, {} records in {:.3} s on {} thread(s): {:.2} GB/s, {:.0} records/s \
         ({:.0} per thread); SHA-256 chain step on one core, same run: {:.0} records/s of 256 bytes \
         (verification per thread at {:.0}% of it)",
        report.bytes_checked,
        report.records_checked,
        secs,
        s.threads,
        report.bytes_checked as f64 / secs / 1e9,
        rps,
        rps / s.threads as f64,
        s.sha_records_per_sec,
        100.0 * rps / s.threads as f64 / s.sha_records_per_sec
    )
}

/// The verdict as one JSON document (schema in docs/operations.md).
pub fn to_json(
    dir: &Path,
    report: &Report,
    checkpoint: Option<&Opened>,
    stats: Option<&Stats>,
) -> Value {
    let segments: Vec<Value> = report
        .segments
        .iter()
        .map(|s| {
            json!({
                "file": file_name(&s.path),
                "first_seq": s.first_seq,
                "last_seq": s.last_seq(),
                "records": s.records,
                "bytes": s.bytes,
                "sealed": s.sealed,
                "valid": s.error.is_none(),
                "error": s.error.as_ref().map(corruption),
                "warnings": s.warnings,
            })
        })
        .collect();
    let mut doc = json!({
        "dir": dir.display().to_string(),
        "valid": report.is_valid() && checkpoint.is_none_or(|c| c.is_ok()),
        "log_id": report.log_id.map(|id| engine::error::hex(&id)),
        "segments": segments,
        "gaps": report.gaps.iter().map(corruption).collect::<Vec<_>>(),
        "tail": report.tail.as_ref().map(|t| json!({
            "file": file_name(&t.path), "offset": t.offset, "len": t.len,
        })),
        "records_checked": report.records_checked,
        "bytes_checked": report.bytes_checked,
        "head": report.head.map(|(seq, hash)| json!({
            "seq": seq, "hash": engine::error::hex(&hash),
        })),
        "head_commitment": {
            "checked": report.head_checked,
            "valid": report.head_checked.then(|| report.head_problem.is_none()),
            "error": report.head_problem.as_ref().map(corruption),
            "note": (!report.head_checked && checkpoint.is_none()).then_some(NOT_CHECKED),
        },
        "tree_root": report.tree_root.map(|r| engine::error::hex(&r)),
        "checkpoint": checkpoint_json(report, checkpoint),
        "summary": summary(report),
    });
    if let Some(s) = stats {
        let secs = s.elapsed.as_secs_f64().max(1e-9);
        doc["stats"] = json!({
            "seconds": secs,
            "threads": s.threads,
            "bytes_per_sec": report.bytes_checked as f64 / secs,
            "records_per_sec": report.records_checked as f64 / secs,
            "sha256_chain_records_per_sec_one_core": s.sha_records_per_sec,
        });
    }
    doc
}
