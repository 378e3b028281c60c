//! Opening a log directory: checking what is there, cutting a torn tail, and
//! refusing everything else.
//!
//! Recovery runs in two phases so that a refusal never modifies the disk:
//! first every check (segment names, headers, links, footers, the last
//! segment's records), then the repairs that are allowed (removing temporary
//! files, cutting a torn tail, rebuilding derived index files, finishing an
//! interrupted seal, creating the active segment).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::chain::{self, ChainState};
use crate::config::Config;
use crate::error::{Corruption, CorruptionKind, Error, Result};
use crate::format::footer::{Footer, FOOTER_LEN};
use crate::format::header::{SegmentHeader, HEADER_LEN};
use crate::format::levels::LevelNodes;
use crate::format::{LogId, Structure};
use crate::merkle::{self, Frontier};
use crate::segment::levels::SealedLevels;
use crate::segment::{
    self, load_sealed_index, load_tree_file, walk, ActiveState, LiveIndex, Segment, SegmentLevels,
    NO_ROOT,
};
use crate::storage::{read_exact_at, write_all_at, Storage, StorageFile};

/// What recovery found and did, for logs and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// True when the directory held no log and a new one was created.
    pub created: bool,
    /// The torn tail cut from the last segment, if there was one.
    pub cut: Option<TailCut>,
    /// Temporary files of interrupted creations that were removed.
    pub removed_temp_files: Vec<PathBuf>,
    /// Segments whose index files were missing or inconsistent and were
    /// rebuilt from the records.
    pub rebuilt_indexes: Vec<PathBuf>,
    /// Sealed segments whose tree files were missing or did not agree with
    /// their footers and were rebuilt from the records.
    pub rebuilt_trees: Vec<PathBuf>,
    /// Sealed segments whose seal was interrupted and was finished.
    pub finished_seals: Vec<PathBuf>,
    /// The spare for an active segment recovery created could not be
    /// prepared (it was created plain: speed, not data).
    pub spare_failed: bool,
}

/// A torn tail cut from the last segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailCut {
    /// The segment that was cut.
    pub segment: PathBuf,
    /// The offset it was cut back to: the end of the last whole record.
    pub offset: u64,
    /// How many bytes were cut.
    pub len: u64,
    /// Where the cut bytes were kept for inspection.
    pub saved_to: PathBuf,
    /// Why the first cut byte did not start a valid record.
    pub cause: CorruptionKind,
}

/// An opened log's starting point.
#[derive(Debug)]
pub(crate) struct Recovered {
    pub log_id: LogId,
    pub sealed: Vec<Segment>,
    pub active: ActiveState,
    pub chain: ChainState,
    /// The Merkle tree over every record found.
    pub tree: Frontier,
    pub report: RecoveryReport,
}

/// A sealed segment as checked in the first phase.
struct CheckedSealed {
    path: PathBuf,
    file: Arc<dyn StorageFile>,
    footer: Footer,
    /// The index rebuilt from the records (in phase 1, read-only), when the
    /// index files are missing or inconsistent.
    rebuild_index: Option<LiveIndex>,
    /// The tree's frontier at the segment's end, recomputed from the
    /// records, when its tree file is missing or does not agree.
    rebuild_tree: Option<Frontier>,
    /// The file is still writable (the seal was interrupted).
    finish_seal: bool,
    /// The tree before the segment's first record (for its level file,
    /// which only a proof reads or rebuilds).
    tree_start: Frontier,
}

/// The last, unsealed segment as checked in the first phase.
struct CheckedActive {
    path: PathBuf,
    header: SegmentHeader,
    bytes: Vec<u8>,
    live: LiveIndex,
    /// Offset after the last valid record.
    end: u64,
    /// Where a torn tail starts, and why its first bytes are not a record.
    tail: Option<(u64, CorruptionKind)>,
    /// The tree before the segment's first record.
    tree_start: Frontier,
    /// The tree's nodes at `tree_min_level` and up that its records
    /// complete.
    levels: LevelNodes,
}

