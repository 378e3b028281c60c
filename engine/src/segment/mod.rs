//! Segments: naming, the in-memory handle, creation and sealing.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format;
use crate::format::footer::{Footer, FOOTER_LEN};
use crate::format::header::SegmentHeader;
use crate::format::index::IndexKind;
use crate::format::levels::LevelNodes;
use crate::merkle::Frontier;
use crate::storage::{write_all_at, Storage, StorageFile};
use crate::Hash;

pub(crate) mod cursor;
pub(crate) mod index;
pub(crate) mod levels;
pub mod walk;

pub(crate) use cursor::Cursor;
pub(crate) use index::{load_sealed_index, LiveIndex, SegmentIndex};
pub(crate) use levels::SegmentLevels;

/// Digits in a segment's file name: `u64::MAX` has 20, and zero padding
/// makes names sort in seq order.
const NAME_DIGITS: usize = 20;
/// Suffix of a segment file.
pub const SEGMENT_SUFFIX: &str = ".seg";
/// Suffix of a segment file still being created (header not yet durable
/// under its final name); removed by recovery.
pub const TMP_SUFFIX: &str = ".tmp";

/// `00000000000000000042.seg` for a segment whose first seq is 42.
pub fn segment_file_name(first_seq: u64) -> String {
    format!("{first_seq:0NAME_DIGITS$}{SEGMENT_SUFFIX}")
}

/// The index file names beside a segment: `.idx` and `.tix`.
pub fn index_file_name(first_seq: u64, kind: IndexKind) -> String {
    let ext = match kind {
        IndexKind::Offset => "idx",
        IndexKind::Time => "tix",
    };
    format!("{first_seq:0NAME_DIGITS$}.{ext}")
}

/// The tree file beside a segment: `.tree` (see `format::tree`).
pub fn tree_file_name(first_seq: u64) -> String {
    format!("{first_seq:0NAME_DIGITS$}.tree")
}

/// The level file beside a segment: `.lvl` (see `format::levels`).
pub fn levels_file_name(first_seq: u64) -> String {
    format!("{first_seq:0NAME_DIGITS$}.lvl")
}

/// The first seq named by a segment file name, if `name` is one.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != NAME_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A segment as the log holds it: its file and index, the Merkle tree's
/// upper nodes its records complete, and its footer once sealed.
#[derive(Debug)]
pub(crate) struct Segment {
    pub first_seq: u64,
    pub path: PathBuf,
    pub file: Arc<dyn StorageFile>,
    pub index: SegmentIndex,
    pub levels: SegmentLevels,
    pub footer: Option<Footer>,
}

/// The active segment as recovery leaves it for the writer.
#[derive(Debug)]
pub(crate) struct ActiveState {
    pub first_seq: u64,
    pub path: PathBuf,
    pub file: Arc<dyn StorageFile>,
    /// Offset after the last record.
    pub end: u64,
    pub live: LiveIndex,
    pub first_created_at: Option<u64>,
    /// The Merkle tree before the segment's first record.
    pub tree_start: Frontier,
    /// The tree's nodes at `tree_min_level` and up that its records
    /// complete.
    pub levels: LevelNodes,
}

/// Creates a segment file and makes it durable under its final name, in an
/// order that leaves no half-made segment behind:
///
/// 1. create `NAME.seg.tmp` (or take the pre-written `spare`) and write the
///    header: a crash now leaves only a temporary file, which recovery
///    removes;
/// 2. `fdatasync` it: the header is durable before the file has its name;
/// 3. rename it to `NAME.seg`;
/// 4. `fsync` the directory: the name is durable before any record in the
///    segment can be acknowledged.
pub(crate) fn create_segment(
    storage: &dyn Storage,
    dir: &Path,
    header: &SegmentHeader,
    spare: Option<(PathBuf, Arc<dyn StorageFile>)>,
) -> Result<(PathBuf, Arc<dyn StorageFile>)> {
    let name = segment_file_name(header.first_seq);
    let path = dir.join(&name);
    // Never replace a segment: the rename below would.
    let exists = storage
        .list(dir)
        .map_err(|e| Error::io("list", dir, e))?
        .contains(&name);
    if exists {
        return Err(Error::io(
            "create segment",
            &path,
            std::io::ErrorKind::AlreadyExists.into(),
        ));
    }
    // A pre-written spare (see `prepare_spare`) is used as it is: its
    // header is written over its first zeros.
    let (tmp, file) = match spare {
        Some(spare) => spare,
        None => {
            let tmp = dir.join(format!("{name}{TMP_SUFFIX}"));
            remove_stale(storage, &tmp)?;
            let file = storage
                .create_new(&tmp)
                .map_err(|e| Error::io("create", &tmp, e))?;
            (tmp, file)
        }
    };
    write_all_at(&*file, &header.encode(), 0).map_err(|e| Error::io("write header", &tmp, e))?;
    file.sync_data()
        .map_err(|e| Error::io("fdatasync header", &tmp, e))?;
    storage
        .rename(&tmp, &path)
        .map_err(|e| Error::io("rename", &tmp, e))?;
    storage
        .sync_dir(dir)
        .map_err(|e| Error::io("fsync directory", dir, e))?;
    Ok((path, file))
}

