//! The Merkle tree over a log, hashed as RFC 6962 / RFC 9162 section 2.1
//! define it, with SHA-256: a leaf is `SHA-256(0x00 || data)`, an inner node
//! `SHA-256(0x01 || left || right)`, the empty tree `SHA-256("")`, and the
//! tree of `n > 1` leaves is split after the largest power of two smaller
//! than `n` (the RFC's MTH). The two prefixes keep a leaf from ever being
//! passed off as a node.
//!
//! This module owns the hashing, the incremental [`Frontier`] the write path
//! keeps (the perfect subtrees covering all leaves so far, at most one per
//! level), proof generation over any [`SubtreeSource`] (the stored hashes of
//! perfect subtrees; [`MemoryTree`] keeps them all in memory), and proof
//! verification (RFC 9162 sections 2.1.3.2 and 2.1.4.2). It does no I/O and
//! does not decide what a leaf's data is: the caller does.
//!
//! Coordinates: a perfect subtree at `level` L and `index` i covers the
//! leaves `[i * 2^L, (i + 1) * 2^L)`; level 0 holds the leaf hashes.
//!
//! Verification never panics, whatever its arguments: every inconsistency
//! (an index at or past the size, sizes the wrong way round, a proof of the
//! wrong length, a root that does not match) is a [`VerifyError`] saying
//! which.

use std::fmt;

use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::Hash;

/// The byte before a leaf's data in its hash (RFC 6962 section 2.1).
pub const LEAF_PREFIX: u8 = 0x00;

/// The byte before two child hashes in an inner node's hash.
pub const NODE_PREFIX: u8 = 0x01;

/// The hash of a leaf: `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([LEAF_PREFIX]);
    h.update(data);
    h.finalize().into()
}

/// The hash of an inner node: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([NODE_PREFIX]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree: `SHA-256("")`, with no prefix.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The largest power of two strictly smaller than `n` (for `n >= 2`): where
/// MTH splits a tree of `n` leaves.
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2, "a tree of {n} leaves has no split");
    1 << (63 - (n - 1).leading_zeros())
}

/// Hex of a hash, for error messages.
pub(crate) struct Hex<'a>(pub(crate) &'a Hash);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

// ---------------------------------------------------------------------------
// The frontier

/// The perfect subtrees that cover leaves `[0, size)`, largest (leftmost)
/// first, one for each bit set in `size`: at most 64 hashes, and
/// `log2(size) + 1` at most for a given size. Appending a leaf merges the
/// subtrees it completes (amortised one node hash per leaf); the root folds
/// them right to left (one node hash per set bit but the first). This is what
/// the write path keeps so that it never rehashes the tree.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Frontier {
    size: u64,
    /// Invariant: `hashes.len() == size.count_ones()`; `hashes[j]` is the
    /// subtree for the j-th highest set bit of `size`.
    hashes: Vec<Hash>,
}