/// Opens a segment and checks its header against the log (the walk's
/// header rule, on the header's bytes only).
fn read_header(
    storage: &dyn Storage,
    path: &Path,
    name_seq: u64,
) -> Result<(Arc<dyn StorageFile>, u64, SegmentHeader)> {
    let file = storage
        .open_read(path)
        .map_err(|e| Error::io("open", path, e))?;
    let len = file.len().map_err(|e| Error::io("stat", path, e))?;
    let mut buf = [0u8; HEADER_LEN];
    let n = (len as usize).min(HEADER_LEN);
    read_exact_at(&*file, &mut buf[..n], 0).map_err(|e| Error::io("read header", path, e))?;
    let header = walk::header(path, &buf[..n], Some(name_seq)).map_err(Error::Corruption)?;
    Ok((file, len, header))
}

/// Whether a segment of length `len` is sealed (the walk's seal rule, on
/// the footer's bytes only).
fn read_seal(
    file: &dyn StorageFile,
    path: &Path,
    len: u64,
    first_seq: u64,
) -> Result<Result<Footer, CorruptionKind>> {
    let mut buf = [0u8; FOOTER_LEN];
    // Too short to hold a footer: the seal rule says why without reading.
    if len >= (HEADER_LEN + FOOTER_LEN) as u64 {
        let at = len - FOOTER_LEN as u64;
        read_exact_at(file, &mut buf, at).map_err(|e| Error::io("read footer", path, e))?;
    }
    Ok(walk::seal(len, &buf, first_seq))
}

/// Builds a sealed segment's index from its records, which the walk checks
/// on the way (a rebuild never indexes damaged data).
fn rebuild_index(
    file: &dyn StorageFile,
    path: &Path,
    first_seq: u64,
    prev_created_at: u64,
    interval: u32,
) -> Result<LiveIndex> {
    let bytes = file.read_all().map_err(|e| Error::io("read", path, e))?;
    let mut live = LiveIndex::default();
    let place = walk::Place {
        name_seq: Some(first_seq),
        may_be_open: false,
        prev_created_at,
    };
    let walked = walk::segment(path, &bytes, place, |pos, r| {
        live.observe((r.seq - first_seq) as u32, pos, r.created_at, interval)
    });
    walked.end.map_err(walk::damage_error)?;
    Ok(live)
}

/// The tree's frontier `tree` (at the segment's first seq) grown by the
/// records of a sealed segment, which the walk checks on the way.
fn grow_tree(
    file: &dyn StorageFile,
    path: &Path,
    first_seq: u64,
    prev_created_at: u64,
    mut tree: Frontier,
) -> Result<Frontier> {
    let bytes = file.read_all().map_err(|e| Error::io("read", path, e))?;
    let place = walk::Place {
        name_seq: Some(first_seq),
        may_be_open: false,
        prev_created_at,
    };
    let walked = walk::segment(path, &bytes, place, |_, r| {
        tree.push(merkle::leaf_hash(&r.hash))
    });
    walked.end.map_err(walk::damage_error)?;
    Ok(tree)
}

/// With `prewrite_segments`, a spare for an active segment that recovery
/// creates (a new log's first, or the successor of a segment sealed just
/// before a crash), prepared here and now: without it that segment would
/// sync as a growing file until its roll. A failure costs speed only: the
/// segment is then created plain.
fn first_spare(
    storage: &dyn Storage,
    dir: &Path,
    config: &Config,
    report: &mut RecoveryReport,
) -> Option<(PathBuf, Arc<dyn StorageFile>)> {
    if !config.prewrite_segments {
        return None;
    }
    match segment::prepare_spare(storage, dir, config.segment_size, &|| false) {
        Ok(spare) => spare,
        Err(_) => {
            report.spare_failed = true;
            None
        }
    }
}

/// A new random log identity.
fn new_log_id(dir: &Path) -> LogId {
    let mut id = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        if f.read_exact(&mut id).is_ok() {
            return id;
        }
    }
    // No entropy device: hash what distinguishes this creation.
    let seed = format!(
        "{:?} {} {}",
        std::time::SystemTime::now(),
        std::process::id(),
        dir.display()
    );
    let h = chain::step(&[0; 32], 0, 0, 1, seed.as_bytes());
    id.copy_from_slice(&h[..16]);
    id
}

