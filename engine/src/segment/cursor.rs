//! Sequential, buffered reading of records from one segment file.

use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{Corruption, CorruptionKind, Error, Result};
use crate::format::record::{self, Decoded, Record};
use crate::format::Structure;
use crate::storage::StorageFile;

/// Bytes read by the first refill: a point read starts at a sparse index
/// entry (every 4 KiB by default) and needs little more.
const FIRST_CHUNK: usize = 8 << 10;
/// Bytes read per later refill (a scan); a record larger than this is read
/// whole.
const READ_CHUNK: usize = 64 << 10;

/// Reads records one after another from a position in a segment, checking
/// each one's CRC.
#[derive(Debug)]
pub(crate) struct Cursor {
    file: Arc<dyn StorageFile>,
    path: PathBuf,
    /// File offset of the next record.
    pos: u64,
    /// Records end here (the footer's offset for sealed segments).
    end: u64,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    buf_at: u64,
    max_payload: usize,
}

impl Cursor {
    pub fn new(
        file: Arc<dyn StorageFile>,
        path: PathBuf,
        pos: u64,
        end: u64,
        max_payload: usize,
    ) -> Cursor {
        Cursor {
            file,
            path,
            pos,
            end,
            buf: Vec::new(),
            buf_at: pos,
            max_payload,
        }
    }

    /// The next record and its offset, or `None` at the end bound.
    pub fn next_record(&mut self) -> Result<Option<(u64, Record)>> {
        if self.pos >= self.end {
            return Ok(None);
        }
        loop {
            let start = (self.pos - self.buf_at) as usize;
            let avail = self.buf.get(start..).unwrap_or(&[]);
            let corrupt = |kind| Error::from(Corruption::new(&self.path, self.pos, None, kind));
            match record::decode(avail, self.max_payload).map_err(corrupt)? {
                Decoded::Record(r) => {
                    let at = self.pos;
                    self.pos += r.encoded_len() as u64;
                    return Ok(Some((at, r.to_owned())));
                }
                Decoded::Incomplete { needed } => self.refill(needed)?,
            }
        }
    }

    /// Reads at least `needed` bytes from `pos` into the buffer, or reports
    /// the record as truncated.
    fn refill(&mut self, needed: usize) -> Result<()> {
        let chunk = if self.buf.is_empty() {
            FIRST_CHUNK
        } else {
            READ_CHUNK
        };
        let want = needed.max(chunk);
        self.buf.resize(want, 0);
        self.buf_at = self.pos;
        let mut filled = 0;
        while filled < want {
            match self
                .file
                .read_at(&mut self.buf[filled..], self.pos + filled as u64)
            {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io("read", &self.path, e)),
            }
        }
        self.buf.truncate(filled);
        if filled < needed {
            return Err(Corruption::new(
                &self.path,
                self.pos,
                None,
                CorruptionKind::Truncated {
                    what: Structure::Record,
                    needed: needed as u64,
                    available: filled as u64,
                },
            )
            .into());
        }
        Ok(())
    }
}
