//! The engine's error type.
//!
//! Three families are kept apart because callers react to them differently:
//! I/O failures (the disk said no: retry later, or fix the disk), corruption
//! (the bytes on disk are not what the engine wrote: stop and investigate),
//! and misuse or back-pressure (the caller asked for something invalid, or
//! the queue is full).

use std::io;
use std::path::{Path, PathBuf};

pub use crate::corruption::{hex, Corruption, CorruptionKind};

/// A `Result` whose error is the engine's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the engine can report. Non-exhaustive: a later version may
/// report more, so a match needs a fallback arm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file-system operation failed.
    #[error("{op} {}: {source}{}", path.display(), no_space_hint(source))]
    Io {
        /// What the engine was doing ("write", "fdatasync", ...).
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },

    /// Bytes on disk are not what the engine wrote.
    #[error(transparent)]
    Corruption(Box<Corruption>),

    /// An earlier write or sync failed; nothing more is acknowledged until
    /// the log is opened again (which runs recovery from the disk).
    #[error("log is poisoned by an earlier failure ({cause}); reopen it to recover from disk")]
    Poisoned {
        /// The failure that poisoned the log: the operation, the file and
        /// the kind of I/O error.
        cause: PoisonCause,
    },

    /// A group's records were durable, but publishing them would have moved
    /// the log's durable head backwards: a broken invariant of the write
    /// path (groups complete in write order), that is a bug in the engine,
    /// not a fault of the disk. The log is poisoned rather than acknowledge
    /// anything out of order.
    #[error("the durable head would move backwards: records before seq {head_next_seq} are published, and a group completing now ends before seq {group_next_seq} (a write-path bug; nothing more is acknowledged)")]
    HeadMovedBackwards {
        /// The seq after the last record that was already published.
        head_next_seq: u64,
        /// The seq after the completed group's last record.
        group_next_seq: u64,
    },

    /// The append queue is full; try again later.
    #[error("append queue is full ({depth} requests waiting)")]
    Busy {
        /// The configured queue depth.
        depth: usize,
    },

    /// Another process (or another `Log` in this one) has the log open.
    #[error("{} is locked: the log is open elsewhere (its LOCK file is held)", dir.display())]
    Locked {
        /// The log directory.
        dir: PathBuf,
    },

    /// The log has been closed, or its writer thread stopped.
    #[error("log is closed")]
    Closed,

    /// A record's payload exceeds the configured maximum.
    #[error("record payload of {len} bytes exceeds the maximum of {max}")]
    RecordTooLarge {
        /// The payload's length.
        len: usize,
        /// The configured maximum.
        max: usize,
    },

    /// A batch exceeds the configured maximum (counted as stored: payloads
    /// plus 64 bytes per record).
    #[error("batch of {bytes} bytes (as stored) exceeds the maximum of {max}")]
    BatchTooLarge {
        /// The batch's size as stored.
        bytes: usize,
        /// The configured maximum.
        max: usize,
    },

    /// An argument was invalid (empty batch, kind 0, bad configuration).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// A Merkle tree size past the log's durable records: no root or proof
    /// exists for it yet.
    #[error("tree size {size} is beyond the log's {durable} durable records")]
    TreeSizeBeyondDurable {
        /// The tree size asked for.
        size: u64,
        /// The number of durable records (the durable head's seq + 1).
        durable: u64,
    },

    /// A leaf index and tree size, or two tree sizes, that no Merkle proof
    /// exists for (an index at or past the size, an old size of 0 or
    /// larger than the new one).
    #[error("no Merkle proof: {0}")]
    InvalidTreeArguments(#[from] crate::merkle::SizeError),

    /// No durable record has this sequence number.
    #[error("no record with seq {seq} (head is {head:?})")]
    NotFound {
        /// The requested sequence number.
        seq: u64,
        /// The last durable sequence number, if any.
        head: Option<u64>,
    },
}

fn no_space_hint(e: &io::Error) -> &'static str {
    if e.kind() == io::ErrorKind::StorageFull {
        " (no space left on the device: free space, then reopen the log)"
    } else {
        ""
    }
}

impl Error {
    pub(crate) fn io(op: &'static str, path: &Path, source: io::Error) -> Error {
        Error::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }

