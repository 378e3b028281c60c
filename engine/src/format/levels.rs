//! Level files: derived data beside each sealed segment, holding the hashes
//! of the Merkle tree's upper nodes that the segment completes, so that an
//! inclusion or consistency proof reads a few stored hashes and at most
//! `2^min_level` records per proof edge rather than the whole log.
//!
//! Which nodes: every perfect subtree at a level `L >= min_level` whose
//! *last* leaf is one of the segment's records. Each node of the tree is
//! completed by exactly one record, so each is in exactly one level file
//! (or, for the active segment, in the writer's memory), whatever the
//! segment boundaries; a node may start in an earlier segment. For a
//! segment of the leaves `[first_seq, tree_size)`, level `L` holds the
//! indexes `first_seq >> L .. tree_size >> L`, and no level above the first
//! one with none holds any.
//!
//! ```text
//! offset len field
//!      0   8 magic        "CLOGLVL\0"
//!      8   2 version      1
//!     10   2 min_level    the lowest level held (Config::tree_min_level)
//!     12   4 flags        0 (reserved)
//!     16   8 first_seq    the segment's first seq
//!     24   8 tree_size    the segment's last seq + 1
//!     32   8 node_count   n: the hashes that follow (implied by the above)
//!     40   4 nodes_crc    CRC-32 of the n hashes
//!     44  16 reserved     zero
//!     60   4 crc          CRC-32 of bytes 0..60
//!     64 32n nodes        level min_level's hashes in index order, then the
//!                         next level's, and so on up
//! ```
//! Never trusted over the records: a missing or invalid file is rebuilt from
//! them, and every proof made from the nodes is verified against the log's
//! root before it is returned.

use super::{
    bad_field, check_fixed, check_reserved, get_array, get_u16, get_u32, get_u64, put_u16, put_u32,
    put_u64, Structure, FORMAT_VERSION,
};
use crate::corruption::CorruptionKind;
use crate::Hash;

/// Magic bytes of a level file.
pub const LEVELS_MAGIC: [u8; 8] = *b"CLOGLVL\0";
/// Length of a level file's header.
pub const LEVELS_HEADER_LEN: usize = 64;
const MIN_LEVEL_AT: usize = 10;
const FLAGS_AT: usize = 12;
const FIRST_SEQ_AT: usize = 16;
const SIZE_AT: usize = 24;
const COUNT_AT: usize = 32;
const NODES_CRC_AT: usize = 40;
const RESERVED_AT: usize = 44;
const CRC_AT: usize = LEVELS_HEADER_LEN - 4;

const _: () = assert!(RESERVED_AT + 16 == CRC_AT);

/// The indexes of the nodes at `level` completed by the leaves
/// `[first_seq, tree_size)`: `(first index, count)`.
pub fn level_range(first_seq: u64, tree_size: u64, level: u32) -> (u64, u64) {
    let first = first_seq >> level;
    (first, (tree_size >> level).saturating_sub(first))
}

/// The nodes at levels `min_level` and up completed by a run of leaves,
/// in memory: what the writer gathers for the active segment, and what a
/// rebuild computes from a sealed segment's records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LevelNodes {
    first_seq: u64,
    min_level: u32,
    /// `levels[k]`: the nodes at level `min_level + k`, from index
    /// `first_seq >> (min_level + k)` on.
    levels: Vec<Vec<Hash>>,
}

impl LevelNodes {
    /// No nodes yet, for leaves from `first_seq` on, keeping the levels
    /// `min_level` and up.
    pub fn new(first_seq: u64, min_level: u32) -> LevelNodes {
        LevelNodes {
            first_seq,
            min_level,
            levels: Vec::new(),
        }
    }

    /// The first leaf whose nodes are gathered.
    pub fn first_seq(&self) -> u64 {
        self.first_seq
    }

    /// Keeps a node that a leaf from `first_seq` on completed (see
    /// [`Frontier::push_with`](crate::merkle::Frontier::push_with)), if its
    /// level is kept; nodes of one level must come in index order.
    ///
    /// # Panics
    /// If the node is not the next one of its level: a node was skipped or
    /// repeated, and the file written from these nodes would be wrong.
    pub fn record(&mut self, level: u32, index: u64, hash: &Hash) {
        let Some(k) = level.checked_sub(self.min_level) else {
            return;
        };
        let k = k as usize;
        if self.levels.len() <= k {
            self.levels.resize_with(k + 1, Vec::new);
        }
        let row = &mut self.levels[k];
        let expected = (self.first_seq >> level) + row.len() as u64;
        assert_eq!(
            index, expected,
            "level {level}: node {index} completed where node {expected} was next"
        );
        row.push(*hash);
    }

