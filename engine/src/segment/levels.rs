//! The Merkle tree's stored upper nodes of one segment (see
//! `format::levels`): gathered by the writer in memory for the active
//! segment; for a sealed segment, its level file, mapped on first use and
//! rebuilt from the segment's records when it is missing, invalid, or does
//! not agree with them.
//!
//! Recovery never reads level files: opening a log costs what it did before
//! they existed, and the first proof that needs a sealed segment's nodes
//! pays for loading (or rebuilding) its file.

use std::path::Path;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::{levels_file_name, walk, write_derived_file, Segment, NO_ROOT};
use crate::error::{Corruption, CorruptionKind, Error, Result};
use crate::format::footer::Footer;
use crate::format::levels::{self, LevelNodes, LevelsLayout};
use crate::format::Structure;
use crate::merkle::{self, Frontier};
use crate::storage::{FileBytes, Storage};
use crate::Hash;

/// Where a segment's stored nodes are.
#[derive(Debug)]
pub(crate) enum SegmentLevels {
    /// The active segment: the writer adds the nodes each group completes,
    /// before the group can become durable.
    Live(Arc<RwLock<LevelNodes>>),
    /// A sealed segment: its level file, loaded on first use.
    Sealed(SealedLevels),
}

/// A sealed segment's level file, once loaded, and what rebuilding it
/// needs beside the segment's records.
#[derive(Debug)]
pub(crate) struct SealedLevels {
    /// The tree before the segment's first record: a rebuild pushes the
    /// segment's leaves onto it.
    tree_start: Frontier,
    /// Held while loading or rebuilding, so that two proofs do not both
    /// write the file.
    loaded: Mutex<Option<Arc<StoredLevels>>>,
}

/// A level file's bytes (mapped, or built in memory by a rebuild) and
/// where its nodes are.
#[derive(Debug)]
pub(crate) struct StoredLevels {
    bytes: FileBytes,
    layout: LevelsLayout,
}

impl StoredLevels {
    /// The node at `level`, `index`, when the file holds it.
    pub fn node(&self, level: u32, index: u64) -> Option<Hash> {
        self.layout.node(&self.bytes, level, index)
    }

    fn built(bytes: Vec<u8>) -> Result<StoredLevels, CorruptionKind> {
        let layout = levels::decode(&bytes)?;
        Ok(StoredLevels {
            bytes: FileBytes::Owned(bytes),
            layout,
        })
    }
}

/// How a sealed segment's nodes were had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Loaded {
    /// Already in memory, or read from a valid level file.
    AsStored,
    /// Rebuilt from the records: the file was missing or invalid.
    Rebuilt,
}

/// What [`SealedLevels::repair`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Repair {
    /// The records give the nodes that were read: they were not the fault.
    AsStored,
    /// The records give other nodes: they replace those read.
    Rebuilt,
    /// Another proof had already replaced the nodes read.
    ReplacedMeanwhile,
}

impl SealedLevels {
    /// Nothing loaded yet, for a segment whose first record follows the
    /// tree `tree_start`.
    pub fn new(tree_start: Frontier) -> SealedLevels {
        SealedLevels {
            tree_start,
            loaded: Mutex::new(None),
        }
    }

    /// The segment's nodes at `min_level` and up: from memory, else from
    /// its level file, else rebuilt from its records (and the file written
    /// anew).
    pub fn get(
        &self,
        storage: &dyn Storage,
        dir: &Path,
        seg: &Segment,
        min_level: u32,
    ) -> Result<(Arc<StoredLevels>, Loaded)> {
        let mut loaded = self.loaded.lock();
        if let Some(l) = &*loaded {
            return Ok((l.clone(), Loaded::AsStored));
        }
        let footer = sealed_footer(seg)?;
        let (l, how) = match load_levels_file(storage, dir, footer, min_level)? {
            Some(l) => (l, Loaded::AsStored),
            None => (
                self.rebuild(storage, dir, seg, footer, min_level)?,
                Loaded::Rebuilt,
            ),
        };
        let l = Arc::new(l);
        *loaded = Some(l.clone());
        Ok((l, how))
    }

