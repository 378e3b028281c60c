//! Full verification of a log directory, trusting nothing stored: every CRC
//! and every hash is recomputed from the bytes, seq continuity is checked
//! inside and across segments, each header's link to the previous segment,
//! each footer against the records, and each index entry against the
//! record it names.
//!
//! Segments are checked independently, on as many threads as asked, then
//! the links between them are checked in order. Verification only reads:
//! sealed (read-only) segments through a memory map, anything writable
//! (the active segment of a live log) with `pread`, so that a live writer
//! never changes bytes under it; on a live log it checks the consistent
//! prefix that existed when each file was read. It is what `segment-verify` runs, and what the tests
//! run after every simulated crash.
//!
//! A hash chain cannot detect, on its own, the removal of the newest
//! records or a rewrite of the whole log: that needs a commitment to the
//! head kept outside the log ([`Options::expect_head`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::chain::{self, ChainState};
use crate::error::{Corruption, CorruptionKind, Error, Result};
use crate::format::footer::{Footer, FOOTER_LEN};
use crate::format::header::{SegmentHeader, HEADER_LEN};
use crate::format::index::{self, IndexKind, OffsetEntry, TimeEntry, INDEX_HEADER_LEN};
use crate::format::{Hash, LogId, Structure};
use crate::merkle::{self, Range};
use crate::segment::{index_file_name, parse_segment_name, segment_file_name, walk, NO_ROOT};
use crate::storage::{read_exact_at, Storage};

/// How to verify.
#[derive(Default)]
pub struct Options<'a> {
    /// Worker threads for checking segments (0 or 1: the calling thread).
    pub threads: usize,
    /// A commitment to the head kept outside the log: the log must contain
    /// record `seq` with this hash.
    pub expect_head: Option<(u64, Hash)>,
    /// A signed checkpoint's tree size and root, its signature already
    /// checked by the caller: the Merkle tree recomputed from the log's
    /// first `size` records must have this root.
    pub checkpoint: Option<(u64, Hash)>,
    /// Called after each segment with the bytes it held.
    pub progress: Option<&'a (dyn Fn(u64) + Sync)>,
}

/// The verdict on one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentVerdict {
    /// The segment file.
    pub path: PathBuf,
    /// The first seq named by the file.
    pub first_seq: u64,
    /// True when the segment has a valid seal footer.
    pub sealed: bool,
    /// Records whose CRC, seq and hash were checked and found valid.
    pub records: u64,
    /// Bytes of the file that were read.
    pub bytes: u64,
    /// The first problem found, if any; checking the segment stops there.
    pub error: Option<Corruption>,
    /// Things worth knowing that do not make the segment invalid (a sealed
    /// segment that is writable, a missing derived index, a torn tail).
    pub warnings: Vec<String>,
}

impl SegmentVerdict {
    /// The seq of the last valid record, if any.
    pub fn last_seq(&self) -> Option<u64> {
        (self.records > 0).then(|| self.first_seq + self.records - 1)
    }
}

/// Bytes at the end of the last segment that are not whole records and were
/// not durable: a torn tail after a crash, or a group still being written
/// in a live log. Recovery would cut them; nothing acknowledged is there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnverifiedTail {
    /// The segment.
    pub path: PathBuf,
    /// Where the tail starts.
    pub offset: u64,
    /// Its length.
    pub len: u64,
}

/// The verdict on a whole log directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The log's identity, from the first readable header.
    pub log_id: Option<LogId>,
    /// One verdict per segment file, in seq order.
    pub segments: Vec<SegmentVerdict>,
    /// Problems between segments: missing segments, broken links, time
    /// going backwards.
    pub gaps: Vec<Corruption>,
    /// The last valid record of an unbroken chain from seq 0, if any.
    pub head: Option<(u64, Hash)>,
    /// Records checked in all segments.
    pub records_checked: u64,
    /// Bytes read in all segments.
    pub bytes_checked: u64,
    /// A torn or in-flight tail of the last segment.
    pub tail: Option<UnverifiedTail>,
    /// True when a head commitment was given and checked.
    pub head_checked: bool,
    /// The head commitment's failure, if it failed.
    pub head_problem: Option<Corruption>,
    /// The root of the Merkle tree recomputed from every record of the
    /// unbroken chain (the tree of [`head`](Self::head)'s seq + 1 records).
    pub tree_root: Option<Hash>,
    /// True when a checkpoint was given and checked.
    pub checkpoint_checked: bool,
    /// The checkpoint's failure, if it failed.
    pub checkpoint_problem: Option<Corruption>,
}

