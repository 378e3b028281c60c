//! `chainlog verify-proof` as a process: a proof built from a Merkle tree
//! of records and a checkpoint signed with a generated key verifies (exit
//! 0), every tampering of the file is refused with the reason that names
//! it (exit 1), and bad input is a usage error (exit 2).

use std::path::{Path, PathBuf};
use std::process::Command;

use engine::merkle::{self, MemoryTree};
use engine::note::{base64, Checkpoint, Proof, SignerKey};
use engine::Hash;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_chainlog");
const ORIGIN: &str = "audit.example.com/default";
/// Records in the tree.
const N: u64 = 1000;
/// The record the proof is for.
const SEQ: u64 = 42;

/// A stand-in for record `seq`'s chain hash.
fn chain_hash(seq: u64) -> Hash {
    let mut h = [0x5a; 32];
    h[..8].copy_from_slice(&seq.to_be_bytes());
    h
}

fn key(seed: u8) -> SignerKey {
    SignerKey::from_seed(ORIGIN, &[seed; 32]).expect("key")
}

/// The tree of `N` records and its checkpoint at `size`, signed by `signer`.
fn signed_checkpoint(tree: &MemoryTree, size: u64, signer: &SignerKey) -> String {
    Checkpoint {
        origin: ORIGIN.into(),
        size,
        root_hash: merkle::root_at(tree, size).expect("root"),
        extensions: Vec::new(),
    }
    .sign(signer)
    .expect("sign")
}

struct Fixture {
    dir: tempfile::TempDir,
    tree: MemoryTree,
    /// The proof of `SEQ` at size `N`, signed by `key(1)`.
    text: String,
    vkey: String,
}

impl Fixture {
    fn new() -> Fixture {
        let mut tree = MemoryTree::new();
        for seq in 0..N {
            tree.push(merkle::leaf_hash(&chain_hash(seq)));
        }
        let signed = signed_checkpoint(&tree, N, &key(1));
        let hashes = merkle::inclusion_proof(&tree, SEQ, N).expect("prove");
        let proof =
            Proof::for_record(SEQ, &chain_hash(SEQ), hashes, signed.as_bytes()).expect("proof");
        Fixture {
            dir: tempfile::tempdir().expect("tempdir"),
            tree,
            text: proof.encode(),
            vkey: key(1).verifier().to_string(),
        }
    }

    /// Writes `contents` as a proof file.
    fn file(&self, name: &str, contents: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).expect("write");
        path
    }

    /// Runs verify-proof on `path` with the fixture's key and `extra` flags.
    fn run(&self, path: &Path, extra: &[&str]) -> (i32, String, String) {
        run(&[
            &["verify-proof", "--proof", path.to_str().expect("path")],
            &["--vkey", &self.vkey][..],
            extra,
        ]
        .concat())
    }

    /// The JSON verdict and exit code for proof text `contents`.
    fn json(&self, contents: &str, extra: &[&str]) -> (i32, Value) {
        let path = self.file("p.tlog-proof", contents.as_bytes());
        let (code, out, err) = self.run(&path, &[&["--json"], extra].concat());
        let doc = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
        (code, doc)
    }

    /// The error kind and message when `contents` is refused (exit 1).
    fn refused(&self, contents: &str, extra: &[&str]) -> (String, String) {
        let (code, doc) = self.json(contents, extra);
        assert_eq!(code, 1, "{doc:#}");
        assert_eq!(doc["valid"], false, "{doc:#}");
        let kind = doc["error"]["kind"].as_str().expect("kind").to_owned();
        let message = doc["error"]["message"]
            .as_str()
            .expect("message")
            .to_owned();
        assert_eq!(doc["summary"], format!("INVALID ({kind}): {message}"));
        (kind, message)
    }
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        // An API key in the environment must not be taken for the verifier key.
        .env("CHAINLOG_KEY", "clk_not_a_verifier_key")
        .env_remove("CHAINLOG_CONFIG")
        .env("HOME", "/nonexistent")
        .output()
        .expect("run chainlog");
    (
        out.status.code().expect("exit code"),
        String::from_utf8(out.stdout).expect("utf8"),
        String::from_utf8(out.stderr).expect("utf8"),
    )
}

fn hex(h: &Hash) -> String {
    engine::error::hex(h)
}

