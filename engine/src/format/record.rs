//! Records: the unit of the log.
//!
//! ```text
//! offset   len field
//!      0     4 payload_len      n, at most the format maximum (64 MiB)
//!      4     4 crc              CRC-32 of bytes 0..4 and 8..64+n
//!      8     8 seq
//!     16     8 created_at       nanoseconds since the Unix epoch, assigned by the writer
//!     24     1 kind             1 = data; 0 is never valid
//!     25     3 reserved         zero
//!     28     4 durable_through  segment offset through which the segment was
//!                               durable when this record was written
//!     32     n payload
//!   32+n    32 hash             SHA-256(prev_hash || seq || created_at || kind || payload)
//! ```
//!
//! The CRC catches torn writes and bit rot; the hash chain catches tampering.
//! `durable_through` lets recovery tell a torn tail (damage after the last
//! sync, which may be cut) from damage to data that had been durable (which
//! must refuse to open); see docs/durability.md.

use super::{bad_field, get_array, get_u32, get_u64, put_u32, put_u64, Hash, Structure};
use crate::corruption::CorruptionKind;

/// Bytes before the payload.
pub const RECORD_HEADER_LEN: usize = 32;
/// Bytes of a record besides its payload: header plus hash.
pub const RECORD_OVERHEAD: usize = RECORD_HEADER_LEN + super::HASH_LEN;
/// The largest payload the format allows; configurations may lower it.
pub const MAX_PAYLOAD_LEN: usize = 64 << 20;

const CRC_AT: usize = 4;
const SEQ_AT: usize = 8;
const CREATED_AT_AT: usize = 16;
const KIND_AT: usize = 24;
const RESERVED_AT: usize = 25;
const DURABLE_AT: usize = 28;

const _: () = assert!(DURABLE_AT + 4 == RECORD_HEADER_LEN);
const _: () = assert!(RECORD_OVERHEAD == 64);

/// The record kind of ordinary data appended by users.
pub const KIND_DATA: u8 = 1;

/// A record borrowed from a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// The sequence number.
    pub seq: u64,
    /// Nanoseconds since the Unix epoch, assigned by the writer.
    pub created_at: u64,
    /// The record kind (never 0).
    pub kind: u8,
    /// The durable watermark recorded when this record was written.
    pub durable_through: u32,
    /// The payload.
    pub payload: &'a [u8],
    /// The stored chain hash.
    pub hash: Hash,
}

impl RecordRef<'_> {
    /// Length of the encoded record.
    pub fn encoded_len(&self) -> usize {
        RECORD_OVERHEAD + self.payload.len()
    }

    /// An owned copy.
    pub fn to_owned(&self) -> Record {
        Record {
            seq: self.seq,
            created_at: self.created_at,
            kind: self.kind,
            payload: self.payload.to_vec(),
            hash: self.hash,
        }
    }
}

/// A record read from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The sequence number.
    pub seq: u64,
    /// Nanoseconds since the Unix epoch, assigned by the writer.
    pub created_at: u64,
    /// The record kind.
    pub kind: u8,
    /// The payload.
    pub payload: Vec<u8>,
    /// The chain hash.
    pub hash: Hash,
}

/// The outcome of decoding at a position.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A whole record whose CRC and fields check out.
    Record(RecordRef<'a>),
    /// The buffer ends before the record does; `needed` bytes would hold it.
    Incomplete {
        /// Bytes needed from the record's start.
        needed: usize,
    },
}

/// Encodes one record onto the end of `out`.
pub fn encode(
    out: &mut Vec<u8>,
    seq: u64,
    created_at: u64,
    kind: u8,
    durable_through: u32,
    payload: &[u8],
    hash: &Hash,
) {
    assert!(
        payload.len() <= MAX_PAYLOAD_LEN,
        "payload exceeds the format maximum"
    );
    assert!(kind != 0, "record kind 0 is never valid");
    let start = out.len();
    let mut h = [0u8; RECORD_HEADER_LEN];
    put_u32(&mut h, 0, payload.len() as u32);
    put_u64(&mut h, SEQ_AT, seq);
    put_u64(&mut h, CREATED_AT_AT, created_at);
    h[KIND_AT] = kind;
    put_u32(&mut h, DURABLE_AT, durable_through);
    out.extend_from_slice(&h);
    out.extend_from_slice(payload);
    out.extend_from_slice(hash);
    let crc = record_crc(&out[start..]);
    put_u32(&mut out[start..], CRC_AT, crc);
}

/// CRC of an encoded record: every byte except the CRC field itself.
fn record_crc(rec: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&rec[..CRC_AT]);
    h.update(&rec[SEQ_AT..]);
    h.finalize()
}

/// Reads the seq field of a record header without validating anything; used
/// to find candidate records when deciding whether damage is a torn tail.
pub fn peek_seq(b: &[u8]) -> Option<u64> {
    (b.len() >= RECORD_HEADER_LEN).then(|| get_u64(b, SEQ_AT))
}

/// Decodes the record at the start of `b`, checking its length bound, CRC,
/// kind and reserved bytes. Chain, seq and time order are the caller's to
/// check, since they depend on the record before.
pub fn decode(b: &[u8], max_payload: usize) -> Result<Decoded<'_>, CorruptionKind> {
    let what = Structure::Record;
    if b.len() < RECORD_HEADER_LEN {
        return Ok(Decoded::Incomplete {
            needed: RECORD_HEADER_LEN,
        });
    }
    let len = get_u32(b, 0) as usize;
    if len > max_payload.min(MAX_PAYLOAD_LEN) {
        return Err(bad_field(
            what,
            "payload_len",
            format_args!("at most {}", max_payload.min(MAX_PAYLOAD_LEN)),
            len,
        ));
    }
    let total = RECORD_OVERHEAD + len;
    if b.len() < total {
        return Ok(Decoded::Incomplete { needed: total });
    }
    let rec = &b[..total];
    let stored = get_u32(rec, CRC_AT);
    let computed = record_crc(rec);
    if stored != computed {
        return Err(CorruptionKind::ChecksumMismatch {
            what,
            expected: stored,
            found: computed,
        });
    }
    let kind = rec[KIND_AT];
    if kind == 0 {
        return Err(bad_field(what, "kind", "non-zero", 0));
    }
    super::check_reserved(what, "reserved", &rec[RESERVED_AT..DURABLE_AT])?;
    Ok(Decoded::Record(RecordRef {
        seq: get_u64(rec, SEQ_AT),
        created_at: get_u64(rec, CREATED_AT_AT),
        kind,
        durable_through: get_u32(rec, DURABLE_AT),
        payload: &rec[RECORD_HEADER_LEN..RECORD_HEADER_LEN + len],
        hash: get_array(rec, RECORD_HEADER_LEN + len),
    }))
}