impl Report {
    /// True when every segment is valid, nothing is missing between them,
    /// and the head commitment (if given) holds.
    pub fn is_valid(&self) -> bool {
        self.gaps.is_empty()
            && self.head_problem.is_none()
            && self.checkpoint_problem.is_none()
            && self.segments.iter().all(|s| s.error.is_none())
    }

    /// Every problem: gaps, then segments in order, then the head.
    pub fn problems(&self) -> Vec<&Corruption> {
        self.gaps
            .iter()
            .chain(self.segments.iter().filter_map(|s| s.error.as_ref()))
            .chain(self.head_problem.iter())
            .chain(self.checkpoint_problem.iter())
            .collect()
    }
}

/// What checking one segment established, for linking it to the next.
struct Checked {
    verdict: SegmentVerdict,
    header: Option<SegmentHeader>,
    /// `created_at` of the first record.
    first_created_at: Option<u64>,
    /// The chain state after the segment's last valid record, when the
    /// whole segment is valid.
    end: Option<ChainState>,
    /// The hash of the record the head commitment names, with where it is,
    /// if it is here.
    captured: Option<(Hash, PathBuf, u64)>,
    /// Where the valid records end.
    valid_end: u64,
    /// The Merkle tree's leaves of the segment's valid records.
    range: Range,
    /// The range up to the checkpoint's size, when it ends in this segment.
    range_at_checkpoint: Option<Range>,
    /// The seal, when valid.
    footer: Option<Footer>,
    tail: Option<UnverifiedTail>,
}

/// Verifies every segment in `dir` with default options (one thread, no
/// head commitment).
pub fn verify_dir(storage: &dyn Storage, dir: &Path) -> Result<Report> {
    verify(storage, dir, &Options::default())
}

/// Verifies every segment in `dir`. I/O errors (an unreadable directory or
/// file) are returned as errors; damage is reported in the [`Report`].
pub fn verify(storage: &dyn Storage, dir: &Path, options: &Options<'_>) -> Result<Report> {
    let names = storage.list(dir).map_err(|e| Error::io("list", dir, e))?;
    let mut seqs: Vec<u64> = names.iter().filter_map(|n| parse_segment_name(n)).collect();
    seqs.sort_unstable();
    let capture = Capture {
        head: options.expect_head.map(|(s, _)| s),
        tree_size: options.checkpoint.map(|(s, _)| s),
    };
    let results: Vec<Mutex<Option<Result<Checked>>>> =
        seqs.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let work = || {
        // One buffer per worker, reused: segments are large, and faulting
        // in fresh pages for each would cost more than the copy.
        let mut buf = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(&seq) = seqs.get(i) else { break };
            let path = dir.join(segment_file_name(seq));
            let is_last = i + 1 == seqs.len();
            let c = check_segment(storage, dir, &path, seq, is_last, capture, &mut buf);
            if let (Ok(c), Some(p)) = (&c, options.progress) {
                p(c.verdict.bytes);
            }
            *results[i].lock() = Some(c);
        }
    };
    let threads = options.threads.clamp(1, seqs.len().max(1));
    if threads == 1 {
        work();
    } else {
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(work);
            }
        });
    }
    let mut checked = Vec::with_capacity(seqs.len());
    for r in results {
        checked.push(r.into_inner().expect("every segment was checked")?);
    }
    Ok(link(
        dir,
        &seqs,
        checked,
        options.expect_head,
        options.checkpoint,
    ))
}