/// Removes a temporary file left by an earlier attempt, if there is one.
fn remove_stale(storage: &dyn Storage, path: &Path) -> Result<()> {
    match storage.remove(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove stale", path, e)),
    }
}

/// The file a log's pre-writer fills with zeros for the next segment.
/// It is a temporary file: recovery removes it like any other.
pub(crate) const SPARE_NAME: &str = "next-segment.seg.tmp";

/// Fills `SPARE_NAME` in `dir` with `len` zero bytes and syncs it. Gives
/// up as soon as `cancelled` says so (`Ok(None)`). On cancellation and on
/// any error the file is removed: a partial spare would keep its disk
/// space, all of what was left when the disk filled up, and so turn a
/// pre-writer failure (which must cost speed only) into the log's own
/// `ENOSPC`.
pub(crate) fn prepare_spare(
    storage: &dyn Storage,
    dir: &Path,
    len: u64,
    cancelled: &dyn Fn() -> bool,
) -> Result<Option<(PathBuf, Arc<dyn StorageFile>)>> {
    let path = dir.join(SPARE_NAME);
    remove_stale(storage, &path)?;
    let file = storage
        .create_new(&path)
        .map_err(|e| Error::io("create", &path, e))?;
    match fill_with_zeros(&*file, &path, len, cancelled) {
        Ok(true) => Ok(Some((path, file))),
        outcome => {
            drop(file);
            // If even the removal fails, the next attempt (or the next
            // open) removes the file as a stale temporary one.
            let _ = remove_stale(storage, &path);
            outcome.map(|_| None)
        }
    }
}

/// Writes `len` zeros to `file` and syncs them; `Ok(false)` if cancelled
/// first.
fn fill_with_zeros(
    file: &dyn StorageFile,
    path: &Path,
    len: u64,
    cancelled: &dyn Fn() -> bool,
) -> Result<bool> {
    // At most 1 MiB at a time, and no more than the file needs.
    let zeros = vec![0u8; len.min(1 << 20) as usize];
    let mut at = 0u64;
    while at < len {
        if cancelled() {
            return Ok(false);
        }
        let n = (len - at).min(zeros.len() as u64) as usize;
        write_all_at(file, &zeros[..n], at).map_err(|e| Error::io("pre-write", path, e))?;
        at += n as u64;
    }
    file.sync_data()
        .map_err(|e| Error::io("fdatasync pre-written", path, e))?;
    Ok(true)
}

/// Writes an index file beside its segment: to a temporary name, synced,
/// then renamed over any old one. The caller syncs the directory.
pub(crate) fn write_index_file(
    storage: &dyn Storage,
    dir: &Path,
    first_seq: u64,
    kind: IndexKind,
    bytes: &[u8],
) -> Result<PathBuf> {
    let path = dir.join(index_file_name(first_seq, kind));
    let tmp = dir.join(format!("{}{TMP_SUFFIX}", index_file_name(first_seq, kind)));
    remove_stale(storage, &tmp)?;
    write_new_file(storage, &tmp, bytes)?;
    storage
        .rename(&tmp, &path)
        .map_err(|e| Error::io("rename", &tmp, e))?;
    Ok(path)
}