/// Why bytes are not an encoded [`Frontier`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrontierError {
    /// Fewer than the 8 bytes of the leaf count.
    #[error("frontier is {len} bytes, shorter than its 8-byte leaf count")]
    Truncated {
        /// The length given.
        len: usize,
    },
    /// The hashes that follow the leaf count are not one per bit set in it.
    #[error("frontier of {size} leaves needs {expected} bytes, found {found}")]
    Length {
        /// The leaf count read.
        size: u64,
        /// `8 + 32 * size.count_ones()`.
        expected: usize,
        /// The length given.
        found: usize,
    },
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Frontier {
        Frontier::default()
    }

    /// The number of leaves appended so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends one leaf, given as its leaf hash (see [`leaf_hash`]).
    ///
    /// # Panics
    /// If the tree already holds `u64::MAX` leaves.
    pub fn push(&mut self, leaf: Hash) {
        self.push_with(leaf, |_, _, _| {});
    }

    /// Appends one leaf as [`push`](Self::push) does, and calls `completed`
    /// with `(level, index, hash)` of every inner node the leaf completes,
    /// lowest first: the perfect subtrees whose last leaf it is (one per
    /// trailing one bit of the size before it). Every inner node of the
    /// tree is reported exactly once, when its last leaf is pushed, so the
    /// nodes are reported in index order within each level.
    ///
    /// # Panics
    /// If the tree already holds `u64::MAX` leaves.
    pub fn push_with(&mut self, leaf: Hash, mut completed: impl FnMut(u32, u64, &Hash)) {
        assert!(self.size < u64::MAX, "the Merkle tree is full");
        let n = self.size;
        // The subtrees this leaf completes are the lowest ones, one per
        // trailing one bit of the size: merge them, smallest first.
        let merged = n.trailing_ones() as usize;
        let keep = self.hashes.len() - merged;
        let mut carry = leaf;
        let mut level = 0;
        for left in self.hashes.drain(keep..).rev() {
            carry = node_hash(&left, &carry);
            level += 1;
            completed(level, n >> level, &carry);
        }
        self.hashes.push(carry);
        self.size += 1;
    }

    /// The root of the tree of [`size`](Self::size) leaves (the empty root
    /// for none).
    pub fn root(&self) -> Hash {
        let mut from_right = self.hashes.iter().rev();
        match from_right.next() {
            None => empty_root(),
            Some(last) => from_right.fold(*last, |right, left| node_hash(left, &right)),
        }
    }

    /// The perfect subtrees held, as `(level, index, hash)` in the
    /// coordinates of [`SubtreeSource::subtree`], left to right.
    pub fn subtrees(&self) -> impl Iterator<Item = (u32, u64, Hash)> + '_ {
        let mut start = 0u64;
        let mut bits = self.size;
        self.hashes.iter().map(move |h| {
            let level = 63 - bits.leading_zeros();
            bits &= !(1 << level);
            let index = start >> level;
            start += 1 << level;
            (level, index, *h)
        })
    }

    /// The frontier at `size` leaves, read from stored subtrees (one read
    /// per bit set in `size`) rather than recomputed from the leaves.
    pub fn from_source<S: SubtreeSource + ?Sized>(
        source: &S,
        size: u64,
    ) -> Result<Frontier, S::Error> {
        let mut hashes = Vec::with_capacity(size.count_ones() as usize);
        for (level, index) in perfect_pieces(0, size) {
            hashes.push(source.subtree(level, index)?);
        }
        Ok(Frontier { size, hashes })
    }

    /// The encoding: the leaf count as 8 bytes little-endian, then the held
    /// hashes, 32 bytes each, largest subtree first. No magic, version or
    /// checksum: the structure that carries it supplies those.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + 32 * self.hashes.len());
        out.extend_from_slice(&self.size.to_le_bytes());
        for h in &self.hashes {
            out.extend_from_slice(h);
        }
        out
    }

    /// Decodes [`encode`](Self::encode)'s output, requiring exactly one hash
    /// per bit set in the leaf count and nothing after them.
    pub fn decode(bytes: &[u8]) -> Result<Frontier, FrontierError> {
        let Some((count, rest)) = bytes.split_first_chunk::<8>() else {
            return Err(FrontierError::Truncated { len: bytes.len() });
        };
        let size = u64::from_le_bytes(*count);
        let expected = 8 + 32 * size.count_ones() as usize;
        if bytes.len() != expected {
            return Err(FrontierError::Length {
                size,
                expected,
                found: bytes.len(),
            });
        }
        let hashes = rest
            .chunks_exact(32)
            .map(|c| {
                let mut h = [0u8; 32];
                h.copy_from_slice(c);
                h
            })
            .collect();
        Ok(Frontier { size, hashes })
    }
}

impl fmt::Debug for Frontier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frontier")
            .field("size", &self.size)
            .field("root", &format_args!("{}", Hex(&self.root())))
            .finish()
    }
}

// ---------------------------------------------------------------------------
// Compact ranges

/// The perfect subtrees covering leaves `[begin, end)` for any `begin`: the
/// largest aligned subtrees that fit, left to right (levels rising, then
/// falling). Two adjacent ranges merge into one without their leaves, so
/// that pieces of a log hashed separately (its segments, on several
/// threads) give the tree of the whole. A range from leaf 0 is a
/// [`Frontier`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Range {
    begin: u64,
    end: u64,
    /// `(level, hash)` of each subtree, left to right.
    nodes: Vec<(u32, Hash)>,
}

/// Why two ranges do not merge.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("the range [{next_begin}, ..) does not start where [.., {end}) ends")]
pub struct NotAdjacent {
    /// Where the first range ends.
    pub end: u64,
    /// Where the second begins.
    pub next_begin: u64,
}

