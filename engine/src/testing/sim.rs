//! A simulated storage for crash-consistency tests: power loss at any
//! operation, and failure of any operation, deterministic from a seed.
//!
//! Every file has a *live* image (what reads see) and a *durable* image
//! (what survives a power loss). Data reaches the durable image only through
//! `sync_data` of that file. A directory entry (creation, rename, removal)
//! reaches the durable directory only through `sync_dir` of its directory,
//! except that a power loss may also keep any prefix of the entry changes
//! made since (as a journaling file system commits them in order).
//!
//! A failed `sync_data` behaves as Linux's does: the writes it should have
//! made durable stay readable but are dropped from writeback, so no later
//! sync writes them (the 2018 "fsyncgate" behaviour).
//!
//! At a crash, each write and truncation since the file's last sync is
//! independently kept, dropped, torn at a 512-byte boundary, or replaced
//! with garbage, in order; the result is what the next open sees. After the
//! crash point every operation fails with EIO (the machine is down) until
//! [`SimStorage::reboot`]. File handles from before a reboot stay dead.
//!
//! Simplifications: directories are durable once created; `set_read_only`
//! is durable at once (the real implementation fsyncs the inode); a write
//! of bytes identical to what the durable image already holds cannot
//! damage them (sectors are written whole, old or new).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::fault::{FaultPlan, Op};
use super::Rng;
use crate::storage::{FileBytes, Storage, StorageFile};

/// The sector size at which a torn write is cut.
pub const SECTOR: u64 = 512;

#[derive(Debug, Clone)]
enum Pending {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

#[derive(Debug, Clone, Default)]
struct SimFile {
    /// What reads see (the page cache).
    live: Vec<u8>,
    /// What a successful sync would leave on the device: the durable image
    /// plus the writes since. A failed sync resets it to `durable`, as
    /// Linux marks the failed pages clean: the data stays readable in
    /// `live` but no later sync writes it.
    syncable: Vec<u8>,
    durable: Vec<u8>,
    pending: Vec<Pending>,
    read_only: bool,
}

/// A path as the simulator keys its entries: the directory's normalized
/// bytes and the file name's, compared as bytes. (Keyed by `PathBuf`, whose
/// comparison walks components, the crash sweeps spent a third of their
/// time comparing paths.)
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Key {
    dir: Vec<u8>,
    name: Vec<u8>,
}

impl Key {
    /// The key of a file's path; a path without a file name names no file.
    fn of(path: &Path) -> io::Result<Key> {
        match (path.parent(), path.file_name()) {
            (Some(dir), Some(name)) => Ok(Key {
                dir: dir_key(dir),
                name: name.as_encoded_bytes().to_vec(),
            }),
            _ => Err(io::ErrorKind::InvalidInput.into()),
        }
    }

    fn name(&self) -> Option<String> {
        String::from_utf8(self.name.clone()).ok()
    }
}

/// A directory's bytes as keys hold them: its components joined again, so
/// that `a/b/` and `a//b` are `a/b`, as for a `Path`.
fn dir_key(dir: &Path) -> Vec<u8> {
    dir.components()
        .collect::<PathBuf>()
        .into_os_string()
        .into_encoded_bytes()
}

#[derive(Debug, Clone)]
enum DirOp {
    Link(Key, u64),
    Unlink(Key),
}

impl DirOp {
    fn dir(&self) -> &[u8] {
        match self {
            DirOp::Link(k, _) | DirOp::Unlink(k) => &k.dir,
        }
    }
}

/// What happened to the unsynced writes at a crash, for reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CrashStats {
    /// Writes kept whole.
    pub kept: u64,
    /// Writes dropped.
    pub dropped: u64,
    /// Writes torn at a sector boundary.
    pub torn: u64,
    /// Writes replaced with garbage.
    pub garbage: u64,
    /// Directory changes kept without a directory sync.
    pub dir_ops_kept: u64,
    /// Directory changes lost.
    pub dir_ops_lost: u64,
}

