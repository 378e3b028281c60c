//! What a valid segment is, decided once. Recovery, verification and
//! `segment-dump` all read a segment through this walk; each decides only
//! what to do with what it found (cut a torn tail, report, print).
//!
//! The rules (docs/durability.md gives the crash argument for each):
//! - The header decodes, and names the seq of the file's name.
//! - A segment is sealed when its last [`FOOTER_LEN`] bytes are a footer
//!   that decodes, sits right after the records it names (`records_end`),
//!   and names the segment's first seq. Only the last segment of a log may
//!   be unsealed, and only while it is writable: a seal makes the file
//!   read-only after its footer is durable.
//! - Records follow the header back to back, each one's CRC valid and each
//!   continuing the chain (seq, `created_at` order, `durable_through`,
//!   hash).
//! - In a sealed segment, the records fill the space up to the footer
//!   exactly, and the footer's fields are those of the records.
//! - In an unsealed segment, the records may end early: at zeros to the end
//!   of the file (the unused space of a pre-written segment), or at bytes
//!   that never were durable (a torn tail: no valid record after them
//!   carries a durable watermark beyond them). Anything else is damage.

use std::path::Path;

use crate::chain::{self, ChainState};
use crate::error::{Corruption, CorruptionKind};
use crate::format::footer::{Footer, FOOTER_LEN};
use crate::format::header::{SegmentHeader, HEADER_LEN};
use crate::format::record::{self, Decoded, RecordRef, MAX_PAYLOAD_LEN, RECORD_OVERHEAD};
use crate::format::{bad_field, Structure};

/// The largest segment: `durable_through` and index positions are 32-bit.
pub const MAX_SEGMENT_LEN: u64 = u32::MAX as u64;

/// What the walk is told about a segment's place in its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    /// The first seq its file name gives; `None` for a file whose name is
    /// not a segment name (the header's seq is then taken as given).
    pub name_seq: Option<u64>,
    /// The segment may be unsealed: it is the last of its log and it is
    /// writable.
    pub may_be_open: bool,
    /// The first record's `created_at` may not be earlier (the previous
    /// segment's last `created_at`, or 0 when that is checked elsewhere).
    pub prev_created_at: u64,
}

/// How a segment's valid records end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// A seal that matches the records follows them.
    Sealed(Footer),
    /// Unsealed, and every byte after the header is a whole record.
    Open,
    /// Unsealed, with zeros from the end of the records to the end of the
    /// file: the unused space of a pre-written segment.
    Zeros,
    /// Unsealed, and the bytes after the records are not a record and were
    /// never durable: a torn tail, or appends in flight in a live log.
    /// Recovery cuts them; nothing acknowledged is there.
    Torn(CorruptionKind),
}

/// What is wrong with a segment, by the rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Damage {
    /// The header does not decode, names another seq, or the file is too
    /// long to be a segment.
    Header(Box<Corruption>),
    /// The segment must be sealed (it is not the last, or it is read-only)
    /// and its footer is not a valid seal; the corruption is the reason, at
    /// the footer's place.
    NoSeal(Box<Corruption>),
    /// A record does not decode where bytes that were durable follow, or it
    /// does not continue the chain.
    Record(Box<Corruption>),
    /// The footer's fields are not those of the records.
    Footer(Box<Corruption>),
}

impl Damage {
    /// The corruption, whatever the rule.
    pub fn corruption(&self) -> &Corruption {
        match self {
            Damage::Header(c) | Damage::NoSeal(c) | Damage::Record(c) | Damage::Footer(c) => c,
        }
    }

    /// The corruption, owned.
    pub fn into_corruption(self) -> Box<Corruption> {
        match self {
            Damage::Header(c) | Damage::NoSeal(c) | Damage::Record(c) | Damage::Footer(c) => c,
        }
    }
}

/// What the walk found in one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Walked {
    /// The header, when it is valid.
    pub header: Option<SegmentHeader>,
    /// Valid records found, in order from the header.
    pub records: u64,
    /// The offset after the last valid record: where the valid records end
    /// (the header's end when there are none; 0 when the header is bad).
    pub valid_end: u64,
    /// The chain after the last valid record (`None` when the header is
    /// bad).
    pub chain: Option<ChainState>,
    /// The first valid record's `created_at`.
    pub first_created_at: Option<u64>,
    /// How the records end, or what is wrong.
    pub end: std::result::Result<End, Damage>,
}