#[test]
fn a_valid_proof_exits_0_with_a_one_line_verdict() {
    let f = Fixture::new();
    let path = f.file("42.tlog-proof", f.text.as_bytes());
    let root = hex(&merkle::root_at(&f.tree, N).expect("root"));
    let key = key(1);
    let signer = format!("{ORIGIN}+{:08x}", key.id());
    let line = format!(
        "valid: record 42 with hash {} is in {ORIGIN} at tree size 1000 (root {root}), \
         checkpoint signed by {signer}",
        hex(&chain_hash(SEQ))
    );

    let (code, out, err) = f.run(&path, &[]);
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
    assert_eq!(
        out,
        format!("{line} (the hash is the proof's own: compare it with the record's receipt)\n")
    );

    let given = hex(&chain_hash(SEQ));
    let (code, out, _) = f.run(&path, &["--hash", &given]);
    assert_eq!((code, out), (0, format!("{line}\n")));
    let (code, out, _) = f.run(&path, &["--hash", &given.to_uppercase()]);
    assert_eq!((code, out), (0, format!("{line}\n")));

    // The key from a file, with its final newline.
    let key_file = f.file("log.vkey", format!("{}\n", f.vkey).as_bytes());
    let at = format!("@{}", key_file.display());
    let (code, out, _) = run(&[
        "verify-proof",
        "--proof",
        path.to_str().expect("path"),
        "--vkey",
        &at,
        "--hash",
        &given,
    ]);
    assert_eq!((code, out), (0, format!("{line}\n")));

    let (code, doc) = f.json(&f.text, &["--hash", &given]);
    assert_eq!(code, 0);
    assert_eq!(
        doc,
        serde_json::json!({
            "proof": f.dir.path().join("p.tlog-proof").display().to_string(),
            "valid": true,
            "seq": 42,
            "hash": given,
            "hash_source": "argument",
            "checkpoint": { "origin": ORIGIN, "size": 1000, "root": root },
            "key": signer,
            "error": null,
            "summary": line,
        })
    );
    let (_, doc) = f.json(&f.text, &[]);
    assert_eq!(doc["hash_source"], "proof");
}

#[test]
fn every_record_of_a_small_log_verifies_and_no_other_hash_does() {
    let signer = key(3);
    let vkey = signer.verifier().to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut tree = MemoryTree::new();
    for seq in 0..7 {
        tree.push(merkle::leaf_hash(&chain_hash(seq)));
    }
    let signed = signed_checkpoint(&tree, 7, &signer);
    for seq in 0..7 {
        let hashes = merkle::inclusion_proof(&tree, seq, 7).expect("prove");
        // No extra line: the hash comes only from --hash.
        let proof = Proof::new(None, seq, hashes, signed.as_bytes()).expect("proof");
        let path = dir.path().join(format!("{seq}.tlog-proof"));
        std::fs::write(&path, proof.encode()).expect("write");
        let p = path.to_str().expect("path");
        for other in 0..7 {
            let h = hex(&chain_hash(other));
            let (code, out, err) =
                run(&["verify-proof", "--proof", p, "--vkey", &vkey, "--hash", &h]);
            if other == seq {
                assert_eq!(code, 0, "{out}{err}");
            } else {
                assert_eq!(code, 1, "{out}{err}");
                assert!(
                    out.starts_with("INVALID (RootMismatch): inclusion: "),
                    "{out}"
                );
            }
        }
        // Without --hash there is nothing to check.
        let (code, out, err) = run(&["verify-proof", "--proof", p, "--vkey", &vkey]);
        assert_eq!((code, out.as_str()), (2, ""));
        assert!(err.contains("the proof names no record hash"), "{err}");
    }
}

