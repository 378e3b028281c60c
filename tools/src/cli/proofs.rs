//! `chainlog checkpoint`, `chainlog proof` and `chainlog consistency`:
//! the log's signed checkpoints and its Merkle proofs, from the server.
//! With `--vkey`, a checkpoint is checked against that key (and, with
//! `--trust`, against the last one trusted) before it is printed; a proof
//! is always checked against its checkpoint (without `--vkey`, signed by
//! the key the server names, which proves nothing of who signed). A
//! consistency proof is printed as the server sent it, for the reader to
//! check against two checkpoints.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use client::{Client, ClientError, Trust, VerifierKey};
use engine::note::base64;

use super::verify_proof::read_key;
use super::{Cli, Failure, EXIT_OK};

/// Exit code: a checkpoint or proof the server sent does not check out
/// (the log rolled back, forked or was rewritten, or is signed by another
/// key).
pub const EXIT_UNTRUSTED: i32 = 4;

/// `chainlog checkpoint`.
#[derive(Debug, clap::Args)]
pub struct CheckpointArgs {
    /// Print the verifier key the server says signs it instead (compare it with the one chainlogd printed at start).
    #[arg(long, conflicts_with_all = ["vkey", "trust"])]
    pub verifier_key: bool,
    /// Check the checkpoint's signature with this verifier key (name+keyid+base64), or @FILE holding one.
    #[arg(long, value_name = "VKEY")]
    pub vkey: Option<String>,
    /// A file with the last checkpoint trusted: the new one must extend it (a consistency proof is checked), and replaces it. Needs --vkey.
    #[arg(long, value_name = "FILE", requires = "vkey")]
    pub trust: Option<PathBuf>,
}

/// `chainlog proof`.
#[derive(Debug, clap::Args)]
pub struct ProofArgs {
    /// The record's seq.
    pub seq: u64,
    /// The log's verifier key, or @FILE [default: the key the server names, which proves nothing about who signed].
    #[arg(long, value_name = "VKEY")]
    pub vkey: Option<String>,
    /// As for `checkpoint --trust`: the proof's checkpoint must extend the one in FILE, and replaces it.
    #[arg(long, value_name = "FILE", requires = "vkey")]
    pub trust: Option<PathBuf>,
    /// Write the proof to FILE instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// `chainlog consistency`.
#[derive(Debug, clap::Args)]
pub struct ConsistencyArgs {
    /// The older tree size (a checkpoint's size), at least 1.
    pub old: u64,
    /// The newer tree size, at most the log's durable records.
    pub new: u64,
}

/// The longest trust file read: one checkpoint note.
const MAX_TRUST_FILE: u64 = 64 * 1024;

/// Prints a checkpoint: as the server sent it, or checked.
pub fn checkpoint(cli: &Cli, a: &CheckpointArgs) -> Result<i32, Failure> {
    let mut c = cli.connect()?;
    let mut out = io::stdout().lock();
    if a.verifier_key {
        writeln!(out, "{}", c.checkpoint()?.verifier_key)?;
        out.flush()?;
        return Ok(EXIT_OK);
    }
    let note = match &a.vkey {
        None => c.checkpoint()?.note,
        Some(vkey) => {
            let mut trust = load_trust(vec![key(vkey)?], a.trust.as_deref())?;
            c.verified_checkpoint(&mut trust).map_err(untrusted)?;
            save_trust(a.trust.as_deref(), &trust)?;
            trust.note().unwrap_or_default().to_owned()
        }
    };
    // The note as it is signed: it ends with its last signature line.
    write!(out, "{note}")?;
    out.flush()?;
    Ok(EXIT_OK)
}

/// Prints (or writes) the tlog-proof of a record at a new checkpoint.
pub fn proof(cli: &Cli, a: &ProofArgs) -> Result<i32, Failure> {
    let mut c = cli.connect()?;
    let keys = match &a.vkey {
        Some(vkey) => vec![key(vkey)?],
        None => vec![announced_key(&mut c)?],
    };
    let mut trust = load_trust(keys, a.trust.as_deref())?;
    let proof = c.prove(a.seq, &mut trust).map_err(untrusted)?;
    save_trust(a.trust.as_deref(), &trust)?;
    let text = proof.encode();
    match &a.out {
        Some(path) => std::fs::write(path, text.as_bytes())
            .map_err(|e| Failure::new(format!("{}: {e}", path.display())))?,
        None => {
            let mut out = io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
        }
    }
    Ok(EXIT_OK)
}

/// Prints a consistency proof, one base64 hash a line (as a tlog-proof
/// writes its hashes); nothing when the sizes are equal.
pub fn consistency(cli: &Cli, a: &ConsistencyArgs) -> Result<i32, Failure> {
    let hashes = cli.connect()?.consistency_proof(a.old, a.new)?;
    let mut out = io::stdout().lock();
    for h in &hashes {
        writeln!(out, "{}", base64::encode(h))?;
    }
    out.flush()?;
    Ok(EXIT_OK)
}

fn key(arg: &str) -> Result<VerifierKey, Failure> {
    read_key(arg).map_err(|m| Failure {
        code: super::EXIT_USAGE,
        ..Failure::new(m)
    })
}

fn announced_key(c: &mut Client) -> Result<VerifierKey, Failure> {
    let named = c.checkpoint()?.verifier_key;
    VerifierKey::parse(&named)
        .map_err(|e| Failure::new(format!("the server's verifier key {named:?}: {e}")))
}

/// A trust failure ends with [`EXIT_UNTRUSTED`]; others as usual.
fn untrusted(e: ClientError) -> Failure {
    let code = match e {
        ClientError::Trust(_) => EXIT_UNTRUSTED,
        _ => super::EXIT_FAILED,
    };
    Failure {
        code,
        ..Failure::new(e.to_string())
    }
}

/// Trust in `keys`, resumed from the checkpoint in `file` when it exists.
fn load_trust(keys: Vec<VerifierKey>, file: Option<&Path>) -> Result<Trust, Failure> {
    let Some(path) = file else {
        return Ok(Trust::new(keys));
    };
    let note = match std::fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Trust::new(keys)),
        Err(e) => return Err(Failure::new(format!("{}: {e}", path.display()))),
        Ok(m) if m.len() > MAX_TRUST_FILE => {
            return Err(Failure::new(format!(
                "{}: {} bytes is too long for a checkpoint",
                path.display(),
                m.len()
            )))
        }
        Ok(_) => std::fs::read_to_string(path)
            .map_err(|e| Failure::new(format!("{}: {e}", path.display())))?,
    };
    Trust::resume(keys, &note).map_err(|e| Failure {
        code: EXIT_UNTRUSTED,
        ..Failure::new(format!("{}: {e}", path.display()))
    })
}

/// Replaces `file` with the newest trusted checkpoint, durably: a
/// temporary file, synced, renamed over it, and the directory synced.
fn save_trust(file: Option<&Path>, trust: &Trust) -> Result<(), Failure> {
    let (Some(path), Some(note)) = (file, trust.note()) else {
        return Ok(());
    };
    let fail = |e: io::Error| Failure::new(format!("{}: {e}", path.display()));
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let mut f = std::fs::File::create(&tmp).map_err(fail)?;
    f.write_all(note.as_bytes())
        .and_then(|()| f.sync_data())
        .map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(fail)
}