impl Range {
    /// The empty range at leaf `begin`.
    pub fn new(begin: u64) -> Range {
        Range {
            begin,
            end: begin,
            nodes: Vec::new(),
        }
    }

    /// The first leaf covered.
    pub fn begin(&self) -> u64 {
        self.begin
    }

    /// One past the last leaf covered.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Appends one leaf, given as its leaf hash.
    ///
    /// # Panics
    /// If the range already ends at leaf `u64::MAX`.
    pub fn push(&mut self, leaf: Hash) {
        self.push_node(0, leaf);
    }

    /// Appends the perfect subtree of `2^level` leaves starting at `end`
    /// (which `2^level` divides), merging it with the subtrees it completes.
    fn push_node(&mut self, level: u32, hash: Hash) {
        let size = 1u64 << level;
        assert!(self.end <= u64::MAX - size, "the Merkle tree is full");
        let (mut level, mut hash) = (level, hash);
        let mut index = self.end >> level;
        // A right child merges with its left sibling when the sibling lies
        // inside the range: it is then the range's last subtree.
        while index & 1 == 1 && (index - 1) << level >= self.begin {
            match self.nodes.last() {
                Some(&(l, left)) if l == level => {
                    hash = node_hash(&left, &hash);
                    self.nodes.pop();
                    level += 1;
                    index >>= 1;
                }
                _ => break,
            }
        }
        self.nodes.push((level, hash));
        self.end += size;
    }

    /// Appends `next`, which must begin where this range ends.
    pub fn append(&mut self, next: &Range) -> Result<(), NotAdjacent> {
        if next.begin != self.end {
            return Err(NotAdjacent {
                end: self.end,
                next_begin: next.begin,
            });
        }
        for &(level, hash) in &next.nodes {
            self.push_node(level, hash);
        }
        Ok(())
    }

    /// The frontier, when the range starts at leaf 0.
    pub fn frontier(&self) -> Option<Frontier> {
        (self.begin == 0).then(|| Frontier {
            size: self.end,
            hashes: self.nodes.iter().map(|&(_, h)| h).collect(),
        })
    }
}

impl From<&Frontier> for Range {
    fn from(f: &Frontier) -> Range {
        Range {
            begin: 0,
            end: f.size,
            nodes: f.subtrees().map(|(level, _, h)| (level, h)).collect(),
        }
    }
}

// ---------------------------------------------------------------------------
// Stored subtrees and proof generation

/// Where proof generation reads the hashes of perfect subtrees.
pub trait SubtreeSource {
    /// Why a subtree's hash could not be had (out of range, I/O, corruption).
    type Error: std::error::Error + 'static;

    /// The hash of the perfect subtree of `2^level` leaves starting at leaf
    /// `index * 2^level` (level 0: the leaf hash of leaf `index`).
    fn subtree(&self, level: u32, index: u64) -> Result<Hash, Self::Error>;
}

/// Every level of a tree, in memory: level 0 is the leaf hashes, level L+1
/// the node hashes of complete pairs at level L. About `2n` hashes for `n`
/// leaves. A reference source for tests and small logs, and a model for the
/// per-segment files that will back proofs on disk.
#[derive(Debug, Clone, Default)]
pub struct MemoryTree {
    levels: Vec<Vec<Hash>>,
}

/// A subtree [`MemoryTree`] does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("no complete subtree at level {level}, index {index}")]
pub struct OutOfRange {
    /// The level asked for.
    pub level: u32,
    /// The index asked for.
    pub index: u64,
}

impl MemoryTree {
    /// An empty tree.
    pub fn new() -> MemoryTree {
        MemoryTree::default()
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// Appends one leaf, given as its leaf hash, and every node it completes.
    pub fn push(&mut self, leaf: Hash) {
        let mut carry = leaf;
        let mut level = 0;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            let row = &mut self.levels[level];
            row.push(carry);
            if !row.len().is_multiple_of(2) {
                return;
            }
            carry = node_hash(&row[row.len() - 2], &row[row.len() - 1]);
            level += 1;
        }
    }
}

impl SubtreeSource for MemoryTree {
    type Error = OutOfRange;

    fn subtree(&self, level: u32, index: u64) -> Result<Hash, OutOfRange> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.levels.get(level as usize)?.get(i))
            .copied()
            .ok_or(OutOfRange { level, index })
    }
}