fn remove_if_exists(storage: &dyn Storage, path: &Path) -> Result<()> {
    match storage.remove(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove", path, e)),
    }
}

/// Opens (or creates) the log in `dir`.
pub(crate) fn recover(storage: &dyn Storage, dir: &Path, config: &Config) -> Result<Recovered> {
    storage
        .create_dir_all(dir)
        .map_err(|e| Error::io("create directory", dir, e))?;
    let names = storage.list(dir).map_err(|e| Error::io("list", dir, e))?;
    let mut seqs: Vec<u64> = names
        .iter()
        .filter_map(|n| segment::parse_segment_name(n))
        .collect();
    seqs.sort_unstable();
    let temps: Vec<PathBuf> = names
        .iter()
        .filter(|n| n.ends_with(segment::TMP_SUFFIX))
        .map(|n| dir.join(n))
        .collect();
    let mut report = RecoveryReport::default();

    if seqs.is_empty() {
        // Index files or cut bytes without any segment: the segments were
        // removed. Never start a new log over the remains of an old one.
        if let Some(n) = names.iter().find(|n| {
            n.ends_with(".idx")
                || n.ends_with(".tix")
                || n.ends_with(".tree")
                || n.ends_with(".lvl")
                || n.contains(".seg.cut-")
        }) {
            return Err(Corruption::new(
                &dir.join(n),
                0,
                Some(0),
                CorruptionKind::MissingSegment {
                    expected_first_seq: 0,
                    found: format!("no segment files, but {n} is there"),
                },
            )
            .into());
        }
        for t in &temps {
            remove_if_exists(storage, t)?;
        }
        report.removed_temp_files = temps;
        let log_id = config.log_id.unwrap_or_else(|| new_log_id(dir));
        let header = SegmentHeader {
            log_id,
            first_seq: 0,
            created_at: config.clock.now_nanos(),
            prev_hash: chain::genesis(&log_id),
        };
        let spare = first_spare(storage, dir, config, &mut report);
        let (path, _) = segment::create_segment(storage, dir, &header, spare)?;
        let file = storage
            .open_write(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        report.created = true;
        return Ok(Recovered {
            log_id,
            sealed: Vec::new(),
            active: ActiveState {
                first_seq: 0,
                path,
                file,
                end: HEADER_LEN as u64,
                live: LiveIndex::default(),
                first_created_at: None,
                tree_start: Frontier::new(),
                levels: LevelNodes::new(0, config.tree_min_level),
            },
            chain: ChainState {
                next_seq: 0,
                prev_hash: header.prev_hash,
                last_created_at: 0,
            },
            tree: Frontier::new(),
            report,
        });
    }

    // Phase 1: checks only.
    let mut log_id: Option<LogId> = None;
    let mut state: Option<ChainState> = None;
    // The Merkle tree up to the segment being checked.
    let mut tree = Frontier::new();
    let mut checked: Vec<CheckedSealed> = Vec::new();
    let mut last_active: Option<CheckedActive> = None;

    for (i, &name_seq) in seqs.iter().enumerate() {
        let path = dir.join(segment::segment_file_name(name_seq));
        let is_last = i + 1 == seqs.len();
        let expected_first = state.map_or(0, |s| s.next_seq);
        if name_seq != expected_first {
            return Err(Corruption::new(
                &path,
                0,
                Some(expected_first),
                CorruptionKind::MissingSegment {
                    expected_first_seq: expected_first,
                    found: format!("segment {}", segment::segment_file_name(name_seq)),
                },
            )
            .into());
        }
        let (file, len, header) = read_header(storage, &path, name_seq)?;
        let id = *log_id.get_or_insert(header.log_id);
        if header.log_id != id {
            return Err(Corruption::new(
                &path,
                0,
                Some(name_seq),
                CorruptionKind::Mismatch {
                    what: Structure::SegmentHeader,
                    field: "log_id",
                    expected: crate::error::hex(&id),
                    found: crate::error::hex(&header.log_id),
                },
            )
            .into());
        }
        let expected_prev = state.map_or_else(|| chain::genesis(&id), |s| s.prev_hash);
        if header.prev_hash != expected_prev {
            return Err(Corruption::new(
                &path,
                0,
                Some(name_seq),
                CorruptionKind::BrokenLink {
                    expected: expected_prev,
                    found: header.prev_hash,
                },
            )
            .into());
        }
        let prev_time = state.map_or(0, |s| s.last_created_at);
        let tree_start = tree.clone();
        let (footer, walked_index) = match read_seal(&*file, &path, len, name_seq)? {
            Ok(footer) => (footer, None),
            Err(cause) if !is_last => {
                return Err(Corruption::new(
                    &path,
                    len.saturating_sub(FOOTER_LEN as u64),
                    Some(name_seq),
                    CorruptionKind::UnsealedSegment {
                        next_first_seq: seqs[i + 1],
                        cause: Box::new(cause),
                    },
                )
                .into());
            }
            Err(cause)
                if storage
                    .is_read_only(&path)
                    .map_err(|e| Error::io("stat", &path, e))? =>
            {
                // Read-only means the seal completed: its footer had been
                // synced before the file was made read-only. A bad footer
                // here is damage, not a torn tail.
                return Err(Corruption::new(
                    &path,
                    len.saturating_sub(FOOTER_LEN as u64),
                    Some(name_seq),
                    cause,
                )
                .into());
            }
            Err(_) => {
                // The last segment, writable and unsealed: the active
                // segment. Walk all of it.
                let bytes = file.read_all().map_err(|e| Error::io("read", &path, e))?;
                let bytes = bytes.to_vec();
                let mut live = LiveIndex::default();
                let mut grown = tree.clone();
                let mut levels = LevelNodes::new(name_seq, config.tree_min_level);
                let interval = config.index_interval;
                let place = walk::Place {
                    name_seq: Some(name_seq),
                    may_be_open: true,
                    prev_created_at: prev_time,
                };
                let walked = walk::segment(&path, &bytes, place, |pos, r| {
                    live.observe((r.seq - name_seq) as u32, pos, r.created_at, interval);
                    // The writer goes on gathering the active segment's
                    // upper tree nodes from these (no extra reads).
                    grown.push_with(merkle::leaf_hash(&r.hash), |level, index, h| {
                        levels.record(level, index, h)
                    });
                });
                match walked.end.map_err(walk::damage_error)? {
                    // The walk compares a footer with the records rather
                    // than with itself; one that matches them is a seal.
                    walk::End::Sealed(footer) => (footer, Some((live, grown))),
                    end => {
                        let tail = match end {
                            walk::End::Torn(cause) => Some((walked.valid_end, cause)),
                            // Pre-written space (zeros), or the end of the
                            // file: the writer goes on from here.
                            _ => None,
                        };
                        state = walked.chain;
                        tree = grown;
                        last_active = Some(CheckedActive {
                            path,
                            header,
                            bytes,
                            live,
                            end: walked.valid_end,
                            tail,
                            tree_start,
                            levels,
                        });
                        continue;
                    }
                }
            }
        };
        if footer.first_created_at < prev_time {
            return Err(Corruption::new(
                &path,
                footer.records_end,
                Some(name_seq),
                CorruptionKind::TimeRegression {
                    previous: prev_time,
                    found: footer.first_created_at,
                },
            )
            .into());
        }
        let (walked_index, walked_tree) = walked_index.unzip();
        let rebuild_index = match load_sealed_index(storage, dir, &footer)? {
            Some(_) => None,
            None => Some(match walked_index {
                Some(live) => live,
                None => rebuild_index(&*file, &path, name_seq, prev_time, config.index_interval)?,
            }),
        };
        let rebuild_tree = match load_tree_file(storage, dir, &footer)? {
            Some(frontier) => {
                tree = frontier;
                None
            }
            None => {
                let rebuilt = match walked_tree {
                    Some(t) => t,
                    None => grow_tree(&*file, &path, name_seq, prev_time, tree.clone())?,
                };
                if footer.merkle_root != NO_ROOT && rebuilt.root() != footer.merkle_root {
                    return Err(Corruption::new(
                        &path,
                        footer.records_end,
                        Some(footer.last_seq),
                        CorruptionKind::Mismatch {
                            what: Structure::SegmentFooter,
                            field: "merkle_root",
                            expected: crate::error::hex(&rebuilt.root()),
                            found: crate::error::hex(&footer.merkle_root),
                        },
                    )
                    .into());
                }
                tree = rebuilt.clone();
                Some(rebuilt)
            }
        };
        state = Some(ChainState {
            next_seq: footer.last_seq + 1,
            prev_hash: footer.last_hash,
            last_created_at: footer.last_created_at,
        });
        let finish_seal = !storage
            .is_read_only(&path)
            .map_err(|e| Error::io("stat", &path, e))?;
        checked.push(CheckedSealed {
            path,
            file,
            footer,
            rebuild_index,
            rebuild_tree,
            finish_seal,
            tree_start,
        });
    }
    let log_id = log_id.expect("at least one segment");
    if let Some(want) = config.log_id {
        if want != log_id {
            return Err(Error::InvalidArgument(format!(
                "{} holds log {}, not the configured log {}",
                dir.display(),
                crate::error::hex(&log_id),
                crate::error::hex(&want)
            )));
        }
    }
    let chain_state = state.expect("at least one segment");

    // Phase 2: repairs.
    for t in &temps {
        remove_if_exists(storage, t)?;
    }
    report.removed_temp_files = temps;
    let mut dir_dirty = !report.removed_temp_files.is_empty();
    let mut sealed = Vec::with_capacity(checked.len());
    for c in checked {
        if let Some(live) = c.rebuild_index {
            segment::write_indexes(storage, dir, c.footer.first_seq, &live)?;
            report.rebuilt_indexes.push(c.path.clone());
            dir_dirty = true;
        }
        if let Some(frontier) = &c.rebuild_tree {
            segment::write_tree_file(storage, dir, c.footer.first_seq, frontier)?;
            report.rebuilt_trees.push(c.path.clone());
            dir_dirty = true;
        }
        if c.finish_seal {
            // The seal was interrupted, so its footer (and the records
            // before it) may be in the page cache only, after a failed
            // fdatasync or a process crash. Rewrite and sync the segment
            // before trusting the seal, then make it read-only.
            let bytes = c
                .file
                .read_all()
                .map_err(|e| Error::io("read", &c.path, e))?
                .to_vec();
            let w = storage
                .open_write(&c.path)
                .map_err(|e| Error::io("open", &c.path, e))?;
            write_all_at(&*w, &bytes[HEADER_LEN..], HEADER_LEN as u64)
                .map_err(|e| Error::io("rewrite segment", &c.path, e))?;
            // The seal of a pre-written segment cut its unused zeros: that
            // truncation may be in the page cache only too, so it is redone.
            w.set_len(bytes.len() as u64)
                .map_err(|e| Error::io("truncate segment", &c.path, e))?;
            w.sync_data()
                .map_err(|e| Error::io("fdatasync segment", &c.path, e))?;
            drop(w);
            storage
                .set_read_only(&c.path)
                .map_err(|e| Error::io("make read-only", &c.path, e))?;
            report.finished_seals.push(c.path.clone());
            dir_dirty = true;
        }
        let index = load_sealed_index(storage, dir, &c.footer)?.ok_or_else(|| {
            Error::from(Corruption::new(
                &c.path,
                0,
                Some(c.footer.first_seq),
                CorruptionKind::BadField {
                    what: Structure::OffsetIndex,
                    field: "file",
                    expected: "a valid index after rebuilding".into(),
                    found: "an invalid one".into(),
                },
            ))
        })?;
        sealed.push(Segment {
            first_seq: c.footer.first_seq,
            path: c.path,
            file: c.file,
            index,
            levels: SegmentLevels::Sealed(SealedLevels::new(c.tree_start)),
            footer: Some(c.footer),
        });
    }
    if dir_dirty {
        storage
            .sync_dir(dir)
            .map_err(|e| Error::io("fsync directory", dir, e))?;
    }

    let active = match last_active {
        Some(CheckedActive {
            path,
            header,
            bytes,
            live,
            end: end_pos,
            tail,
            tree_start,
            levels,
        }) => {
            if let Some((pos, cause)) = tail {
                report.cut = Some(cut_tail(storage, dir, &path, &bytes, pos, cause)?);
            }
            let file = storage
                .open_write(&path)
                .map_err(|e| Error::io("open", &path, e))?;
            // The records found may never have been synced: a crash of the
            // process before its fdatasync leaves them in the page cache,
            // and after a failed fdatasync Linux may keep them there marked
            // clean. Rewrite and sync them, so that everything after this
            // point may rely on them (and say so in `durable_through`).
            if end_pos > HEADER_LEN as u64 {
                write_all_at(
                    &*file,
                    &bytes[HEADER_LEN..end_pos as usize],
                    HEADER_LEN as u64,
                )
                .map_err(|e| Error::io("rewrite records", &path, e))?;
                file.sync_data()
                    .map_err(|e| Error::io("fdatasync records", &path, e))?;
            }
            ActiveState {
                first_seq: header.first_seq,
                path,
                file,
                end: end_pos,
                first_created_at: live.times.first().map(|t| t.created_at),
                live,
                tree_start,
                levels,
            }
        }
        None => {
            // The last segment is sealed (a crash came between sealing it
            // and creating its successor): create the active segment now.
            let header = SegmentHeader {
                log_id,
                first_seq: chain_state.next_seq,
                created_at: config.clock.now_nanos(),
                prev_hash: chain_state.prev_hash,
            };
            let spare = first_spare(storage, dir, config, &mut report);
            let (path, _) = segment::create_segment(storage, dir, &header, spare)?;
            let file = storage
                .open_write(&path)
                .map_err(|e| Error::io("open", &path, e))?;
            ActiveState {
                first_seq: header.first_seq,
                path,
                file,
                end: HEADER_LEN as u64,
                live: LiveIndex::default(),
                first_created_at: None,
                tree_start: tree.clone(),
                levels: LevelNodes::new(chain_state.next_seq, config.tree_min_level),
            }
        }
    };
    Ok(Recovered {
        log_id,
        sealed,
        active,
        chain: chain_state,
        tree,
        report,
    })
}

/// Cuts the last segment back to `pos`, in an order that never loses the
/// cut bytes: save them to `NAME.seg.cut-POS[-N]` and sync that file and
/// the directory, then truncate the segment and sync it.
fn cut_tail(
    storage: &dyn Storage,
    dir: &Path,
    path: &Path,
    bytes: &[u8],
    pos: u64,
    cause: CorruptionKind,
) -> Result<TailCut> {
    let base = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("segment")
        .to_owned();
    let existing = storage.list(dir).map_err(|e| Error::io("list", dir, e))?;
    let mut name = format!("{base}.cut-{pos}");
    let mut n = 1;
    while existing.contains(&name) {
        name = format!("{base}.cut-{pos}-{n}");
        n += 1;
    }
    let saved_to = dir.join(&name);
    let tail = &bytes[pos as usize..];
    segment::write_new_file(storage, &saved_to, tail)?;
    storage
        .sync_dir(dir)
        .map_err(|e| Error::io("fsync directory", dir, e))?;
    let seg = storage
        .open_write(path)
        .map_err(|e| Error::io("open", path, e))?;
    seg.set_len(pos)
        .map_err(|e| Error::io("truncate", path, e))?;
    seg.sync_data()
        .map_err(|e| Error::io("fdatasync after truncate", path, e))?;
    Ok(TailCut {
        segment: path.to_path_buf(),
        offset: pos,
        len: tail.len() as u64,
        saved_to,
        cause,
    })
}
