//! Merkle roots and proofs over a log's durable records, made without
//! reading all of them.
//!
//! A proof needs the hashes of perfect subtrees ([`SubtreeSource`]). One at
//! level `L = Config::tree_min_level` or above is read from where it was
//! stored when its last leaf was written: the level file of the sealed
//! segment holding that leaf, or the active segment's nodes in the writer's
//! memory. One below is recomputed from at most `2^L` consecutive records'
//! chain hashes (an aligned block, read through the sparse index). So a
//! proof costs about `log2(n)` stored hashes and one or two blocks of
//! records.
//!
//! Stored nodes are derived data, never trusted over the records: every
//! root and proof is verified before it is returned, against the root the
//! durable head holds (a past size's root by a consistency proof to the
//! head). When that fails, the level files read are rebuilt from their
//! records and the work done again; if it still fails, the answer is a
//! corruption error ([`CorruptionKind::TreeProofRejected`]), never a wrong
//! proof.

use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::error::{Corruption, CorruptionKind, Error, Result};
use crate::format::Structure;
use crate::merkle::{self, MemoryTree, ProveError, SubtreeSource, VerifyError};
use crate::segment::levels::{Loaded, Repair, StoredLevels};
use crate::segment::{Segment, SegmentLevels};
use crate::shared::Shared;
use crate::Hash;

/// Reads the chain hashes of the durable records `[start, end)`, in order.
pub(crate) type ReadHashes<'a> = &'a dyn Fn(u64, u64) -> Result<Vec<Hash>>;

/// Blocks of records' leaf hashes kept by one request: its proof and the
/// checks of its roots touch at most three (the leaf's, and those at the
/// two tree sizes' right edges).
const BLOCKS_KEPT: usize = 4;

/// The root of the tree of the first `size` durable records.
pub(crate) fn tree_root_at(shared: &Shared, read: ReadHashes<'_>, size: u64) -> Result<Hash> {
    attempt(shared, read, |tree| {
        tree.check_size(size)?;
        tree.checked_root(size)
    })
}

/// The inclusion proof of record `seq` in the tree of `size` records.
pub(crate) fn inclusion_proof(
    shared: &Shared,
    read: ReadHashes<'_>,
    seq: u64,
    size: u64,
) -> Result<Vec<Hash>> {
    attempt(shared, read, |tree| {
        tree.check_size(size)?;
        merkle::check_inclusion(seq, size)?;
        let proof = merkle::inclusion_proof(tree, seq, size).map_err(prove_error)?;
        let root = match tree.checked_root(size)? {
            Ok(root) => root,
            Err(rejected) => return Ok(Err(rejected)),
        };
        let leaf = tree.subtree(0, seq)?;
        Ok(merkle::verify_inclusion(seq, size, &leaf, &proof, &root)
            .map(|()| proof)
            .map_err(|cause| Rejected { size, cause }))
    })
}

/// The consistency proof from the tree of `old` records to that of `new`.
pub(crate) fn consistency_proof(
    shared: &Shared,
    read: ReadHashes<'_>,
    old: u64,
    new: u64,
) -> Result<Vec<Hash>> {
    attempt(shared, read, |tree| {
        tree.check_size(new)?;
        merkle::check_consistency(old, new)?;
        let proof = merkle::consistency_proof(tree, old, new).map_err(prove_error)?;
        let roots = (tree.checked_root(old)?, tree.checked_root(new)?);
        let (old_root, new_root) = match roots {
            (Ok(o), Ok(n)) => (o, n),
            (Err(rejected), _) | (_, Err(rejected)) => return Ok(Err(rejected)),
        };
        Ok(
            merkle::verify_consistency(old, new, &old_root, &new_root, &proof)
                .map(|()| proof)
                .map_err(|cause| Rejected { size: new, cause }),
        )
    })
}

/// A result made from the stored tree that did not verify.
#[derive(Debug)]
struct Rejected {
    size: u64,
    cause: VerifyError,
}

/// Runs `work` over the durable tree; if what it made does not verify,
/// rebuilds the level files it read from their records and runs it once
/// more. The head is read once, so that every root is of the same tree.
fn attempt<T>(
    shared: &Shared,
    read: ReadHashes<'_>,
    work: impl Fn(&LogTree<'_>) -> Result<std::result::Result<T, Rejected>>,
) -> Result<T> {
    let head = *shared.head.read();
    // Taken after the head: they hold every record it covers.
    let segments = shared.segments.read().clone();
    let mut repaired = false;
    loop {
        let tree = LogTree {
            shared,
            segments: &segments,
            size: head.next_seq,
            root: head.tree_root,
            read,
            min_level: shared.config.tree_min_level,
            blocks: RefCell::new(Vec::new()),
            used: RefCell::new(Vec::new()),
        };
        let rejected = match work(&tree)? {
            Ok(t) => return Ok(t),
            Err(r) => r,
        };
        if !repaired && tree.repair_used()? {
            repaired = true;
            continue;
        }
        // The tree's last record: where the damage is, is not known.
        return Err(Corruption::new(
            &shared.dir,
            0,
            rejected.size.checked_sub(1),
            CorruptionKind::TreeProofRejected {
                size: rejected.size,
                cause: rejected.cause,
            },
        )
        .into());
    }
}

fn prove_error(e: ProveError<Error>) -> Error {
    match e {
        ProveError::Size(e) => Error::InvalidTreeArguments(e),
        ProveError::Source(e) => e,
    }
}

/// The log's tree at the durable head, as a [`SubtreeSource`].
struct LogTree<'a> {
    shared: &'a Shared,
    segments: &'a [Arc<Segment>],
    /// The durable records: the tree's size at the head.
    size: u64,
    /// The head's root, which every result is checked against.
    root: Hash,
    read: ReadHashes<'a>,
    /// The lowest level stored.
    min_level: u32,
    /// Blocks of leaf hashes read from the records, newest last: each the
    /// tree over an aligned run of `2^min_level` leaves (fewer at the head).
    blocks: RefCell<Vec<(u64, MemoryTree)>>,
    /// The sealed segments (positions in `segments`) whose stored nodes
    /// were read, and the nodes read.
    used: RefCell<Vec<(usize, Arc<StoredLevels>)>>,
}

