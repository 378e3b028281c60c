//! Full verification of a log directory, trusting nothing stored: every CRC
//! and every hash is recomputed from the bytes, seq continuity is checked
//! inside and across segments, each header's link to the previous segment,
//! each footer against the records, and each index entry against the
//! record it names.
//!
//! Verification only reads. It is what `segment-verify` runs, and what the
//! tests run after every simulated crash.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::chain;
use crate::error::{Corruption, CorruptionKind, Error, Result};
use crate::format::footer::{Footer, FOOTER_LEN};
use crate::format::header::{SegmentHeader, HEADER_LEN};
use crate::format::index::{self, IndexKind, OffsetEntry, TimeEntry, INDEX_HEADER_LEN};
use crate::format::{Hash, LogId, Structure};
use crate::recovery::{walk_records, ChainState, WalkEnd};
use crate::segment::{index_file_name, parse_segment_name, segment_file_name};
use crate::storage::Storage;

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
    /// The first problem found, if any; checking the segment stops there.
    pub error: Option<Corruption>,
    /// Things worth knowing that do not make the segment invalid (a sealed
    /// segment that is writable, a missing derived index).
    pub warnings: Vec<String>,
}

/// The verdict on a whole log directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The log's identity, from the first readable header.
    pub log_id: Option<LogId>,
    /// One verdict per segment file, in seq order.
    pub segments: Vec<SegmentVerdict>,
    /// Problems between segments: missing segments, broken links.
    pub gaps: Vec<Corruption>,
    /// The last valid record of an unbroken chain from seq 0, if any.
    pub head: Option<(u64, Hash)>,
    /// Records checked in all segments.
    pub records_checked: u64,
}

impl Report {
    /// True when every segment is valid and nothing is missing between them.
    pub fn is_valid(&self) -> bool {
        self.gaps.is_empty() && self.segments.iter().all(|s| s.error.is_none())
    }

    /// Every problem, gaps first.
    pub fn problems(&self) -> Vec<&Corruption> {
        self.gaps
            .iter()
            .chain(self.segments.iter().filter_map(|s| s.error.as_ref()))
            .collect()
    }
}

/// What checking one segment established, for linking it to the next.
struct Checked {
    verdict: SegmentVerdict,
    header: Option<SegmentHeader>,
    /// The chain state after the segment's last valid record.
    end: Option<ChainState>,
}

/// Verifies every segment in `dir`. I/O errors (an unreadable directory or
/// file) are returned as errors; damage is reported in the [`Report`].
pub fn verify_dir(storage: &dyn Storage, dir: &Path) -> Result<Report> {
    let names = storage.list(dir).map_err(|e| Error::io("list", dir, e))?;
    let mut seqs: Vec<u64> = names.iter().filter_map(|n| parse_segment_name(n)).collect();
    seqs.sort_unstable();
    let mut report = Report {
        log_id: None,
        segments: Vec::with_capacity(seqs.len()),
        gaps: Vec::new(),
        head: None,
        records_checked: 0,
    };
    let mut prev: Option<ChainState> = None;
    let mut chain_intact = true;
    for (i, &seq) in seqs.iter().enumerate() {
        let path = dir.join(segment_file_name(seq));
        let is_last = i + 1 == seqs.len();
        let c = check_segment(
            storage,
            dir,
            &path,
            seq,
            is_last,
            prev.map_or(0, |p| p.last_created_at),
        )?;
        if let Some(h) = &c.header {
            let id = *report.log_id.get_or_insert(h.log_id);
            // Link to what came before: the genesis hash, or the previous
            // segment's last record as recomputed.
            let expected = match (i, prev) {
                (0, _) if seq == 0 => Some((0, chain::genesis(&id))),
                (_, Some(p)) => Some((p.next_seq, p.prev_hash)),
                _ => None,
            };
            match expected {
                Some((next, _)) if next != seq => {
                    chain_intact = false;
                    report.gaps.push(Corruption::new(
                        &path,
                        0,
                        Some(next),
                        CorruptionKind::MissingSegment {
                            expected_first_seq: next,
                            found: format!("segment {}", segment_file_name(seq)),
                        },
                    ));
                }
                Some((_, hash)) if hash != h.prev_hash => {
                    chain_intact = false;
                    report.gaps.push(Corruption::new(
                        &path,
                        0,
                        Some(seq),
                        CorruptionKind::BrokenLink {
                            expected: hash,
                            found: h.prev_hash,
                        },
                    ));
                }
                None if i == 0 => {
                    chain_intact = false;
                    report.gaps.push(Corruption::new(
                        &path,
                        0,
                        Some(0),
                        CorruptionKind::MissingSegment {
                            expected_first_seq: 0,
                            found: format!("segment {}", segment_file_name(seq)),
                        },
                    ));
                }
                _ => {}
            }
            if h.log_id != id {
                chain_intact = false;
            }
        }
        report.records_checked += c.verdict.records;
        if c.verdict.error.is_some() {
            chain_intact = false;
        }
        if chain_intact {
            if let Some(end) = c.end {
                if end.next_seq > 0 {
                    report.head = Some((end.next_seq - 1, end.prev_hash));
                }
            }
        }
        prev = c.end;
        report.segments.push(c.verdict);
    }
    Ok(report)
}