    /// The corruption details, when this is a corruption error.
    pub fn corruption(&self) -> Option<&Corruption> {
        match self {
            Error::Corruption(c) => Some(c),
            _ => None,
        }
    }

    /// True when the device reported that it is full
    /// ([`io::ErrorKind::StorageFull`], `ENOSPC` on Unix).
    pub fn is_no_space(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == io::ErrorKind::StorageFull)
    }
}

/// The failure that poisoned a log, as every later call reports it: which
/// operation failed, on which file, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoisonCause {
    /// What failed: the I/O call (`"write"`, `"fdatasync"`,
    /// `"fdatasync footer"`, ...) or, for a failure that was not an I/O
    /// error, the step of the write path (`"roll segment"`,
    /// `"publish head"`).
    pub op: &'static str,
    /// The file or directory involved, when there was one.
    pub path: Option<PathBuf>,
    /// How the I/O call failed ([`io::ErrorKind::StorageFull`] for a full
    /// disk); `None` when the failure was not an I/O error.
    pub kind: Option<io::ErrorKind>,
    /// The failure as it was first reported.
    message: String,
}

impl PoisonCause {
    /// The cause that `e` makes, when it fails the step `during`: an I/O
    /// error names its own operation and file; an error that is already a
    /// poisoning keeps its cause.
    pub(crate) fn of(during: &'static str, e: &Error) -> PoisonCause {
        match e {
            Error::Io { op, path, source } => PoisonCause {
                op,
                path: Some(path.clone()),
                kind: Some(source.kind()),
                message: e.to_string(),
            },
            Error::Poisoned { cause } => cause.clone(),
            other => PoisonCause {
                op: during,
                path: other.corruption().map(|c| c.file.clone()),
                kind: None,
                message: format!("{during}: {other}"),
            },
        }
    }
}

impl std::fmt::Display for PoisonCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<Corruption> for Error {
    fn from(c: Corruption) -> Self {
        Error::Corruption(Box::new(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_recognised_by_its_kind() {
        let path = Path::new("/data/00000000000000000000.seg");
        // ENOSPC from the OS maps to StorageFull (Linux numbers it 28).
        let os = Error::io("write", path, io::Error::from_raw_os_error(28));
        assert!(os.is_no_space(), "{os}");
        assert!(
            os.to_string()
                .ends_with("(no space left on the device: free space, then reopen the log)"),
            "{os}"
        );
        // So does a storage double's error of that kind, with no errno.
        let kind = Error::io("write", path, io::ErrorKind::StorageFull.into());
        assert!(kind.is_no_space(), "{kind}");
        let eio = Error::io("write", path, io::Error::from_raw_os_error(5));
        assert!(!eio.is_no_space(), "{eio}");
        assert!(!eio.to_string().contains("no space"), "{eio}");
    }

    #[test]
    fn a_poison_cause_names_the_operation_the_file_and_the_kind() {
        let path = Path::new("/data/00000000000000000000.seg");
        let e = Error::io("fdatasync", path, io::Error::from_raw_os_error(5));
        let cause = PoisonCause::of("complete group", &e);
        assert_eq!(cause.op, "fdatasync");
        assert_eq!(cause.path.as_deref(), Some(path));
        assert_eq!(cause.kind, Some(io::Error::from_raw_os_error(5).kind()));
        assert_eq!(cause.to_string(), e.to_string());
        let poisoned = Error::Poisoned {
            cause: cause.clone(),
        };
        assert_eq!(
            poisoned.to_string(),
            format!("log is poisoned by an earlier failure ({e}); reopen it to recover from disk")
        );
        // A poisoning keeps its first cause.
        assert_eq!(PoisonCause::of("roll segment", &poisoned), cause);

        // Not an I/O error: the step that failed, and no kind.
        let e = Error::HeadMovedBackwards {
            head_next_seq: 9,
            group_next_seq: 7,
        };
        let cause = PoisonCause::of("publish head", &e);
        assert_eq!(
            (cause.op, cause.path.clone(), cause.kind),
            ("publish head", None, None)
        );
        assert_eq!(cause.to_string(), format!("publish head: {e}"));
    }
}
