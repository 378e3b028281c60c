//! The tlog-proof decoder on random bytes, on seeded mutations of valid
//! proofs (CHAINLOG_FUZZ_ITERS rounds, default 5,000) and on every
//! truncation: never a panic, whatever is accepted re-encodes to exactly
//! the bytes it came from, and nothing but the proof that was made
//! verifies for its record.

use engine::merkle::{self, MemoryTree};
use engine::note::{Checkpoint, Proof, SignerKey};
use engine::testing::Rng;
use engine::Hash;

fn iters() -> u64 {
    std::env::var("CHAINLOG_FUZZ_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5_000)
}

/// Bytes that matter to the format, so that mutations reach past the
/// first check.
const INTERESTING: &[u8] = b"\n\n+=/ 0123456789\xe2\x80\x94AZaz\x00\xff\rextra index @v1";

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    engine::testing::fuzz::mutate_text(rng, input, INTERESTING, 3, 50)
}

fn chain_hash(seq: u64) -> Hash {
    let mut h = [0xa5; 32];
    h[24..].copy_from_slice(&seq.to_le_bytes());
    h
}

/// A valid proof of record `seq` in a tree of `size` records.
struct Made {
    bytes: Vec<u8>,
    proof: Proof,
    seq: u64,
}

fn make(key: &SignerKey, size: u64, seq: u64, with_extra: bool) -> Made {
    let mut tree = MemoryTree::new();
    for i in 0..size {
        tree.push(merkle::leaf_hash(&chain_hash(i)));
    }
    let signed = Checkpoint {
        origin: key.name().into(),
        size,
        root_hash: merkle::root_at(&tree, size).expect("root"),
        extensions: vec!["ext".into()],
    }
    .sign(key)
    .expect("sign");
    let hashes = merkle::inclusion_proof(&tree, seq, size).expect("prove");
    let extra = with_extra.then(|| chain_hash(seq).to_vec());
    let proof = Proof::new(extra, seq, hashes, signed.as_bytes()).expect("proof");
    Made {
        bytes: proof.encode().into_bytes(),
        proof,
        seq,
    }
}

#[test]
fn the_decoder_never_panics_and_only_the_made_proofs_verify() {
    let key = SignerKey::from_seed("example.com/log", &[9; 32]).expect("key");
    let keys = [key.verifier()];
    let made = [
        make(&key, 1000, 42, true),
        make(&key, 13, 12, false),
        make(&key, 1, 0, true),
        make(&key, 64, 63, true),
    ];
    for m in &made {
        assert_eq!(Proof::parse(&m.bytes).as_ref(), Ok(&m.proof));
        assert!(m.proof.verify(&keys, &chain_hash(m.seq)).is_ok());
    }
    let mut rng = Rng::new(0x7109);
    let (mut parsed, mut verified) = (0u64, 0u64);
    for i in 0..iters() {
        let m = &made[(i % made.len() as u64) as usize];
        let bytes = if i % 10 == 0 {
            let len = rng.below(300) as usize;
            rng.bytes(len)
        } else {
            mutate(&mut rng, &m.bytes)
        };
        let Ok(p) = Proof::parse(&bytes) else {
            continue;
        };
        parsed += 1;
        assert_eq!(p.encode().as_bytes(), &bytes[..], "one spelling per proof");
        // Random hashes and other seqs: whatever the errors, no panic.
        let _ = p.verify(&keys, &[rng.next_u64() as u8; 32]);
        if p.verify(&keys, &chain_hash(m.seq)).is_ok() {
            verified += 1;
            // Only the extra line may differ (dropped, or another 32-byte
            // hash can't verify): the index, the proof and the signed
            // checkpoint are the ones made.
            assert_eq!(p.index(), m.proof.index());
            assert_eq!(p.hashes(), m.proof.hashes());
            assert_eq!(p.signed_checkpoint(), m.proof.signed_checkpoint());
        }
    }
    eprintln!("parsed {parsed}, verified {verified}");
    if iters() >= 1_000 {
        // Mutations that keep the shape (a flipped bit in a base64 proof
        // hash, a changed index digit) reach the verifier.
        assert!(parsed > 0, "no mutation parsed");
    }
}

#[test]
fn every_truncation_and_every_single_byte_change_is_refused_or_caught() {
    let key = SignerKey::from_seed("example.com/log", &[9; 32]).expect("key");
    let keys = [key.verifier()];
    let m = make(&key, 1000, 42, true);
    for len in 0..m.bytes.len() {
        assert!(
            Proof::parse(&m.bytes[..len]).is_err(),
            "a proof cut to {len} bytes parsed"
        );
    }
    // Each byte replaced by each of a few others: either not a proof, or a
    // proof that does not verify for record 42, or one whose only change is
    // in the unsigned extra line (a '=' made a digit: 33 bytes, no longer a
    // chain hash to cross-check) and that still proves the same thing.
    let mut changed_extra = 0;
    for at in 0..m.bytes.len() {
        for b in [b'0', b'A', b'+', b'\n', m.bytes[at] ^ 1] {
            if b == m.bytes[at] {
                continue;
            }
            let mut bytes = m.bytes.clone();
            bytes[at] = b;
            let Ok(p) = Proof::parse(&bytes) else {
                continue;
            };
            if p.verify(&keys, &chain_hash(42)).is_ok() {
                assert_ne!(p.extra(), m.proof.extra(), "byte {at} set to {b:#04x}");
                assert_eq!(p.index(), 42);
                assert_eq!(p.hashes(), m.proof.hashes());
                assert_eq!(p.signed_checkpoint(), m.proof.signed_checkpoint());
                changed_extra += 1;
            }
        }
    }
    // The padding '=' made '0', 'A' or '+': 33 bytes of extra data each.
    assert_eq!(changed_extra, 3);
}
