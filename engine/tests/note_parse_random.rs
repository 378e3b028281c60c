//! Every public decoder of the note and Merkle modules on random bytes and on
//! seeded mutations of valid inputs (CHAINLOG_FUZZ_ITERS rounds, default
//! 5,000): never a panic, and whatever is accepted re-encodes to exactly the
//! bytes it came from (one spelling per value). The cargo-fuzz targets over
//! the same functions come later.

use engine::merkle::{self, Frontier, VerifyError};
use engine::note::{self, base64, Checkpoint, Note, SignerKey, VerifierKey};
use engine::testing::Rng;

fn iters() -> u64 {
    std::env::var("CHAINLOG_FUZZ_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5_000)
}

/// Bytes that often matter to these formats, so that mutations reach past
/// the first check.
const INTERESTING: &[u8] = b"\n\n+=/ 0\xe2\x80\x94AZaz09\x00\xff\r\t-";

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    engine::testing::fuzz::mutate_text(rng, input, INTERESTING, 4, 40)
}

/// How many inputs each decoder accepted: the mutations must reach them.
#[derive(Debug, Default)]
struct Accepted {
    notes: u64,
    opened: u64,
    checkpoints: u64,
    frontiers: u64,
    keys: u64,
}

/// Runs every decoder on `bytes`, checking the round-trip properties.
/// `signed` is every text the keys ever signed: a note that opens must
/// carry one of them unchanged.
fn decode_all(bytes: &[u8], keys: &[VerifierKey], signed: &[String], seen: &mut Accepted) {
    if let Ok(n) = Note::parse(bytes) {
        seen.notes += 1;
        assert_eq!(n.encode().as_bytes(), bytes, "note does not round-trip");
        let _ = n.verify(keys);
    }
    if let Ok(n) = note::open(bytes, keys) {
        seen.opened += 1;
        assert_eq!(n.encode().as_bytes(), bytes);
        assert!(
            signed.contains(&n.text),
            "a changed text verified: {:?}",
            n.text
        );
    }
    if let Ok(c) = Checkpoint::open(bytes, keys) {
        let n = Note::parse(bytes).expect("opened, so it parses");
        assert_eq!(c.encode().as_deref(), Ok(n.text.as_str()));
    }
    if let Ok(f) = Frontier::decode(bytes) {
        seen.frontiers += 1;
        assert_eq!(f.encode(), bytes, "frontier does not round-trip");
        let _ = f.root();
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    if let Ok(c) = Checkpoint::parse(text) {
        seen.checkpoints += 1;
        assert_eq!(
            c.encode().as_deref(),
            Ok(text),
            "checkpoint does not round-trip"
        );
    }
    if let Ok(k) = VerifierKey::parse(text) {
        seen.keys += 1;
        assert_eq!(k.to_string(), text, "verifier key does not round-trip");
    }
    if let Ok(k) = SignerKey::parse(text) {
        seen.keys += 1;
        assert_eq!(k.to_secret_string(), text, "signer key does not round-trip");
    }
    if let Ok(b) = base64::decode(text) {
        assert_eq!(base64::encode(&b), text, "base64 does not round-trip");
    }
}

#[test]
fn decoders_never_panic_and_accept_one_spelling() {
    let key = SignerKey::from_seed("example.com/log", &[5; 32]).expect("key");
    let keys = [key.verifier()];
    let mut f = Frontier::new();
    for i in 0..11u64 {
        f.push(merkle::leaf_hash(&i.to_le_bytes()));
    }
    let checkpoint = Checkpoint {
        origin: "example.com/log".into(),
        size: f.size(),
        root_hash: f.root(),
        extensions: vec!["ext".into()],
    };
    let seeds: Vec<Vec<u8>> = vec![
        checkpoint.sign(&key).expect("sign").into_bytes(),
        checkpoint.encode().expect("encode").into_bytes(),
        note::sign("two\nlines\n", &[&key])
            .expect("sign")
            .into_bytes(),
        key.verifier().to_string().into_bytes(),
        key.to_secret_string().into_bytes(),
        f.encode(),
        base64::encode(b"any bytes at all").into_bytes(),
    ];
    let signed = [
        checkpoint.encode().expect("encode"),
        "two\nlines\n".to_owned(),
    ];
    let mut seen = Accepted::default();
    for seed in &seeds {
        decode_all(seed, &keys, &signed, &mut seen);
    }
    let from_seeds = (
        seen.notes,
        seen.opened,
        seen.checkpoints,
        seen.frontiers,
        seen.keys,
    );
    assert_eq!(from_seeds, (2, 2, 1, 1, 2));
    let mut rng = Rng::new(0x0c2);
    for i in 0..iters() {
        let bytes = if i % 8 == 0 {
            let len = rng.below(200) as usize;
            rng.bytes(len)
        } else {
            mutate(&mut rng, &seeds[(i % seeds.len() as u64) as usize])
        };
        decode_all(&bytes, &keys, &signed, &mut seen);
    }
    eprintln!("accepted: {seen:?}");
    if iters() >= 1_000 {
        // Mutations that keep a note valid (in the text or the extension
        // line, which the signature then refuses) and frontiers whose count
        // still matches.
        assert!(seen.notes > from_seeds.0, "{seen:?}");
        assert!(seen.checkpoints > from_seeds.2, "{seen:?}");
        assert!(seen.frontiers > from_seeds.3, "{seen:?}");
    }
}

#[test]
fn verification_never_panics_on_any_sizes_or_proof() {
    let edges = [0, 1, 2, 3, 7, 8, 9, u64::MAX / 2, u64::MAX - 1, u64::MAX];
    let mut rng = Rng::new(0x0c3);
    let pick = |rng: &mut Rng| match rng.below(3) {
        0 => edges[rng.below(edges.len() as u64) as usize],
        1 => rng.below(64),
        _ => rng.next_u64() >> rng.below(64),
    };
    for _ in 0..iters() {
        let (a, b) = (pick(&mut rng), pick(&mut rng));
        let proof: Vec<[u8; 32]> = (0..rng.below(70))
            .map(|_| [rng.next_u64() as u8; 32])
            .collect();
        let h = [rng.next_u64() as u8; 32];
        // Random hashes verify only by a collision: the errors are the
        // sizes' or the proof length's, or a root mismatch.
        match merkle::verify_inclusion(a, b, &h, &proof, &h) {
            Ok(()) => assert!(a < b && proof.is_empty() && b == 1),
            Err(VerifyError::Size(_) | VerifyError::ProofLength { .. })
            | Err(VerifyError::RootMismatch { .. }) => {}
            Err(e) => panic!("inclusion: unexpected {e}"),
        }
        match merkle::verify_consistency(a, b, &h, &h, &proof) {
            Ok(()) => assert!(a == b && a > 0 && proof.is_empty()),
            Err(
                VerifyError::Size(_)
                | VerifyError::ProofLength { .. }
                | VerifyError::OldRootMismatch { .. }
                | VerifyError::NewRootMismatch { .. },
            ) => {}
            Err(e) => panic!("consistency: unexpected {e}"),
        }
    }
}