    /// The node at `level`, `index`, when it is kept here.
    pub fn node(&self, level: u32, index: u64) -> Option<Hash> {
        let k = level.checked_sub(self.min_level)? as usize;
        let row = self.levels.get(k)?;
        let i = index.checked_sub(self.first_seq >> level)?;
        row.get(usize::try_from(i).ok()?).copied()
    }

    /// The level file for the leaves `[first_seq, tree_size)`.
    ///
    /// # Panics
    /// If the nodes kept are not exactly those that the leaves complete.
    pub fn encode(&self, tree_size: u64) -> Vec<u8> {
        let mut nodes = Vec::new();
        let mut level = self.min_level;
        // A tree of fewer than 2^64 leaves has no level 64.
        while level < 64 {
            let (_, count) = level_range(self.first_seq, tree_size, level);
            let row = self
                .levels
                .get((level - self.min_level) as usize)
                .map_or(&[][..], Vec::as_slice);
            assert_eq!(
                row.len() as u64,
                count,
                "level {level} of the leaves [{}, {tree_size}) holds {} nodes, not {count}",
                self.first_seq,
                row.len()
            );
            if count == 0 {
                break;
            }
            row.iter().for_each(|h| nodes.extend_from_slice(h));
            level += 1;
        }
        assert!(
            self.levels.len() <= (level - self.min_level) as usize + 1,
            "nodes kept above the highest level the leaves [{}, {tree_size}) complete",
            self.first_seq
        );
        let mut out = vec![0u8; LEVELS_HEADER_LEN];
        out[..8].copy_from_slice(&LEVELS_MAGIC);
        put_u16(&mut out, 8, FORMAT_VERSION);
        put_u16(&mut out, MIN_LEVEL_AT, self.min_level as u16);
        put_u64(&mut out, FIRST_SEQ_AT, self.first_seq);
        put_u64(&mut out, SIZE_AT, tree_size);
        put_u64(&mut out, COUNT_AT, (nodes.len() / 32) as u64);
        put_u32(&mut out, NODES_CRC_AT, super::crc32(&nodes));
        let crc = super::crc32(&out[..CRC_AT]);
        put_u32(&mut out, CRC_AT, crc);
        out.extend_from_slice(&nodes);
        out
    }
}

/// Where each level's nodes are in a decoded level file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LevelsLayout {
    /// The segment's first seq.
    pub first_seq: u64,
    /// The segment's last seq + 1.
    pub tree_size: u64,
    /// The lowest level held.
    pub min_level: u32,
    /// For each level from `min_level` up: its first index, its node
    /// count, and the position of its first node among all the nodes.
    rows: Vec<(u64, u64, u64)>,
}

impl LevelsLayout {
    /// The hash at `level`, `index` in `file` (the bytes this layout was
    /// decoded from), when the file holds that node.
    pub fn node(&self, file: &[u8], level: u32, index: u64) -> Option<Hash> {
        let k = level.checked_sub(self.min_level)? as usize;
        let &(first, count, at) = self.rows.get(k)?;
        let i = index.checked_sub(first).filter(|&i| i < count)?;
        let offset = LEVELS_HEADER_LEN as u64 + 32 * (at + i);
        let offset = usize::try_from(offset).ok()?;
        (file.len() >= offset + 32).then(|| get_array(file, offset))
    }
}

