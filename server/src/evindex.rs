//! Event indexes: for each segment, the seqs of its events by tenant, by
//! (tenant, actor), (tenant, action), (tenant, resource), (tenant,
//! resource, resource_id), and by each exact key (`idempotency_key`,
//! `source_event_id`, `correlation_id`, all within a tenant); every event's
//! `occurred_at`; and how many events carry each action. A query takes
//! the postings of its most selective terms and intersects them instead
//! of decoding every event; a count is answered from the postings alone.
//!
//! The active segment's index is kept in memory ([`Builder`]), fed by the
//! indexer as the log grows. When a segment is sealed, its index is
//! written beside it as `<segment>.evx` ([`encode`]) and from then on read
//! through a memory map ([`SealedIndex`]). A file is derived data: bound to
//! its segment by first seq, record count and last hash, checked whole by
//! a CRC when opened, and rebuilt from the records when it is missing or
//! does not check. Pages of events are always read from the records and
//! matched against the whole filter; only counts trust the postings.
//! The layout is in `docs/format.md`.
//!
//! Terms are 16-byte digests (the first half of a SHA-256 over the kind
//! and the length-prefixed fields), so that no one can make two tenants'
//! terms collide and borrow another tenant's counts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use proto::event::EventRef;
use sha2::{Digest, Sha256};

use crate::schema::{Seen, Tally};

/// A term's digest.
pub type Term = [u8; 16];

/// What a term names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// A tenant.
    Tenant = 1,
    /// A tenant's actor.
    Actor = 2,
    /// A tenant's action.
    Action = 3,
    /// A tenant's resource type.
    Resource = 4,
    /// A tenant's resource (type and id).
    ResourceId = 5,
    /// A tenant's `idempotency_key`.
    Idempotency = 6,
    /// A tenant's `source_event_id`.
    SourceEvent = 7,
    /// A tenant's `correlation_id`.
    Correlation = 8,
}

/// The term of `kind` over `fields` (the tenant first).
pub fn term(kind: Kind, fields: &[&str]) -> Term {
    let mut h = Sha256::new();
    h.update([kind as u8]);
    for f in fields {
        h.update((f.len() as u64).to_le_bytes());
        h.update(f.as_bytes());
    }
    let d = h.finalize();
    let mut t = [0u8; 16];
    t.copy_from_slice(&d[..16]);
    t
}

/// The terms an event is indexed under (empty fields name nothing).
pub fn event_terms(e: &EventRef<'_>) -> Vec<Term> {
    let t = e.tenant_id;
    let mut out = vec![term(Kind::Tenant, &[t])];
    let mut add = |kind, v: &str, fields: &[&str]| {
        if !v.is_empty() {
            out.push(term(kind, fields));
        }
    };
    add(Kind::Actor, e.actor_id, &[t, e.actor_id]);
    add(Kind::Action, e.action, &[t, e.action]);
    add(Kind::Resource, e.resource, &[t, e.resource]);
    if !e.resource.is_empty() {
        add(
            Kind::ResourceId,
            e.resource_id,
            &[t, e.resource, e.resource_id],
        );
    }
    add(
        Kind::Idempotency,
        e.idempotency_key,
        &[t, e.idempotency_key],
    );
    add(
        Kind::SourceEvent,
        e.source_event_id,
        &[t, e.source_event_id],
    );
    add(Kind::Correlation, e.correlation_id, &[t, e.correlation_id]);
    out.sort_unstable();
    out.dedup();
    out
}

/// One term's seqs in a segment, as offsets from its first seq.
#[derive(Debug, Clone)]
enum Postings {
    One(u32),
    Many(Vec<u32>),
}

/// The index of the active segment, in memory: for events
/// `first_seq..next_seq()`. Its size is bounded by the segment's: about
/// 8 bytes per event for `occurred_at`, 4 per event and term, and 40 per
/// distinct term.
#[derive(Debug, Clone)]
pub struct Builder {
    first_seq: u64,
    occurred: Vec<u64>,
    postings: HashMap<Term, Postings>,
    actions: Tally,
}

