//! `chainlog verify-proof`: checks a C2SP `tlog-proof` file offline, with
//! no server and no log: that the checkpoint in it is signed by the log's
//! verifier key, that the proof is for the record hash expected, and that
//! it leads from that record to the checkpoint's root. A shell over
//! [`engine::note::Proof::verify`]; exit codes as `segment-verify`'s.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use engine::error::hex;
use engine::note::proof::MAX_PROOF_LEN;
use engine::note::{Proof, VerifierKey};
use engine::Hash;
use serde_json::{json, Value};

use crate::{EXIT_ERROR, EXIT_INVALID, EXIT_VALID};

/// The longest key file read (`--vkey @FILE`): a verifier key is under 200
/// bytes.
const MAX_KEY_FILE: u64 = 4096;

/// `chainlog verify-proof`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    after_help = "Exit codes: 0 the record is in the signed checkpoint; 1 it is not shown to be (the reason names what differs); 2 usage or I/O error.\n\nThe log's public key goes in --vkey: --key is the API key of the other commands."
)]
pub struct Args {
    /// The proof file (c2sp.org/tlog-proof@v1).
    #[arg(long, value_name = "FILE")]
    pub proof: PathBuf,
    /// The log's verifier key (name+keyid+base64), or @FILE for a file holding one.
    #[arg(long, value_name = "VKEY")]
    pub vkey: String,
    /// The record's chain hash (64 hex digits), as its receipt shows it [default: the hash the proof names, which is not signed].
    #[arg(long, value_name = "HEX")]
    pub hash: Option<String>,
    /// Print one JSON document instead of a line.
    #[arg(long)]
    pub json: bool,
}

/// Where the record hash that was checked came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HashSource {
    /// `--hash`.
    Argument,
    /// The proof's `extra` line (unauthenticated).
    Proof,
}

/// What was found, for the key named `key` (`name+keyid`).
struct Verdict {
    key: String,
    outcome: Outcome,
}

/// How far the check got.
enum Outcome {
    /// The file is not a proof: nothing was checked.
    Malformed {
        /// `--hash`, if given.
        given: Option<Hash>,
        /// What is wrong with the file.
        message: String,
    },
    /// The proof was checked against the key and `hash`.
    Checked {
        /// Boxed: a proof is large beside a malformed file's message.
        proof: Box<Proof>,
        hash: Hash,
        source: HashSource,
        /// `None` when the proof holds; else a stable kind and a message.
        error: Option<(&'static str, String)>,
    },
}

impl Verdict {
    fn is_valid(&self) -> bool {
        matches!(self.outcome, Outcome::Checked { error: None, .. })
    }
}

/// Runs the check and writes the verdict; returns the exit code.
pub fn run(args: &Args, out: &mut dyn Write) -> i32 {
    let (text, code) = match check(args) {
        Ok(v) => {
            let line = summary(&v);
            let code = if v.is_valid() {
                EXIT_VALID
            } else {
                EXIT_INVALID
            };
            let text = if args.json {
                serde_json::to_string_pretty(&to_json(&args.proof, &v, &line))
                    .unwrap_or_else(|e| json!({ "error": e.to_string() }).to_string())
            } else {
                line
            };
            (text, code)
        }
        Err(msg) => {
            eprintln!("chainlog verify-proof: {msg}");
            if !args.json {
                return EXIT_ERROR;
            }
            (json!({ "error": msg }).to_string(), EXIT_ERROR)
        }
    };
    // A closed standard output changes nothing about the verdict.
    let _ = writeln!(out, "{text}");
    code
}

/// Reads the inputs (any failure: a usage or I/O error) and checks the
/// proof (any failure: a verdict).
fn check(args: &Args) -> Result<Verdict, String> {
    let key = read_key(&args.vkey)?;
    let name = format!("{}+{:08x}", key.name(), key.id());
    let given = args
        .hash
        .as_deref()
        .map(|h| parse_hash(h).map_err(|e| format!("--hash: {e}")))
        .transpose()?;
    let bytes = read_bounded(&args.proof, MAX_PROOF_LEN as u64 + 1)?;
    let proof = match Proof::parse(&bytes) {
        Ok(p) => p,
        Err(e) => {
            let message = e.to_string();
            return Ok(Verdict {
                key: name,
                outcome: Outcome::Malformed { given, message },
            });
        }
    };
    let (hash, source) = match (given, proof.chain_hash()) {
        (Some(h), _) => (h, HashSource::Argument),
        (None, Some(h)) => (h, HashSource::Proof),
        (None, None) => {
            return Err(format!(
                "{}: the proof names no record hash (no 32-byte extra line): pass --hash",
                args.proof.display()
            ))
        }
    };
    let error = match proof.verify(std::slice::from_ref(&key), &hash) {
        Ok(_) => None,
        Err(e) if e.kind() == "UnknownKey" => {
            let signers: Vec<String> = proof
                .signed_checkpoint()
                .signatures
                .iter()
                .map(|s| format!("{}+{:08x}", s.name, s.id))
                .collect();
            let message = format!(
                "checkpoint signature: signed by {}, not by the key given ({name})",
                signers.join(", ")
            );
            Some((e.kind(), message))
        }
        Err(e) => Some((e.kind(), e.to_string())),
    };
    Ok(Verdict {
        key: name,
        outcome: Outcome::Checked {
            proof: Box::new(proof),
            hash,
            source,
            error,
        },
    })
}

/// `--vkey`: the key itself, or `@FILE` holding it (surrounding
/// whitespace, such as the final newline, ignored).
pub(crate) fn read_key(arg: &str) -> Result<VerifierKey, String> {
    let text = match arg.strip_prefix('@') {
        Some(path) => {
            let bytes = read_bounded(Path::new(path), MAX_KEY_FILE)?;
            String::from_utf8(bytes).map_err(|_| format!("{path}: not UTF-8"))?
        }
        None => arg.to_owned(),
    };
    VerifierKey::parse(text.trim()).map_err(|e| format!("--vkey: not a verifier key: {e}"))
}

/// Reads at most `limit` bytes of a file (a longer file is cut there, for
/// the parser to refuse by its length).
fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(limit)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(bytes)
}