/// How a run of records ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordsEnd {
    /// Every byte up to the end belonged to a valid record.
    Clean,
    /// The bytes at `pos` do not decode as a record (torn, or damaged).
    Undecodable {
        /// Where the bytes start.
        pos: u64,
        /// Why they are not a record.
        cause: CorruptionKind,
    },
}

/// Decodes a segment's header from its first bytes (fewer than
/// [`HEADER_LEN`] when the file is shorter) and checks it names `name_seq`.
pub fn header(
    path: &Path,
    bytes: &[u8],
    name_seq: Option<u64>,
) -> std::result::Result<SegmentHeader, Box<Corruption>> {
    let at_name = |k| Box::new(Corruption::new(path, 0, name_seq, k));
    let header = SegmentHeader::decode(&bytes[..bytes.len().min(HEADER_LEN)]).map_err(at_name)?;
    match name_seq {
        Some(seq) if seq != header.first_seq => Err(at_name(CorruptionKind::Mismatch {
            what: Structure::SegmentHeader,
            field: "first_seq",
            expected: format!("{seq} (from the file name)"),
            found: header.first_seq.to_string(),
        })),
        _ => Ok(header),
    }
}

/// Whether the last bytes of a segment of `len` bytes are its seal: a footer
/// that decodes (with its fields consistent with each other), right after
/// the records it names, for `first_seq`. `tail` is the file's last
/// [`FOOTER_LEN`] bytes (or fewer, for a short file).
pub fn seal(len: u64, tail: &[u8], first_seq: u64) -> std::result::Result<Footer, CorruptionKind> {
    let footer = seal_place(len, tail, first_seq)?;
    footer.check_consistent()?;
    Ok(footer)
}

/// [`seal`] without the footer's internal consistency, which a full walk
/// checks against the records instead (naming the field that differs).
fn seal_place(
    len: u64,
    tail: &[u8],
    first_seq: u64,
) -> std::result::Result<Footer, CorruptionKind> {
    if len < (HEADER_LEN + FOOTER_LEN) as u64 || tail.len() < FOOTER_LEN {
        return Err(CorruptionKind::Truncated {
            what: Structure::SegmentFooter,
            needed: (HEADER_LEN + FOOTER_LEN) as u64,
            available: len,
        });
    }
    let footer = Footer::parse(&tail[tail.len() - FOOTER_LEN..])?;
    let at = len - FOOTER_LEN as u64;
    for (field, expected, found) in [
        ("records_end", at, footer.records_end),
        ("first_seq", first_seq, footer.first_seq),
    ] {
        if expected != found {
            return Err(CorruptionKind::Mismatch {
                what: Structure::SegmentFooter,
                field,
                expected: expected.to_string(),
                found: found.to_string(),
            });
        }
    }
    Ok(footer)
}