/// Decodes and validates a level file: framing, checksums, and a node count
/// and length that its leaf range and lowest level imply.
pub fn decode(b: &[u8]) -> Result<LevelsLayout, CorruptionKind> {
    let what = Structure::LevelFile;
    check_fixed(what, b, &LEVELS_MAGIC, CRC_AT)?;
    let flags = get_u32(b, FLAGS_AT);
    if flags != 0 {
        return Err(bad_field(what, "flags", 0, flags));
    }
    check_reserved(what, "reserved", &b[RESERVED_AT..CRC_AT])?;
    let min_level = u32::from(get_u16(b, MIN_LEVEL_AT));
    if !(1..64).contains(&min_level) {
        return Err(bad_field(what, "min_level", "1 to 63", min_level));
    }
    let first_seq = get_u64(b, FIRST_SEQ_AT);
    let tree_size = get_u64(b, SIZE_AT);
    if tree_size <= first_seq {
        return Err(bad_field(
            what,
            "tree_size",
            format!("more than first_seq {first_seq}"),
            tree_size,
        ));
    }
    let mut rows = Vec::new();
    let mut total = 0u64;
    for level in min_level..64 {
        let (first, count) = level_range(first_seq, tree_size, level);
        if count == 0 {
            break;
        }
        rows.push((first, count, total));
        total += count;
    }
    let stored = get_u64(b, COUNT_AT);
    if stored != total {
        return Err(bad_field(what, "node_count", total, stored));
    }
    let expected_len = (LEVELS_HEADER_LEN as u64).saturating_add(total.saturating_mul(32));
    if b.len() as u64 != expected_len {
        return Err(bad_field(what, "file length", expected_len, b.len()));
    }
    let nodes = &b[LEVELS_HEADER_LEN..];
    let stored = get_u32(b, NODES_CRC_AT);
    let computed = super::crc32(nodes);
    if stored != computed {
        return Err(CorruptionKind::ChecksumMismatch {
            what,
            expected: stored,
            found: computed,
        });
    }
    Ok(LevelsLayout {
        first_seq,
        tree_size,
        min_level,
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{leaf_hash, Frontier, MemoryTree, SubtreeSource};

    /// The nodes the leaves `[first, end)` complete, gathered as the writer
    /// does, beside the whole tree.
    fn gathered(first: u64, end: u64, min_level: u32) -> (LevelNodes, MemoryTree) {
        let mut f = Frontier::new();
        let mut t = MemoryTree::new();
        let mut nodes = LevelNodes::new(first, min_level);
        for i in 0..end {
            let leaf = leaf_hash(&i.to_le_bytes());
            t.push(leaf);
            if i < first {
                f.push(leaf);
            } else {
                f.push_with(leaf, |l, j, h| nodes.record(l, j, h));
            }
        }
        (nodes, t)
    }

    #[test]
    fn every_node_completed_in_the_range_is_kept_and_round_trips() {
        for (first, end, min_level) in [
            (0, 1, 6),
            (0, 64, 6),
            (40, 200, 6),
            (3, 300, 2),
            (64, 65, 6),
        ] {
            let (nodes, tree) = gathered(first, end, min_level);
            let bytes = nodes.encode(end);
            let layout = decode(&bytes).expect("decode");
            assert_eq!((layout.first_seq, layout.tree_size), (first, end));
            let mut count = 0;
            for level in min_level..10 {
                let (lo, n) = level_range(first, end, level);
                for index in lo..lo + n {
                    let want = tree.subtree(level, index).expect("in the tree");
                    assert_eq!(nodes.node(level, index), Some(want));
                    assert_eq!(layout.node(&bytes, level, index), Some(want));
                    count += 1;
                }
                assert_eq!(layout.node(&bytes, level, lo + n), None);
                if lo > 0 {
                    assert_eq!(layout.node(&bytes, level, lo - 1), None);
                }
            }
            assert_eq!(bytes.len(), LEVELS_HEADER_LEN + 32 * count);
            assert_eq!(
                layout.node(&bytes, min_level - 1, first >> (min_level - 1)),
                None
            );
        }
    }

    #[test]
    fn damage_is_refused() {
        let (nodes, _) = gathered(40, 200, 6);
        let b = nodes.encode(200);
        for i in 0..b.len() {
            let mut bad = b.clone();
            bad[i] ^= 1;
            assert!(decode(&bad).is_err(), "flip of byte {i} accepted");
        }
        assert!(decode(&b[..b.len() - 1]).is_err());
        assert!(decode(&b[..10]).is_err());
        let mut longer = b.clone();
        longer.extend_from_slice(&[0; 32]);
        assert!(decode(&longer).is_err());
    }

    #[test]
    #[should_panic(expected = "holds 3 nodes, not 4")]
    fn encoding_a_range_the_nodes_do_not_cover_is_a_bug() {
        let (nodes, _) = gathered(40, 200, 6);
        let _ = nodes.encode(256);
    }
}
