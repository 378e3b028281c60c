//! Signed checkpoints: each log's Ed25519 signing key, the checkpoints
//! chainlogd issues (C2SP `tlog-checkpoint` signed notes of the durable
//! records' Merkle tree), and the append-only file that keeps them.
//!
//! A checkpoint is only ever made from the engine's durable head, whose
//! tree root covers records that a covering `fdatasync` made durable: a
//! checkpoint never commits to a record that a crash could take back.
//!
//! The key lives outside the log's directory (`DATA_DIR/keys/NAME.key` by
//! default, mode 0600), since that directory is what is copied to auditors.
//! The checkpoints file is `LOG_DIR/checkpoints`: each note followed by a
//! blank line, appended and synced. A note's text has no blank line (a
//! checkpoint's lines are never empty), so the file splits unambiguously;
//! a torn last entry (a crash during an append) is ignored when it is read.

use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use engine::note::{Checkpoint, SignerKey, VerifierKey};
use engine::Log;
use parking_lot::Mutex;

/// The checkpoints file in a log's directory.
pub const CHECKPOINTS_FILE: &str = "checkpoints";

/// Why checkpoints cannot be issued or read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The key file or the checkpoints file could not be read or written.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS's error.
        source: std::io::Error,
    },
    /// The key file does not hold a signer key for this log's origin.
    #[error("{}: {why}", path.display())]
    BadKey {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// Signing failed (an origin the note format refuses).
    #[error("signing a checkpoint: {0}")]
    Sign(String),
}

/// A checkpoint issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// Its tree size: the records it commits to.
    pub size: u64,
    /// The signed note.
    pub note: String,
}

/// One log's signer and checkpoints.
pub struct Checkpoints {
    origin: String,
    signer: SignerKey,
    verifier: VerifierKey,
    path: PathBuf,
    /// The newest checkpoint, and the append position's lock.
    latest: Mutex<Option<Issued>>,
}

impl std::fmt::Debug for Checkpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoints")
            .field("origin", &self.origin)
            .field("verifier", &self.verifier.to_string())
            .finish_non_exhaustive()
    }
}

fn io<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> CheckpointError + 'a {
    move |source| CheckpointError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Reads the signer key at `path`, or generates one there (mode 0600,
/// synced, and its directory synced) when there is none.
fn load_or_create_key(path: &Path, origin: &str) -> Result<SignerKey, CheckpointError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let key = SignerKey::parse(text.trim()).map_err(|e| CheckpointError::BadKey {
                path: path.to_path_buf(),
                why: e.to_string(),
            })?;
            if key.name() != origin {
                return Err(CheckpointError::BadKey {
                    path: path.to_path_buf(),
                    why: format!(
                        "the key is named {:?}, but the log's checkpoint origin is {origin:?}",
                        key.name()
                    ),
                });
            }
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            std::fs::File::open("/dev/urandom")
                .and_then(|mut f| f.read_exact(&mut seed))
                .map_err(io("read random bytes for a key", Path::new("/dev/urandom")))?;
            let key = SignerKey::from_seed(origin, &seed).map_err(|e| CheckpointError::BadKey {
                path: path.to_path_buf(),
                why: e.to_string(),
            })?;
            let dir = path.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(dir).map_err(io("create", dir))?;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(io("create", path))?;
            // The mode asked for is masked by the umask; make it exact.
            f.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(io("chmod", path))?;
            f.write_all(format!("{}\n", key.to_secret_string()).as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(io("write", path))?;
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io("fsync", dir))?;
            Ok(key)
        }
        Err(e) => Err(io("read", path)(e)),
    }
}

/// The whole notes in a checkpoints file, oldest first, and the length of
/// the bytes they take; a torn last entry (no blank line after it) is left
/// out.
pub fn read_file(bytes: &[u8]) -> (Vec<String>, usize) {
    let blank = |from: usize| {
        bytes[from..]
            .windows(2)
            .position(|w| w == b"\n\n")
            .map(|i| from + i)
    };
    let mut notes = Vec::new();
    let mut at = 0;
    // Each entry: text lines, a blank line, signature lines, a blank line.
    while let Some(sigs) = blank(at) {
        let Some(end) = blank(sigs + 2) else { break };
        notes.push(String::from_utf8_lossy(&bytes[at..=end]).into_owned());
        at = end + 2;
    }
    (notes, at)
}

