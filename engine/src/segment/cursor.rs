//! Sequential, buffered reading of records from one segment file.

use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{Corruption, CorruptionKind, Error, Result};
use crate::format::record::{self, Decoded, Record, RECORD_OVERHEAD};
use crate::format::Structure;
use crate::storage::StorageFile;

/// Bytes read by the first refill: a point read starts at a sparse index
/// entry (every 4 KiB by default) and needs little more.
const FIRST_CHUNK: usize = 8 << 10;
/// Bytes read per later refill (a scan); a record larger than this is read
/// whole.
const READ_CHUNK: usize = 64 << 10;

/// Reads records one after another from a position in a segment, checking
/// each one right after it is read: its CRC and fields (the decoder), that
/// it ends within the segment's records, that its seq is the one expected
/// there, and that its `created_at` does not go back. Each failure is a
/// corruption error naming the file, offset and seq.
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
    /// The seq of the record at `pos`.
    next_seq: u64,
    /// The `created_at` of the record read last.
    last_created_at: Option<u64>,
}

impl Cursor {
    /// A cursor at `pos`, where the record `seq` starts (as the segment's
    /// first seq, or an index entry, says), reading records that end by
    /// `end`.
    pub fn new(
        file: Arc<dyn StorageFile>,
        path: PathBuf,
        pos: u64,
        seq: u64,
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
            next_seq: seq,
            last_created_at: None,
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
                    let record = r.to_owned();
                    self.check(at, &record)?;
                    self.pos += record.payload.len() as u64 + RECORD_OVERHEAD as u64;
                    self.next_seq += 1;
                    self.last_created_at = Some(record.created_at);
                    return Ok(Some((at, record)));
                }
                Decoded::Incomplete { needed } => self.refill(needed)?,
            }
        }
    }

    /// The checks right after a record at `at` is decoded: cheap, on every
    /// read, so that a reader never returns a record from the wrong place.
    fn check(&self, at: u64, r: &Record) -> Result<()> {
        let expected = self.next_seq;
        let corrupt = |kind| Err(Corruption::new(&self.path, at, Some(expected), kind).into());
        if r.seq != expected {
            return corrupt(CorruptionKind::SeqGap {
                expected,
                found: r.seq,
            });
        }
        if let Some(previous) = self.last_created_at.filter(|&p| r.created_at < p) {
            return corrupt(CorruptionKind::TimeRegression {
                previous,
                found: r.created_at,
            });
        }
        let ends_at = at + r.payload.len() as u64 + RECORD_OVERHEAD as u64;
        if ends_at > self.end {
            return corrupt(CorruptionKind::BadField {
                what: Structure::Record,
                field: "payload_len",
                expected: format!("a record that ends by offset {} (the footer)", self.end),
                found: format!("{} (the record ends at {ends_at})", r.payload.len()),
            });
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    /// A read-only file of fixed bytes.
    #[derive(Debug)]
    struct Bytes(Vec<u8>);

    impl StorageFile for Bytes {
        fn len(&self) -> io::Result<u64> {
            Ok(self.0.len() as u64)
        }
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
            let from = (offset as usize).min(self.0.len());
            let n = buf.len().min(self.0.len() - from);
            buf[..n].copy_from_slice(&self.0[from..from + n]);
            Ok(n)
        }
        fn write_at(&self, _: &[u8], _: u64) -> io::Result<usize> {
            Err(io::ErrorKind::PermissionDenied.into())
        }
        fn sync_data(&self) -> io::Result<()> {
            Ok(())
        }
        fn set_len(&self, _: u64) -> io::Result<()> {
            Err(io::ErrorKind::PermissionDenied.into())
        }
    }

    /// Records `(seq, created_at)` back to back, each with a 10-byte
    /// payload (74 bytes encoded).
    fn records(list: &[(u64, u64)]) -> Vec<u8> {
        let mut out = Vec::new();
        for &(seq, created_at) in list {
            record::encode(
                &mut out,
                seq,
                created_at,
                1,
                0,
                b"0123456789",
                &[seq as u8; 32],
            );
        }
        out
    }

    fn cursor(bytes: Vec<u8>, seq: u64, end: u64) -> Cursor {
        Cursor::new(
            Arc::new(Bytes(bytes)),
            PathBuf::from("seg"),
            0,
            seq,
            end,
            1 << 20,
        )
    }

    fn corruption(r: Result<Option<(u64, Record)>>) -> Corruption {
        match r {
            Err(Error::Corruption(c)) => *c,
            other => panic!("expected corruption, got {other:?}"),
        }
    }

    #[test]
    fn records_read_in_order_pass() {
        let mut c = cursor(records(&[(5, 100), (6, 100), (7, 120)]), 5, 222);
        let seqs: Vec<(u64, u64)> = std::iter::from_fn(|| c.next_record().expect("valid"))
            .map(|(at, r)| (at, r.seq))
            .collect();
        assert_eq!(seqs, [(0, 5), (74, 6), (148, 7)]);
    }

    #[test]
    fn a_record_with_another_seq_than_expected_is_a_seq_gap() {
        // Started where seq 4 should be: the first record is already wrong.
        let mut c = cursor(records(&[(5, 100)]), 4, u64::MAX);
        let e = corruption(c.next_record());
        assert_eq!((e.offset, e.seq), (0, Some(4)));
        assert_eq!(
            e.kind,
            CorruptionKind::SeqGap {
                expected: 4,
                found: 5
            }
        );
        // A record that repeats its predecessor's seq.
        let mut c = cursor(records(&[(5, 100), (5, 100)]), 5, u64::MAX);
        assert_eq!(c.next_record().expect("first").map(|(_, r)| r.seq), Some(5));
        let e = corruption(c.next_record());
        assert_eq!((e.offset, e.seq), (74, Some(6)));
        assert_eq!(
            e.kind,
            CorruptionKind::SeqGap {
                expected: 6,
                found: 5
            }
        );
    }

    #[test]
    fn a_record_older_than_its_predecessor_is_a_time_regression() {
        let mut c = cursor(records(&[(5, 100), (6, 99)]), 5, u64::MAX);
        c.next_record().expect("first");
        let e = corruption(c.next_record());
        assert_eq!((e.offset, e.seq), (74, Some(6)));
        assert_eq!(
            e.kind,
            CorruptionKind::TimeRegression {
                previous: 100,
                found: 99
            }
        );
    }

    #[test]
    fn a_record_that_runs_past_the_records_end_is_a_bad_length() {
        let mut c = cursor(records(&[(5, 100), (6, 100)]), 5, 100);
        c.next_record().expect("first");
        let e = corruption(c.next_record());
        assert_eq!((e.offset, e.seq), (74, Some(6)));
        assert!(
            matches!(
                e.kind,
                CorruptionKind::BadField {
                    what: Structure::Record,
                    field: "payload_len",
                    ..
                }
            ),
            "{e}"
        );
    }
}