impl Builder {
    /// An empty index of a segment that begins at `first_seq`.
    pub fn new(first_seq: u64) -> Builder {
        Builder {
            first_seq,
            occurred: Vec::new(),
            postings: HashMap::new(),
            actions: Tally::default(),
        }
    }

    /// The seq of its first event.
    pub fn first_seq(&self) -> u64 {
        self.first_seq
    }

    /// The seq after the last event indexed.
    pub fn next_seq(&self) -> u64 {
        self.first_seq + self.occurred.len() as u64
    }

    /// Indexes the next record: `seq` must be [`next_seq`](Self::next_seq).
    /// A record that is not an event is indexed under no term, with its
    /// `created_at` as its time.
    pub fn add(&mut self, seq: u64, created_at: u64, event: Option<&EventRef<'_>>) {
        assert_eq!(seq, self.next_seq(), "event index fed out of order");
        let off = (seq - self.first_seq) as u32;
        let Some(e) = event else {
            self.occurred.push(created_at);
            return;
        };
        self.occurred.push(e.occurred_at);
        self.actions.add(e.action, created_at);
        for t in event_terms(e) {
            match self.postings.get_mut(&t) {
                None => {
                    self.postings.insert(t, Postings::One(off));
                }
                Some(p) => match p {
                    Postings::One(first) => *p = Postings::Many(vec![*first, off]),
                    Postings::Many(v) => v.push(off),
                },
            }
        }
    }
}

/// A segment's index: the active one's in memory, or a sealed one's file.
pub trait SegmentIndex {
    /// The seq of its first event.
    fn first_seq(&self) -> u64;
    /// The seq after its last.
    fn end_seq(&self) -> u64;
    /// The offsets (from the first seq) of the events under `t`, ascending.
    fn postings(&self, t: &Term) -> Vec<u32>;
    /// How many events are under `t`.
    fn count(&self, t: &Term) -> usize;
    /// The `occurred_at` of the event at offset `off`.
    fn occurred(&self, off: u32) -> u64;
    /// How many events carry each action, with when they were stored.
    fn actions(&self) -> Tally;
}

impl SegmentIndex for Builder {
    fn first_seq(&self) -> u64 {
        self.first_seq
    }
    fn end_seq(&self) -> u64 {
        self.next_seq()
    }
    fn postings(&self, t: &Term) -> Vec<u32> {
        match self.postings.get(t) {
            None => Vec::new(),
            Some(Postings::One(o)) => vec![*o],
            Some(Postings::Many(v)) => v.clone(),
        }
    }
    fn count(&self, t: &Term) -> usize {
        match self.postings.get(t) {
            None => 0,
            Some(Postings::One(_)) => 1,
            Some(Postings::Many(v)) => v.len(),
        }
    }
    fn occurred(&self, off: u32) -> u64 {
        self.occurred[off as usize]
    }
    fn actions(&self) -> Tally {
        self.actions.clone()
    }
}

/// The file's magic.
pub const MAGIC: [u8; 8] = *b"CLOGEVX\0";
/// The file's format version.
pub const VERSION: u16 = 1;
/// Bytes of the header.
pub const HEADER_LEN: usize = 64;
/// Bytes of a term entry.
pub const ENTRY_LEN: usize = 24;

/// The index file of the segment at `segment`: its name with `.evx` added.
pub fn file_path(segment: &Path) -> PathBuf {
    let mut p = segment.as_os_str().to_owned();
    p.push(".evx");
    PathBuf::from(p)
}