/// Checks the links between independently checked segments, in order.
fn link(
    dir: &Path,
    seqs: &[u64],
    checked: Vec<Checked>,
    expect_head: Option<(u64, Hash)>,
    checkpoint: Option<(u64, Hash)>,
) -> Report {
    let mut report = Report {
        log_id: None,
        segments: Vec::with_capacity(seqs.len()),
        gaps: Vec::new(),
        head: None,
        records_checked: 0,
        bytes_checked: 0,
        tail: None,
        head_checked: expect_head.is_some(),
        head_problem: None,
        tree_root: None,
        checkpoint_checked: checkpoint.is_some(),
        checkpoint_problem: None,
    };
    let mut prev: Option<ChainState> = None;
    let mut chain_intact = true;
    let mut captured = None;
    // Where the intact chain ends: a missing head commitment is reported
    // there.
    let mut chain_end: Option<(PathBuf, u64)> = None;
    // The Merkle tree of the intact chain so far, and at the checkpoint.
    let mut tree = Some(Range::new(0));
    let mut tree_at_checkpoint: Option<Hash> = None;
    for (i, (c, &seq)) in checked.into_iter().zip(seqs).enumerate() {
        let path = dir.join(segment_file_name(seq));
        if let Some(h) = &c.header {
            let id = *report.log_id.get_or_insert(h.log_id);
            let mut gap = |kind: CorruptionKind| {
                // The first bad seq: the one that should have come next.
                let first_bad = match &kind {
                    CorruptionKind::MissingSegment {
                        expected_first_seq, ..
                    } => *expected_first_seq,
                    _ => seq,
                };
                report
                    .gaps
                    .push(Corruption::new(&path, 0, Some(first_bad), kind));
            };
            // Link to what came before: the genesis hash, or the previous
            // segment's last record as recomputed.
            let expected = match (i, prev) {
                (0, _) if seq == 0 => Some((0, chain::genesis(&id), 0)),
                (_, Some(p)) => Some((p.next_seq, p.prev_hash, p.last_created_at)),
                _ => None,
            };
            match expected {
                Some((next, _, _)) if next != seq => gap(CorruptionKind::MissingSegment {
                    expected_first_seq: next,
                    found: format!("segment {}", segment_file_name(seq)),
                }),
                Some((_, hash, _)) if hash != h.prev_hash => gap(CorruptionKind::BrokenLink {
                    expected: hash,
                    found: h.prev_hash,
                }),
                Some((_, _, last_time)) if c.first_created_at.is_some_and(|t| t < last_time) => {
                    gap(CorruptionKind::TimeRegression {
                        previous: last_time,
                        found: c.first_created_at.unwrap_or(0),
                    })
                }
                None if i == 0 => gap(CorruptionKind::MissingSegment {
                    expected_first_seq: 0,
                    found: format!("segment {}", segment_file_name(seq)),
                }),
                None => {} // the previous segment was invalid: reported there
                Some(_) => {}
            }
            if h.log_id != id {
                gap(CorruptionKind::Mismatch {
                    what: Structure::SegmentHeader,
                    field: "log_id",
                    expected: crate::error::hex(&id),
                    found: crate::error::hex(&h.log_id),
                });
            }
        }
        chain_intact &= report.gaps.is_empty() && c.verdict.error.is_none();
        let mut c = c;
        if let Some(t) = tree.as_mut().filter(|_| chain_intact) {
            let start = t.clone();
            if t.append(&c.range).is_ok() {
                if let Some(partial) = &c.range_at_checkpoint {
                    let mut at = start;
                    if at.append(partial).is_ok() {
                        tree_at_checkpoint = at.frontier().map(|f| f.root());
                    }
                }
                // The seal's root: the tree of every record through this
                // segment's last (not recorded by segments sealed before
                // the log kept a tree).
                let root = t.frontier().map(|f| f.root());
                if let (Some(f), Some(root)) = (&c.footer, root) {
                    if f.merkle_root != NO_ROOT && f.merkle_root != root {
                        c.verdict.error = Some(Corruption::new(
                            &path,
                            f.records_end,
                            Some(f.last_seq),
                            CorruptionKind::Mismatch {
                                what: Structure::SegmentFooter,
                                field: "merkle_root",
                                expected: crate::error::hex(&root),
                                found: crate::error::hex(&f.merkle_root),
                            },
                        ));
                        chain_intact = false;
                    }
                }
            } else {
                tree = None;
            }
        }
        if !chain_intact {
            tree = None;
        }
        report.records_checked += c.verdict.records;
        report.bytes_checked += c.verdict.bytes;
        if chain_intact {
            if let Some(end) = c.end {
                if end.next_seq > 0 {
                    report.head = Some((end.next_seq - 1, end.prev_hash));
                }
                chain_end = Some((path.clone(), c.valid_end));
            }
            captured = captured.or(c.captured);
        }
        if c.tail.is_some() {
            report.tail = c.tail;
        }
        prev = c.end;
        report.segments.push(c.verdict);
    }
    // The tree of the intact chain: through the head.
    let records = report.head.map_or(0, |(s, _)| s + 1);
    if let Some(t) = &tree {
        report.tree_root = t
            .frontier()
            .filter(|f| f.size() == records)
            .map(|f| f.root());
    }
    if let Some((size, signed)) = checkpoint {
        let (file, pos) = chain_end.clone().unwrap_or_else(|| {
            seqs.first().map_or_else(
                || (dir.to_path_buf(), 0),
                |s| (dir.join(segment_file_name(*s)), 0),
            )
        });
        let kind = match tree_at_checkpoint {
            _ if size > records => Some(CorruptionKind::CheckpointBeyondLog { size, records }),
            Some(computed) if computed == signed => None,
            Some(computed) => Some(CorruptionKind::CheckpointRootMismatch {
                size,
                signed,
                computed,
            }),
            // The empty tree.
            None if size == 0 && signed == merkle::empty_root() => None,
            None => Some(CorruptionKind::CheckpointRootMismatch {
                size,
                signed,
                computed: merkle::empty_root(),
            }),
        };
        report.checkpoint_problem =
            kind.map(|k| Corruption::new(&file, pos, size.checked_sub(1), k));
    }
    if let Some((seq, hash)) = expect_head {
        report.head_problem = match (report.head, captured) {
            (_, Some((found, _, _))) if found == hash => None,
            // Where the record is.
            (_, Some((found, file, pos))) => Some(Corruption::new(
                &file,
                pos,
                Some(seq),
                CorruptionKind::HeadHashMismatch {
                    seq,
                    expected: hash,
                    found,
                },
            )),
            // Where it should have been: the end of the intact chain (the
            // log's first segment, or the directory, when it has none).
            (head, None) => {
                let (file, pos) = chain_end.clone().unwrap_or_else(|| {
                    seqs.first().map_or_else(
                        || (dir.to_path_buf(), 0),
                        |s| (dir.join(segment_file_name(*s)), 0),
                    )
                });
                Some(Corruption::new(
                    &file,
                    pos,
                    Some(seq),
                    CorruptionKind::HeadMissing {
                        expected_seq: seq,
                        last: head
                            .map_or_else(|| "no records".to_owned(), |(s, _)| format!("seq {s}")),
                    },
                ))
            }
        };
    }
    report
}