#[test]
fn each_tampering_is_refused_with_its_reason() {
    let f = Fixture::new();
    let good = f.text.clone();
    let extra_line = format!("extra {}\n", base64::encode(&chain_hash(SEQ)));
    assert!(good.contains(&extra_line));

    // Another seq: the same depth in the tree, so the proof leads elsewhere.
    let (kind, msg) = f.refused(&good.replacen("index 42\n", "index 43\n", 1), &[]);
    assert_eq!(kind, "RootMismatch", "{msg}");
    // The last seq: 1000 leaves are perfect subtrees of 512, 256, 128, 64,
    // 32 and 8, so its proof is 3 hashes inside the 8 and one per larger
    // subtree: 8, not the 10 of a leaf inside the 512.
    let (kind, msg) = f.refused(&good.replacen("index 42\n", "index 999\n", 1), &[]);
    assert_eq!(
        (kind.as_str(), msg.as_str()),
        (
            "ProofLength",
            "inclusion: proof has 10 hashes where 8 are needed"
        )
    );

    // Another record's hash, given: the proof names another.
    let other = hex(&chain_hash(SEQ + 1));
    let (kind, msg) = f.refused(&good, &["--hash", &other]);
    assert_eq!(kind, "HashMismatch");
    assert_eq!(
        msg,
        format!(
            "the proof is for record hash {}, not {other}",
            hex(&chain_hash(SEQ))
        )
    );
    // The hash in the file edited: it is not in the tree at that seq.
    let swapped = good.replacen(
        &extra_line,
        &format!("extra {}\n", base64::encode(&chain_hash(SEQ + 1))),
        1,
    );
    assert_eq!(f.refused(&swapped, &[]).0, "RootMismatch");
    // ...and with the right hash given, the edit is named.
    let right = hex(&chain_hash(SEQ));
    assert_eq!(f.refused(&swapped, &["--hash", &right]).0, "HashMismatch");

    // An edited proof hash (still canonical base64 of 32 bytes).
    let proof = Proof::parse(good.as_bytes()).expect("parse");
    let first = base64::encode(&proof.hashes()[0]);
    let edited = good.replacen(&first, &base64::encode(&[0x11; 32]), 1);
    let (kind, msg) = f.refused(&edited, &[]);
    assert_eq!(kind, "RootMismatch");
    let root = hex(&merkle::root_at(&f.tree, N).expect("root"));
    assert!(msg.ends_with(&format!(", not {root}")), "{msg}");
    // A proof hash dropped.
    let (kind, msg) = f.refused(&good.replacen(&format!("{first}\n"), "", 1), &[]);
    assert_eq!(
        (kind.as_str(), msg.as_str()),
        (
            "ProofLength",
            "inclusion: proof has 9 hashes where 10 are needed"
        )
    );

    // The same checkpoint signed by another key of the same name.
    let split = good.find("\n\n").expect("separator") + 2;
    let resigned = format!(
        "{}{}",
        &good[..split],
        signed_checkpoint(&f.tree, N, &key(2))
    );
    let (kind, msg) = f.refused(&resigned, &[]);
    assert_eq!(kind, "UnknownKey");
    assert_eq!(
        msg,
        format!(
            "checkpoint signature: signed by {ORIGIN}+{:08x}, not by the key given ({ORIGIN}+{:08x})",
            key(2).id(),
            key(1).id()
        )
    );

    // An edited size or root: the signature no longer holds.
    let bad_sig = format!(
        "checkpoint signature: signature by {ORIGIN}+{:08x} does not verify",
        key(1).id()
    );
    let grown = good.replacen("\n1000\n", "\n1001\n", 1);
    assert_ne!(grown, good);
    assert_eq!(
        f.refused(&grown, &[]),
        ("BadSignature".into(), bad_sig.clone())
    );
    let root_b64 = base64::encode(&merkle::root_at(&f.tree, N).expect("root"));
    let rerooted = good.replacen(&root_b64, &base64::encode(&[0x22; 32]), 1);
    assert_ne!(rerooted, good);
    assert_eq!(f.refused(&rerooted, &[]), ("BadSignature".into(), bad_sig));

    // A checkpoint, validly signed, of a tree too small to hold the seq.
    let small = format!(
        "{}{}",
        &good[..split],
        signed_checkpoint(&f.tree, 40, &key(1))
    );
    let (kind, msg) = f.refused(&small, &[]);
    assert_eq!(
        (kind.as_str(), msg.as_str()),
        (
            "IndexOutOfRange",
            "inclusion: leaf index 42 is not inside a tree of 40 leaves"
        )
    );
}

#[test]
fn a_truncated_or_garbled_file_is_malformed() {
    let f = Fixture::new();
    let good = f.text.clone();
    let split = good.find("\n\n").expect("separator");
    let cuts = [
        (0, "first line is not c2sp.org/tlog-proof@v1"),
        (10, "first line is not c2sp.org/tlog-proof@v1"),
        (split / 2, "no empty line before the checkpoint"),
        (split + 1, "no empty line before the checkpoint"),
        (
            split + 2,
            "checkpoint: note text does not end with a newline",
        ),
        (
            split + 30,
            "checkpoint: note text does not end with a newline",
        ),
        (
            good.len() - 1,
            "checkpoint: note text does not end with a newline",
        ),
    ];
    for (len, message) in cuts {
        let (code, doc) = f.json(&good[..len], &[]);
        assert_eq!(code, 1, "cut at {len}: {doc:#}");
        assert_eq!(doc["error"]["kind"], "Malformed", "cut at {len}");
        assert_eq!(doc["error"]["message"], message, "cut at {len}");
        assert_eq!(doc["seq"], Value::Null);
        assert_eq!(doc["checkpoint"], Value::Null);
    }
    // Cut after the signature line's newline is gone and part of it: the
    // note has a text but no signature.
    let sig_line = good.rfind("\u{2014} ").expect("signature line");
    let (kind, msg) = f.refused(&good[..sig_line], &[]);
    assert_eq!(
        (kind.as_str(), msg.as_str()),
        ("Malformed", "checkpoint: note has no signature lines")
    );
    // Windows line ends.
    let (kind, msg) = f.refused(&good.replace('\n', "\r\n"), &[]);
    assert_eq!(
        (kind.as_str(), msg.as_str()),
        ("Malformed", "first line is not c2sp.org/tlog-proof@v1")
    );
    // Larger than the bound: refused by its length, not read whole.
    let big = format!("{good}{}", "x".repeat(1 << 20));
    let (kind, msg) = f.refused(&big, &[]);
    assert_eq!(kind, "Malformed");
    assert_eq!(
        msg,
        format!(
            "proof is {} bytes, more than the 1048576 allowed",
            (1 << 20) + 1
        )
    );
    // The text verdict is one line too.
    let path = f.file("cut.tlog-proof", &good.as_bytes()[..split]);
    let (code, out, _) = f.run(&path, &[]);
    assert_eq!(
        (code, out.as_str()),
        (
            1,
            "INVALID (Malformed): no empty line before the checkpoint\n"
        )
    );
}