/// The perfect subtrees, as `(level, index)`, that cover `[start, start +
/// len)` left to right, largest first: one per bit set in `len`. Their right
/// fold is the range's MTH when `start` is a multiple of the largest piece,
/// which holds for every range the RFC's recursion visits.
fn perfect_pieces(start: u64, len: u64) -> impl Iterator<Item = (u32, u64)> {
    let mut offset = start;
    let mut bits = len;
    std::iter::from_fn(move || {
        if bits == 0 {
            return None;
        }
        let level = 63 - bits.leading_zeros();
        bits &= !(1 << level);
        let piece = (level, offset >> level);
        offset += 1 << level;
        Some(piece)
    })
}

/// MTH of the leaves `[start, start + len)` (`len >= 1`), from at most one
/// stored subtree per bit set in `len`.
fn range_hash<S: SubtreeSource + ?Sized>(
    source: &S,
    start: u64,
    len: u64,
) -> Result<Hash, S::Error> {
    let mut pieces = Vec::with_capacity(len.count_ones() as usize);
    for (level, index) in perfect_pieces(start, len) {
        pieces.push(source.subtree(level, index)?);
    }
    let mut from_right = pieces.into_iter().rev();
    Ok(match from_right.next() {
        None => empty_root(),
        Some(last) => from_right.fold(last, |right, left| node_hash(&left, &right)),
    })
}

/// Sizes and indexes that no proof can be made or checked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SizeError {
    /// The leaf index is at or past the tree size (always so for size 0).
    #[error("leaf index {index} is not inside a tree of {size} leaves")]
    IndexOutOfRange {
        /// The leaf index given.
        index: u64,
        /// The tree size given.
        size: u64,
    },
    /// A consistency proof from a larger tree to a smaller one.
    #[error("old tree size {old_size} is larger than the new size {new_size}")]
    OldSizeGreater {
        /// The old tree size given.
        old_size: u64,
        /// The new tree size given.
        new_size: u64,
    },
    /// A consistency proof from the empty tree: every tree extends it, so
    /// there is nothing to prove (RFC 9162 defines proofs for `0 < old`).
    #[error("a consistency proof from the empty tree proves nothing")]
    OldSizeZero,
}

/// Checks that leaf `index` is inside a tree of `size` leaves: the
/// arguments an inclusion proof exists for.
pub fn check_inclusion(index: u64, size: u64) -> Result<(), SizeError> {
    if index >= size {
        return Err(SizeError::IndexOutOfRange { index, size });
    }
    Ok(())
}

/// Checks that `0 < old_size <= new_size`: the sizes a consistency proof
/// exists for.
pub fn check_consistency(old_size: u64, new_size: u64) -> Result<(), SizeError> {
    if old_size > new_size {
        return Err(SizeError::OldSizeGreater { old_size, new_size });
    }
    if old_size == 0 {
        return Err(SizeError::OldSizeZero);
    }
    Ok(())
}