/// An index entry whose position is not the start of any record.
fn index_points_nowhere(
    path: &Path,
    name_seq: u64,
    kind: IndexKind,
    entry: u64,
    pos: u64,
    seq: u64,
) -> Corruption {
    let found = "no record starts at that position".to_owned();
    index_entry_error(path, name_seq, (kind, entry, pos, seq), found)
}

/// Index entry `entry` of `kind`, naming `seq` at `pos`, is wrong: `found`.
fn index_entry_error(
    path: &Path,
    name_seq: u64,
    (kind, entry, pos, seq): (IndexKind, u64, u64, u64),
    found: String,
) -> Corruption {
    Corruption::new(
        &path.with_file_name(index_file_name(name_seq, kind)),
        pos,
        Some(seq),
        CorruptionKind::IndexEntry {
            what: kind.structure(),
            entry,
            pos,
            expected: seq,
            found,
        },
    )
}

/// Reads a whole file with `pread` into memory.
fn read_file(storage: &dyn Storage, path: &Path) -> Result<Vec<u8>> {
    let mut v = Vec::new();
    read_file_into(storage, path, &mut v)?;
    Ok(v)
}

/// Reads a whole file with `pread` into `buf`, replacing its contents.
fn read_file_into(storage: &dyn Storage, path: &Path, buf: &mut Vec<u8>) -> Result<()> {
    let file = storage
        .open_read(path)
        .map_err(|e| Error::io("open", path, e))?;
    let len = file.len().map_err(|e| Error::io("stat", path, e))?;
    let len = usize::try_from(len).map_err(|_| {
        Error::io(
            "read",
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidData, "file too large"),
        )
    })?;
    buf.clear();
    buf.resize(len, 0);
    read_exact_at(&*file, buf, 0).map_err(|e| Error::io("read", path, e))?;
    Ok(())
}

