//! Client-side trust in a log's checkpoints: a [`Trust`] holds the keys a
//! log's checkpoints must be signed with and the newest checkpoint seen,
//! and takes a new one only if it extends that one. A server that rolls
//! its log back, forks it (other records at a size already seen) or
//! rewrites its past is caught the next time this client looks
//! ([`Client::verified_checkpoint`](crate::Client::verified_checkpoint)).
//! Two limits: the first checkpoint is trusted as it comes, and a server
//! that shows each client its own consistent branch (a split view) is
//! caught only by clients that compare checkpoints with each other (a
//! witness, or gossip).

use tlog::merkle::{self, VerifyError};
use tlog::note::{Checkpoint, CheckpointError, ProofVerifyError, VerifierKey};
use tlog::Hash;

/// Why a checkpoint or proof was not trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    /// The checkpoint is not signed by a trusted key, or is malformed.
    #[error("checkpoint not accepted: {0}")]
    Checkpoint(CheckpointError),
    /// The checkpoint names another log than the trusted one.
    #[error("checkpoint of origin {got:?}, not the trusted {trusted:?}")]
    OriginChanged {
        /// The trusted checkpoint's origin.
        trusted: String,
        /// The new one's.
        got: String,
    },
    /// The log has fewer records than a checkpoint already seen: it was
    /// rolled back (or truncated).
    #[error("the log rolled back: a checkpoint of {trusted} records was seen, now {got}")]
    RolledBack {
        /// The trusted size.
        trusted: u64,
        /// The new checkpoint's size.
        got: u64,
    },
    /// Two checkpoints of the same size with different roots: the log
    /// forked.
    #[error("the log forked: two checkpoints of {size} records with different roots")]
    Forked {
        /// The size both name.
        size: u64,
    },
    /// The server's consistency proof does not lead from the trusted
    /// checkpoint to the new one: the records the trusted one covers were
    /// changed.
    #[error("checkpoint of {new} records does not extend the trusted one of {old}: {cause}")]
    Inconsistent {
        /// The trusted size.
        old: u64,
        /// The new size.
        new: u64,
        /// What the check found.
        cause: VerifyError,
    },
    /// An inclusion proof that does not verify.
    #[error("inclusion proof of record {seq}: {cause}")]
    Inclusion {
        /// The record.
        seq: u64,
        /// What the check found.
        cause: ProofVerifyError,
    },
}

/// The keys a log's checkpoints must carry a signature of, and the newest
/// checkpoint accepted. Keep it across connections, and across restarts
/// with [`note`](Trust::note) and [`resume`](Trust::resume), so that what
/// one connection saw binds the next.
#[derive(Debug, Clone)]
pub struct Trust {
    keys: Vec<VerifierKey>,
    latest: Option<(Checkpoint, String)>,
}

impl Trust {
    /// Trust in checkpoints signed by one of `keys`, none seen yet.
    pub fn new(keys: Vec<VerifierKey>) -> Trust {
        Trust { keys, latest: None }
    }

    /// Trust that resumes from a checkpoint note seen before (as
    /// [`note`](Trust::note) gave it); it must verify with `keys`.
    pub fn resume(keys: Vec<VerifierKey>, note: &str) -> Result<Trust, TrustError> {
        let checkpoint =
            Checkpoint::open(note.as_bytes(), &keys).map_err(TrustError::Checkpoint)?;
        Ok(Trust {
            keys,
            latest: Some((checkpoint, note.to_owned())),
        })
    }

    /// The keys.
    pub fn keys(&self) -> &[VerifierKey] {
        &self.keys
    }

    /// The newest checkpoint accepted.
    pub fn latest(&self) -> Option<&Checkpoint> {
        self.latest.as_ref().map(|(c, _)| c)
    }

    /// The newest checkpoint accepted, as its signed note.
    pub fn note(&self) -> Option<&str> {
        self.latest.as_ref().map(|(_, n)| n.as_str())
    }

    /// Opens `note` with the trusted keys and says what is needed to accept
    /// it: nothing more, or a consistency proof from the trusted size.
    pub(crate) fn check(&self, note: &str) -> Result<(Checkpoint, Step), TrustError> {
        let new = Checkpoint::open(note.as_bytes(), &self.keys).map_err(TrustError::Checkpoint)?;
        let Some((old, _)) = &self.latest else {
            return Ok((new, Step::Accept));
        };
        if new.origin != old.origin {
            return Err(TrustError::OriginChanged {
                trusted: old.origin.clone(),
                got: new.origin,
            });
        }
        let step = if new.size < old.size {
            return Err(TrustError::RolledBack {
                trusted: old.size,
                got: new.size,
            });
        } else if new.size == old.size {
            if new.root_hash != old.root_hash {
                return Err(TrustError::Forked { size: new.size });
            }
            Step::Accept
        } else if old.size == 0 {
            // Every tree extends the empty one.
            Step::Accept
        } else {
            Step::Prove {
                old: old.size,
                old_root: old.root_hash,
            }
        };
        Ok((new, step))
    }

    /// Checks the consistency proof `hashes` from `old` to `new`.
    pub(crate) fn check_consistency(
        old: u64,
        old_root: &Hash,
        new: &Checkpoint,
        hashes: &[Hash],
    ) -> Result<(), TrustError> {
        merkle::verify_consistency(old, new.size, old_root, &new.root_hash, hashes).map_err(
            |cause| TrustError::Inconsistent {
                old,
                new: new.size,
                cause,
            },
        )
    }

    /// Makes `checkpoint` (signed as `note`) the newest accepted.
    pub(crate) fn accept(&mut self, checkpoint: Checkpoint, note: String) {
        self.latest = Some((checkpoint, note));
    }
}

/// What accepting a new checkpoint takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Nothing more.
    Accept,
    /// A consistency proof from the trusted size and root.
    Prove {
        /// The trusted size.
        old: u64,
        /// Its root.
        old_root: Hash,
    },
}
