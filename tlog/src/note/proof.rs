//! Inclusion proofs as files (C2SP `tlog-proof`, version 1): with the log's
//! public key and the record's hash, all an auditor needs to check offline,
//! without the log or a server, that a record is in a signed checkpoint.
//!
//! ```text
//! c2sp.org/tlog-proof@v1\n
//! extra <base64>\n             optional, never empty: opaque, unauthenticated
//! index <leaf index>\n         canonical decimal (no sign, no leading zero)
//! <base64 hash>\n ...          the inclusion proof, lowest sibling first
//! \n
//! <the signed checkpoint note, verbatim>
//! ```
//!
//! chainlog's leaves are its records: leaf `index` is the record of that
//! seq, and its leaf data is the record's 32-byte chain hash (leaf hash
//! `SHA-256(0x00 || chain hash)`, see [`merkle`]). A chainlog proof's
//! `extra` is that chain hash, so that the file names the record it proves
//! ([`Proof::for_record`], [`Proof::chain_hash`]). It is not signed: the
//! verifier checks the hash it expects (from its receipt), and the proof's
//! is only a default and a cross-check ([`Proof::verify`]).
//!
//! Strict, so that a proof has one spelling: the header exactly, at most
//! [`MAX_PROOF_HASHES`] proof lines, each the canonical base64 of 32 bytes,
//! at most [`MAX_PROOF_LEN`] bytes in all, and the checkpoint a signed note
//! whose text is a checkpoint. [`Proof::parse`] never panics, whatever the
//! bytes.

use thiserror::Error;

use super::base64::{self, Base64Error};
use super::VerifierKey;
use super::{parse_decimal, Checkpoint, CheckpointError, DecimalProblem, Note, NoteError};
use crate::merkle::{self, SizeError, VerifyError};
use crate::Hash;

/// The first line of a version 1 proof.
pub const HEADER: &str = "c2sp.org/tlog-proof@v1";

/// The largest proof file read or written, in bytes (the checkpoint note
/// included).
pub const MAX_PROOF_LEN: usize = 1 << 20;

/// The most proof hashes: a tree of at most `u64::MAX` leaves is at most 64
/// levels deep.
pub const MAX_PROOF_HASHES: usize = 64;

/// What starts the optional second line.
const EXTRA_PREFIX: &str = "extra ";

/// What starts the index line.
const INDEX_PREFIX: &str = "index ";

/// Why bytes are not a proof (or parts are not one, when building it).
/// Line numbers count the file's lines from 1.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProofError {
    /// Longer than [`MAX_PROOF_LEN`].
    #[error("proof is {len} bytes, more than the {max} allowed")]
    TooLarge {
        /// Its length.
        len: usize,
        /// [`MAX_PROOF_LEN`].
        max: usize,
    },
    /// Not UTF-8.
    #[error("proof is not UTF-8 from byte {offset}")]
    NotUtf8 {
        /// Where the valid UTF-8 ends.
        offset: usize,
    },
    /// The first line is not [`HEADER`].
    #[error("first line is not {HEADER}")]
    Header,
    /// No empty line ends the proof lines, so there is no checkpoint (a
    /// file cut short ends this way).
    #[error("no empty line before the checkpoint")]
    NoCheckpoint,
    /// An `extra` line with nothing after `extra ` (no extra data is
    /// written as no line).
    #[error("line 2: empty extra data")]
    EmptyExtra,
    /// The extra data is not canonical base64.
    #[error("line 2: extra data is not canonical base64: {0}")]
    Extra(Base64Error),
    /// The line where `index N` belongs is something else.
    #[error("line {line}: expected \"index N\"")]
    NoIndex {
        /// The line's number.
        line: usize,
    },
    /// The index is not a canonical decimal number.
    #[error("line {line}: index is not a canonical decimal number: {problem:?}")]
    Index {
        /// The line's number.
        line: usize,
        /// What is wrong with it.
        problem: DecimalProblem,
    },
    /// A proof line is not canonical base64.
    #[error("line {line}: proof hash is not canonical base64: {error}")]
    HashBase64 {
        /// The line's number.
        line: usize,
        /// What is wrong with it.
        error: Base64Error,
    },
    /// A proof line decodes to other than 32 bytes.
    #[error("line {line}: proof hash is {found} bytes, not 32")]
    HashLength {
        /// The line's number.
        line: usize,
        /// The decoded length.
        found: usize,
    },
    /// More than [`MAX_PROOF_HASHES`] proof lines.
    #[error("more than {max} proof hashes")]
    TooManyHashes {
        /// [`MAX_PROOF_HASHES`].
        max: usize,
    },
    /// The checkpoint is not a signed note, or its text not a checkpoint.
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
}

