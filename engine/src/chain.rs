//! The hash chain: `hash_n = SHA-256(hash_{n-1} || seq || created_at || kind || payload)`,
//! integers little-endian, starting from a genesis hash derived from the
//! log's identity. The chain's digest ([`Hash`](type@Hash)) and the identity it starts
//! from ([`LogId`]) are defined here, below the format that stores them.

use sha2::{Digest, Sha256};

/// A SHA-256 digest: a record's chain hash, a segment's link to the one
/// before it.
pub type Hash = [u8; HASH_LEN];

/// Length of a [`Hash`](type@Hash) in bytes.
pub const HASH_LEN: usize = 32;

/// Length of the random identity of a log, carried in every segment header.
pub const LOG_ID_LEN: usize = 16;

/// The identity of a log: random, chosen when the log is created; the
/// genesis hash is derived from it.
pub type LogId = [u8; LOG_ID_LEN];

/// Domain separation for the genesis hash, so that it cannot collide with a
/// record hash.
const GENESIS_DOMAIN: &[u8] = b"chainlog genesis v1\0";

/// The hash that the first record of a log chains from:
/// `SHA-256("chainlog genesis v1\0" || log_id)`.
pub fn genesis(log_id: &LogId) -> Hash {
    let mut h = Sha256::new();
    h.update(GENESIS_DOMAIN);
    h.update(log_id);
    h.finalize().into()
}

/// Where the chain stands after a record: what the next record must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainState {
    /// The seq the next record must have.
    pub next_seq: u64,
    /// The hash the next record chains from.
    pub prev_hash: Hash,
    /// The next record's `created_at` may not be earlier than this.
    pub last_created_at: u64,
}

/// One step of the chain.
pub fn step(prev: &Hash, seq: u64, created_at: u64, kind: u8, payload: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(seq.to_le_bytes());
    h.update(created_at.to_le_bytes());
    h.update([kind]);
    h.update(payload);
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_matches_one_shot_sha256_of_the_concatenation() {
        let prev = [7u8; 32];
        let mut input = Vec::new();
        input.extend_from_slice(&prev);
        input.extend_from_slice(&42u64.to_le_bytes());
        input.extend_from_slice(&1_700_000_000_000_000_000u64.to_le_bytes());
        input.push(1);
        input.extend_from_slice(b"payload");
        let expected: Hash = Sha256::digest(&input).into();
        assert_eq!(
            step(&prev, 42, 1_700_000_000_000_000_000, 1, b"payload"),
            expected
        );
    }

    #[test]
    fn genesis_depends_on_log_id() {
        assert_ne!(genesis(&[0; 16]), genesis(&[1; 16]));
        let expected: Hash =
            Sha256::digest(b"chainlog genesis v1\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0").into();
        assert_eq!(genesis(&[0; 16]), expected);
    }
}
