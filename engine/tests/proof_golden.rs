//! Ties the tlog-proof example in docs/format.md to the code: a log of five
//! records (real chain hashes), its tree, a checkpoint signed with a fixed
//! key, and the proof of seq 3 must encode to the document's block, and the
//! document's verifier key must be that key's. Set CHAINLOG_PRINT_GOLDEN=1
//! to print the blocks.

use engine::chain;
use engine::format::record::KIND_DATA;
use engine::merkle::{self, MemoryTree};
use engine::note::{Checkpoint, Proof, SignerKey};
use engine::Hash;

const ORIGIN: &str = "audit.example.com/default";
const T0: u64 = 1_700_000_000_000_000_000;

/// The chain hashes of records 0..5 of the example log.
fn chain_hashes() -> Vec<Hash> {
    let mut prev = chain::genesis(b"chainlog-example");
    (0..5u64)
        .map(|seq| {
            prev = chain::step(
                &prev,
                seq,
                T0 + seq,
                KIND_DATA,
                format!("event {seq}").as_bytes(),
            );
            prev
        })
        .collect()
}

fn example() -> (SignerKey, Proof, Hash) {
    let key = SignerKey::from_seed(ORIGIN, &[0x42; 32]).expect("key");
    let hashes = chain_hashes();
    let mut tree = MemoryTree::new();
    for h in &hashes {
        tree.push(merkle::leaf_hash(h));
    }
    let signed = Checkpoint {
        origin: ORIGIN.into(),
        size: 5,
        root_hash: merkle::root_at(&tree, 5).expect("root"),
        extensions: Vec::new(),
    }
    .sign(&key)
    .expect("sign");
    let path = merkle::inclusion_proof(&tree, 3, 5).expect("prove");
    let proof = Proof::for_record(3, &hashes[3], path, signed.as_bytes()).expect("proof");
    (key, proof, hashes[3])
}

/// The text of the fenced block after `<!-- golden:NAME -->` in the doc.
fn doc_block(doc: &str, name: &str) -> String {
    let marker = format!("<!-- golden:{name} -->");
    let at = doc
        .find(&marker)
        .unwrap_or_else(|| panic!("docs/format.md has no {marker}"));
    let rest = &doc[at + marker.len()..];
    let start = rest.find("```text\n").expect("text block") + "```text\n".len();
    let end = rest[start..].find("```").expect("block end") + start;
    rest[start..end].to_owned()
}

#[test]
fn the_documented_proof_is_the_code_s() {
    let (key, proof, hash) = example();
    let text = proof.encode();
    let vkey = format!("{}\n", key.verifier());
    if std::env::var_os("CHAINLOG_PRINT_GOLDEN").is_some() {
        println!("<!-- golden:tlog-proof -->\n```text\n{text}```\n");
        println!("<!-- golden:tlog-proof-vkey -->\n```text\n{vkey}```\n");
        println!("record 3 chain hash {}", engine::error::hex(&hash));
    }
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/format.md"))
        .expect("docs/format.md");
    assert_eq!(doc_block(&doc, "tlog-proof"), text);
    assert_eq!(doc_block(&doc, "tlog-proof-vkey"), vkey);
    assert_eq!(
        Proof::parse(text.as_bytes()).map(|p| p.chain_hash()),
        Ok(Some(hash))
    );
    assert_eq!(
        proof.verify(&[key.verifier()], &hash).map(|c| c.size),
        Ok(5)
    );
    // As the document explains it: leaf 2, the node over leaves 0 and 1,
    // leaf 4.
    let leaf: Vec<Hash> = chain_hashes()
        .iter()
        .map(|h| merkle::leaf_hash(h))
        .collect();
    assert_eq!(
        proof.hashes(),
        [leaf[2], merkle::node_hash(&leaf[0], &leaf[1]), leaf[4]]
    );
}