impl Checkpoints {
    /// Opens the checkpoints of the log named `name` whose directory is
    /// `log_dir`: its key from `key_file` (generated when missing), its
    /// newest checkpoint from the checkpoints file.
    pub fn open(
        log_dir: &Path,
        key_file: &Path,
        origin: String,
    ) -> Result<Checkpoints, CheckpointError> {
        let signer = load_or_create_key(key_file, &origin)?;
        let verifier = signer.verifier();
        let path = log_dir.join(CHECKPOINTS_FILE);
        let latest = match std::fs::read(&path) {
            Ok(bytes) => {
                let (notes, whole) = read_file(&bytes);
                if whole < bytes.len() {
                    // A crash during an append: cut the torn entry, so that
                    // the next one starts where an entry ends.
                    let f = std::fs::OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .map_err(io("open", &path))?;
                    f.set_len(whole as u64)
                        .and_then(|()| f.sync_data())
                        .map_err(io("truncate", &path))?;
                }
                notes.into_iter().rev().find_map(|note| {
                    Checkpoint::open(note.as_bytes(), std::slice::from_ref(&verifier))
                        .ok()
                        .map(|c| Issued { size: c.size, note })
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io("read", &path)(e)),
        };
        Ok(Checkpoints {
            origin,
            signer,
            verifier,
            path,
            latest: Mutex::new(latest),
        })
    }

    /// The key that verifies this log's checkpoints.
    pub fn verifier(&self) -> &VerifierKey {
        &self.verifier
    }

    /// The newest checkpoint issued, if any.
    pub fn latest(&self) -> Option<Issued> {
        self.latest.lock().clone()
    }

    /// A checkpoint of every durable record: the newest one when no record
    /// became durable since, otherwise a new one, signed, appended to the
    /// checkpoints file and synced before it is returned.
    pub fn issue(&self, log: &Log) -> Result<Issued, CheckpointError> {
        let mut latest = self.latest.lock();
        let (size, root) = match log.head() {
            Some(h) => (h.seq + 1, h.tree_root),
            None => (0, engine::merkle::empty_root()),
        };
        if let Some(l) = latest.as_ref().filter(|l| l.size == size) {
            return Ok(l.clone());
        }
        let note = Checkpoint {
            origin: self.origin.clone(),
            size,
            root_hash: root,
            extensions: Vec::new(),
        }
        .sign(&self.signer)
        .map_err(|e| CheckpointError::Sign(e.to_string()))?;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&self.path)
            .map_err(io("open", &self.path))?;
        f.write_all(format!("{note}\n").as_bytes())
            .and_then(|()| f.sync_data())
            .map_err(io("append to", &self.path))?;
        let issued = Issued { size, note };
        *latest = Some(issued.clone());
        Ok(issued)
    }

    /// Whether a checkpoint is due: `size` records are durable now, and
    /// `since` has passed since the newest checkpoint was issued.
    pub fn due(
        &self,
        size: u64,
        sealed_since: bool,
        since: std::time::Duration,
        every: u64,
        interval: std::time::Duration,
    ) -> bool {
        let last = self.latest.lock().as_ref().map_or(0, |l| l.size);
        size > last
            && (sealed_since
                || (every > 0 && size - last >= every)
                || (!interval.is_zero() && since >= interval))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_splits_into_whole_notes_and_a_torn_tail_is_left_out() {
        let a = "o\n1\nAAAA\n\n— o abc\n";
        let b = "o\n2\nBBBB\n\n— o def\n— p ghi\n";
        let file = format!("{a}\n{b}\n");
        assert_eq!(
            read_file(file.as_bytes()),
            (vec![a.to_owned(), b.to_owned()], file.len())
        );
        // Torn in every place of the second entry: only the first is whole
        // (a cut right after the second's last newline lacks its blank
        // line).
        for cut in a.len() + 1..file.len() {
            assert_eq!(
                read_file(&file.as_bytes()[..cut]),
                (vec![a.to_owned()], a.len() + 1),
                "cut at {cut}"
            );
        }
        assert_eq!(read_file(b""), (Vec::<String>::new(), 0));
    }
}