#[derive(Debug)]
struct State {
    rng: Rng,
    files: HashMap<u64, SimFile>,
    next_id: u64,
    dirs: BTreeSet<Vec<u8>>,
    live_dir: BTreeMap<Key, u64>,
    durable_dir: BTreeMap<Key, u64>,
    dir_log: Vec<DirOp>,
    generation: u64,
    ops: u64,
    crash_at: Option<u64>,
    /// The image a crash left, waiting for `reboot`.
    crashed: Option<(BTreeMap<Key, u64>, HashMap<u64, SimFile>)>,
    last_crash: CrashStats,
    fault: Option<FaultPlan>,
    fault_matched: u64,
    failures: u64,
}

fn op_matches(plan: Op, op: Op) -> bool {
    plan == Op::Any || plan == op
}

impl State {
    /// Counts an operation; crashes or fails it as planned.
    fn begin(&mut self, op: Op, generation: Option<u64>) -> io::Result<()> {
        if self.crashed.is_some() {
            return Err(io::Error::from_raw_os_error(5));
        }
        if generation.is_some_and(|g| g != self.generation) {
            return Err(io::Error::other("stale handle from before a reboot"));
        }
        self.ops += 1;
        if self.crash_at.is_some_and(|c| self.ops >= c) {
            self.crash();
            return Err(io::Error::from_raw_os_error(5));
        }
        if let Some(plan) = self.fault {
            if op_matches(plan.op, op) {
                self.fault_matched += 1;
                let n = self.fault_matched;
                if n == plan.nth || (plan.persistent && n > plan.nth) {
                    self.failures += 1;
                    return Err(io::Error::from_raw_os_error(plan.errno));
                }
            }
        }
        Ok(())
    }

    /// Freezes what a power loss at this moment leaves on the device.
    fn crash(&mut self) {
        let mut stats = CrashStats::default();
        // Directory entries: the durable ones, plus a prefix of the changes
        // made since, in order.
        let mut dir = self.durable_dir.clone();
        let keep = self.rng.below(self.dir_log.len() as u64 + 1) as usize;
        for (i, op) in self.dir_log.iter().enumerate() {
            if i >= keep {
                stats.dir_ops_lost += 1;
                continue;
            }
            stats.dir_ops_kept += 1;
            match op {
                DirOp::Link(p, id) => {
                    dir.insert(p.clone(), *id);
                }
                DirOp::Unlink(p) => {
                    dir.remove(p);
                }
            }
        }
        let mut files = HashMap::new();
        let ids: BTreeSet<u64> = dir.values().copied().collect();
        for id in ids {
            let Some(f) = self.files.get(&id) else {
                continue;
            };
            let mut img = f.durable.clone();
            for p in &f.pending {
                match p {
                    Pending::SetLen(len) => {
                        if self.rng.below(2) == 0 {
                            img.resize(*len as usize, 0);
                        }
                    }
                    Pending::Write { offset, data } => {
                        // Rewriting bytes the device already holds cannot
                        // change them: a sector ends up old or new, and
                        // both are the same.
                        let at = *offset as usize;
                        if img.get(at..at + data.len()) == Some(&data[..]) {
                            stats.kept += 1;
                            continue;
                        }
                        let data: Vec<u8> = match self.rng.below(5) {
                            0 | 1 => {
                                stats.kept += 1;
                                data.clone()
                            }
                            2 => {
                                stats.dropped += 1;
                                continue;
                            }
                            3 => {
                                // Torn: only the sectors before some boundary
                                // inside the write reached the device.
                                let first = (offset / SECTOR + 1) * SECTOR;
                                let end = offset + data.len() as u64;
                                if first >= end {
                                    stats.dropped += 1;
                                    continue;
                                }
                                let n = (end - first).div_ceil(SECTOR);
                                let cut = first + self.rng.below(n) * SECTOR;
                                stats.torn += 1;
                                data[..(cut - offset) as usize].to_vec()
                            }
                            _ => {
                                stats.garbage += 1;
                                self.rng.bytes(data.len())
                            }
                        };
                        let at = *offset as usize;
                        if img.len() < at + data.len() {
                            img.resize(at + data.len(), 0);
                        }
                        img[at..at + data.len()].copy_from_slice(&data);
                    }
                }
            }
            files.insert(
                id,
                SimFile {
                    live: img.clone(),
                    syncable: img.clone(),
                    durable: img,
                    pending: Vec::new(),
                    read_only: f.read_only,
                },
            );
        }
        self.last_crash = stats;
        self.crashed = Some((dir, files));
    }

