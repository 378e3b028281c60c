//! Tree files: derived data beside each sealed segment, holding the Merkle
//! tree's frontier at the segment's end (the perfect subtrees that cover
//! every leaf of the log up to and including the segment's last record), so
//! that opening a log continues the tree without reading every record.
//!
//! ```text
//! offset len field
//!      0   8 magic        "CLOGTRE\0"
//!      8   2 version      1
//!     10   2 hash_count   k: the number of bits set in tree_size
//!     12   4 flags        0 (reserved)
//!     16   8 first_seq    the segment's first seq
//!     24   8 tree_size    the segment's last seq + 1
//!     32   4 hashes_crc   CRC-32 of the k hashes
//!     36  24 reserved     zero
//!     60   4 crc          CRC-32 of bytes 0..60
//!     64 32k hashes       the frontier's subtrees, largest (leftmost) first
//! ```
//! Like the index files, a tree file is never trusted over the records: a
//! missing or invalid one is rebuilt from them, and verification recomputes
//! the tree from the records.

use super::{
    bad_field, check_fixed, check_reserved, get_u16, get_u32, get_u64, put_u16, put_u32, put_u64,
    Structure, FORMAT_VERSION,
};
use crate::corruption::CorruptionKind;
use crate::merkle::Frontier;

/// Magic bytes of a tree file.
pub const TREE_MAGIC: [u8; 8] = *b"CLOGTRE\0";
/// Length of a tree file's header.
pub const TREE_HEADER_LEN: usize = 64;

const COUNT_AT: usize = 10;
const FLAGS_AT: usize = 12;
const FIRST_SEQ_AT: usize = 16;
const SIZE_AT: usize = 24;
const HASHES_CRC_AT: usize = 32;
const RESERVED_AT: usize = 36;
const CRC_AT: usize = TREE_HEADER_LEN - 4;

const _: () = assert!(RESERVED_AT + 24 == CRC_AT);

/// A decoded tree file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeFile {
    /// The segment's first seq.
    pub first_seq: u64,
    /// The frontier at the segment's end.
    pub frontier: Frontier,
}

/// Encodes a tree file.
pub fn encode(first_seq: u64, frontier: &Frontier) -> Vec<u8> {
    // The frontier's own encoding: the size, then the hashes.
    let body = frontier.encode();
    let hashes = &body[8..];
    let mut out = vec![0u8; TREE_HEADER_LEN];
    out[..8].copy_from_slice(&TREE_MAGIC);
    put_u16(&mut out, 8, FORMAT_VERSION);
    put_u16(&mut out, COUNT_AT, (hashes.len() / 32) as u16);
    put_u64(&mut out, FIRST_SEQ_AT, first_seq);
    put_u64(&mut out, SIZE_AT, frontier.size());
    put_u32(&mut out, HASHES_CRC_AT, super::crc32(hashes));
    let crc = super::crc32(&out[..CRC_AT]);
    put_u32(&mut out, CRC_AT, crc);
    out.extend_from_slice(hashes);
    out
}

/// Decodes and validates a tree file: framing, checksums, one hash per bit
/// set in the tree size.
pub fn decode(b: &[u8]) -> Result<TreeFile, CorruptionKind> {
    let what = Structure::TreeFile;
    check_fixed(what, b, &TREE_MAGIC, CRC_AT)?;
    let flags = get_u32(b, FLAGS_AT);
    if flags != 0 {
        return Err(bad_field(what, "flags", 0, flags));
    }
    check_reserved(what, "reserved", &b[RESERVED_AT..CRC_AT])?;
    let size = get_u64(b, SIZE_AT);
    let count = get_u16(b, COUNT_AT) as usize;
    if count != size.count_ones() as usize {
        return Err(bad_field(what, "hash_count", size.count_ones(), count));
    }
    let hashes = &b[TREE_HEADER_LEN..];
    if hashes.len() != 32 * count {
        return Err(bad_field(
            what,
            "file length",
            TREE_HEADER_LEN + 32 * count,
            b.len(),
        ));
    }
    let stored = get_u32(b, HASHES_CRC_AT);
    let computed = super::crc32(hashes);
    if stored != computed {
        return Err(CorruptionKind::ChecksumMismatch {
            what,
            expected: stored,
            found: computed,
        });
    }
    let mut body = Vec::with_capacity(8 + hashes.len());
    body.extend_from_slice(&size.to_le_bytes());
    body.extend_from_slice(hashes);
    let frontier = Frontier::decode(&body)
        .map_err(|e| bad_field(what, "hashes", "one per bit of tree_size", e))?;
    Ok(TreeFile {
        first_seq: get_u64(b, FIRST_SEQ_AT),
        frontier,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::leaf_hash;

    #[test]
    fn round_trip_and_damage() {
        let mut f = Frontier::new();
        for i in 0..13u64 {
            f.push(leaf_hash(&i.to_le_bytes()));
        }
        let b = encode(8, &f);
        assert_eq!(b.len(), TREE_HEADER_LEN + 3 * 32);
        assert_eq!(
            decode(&b),
            Ok(TreeFile {
                first_seq: 8,
                frontier: f.clone()
            })
        );
        for i in 0..b.len() {
            let mut bad = b.clone();
            bad[i] ^= 1;
            assert!(decode(&bad).is_err(), "flip of byte {i} accepted");
        }
        assert!(decode(&b[..b.len() - 1]).is_err());
        assert!(decode(&b[..10]).is_err());
    }
}
