//! The file-system seam: the handful of operations the engine performs.
//!
//! Everything the engine does to disk goes through [`Storage`] and
//! [`StorageFile`], so that tests can put a fault-injecting or power-loss
//! simulating implementation behind the same calls (`testing::FaultyStorage`
//! and `testing::SimStorage`, with the `testing` feature). [`FsStorage`] is
//! the real one, and the only one production builds contain.

use std::fmt::Debug;
use std::io;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

mod fs;

pub use fs::FsStorage;

/// File-system operations on paths.
pub trait Storage: Send + Sync + Debug {
    /// Creates a directory and its parents if they do not exist.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Names of the entries of a directory (not full paths), in any order.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Creates a new file for reading and writing; fails if it exists.
    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>>;
    /// Opens an existing file for reading only.
    fn open_read(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>>;
    /// Opens an existing file for reading and writing.
    fn open_write(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>>;
    /// Renames a file, replacing `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Removes write permission from a file and makes that durable.
    fn set_read_only(&self, path: &Path) -> io::Result<()>;
    /// True when the file has no write permission.
    fn is_read_only(&self, path: &Path) -> io::Result<bool>;
    /// Takes the directory's exclusive lock, held until the returned guard
    /// is dropped; fails with `WouldBlock` when it is held elsewhere.
    fn lock_dir(&self, _dir: &Path) -> io::Result<DirLock> {
        Ok(DirLock(None))
    }
}

/// A held directory lock (see [`Storage::lock_dir`]).
#[derive(Debug)]
pub struct DirLock(pub Option<Box<dyn std::any::Any + Send + Sync>>);

/// Operations on an open file. Offsets are absolute: there is no cursor, so
/// one handle can be shared by a writer and many readers.
#[allow(clippy::len_without_is_empty)]
pub trait StorageFile: Send + Sync + Debug {
    /// The file's length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Reads into `buf` at `offset`; returns how many bytes were read (0 at
    /// end of file). May read fewer than asked.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Writes `buf` at `offset`; returns how many bytes were written. May
    /// write fewer than asked.
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize>;
    /// `fdatasync`: makes the file's data and length durable.
    fn sync_data(&self) -> io::Result<()>;
    /// Truncates or extends the file.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// The whole file's bytes; the real implementation maps the file
    /// read-only, others may copy it.
    fn read_all(&self) -> io::Result<FileBytes> {
        let len = usize::try_from(self.len()?)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "file too large to read"))?;
        let mut v = vec![0u8; len];
        read_exact_at(self, &mut v, 0)?;
        Ok(FileBytes::Owned(v))
    }
}

/// A file's bytes: mapped or owned.
#[derive(Debug)]
pub enum FileBytes {
    /// A read-only memory map of a file the engine never writes again.
    Mapped(memmap2::Mmap),
    /// A copy in memory.
    Owned(Vec<u8>),
}

impl Deref for FileBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            FileBytes::Mapped(m) => m,
            FileBytes::Owned(v) => v,
        }
    }
}

/// Reads exactly `buf.len()` bytes at `offset`, or fails with
/// `UnexpectedEof`.
pub fn read_exact_at<F: StorageFile + ?Sized>(
    f: &F,
    mut buf: &mut [u8],
    mut offset: u64,
) -> io::Result<()> {
    while !buf.is_empty() {
        match f.read_at(buf, offset) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes all of `buf` at `offset`, continuing after short writes.
pub fn write_all_at<F: StorageFile + ?Sized>(
    f: &F,
    mut buf: &[u8],
    mut offset: u64,
) -> io::Result<()> {
    while !buf.is_empty() {
        match f.write_at(buf, offset) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                buf = &buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
