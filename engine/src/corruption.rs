//! Corruption: the bytes on disk are not what the engine wrote. What was
//! damaged ([`Structure`]), how ([`CorruptionKind`], each kind with what was
//! expected and what was found) and where ([`Corruption`]: file, offset,
//! seq).
//!
//! One module, below both [`format`](crate::format) (whose decoders report
//! kinds) and [`error`](crate::error) (whose [`Error`](crate::Error) carries a
//! [`Corruption`]), so that neither imports the other. It depends only on the
//! chain's [`Hash`](type@crate::chain::Hash) and the Merkle tree's
//! [`VerifyError`] (which depend on nothing of the engine's).

use std::fmt;
use std::path::{Path, PathBuf};

use crate::chain::Hash;
use crate::merkle::VerifyError;

/// The on-disk structures, named in errors. Non-exhaustive: a later format
/// may add structures (files of derived data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Structure {
    /// The fixed header at the start of a segment file.
    SegmentHeader,
    /// A record inside a segment.
    Record,
    /// The seal footer at the end of a sealed segment.
    SegmentFooter,
    /// The sparse offset index file (`.idx`).
    OffsetIndex,
    /// The time index file (`.tix`).
    TimeIndex,
    /// The Merkle tree file (`.tree`): the tree's frontier at a sealed
    /// segment's end.
    TreeFile,
    /// The Merkle level file (`.lvl`): the tree's upper nodes that a sealed
    /// segment's records complete.
    LevelFile,
}

impl fmt::Display for Structure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Structure::SegmentHeader => "segment header",
            Structure::Record => "record",
            Structure::SegmentFooter => "segment footer",
            Structure::OffsetIndex => "offset index",
            Structure::TimeIndex => "time index",
            Structure::TreeFile => "tree file",
            Structure::LevelFile => "level file",
        })
    }
}

/// Where and what: the context every corruption report carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corruption {
    /// The file in which the damage was found.
    pub file: PathBuf,
    /// The byte offset in that file of the damaged structure.
    pub offset: u64,
    /// The sequence number expected or found there, when one applies.
    pub seq: Option<u64>,
    /// What was wrong.
    pub kind: CorruptionKind,
}

impl Corruption {
    pub(crate) fn new(file: &Path, offset: u64, seq: Option<u64>, kind: CorruptionKind) -> Self {
        Corruption {
            file: file.to_path_buf(),
            offset,
            seq,
            kind,
        }
    }
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "corruption in {} at offset {}",
            self.file.display(),
            self.offset
        )?;
        if let Some(seq) = self.seq {
            write!(f, " (seq {seq})")?;
        }
        write!(f, ": {}", self.kind)
    }
}

impl std::error::Error for Corruption {}