/// Creates a file that must not exist, writes `bytes` and syncs them. The
/// caller syncs the directory.
pub(crate) fn write_new_file(storage: &dyn Storage, path: &Path, bytes: &[u8]) -> Result<()> {
    let file = storage
        .create_new(path)
        .map_err(|e| Error::io("create", path, e))?;
    write_all_at(&*file, bytes, 0).map_err(|e| Error::io("write", path, e))?;
    file.sync_data()
        .map_err(|e| Error::io("fdatasync", path, e))
}

/// Writes a sealed segment's derived file `name`: to a temporary name,
/// synced, renamed over any old one, made read-only. The caller syncs the
/// directory afterwards.
pub(crate) fn write_derived_file(
    storage: &dyn Storage,
    dir: &Path,
    name: &str,
    bytes: &[u8],
) -> Result<()> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}{TMP_SUFFIX}"));
    remove_stale(storage, &tmp)?;
    write_new_file(storage, &tmp, bytes)?;
    storage
        .rename(&tmp, &path)
        .map_err(|e| Error::io("rename", &tmp, e))?;
    storage
        .set_read_only(&path)
        .map_err(|e| Error::io("make read-only", &path, e))
}

/// Writes a sealed segment's tree file (the frontier at its end) and makes
/// it read-only. The caller syncs the directory afterwards.
pub(crate) fn write_tree_file(
    storage: &dyn Storage,
    dir: &Path,
    first_seq: u64,
    frontier: &Frontier,
) -> Result<()> {
    let bytes = format::tree::encode(first_seq, frontier);
    write_derived_file(storage, dir, &tree_file_name(first_seq), &bytes)
}

/// A sealed segment's tree file, when it is there and agrees with the
/// footer (its segment, its size, and the root, when the footer records
/// one); `None` otherwise (derived data: the caller rebuilds it from the
/// records).
pub(crate) fn load_tree_file(
    storage: &dyn Storage,
    dir: &Path,
    footer: &Footer,
) -> Result<Option<Frontier>> {
    let path = dir.join(tree_file_name(footer.first_seq));
    let file = match storage.open_read(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("open", &path, e)),
    };
    let bytes = file.read_all().map_err(|e| Error::io("map", &path, e))?;
    let Ok(t) = format::tree::decode(&bytes) else {
        return Ok(None);
    };
    let agrees = t.first_seq == footer.first_seq
        && t.frontier.size() == footer.last_seq + 1
        && (footer.merkle_root == NO_ROOT || t.frontier.root() == footer.merkle_root);
    Ok(agrees.then_some(t.frontier))
}

/// A footer's `merkle_root` when the segment was sealed before the log kept
/// a Merkle tree (no SHA-256 output is all zeros in practice).
pub const NO_ROOT: Hash = [0; 32];

/// Writes both index files of a sealed segment and makes them read-only.
/// The caller syncs the directory afterwards.
pub(crate) fn write_indexes(
    storage: &dyn Storage,
    dir: &Path,
    first_seq: u64,
    live: &LiveIndex,
) -> Result<()> {
    for kind in [IndexKind::Offset, IndexKind::Time] {
        let bytes = live.encode_file(kind, first_seq);
        let path = write_index_file(storage, dir, first_seq, kind, &bytes)?;
        storage
            .set_read_only(&path)
            .map_err(|e| Error::io("make read-only", &path, e))?;
    }
    Ok(())
}