/// Parses 64 hex digits, either case.
pub fn parse_hash(s: &str) -> Result<Hash, String> {
    let digits = s.as_bytes();
    if digits.len() != 64 {
        return Err(format!(
            "a hash is 64 hex digits, got {} characters",
            s.chars().count()
        ));
    }
    let nibble = |c: u8| char::from(c).to_digit(16);
    let mut out = [0u8; 32];
    for (b, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        match (nibble(pair[0]), nibble(pair[1])) {
            (Some(hi), Some(lo)) => *b = (hi << 4 | lo) as u8,
            _ => return Err(format!("not hex: {s:?}")),
        }
    }
    Ok(out)
}

/// The one-line verdict.
fn summary(v: &Verdict) -> String {
    let (proof, hash, source) = match &v.outcome {
        Outcome::Malformed { message, .. } => return format!("INVALID (Malformed): {message}"),
        Outcome::Checked {
            error: Some((kind, message)),
            ..
        } => return format!("INVALID ({kind}): {message}"),
        Outcome::Checked {
            proof,
            hash,
            source,
            error: None,
        } => (proof, hash, *source),
    };
    let c = proof.checkpoint();
    let mut line = format!(
        "valid: record {} with hash {} is in {} at tree size {} (root {}), checkpoint signed by {}",
        proof.index(),
        hex(hash),
        c.origin,
        c.size,
        hex(&c.root_hash),
        v.key
    );
    if source == HashSource::Proof {
        line.push_str(" (the hash is the proof's own: compare it with the record's receipt)");
    }
    line
}

/// The verdict as one JSON document (schema in docs/cli.md).
fn to_json(path: &Path, v: &Verdict, summary: &str) -> Value {
    let (proof, hash, error) = match &v.outcome {
        Outcome::Malformed { given, message } => (
            None,
            given.map(|h| (h, HashSource::Argument)),
            Some(("Malformed", message)),
        ),
        Outcome::Checked {
            proof,
            hash,
            source,
            error,
        } => (
            Some(proof),
            Some((*hash, *source)),
            error.as_ref().map(|(k, m)| (*k, m)),
        ),
    };
    json!({
        "proof": path.display().to_string(),
        "valid": v.is_valid(),
        "seq": proof.map(|p| p.index()),
        "hash": hash.map(|(h, _)| hex(&h)),
        "hash_source": hash.map(|(_, s)| match s {
            HashSource::Argument => "argument",
            HashSource::Proof => "proof",
        }),
        "checkpoint": proof.map(|p| {
            let c = p.checkpoint();
            json!({ "origin": c.origin, "size": c.size, "root": hex(&c.root_hash) })
        }),
        "key": v.key,
        "error": error.map(|(kind, message)| json!({ "kind": kind, "message": message })),
        "summary": summary,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_parse_in_either_case_and_nothing_else() {
        let lower = "ab".repeat(32);
        assert_eq!(parse_hash(&lower), Ok([0xab; 32]));
        assert_eq!(parse_hash(&lower.to_uppercase()), Ok([0xab; 32]));
        assert!(parse_hash(&lower[..62]).is_err());
        assert!(parse_hash(&format!("{}zz", &lower[..62])).is_err());
        assert!(parse_hash(&format!("+{}", &lower[..63])).is_err());
        // 64 bytes, but not 64 characters: refused, not sliced mid-character.
        assert!(parse_hash(&format!("é{}", &lower[..62])).is_err());
    }
}
