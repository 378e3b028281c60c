//! The query index: a summary of every block of [`BLOCK`] consecutive
//! events, built by following the log, so that a query skips blocks that
//! cannot hold a match instead of decoding every event.
//!
//! Each block keeps the range of its events' `occurred_at` (a block range
//! index, as PostgreSQL's BRIN) and a 1,024-bit Bloom filter of their
//! tenants. `created_at` needs no summary: the engine's time index seeks
//! it. Blocks cover events below [`EventIndex::indexed`]; events above are
//! scanned without skipping. The index is derived data, held in memory
//! (about 150 bytes per 256 events: 6 MB for 10 million) and rebuilt on
//! start.

use std::hash::{Hash, Hasher};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

/// Events per block.
pub const BLOCK: u64 = 256;
const BLOOM_WORDS: usize = 16;
const BLOOM_BITS: u64 = BLOOM_WORDS as u64 * 64;

#[derive(Debug, Clone)]
struct Block {
    min_occurred: u64,
    max_occurred: u64,
    tenants: [u64; BLOOM_WORDS],
}

impl Default for Block {
    fn default() -> Self {
        Block {
            min_occurred: u64::MAX,
            max_occurred: 0,
            tenants: [0; BLOOM_WORDS],
        }
    }
}

/// A tenant's Bloom probes, computed once per query.
#[derive(Debug, Clone, Copy)]
pub struct TenantProbe([u64; 3]);

impl TenantProbe {
    /// The probes for `tenant`.
    pub fn new(tenant: &str) -> Self {
        // SipHash with fixed keys: the same bits on every run.
        #[allow(deprecated)]
        let mut h = std::hash::SipHasher::new();
        tenant.hash(&mut h);
        let x = h.finish();
        let (a, b) = (x & 0xffff_ffff, (x >> 32) | 1);
        TenantProbe([
            a % BLOOM_BITS,
            a.wrapping_add(b) % BLOOM_BITS,
            a.wrapping_add(2 * b) % BLOOM_BITS,
        ])
    }

    fn set(&self, bloom: &mut [u64; BLOOM_WORDS]) {
        for &bit in &self.0 {
            bloom[(bit / 64) as usize] |= 1 << (bit % 64);
        }
    }

    fn maybe_in(&self, bloom: &[u64; BLOOM_WORDS]) -> bool {
        self.0
            .iter()
            .all(|&bit| bloom[(bit / 64) as usize] & (1 << (bit % 64)) != 0)
    }
}

/// What a query can skip on.
#[derive(Debug, Clone, Default)]
pub struct Skip {
    /// Only these tenants (empty: any).
    pub tenants: Vec<TenantProbe>,
    /// Only `occurred_at` in this range.
    pub occurred: Option<Range<u64>>,
}

/// Block summaries of one log.
#[derive(Debug, Default)]
pub struct EventIndex {
    blocks: RwLock<Vec<Block>>,
    indexed: AtomicU64,
}

impl EventIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Events below this seq are summarised.
    pub fn indexed(&self) -> u64 {
        self.indexed.load(Ordering::Acquire)
    }

    /// Adds events, which must continue from [`indexed`](Self::indexed)
    /// in seq order: `(seq, tenant, occurred_at)`.
    pub fn add<'a>(&self, events: impl IntoIterator<Item = (u64, &'a str, u64)>) {
        let mut blocks = self.blocks.write();
        let mut next = self.indexed.load(Ordering::Acquire);
        for (seq, tenant, occurred) in events {
            assert_eq!(seq, next, "index fed out of order");
            let b = (seq / BLOCK) as usize;
            if blocks.len() <= b {
                blocks.resize(b + 1, Block::default());
            }
            let block = &mut blocks[b];
            block.min_occurred = block.min_occurred.min(occurred);
            block.max_occurred = block.max_occurred.max(occurred);
            TenantProbe::new(tenant).set(&mut block.tenants);
            next += 1;
        }
        self.indexed.store(next, Ordering::Release);
    }

    /// The seq ranges within `range` that may hold a match: whole blocks
    /// the summaries cannot rule out, adjacent ones merged, and everything
    /// not yet indexed.
    pub fn candidates(&self, range: Range<u64>, skip: &Skip) -> Vec<Range<u64>> {
        let mut out: Vec<Range<u64>> = Vec::new();
        if range.start >= range.end {
            return out;
        }
        let indexed = self.indexed();
        let mut push = |r: Range<u64>| match out.last_mut() {
            Some(last) if last.end == r.start => last.end = r.end,
            _ => out.push(r),
        };
        if skip.tenants.is_empty() && skip.occurred.is_none() {
            push(range);
            return out;
        }
        let blocks = self.blocks.read();
        let mut seq = range.start;
        while seq < range.end.min(indexed) {
            let b = (seq / BLOCK) as usize;
            let end = ((b as u64 + 1) * BLOCK).min(range.end).min(indexed);
            let keep = blocks.get(b).is_none_or(|block| {
                let tenant_ok = skip.tenants.is_empty()
                    || skip.tenants.iter().any(|t| t.maybe_in(&block.tenants));
                let time_ok = skip
                    .occurred
                    .as_ref()
                    .is_none_or(|r| block.min_occurred < r.end && block.max_occurred >= r.start);
                tenant_ok && time_ok
            });
            if keep {
                push(seq..end);
            }
            seq = end;
        }
        if seq < range.end {
            push(seq..range.end);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_skipped_only_when_they_cannot_match() {
        let idx = EventIndex::new();
        // Blocks 0 and 1: tenant a, occurred 0..512; block 2: tenant b, 10_000..
        let names: Vec<(u64, &str, u64)> = (0..3 * BLOCK)
            .map(|s| {
                if s < 2 * BLOCK {
                    (s, "a", s)
                } else {
                    (s, "b", 10_000 + s)
                }
            })
            .collect();
        idx.add(names.iter().copied());
        assert_eq!(idx.indexed(), 3 * BLOCK);
        let tenant = |t: &str| Skip {
            tenants: vec![TenantProbe::new(t)],
            occurred: None,
        };
        assert_eq!(idx.candidates(0..1000, &tenant("b")), vec![512..1000]);
        assert_eq!(
            idx.candidates(0..1000, &tenant("a")),
            vec![0..512, 768..1000]
        );
        let time = Skip {
            tenants: vec![],
            occurred: Some(300..301),
        };
        assert_eq!(idx.candidates(10..700, &time), vec![256..512]);
        assert_eq!(idx.candidates(5..5, &time), Vec::<Range<u64>>::new());
    }
}