/// The bytes of `b`'s index file, for the segment whose last record has
/// `last_hash`.
pub fn encode(b: &Builder, last_hash: &[u8; 32]) -> Vec<u8> {
    let count = b.occurred.len();
    let mut terms: Vec<(&Term, &Postings)> = b.postings.iter().collect();
    terms.sort_unstable_by_key(|(t, _)| **t);
    let many: usize = terms
        .iter()
        .map(|(_, p)| match p {
            Postings::One(_) => 0,
            Postings::Many(v) => v.len(),
        })
        .sum();
    let mut out = Vec::with_capacity(HEADER_LEN + 8 * count + 24 * terms.len() + 4 * many + 64);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&[0; 6]);
    out.extend_from_slice(&b.first_seq.to_le_bytes());
    out.extend_from_slice(&(count as u64).to_le_bytes());
    out.extend_from_slice(last_hash);
    debug_assert_eq!(out.len(), HEADER_LEN);
    for o in &b.occurred {
        out.extend_from_slice(&o.to_le_bytes());
    }
    out.extend_from_slice(&(terms.len() as u64).to_le_bytes());
    out.extend_from_slice(&(many as u64).to_le_bytes());
    let mut at = 0u32;
    for (t, p) in &terms {
        out.extend_from_slice(&t[..]);
        match p {
            Postings::One(o) => {
                out.extend_from_slice(&o.to_le_bytes());
                out.extend_from_slice(&1u32.to_le_bytes());
            }
            Postings::Many(v) => {
                out.extend_from_slice(&at.to_le_bytes());
                out.extend_from_slice(&(v.len() as u32).to_le_bytes());
                at += v.len() as u32;
            }
        }
    }
    for (_, p) in &terms {
        if let Postings::Many(v) = p {
            for o in v {
                out.extend_from_slice(&o.to_le_bytes());
            }
        }
    }
    let actions = b.actions.sorted_seen();
    out.extend_from_slice(&(actions.len() as u32).to_le_bytes());
    for (a, s) in &actions {
        out.extend_from_slice(&(a.len() as u16).to_le_bytes());
        out.extend_from_slice(a.as_bytes());
        for v in [s.count, s.first, s.last] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Where the sections of a checked file are.
#[derive(Debug)]
struct Layout {
    count: usize,
    entries_at: usize,
    terms: usize,
    postings_at: usize,
    postings: usize,
}

/// A sealed segment's index file, memory-mapped and checked.
#[derive(Debug)]
pub struct SealedIndex {
    first_seq: u64,
    bytes: Bytes,
    layout: Layout,
    actions: Tally,
}

/// The file's bytes: mapped (by the engine's storage, which maps only
/// files written once and replaced by rename), or owned.
type Bytes = engine::storage::FileBytes;

/// Why an index file was not used (and is rebuilt).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    /// There is none.
    #[error("missing")]
    Missing,
    /// It could not be read.
    #[error("cannot read it: {0}")]
    Io(String),
    /// It does not check: what is wrong.
    #[error("{0}")]
    Invalid(String),
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

impl SealedIndex {
    /// Opens and checks the index file of the segment `first_seq..end_seq`
    /// whose last record has `last_hash`.
    pub fn open(
        path: &Path,
        first_seq: u64,
        end_seq: u64,
        last_hash: &[u8; 32],
    ) -> Result<SealedIndex, FileError> {
        use engine::storage::Storage;
        let io = |e: std::io::Error| match e.kind() {
            std::io::ErrorKind::NotFound => FileError::Missing,
            _ => FileError::Io(e.to_string()),
        };
        let bytes = engine::storage::FsStorage
            .open_read(path)
            .and_then(|f| f.read_all())
            .map_err(io)?;
        Self::check(bytes, first_seq, end_seq, last_hash)
    }

    /// Checks bytes held in memory (as [`open`](Self::open) checks a file).
    pub fn from_bytes(
        bytes: Vec<u8>,
        first_seq: u64,
        end_seq: u64,
        last_hash: &[u8; 32],
    ) -> Result<SealedIndex, FileError> {
        Self::check(Bytes::Owned(bytes), first_seq, end_seq, last_hash)
    }

    fn check(
        bytes: Bytes,
        first_seq: u64,
        end_seq: u64,
        last_hash: &[u8; 32],
    ) -> Result<SealedIndex, FileError> {
        let bad = |why: String| Err(FileError::Invalid(why));
        let b: &[u8] = &bytes;
        if b.len() < HEADER_LEN + 4 + 16 {
            return bad(format!("{} bytes: too short", b.len()));
        }
        let body = b.len() - 4;
        if crc32fast::hash(&b[..body]) != le_u32(b, body) {
            return bad("checksum mismatch".into());
        }
        if b[..8] != MAGIC {
            return bad("bad magic".into());
        }
        let version = u16::from_le_bytes([b[8], b[9]]);
        if version != VERSION {
            return bad(format!("format version {version}, expected {VERSION}"));
        }
        let (first, count) = (le_u64(b, 16), le_u64(b, 24));
        if first != first_seq || first.checked_add(count) != Some(end_seq) {
            return bad(format!(
                "covers seqs {first}..{}, the segment {first_seq}..{end_seq}",
                first.saturating_add(count)
            ));
        }
        if &b[32..64] != last_hash {
            return bad("made for another segment (last hash differs)".into());
        }
        let count = count as usize;
        let mut at = HEADER_LEN;
        let need = |at: usize, n: u128| -> Result<usize, FileError> {
            let end = at as u128 + n;
            if end > body as u128 {
                return Err(FileError::Invalid("a section runs past the end".into()));
            }
            Ok(end as usize)
        };
        at = need(at, 8 * count as u128)?;
        let counts_at = at;
        at = need(at, 16)?;
        let (terms, postings) = (
            le_u64(b, counts_at) as u128,
            le_u64(b, counts_at + 8) as u128,
        );
        let entries_at = at;
        at = need(at, terms * ENTRY_LEN as u128)?;
        let postings_at = at;
        at = need(at, postings * 4)?;
        let (terms, postings) = (terms as usize, postings as usize);
        // Every entry in order, within the postings, and every offset
        // within the segment.
        let mut prev: Option<&[u8]> = None;
        for i in 0..terms {
            let e = entries_at + i * ENTRY_LEN;
            let key = &b[e..e + 16];
            if prev.is_some_and(|p| p >= key) {
                return bad("terms out of order".into());
            }
            prev = Some(key);
            let (a, n) = (le_u32(b, e + 16) as usize, le_u32(b, e + 20) as usize);
            match n {
                0 => return bad("a term with no events".into()),
                1 if a >= count => return bad("an offset past the segment".into()),
                1 => {}
                _ if a.checked_add(n).is_none_or(|end| end > postings) => {
                    return bad("a term's postings run past the section".into())
                }
                _ => {}
            }
        }
        for i in 0..postings {
            if le_u32(b, postings_at + 4 * i) as usize >= count {
                return bad("an offset past the segment".into());
            }
        }
        at = need(at, 4)?;
        let n_actions = le_u32(b, at - 4);
        let mut actions = Tally::default();
        for _ in 0..n_actions {
            at = need(at, 2)?;
            let len = u16::from_le_bytes([b[at - 2], b[at - 1]]) as usize;
            let name_at = at;
            at = need(at, len as u128 + 24)?;
            let Ok(name) = std::str::from_utf8(&b[name_at..name_at + len]) else {
                return bad("an action name is not UTF-8".into());
            };
            let s = name_at + len;
            actions.add_seen(
                name,
                Seen {
                    count: le_u64(b, s),
                    first: le_u64(b, s + 8),
                    last: le_u64(b, s + 16),
                },
            );
        }
        if at != body {
            return bad(format!("{} bytes after the last section", body - at));
        }
        Ok(SealedIndex {
            first_seq,
            layout: Layout {
                count,
                entries_at,
                terms,
                postings_at,
                postings,
            },
            bytes,
            actions,
        })
    }

    /// The entry of `t`: (first, n).
    fn entry(&self, t: &Term) -> Option<(usize, usize)> {
        let b: &[u8] = &self.bytes;
        let l = &self.layout;
        let (mut lo, mut hi) = (0usize, l.terms);
        while lo < hi {
            let mid = (lo + hi) / 2;
            let e = l.entries_at + mid * ENTRY_LEN;
            match b[e..e + 16].cmp(&t[..]) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => {
                    return Some((le_u32(b, e + 16) as usize, le_u32(b, e + 20) as usize))
                }
            }
        }
        None
    }
}

