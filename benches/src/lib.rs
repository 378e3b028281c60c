//! Shared pieces of chainlog's criterion benchmarks: the raw-disk ceiling
//! that engine figures are compared against.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// One write plus one `fdatasync` per group of `group` records of
/// `record_len` bytes each, appended to a plain file: the most any log can
/// do on this disk for that group size, with no engine at all.
#[derive(Debug)]
pub struct RawCeiling {
    file: File,
    buf: Vec<u8>,
    pos: u64,
    /// Rewrite from offset 0 (an already written file) instead of growing.
    overwrite: bool,
}

impl RawCeiling {
    /// A new file in `dir`. With `prewrite`, the file is first filled with
    /// zeros and synced, and groups overwrite it from the start: the cost of
    /// a recycled or preallocated segment.
    pub fn new(dir: &Path, record_len: usize, group: usize, prewrite: bool) -> io::Result<Self> {
        let path = dir.join(if prewrite {
            "ceiling-prewritten"
        } else {
            "ceiling-growing"
        });
        let _ = std::fs::remove_file(&path);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        if prewrite {
            let zeros = vec![0u8; 1 << 20];
            for i in 0..64u64 {
                file.write_all_at(&zeros, i << 20)?;
            }
            file.sync_all()?;
        }
        Ok(RawCeiling {
            file,
            buf: vec![0xa5; record_len * group],
            pos: 0,
            overwrite: prewrite,
        })
    }

    /// Writes and syncs one group.
    pub fn group(&mut self) -> io::Result<()> {
        if self.overwrite && self.pos + self.buf.len() as u64 > 64 << 20 {
            self.pos = 0;
        }
        self.file.write_all_at(&self.buf, self.pos)?;
        self.file.sync_data()?;
        self.pos += self.buf.len() as u64;
        Ok(())
    }
}