/// Why a well-formed proof does not prove what it was asked to. Checked in
/// this order: the signature, the record hash, the inclusion.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProofVerifyError {
    /// The checkpoint is not signed by a key given, or a given key's
    /// signature on it fails (its text was edited, or it was re-signed).
    #[error("checkpoint signature: {0}")]
    Signature(NoteError),
    /// The proof names another record hash than the one checked.
    #[error(
        "the proof is for record hash {}, not {}",
        merkle::Hex(.carried),
        merkle::Hex(.given)
    )]
    HashMismatch {
        /// The hash the verifier expects.
        given: Hash,
        /// The hash the proof's `extra` line carries.
        carried: Hash,
    },
    /// The proof does not lead from the record's leaf to the checkpoint's
    /// root at its size.
    #[error("inclusion: {0}")]
    Inclusion(VerifyError),
}

impl ProofVerifyError {
    /// A stable name for scripts: `UnknownKey` (no signature by a key
    /// given), `BadSignature`, `HashMismatch`, `IndexOutOfRange` (the index
    /// is at or past the checkpoint's size), `ProofLength` (the wrong number
    /// of hashes for the index and size), `RootMismatch`; the names of
    /// errors [`Proof::verify`] never returns are there for completeness.
    pub fn kind(&self) -> &'static str {
        match self {
            ProofVerifyError::Signature(NoteError::NoKnownSignature { .. }) => "UnknownKey",
            ProofVerifyError::Signature(NoteError::BadSignature { .. }) => "BadSignature",
            ProofVerifyError::Signature(_) => "MalformedCheckpoint",
            ProofVerifyError::HashMismatch { .. } => "HashMismatch",
            ProofVerifyError::Inclusion(e) => match e {
                VerifyError::Size(SizeError::IndexOutOfRange { .. }) => "IndexOutOfRange",
                VerifyError::Size(SizeError::OldSizeGreater { .. }) => "OldSizeGreater",
                VerifyError::Size(SizeError::OldSizeZero) => "OldSizeZero",
                VerifyError::ProofLength { .. } => "ProofLength",
                VerifyError::RootMismatch { .. } => "RootMismatch",
                VerifyError::OldRootMismatch { .. } => "OldRootMismatch",
                VerifyError::NewRootMismatch { .. } => "NewRootMismatch",
            },
        }
    }
}

/// An inclusion proof with the checkpoint it leads to. Every value obeys
/// the format's bounds (its constructors check them), so
/// [`encode`](Proof::encode) cannot fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    extra: Option<Vec<u8>>,
    index: u64,
    hashes: Vec<Hash>,
    /// The signed checkpoint, as read (re-encodes to the same bytes).
    note: Note,
    /// `note.text`, parsed.
    checkpoint: Checkpoint,
}