    fn file(&mut self, id: u64) -> io::Result<&mut SimFile> {
        self.files
            .get_mut(&id)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    fn lookup(&self, path: &Path) -> io::Result<u64> {
        self.live_dir
            .get(&Key::of(path)?)
            .copied()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }
}

/// The simulated storage. Clones share one simulated machine.
#[derive(Debug, Clone)]
pub struct SimStorage {
    state: Arc<Mutex<State>>,
}

impl SimStorage {
    /// A new, empty machine whose crash outcomes follow `seed`.
    pub fn new(seed: u64) -> SimStorage {
        SimStorage {
            state: Arc::new(Mutex::new(State {
                rng: Rng::new(seed),
                files: HashMap::new(),
                next_id: 1,
                dirs: BTreeSet::new(),
                live_dir: BTreeMap::new(),
                durable_dir: BTreeMap::new(),
                dir_log: Vec::new(),
                generation: 0,
                ops: 0,
                crash_at: None,
                crashed: None,
                last_crash: CrashStats::default(),
                fault: None,
                fault_matched: 0,
                failures: 0,
            })),
        }
    }

    /// Operations performed so far (every call counts).
    pub fn ops(&self) -> u64 {
        self.state.lock().ops
    }

    /// Loses power when the operation count reaches `op` (that operation
    /// and every later one fail with EIO).
    pub fn crash_at(&self, op: Option<u64>) {
        self.state.lock().crash_at = op;
    }

    /// Loses power now.
    pub fn crash_now(&self) {
        let mut s = self.state.lock();
        if s.crashed.is_none() {
            s.crash();
        }
    }

    /// True once the crash point has been reached.
    pub fn has_crashed(&self) -> bool {
        self.state.lock().crashed.is_some()
    }

    /// What the last crash did to unsynced writes.
    pub fn last_crash(&self) -> CrashStats {
        self.state.lock().last_crash
    }

    /// Restarts the machine: after a crash, the crash image becomes both
    /// live and durable; without one, the live image stays (a process
    /// restart). Handles from before are dead either way.
    pub fn reboot(&self) {
        let mut s = self.state.lock();
        if let Some((dir, files)) = s.crashed.take() {
            s.live_dir = dir.clone();
            s.durable_dir = dir;
            s.files = files;
            s.dir_log.clear();
        }
        s.crash_at = None;
        s.generation += 1;
    }

    /// Fails operations per `plan` (counted from now), or stops failing.
    pub fn set_fault(&self, plan: Option<FaultPlan>) {
        let mut s = self.state.lock();
        s.fault = plan;
        s.fault_matched = 0;
        s.failures = 0;
    }

    /// Operations failed by the fault plan since it was set.
    pub fn failures(&self) -> u64 {
        self.state.lock().failures
    }

    /// The live bytes of a file, for tests that damage or inspect it.
    pub fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        let s = self.state.lock();
        let id = s.live_dir.get(&Key::of(path).ok()?)?;
        s.files.get(id).map(|f| f.live.clone())
    }

    /// Replaces a file's bytes, live and durable (damage done "at rest").
    pub fn write_file(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut s = self.state.lock();
        let id = s.lookup(path)?;
        let f = s.file(id)?;
        f.live = bytes.to_vec();
        f.syncable = bytes.to_vec();
        f.durable = bytes.to_vec();
        f.pending.clear();
        Ok(())
    }

    fn handle(&self, id: u64, generation: u64, writable: bool) -> Arc<dyn StorageFile> {
        Arc::new(SimHandle {
            state: self.state.clone(),
            id,
            generation,
            writable,
        })
    }
}