#[test]
fn bad_input_is_a_usage_error() {
    let f = Fixture::new();
    let path = f.file("42.tlog-proof", f.text.as_bytes());
    let p = path.to_str().expect("path");
    let secret = key(1).to_secret_string();
    let not_hex = "g".repeat(64);
    let cases: [(Vec<&str>, &str); 6] = [
        (
            vec!["--vkey", "not-a-key"],
            "--vkey: not a verifier key: a key is name+keyid+key, found 1 '+'-separated parts",
        ),
        (vec!["--vkey", "@/nonexistent/key"], "/nonexistent/key: "),
        (
            vec!["--vkey", &f.vkey, "--hash", "abc"],
            "--hash: a hash is 64 hex digits",
        ),
        (
            vec!["--vkey", &f.vkey, "--hash", &not_hex],
            "--hash: not hex",
        ),
        (
            vec!["--vkey", &secret],
            "--vkey: not a verifier key: key ID \"KEY\" is not 8 lowercase hex digits",
        ),
        (
            vec!["--key", &f.vkey],
            "required arguments were not provided",
        ),
    ];
    for (flags, expected) in cases {
        let (code, out, err) = run(&[&["verify-proof", "--proof", p][..], &flags].concat());
        assert_eq!(code, 2, "{flags:?}: {out}{err}");
        assert_eq!(out, "", "{flags:?}");
        assert!(err.contains(expected), "{flags:?}: {err}");
    }
    let (code, out, err) = run(&[
        "verify-proof",
        "--proof",
        "/nonexistent/p.tlog-proof",
        "--vkey",
        &f.vkey,
        "--json",
    ]);
    assert_eq!(code, 2, "{err}");
    let doc: Value = serde_json::from_str(&out).expect("json");
    let msg = doc["error"].as_str().expect("error");
    assert!(msg.starts_with("/nonexistent/p.tlog-proof: "), "{msg}");
}

/// The text of the fenced block after `<!-- golden:NAME -->` in `doc`.
fn doc_block(doc: &str, name: &str) -> String {
    let marker = format!("<!-- golden:{name} -->");
    let at = doc.find(&marker).unwrap_or_else(|| panic!("no {marker}"));
    let rest = &doc[at + marker.len()..];
    let start = rest.find("```text\n").expect("text block") + "```text\n".len();
    let end = rest[start..].find("```").expect("block end") + start;
    rest[start..end].to_owned()
}

#[test]
fn the_documented_example_gives_the_documented_verdicts() {
    let docs = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/");
    let format = std::fs::read_to_string(format!("{docs}format.md")).expect("format.md");
    let cli = std::fs::read_to_string(format!("{docs}cli.md")).expect("cli.md");
    let dir = tempfile::tempdir().expect("tempdir");
    let proof = dir.path().join("seq3.tlog-proof");
    let key = dir.path().join("audit.vkey");
    let text = doc_block(&format, "tlog-proof");
    std::fs::write(&proof, &text).expect("write");
    std::fs::write(&key, doc_block(&format, "tlog-proof-vkey")).expect("write");
    let at = format!("@{}", key.display());
    let check = |path: &Path, expected: &str| {
        let (code, out, err) = run(&[
            "verify-proof",
            "--proof",
            path.to_str().expect("path"),
            "--vkey",
            &at,
            "--hash",
            "47dd001f8ff239021a4153b7ab29bc9a1da9b8d2d45ad2333f6120d45a93d6bf",
        ]);
        assert_eq!(out, expected, "{err}");
        code
    };
    assert_eq!(check(&proof, &doc_block(&cli, "verify-proof-valid")), 0);
    let edited = dir.path().join("edited.tlog-proof");
    let size_line = "\naudit.example.com/default\n5\n";
    assert!(text.contains(size_line));
    std::fs::write(
        &edited,
        text.replacen(size_line, "\naudit.example.com/default\n6\n", 1),
    )
    .expect("write");
    assert_eq!(check(&edited, &doc_block(&cli, "verify-proof-invalid")), 1);
}