impl LogTree<'_> {
    fn check_size(&self, size: u64) -> Result<()> {
        if size > self.size {
            return Err(Error::TreeSizeBeyondDurable {
                size,
                durable: self.size,
            });
        }
        Ok(())
    }

    /// The root of the first `size` leaves, checked: the head's own, or one
    /// that a consistency proof to the head verifies.
    fn checked_root(&self, size: u64) -> Result<std::result::Result<Hash, Rejected>> {
        if size == self.size {
            return Ok(Ok(self.root));
        }
        if size == 0 {
            return Ok(Ok(merkle::empty_root()));
        }
        let root = merkle::root_at(self, size)?;
        let proof = merkle::consistency_proof(self, size, self.size).map_err(prove_error)?;
        Ok(
            merkle::verify_consistency(size, self.size, &root, &self.root, &proof)
                .map(|()| root)
                .map_err(|cause| Rejected {
                    size: self.size,
                    cause,
                }),
        )
    }

    /// A stored node: the one at `level`, `index`, whose last leaf is
    /// `last`.
    fn stored(&self, level: u32, index: u64, last: u64) -> Result<Hash> {
        let at = self
            .segments
            .partition_point(|s| s.first_seq <= last)
            .checked_sub(1)
            .ok_or(Error::NotFound {
                seq: last,
                head: self.size.checked_sub(1),
            })?;
        let seg = &self.segments[at];
        let found = match &seg.levels {
            SegmentLevels::Live(nodes) => nodes.read().node(level, index),
            SegmentLevels::Sealed(sealed) => {
                let (stored, how) =
                    sealed.get(&*self.shared.storage, &self.shared.dir, seg, self.min_level)?;
                if how == Loaded::Rebuilt {
                    self.count_rebuilt();
                }
                let found = stored.node(level, index);
                let mut used = self.used.borrow_mut();
                if !used.iter().any(|(u, _)| *u == at) {
                    used.push((at, stored));
                }
                found
            }
        };
        found.ok_or_else(|| {
            Corruption::new(
                &seg.path,
                0,
                Some(last),
                CorruptionKind::BadField {
                    what: Structure::LevelFile,
                    field: "nodes",
                    expected: format!("node {index} of level {level}"),
                    found: "no such node".into(),
                },
            )
            .into()
        })
    }

    /// A node below `min_level`, from its block of records.
    fn computed(&self, level: u32, index: u64) -> Result<Hash> {
        let block = (index << level) >> self.min_level;
        let rel = index - (block << (self.min_level - level));
        let mut blocks = self.blocks.borrow_mut();
        let at = match blocks.iter().position(|(b, _)| *b == block) {
            Some(at) => at,
            None => {
                let start = block << self.min_level;
                let end = (start + (1 << self.min_level)).min(self.size);
                let mut t = MemoryTree::new();
                for h in (self.read)(start, end)? {
                    t.push(merkle::leaf_hash(&h));
                }
                if blocks.len() == BLOCKS_KEPT {
                    blocks.remove(0);
                }
                blocks.push((block, t));
                blocks.len() - 1
            }
        };
        blocks[at]
            .1
            .subtree(level, rel)
            .map_err(|_| Error::NotFound {
                seq: (index + 1) << level,
                head: self.size.checked_sub(1),
            })
    }

    /// Rebuilds from their records the level files this tree read; whether
    /// any differed from what was read.
    fn repair_used(&self) -> Result<bool> {
        let mut differed = false;
        for (at, seen) in self.used.borrow().iter() {
            let seg = &self.segments[*at];
            if let SegmentLevels::Sealed(sealed) = &seg.levels {
                let storage = &*self.shared.storage;
                match sealed.repair(storage, &self.shared.dir, seg, self.min_level, seen)? {
                    Repair::AsStored => {}
                    Repair::Rebuilt => {
                        self.count_rebuilt();
                        differed = true;
                    }
                    Repair::ReplacedMeanwhile => differed = true,
                }
            }
        }
        Ok(differed)
    }

    fn count_rebuilt(&self) {
        self.shared
            .stats
            .level_files_rebuilt
            .fetch_add(1, Ordering::Relaxed);
    }
}

impl SubtreeSource for LogTree<'_> {
    type Error = Error;

    fn subtree(&self, level: u32, index: u64) -> Result<Hash> {
        // Only complete subtrees of durable leaves exist.
        let end = (level < 64)
            .then(|| index.checked_add(1)?.checked_mul(1 << level))
            .flatten()
            .filter(|&end| end <= self.size)
            .ok_or(Error::NotFound {
                seq: index.saturating_add(1).saturating_mul(1 << level.min(63)) - 1,
                head: self.size.checked_sub(1),
            })?;
        if level >= self.min_level {
            self.stored(level, index, end - 1)
        } else {
            self.computed(level, index)
        }
    }
}