impl Storage for SimStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        s.begin(Op::Meta, None)?;
        s.dirs.insert(dir_key(dir));
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut s = self.state.lock();
        s.begin(Op::Meta, None)?;
        let dir = dir_key(dir);
        if !s.dirs.contains(&dir) {
            return Err(io::ErrorKind::NotFound.into());
        }
        Ok(s.live_dir
            .keys()
            .filter(|k| k.dir == dir)
            .filter_map(Key::name)
            .collect())
    }

    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        let mut s = self.state.lock();
        s.begin(Op::Create, None)?;
        let key = Key::of(path)?;
        if s.live_dir.contains_key(&key) {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        if !s.dirs.contains(&key.dir) {
            return Err(io::ErrorKind::NotFound.into());
        }
        let id = s.next_id;
        s.next_id += 1;
        s.files.insert(id, SimFile::default());
        s.live_dir.insert(key.clone(), id);
        s.dir_log.push(DirOp::Link(key, id));
        let generation = s.generation;
        drop(s);
        Ok(self.handle(id, generation, true))
    }

    fn open_read(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        let mut s = self.state.lock();
        s.begin(Op::Open, None)?;
        let id = s.lookup(path)?;
        let generation = s.generation;
        drop(s);
        Ok(self.handle(id, generation, false))
    }

    fn open_write(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        let mut s = self.state.lock();
        s.begin(Op::Open, None)?;
        let id = s.lookup(path)?;
        if s.file(id)?.read_only {
            return Err(io::ErrorKind::PermissionDenied.into());
        }
        let generation = s.generation;
        drop(s);
        Ok(self.handle(id, generation, true))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        s.begin(Op::Rename, None)?;
        let id = s.lookup(from)?;
        let (from, to) = (Key::of(from)?, Key::of(to)?);
        s.live_dir.remove(&from);
        s.live_dir.insert(to.clone(), id);
        s.dir_log.push(DirOp::Unlink(from));
        s.dir_log.push(DirOp::Link(to, id));
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        s.begin(Op::Remove, None)?;
        s.lookup(path)?;
        let key = Key::of(path)?;
        s.live_dir.remove(&key);
        s.dir_log.push(DirOp::Unlink(key));
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        s.begin(Op::SyncDir, None)?;
        let dir = dir_key(dir);
        let live: Vec<(Key, u64)> = s
            .live_dir
            .iter()
            .filter(|(k, _)| k.dir == dir)
            .map(|(k, id)| (k.clone(), *id))
            .collect();
        s.durable_dir.retain(|k, _| k.dir != dir);
        s.durable_dir.extend(live);
        s.dir_log.retain(|op| op.dir() != dir.as_slice());
        Ok(())
    }

    fn set_read_only(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        s.begin(Op::SetReadOnly, None)?;
        let id = s.lookup(path)?;
        s.file(id)?.read_only = true;
        Ok(())
    }

    fn is_read_only(&self, path: &Path) -> io::Result<bool> {
        let mut s = self.state.lock();
        s.begin(Op::Meta, None)?;
        let id = s.lookup(path)?;
        Ok(s.file(id)?.read_only)
    }
}

#[derive(Debug)]
struct SimHandle {
    state: Arc<Mutex<State>>,
    id: u64,
    generation: u64,
    writable: bool,
}