/// The kinds of damage the engine recognises, each with what was expected
/// and what was found. Non-exhaustive: a later version may recognise more,
/// so a match needs a fallback arm ([`CorruptionKind::name`] names any).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CorruptionKind {
    /// A structure does not start with its magic bytes.
    #[error("{what}: bad magic {found:02x?}")]
    BadMagic {
        /// Which structure.
        what: Structure,
        /// The bytes found.
        found: [u8; 8],
    },
    /// A structure has a format version this build does not read.
    #[error("{what}: unsupported format version {found} (this build reads {supported})")]
    UnsupportedVersion {
        /// Which structure.
        what: Structure,
        /// The version found.
        found: u16,
        /// The version this build reads.
        supported: u16,
    },
    /// A structure's own checksum does not match its bytes.
    #[error("{what}: checksum mismatch: stored {expected:#010x}, computed {found:#010x}")]
    ChecksumMismatch {
        /// Which structure.
        what: Structure,
        /// The checksum stored in the structure.
        expected: u32,
        /// The checksum computed from its bytes.
        found: u32,
    },
    /// A field holds a value the format does not allow.
    #[error("{what}: field {field} holds {found}, expected {expected}")]
    BadField {
        /// Which structure.
        what: Structure,
        /// The field's name as in docs/format.md.
        field: &'static str,
        /// What the format requires.
        expected: String,
        /// The value found.
        found: String,
    },
    /// A structure ends before its declared length.
    #[error("{what}: truncated: needs {needed} bytes, {available} available")]
    Truncated {
        /// Which structure.
        what: Structure,
        /// Bytes the structure needs.
        needed: u64,
        /// Bytes available.
        available: u64,
    },
    /// A record's hash is not SHA-256 of its predecessor's hash and its
    /// contents: the record or one before it was altered.
    #[error(
        "chain break: stored hash {}, recomputed {}",
        hex(found),
        hex(expected)
    )]
    ChainBreak {
        /// The hash recomputed from the bytes.
        expected: Hash,
        /// The hash stored in the record.
        found: Hash,
    },
    /// A record's sequence number does not follow its predecessor's.
    #[error("seq gap: expected seq {expected}, found {found}")]
    SeqGap {
        /// The next sequence number.
        expected: u64,
        /// The one found.
        found: u64,
    },
    /// A record's `created_at` is earlier than its predecessor's.
    #[error("time regression: created_at {found} is before the previous record's {previous}")]
    TimeRegression {
        /// The previous record's `created_at`.
        previous: u64,
        /// This record's.
        found: u64,
    },
    /// A segment header does not link to the previous segment's last hash.
    #[error(
        "segment header does not link: prev_hash {}, previous segment ends with {}",
        hex(found),
        hex(expected)
    )]
    BrokenLink {
        /// The previous segment's last hash (or the genesis hash).
        expected: Hash,
        /// The header's `prev_hash`.
        found: Hash,
    },
    /// A segment is missing: the sequence jumps between segment files.
    #[error(
        "missing segment: expected a segment starting at seq {expected_first_seq}, found {found}"
    )]
    MissingSegment {
        /// The first seq the next segment should have.
        expected_first_seq: u64,
        /// What was found instead.
        found: String,
    },
    /// A segment that is not the last one has no valid seal footer.
    #[error("segment is not sealed but is followed by segment {next_first_seq}: {cause}")]
    UnsealedSegment {
        /// The first seq of the segment that follows.
        next_first_seq: u64,
        /// Why the footer was rejected.
        cause: Box<CorruptionKind>,
    },
    /// A segment's contents disagree with its name, its header or its footer.
    #[error("{what}: {field} is {found}, expected {expected}")]
    Mismatch {
        /// Which structure holds the wrong value.
        what: Structure,
        /// The field.
        field: &'static str,
        /// The value implied by the rest of the log.
        expected: String,
        /// The value stored.
        found: String,
    },
    /// A damaged record in the last segment is followed by records that
    /// were durable before the damage could have been written: this is not
    /// a torn tail, and the log will not cut acknowledged data.
    #[error("damaged record followed by durable records (valid record at offset {valid_record_at} declares the segment durable through {durable_through}): {cause}")]
    NotATornTail {
        /// What was wrong with the damaged record.
        cause: Box<CorruptionKind>,
        /// Offset of a valid record after the damage.
        valid_record_at: u64,
        /// The durable watermark that valid record carries.
        durable_through: u64,
    },
    /// A signed checkpoint commits to more records than the log holds: its
    /// newest records were removed.
    #[error("the checkpoint is for {size} records but the log holds {records} (newest records removed?)")]
    CheckpointBeyondLog {
        /// The checkpoint's tree size.
        size: u64,
        /// Records in the verified log (an unbroken chain from seq 0).
        records: u64,
    },
    /// The Merkle root recomputed from the log's first `size` records is
    /// not the signed checkpoint's: the log was rewritten.
    #[error(
        "the tree of the first {size} records has root {}, but the checkpoint's root is {} (log rewritten?)",
        hex(computed),
        hex(signed)
    )]
    CheckpointRootMismatch {
        /// The checkpoint's tree size.
        size: u64,
        /// The root the checkpoint signs.
        signed: Hash,
        /// The root recomputed from the records.
        computed: Hash,
    },
    /// The log does not reach the head committed to outside it: its newest
    /// records were removed.
    #[error("the log ends at {last} but the expected head is seq {expected_seq} (newest records removed?)")]
    HeadMissing {
        /// The committed head's seq.
        expected_seq: u64,
        /// Where the verified log ends ("seq N", or "no records").
        last: String,
    },
    /// The record at the committed head's seq has another hash: the log was
    /// rewritten.
    #[error(
        "record {seq} has hash {}, but the expected head hash is {} (log rewritten?)",
        hex(found),
        hex(expected)
    )]
    HeadHashMismatch {
        /// The committed head's seq.
        seq: u64,
        /// The committed hash.
        expected: Hash,
        /// The hash in the log.
        found: Hash,
    },
    /// A Merkle proof (or a past root) made from the stored tree (level
    /// files, tree files, the records' chain hashes) does not verify
    /// against the root the log holds for that size, even after the level
    /// files it read were rebuilt from the records: a record or a tree file
    /// is not what was written. The proof is not returned. Reported against
    /// the log's directory: which of those is wrong is not known.
    #[error("a Merkle proof for the tree of {size} records, made from the stored tree, does not verify: {cause}")]
    TreeProofRejected {
        /// The tree size the proof was for (the larger one of a
        /// consistency proof).
        size: u64,
        /// How verification failed.
        cause: VerifyError,
    },
    /// An index entry does not point at the record it names.
    #[error("{what}: entry {entry} names seq {expected} but offset {pos} holds {found}")]
    IndexEntry {
        /// Which index.
        what: Structure,
        /// The entry's position in the index.
        entry: u64,
        /// The byte position it names.
        pos: u64,
        /// The seq it names.
        expected: u64,
        /// What is at that position.
        found: String,
    },
}

impl CorruptionKind {
    /// The variant's name, stable for machine-readable output.
    pub fn name(&self) -> &'static str {
        match self {
            CorruptionKind::BadMagic { .. } => "BadMagic",
            CorruptionKind::UnsupportedVersion { .. } => "UnsupportedVersion",
            CorruptionKind::ChecksumMismatch { .. } => "ChecksumMismatch",
            CorruptionKind::BadField { .. } => "BadField",
            CorruptionKind::Truncated { .. } => "Truncated",
            CorruptionKind::ChainBreak { .. } => "ChainBreak",
            CorruptionKind::SeqGap { .. } => "SeqGap",
            CorruptionKind::TimeRegression { .. } => "TimeRegression",
            CorruptionKind::BrokenLink { .. } => "BrokenLink",
            CorruptionKind::MissingSegment { .. } => "MissingSegment",
            CorruptionKind::UnsealedSegment { .. } => "UnsealedSegment",
            CorruptionKind::Mismatch { .. } => "Mismatch",
            CorruptionKind::NotATornTail { .. } => "NotATornTail",
            CorruptionKind::HeadMissing { .. } => "HeadMissing",
            CorruptionKind::CheckpointBeyondLog { .. } => "CheckpointBeyondLog",
            CorruptionKind::CheckpointRootMismatch { .. } => "CheckpointRootMismatch",
            CorruptionKind::HeadHashMismatch { .. } => "HeadHashMismatch",
            CorruptionKind::IndexEntry { .. } => "IndexEntry",
            CorruptionKind::TreeProofRejected { .. } => "TreeProofRejected",
        }
    }
}

/// Lower-case hex of a hash, for messages.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}
