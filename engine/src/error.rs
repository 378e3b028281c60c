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

/// Everything the engine can report.
#[derive(Debug, thiserror::Error)]
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
        /// The failure that poisoned the log.
        cause: String,
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
    if e.raw_os_error() == Some(28) {
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

    /// True when the device reported that it is full (`ENOSPC`).
    pub fn is_no_space(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.raw_os_error() == Some(28))
    }
}

impl From<Corruption> for Error {
    fn from(c: Corruption) -> Self {
        Error::Corruption(Box::new(c))
    }
}

