//! The sparse indexes of one segment, in memory (active segment) or mapped
//! from their files (sealed segments).

use std::path::Path;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::error::{CorruptionKind, Error, Result};
use crate::format::header::HEADER_LEN;
use crate::format::index::{
    self, IndexKind, OffsetEntry, TimeEntry, INDEX_HEADER_LEN, OFFSET_ENTRY_LEN, TIME_ENTRY_LEN,
};
use crate::format::Footer;
use crate::storage::{FileBytes, Storage};

/// Index entries being gathered for the active segment. One sample point
/// feeds both indexes: the segment's first record, then the first record at
/// least `interval` bytes after the previous sample.
#[derive(Debug, Default, Clone)]
pub(crate) struct LiveIndex {
    pub offsets: Vec<OffsetEntry>,
    pub times: Vec<TimeEntry>,
    next_sample_at: u64,
    started: bool,
}

impl LiveIndex {
    /// Notes a record; samples it if it is due.
    pub fn observe(&mut self, rel_seq: u32, pos: u64, created_at: u64, interval: u32) {
        if !self.started || pos >= self.next_sample_at {
            self.started = true;
            let pos32 = u32::try_from(pos).expect("segment offsets fit in 32 bits");
            self.offsets.push(OffsetEntry {
                rel_seq,
                pos: pos32,
            });
            self.times.push(TimeEntry {
                created_at,
                rel_seq,
                pos: pos32,
            });
            self.next_sample_at = pos + u64::from(interval);
        }
    }

    /// An empty index that samples as this one would next: the writer
    /// fills it without holding the lock, then appends it.
    pub fn clone_tail(&self) -> LiveIndex {
        LiveIndex {
            offsets: Vec::new(),
            times: Vec::new(),
            next_sample_at: self.next_sample_at,
            started: self.started,
        }
    }

    /// Appends the entries gathered in a tail made by [`Self::clone_tail`].
    pub fn append_tail(&mut self, mut tail: LiveIndex) {
        self.offsets.append(&mut tail.offsets);
        self.times.append(&mut tail.times);
        self.next_sample_at = tail.next_sample_at;
        self.started = tail.started;
    }

    /// The whole index file of the given kind.
    pub fn encode_file(&self, kind: IndexKind, first_seq: u64) -> Vec<u8> {
        let mut body = Vec::with_capacity(self.offsets.len() * kind.entry_len());
        match kind {
            IndexKind::Offset => self
                .offsets
                .iter()
                .for_each(|e| body.extend_from_slice(&e.encode())),
            IndexKind::Time => self
                .times
                .iter()
                .for_each(|e| body.extend_from_slice(&e.encode())),
        }
        index::encode_file(kind, first_seq, &body)
    }
}

/// The index of one segment.
#[derive(Debug)]
pub(crate) enum SegmentIndex {
    /// The active segment's entries, appended to by the writer (which
    /// holds the same index); or a sealed segment's, kept in memory when
    /// its index files could not be loaded after sealing.
    Live(Arc<RwLock<LiveIndex>>),
    /// A sealed segment's index files, validated when loaded.
    Sealed {
        offsets: FileBytes,
        times: FileBytes,
    },
}

impl SegmentIndex {
    /// The last offset entry at or before `rel_seq`.
    pub fn offset_for(&self, rel_seq: u32) -> Option<OffsetEntry> {
        match self {
            SegmentIndex::Live(l) => {
                let l = l.read();
                let i = l.offsets.partition_point(|e| e.rel_seq <= rel_seq);
                i.checked_sub(1).map(|i| l.offsets[i])
            }
            SegmentIndex::Sealed { offsets, .. } => {
                let n = (offsets.len() - INDEX_HEADER_LEN) / OFFSET_ENTRY_LEN;
                let at = |i: usize| {
                    let s = INDEX_HEADER_LEN + i * OFFSET_ENTRY_LEN;
                    OffsetEntry::decode(&offsets[s..s + OFFSET_ENTRY_LEN])
                };
                let i = partition_point(n, |i| at(i).rel_seq <= rel_seq);
                i.checked_sub(1).map(at)
            }
        }
    }

    /// The last time entry strictly before `t`: scanning from it finds the
    /// first record at or after `t`.
    pub fn time_before(&self, t: u64) -> Option<TimeEntry> {
        match self {
            SegmentIndex::Live(l) => {
                let l = l.read();
                let i = l.times.partition_point(|e| e.created_at < t);
                i.checked_sub(1).map(|i| l.times[i])
            }
            SegmentIndex::Sealed { times, .. } => {
                let n = (times.len() - INDEX_HEADER_LEN) / TIME_ENTRY_LEN;
                let at = |i: usize| {
                    let s = INDEX_HEADER_LEN + i * TIME_ENTRY_LEN;
                    TimeEntry::decode(&times[s..s + TIME_ENTRY_LEN])
                };
                let i = partition_point(n, |i| at(i).created_at < t);
                i.checked_sub(1).map(at)
            }
        }
    }
}