impl SegmentIndex for SealedIndex {
    fn first_seq(&self) -> u64 {
        self.first_seq
    }
    fn end_seq(&self) -> u64 {
        self.first_seq + self.layout.count as u64
    }
    fn postings(&self, t: &Term) -> Vec<u32> {
        match self.entry(t) {
            None => Vec::new(),
            Some((o, 1)) => vec![o as u32],
            Some((a, n)) => {
                let at = self.layout.postings_at + 4 * a;
                debug_assert!(a + n <= self.layout.postings);
                self.bytes[at..at + 4 * n]
                    .chunks_exact(4)
                    .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
                    .collect()
            }
        }
    }
    fn count(&self, t: &Term) -> usize {
        self.entry(t).map_or(0, |(_, n)| n)
    }
    fn occurred(&self, off: u32) -> u64 {
        le_u64(&self.bytes, HEADER_LEN + 8 * off as usize)
    }
    fn actions(&self) -> Tally {
        self.actions.clone()
    }
}

/// The ascending offsets in every one of `lists` (each ascending).
pub fn intersect(mut lists: Vec<Vec<u32>>) -> Vec<u32> {
    lists.sort_by_key(Vec::len);
    let mut it = lists.into_iter();
    let Some(mut acc) = it.next() else {
        return Vec::new();
    };
    for l in it {
        if acc.is_empty() {
            break;
        }
        acc.retain(|o| l.binary_search(o).is_ok());
    }
    acc
}

