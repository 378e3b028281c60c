//! What a reader needs to check a chainlog log's commitments with nothing
//! but a public key: the Merkle tree over a log's records and its proofs
//! ([`merkle`], RFC 6962 / RFC 9162), and the signed notes that carry
//! checkpoints and inclusion proofs ([`note`], the C2SP `signed-note`,
//! `tlog-checkpoint` and `tlog-proof` formats).
//!
//! It does no I/O and knows nothing of segment files, so a verifier (the
//! client, `chainlog verify-proof`) needs it and not the storage engine.
//! The engine re-exports both modules as `engine::merkle` and
//! `engine::note`.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod merkle;
pub mod note;

/// A SHA-256 digest.
pub type Hash = [u8; 32];