impl Proof {
    /// A proof from its parts: `extra` (none, or non-empty), the leaf
    /// index, the inclusion proof (lowest sibling first, at most
    /// [`MAX_PROOF_HASHES`]) and the signed checkpoint note. Whether the
    /// proof verifies is not checked here.
    pub fn new(
        extra: Option<Vec<u8>>,
        index: u64,
        hashes: Vec<Hash>,
        signed_checkpoint: &[u8],
    ) -> Result<Proof, ProofError> {
        if extra.as_ref().is_some_and(|e| e.is_empty()) {
            return Err(ProofError::EmptyExtra);
        }
        if hashes.len() > MAX_PROOF_HASHES {
            return Err(ProofError::TooManyHashes {
                max: MAX_PROOF_HASHES,
            });
        }
        let note = Note::parse(signed_checkpoint).map_err(CheckpointError::Note)?;
        let checkpoint = Checkpoint::parse(&note.text)?;
        let proof = Proof {
            extra,
            index,
            hashes,
            note,
            checkpoint,
        };
        let len = proof.encode().len();
        if len > MAX_PROOF_LEN {
            return Err(ProofError::TooLarge {
                len,
                max: MAX_PROOF_LEN,
            });
        }
        Ok(proof)
    }

    /// chainlog's proof for the record of `seq` with chain hash
    /// `chain_hash`: the index is the seq, and `extra` the chain hash.
    pub fn for_record(
        seq: u64,
        chain_hash: &Hash,
        hashes: Vec<Hash>,
        signed_checkpoint: &[u8],
    ) -> Result<Proof, ProofError> {
        Proof::new(Some(chain_hash.to_vec()), seq, hashes, signed_checkpoint)
    }

    /// The leaf index (for chainlog, the record's seq).
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The inclusion proof, lowest sibling first.
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// The extra data, unauthenticated; never empty.
    pub fn extra(&self) -> Option<&[u8]> {
        self.extra.as_deref()
    }

    /// The record's chain hash the proof names: its extra data when that is
    /// 32 bytes (as chainlog writes it), else none. Unauthenticated.
    pub fn chain_hash(&self) -> Option<Hash> {
        self.extra.as_deref()?.try_into().ok()
    }

    /// The checkpoint the proof leads to, not yet verified.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// The signed note around the checkpoint, not yet verified.
    pub fn signed_checkpoint(&self) -> &Note {
        &self.note
    }