fn check_segment(
    storage: &dyn Storage,
    dir: &Path,
    path: &Path,
    name_seq: u64,
    is_last: bool,
    capture: Capture,
    buf: &mut Vec<u8>,
) -> Result<Checked> {
    // Sealed (read-only) segments are never written or truncated by the
    // engine: map them (no copy). Anything writable, such as the active
    // segment of a live log, is read with pread into the worker's buffer.
    let mapped = if storage.is_read_only(path).unwrap_or(false) {
        let file = storage
            .open_read(path)
            .map_err(|e| Error::io("open", path, e))?;
        Some(file.read_all().map_err(|e| Error::io("map", path, e))?)
    } else {
        read_file_into(storage, path, buf)?;
        None
    };
    let bytes: &[u8] = mapped.as_deref().unwrap_or(buf);
    let mut verdict = SegmentVerdict {
        path: path.to_path_buf(),
        first_seq: name_seq,
        sealed: false,
        records: 0,
        bytes: bytes.len() as u64,
        error: None,
        warnings: Vec::new(),
    };
    let fail = |mut verdict: SegmentVerdict, c: Corruption, header| {
        verdict.error = Some(c);
        Ok(Checked {
            verdict,
            header,
            first_created_at: None,
            end: None,
            captured: None,
            valid_end: 0,
            range: Range::new(name_seq),
            range_at_checkpoint: None,
            footer: None,
            tail: None,
        })
    };
    let read_only = storage
        .is_read_only(path)
        .map_err(|e| Error::io("stat", path, e))?;
    // The footer, if the bytes end in one, to find the index entries to
    // check during the walk (the walk decides whether it is a valid seal).
    let footer = (bytes.len() >= HEADER_LEN + FOOTER_LEN)
        .then(|| Footer::parse(&bytes[bytes.len() - FOOTER_LEN..]).ok())
        .flatten();

    // Index entries to find during the walk, by position.
    // (pos, kind, entry number, seq, created_at), sorted by position: the
    // walk meets records in position order and advances a cursor.
    let mut expected_at: Vec<(u64, IndexKind, u64, u64, Option<u64>)> = Vec::new();
    let mut index_error: Option<Corruption> = None;
    if footer.is_some() {
        for kind in [IndexKind::Offset, IndexKind::Time] {
            let ipath = dir.join(index_file_name(name_seq, kind));
            let ibytes = match read_file(storage, &ipath) {
                Ok(b) => b,
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                    verdict.warnings.push(format!(
                        "{} is missing (derived data: rebuilt when the log is opened)",
                        ipath.display()
                    ));
                    continue;
                }
                Err(e) => return Err(e),
            };
            let h = match index::decode_file(kind, &ibytes) {
                Ok(h) if h.first_seq == name_seq => h,
                Ok(h) => {
                    let k = crate::format::bad_field(
                        kind.structure(),
                        "first_seq",
                        name_seq,
                        h.first_seq,
                    );
                    index_error.get_or_insert(Corruption::new(&ipath, 16, Some(name_seq), k));
                    continue;
                }
                Err(k) => {
                    index_error.get_or_insert(Corruption::new(&ipath, 0, Some(name_seq), k));
                    continue;
                }
            };
            for i in 0..h.entry_count as usize {
                let at = INDEX_HEADER_LEN + i * kind.entry_len();
                let (rel, pos, time) = match kind {
                    IndexKind::Offset => {
                        let e = OffsetEntry::decode(&ibytes[at..at + kind.entry_len()]);
                        (e.rel_seq, e.pos, None)
                    }
                    IndexKind::Time => {
                        let e = TimeEntry::decode(&ibytes[at..at + kind.entry_len()]);
                        (e.rel_seq, e.pos, Some(e.created_at))
                    }
                };
                expected_at.push((
                    u64::from(pos),
                    kind,
                    i as u64,
                    name_seq.wrapping_add(u64::from(rel)),
                    time,
                ));
            }
        }
    }

    expected_at.sort_unstable_by_key(|e| (e.0, e.1 == IndexKind::Time));
    let mut next_entry = 0usize;
    let mut captured = None;
    let place = walk::Place {
        name_seq: Some(name_seq),
        may_be_open: is_last && !read_only,
        // Time order across segments is checked when they are linked.
        prev_created_at: 0,
    };
    let mut range = Range::new(name_seq);
    // A checkpoint of the records before this segment's first.
    let mut range_at_checkpoint = (capture.tree_size == Some(name_seq)).then(|| range.clone());
    let walked = walk::segment(path, bytes, place, |pos, r| {
        if capture.head == Some(r.seq) {
            captured = Some((r.hash, pos));
        }
        range.push(merkle::leaf_hash(&r.hash));
        if capture.tree_size == Some(range.end()) {
            range_at_checkpoint = Some(range.clone());
        }
        // Entries before this record's position name no record start.
        while let Some(&(epos, kind, entry, seq, _)) = expected_at.get(next_entry) {
            if epos >= pos {
                break;
            }
            if index_error.is_none() {
                index_error = Some(index_points_nowhere(path, name_seq, kind, entry, epos, seq));
            }
            next_entry += 1;
        }
        while let Some(&(epos, kind, entry, seq, time)) = expected_at.get(next_entry) {
            if epos != pos {
                break;
            }
            next_entry += 1;
            if index_error.is_none() && (seq != r.seq || time.is_some_and(|t| t != r.created_at)) {
                let found = format!("seq {} created_at {}", r.seq, r.created_at);
                index_error = Some(index_entry_error(
                    path,
                    name_seq,
                    (kind, entry, pos, seq),
                    found,
                ));
            }
        }
    });
    verdict.records = walked.records;
    let header = walked.header;
    let mut tail = None;
    let mut sealed = None;
    match walked.end {
        // A bad header is not this segment's header: no link to check.
        Err(walk::Damage::Header(c)) => return fail(verdict, *c, None),
        Err(d) => return fail(verdict, *d.into_corruption(), header),
        Ok(walk::End::Open | walk::End::Zeros) => {}
        Ok(walk::End::Torn(_)) => {
            // The last, unsealed segment: bytes that were never durable
            // are a torn (or in-flight) tail, not verified.
            let pos = walked.valid_end;
            verdict.warnings.push(format!(
                "{} bytes at offset {pos} are not whole records and were never durable \
                 (a torn tail, or appends in flight): not verified; opening the log cuts them",
                bytes.len() as u64 - pos
            ));
            tail = Some(UnverifiedTail {
                path: path.to_path_buf(),
                offset: pos,
                len: bytes.len() as u64 - pos,
            });
        }
        Ok(walk::End::Sealed(f)) => {
            verdict.sealed = true;
            sealed = Some(f);
            if let Some(c) = index_error {
                return fail(verdict, c, header);
            }
            if let Some(&(epos, kind, entry, seq, _)) = expected_at.get(next_entry) {
                let c = index_points_nowhere(path, name_seq, kind, entry, epos, seq);
                return fail(verdict, c, header);
            }
            if !read_only {
                verdict
                    .warnings
                    .push(format!("sealed segment {} is writable", path.display()));
            }
        }
    }
    Ok(Checked {
        verdict,
        header,
        first_created_at: walked.first_created_at,
        end: walked.chain,
        captured: captured.map(|(hash, pos)| (hash, path.to_path_buf(), pos)),
        valid_end: walked.valid_end,
        range,
        range_at_checkpoint,
        footer: sealed,
        tail,
    })
}

/// What the walk of each segment keeps aside for the checks across them.
#[derive(Debug, Clone, Copy)]
struct Capture {
    /// The head commitment's seq: its record's hash and place.
    head: Option<u64>,
    /// The checkpoint's tree size: the Merkle range up to it.
    tree_size: Option<u64>,
}
