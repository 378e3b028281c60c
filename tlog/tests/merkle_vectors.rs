//! RFC 6962 Merkle hashing and proofs against published test vectors:
//! transparency-dev/merkle's inclusion and consistency probes (copied as data
//! into tests/data/merkle, see its README) and the reference tree of 8 leaves
//! from the same repository's `testonly/constants.go` (the hex below, used as
//! data; commit 417fb0c314750d94e53942e9f92e79b6d35915db).

use std::path::{Path, PathBuf};

use serde_json::Value;
use tlog::merkle::{
    self, consistency_proof, inclusion_proof, leaf_hash, root_at, verify_consistency,
    verify_inclusion, Frontier, MemoryTree, SubtreeSource,
};
use tlog::note::base64;
use tlog::Hash;

/// The reference tree's leaf data, in hex.
const LEAF_INPUTS: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];

/// The roots of the trees of the first 0..=8 leaves.
const ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// Every perfect subtree of the 8-leaf tree, by level then index.
const NODES: [&[&str]; 4] = [
    &[
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ],
    &[
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    ],
    &[
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    &["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
];

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex {s:?}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn hash_hex(s: &str) -> Hash {
    unhex(s).try_into().expect("32 bytes")
}

fn reference_tree() -> MemoryTree {
    let mut t = MemoryTree::new();
    for l in LEAF_INPUTS {
        t.push(leaf_hash(&unhex(l)));
    }
    t
}

#[test]
fn reference_tree_roots_and_nodes() {
    let t = reference_tree();
    let mut f = Frontier::new();
    assert_eq!(f.root(), hash_hex(ROOTS[0]));
    assert_eq!(merkle::empty_root(), hash_hex(ROOTS[0]));
    for (size, l) in LEAF_INPUTS.iter().enumerate() {
        f.push(leaf_hash(&unhex(l)));
        assert_eq!(f.root(), hash_hex(ROOTS[size + 1]), "root of {}", size + 1);
    }
    for (size, root) in ROOTS.iter().enumerate() {
        assert_eq!(root_at(&t, size as u64), Ok(hash_hex(root)));
    }
    for (level, row) in NODES.iter().enumerate() {
        for (index, node) in row.iter().enumerate() {
            assert_eq!(
                t.subtree(level as u32, index as u64),
                Ok(hash_hex(node)),
                "node {level}/{index}"
            );
        }
    }
}

fn data_dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/merkle")
        .join(kind)
}

/// Every `.json` file under `dir`, sorted, with its path relative to the
/// data folder.
fn vectors(kind: &str) -> Vec<(String, Value)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "json") {
                out.push(path);
            }
        }
    }
    let root = data_dir(kind);
    let mut paths = Vec::new();
    walk(&root, &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let name = format!(
                "{kind}/{}",
                p.strip_prefix(&root).expect("under root").display()
            );
            let json = serde_json::from_slice(&std::fs::read(&p).expect("read")).expect("json");
            (name, json)
        })
        .collect()
}

fn bytes(v: &Value) -> Vec<u8> {
    base64::decode(v.as_str().expect("base64 string")).expect("base64")
}

/// A field that must be a hash; `None` when the vector gives another length
/// (which `[u8; 32]` cannot hold: refused before any hashing).
fn hash(v: &Value) -> Option<Hash> {
    bytes(v).try_into().ok()
}

fn proof(v: &Value) -> Option<Vec<Hash>> {
    match v {
        Value::Null => Some(Vec::new()),
        Value::Array(items) => items.iter().map(hash).collect(),
        other => panic!("proof is {other}"),
    }
}

fn number(v: &Value) -> u64 {
    v.as_u64().expect("u64")
}

#[test]
fn inclusion_vectors() {
    let (mut accepted, mut refused) = (0, 0);
    for (name, v) in vectors("inclusion") {
        let want_err = v["wantErr"].as_bool().expect("wantErr");
        let outcome = match (hash(&v["leafHash"]), hash(&v["root"]), proof(&v["proof"])) {
            (Some(leaf), Some(root), Some(proof)) => verify_inclusion(
                number(&v["leafIdx"]),
                number(&v["treeSize"]),
                &leaf,
                &proof,
                &root,
            )
            .map_err(|e| e.to_string()),
            _ => Err("a field is not 32 bytes".to_owned()),
        };
        match outcome {
            Ok(()) => {
                assert!(!want_err, "{name}: accepted, must be refused");
                accepted += 1;
            }
            Err(e) => {
                assert!(want_err, "{name}: refused ({e}), must be accepted");
                refused += 1;
            }
        }
    }
    assert_eq!((accepted, refused), (6, 92));
}

/// The one consistency vector that a typed hash cannot express: it checks
/// that equal sizes with an empty proof pass when the two "roots" are the
/// same 14 bytes. Its typed equivalent (the same 32 bytes twice) is run
/// instead.
const SAME_ROOTS_NOT_HASHES: &str =
    "consistency/additional/sizes-are-equal-one-and-proof-is-empty.json";

#[test]
fn consistency_vectors() {
    let (mut accepted, mut refused) = (0, 0);
    for (name, v) in vectors("consistency") {
        let want_err = v["wantErr"].as_bool().expect("wantErr");
        let (old_size, new_size) = (number(&v["size1"]), number(&v["size2"]));
        let outcome = match (hash(&v["root1"]), hash(&v["root2"]), proof(&v["proof"])) {
            (Some(r1), Some(r2), Some(p)) => {
                verify_consistency(old_size, new_size, &r1, &r2, &p).map_err(|e| e.to_string())
            }
            _ if name == SAME_ROOTS_NOT_HASHES => {
                assert_eq!(bytes(&v["root1"]), bytes(&v["root2"]));
                assert!(proof(&v["proof"]).is_some_and(|p| p.is_empty()));
                let r = leaf_hash(&bytes(&v["root1"]));
                verify_consistency(old_size, new_size, &r, &r, &[]).map_err(|e| e.to_string())
            }
            _ => Err("a field is not 32 bytes".to_owned()),
        };
        match outcome {
            Ok(()) => {
                assert!(!want_err, "{name}: accepted, must be refused");
                accepted += 1;
            }
            Err(e) => {
                assert!(want_err, "{name}: refused ({e}), must be accepted");
                refused += 1;
            }
        }
    }
    assert_eq!((accepted, refused), (6, 92));
}

/// Our generated proofs are exactly the happy-path vectors' proofs.
#[test]
fn generated_proofs_equal_the_happy_paths() {
    let t = reference_tree();
    let mut checked = 0;
    for (name, v) in vectors("inclusion") {
        if !name.ends_with("happy-path.json") {
            continue;
        }
        let (index, size) = (number(&v["leafIdx"]), number(&v["treeSize"]));
        let expected = proof(&v["proof"]).expect("hashes");
        assert_eq!(
            inclusion_proof(&t, index, size).ok(),
            Some(expected),
            "{name}"
        );
        assert_eq!(hash(&v["root"]), root_at(&t, size).ok(), "{name}");
        checked += 1;
    }
    for (name, v) in vectors("consistency") {
        if !name.ends_with("happy-path.json") {
            continue;
        }
        let (old, new) = (number(&v["size1"]), number(&v["size2"]));
        let expected = proof(&v["proof"]).expect("hashes");
        assert_eq!(
            consistency_proof(&t, old, new).ok(),
            Some(expected),
            "{name}"
        );
        checked += 1;
    }
    assert_eq!(checked, 10);
}