/// Walks a whole segment's `bytes` by the rules above, calling `f` with the
/// offset of each valid record. Never fails: what is wrong is in
/// [`Walked::end`].
pub fn segment(
    path: &Path,
    bytes: &[u8],
    place: Place,
    mut f: impl FnMut(u64, &RecordRef<'_>),
) -> Walked {
    let len = bytes.len() as u64;
    let mut walked = Walked {
        header: None,
        records: 0,
        valid_end: 0,
        chain: None,
        first_created_at: None,
        end: Ok(End::Open),
    };
    let header = match header(path, bytes, place.name_seq) {
        Ok(h) => h,
        Err(c) => {
            walked.end = Err(Damage::Header(c));
            return walked;
        }
    };
    let first = header.first_seq;
    if len > MAX_SEGMENT_LEN {
        let k = bad_field(
            Structure::SegmentHeader,
            "segment length",
            "at most 4 GiB",
            len,
        );
        walked.end = Err(Damage::Header(Box::new(Corruption::new(
            path,
            0,
            Some(first),
            k,
        ))));
        return walked;
    }
    let mut state = ChainState {
        next_seq: first,
        prev_hash: header.prev_hash,
        last_created_at: place.prev_created_at,
    };
    walked.header = Some(header);
    walked.valid_end = HEADER_LEN as u64;
    walked.chain = Some(state);
    let footer_at = len.saturating_sub(FOOTER_LEN as u64);
    let tail = &bytes[footer_at as usize..];
    // A segment that must be sealed and is not is still walked, so that
    // a reader learns which of its records are valid.
    let (footer, no_seal) = match seal_place(len, tail, first) {
        Ok(f) => (Some(f), None),
        Err(_) if place.may_be_open => (None, None),
        Err(cause) => (
            None,
            Some(Box::new(Corruption::new(
                path,
                footer_at,
                Some(first),
                cause,
            ))),
        ),
    };
    let end = footer.as_ref().map_or(len, |f| f.records_end) as usize;
    let ran = records(path, bytes, end, &mut state, |pos, r| {
        walked.first_created_at.get_or_insert(r.created_at);
        walked.valid_end = pos + r.encoded_len() as u64;
        f(pos, r)
    });
    walked.records = state.next_seq - first;
    walked.chain = Some(state);
    if let Some(n) = no_seal {
        // The first problem in the file: a record before the footer's
        // place, or the missing seal.
        walked.end = Err(match ran {
            Err(c) if c.offset < n.offset => Damage::Record(c),
            _ => Damage::NoSeal(n),
        });
        return walked;
    }
    walked.end = match (ran, footer) {
        (Err(c), _) => Err(Damage::Record(c)),
        (Ok(RecordsEnd::Undecodable { pos, cause }), Some(_)) => Err(Damage::Record(Box::new(
            Corruption::new(path, pos, Some(state.next_seq), cause),
        ))),
        (Ok(RecordsEnd::Undecodable { pos, .. }), None) if zero_from(bytes, pos) => Ok(End::Zeros),
        (Ok(RecordsEnd::Undecodable { pos, cause }), None) => {
            match check_torn_tail(path, bytes, pos, &cause, state.next_seq) {
                Ok(()) => Ok(End::Torn(cause)),
                Err(c) => Err(Damage::Record(c)),
            }
        }
        (Ok(RecordsEnd::Clean), None) => Ok(End::Open),
        (Ok(RecordsEnd::Clean), Some(footer)) => {
            match footer_matches(&footer, &state, walked.records, walked.first_created_at) {
                Ok(()) => Ok(End::Sealed(footer)),
                Err(k) => {
                    let last = state.next_seq.checked_sub(1);
                    let c = Corruption::new(path, footer.records_end, last, k);
                    Err(Damage::Footer(Box::new(c)))
                }
            }
        }
    };
    walked
}

/// Checks a footer's fields against the records before it, in the order
/// an auditor reads them. When they all match, the footer is consistent
/// with itself too (its count follows from its seqs, its times are in
/// order), since the records are.
fn footer_matches(
    footer: &Footer,
    state: &ChainState,
    records: u64,
    first_created_at: Option<u64>,
) -> std::result::Result<(), CorruptionKind> {
    let checks: [(&'static str, String, String); 5] = [
        (
            "last_seq",
            state.next_seq.wrapping_sub(1).to_string(),
            footer.last_seq.to_string(),
        ),
        (
            "record_count",
            records.to_string(),
            footer.record_count.to_string(),
        ),
        (
            "last_hash",
            crate::error::hex(&state.prev_hash),
            crate::error::hex(&footer.last_hash),
        ),
        (
            "last_created_at",
            state.last_created_at.to_string(),
            footer.last_created_at.to_string(),
        ),
        (
            "first_created_at",
            first_created_at.map_or_else(|| "no records".to_owned(), |t| t.to_string()),
            footer.first_created_at.to_string(),
        ),
    ];
    for (field, expected, found) in checks {
        if expected != found {
            return Err(CorruptionKind::Mismatch {
                what: Structure::SegmentFooter,
                field,
                expected,
                found,
            });
        }
    }
    Ok(())
}

/// Whether every byte from `pos` on is zero: the unused space of a
/// pre-written segment (see [`Config::prewrite_segments`]), where the log
/// simply ends. A torn write leaves some of its bytes there, and a record
/// never encodes as zeros (its kind is never 0), so zeros to the end of
/// the file are never part of a record.
///
/// [`Config::prewrite_segments`]: crate::Config::prewrite_segments
pub fn zero_from(bytes: &[u8], pos: u64) -> bool {
    bytes
        .get(pos as usize..)
        .is_some_and(|rest| rest.iter().all(|&b| b == 0))
}

/// Walks the records in `bytes[HEADER_LEN..end]`, checking each one's CRC
/// and that it continues `state` (which it advances), and calling `f` for
/// each. Stops at the first bytes that do not decode as a record. A record
/// that decodes but does not follow its predecessor is an error: no crash
/// produces it.
pub fn records(
    path: &Path,
    bytes: &[u8],
    end: usize,
    state: &mut ChainState,
    mut f: impl FnMut(u64, &RecordRef<'_>),
) -> std::result::Result<RecordsEnd, Box<Corruption>> {
    let end = end.min(bytes.len());
    let mut pos = HEADER_LEN;
    while pos < end {
        let r = match record::decode(&bytes[pos..end], MAX_PAYLOAD_LEN) {
            Ok(Decoded::Record(r)) => r,
            Ok(Decoded::Incomplete { needed }) => {
                return Ok(RecordsEnd::Undecodable {
                    pos: pos as u64,
                    cause: CorruptionKind::Truncated {
                        what: Structure::Record,
                        needed: needed as u64,
                        available: (end - pos) as u64,
                    },
                })
            }
            Err(cause) => {
                return Ok(RecordsEnd::Undecodable {
                    pos: pos as u64,
                    cause,
                })
            }
        };
        follows(path, pos as u64, state, &r)?;
        f(pos as u64, &r);
        pos += r.encoded_len();
    }
    Ok(RecordsEnd::Clean)
}

/// Checks that a CRC-valid record at `pos` continues the chain, and
/// advances it.
pub fn follows(
    path: &Path,
    pos: u64,
    state: &mut ChainState,
    r: &RecordRef<'_>,
) -> std::result::Result<(), Box<Corruption>> {
    // The first bad seq is the one expected here (for a gap, the found
    // one is in the kind).
    let corrupt = |kind| {
        Err(Box::new(Corruption::new(
            path,
            pos,
            Some(state.next_seq),
            kind,
        )))
    };
    if r.seq != state.next_seq {
        return corrupt(CorruptionKind::SeqGap {
            expected: state.next_seq,
            found: r.seq,
        });
    }
    if r.created_at < state.last_created_at {
        return corrupt(CorruptionKind::TimeRegression {
            previous: state.last_created_at,
            found: r.created_at,
        });
    }
    if u64::from(r.durable_through) > pos || (r.durable_through as usize) < HEADER_LEN {
        return corrupt(bad_field(
            Structure::Record,
            "durable_through",
            format_args!("between {HEADER_LEN} and the record's offset {pos}"),
            r.durable_through,
        ));
    }
    let expected = chain::step(&state.prev_hash, r.seq, r.created_at, r.kind, r.payload);
    if expected != r.hash {
        return corrupt(CorruptionKind::ChainBreak {
            expected,
            found: r.hash,
        });
    }
    state.next_seq = match r.seq.checked_add(1) {
        Some(n) => n,
        None => return corrupt(bad_field(Structure::Record, "seq", "below 2^64 - 1", r.seq)),
    };
    state.prev_hash = r.hash;
    state.last_created_at = r.created_at;
    Ok(())
}

/// Decides whether undecodable bytes at `pos` in an unsealed segment are a
/// torn tail. They are not when a valid record after them carries a durable
/// watermark beyond `pos`: the damaged bytes had been synced before that
/// record was written, so they were acknowledged, and cutting them would
/// lose acknowledged data. Returns the refusal in that case.
pub fn check_torn_tail(
    path: &Path,
    bytes: &[u8],
    pos: u64,
    cause: &CorruptionKind,
    next_seq: u64,
) -> std::result::Result<(), Box<Corruption>> {
    let start = pos as usize;
    let len = bytes.len();
    // A record of the log after the damage has a seq of at least next_seq,
    // and each record takes at least RECORD_OVERHEAD bytes.
    let max_seq = next_seq.saturating_add(((len - start) / RECORD_OVERHEAD) as u64 + 1);
    for p in start + 1..len.saturating_sub(RECORD_OVERHEAD - 1) {
        let Some(seq) = record::peek_seq(&bytes[p..]) else {
            break;
        };
        if seq < next_seq || seq > max_seq {
            continue;
        }
        if let Ok(Decoded::Record(r)) = record::decode(&bytes[p..], MAX_PAYLOAD_LEN) {
            if u64::from(r.durable_through) > pos {
                return Err(Box::new(Corruption::new(
                    path,
                    pos,
                    Some(next_seq),
                    CorruptionKind::NotATornTail {
                        cause: Box::new(cause.clone()),
                        valid_record_at: p as u64,
                        durable_through: u64::from(r.durable_through),
                    },
                )));
            }
        }
    }
    Ok(())
}

/// A walk's damage as the engine's error.
pub(crate) fn damage_error(d: Damage) -> crate::Error {
    crate::Error::Corruption(d.into_corruption())
}
