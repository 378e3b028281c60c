//! chainlog's storage engine: a tamper-evident, append-only log of
//! SHA-256 hash-chained records in fsynced, sealed, write-once segment files
//! with sparse indexes.
//!
//! The layers, bottom up: [`chain`] (the hash chain, its digest and the
//! log's identity), the corruption kinds (re-exported from [`error`]),
//! [`format`](mod@format) (pure encode/decode of every on-disk structure),
//! [`storage`] (the file-system seam), `segment` (creation, sealing,
//! reading, indexes), `recovery` (opening a directory), `writer` (group
//! commit, over the state it shares with the API), [`Log`] (the API), and
//! [`verify`] (full verification). No two modules import each other.
//! `testing` (the storage doubles, the fuzz bodies and the seeded generator)
//! exists only with the `testing` feature, for tests, fuzz targets and
//! benches; production builds never enable it.
//! `docs/format.md` and `docs/durability.md` are the specification and the
//! crash argument.
//!
//! ```no_run
//! use engine::{Config, Log};
//! let log = Log::open("data/events", Config::default())?;
//! let receipt = log.append(b"{\"action\":\"user.login\"}")?;
//! assert_eq!(log.read(receipt.seq)?.payload, b"{\"action\":\"user.login\"}");
//! # Ok::<(), engine::Error>(())
//! ```

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod chain;
pub mod config;
mod corruption;
pub mod error;
pub mod format;
pub mod handoff;
mod log;
pub use tlog::merkle;
pub use tlog::note;
mod prove;
mod recovery;
mod segment;
mod shared;
pub mod storage;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod verify;
mod writer;

pub use chain::Hash;
pub use config::{Clock, Config, Durability, SystemClock, WriteObserver};
pub use error::{Corruption, CorruptionKind, Error, PoisonCause, Result};
pub use format::record::Record;
pub use log::{Head, Log, PendingAppend, Scan, SealedSegment, Stats};
pub use recovery::{RecoveryReport, TailCut};
pub use segment::{index_file_name, parse_segment_name, segment_file_name, walk};
pub use shared::Receipt;