    /// After a proof made from `seen` (what [`get`](Self::get) gave) did
    /// not verify: rebuilds the nodes from the records and, if they differ
    /// from `seen`, replaces them (in memory and on disk).
    pub fn repair(
        &self,
        storage: &dyn Storage,
        dir: &Path,
        seg: &Segment,
        min_level: u32,
        seen: &Arc<StoredLevels>,
    ) -> Result<Repair> {
        let mut loaded = self.loaded.lock();
        if loaded.as_ref().is_some_and(|now| !Arc::ptr_eq(now, seen)) {
            return Ok(Repair::ReplacedMeanwhile);
        }
        let footer = sealed_footer(seg)?;
        let rebuilt = self.rebuild(storage, dir, seg, footer, min_level)?;
        if *seen.bytes == *rebuilt.bytes {
            return Ok(Repair::AsStored);
        }
        *loaded = Some(Arc::new(rebuilt));
        Ok(Repair::Rebuilt)
    }

    /// The nodes the segment's records complete, recomputed from them (the
    /// walk checks every record and the seal on the way), checked against
    /// the footer's root and written to the level file.
    fn rebuild(
        &self,
        storage: &dyn Storage,
        dir: &Path,
        seg: &Segment,
        footer: &Footer,
        min_level: u32,
    ) -> Result<StoredLevels> {
        let bytes = seg
            .file
            .read_all()
            .map_err(|e| Error::io("read", &seg.path, e))?;
        let mut tree = self.tree_start.clone();
        assert_eq!(
            tree.size(),
            seg.first_seq,
            "a segment's level nodes are rebuilt from the tree before its first record"
        );
        let mut nodes = LevelNodes::new(seg.first_seq, min_level);
        let place = walk::Place {
            name_seq: Some(seg.first_seq),
            may_be_open: false,
            // The time order across segments was checked when the log was
            // opened; the records' own order is checked here.
            prev_created_at: 0,
        };
        let walked = walk::segment(&seg.path, &bytes, place, |_, r| {
            tree.push_with(merkle::leaf_hash(&r.hash), |level, index, h| {
                nodes.record(level, index, h)
            })
        });
        walked.end.map_err(walk::damage_error)?;
        let corrupt = |kind| {
            Error::from(Corruption::new(
                &seg.path,
                footer.records_end,
                Some(footer.last_seq),
                kind,
            ))
        };
        if tree.size() != footer.last_seq + 1 {
            return Err(corrupt(CorruptionKind::Mismatch {
                what: Structure::SegmentFooter,
                field: "last_seq",
                expected: format!(
                    "{} (the tree before the segment and its records)",
                    tree.size() - 1
                ),
                found: footer.last_seq.to_string(),
            }));
        }
        if footer.merkle_root != NO_ROOT && tree.root() != footer.merkle_root {
            return Err(corrupt(CorruptionKind::Mismatch {
                what: Structure::SegmentFooter,
                field: "merkle_root",
                expected: crate::error::hex(&tree.root()),
                found: crate::error::hex(&footer.merkle_root),
            }));
        }
        let file = nodes.encode(tree.size());
        // Derived data: if it cannot be written (a full disk), the nodes
        // serve from memory and the next open's first proof rebuilds them
        // again. A failure here is not the log's: it does not poison it.
        let name = levels_file_name(seg.first_seq);
        if write_derived_file(storage, dir, &name, &file).is_ok() {
            let _ = storage.sync_dir(dir);
        }
        let path = dir.join(&name);
        StoredLevels::built(file)
            .map_err(|kind| Error::from(Corruption::new(&path, 0, Some(seg.first_seq), kind)))
    }
}

fn sealed_footer(seg: &Segment) -> Result<&Footer> {
    seg.footer.as_ref().ok_or_else(|| {
        Error::from(Corruption::new(
            &seg.path,
            0,
            Some(seg.first_seq),
            CorruptionKind::BadField {
                what: Structure::SegmentFooter,
                field: "footer",
                expected: "a sealed segment's".into(),
                found: "none".into(),
            },
        ))
    })
}

/// A sealed segment's level file, when it is there, valid, and for the
/// segment's leaves from `min_level` up; `None` otherwise (the caller
/// rebuilds it).
fn load_levels_file(
    storage: &dyn Storage,
    dir: &Path,
    footer: &Footer,
    min_level: u32,
) -> Result<Option<StoredLevels>> {
    let path = dir.join(levels_file_name(footer.first_seq));
    let file = match storage.open_read(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("open", &path, e)),
    };
    let bytes = file.read_all().map_err(|e| Error::io("map", &path, e))?;
    let Ok(layout) = levels::decode(&bytes) else {
        return Ok(None);
    };
    let agrees = layout.first_seq == footer.first_seq
        && layout.tree_size == footer.last_seq + 1
        && layout.min_level == min_level;
    Ok(agrees.then_some(StoredLevels { bytes, layout }))
}