fn check_segment(
    storage: &dyn Storage,
    dir: &Path,
    path: &Path,
    name_seq: u64,
    is_last: bool,
    prev_created_at: u64,
) -> Result<Checked> {
    let mut verdict = SegmentVerdict {
        path: path.to_path_buf(),
        first_seq: name_seq,
        sealed: false,
        records: 0,
        error: None,
        warnings: Vec::new(),
    };
    let file = storage
        .open_read(path)
        .map_err(|e| Error::io("open", path, e))?;
    let bytes = file.read_all().map_err(|e| Error::io("read", path, e))?;
    let fail = |mut verdict: SegmentVerdict, c: Corruption, header, end| {
        verdict.error = Some(c);
        Ok(Checked {
            verdict,
            header,
            end,
        })
    };
    let header = match SegmentHeader::decode(&bytes[..bytes.len().min(HEADER_LEN)]) {
        Ok(h) => h,
        Err(k) => {
            return fail(
                verdict,
                Corruption::new(path, 0, Some(name_seq), k),
                None,
                None,
            )
        }
    };
    if header.first_seq != name_seq {
        let k = CorruptionKind::Mismatch {
            what: Structure::SegmentHeader,
            field: "first_seq",
            expected: format!("{name_seq} (from the file name)"),
            found: header.first_seq.to_string(),
        };
        return fail(
            verdict,
            Corruption::new(path, 0, Some(name_seq), k),
            Some(header),
            None,
        );
    }
    let footer = if bytes.len() >= HEADER_LEN + FOOTER_LEN {
        Footer::decode(&bytes[bytes.len() - FOOTER_LEN..])
    } else {
        Err(CorruptionKind::Truncated {
            what: Structure::SegmentFooter,
            needed: (HEADER_LEN + FOOTER_LEN) as u64,
            available: bytes.len() as u64,
        })
    };
    let footer = match footer {
        Ok(f) => Some(f),
        Err(k) if !is_last => {
            let at = bytes.len().saturating_sub(FOOTER_LEN) as u64;
            return fail(
                verdict,
                Corruption::new(path, at, Some(name_seq), k),
                Some(header),
                None,
            );
        }
        Err(_) => None,
    };
    verdict.sealed = footer.is_some();
    let end = footer
        .as_ref()
        .map_or(bytes.len(), |f| (f.records_end as usize).min(bytes.len()));

    // Index entries to find during the walk, by position.
    let mut expected_at: BTreeMap<u64, (IndexKind, u64, u64, Option<u64>)> = BTreeMap::new();
    if let Some(f) = &footer {
        for kind in [IndexKind::Offset, IndexKind::Time] {
            let ipath = dir.join(index_file_name(name_seq, kind));
            let ibytes = match storage.open_read(&ipath) {
                Ok(ifile) => ifile.read_all().map_err(|e| Error::io("read", &ipath, e))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    verdict.warnings.push(format!(
                        "{} is missing (derived data: rebuilt when the log is opened)",
                        ipath.display()
                    ));
                    continue;
                }
                Err(e) => return Err(Error::io("open", &ipath, e)),
            };
            let h = match index::decode_file(kind, &ibytes) {
                Ok(h) if h.first_seq == f.first_seq => h,
                Ok(h) => {
                    let k = crate::format::bad_field(
                        kind.structure(),
                        "first_seq",
                        f.first_seq,
                        h.first_seq,
                    );
                    return fail(
                        verdict,
                        Corruption::new(&ipath, 16, Some(name_seq), k),
                        Some(header),
                        None,
                    );
                }
                Err(k) => {
                    return fail(
                        verdict,
                        Corruption::new(&ipath, 0, Some(name_seq), k),
                        Some(header),
                        None,
                    )
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
                // Two kinds may name one position: key by (pos, kind).
                let key = u64::from(pos) * 2 + (kind == IndexKind::Time) as u64;
                expected_at.insert(key, (kind, i as u64, name_seq + u64::from(rel), time));
            }
        }
    }

    let mut state = ChainState {
        next_seq: header.first_seq,
        prev_hash: header.prev_hash,
        last_created_at: prev_created_at,
    };
    let mut index_error: Option<Corruption> = None;
    let walked = walk_records(path, &bytes, end, &mut state, |pos, r| {
        for kind_bit in [0u64, 1] {
            if let Some((kind, entry, seq, time)) = expected_at.remove(&(pos * 2 + kind_bit)) {
                if index_error.is_none()
                    && (seq != r.seq || time.is_some_and(|t| t != r.created_at))
                {
                    index_error = Some(Corruption::new(
                        &path.with_file_name(index_file_name(name_seq, kind)),
                        pos,
                        Some(seq),
                        CorruptionKind::IndexEntry {
                            what: kind.structure(),
                            entry,
                            pos,
                            expected: seq,
                            found: format!("seq {} created_at {}", r.seq, r.created_at),
                        },
                    ));
                }
            }
        }
    });
    verdict.records = state.next_seq - header.first_seq;
    match walked {
        Err(Error::Corruption(c)) => return fail(verdict, *c, Some(header), None),
        Err(e) => return Err(e),
        Ok(WalkEnd::Undecodable { pos, cause }) => {
            let c = Corruption::new(path, pos, Some(state.next_seq), cause);
            return fail(verdict, c, Some(header), None);
        }
        Ok(WalkEnd::Clean) => {}
    }
    if let Some(f) = &footer {
        let checks: [(&'static str, String, String); 5] = [
            (
                "last_seq",
                state.next_seq.wrapping_sub(1).to_string(),
                f.last_seq.to_string(),
            ),
            (
                "record_count",
                verdict.records.to_string(),
                f.record_count.to_string(),
            ),
            (
                "last_hash",
                crate::error::hex(&state.prev_hash),
                crate::error::hex(&f.last_hash),
            ),
            (
                "last_created_at",
                state.last_created_at.to_string(),
                f.last_created_at.to_string(),
            ),
            ("records_end", end.to_string(), f.records_end.to_string()),
        ];
        for (field, expected, found) in checks {
            if expected != found {
                let k = CorruptionKind::Mismatch {
                    what: Structure::SegmentFooter,
                    field,
                    expected,
                    found,
                };
                return fail(
                    verdict,
                    Corruption::new(path, end as u64, Some(f.last_seq), k),
                    Some(header),
                    None,
                );
            }
        }
        if f.first_seq != name_seq || f.records_end as usize + FOOTER_LEN != bytes.len() {
            let k = CorruptionKind::Mismatch {
                what: Structure::SegmentFooter,
                field: "first_seq/records_end",
                expected: format!("{name_seq}/{}", bytes.len() - FOOTER_LEN),
                found: format!("{}/{}", f.first_seq, f.records_end),
            };
            return fail(
                verdict,
                Corruption::new(path, end as u64, Some(f.last_seq), k),
                Some(header),
                None,
            );
        }
        if let Some(c) = index_error {
            return fail(verdict, c, Some(header), None);
        }
        if let Some((_, (kind, entry, seq, _))) = expected_at.into_iter().next() {
            let c = Corruption::new(
                &path.with_file_name(index_file_name(name_seq, kind)),
                0,
                Some(seq),
                CorruptionKind::IndexEntry {
                    what: kind.structure(),
                    entry,
                    pos: 0,
                    expected: seq,
                    found: "no record starts at the position it names".into(),
                },
            );
            return fail(verdict, c, Some(header), None);
        }
        if !storage
            .is_read_only(path)
            .map_err(|e| Error::io("stat", path, e))?
        {
            verdict
                .warnings
                .push(format!("sealed segment {} is writable", path.display()));
        }
    }
    Ok(Checked {
        verdict,
        header: Some(header),
        end: Some(state),
    })
}
