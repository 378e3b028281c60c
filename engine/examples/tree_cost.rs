//! The CPU the Merkle tree adds per record, beside the chain step it rides
//! on, measured on this machine (docs/benchmarks.md, issue 15's tree
//! figure). One thread: N records of a 256-byte payload, first the chain
//! step alone, then the chain step and the tree's work for the record (its
//! leaf hash and the frontier push, which hashes the nodes it completes).
//! Prints one JSON object. Not run in CI.
//!
//! ```text
//! cargo run --release -p chainlog-engine --example tree_cost -- [N]
//! ```

use std::time::Instant;

use engine::chain;
use engine::merkle::{leaf_hash, Frontier};

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .map_or(2_000_000, |a| a.parse().expect("N: a record count"));
    let payload = [0x5au8; 256];
    let chain_only = {
        let t = Instant::now();
        let mut h = [0u8; 32];
        for seq in 0..n {
            h = chain::step(&h, seq, seq, 1, &payload);
        }
        std::hint::black_box(h);
        t.elapsed().as_secs_f64() * 1e9 / n as f64
    };
    let with_tree = {
        let t = Instant::now();
        let mut h = [0u8; 32];
        let mut tree = Frontier::new();
        for seq in 0..n {
            h = chain::step(&h, seq, seq, 1, &payload);
            tree.push(leaf_hash(&h));
        }
        std::hint::black_box(tree.root());
        t.elapsed().as_secs_f64() * 1e9 / n as f64
    };
    println!(
        "{{\"records\": {n}, \"payload_bytes\": 256, \"chain_ns_per_record\": {chain_only:.1}, \"chain_and_tree_ns_per_record\": {with_tree:.1}, \"tree_ns_per_record\": {:.1}}}",
        with_tree - chain_only
    );
}