/// The ascending offsets in any of `lists` (each ascending), once each.
pub fn union(lists: Vec<Vec<u32>>) -> Vec<u32> {
    let mut lists = lists.into_iter().filter(|l| !l.is_empty());
    let Some(first) = lists.next() else {
        return Vec::new();
    };
    let mut acc = first;
    for l in lists {
        acc.extend(l);
        acc.sort_unstable();
        acc.dedup();
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::event::Event;

    fn event(tenant: &str, actor: &str, action: &str, occurred: u64) -> Vec<u8> {
        Event {
            tenant_id: tenant.into(),
            actor_id: actor.into(),
            action: action.into(),
            resource: "doc".into(),
            resource_id: format!("d-{occurred}"),
            occurred_at: occurred,
            idempotency_key: format!("k-{occurred}"),
            ..Event::default()
        }
        .encode()
    }

    fn built() -> Builder {
        let mut b = Builder::new(100);
        for i in 0..50u64 {
            let p = event(
                ["a", "b"][(i % 2) as usize],
                &format!("u{}", i % 5),
                ["x.y", "x.z"][(i % 3 == 0) as usize],
                1_000 + i,
            );
            b.add(
                100 + i,
                5_000 + i,
                Some(&EventRef::decode(&p).expect("decode")),
            );
        }
        b.add(150, 9_999, None);
        b
    }

    #[test]
    fn a_file_answers_as_the_builder_it_was_made_from() {
        let b = built();
        let bytes = encode(&b, &[7; 32]);
        let f = SealedIndex::from_bytes(bytes, 100, 151, &[7; 32]).expect("checks");
        assert_eq!((f.first_seq(), f.end_seq()), (100, 151));
        let terms = [
            term(Kind::Tenant, &["a"]),
            term(Kind::Tenant, &["b"]),
            term(Kind::Actor, &["a", "u2"]),
            term(Kind::Action, &["b", "x.y"]),
            term(Kind::ResourceId, &["a", "doc", "d-1010"]),
            term(Kind::Idempotency, &["b", "k-1011"]),
            term(Kind::Tenant, &["c"]),
        ];
        for t in &terms {
            assert_eq!(f.postings(t), b.postings(t));
            assert_eq!(f.count(t), b.count(t));
        }
        assert_eq!(
            b.postings(&term(Kind::Tenant, &["a"])),
            (0..50).step_by(2).collect::<Vec<u32>>()
        );
        assert_eq!(
            b.postings(&term(Kind::Idempotency, &["b", "k-1011"])),
            vec![11]
        );
        assert_eq!(f.count(&term(Kind::Idempotency, &["a", "k-1011"])), 0);
        assert_eq!((f.occurred(3), f.occurred(50)), (1_003, 9_999));
        assert_eq!(f.actions(), b.actions());
        assert_eq!(f.actions().total(), 50);
    }

    #[test]
    fn a_file_that_does_not_check_is_refused_with_the_reason() {
        let b = built();
        let good = encode(&b, &[7; 32]);
        let open = |bytes: Vec<u8>, first, end, hash: [u8; 32]| {
            SealedIndex::from_bytes(bytes, first, end, &hash)
                .map(|_| ())
                .expect_err("refused")
                .to_string()
        };
        assert_eq!(
            open(good.clone(), 100, 152, [7; 32]),
            "covers seqs 100..151, the segment 100..152"
        );
        assert_eq!(
            open(good.clone(), 100, 151, [8; 32]),
            "made for another segment (last hash differs)"
        );
        let mut flipped = good.clone();
        flipped[HEADER_LEN + 3] ^= 1;
        assert_eq!(open(flipped, 100, 151, [7; 32]), "checksum mismatch");
        assert_eq!(
            open(good[..good.len() - 9].to_vec(), 100, 151, [7; 32]),
            "checksum mismatch"
        );
        assert_eq!(open(vec![0; 10], 100, 151, [7; 32]), "10 bytes: too short");
        // A file whose checksum was recomputed over bad content is still
        // refused for what is wrong with it.
        let mut forged = good[..good.len() - 4].to_vec();
        forged[8] = 9;
        let crc = crc32fast::hash(&forged);
        forged.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(
            open(forged, 100, 151, [7; 32]),
            "format version 9, expected 1"
        );
    }

    /// The example in docs/format.md ("Event index files").
    #[test]
    fn the_file_is_the_bytes_docs_format_md_shows() {
        let mut b = Builder::new(42);
        for (i, (actor, occurred)) in [("a", 1_000u64), ("b", 2_000)].into_iter().enumerate() {
            let p = Event {
                tenant_id: "t".into(),
                actor_id: actor.into(),
                action: "x.y".into(),
                occurred_at: occurred,
                ..Event::default()
            }
            .encode();
            b.add(
                42 + i as u64,
                5 + i as u64,
                Some(&EventRef::decode(&p).expect("decode")),
            );
        }
        let bytes = encode(&b, &[0xab; 32]);
        let hex: Vec<String> = bytes
            .chunks(16)
            .map(|c| {
                c.iter()
                    .map(|x| format!("{x:02x}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        let hex = hex.join("\n");
        let doc =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/format.md"))
                .expect("docs/format.md");
        let marker = "<!-- golden:event-index -->\n```hex\n";
        let at = doc.find(marker).expect("the example block") + marker.len();
        let end = doc[at..].find("```").expect("its end") + at;
        assert_eq!(
            doc[at..end].trim_end(),
            hex,
            "docs/format.md's event index example differs from the code:\n{hex}"
        );
        let f = SealedIndex::from_bytes(bytes, 42, 44, &[0xab; 32]).expect("checks");
        assert_eq!(f.postings(&term(Kind::Tenant, &["t"])), vec![0, 1]);
        assert_eq!(f.postings(&term(Kind::Actor, &["t", "b"])), vec![1]);
    }

    #[test]
    fn postings_intersect_and_unite_in_order() {
        assert_eq!(
            intersect(vec![vec![1, 3, 5, 7], vec![3, 4, 7], vec![0, 3, 7, 9]]),
            vec![3, 7]
        );
        assert_eq!(intersect(vec![vec![1], vec![]]), Vec::<u32>::new());
        assert_eq!(
            union(vec![vec![1, 5], vec![], vec![2, 5, 9]]),
            vec![1, 2, 5, 9]
        );
    }
}
