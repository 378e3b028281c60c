//! A [`Storage`] wrapper that fails a chosen operation, for tests of the
//! engine's error paths (poisoning, recovery after a failed write).
//!
//! It counts the operations that match a [`FaultPlan`]'s [`Op`] and fails the
//! `nth` one, and with `persistent` every matching one after it, with the
//! plan's `errno` (EIO, ENOSPC, ...). A failing write may first write part
//! of its buffer (`short_write`), as a real device that fills up does.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::storage::{DirLock, FileBytes, Storage, StorageFile};

/// The kinds of operation a plan can target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Every operation below.
    Any,
    /// `write_at`.
    Write,
    /// `sync_data`.
    Sync,
    /// `sync_dir`.
    SyncDir,
    /// `create_new`.
    Create,
    /// `open_read` and `open_write`.
    Open,
    /// `read_at` and `read_all`.
    Read,
    /// `rename`.
    Rename,
    /// `remove`.
    Remove,
    /// `set_len`.
    SetLen,
    /// `set_read_only`.
    SetReadOnly,
    /// `list`, `create_dir_all`, `is_read_only`, `len`.
    Meta,
}

/// Which operation to fail, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultPlan {
    /// The operations counted.
    pub op: Op,
    /// The 1-based count of the matching operation that fails.
    pub nth: u64,
    /// Whether every matching operation after the `nth` fails too.
    pub persistent: bool,
    /// The OS error number returned (5 = EIO, 28 = ENOSPC).
    pub errno: i32,
    /// Whether a failing write first writes half its buffer.
    pub short_write: bool,
}

impl FaultPlan {
    /// Fails the `nth` operation matching `op` with EIO, once.
    pub fn eio(op: Op, nth: u64) -> FaultPlan {
        FaultPlan {
            op,
            nth,
            persistent: false,
            errno: 5,
            short_write: false,
        }
    }
}

#[derive(Debug, Default)]
struct State {
    plan: Mutex<Option<FaultPlan>>,
    matched: AtomicU64,
    failed: AtomicU64,
    total: AtomicU64,
}

impl State {
    /// Counts an operation and decides whether it fails.
    fn check(&self, op: Op) -> io::Result<()> {
        self.total.fetch_add(1, Ordering::Relaxed);
        let plan = *self.plan.lock();
        let Some(plan) = plan else { return Ok(()) };
        if plan.op != Op::Any && plan.op != op {
            return Ok(());
        }
        let n = self.matched.fetch_add(1, Ordering::SeqCst) + 1;
        if n == plan.nth || (plan.persistent && n > plan.nth) {
            self.failed.fetch_add(1, Ordering::SeqCst);
            return Err(io::Error::from_raw_os_error(plan.errno));
        }
        Ok(())
    }

    fn short_write(&self) -> bool {
        self.plan.lock().is_some_and(|p| p.short_write)
    }
}

/// A fault-injecting wrapper around another [`Storage`].
#[derive(Debug, Clone)]
pub struct FaultyStorage {
    inner: Arc<dyn Storage>,
    state: Arc<State>,
}

impl FaultyStorage {
    /// Wraps `inner`, failing nothing until a plan is set.
    pub fn new(inner: Arc<dyn Storage>) -> FaultyStorage {
        FaultyStorage {
            inner,
            state: Arc::new(State::default()),
        }
    }

    /// Sets the plan and restarts its count.
    pub fn set_plan(&self, plan: Option<FaultPlan>) {
        *self.state.plan.lock() = plan;
        self.state.matched.store(0, Ordering::SeqCst);
        self.state.failed.store(0, Ordering::SeqCst);
    }

    /// Operations that failed since the plan was set.
    pub fn failures(&self) -> u64 {
        self.state.failed.load(Ordering::SeqCst)
    }

    /// Operations that matched the plan since it was set.
    pub fn matched(&self) -> u64 {
        self.state.matched.load(Ordering::SeqCst)
    }

    /// Every operation since creation, failing or not.
    pub fn total_ops(&self) -> u64 {
        self.state.total.load(Ordering::SeqCst)
    }

    fn wrap(&self, f: Arc<dyn StorageFile>) -> Arc<dyn StorageFile> {
        Arc::new(FaultyFile {
            inner: f,
            state: self.state.clone(),
        })
    }
}

impl Storage for FaultyStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.state.check(Op::Meta)?;
        self.inner.create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.state.check(Op::Meta)?;
        self.inner.list(dir)
    }
    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        self.state.check(Op::Create)?;
        Ok(self.wrap(self.inner.create_new(path)?))
    }
    fn open_read(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        self.state.check(Op::Open)?;
        Ok(self.wrap(self.inner.open_read(path)?))
    }
    fn open_write(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        self.state.check(Op::Open)?;
        Ok(self.wrap(self.inner.open_write(path)?))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.state.check(Op::Rename)?;
        self.inner.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.state.check(Op::Remove)?;
        self.inner.remove(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.state.check(Op::SyncDir)?;
        self.inner.sync_dir(dir)
    }
    fn set_read_only(&self, path: &Path) -> io::Result<()> {
        self.state.check(Op::SetReadOnly)?;
        self.inner.set_read_only(path)
    }
    fn is_read_only(&self, path: &Path) -> io::Result<bool> {
        self.state.check(Op::Meta)?;
        self.inner.is_read_only(path)
    }
    fn lock_dir(&self, dir: &Path) -> io::Result<DirLock> {
        self.inner.lock_dir(dir)
    }
}

#[derive(Debug)]
struct FaultyFile {
    inner: Arc<dyn StorageFile>,
    state: Arc<State>,
}

impl StorageFile for FaultyFile {
    fn len(&self) -> io::Result<u64> {
        self.state.check(Op::Meta)?;
        self.inner.len()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.state.check(Op::Read)?;
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        if let Err(e) = self.state.check(Op::Write) {
            if self.state.short_write() && buf.len() > 1 {
                // Part of the buffer reaches the file before the failure.
                let _ = self.inner.write_at(&buf[..buf.len() / 2], offset);
            }
            return Err(e);
        }
        self.inner.write_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.state.check(Op::Sync)?;
        self.inner.sync_data()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.state.check(Op::SetLen)?;
        self.inner.set_len(len)
    }
    fn read_all(&self) -> io::Result<FileBytes> {
        self.state.check(Op::Read)?;
        self.inner.read_all()
    }
}