/// `slice::partition_point` over indices `0..n`.
fn partition_point(n: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Validates a sealed segment's index files against its footer: framing,
/// checksums, and that the entries are in order and inside the segment.
/// (That each entry names the record at its position is checked on every
/// lookup, and in full by verification.)
pub(crate) fn validate_sealed(
    offsets: &[u8],
    times: &[u8],
    footer: &Footer,
) -> Result<(), CorruptionKind> {
    for (kind, bytes) in [(IndexKind::Offset, offsets), (IndexKind::Time, times)] {
        let h = index::decode_file(kind, bytes)?;
        if h.first_seq != footer.first_seq {
            return Err(crate::format::bad_field(
                kind.structure(),
                "first_seq",
                footer.first_seq,
                h.first_seq,
            ));
        }
        if h.entry_count == 0 {
            return Err(crate::format::bad_field(
                kind.structure(),
                "entry_count",
                "at least 1",
                0,
            ));
        }
    }
    let n_off = (offsets.len() - INDEX_HEADER_LEN) / OFFSET_ENTRY_LEN;
    let n_time = (times.len() - INDEX_HEADER_LEN) / TIME_ENTRY_LEN;
    if n_off != n_time {
        return Err(crate::format::bad_field(
            IndexKind::Time.structure(),
            "entry_count",
            n_off,
            n_time,
        ));
    }
    let max_rel = footer.last_seq - footer.first_seq;
    let mut prev: Option<TimeEntry> = None;
    for i in 0..n_off {
        let o = OffsetEntry::decode(
            &offsets[INDEX_HEADER_LEN + i * OFFSET_ENTRY_LEN..][..OFFSET_ENTRY_LEN],
        );
        let t =
            TimeEntry::decode(&times[INDEX_HEADER_LEN + i * TIME_ENTRY_LEN..][..TIME_ENTRY_LEN]);
        let bad = |field: &'static str, expected: String, found: String| {
            Err(CorruptionKind::BadField {
                what: IndexKind::Offset.structure(),
                field,
                expected,
                found: format!("{found} in entry {i}"),
            })
        };
        if o.rel_seq != t.rel_seq || o.pos != t.pos {
            return bad(
                "entry",
                format!("time entry ({}, {})", t.rel_seq, t.pos),
                format!("({}, {})", o.rel_seq, o.pos),
            );
        }
        if i == 0 && (o.rel_seq != 0 || o.pos as usize != HEADER_LEN) {
            return bad(
                "first entry",
                format!("(0, {HEADER_LEN})"),
                format!("({}, {})", o.rel_seq, o.pos),
            );
        }
        if u64::from(o.rel_seq) > max_rel || u64::from(o.pos) >= footer.records_end {
            return bad(
                "entry",
                format!("rel_seq <= {max_rel} and pos < {}", footer.records_end),
                format!("({}, {})", o.rel_seq, o.pos),
            );
        }
        if t.created_at < footer.first_created_at || t.created_at > footer.last_created_at {
            return bad(
                "created_at",
                format!("{}..={}", footer.first_created_at, footer.last_created_at),
                t.created_at.to_string(),
            );
        }
        if let Some(p) = prev {
            if t.rel_seq <= p.rel_seq || t.pos <= p.pos || t.created_at < p.created_at {
                return bad(
                    "order",
                    "increasing rel_seq and pos, non-decreasing created_at".into(),
                    format!("({}, {}, {})", t.rel_seq, t.pos, t.created_at),
                );
            }
        }
        prev = Some(t);
    }
    Ok(())
}

/// Loads and validates a sealed segment's index files; `None` when either is
/// missing or inconsistent (derived data: the caller rebuilds them).
pub(crate) fn load_sealed_index(
    storage: &dyn Storage,
    dir: &Path,
    footer: &Footer,
) -> Result<Option<SegmentIndex>> {
    let mut maps = Vec::with_capacity(2);
    for kind in [IndexKind::Offset, IndexKind::Time] {
        let path = dir.join(super::index_file_name(footer.first_seq, kind));
        let file = match storage.open_read(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("open", &path, e)),
        };
        maps.push(file.read_all().map_err(|e| Error::io("map", &path, e))?);
    }
    let (Some(times), Some(offsets)) = (maps.pop(), maps.pop()) else {
        return Ok(None);
    };
    if validate_sealed(&offsets, &times, footer).is_err() {
        return Ok(None);
    }
    Ok(Some(SegmentIndex::Sealed { offsets, times }))
}
