//! The seal footer: the last [`FOOTER_LEN`] bytes of a sealed segment.
//!
//! ```text
//! offset len field
//!      0   8 magic            "CLOGEND\0"
//!      8   2 version          1
//!     10   2 footer_len       256
//!     12   4 flags            0 (reserved)
//!     16   8 first_seq
//!     24   8 last_seq
//!     32   8 record_count     last_seq - first_seq + 1
//!     40   8 records_end      offset of this footer (= end of the last record)
//!     48   8 first_created_at
//!     56   8 last_created_at
//!     64   8 sealed_at        wall-clock nanoseconds when sealed
//!     72  32 last_hash        hash of the record last_seq
//!    104  32 merkle_root      zero until Merkle proofs are built
//!    136  64 signature        zero until signed checkpoints are built
//!    200  52 reserved         zero
//!    252   4 crc              CRC-32 of bytes 0..252
//! ```

use super::{
    bad_field, check_fixed, check_reserved, get_array, get_u16, get_u32, get_u64, put_u16, put_u32,
    put_u64, Hash, Structure, FORMAT_VERSION,
};
use crate::corruption::CorruptionKind;

/// Magic bytes at the start of the seal footer.
pub const FOOTER_MAGIC: [u8; 8] = *b"CLOGEND\0";
/// Length of the seal footer.
pub const FOOTER_LEN: usize = 256;

const FLAGS_AT: usize = 12;
const FIRST_SEQ_AT: usize = 16;
const LAST_SEQ_AT: usize = FIRST_SEQ_AT + 8;
const COUNT_AT: usize = LAST_SEQ_AT + 8;
const RECORDS_END_AT: usize = COUNT_AT + 8;
const FIRST_TIME_AT: usize = RECORDS_END_AT + 8;
const LAST_TIME_AT: usize = FIRST_TIME_AT + 8;
const SEALED_AT_AT: usize = LAST_TIME_AT + 8;
const LAST_HASH_AT: usize = SEALED_AT_AT + 8;
const MERKLE_AT: usize = LAST_HASH_AT + 32;
const SIGNATURE_AT: usize = MERKLE_AT + 32;
const RESERVED_AT: usize = SIGNATURE_AT + 64;
const CRC_AT: usize = FOOTER_LEN - 4;

const _: () = assert!(MERKLE_AT == 104 && SIGNATURE_AT == 136 && RESERVED_AT == 200);
const _: () = assert!(RESERVED_AT <= CRC_AT);

/// The decoded seal footer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Footer {
    /// The seq of the segment's first record.
    pub first_seq: u64,
    /// The seq of its last record.
    pub last_seq: u64,
    /// The number of records (`last_seq - first_seq + 1`).
    pub record_count: u64,
    /// Byte offset of the footer, which is the end of the last record.
    pub records_end: u64,
    /// `created_at` of the first record.
    pub first_created_at: u64,
    /// `created_at` of the last record.
    pub last_created_at: u64,
    /// Wall-clock nanoseconds when the segment was sealed.
    pub sealed_at: u64,
    /// The hash of the last record.
    pub last_hash: Hash,
    /// Reserved for a Merkle root over the segment's records (zero for now).
    pub merkle_root: Hash,
    /// Reserved for a signature over the footer (zero for now).
    pub signature: [u8; 64],
}

impl Footer {
    /// Encodes the footer.
    pub fn encode(&self) -> [u8; FOOTER_LEN] {
        let mut b = [0u8; FOOTER_LEN];
        b[..8].copy_from_slice(&FOOTER_MAGIC);
        put_u16(&mut b, 8, FORMAT_VERSION);
        put_u16(&mut b, 10, FOOTER_LEN as u16);
        put_u64(&mut b, FIRST_SEQ_AT, self.first_seq);
        put_u64(&mut b, LAST_SEQ_AT, self.last_seq);
        put_u64(&mut b, COUNT_AT, self.record_count);
        put_u64(&mut b, RECORDS_END_AT, self.records_end);
        put_u64(&mut b, FIRST_TIME_AT, self.first_created_at);
        put_u64(&mut b, LAST_TIME_AT, self.last_created_at);
        put_u64(&mut b, SEALED_AT_AT, self.sealed_at);
        b[LAST_HASH_AT..LAST_HASH_AT + 32].copy_from_slice(&self.last_hash);
        b[MERKLE_AT..MERKLE_AT + 32].copy_from_slice(&self.merkle_root);
        b[SIGNATURE_AT..SIGNATURE_AT + 64].copy_from_slice(&self.signature);
        let crc = super::crc32(&b[..CRC_AT]);
        put_u32(&mut b, CRC_AT, crc);
        b
    }

    /// Decodes and validates a footer, including its internal consistency
    /// (count against seqs, time order).
    pub fn decode(b: &[u8]) -> Result<Footer, CorruptionKind> {
        let f = Footer::parse(b)?;
        f.check_consistent()?;
        Ok(f)
    }

    /// Decodes a footer's structure (magic, version, length, flags,
    /// reserved bytes, checksum) without comparing its fields with each
    /// other: a verifier compares them with the records instead, and names
    /// the one that differs.
    pub fn parse(b: &[u8]) -> Result<Footer, CorruptionKind> {
        let what = Structure::SegmentFooter;
        check_fixed(what, b, &FOOTER_MAGIC, CRC_AT)?;
        let len = get_u16(b, 10);
        if len as usize != FOOTER_LEN {
            return Err(bad_field(what, "footer_len", FOOTER_LEN, len));
        }
        let flags = get_u32(b, FLAGS_AT);
        if flags != 0 {
            return Err(bad_field(what, "flags", 0, flags));
        }
        check_reserved(what, "reserved", &b[RESERVED_AT..CRC_AT])?;
        let f = Footer {
            first_seq: get_u64(b, FIRST_SEQ_AT),
            last_seq: get_u64(b, LAST_SEQ_AT),
            record_count: get_u64(b, COUNT_AT),
            records_end: get_u64(b, RECORDS_END_AT),
            first_created_at: get_u64(b, FIRST_TIME_AT),
            last_created_at: get_u64(b, LAST_TIME_AT),
            sealed_at: get_u64(b, SEALED_AT_AT),
            last_hash: get_array(b, LAST_HASH_AT),
            merkle_root: get_array(b, MERKLE_AT),
            signature: get_array(b, SIGNATURE_AT),
        };
        Ok(f)
    }

    /// Checks the fields against each other: seqs in order, the count they
    /// imply, times in order.
    pub fn check_consistent(&self) -> Result<(), CorruptionKind> {
        let what = Structure::SegmentFooter;
        let f = self;
        if f.last_seq < f.first_seq || f.last_seq == u64::MAX {
            return Err(bad_field(
                what,
                "last_seq",
                format_args!("at least first_seq {} and below 2^64 - 1", f.first_seq),
                f.last_seq,
            ));
        }
        let count = f.last_seq - f.first_seq + 1;
        if f.record_count != count {
            return Err(bad_field(what, "record_count", count, f.record_count));
        }
        if f.last_created_at < f.first_created_at {
            return Err(bad_field(
                what,
                "last_created_at",
                format_args!("at least first_created_at {}", f.first_created_at),
                f.last_created_at,
            ));
        }
        Ok(())
    }
}
