//! The segment header: the first [`HEADER_LEN`] bytes of every segment file.
//!
//! ```text
//! offset len field
//!      0   8 magic        "CLOGSEG\0"
//!      8   2 version      1
//!     10   2 header_len   128
//!     12   4 flags        0 (reserved)
//!     16  16 log_id       random identity of the log
//!     32   8 first_seq    seq of the segment's first record
//!     40   8 created_at   wall-clock nanoseconds when the segment was created
//!     48  32 prev_hash    hash of the record before first_seq (or the genesis hash)
//!     80  44 reserved     zero
//!    124   4 crc          CRC-32 of bytes 0..124
//! ```

use super::{
    bad_field, check_fixed, check_reserved, get_array, get_u16, get_u32, get_u64, put_u16, put_u32,
    put_u64, Hash, LogId, Structure, FORMAT_VERSION,
};
use crate::corruption::CorruptionKind;

/// Magic bytes at the start of a segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"CLOGSEG\0";
/// Length of the segment header; the first record starts here.
pub const HEADER_LEN: usize = 128;

const FLAGS_AT: usize = 12;
const LOG_ID_AT: usize = 16;
const FIRST_SEQ_AT: usize = LOG_ID_AT + 16;
const CREATED_AT_AT: usize = FIRST_SEQ_AT + 8;
const PREV_HASH_AT: usize = CREATED_AT_AT + 8;
const RESERVED_AT: usize = PREV_HASH_AT + 32;
const CRC_AT: usize = HEADER_LEN - 4;

const _: () = assert!(RESERVED_AT == 80);
const _: () = assert!(RESERVED_AT <= CRC_AT);
const _: () = assert!(HEADER_LEN.is_multiple_of(8));

/// The decoded segment header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentHeader {
    /// The identity of the log this segment belongs to.
    pub log_id: LogId,
    /// The seq of the segment's first record.
    pub first_seq: u64,
    /// Wall-clock nanoseconds at creation (informational).
    pub created_at: u64,
    /// The hash of the record before `first_seq`, or the genesis hash.
    pub prev_hash: Hash,
}

impl SegmentHeader {
    /// Encodes the header.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[..8].copy_from_slice(&SEGMENT_MAGIC);
        put_u16(&mut b, 8, FORMAT_VERSION);
        put_u16(&mut b, 10, HEADER_LEN as u16);
        put_u32(&mut b, FLAGS_AT, 0);
        b[LOG_ID_AT..LOG_ID_AT + 16].copy_from_slice(&self.log_id);
        put_u64(&mut b, FIRST_SEQ_AT, self.first_seq);
        put_u64(&mut b, CREATED_AT_AT, self.created_at);
        b[PREV_HASH_AT..PREV_HASH_AT + 32].copy_from_slice(&self.prev_hash);
        let crc = super::crc32(&b[..CRC_AT]);
        put_u32(&mut b, CRC_AT, crc);
        b
    }

    /// Decodes and validates a header from the first bytes of a segment.
    pub fn decode(b: &[u8]) -> Result<SegmentHeader, CorruptionKind> {
        let what = Structure::SegmentHeader;
        check_fixed(what, b, &SEGMENT_MAGIC, CRC_AT)?;
        let len = get_u16(b, 10);
        if len as usize != HEADER_LEN {
            return Err(bad_field(what, "header_len", HEADER_LEN, len));
        }
        let flags = get_u32(b, FLAGS_AT);
        if flags != 0 {
            return Err(bad_field(what, "flags", 0, flags));
        }
        check_reserved(what, "reserved", &b[RESERVED_AT..CRC_AT])?;
        Ok(SegmentHeader {
            log_id: get_array(b, LOG_ID_AT),
            first_seq: get_u64(b, FIRST_SEQ_AT),
            created_at: get_u64(b, CREATED_AT_AT),
            prev_hash: get_array(b, PREV_HASH_AT),
        })
    }
}