    /// The proof as text (see the module doc). For a proof from
    /// [`parse`](Proof::parse), exactly the bytes parsed.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(64 + 45 * self.hashes.len() + self.note.text.len());
        out.push_str(HEADER);
        out.push('\n');
        if let Some(extra) = &self.extra {
            out.push_str(EXTRA_PREFIX);
            out.push_str(&base64::encode(extra));
            out.push('\n');
        }
        out.push_str(INDEX_PREFIX);
        out.push_str(&self.index.to_string());
        out.push('\n');
        for h in &self.hashes {
            out.push_str(&base64::encode(h));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.note.encode());
        out
    }

    /// Parses a proof (see the module doc) without verifying it.
    pub fn parse(bytes: &[u8]) -> Result<Proof, ProofError> {
        if bytes.len() > MAX_PROOF_LEN {
            return Err(ProofError::TooLarge {
                len: bytes.len(),
                max: MAX_PROOF_LEN,
            });
        }
        let text = std::str::from_utf8(bytes).map_err(|e| ProofError::NotUtf8 {
            offset: e.valid_up_to(),
        })?;
        // The header first, so that any other file is named as such.
        if text.split('\n').next() != Some(HEADER) {
            return Err(ProofError::Header);
        }
        // Proof lines are never empty: the first empty line ends them.
        let split = text.find("\n\n").ok_or(ProofError::NoCheckpoint)?;
        let (head, signed) = (&text[..split], &text[split + 2..]);
        // Past the header line, which was checked.
        let mut lines = head.split('\n').zip(1usize..).skip(1).peekable();
        let extra = match lines.peek().and_then(|(l, _)| l.strip_prefix(EXTRA_PREFIX)) {
            Some(encoded) => {
                lines.next();
                let extra = base64::decode(encoded).map_err(ProofError::Extra)?;
                if extra.is_empty() {
                    return Err(ProofError::EmptyExtra);
                }
                Some(extra)
            }
            None => None,
        };
        let index = match lines.next() {
            Some((line, number)) => {
                let digits = line
                    .strip_prefix(INDEX_PREFIX)
                    .ok_or(ProofError::NoIndex { line: number })?;
                parse_decimal(digits).map_err(|problem| ProofError::Index {
                    line: number,
                    problem,
                })?
            }
            // The empty line came where the index belongs.
            None => {
                return Err(ProofError::NoIndex {
                    line: 2 + usize::from(extra.is_some()),
                })
            }
        };
        let mut hashes = Vec::new();
        for (line, number) in lines {
            if hashes.len() == MAX_PROOF_HASHES {
                return Err(ProofError::TooManyHashes {
                    max: MAX_PROOF_HASHES,
                });
            }
            let bytes = base64::decode(line).map_err(|error| ProofError::HashBase64 {
                line: number,
                error,
            })?;
            let hash: Hash = bytes
                .as_slice()
                .try_into()
                .map_err(|_| ProofError::HashLength {
                    line: number,
                    found: bytes.len(),
                })?;
            hashes.push(hash);
        }
        let note = Note::parse(signed.as_bytes()).map_err(CheckpointError::Note)?;
        let checkpoint = Checkpoint::parse(&note.text)?;
        Ok(Proof {
            extra,
            index,
            hashes,
            note,
            checkpoint,
        })
    }

    /// Checks that the record with chain hash `chain_hash` is leaf
    /// [`index`](Proof::index) of the tree the checkpoint commits to, and
    /// that the checkpoint is signed by one of `keys` (see
    /// [`Note::verify`]). A proof that names a chain hash
    /// ([`chain_hash`](Proof::chain_hash)) must name this one. Returns the
    /// verified checkpoint.
    pub fn verify(
        &self,
        keys: &[VerifierKey],
        chain_hash: &Hash,
    ) -> Result<&Checkpoint, ProofVerifyError> {
        self.note
            .verify(keys)
            .map_err(ProofVerifyError::Signature)?;
        if let Some(carried) = self.chain_hash() {
            if carried != *chain_hash {
                return Err(ProofVerifyError::HashMismatch {
                    given: *chain_hash,
                    carried,
                });
            }
        }
        merkle::verify_inclusion(
            self.index,
            self.checkpoint.size,
            &merkle::leaf_hash(chain_hash),
            &self.hashes,
            &self.checkpoint.root_hash,
        )
        .map_err(ProofVerifyError::Inclusion)?;
        Ok(&self.checkpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{inclusion_proof, root_at, MemoryTree};
    use crate::note::SignerKey;

    const ORIGIN: &str = "example.com/log";

    fn chain_hash(i: u64) -> Hash {
        let mut h = [0u8; 32];
        h[..8].copy_from_slice(&i.to_le_bytes());
        h[31] = 0xc7;
        h
    }

    /// A tree of `n` records, a checkpoint of it signed by a key from
    /// `seed`, and that key.
    fn signed_tree(n: u64, seed: u8) -> (MemoryTree, String, SignerKey) {
        let key = SignerKey::from_seed(ORIGIN, &[seed; 32]).expect("key");
        let mut tree = MemoryTree::new();
        for i in 0..n {
            tree.push(merkle::leaf_hash(&chain_hash(i)));
        }
        let checkpoint = Checkpoint {
            origin: ORIGIN.into(),
            size: n,
            root_hash: root_at(&tree, n).expect("root"),
            extensions: Vec::new(),
        };
        let signed = checkpoint.sign(&key).expect("sign");
        (tree, signed, key)
    }

    fn proof_of(tree: &MemoryTree, signed: &str, seq: u64) -> Proof {
        let hashes = inclusion_proof(tree, seq, tree.size()).expect("prove");
        Proof::for_record(seq, &chain_hash(seq), hashes, signed.as_bytes()).expect("proof")
    }

    #[test]
    fn every_leaf_of_small_trees_round_trips_and_verifies() {
        for n in 1..=17 {
            let (tree, signed, key) = signed_tree(n, 1);
            for seq in 0..n {
                let p = proof_of(&tree, &signed, seq);
                let text = p.encode();
                assert_eq!(Proof::parse(text.as_bytes()), Ok(p.clone()));
                assert!(text.ends_with(&signed), "the checkpoint is verbatim");
                let c = p.verify(&[key.verifier()], &chain_hash(seq));
                assert_eq!(c.map(|c| c.size), Ok(n));
                assert_eq!(p.chain_hash(), Some(chain_hash(seq)));
            }
        }
    }

    #[test]
    fn the_text_is_the_documented_layout() {
        let (tree, signed, _) = signed_tree(3, 1);
        let p = proof_of(&tree, &signed, 2);
        let [sibling] = p.hashes() else {
            panic!("one hash for the last of 3 leaves: {:?}", p.hashes());
        };
        let expected = format!(
            "c2sp.org/tlog-proof@v1\nextra {}\nindex 2\n{}\n\n{signed}",
            base64::encode(&chain_hash(2)),
            base64::encode(sibling)
        );
        assert_eq!(p.encode(), expected);
        // Without extra data there is no extra line.
        let bare = Proof::new(None, 2, p.hashes().to_vec(), signed.as_bytes()).expect("proof");
        assert_eq!(
            bare.encode(),
            format!(
                "c2sp.org/tlog-proof@v1\nindex 2\n{}\n\n{signed}",
                base64::encode(sibling)
            )
        );
        assert_eq!(Proof::parse(bare.encode().as_bytes()), Ok(bare.clone()));
        assert_eq!(bare.chain_hash(), None);
    }

    #[test]
    fn each_malformed_part_has_its_error() {
        let (tree, signed, _) = signed_tree(5, 1);
        let p = proof_of(&tree, &signed, 1);
        let good = p.encode();
        let extra = format!("extra {}", base64::encode(&chain_hash(1)));
        let h0 = base64::encode(&p.hashes()[0]);
        let cases: Vec<(String, ProofError)> = vec![
            (good.replacen("@v1", "@v2", 1), ProofError::Header),
            (format!("\n{good}"), ProofError::Header),
            (
                good[..good.find("\n\n").expect("split") + 1].to_owned(),
                ProofError::NoCheckpoint,
            ),
            (good.replacen(&extra, "extra ", 1), ProofError::EmptyExtra),
            (
                good.replacen(&extra, "extra Zg=", 1),
                ProofError::Extra(Base64Error::Length { len: 3 }),
            ),
            (
                good.replacen("index 1", "index  1", 1),
                ProofError::Index {
                    line: 3,
                    problem: DecimalProblem::NotDecimal,
                },
            ),
            (
                good.replacen("index 1", "index 01", 1),
                ProofError::Index {
                    line: 3,
                    problem: DecimalProblem::LeadingZero,
                },
            ),
            (
                good.replacen("index 1", "index 18446744073709551616", 1),
                ProofError::Index {
                    line: 3,
                    problem: DecimalProblem::Overflow,
                },
            ),
            (
                good.replacen("index 1", "index -1", 1),
                ProofError::Index {
                    line: 3,
                    problem: DecimalProblem::NotDecimal,
                },
            ),
            (
                good.replacen("index 1\n", "", 1),
                ProofError::NoIndex { line: 3 },
            ),
            (
                good.replacen("index 1", "Index 1", 1),
                ProofError::NoIndex { line: 3 },
            ),
            (
                format!("{HEADER}\n\n{signed}"),
                ProofError::NoIndex { line: 2 },
            ),
            (
                good.replacen(&h0, "Zm9v", 1),
                ProofError::HashLength { line: 4, found: 3 },
            ),
            (
                good.replacen(&h0, &format!("{h0}\r"), 1),
                ProofError::HashBase64 {
                    line: 4,
                    error: Base64Error::Length { len: 45 },
                },
            ),
            (
                format!("{HEADER}\n{extra}\n\n{signed}"),
                ProofError::NoIndex { line: 3 },
            ),
            (
                good.replacen("\n\n", "\n\n\n", 1),
                ProofError::Checkpoint(CheckpointError::EmptyOrigin),
            ),
            (
                good[..good.len() - 1].to_owned(),
                ProofError::Checkpoint(CheckpointError::Note(NoteError::NoFinalNewline)),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(Proof::parse(text.as_bytes()), Err(expected), "{text:?}");
        }
        let mut bad_utf8 = good.clone().into_bytes();
        bad_utf8[3] = 0xff;
        assert_eq!(
            Proof::parse(&bad_utf8),
            Err(ProofError::NotUtf8 { offset: 3 })
        );
    }

    #[test]
    fn bounds_hold_both_ways() {
        let (_, signed, _) = signed_tree(1, 1);
        let many = vec![[7u8; 32]; MAX_PROOF_HASHES + 1];
        assert_eq!(
            Proof::new(None, 0, many.clone(), signed.as_bytes()),
            Err(ProofError::TooManyHashes { max: 64 })
        );
        assert_eq!(
            Proof::new(Some(Vec::new()), 0, Vec::new(), signed.as_bytes()),
            Err(ProofError::EmptyExtra)
        );
        let at_max = Proof::new(None, 0, many[..64].to_vec(), signed.as_bytes()).expect("64");
        let text = at_max.encode();
        assert_eq!(Proof::parse(text.as_bytes()), Ok(at_max));
        let mut over = text.replacen(
            "index 0\n",
            "index 0\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n",
            1,
        );
        assert_eq!(
            Proof::parse(over.as_bytes()),
            Err(ProofError::TooManyHashes { max: 64 })
        );
        over = "x".repeat(MAX_PROOF_LEN + 1);
        assert_eq!(
            Proof::parse(over.as_bytes()),
            Err(ProofError::TooLarge {
                len: MAX_PROOF_LEN + 1,
                max: MAX_PROOF_LEN
            })
        );
        let huge = vec![1u8; MAX_PROOF_LEN];
        assert!(matches!(
            Proof::new(Some(huge), 0, Vec::new(), signed.as_bytes()),
            Err(ProofError::TooLarge {
                max: MAX_PROOF_LEN,
                ..
            })
        ));
    }

    #[test]
    fn verification_names_what_differs() {
        let (tree, signed, key) = signed_tree(10, 1);
        let keys = [key.verifier()];
        let p = proof_of(&tree, &signed, 6);
        let kind = |p: &Proof, h: &Hash| p.verify(&keys, h).map(|c| c.size).map_err(|e| e.kind());
        assert_eq!(kind(&p, &chain_hash(6)), Ok(10));
        assert_eq!(kind(&p, &chain_hash(7)), Err("HashMismatch"));
        // Without the extra line the given hash is the only one.
        let bare = Proof::new(None, 6, p.hashes().to_vec(), signed.as_bytes()).expect("proof");
        assert_eq!(kind(&bare, &chain_hash(7)), Err("RootMismatch"));
        let other = Proof::new(None, 7, p.hashes().to_vec(), signed.as_bytes()).expect("proof");
        assert_eq!(kind(&other, &chain_hash(6)), Err("RootMismatch"));
        let far = Proof::new(None, 10, p.hashes().to_vec(), signed.as_bytes()).expect("proof");
        assert_eq!(kind(&far, &chain_hash(6)), Err("IndexOutOfRange"));
        let short =
            Proof::new(None, 6, p.hashes()[1..].to_vec(), signed.as_bytes()).expect("proof");
        assert_eq!(kind(&short, &chain_hash(6)), Err("ProofLength"));
        let (_, resigned, _) = signed_tree(10, 2);
        let stranger =
            Proof::new(None, 6, p.hashes().to_vec(), resigned.as_bytes()).expect("proof");
        assert_eq!(kind(&stranger, &chain_hash(6)), Err("UnknownKey"));
        let edited = signed.replacen("\n10\n", "\n11\n", 1);
        let forged = Proof::new(None, 6, p.hashes().to_vec(), edited.as_bytes()).expect("proof");
        assert_eq!(kind(&forged, &chain_hash(6)), Err("BadSignature"));
    }
}
