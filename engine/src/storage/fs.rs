//! The real file system.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use super::{DirLock, FileBytes, Storage, StorageFile};

/// [`Storage`] on the operating system's file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct FsStorage;

#[derive(Debug)]
struct FsFile(File);

impl Storage for FsStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if let Some(name) = entry.file_name().to_str() {
                names.push(name.to_owned());
            }
        }
        Ok(names)
    }

    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(path)?;
        Ok(Arc::new(FsFile(f)))
    }

    fn open_read(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        Ok(Arc::new(FsFile(File::open(path)?)))
    }

    fn open_write(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        let f = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Arc::new(FsFile(f)))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        // On Linux a directory opened read-only can be fsynced; that makes
        // its entries (creations, renames, removals) durable.
        File::open(dir)?.sync_all()
    }

    fn set_read_only(&self, path: &Path) -> io::Result<()> {
        let f = File::open(path)?;
        let mut perms = f.metadata()?.permissions();
        perms.set_mode(perms.mode() & !0o222);
        f.set_permissions(perms)?;
        // The mode lives in the inode: fsync (not fdatasync) persists it.
        f.sync_all()
    }

    fn is_read_only(&self, path: &Path) -> io::Result<bool> {
        Ok(fs::metadata(path)?.permissions().mode() & 0o222 == 0)
    }

    fn lock_dir(&self, dir: &Path) -> io::Result<DirLock> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(LOCK_FILE))?;
        match f.try_lock() {
            Ok(()) => Ok(DirLock(Some(Box::new(f)))),
            Err(fs::TryLockError::WouldBlock) => Err(io::ErrorKind::WouldBlock.into()),
            Err(fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

/// The file whose `flock` marks a log directory as open.
pub const LOCK_FILE: &str = "LOCK";

impl StorageFile for FsFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.0.read_at(buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        self.0.write_at(buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    #[allow(unsafe_code)]
    fn read_all(&self) -> io::Result<FileBytes> {
        if self.len()? == 0 {
            // Mapping an empty file fails on Linux; nothing to map anyway.
            return Ok(FileBytes::Owned(Vec::new()));
        }
        // SAFETY: the engine maps only read-only files: index files and
        // sealed segments, which it never writes, truncates or replaces
        // while a map is alive (an index rebuild writes a new file and
        // renames it over the old one, which leaves existing maps on the
        // old inode; recovery copies what it maps before truncating). Every value read from the
        // map is bounds-checked and checked against the segment's records,
        // so even an outside writer can cause wrong answers to be detected,
        // not memory unsafety beyond a SIGBUS on truncation by another
        // process, which no safe API could prevent.
        let map = unsafe { memmap2::MmapOptions::new().populate().map(&self.0)? };
        Ok(FileBytes::Mapped(map))
    }
}