impl StorageFile for SimHandle {
    fn len(&self) -> io::Result<u64> {
        let mut s = self.state.lock();
        s.begin(Op::Meta, Some(self.generation))?;
        Ok(s.file(self.id)?.live.len() as u64)
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut s = self.state.lock();
        s.begin(Op::Read, Some(self.generation))?;
        let f = s.file(self.id)?;
        let at = (offset as usize).min(f.live.len());
        let n = buf.len().min(f.live.len() - at);
        buf[..n].copy_from_slice(&f.live[at..at + n]);
        Ok(n)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        if !self.writable {
            return Err(io::Error::from_raw_os_error(9)); // EBADF
        }
        let mut s = self.state.lock();
        let short = s.fault.is_some_and(|p| p.short_write);
        let result = s.begin(Op::Write, Some(self.generation));
        // A failing write may still have put part of its buffer in place.
        let n = match &result {
            Ok(()) => buf.len(),
            Err(_) if short && s.crashed.is_none() && buf.len() > 1 => buf.len() / 2,
            Err(_) => 0,
        };
        if n > 0 {
            let f = s.file(self.id)?;
            let at = offset as usize;
            for img in [&mut f.live, &mut f.syncable] {
                if img.len() < at + n {
                    img.resize(at + n, 0);
                }
                img[at..at + n].copy_from_slice(&buf[..n]);
            }
            f.pending.push(Pending::Write {
                offset,
                data: buf[..n].to_vec(),
            });
        }
        result.map(|()| n)
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut s = self.state.lock();
        let result = s.begin(Op::Sync, Some(self.generation));
        let crashed = s.crashed.is_some();
        let f = s.file(self.id)?;
        match result {
            Ok(()) => {
                f.durable = f.syncable.clone();
                f.pending.clear();
                Ok(())
            }
            Err(e) => {
                if !crashed {
                    // A failed fdatasync on Linux: the dirty pages are
                    // marked clean and dropped from writeback; they stay
                    // readable but never reach the device.
                    f.syncable = f.durable.clone();
                    f.pending.clear();
                }
                Err(e)
            }
        }
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        if !self.writable {
            return Err(io::Error::from_raw_os_error(9));
        }
        let mut s = self.state.lock();
        s.begin(Op::SetLen, Some(self.generation))?;
        let f = s.file(self.id)?;
        f.live.resize(len as usize, 0);
        f.syncable.resize(len as usize, 0);
        f.pending.push(Pending::SetLen(len));
        Ok(())
    }

    fn read_all(&self) -> io::Result<FileBytes> {
        let mut s = self.state.lock();
        s.begin(Op::Read, Some(self.generation))?;
        Ok(FileBytes::Owned(s.file(self.id)?.live.clone()))
    }
}

#[cfg(test)]
mod tests {
    //! The simulator is itself tested: if it stopped losing what it claims
    //! to lose, every sweep built on it would pass and prove nothing.

    use super::*;