/// Seals a segment whose records are all durable, in the order
/// docs/durability.md argues for:
///
/// 1. write the footer after the last record;
/// 2. `fdatasync`: the footer is durable (a crash before this leaves a torn
///    footer, which recovery cuts as a torn tail: the segment is active
///    again and is sealed anew);
/// 3. write both index files, the tree file and the level file, each
///    synced before its rename (a crash leaves them missing or stale:
///    recovery rebuilds the index and tree files from the records, and the
///    first proof that needs the level file rebuilds it);
/// 4. make the segment read-only (durable through the inode's fsync);
/// 5. `fsync` the directory: the index names are durable.
#[allow(clippy::too_many_arguments)]
pub(crate) fn seal_segment(
    storage: &dyn Storage,
    dir: &Path,
    path: &Path,
    file: &dyn StorageFile,
    footer: &Footer,
    live: &LiveIndex,
    tree: &Frontier,
    levels: &LevelNodes,
) -> Result<()> {
    assert!(footer.record_count > 0, "an empty segment is never sealed");
    assert_eq!(
        tree.size(),
        footer.last_seq + 1,
        "the tree sealed with a segment ends at its last record"
    );
    assert_eq!(
        levels.first_seq(),
        footer.first_seq,
        "the level nodes sealed with a segment are its own"
    );
    // Encoded (and so checked complete) before anything is written.
    let level_file = levels.encode(tree.size());
    // A pre-written segment: cut the unused zeros first, keeping room for
    // the footer. A crash before the footer's sync leaves zeros or a torn
    // footer after the records; either way recovery finds the segment
    // active.
    let sealed_len = footer.records_end + FOOTER_LEN as u64;
    if file.len().map_err(|e| Error::io("stat", path, e))? > sealed_len {
        file.set_len(sealed_len)
            .map_err(|e| Error::io("truncate pre-written space", path, e))?;
    }
    write_all_at(file, &footer.encode(), footer.records_end)
        .map_err(|e| Error::io("write footer", path, e))?;
    file.sync_data()
        .map_err(|e| Error::io("fdatasync footer", path, e))?;
    write_indexes(storage, dir, footer.first_seq, live)?;
    write_tree_file(storage, dir, footer.first_seq, tree)?;
    let name = levels_file_name(footer.first_seq);
    write_derived_file(storage, dir, &name, &level_file)?;
    storage
        .set_read_only(path)
        .map_err(|e| Error::io("make read-only", path, e))?;
    storage
        .sync_dir(dir)
        .map_err(|e| Error::io("fsync directory", dir, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::FsStorage;
    use crate::testing::{FaultPlan, FaultyStorage, Op};

    #[test]
    fn a_spare_that_fails_or_is_cancelled_is_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let faulty = FaultyStorage::new(Arc::new(FsStorage));
        // The second 1 MiB write of zeros fills the disk half way through.
        faulty.set_plan(Some(FaultPlan {
            short_write: true,
            errno: 28, // ENOSPC: its raw OS error is io::ErrorKind::StorageFull
            ..FaultPlan::eio(Op::Write, 2)
        }));
        let spare = dir.path().join(SPARE_NAME);
        let err =
            prepare_spare(&faulty, dir.path(), 3 << 20, &|| false).expect_err("the disk is full");
        assert!(err.is_no_space(), "{err}");
        assert_eq!(faulty.failures(), 1);
        assert!(!spare.exists(), "the partial spare was left behind");

        // A failed sync removes it too.
        faulty.set_plan(Some(FaultPlan::eio(Op::Sync, 1)));
        let err = prepare_spare(&faulty, dir.path(), 4096, &|| false).expect_err("sync fails");
        assert!(
            matches!(
                &err,
                Error::Io {
                    op: "fdatasync pre-written",
                    ..
                }
            ),
            "{err}"
        );
        assert!(!spare.exists(), "the unsynced spare was left behind");

        // Cancelled before the first write.
        faulty.set_plan(None);
        let none = prepare_spare(&faulty, dir.path(), 4096, &|| true).expect("cancel");
        assert!(none.is_none());
        assert!(!spare.exists(), "the cancelled spare was left behind");

        // And a complete one stays, synced, of the asked length.
        let (path, file) = prepare_spare(&faulty, dir.path(), 4096, &|| false)
            .expect("prepare")
            .expect("not cancelled");
        assert_eq!(path, spare);
        assert_eq!(file.len().expect("len"), 4096);
        assert_eq!(std::fs::metadata(&spare).expect("stat").len(), 4096);
    }

    #[test]
    fn names_sort_and_round_trip() {
        assert_eq!(segment_file_name(42), "00000000000000000042.seg");
        assert_eq!(parse_segment_name("00000000000000000042.seg"), Some(42));
        assert_eq!(
            parse_segment_name(&segment_file_name(u64::MAX)),
            Some(u64::MAX)
        );
        assert_eq!(parse_segment_name("42.seg"), None);
        assert_eq!(parse_segment_name("00000000000000000042.seg.tmp"), None);
        assert_eq!(
            index_file_name(7, IndexKind::Time),
            "00000000000000000007.tix"
        );
        assert!(segment_file_name(9) < segment_file_name(10));
    }
}