/// Why a proof could not be generated.
#[derive(Debug, Error)]
pub enum ProveError<E: std::error::Error + 'static> {
    /// The sizes or index admit no proof.
    #[error(transparent)]
    Size(#[from] SizeError),
    /// The source could not give a subtree hash the proof needs.
    #[error("subtree hash unavailable: {0}")]
    Source(#[source] E),
}

/// The root of the tree of the first `size` leaves held by `source` (any
/// size up to what it holds, so past checkpoints' roots too).
pub fn root_at<S: SubtreeSource + ?Sized>(source: &S, size: u64) -> Result<Hash, S::Error> {
    range_hash(source, 0, size)
}

/// The inclusion proof of leaf `index` in the tree of `size` leaves (RFC
/// 9162 section 2.1.3.1, PATH), lowest sibling first.
pub fn inclusion_proof<S: SubtreeSource + ?Sized>(
    source: &S,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, ProveError<S::Error>> {
    check_inclusion(index, size)?;
    // Walk down from the root: at each split the proof takes the half the
    // leaf is not in. Collected top-down, returned bottom-up.
    let (mut start, mut len, mut m) = (0u64, size, index);
    let mut proof = Vec::new();
    while len > 1 {
        let k = split_point(len);
        let sibling = if m < k {
            let s = range_hash(source, start + k, len - k);
            len = k;
            s
        } else {
            let s = range_hash(source, start, k);
            start += k;
            m -= k;
            len -= k;
            s
        };
        proof.push(sibling.map_err(ProveError::Source)?);
    }
    proof.reverse();
    Ok(proof)
}

/// The consistency proof from the tree of `old_size` leaves to the tree of
/// `new_size` (RFC 9162 section 2.1.4.1, SUBPROOF with `b = true`); empty
/// when the sizes are equal.
pub fn consistency_proof<S: SubtreeSource + ?Sized>(
    source: &S,
    old_size: u64,
    new_size: u64,
) -> Result<Vec<Hash>, ProveError<S::Error>> {
    check_consistency(old_size, new_size)?;
    // `whole_old` is SUBPROOF's b: the node being visited is still the whole
    // old tree, whose root the verifier already has.
    let (mut start, mut len, mut m, mut whole_old) = (0u64, new_size, old_size, true);
    let mut proof = Vec::new();
    loop {
        if m == len {
            if !whole_old {
                proof.push(range_hash(source, start, len).map_err(ProveError::Source)?);
            }
            break;
        }
        let k = split_point(len);
        let node = if m <= k {
            let s = range_hash(source, start + k, len - k);
            len = k;
            s
        } else {
            let s = range_hash(source, start, k);
            start += k;
            m -= k;
            len -= k;
            whole_old = false;
            s
        };
        proof.push(node.map_err(ProveError::Source)?);
    }
    proof.reverse();
    Ok(proof)
}

// ---------------------------------------------------------------------------
// Verification

/// Why a proof did not verify.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VerifyError {
    /// The sizes or index admit no proof.
    #[error(transparent)]
    Size(#[from] SizeError),
    /// The proof has more or fewer hashes than the sizes call for.
    #[error("proof has {found} hashes where {expected} are needed")]
    ProofLength {
        /// The number of hashes the sizes (and index) call for.
        expected: usize,
        /// The number given.
        found: usize,
    },
    /// An inclusion proof leads to another root than the one given.
    #[error("inclusion proof leads to root {}, not {}", Hex(.computed), Hex(.expected))]
    RootMismatch {
        /// The root given.
        expected: Hash,
        /// The root the leaf and the proof hash to.
        computed: Hash,
    },
    /// A consistency proof does not rebuild the old root given.
    #[error("consistency proof rebuilds old root {}, not {}", Hex(.computed), Hex(.expected))]
    OldRootMismatch {
        /// The old root given.
        expected: Hash,
        /// The old root the proof hashes to.
        computed: Hash,
    },
    /// A consistency proof does not rebuild the new root given.
    #[error("consistency proof rebuilds new root {}, not {}", Hex(.computed), Hex(.expected))]
    NewRootMismatch {
        /// The new root given.
        expected: Hash,
        /// The new root the proof hashes to.
        computed: Hash,
    },
}

/// Which side of the running hash a proof's next hash goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Left,
    Right,
}

/// RFC 9162's walk from a node up to the root, shared by both verifications:
/// `node` is the index of the current node in its level (the RFC's `fn`),
/// `last` the index of the level's last node (`sn`).
#[derive(Debug, Clone, Copy)]
struct Walk {
    node: u64,
    last: u64,
}

impl Iterator for Walk {
    type Item = Side;

    /// The side of the next proof hash, or `None` once at the root.
    fn next(&mut self) -> Option<Side> {
        if self.last == 0 {
            return None;
        }
        let side = if self.node & 1 == 1 || self.node == self.last {
            // A right child, or the last node of its level with no sibling:
            // climb past the levels where it is a left child without one.
            while self.node & 1 == 0 && self.node != 0 {
                self.node >>= 1;
                self.last >>= 1;
            }
            Side::Left
        } else {
            Side::Right
        };
        self.node >>= 1;
        self.last >>= 1;
        Some(side)
    }
}

/// The root that leaf `index`'s hash and `proof` lead to in a tree of `size`
/// leaves (RFC 9162 section 2.1.3.2 up to the final comparison).
pub fn inclusion_root(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
) -> Result<Hash, VerifyError> {
    check_inclusion(index, size)?;
    let walk = Walk {
        node: index,
        last: size - 1,
    };
    let expected = walk.count();
    if proof.len() != expected {
        return Err(VerifyError::ProofLength {
            expected,
            found: proof.len(),
        });
    }
    Ok(walk.zip(proof).fold(*leaf, |r, (side, p)| match side {
        Side::Left => node_hash(p, &r),
        Side::Right => node_hash(&r, p),
    }))
}

/// Checks that `leaf` (a leaf hash) is leaf `index` of the tree of `size`
/// leaves whose root is `root` (RFC 9162 section 2.1.3.2).
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), VerifyError> {
    let computed = inclusion_root(index, size, leaf, proof)?;
    if computed != *root {
        return Err(VerifyError::RootMismatch {
            expected: *root,
            computed,
        });
    }
    Ok(())
}