    fn dir() -> &'static Path {
        Path::new("/sim/t")
    }

    /// A machine with one file, `f`, holding `old` durably (data and name).
    fn machine(seed: u64, old: &[u8]) -> (SimStorage, Arc<dyn StorageFile>) {
        let s = SimStorage::new(seed);
        s.create_dir_all(dir()).expect("mkdir");
        let f = s.create_new(&dir().join("f")).expect("create");
        f.write_at(old, 0).expect("write");
        f.sync_data().expect("sync");
        s.sync_dir(dir()).expect("sync dir");
        (s, f)
    }

    fn read(s: &SimStorage, name: &str) -> Option<Vec<u8>> {
        s.read_file(&dir().join(name))
    }

    #[test]
    fn an_unsynced_write_is_kept_dropped_torn_or_garbled_and_a_synced_one_survives() {
        let old = vec![b'o'; 2048];
        let new = vec![b'n'; 2048];
        let (mut kept, mut dropped, mut torn, mut garbage) = (0, 0, 0, 0);
        for seed in 0..200 {
            let (s, f) = machine(seed, &old);
            f.write_at(&new, 0).expect("write");
            assert_eq!(read(&s, "f"), Some(new.clone()), "reads see the write");
            s.crash_now();
            let stats = s.last_crash();
            s.reboot();
            let after = read(&s, "f").expect("the file's name was durable");
            assert_eq!(after.len(), 2048);
            if after == new {
                assert_eq!(stats.kept, 1);
                kept += 1;
            } else if after == old {
                assert_eq!(stats.dropped, 1);
                dropped += 1;
            } else {
                let cut = after.iter().position(|&b| b != b'n').unwrap_or(0);
                let is_torn = cut > 0 && after[cut..].iter().all(|&b| b == b'o');
                if is_torn {
                    // Torn at a sector boundary inside the write: new
                    // sectors, then old ones.
                    assert_eq!(stats.torn, 1, "seed {seed}");
                    assert!(
                        (cut as u64).is_multiple_of(SECTOR),
                        "seed {seed}: cut at {cut}"
                    );
                    torn += 1;
                } else {
                    assert_eq!(stats.garbage, 1, "seed {seed}");
                    garbage += 1;
                }
            }
        }
        assert!(
            kept > 0 && dropped > 0 && torn > 0 && garbage > 0,
            "{kept} {dropped} {torn} {garbage}"
        );

        // Synced: always kept.
        for seed in 0..50 {
            let (s, f) = machine(seed, &old);
            f.write_at(&new, 0).expect("write");
            f.sync_data().expect("sync");
            s.crash_now();
            assert_eq!(s.last_crash(), CrashStats::default());
            s.reboot();
            assert_eq!(read(&s, "f"), Some(new.clone()), "seed {seed}");
        }
    }

    #[test]
    fn a_failed_sync_drops_its_pages_even_from_later_syncs() {
        for seed in 0..50 {
            let (s, f) = machine(seed, b"old!");
            f.write_at(b"new!", 0).expect("write");
            s.set_fault(Some(FaultPlan::eio(Op::Sync, 1)));
            assert_eq!(f.sync_data().map_err(|e| e.raw_os_error()), Err(Some(5)));
            s.set_fault(None);
            // Still readable (the page cache keeps it) ...
            assert_eq!(read(&s, "f"), Some(b"new!".to_vec()));
            // ... but no later sync writes it: it was marked clean.
            f.sync_data().expect("a later sync succeeds");
            s.crash_now();
            s.reboot();
            assert_eq!(read(&s, "f"), Some(b"old!".to_vec()), "seed {seed}");
        }
    }

    #[test]
    fn a_rename_without_a_directory_sync_can_be_lost() {
        let (mut lost, mut kept) = (0, 0);
        for seed in 0..100 {
            let (s, _f) = machine(seed, b"data");
            s.rename(&dir().join("f"), &dir().join("g"))
                .expect("rename");
            s.crash_now();
            let stats = s.last_crash();
            s.reboot();
            match (read(&s, "f"), read(&s, "g")) {
                (Some(d), None) => {
                    assert_eq!(d, b"data");
                    assert!(stats.dir_ops_lost > 0);
                    lost += 1;
                }
                (None, Some(d)) => {
                    assert_eq!(d, b"data");
                    assert_eq!(stats.dir_ops_lost, 0);
                    kept += 1;
                }
                // The unlink of the old name kept, the new link lost: the
                // directory changes are kept in order, a prefix at most.
                (None, None) => {
                    assert_eq!((stats.dir_ops_kept, stats.dir_ops_lost), (1, 1));
                    lost += 1;
                }
                other => panic!("seed {seed}: both names: {other:?}"),
            }
        }
        assert!(lost > 0 && kept > 0, "lost {lost}, kept {kept}");

        // With the directory synced, the new name always survives.
        for seed in 0..50 {
            let (s, _f) = machine(seed, b"data");
            s.rename(&dir().join("f"), &dir().join("g"))
                .expect("rename");
            s.sync_dir(dir()).expect("sync dir");
            s.crash_now();
            s.reboot();
            assert_eq!(
                (read(&s, "f"), read(&s, "g")),
                (None, Some(b"data".to_vec()))
            );
        }
    }

    #[test]
    fn a_created_file_without_a_directory_sync_can_vanish() {
        let mut vanished = 0;
        for seed in 0..100 {
            let s = SimStorage::new(seed);
            s.create_dir_all(dir()).expect("mkdir");
            let f = s.create_new(&dir().join("h")).expect("create");
            f.write_at(b"synced data", 0).expect("write");
            f.sync_data().expect("sync");
            s.crash_now();
            s.reboot();
            match read(&s, "h") {
                None => vanished += 1,
                Some(d) => assert_eq!(d, b"synced data"),
            }
        }
        assert!(
            vanished > 0,
            "a new name always survived without a directory sync"
        );
    }
}