/// Checks that the tree of `old_size` leaves with root `old_root` is a
/// prefix of the tree of `new_size` leaves with root `new_root` (RFC 9162
/// section 2.1.4.2). Equal sizes need an empty proof and equal roots; an old
/// size of 0 is refused ([`SizeError::OldSizeZero`]): a caller that trusts
/// nothing yet has nothing to check.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), VerifyError> {
    check_consistency(old_size, new_size)?;
    if old_size == new_size {
        if !proof.is_empty() {
            return Err(VerifyError::ProofLength {
                expected: 0,
                found: proof.len(),
            });
        }
        if old_root != new_root {
            return Err(VerifyError::NewRootMismatch {
                expected: *new_root,
                computed: *old_root,
            });
        }
        return Ok(());
    }
    // The walk starts at the old tree's last leaf, raised past the levels
    // where it is a right child (those nodes are inside a larger perfect
    // subtree of the old tree).
    let mut walk = Walk {
        node: old_size - 1,
        last: new_size - 1,
    };
    while walk.node & 1 == 1 {
        walk.node >>= 1;
        walk.last >>= 1;
    }
    // When the old tree is perfect its root is the walk's starting node and
    // the proof omits it; otherwise the proof starts with that node.
    let seeded = old_size.is_power_of_two();
    let expected = walk.count() + usize::from(!seeded);
    if proof.len() != expected {
        return Err(VerifyError::ProofLength {
            expected,
            found: proof.len(),
        });
    }
    let (seed, rest) = match (seeded, proof.split_first()) {
        (true, _) => (*old_root, proof),
        (false, Some((first, rest))) => (*first, rest),
        // Not seeded means expected >= 1, which the length check enforced.
        (false, None) => {
            return Err(VerifyError::ProofLength { expected, found: 0 });
        }
    };
    let (mut old, mut new) = (seed, seed);
    for (side, c) in walk.zip(rest) {
        match side {
            Side::Left => {
                old = node_hash(c, &old);
                new = node_hash(c, &new);
            }
            Side::Right => new = node_hash(&new, c),
        }
    }
    if old != *old_root {
        return Err(VerifyError::OldRootMismatch {
            expected: *old_root,
            computed: old,
        });
    }
    if new != *new_root {
        return Err(VerifyError::NewRootMismatch {
            expected: *new_root,
            computed: new,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_hashed_apart_merge_to_the_frontier_of_the_whole() {
        let all = leaves(300);
        let mut whole = Frontier::new();
        for l in &all {
            whole.push(*l);
        }
        // Cut points that split perfect subtrees in every way.
        for cuts in [
            vec![0, 300],
            vec![0, 1, 300],
            vec![0, 7, 8, 9, 300],
            vec![0, 100, 128, 129, 255, 256, 300],
        ] {
            let mut merged = Range::new(0);
            for w in cuts.windows(2) {
                let mut piece = Range::new(w[0]);
                for l in &all[w[0] as usize..w[1] as usize] {
                    piece.push(*l);
                }
                assert_eq!(piece.end(), w[1]);
                merged.append(&piece).expect("adjacent");
                // At every cut, the root of the tree so far.
                let f = merged.frontier().expect("from leaf 0");
                assert_eq!(f.root(), naive_root(&all[..w[1] as usize]), "cuts {cuts:?}");
            }
            assert_eq!(merged.frontier(), Some(whole.clone()), "cuts {cuts:?}");
        }
        assert_eq!(Range::from(&whole).frontier(), Some(whole.clone()));
        let gap = Range::new(301);
        assert_eq!(
            Range::from(&whole).append(&gap),
            Err(NotAdjacent {
                end: 300,
                next_begin: 301
            })
        );
        assert_eq!(gap.frontier(), None);
    }

    /// MTH by its definition.
    fn naive_root(l: &[Hash]) -> Hash {
        match l.len() {
            0 => empty_root(),
            1 => l[0],
            n => {
                let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
                node_hash(&naive_root(&l[..k]), &naive_root(&l[k..]))
            }
        }
    }

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_le_bytes())).collect()
    }

    #[test]
    fn hashes_are_prefixed_sha256() {
        let expected: Hash = Sha256::digest([0u8, b'a']).into();
        assert_eq!(leaf_hash(b"a"), expected);
        let mut input = vec![1u8];
        input.extend_from_slice(&[2u8; 32]);
        input.extend_from_slice(&[3u8; 32]);
        let expected: Hash = Sha256::digest(&input).into();
        assert_eq!(node_hash(&[2; 32], &[3; 32]), expected);
    }

    #[test]
    fn split_point_is_the_largest_power_of_two_below() {
        assert_eq!(split_point(2), 1);
        assert_eq!(split_point(3), 2);
        assert_eq!(split_point(4), 2);
        assert_eq!(split_point(5), 4);
        assert_eq!(split_point(8), 4);
        assert_eq!(split_point(9), 8);
        assert_eq!(split_point(u64::MAX), 1 << 63);
    }

    #[test]
    fn frontier_holds_one_hash_per_set_bit_and_matches_the_memory_tree() {
        let mut f = Frontier::new();
        let mut t = MemoryTree::new();
        assert_eq!(f.root(), empty_root());
        for (i, l) in leaves(300).into_iter().enumerate() {
            f.push(l);
            t.push(l);
            let size = i as u64 + 1;
            assert_eq!(f.size(), size);
            assert_eq!(f.hashes.len(), size.count_ones() as usize);
            assert_eq!(Ok(f.root()), root_at(&t, size));
            assert_eq!(Frontier::from_source(&t, size), Ok(f.clone()));
            for (level, index, h) in f.subtrees() {
                assert_eq!(t.subtree(level, index), Ok(h));
            }
        }
    }

    #[test]
    fn push_with_reports_every_inner_node_once_when_its_last_leaf_comes() {
        let mut f = Frontier::new();
        let mut t = MemoryTree::new();
        let mut seen = std::collections::BTreeSet::new();
        for (i, l) in leaves(300).into_iter().enumerate() {
            t.push(l);
            let mut reported = Vec::new();
            f.push_with(l, |level, index, h| reported.push((level, index, *h)));
            // One node per trailing one bit of the size before the push.
            assert_eq!(reported.len() as u32, (i as u64).trailing_ones());
            for (k, &(level, index, h)) in reported.iter().enumerate() {
                assert_eq!(level, k as u32 + 1, "lowest first");
                assert_eq!((index + 1) << level, i as u64 + 1, "its last leaf is {i}");
                assert_eq!(t.subtree(level, index), Ok(h));
                assert!(seen.insert((level, index)), "({level}, {index}) twice");
            }
        }
        // Every inner node of the complete subtrees: 300 - popcount(300).
        assert_eq!(seen.len() as u32, 300 - 300u64.count_ones());
    }

    #[test]
    fn frontier_round_trips_and_rejects_wrong_lengths() {
        let mut f = Frontier::new();
        for l in leaves(13) {
            f.push(l);
        }
        let bytes = f.encode();
        assert_eq!(bytes.len(), 8 + 32 * 3);
        assert_eq!(Frontier::decode(&bytes), Ok(f.clone()));
        assert_eq!(
            Frontier::decode(&bytes[..7]),
            Err(FrontierError::Truncated { len: 7 })
        );
        assert_eq!(
            Frontier::decode(&bytes[..bytes.len() - 1]),
            Err(FrontierError::Length {
                size: 13,
                expected: 104,
                found: 103
            })
        );
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            Frontier::decode(&longer),
            Err(FrontierError::Length {
                size: 13,
                expected: 104,
                found: 105
            })
        );
        let all = u64::MAX.to_le_bytes();
        assert_eq!(
            Frontier::decode(&all),
            Err(FrontierError::Length {
                size: u64::MAX,
                expected: 8 + 32 * 64,
                found: 8
            })
        );
        assert_eq!(Frontier::decode(&0u64.to_le_bytes()), Ok(Frontier::new()));
    }

    #[test]
    fn memory_tree_refuses_what_it_does_not_hold() {
        let mut t = MemoryTree::new();
        for l in leaves(5) {
            t.push(l);
        }
        assert!(t.subtree(2, 0).is_ok());
        assert_eq!(t.subtree(2, 1), Err(OutOfRange { level: 2, index: 1 }));
        assert_eq!(t.subtree(3, 0), Err(OutOfRange { level: 3, index: 0 }));
        assert_eq!(
            t.subtree(0, u64::MAX),
            Err(OutOfRange {
                level: 0,
                index: u64::MAX
            })
        );
        assert!(matches!(
            inclusion_proof(&t, 0, 6),
            Err(ProveError::Source(OutOfRange { .. }))
        ));
    }

    #[test]
    fn argument_errors_name_the_sizes() {
        let t = MemoryTree::new();
        let h = [0u8; 32];
        assert!(matches!(
            inclusion_proof(&t, 3, 3),
            Err(ProveError::Size(SizeError::IndexOutOfRange {
                index: 3,
                size: 3
            }))
        ));
        assert!(matches!(
            consistency_proof(&t, 4, 3),
            Err(ProveError::Size(SizeError::OldSizeGreater {
                old_size: 4,
                new_size: 3
            }))
        ));
        assert!(matches!(
            consistency_proof(&t, 0, 3),
            Err(ProveError::Size(SizeError::OldSizeZero))
        ));
        assert_eq!(
            verify_inclusion(0, 0, &h, &[], &h),
            Err(VerifyError::Size(SizeError::IndexOutOfRange {
                index: 0,
                size: 0
            }))
        );
        assert_eq!(
            verify_inclusion(u64::MAX, u64::MAX, &h, &[], &h),
            Err(VerifyError::Size(SizeError::IndexOutOfRange {
                index: u64::MAX,
                size: u64::MAX
            }))
        );
        assert_eq!(
            verify_consistency(0, 0, &h, &h, &[]),
            Err(VerifyError::Size(SizeError::OldSizeZero))
        );
        assert_eq!(
            verify_consistency(2, 1, &h, &h, &[]),
            Err(VerifyError::Size(SizeError::OldSizeGreater {
                old_size: 2,
                new_size: 1
            }))
        );
        assert_eq!(
            verify_consistency(5, 5, &h, &h, &[h]),
            Err(VerifyError::ProofLength {
                expected: 0,
                found: 1
            })
        );
        assert_eq!(verify_consistency(5, 5, &h, &h, &[]), Ok(()));
        assert_eq!(
            verify_consistency(5, 5, &h, &[1; 32], &[]),
            Err(VerifyError::NewRootMismatch {
                expected: [1; 32],
                computed: h
            })
        );
    }

    #[test]
    fn proofs_at_the_largest_sizes_have_the_expected_lengths() {
        let h = [0u8; 32];
        // A leaf in a tree of 2^64 - 1 leaves: 64 levels, the last leaf
        // skips the level where it has no sibling.
        assert_eq!(
            inclusion_root(0, u64::MAX, &h, &[]),
            Err(VerifyError::ProofLength {
                expected: 64,
                found: 0
            })
        );
        assert_eq!(
            inclusion_root(u64::MAX - 1, u64::MAX, &h, &[]),
            Err(VerifyError::ProofLength {
                expected: 63,
                found: 0
            })
        );
        assert_eq!(
            verify_consistency(1, u64::MAX, &h, &h, &[]),
            Err(VerifyError::ProofLength {
                expected: 64,
                found: 0
            })
        );
        assert_eq!(
            verify_consistency(3, u64::MAX, &h, &h, &[]),
            Err(VerifyError::ProofLength {
                expected: 65,
                found: 0
            })
        );
    }

    #[test]
    fn errors_show_hashes_in_hex() {
        let e = VerifyError::RootMismatch {
            expected: [0xab; 32],
            computed: [0x01; 32],
        };
        let text = e.to_string();
        assert!(text.contains(&"ab".repeat(32)), "{text}");
        assert!(text.contains(&"01".repeat(32)), "{text}");
    }
}
