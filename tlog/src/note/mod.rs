//! Signed notes (C2SP `signed-note`) and the checkpoints they carry (C2SP
//! `tlog-checkpoint`): how chainlog commits to a log's tree in a form any
//! tool of the transparency-log ecosystem reads.
//!
//! A signed note is UTF-8 text with no control character but newline:
//!
//! ```text
//! <text: one or more lines, each ending in "\n">
//! <an empty line>
//! — <key name> <base64(4-byte big-endian key ID || signature)>
//! ...one such line per signature
//! ```
//!
//! (the dash is the em dash U+2014). The text, final newline included, is
//! what is signed; it is separated from the signatures by the note's last
//! empty line. Only Ed25519 keys (type `0x01`) are known here (see
//! [`key`]). Reading a note ([`open`]) ignores signatures from keys it was
//! not given, refuses the note if a known key's signature fails, and
//! requires at least one that verifies. Bounds: [`MAX_NOTE_LEN`] bytes and
//! [`MAX_SIGNATURES`] signature lines (the spec requires accepting 16).
//!
//! Base64 everywhere is strict padded standard base64 ([`base64`]).
//! [`parse`](Note::parse) never panics, whatever the bytes.

use thiserror::Error;

pub mod base64;
pub mod checkpoint;
pub mod key;
pub mod proof;

pub use checkpoint::{Checkpoint, CheckpointError};
pub use key::{KeyError, SignerKey, VerifierKey};
pub use proof::{Proof, ProofError, ProofVerifyError};

/// The largest note read or written, in bytes.
pub const MAX_NOTE_LEN: usize = 1 << 20;

/// The most signature lines a note may carry.
pub const MAX_SIGNATURES: usize = 100;

/// What starts a signature line: an em dash (U+2014) and a space.
const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// Why text is not a number as the C2SP formats write one: ASCII decimal
/// digits, no sign, no space, no leading zero (but `0` itself), at most
/// `u64::MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecimalProblem {
    /// Empty, or a character other than `0-9`.
    NotDecimal,
    /// More than one digit, the first a `0`.
    LeadingZero,
    /// Larger than `u64::MAX`.
    Overflow,
}

/// Parses a canonical decimal number (see [`DecimalProblem`]): each value
/// has one spelling.
fn parse_decimal(text: &str) -> Result<u64, DecimalProblem> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DecimalProblem::NotDecimal);
    }
    if text.len() > 1 && text.starts_with('0') {
        return Err(DecimalProblem::LeadingZero);
    }
    text.parse().map_err(|_| DecimalProblem::Overflow)
}

/// What is wrong with one signature line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineProblem {
    /// It does not start with an em dash and a space.
    NoDash,
    /// No space between the key name and the signature.
    NoSpace,
    /// The key name is empty or has a space or `+`.
    BadName,
    /// The signature is not canonical base64.
    NotBase64,
    /// The signature has fewer than the 4 key ID bytes and one more.
    TooShort,
}

/// Why bytes are not a note, or not one signed by a key given.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NoteError {
    /// Longer than [`MAX_NOTE_LEN`].
    #[error("note is {len} bytes, more than the {max} allowed")]
    TooLarge {
        /// Its length.
        len: usize,
        /// [`MAX_NOTE_LEN`].
        max: usize,
    },
    /// Not UTF-8.
    #[error("note is not UTF-8 from byte {offset}")]
    NotUtf8 {
        /// Where the valid UTF-8 ends.
        offset: usize,
    },
    /// A control character other than newline.
    #[error("control character 0x{byte:02x} at byte {offset}")]
    ControlChar {
        /// Its offset.
        offset: usize,
        /// The byte.
        byte: u8,
    },
    /// The note (or a text to sign) does not end with a newline.
    #[error("note text does not end with a newline")]
    NoFinalNewline,
    /// No empty line separates the text from signatures.
    #[error("no empty line before the signatures")]
    NoSeparator,
    /// Nothing after the separating empty line.
    #[error("note has no signature lines")]
    NoSignatures,
    /// More than [`MAX_SIGNATURES`] signature lines (or signers).
    #[error("note has more than {max} signatures")]
    TooManySignatures {
        /// [`MAX_SIGNATURES`].
        max: usize,
    },
    /// A signature line that is not `— name base64`.
    #[error("signature line {line} is malformed: {problem:?}")]
    SignatureLine {
        /// Its number among the signature lines, from 1.
        line: usize,
        /// What is wrong with it.
        problem: LineProblem,
    },
    /// A signature from a key given (same name and ID) that does not verify.
    #[error("signature by {name}+{id:08x} does not verify")]
    BadSignature {
        /// The key's name.
        name: String,
        /// The key's ID.
        id: u32,
    },
    /// No signature is from a key given.
    #[error("none of the note's {signatures} signatures is from a known key")]
    NoKnownSignature {
        /// How many signatures the note has.
        signatures: usize,
    },
}

/// One signature line, parsed but not verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// The key name on the line.
    pub name: String,
    /// The first 4 bytes of the decoded signature, big-endian.
    pub id: u32,
    /// The rest: the signature proper, for whatever algorithm the key uses.
    pub signature: Vec<u8>,
}

impl NoteSignature {
    /// The line, `— name base64(id || signature)` with its newline.
    fn line(&self) -> String {
        let mut bytes = Vec::with_capacity(4 + self.signature.len());
        bytes.extend_from_slice(&self.id.to_be_bytes());
        bytes.extend_from_slice(&self.signature);
        format!(
            "{SIGNATURE_PREFIX}{} {}\n",
            self.name,
            base64::encode(&bytes)
        )
    }
}

/// A note: its text and its signature lines, not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The signed text, ending in a newline.
    pub text: String,
    /// The signature lines, in order.
    pub signatures: Vec<NoteSignature>,
}

/// Checks the size and character rules every note and text obeys, and
/// returns the bytes as text.
fn check_text(bytes: &[u8]) -> Result<&str, NoteError> {
    if bytes.len() > MAX_NOTE_LEN {
        return Err(NoteError::TooLarge {
            len: bytes.len(),
            max: MAX_NOTE_LEN,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| NoteError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    if let Some(offset) = bytes.iter().position(|&b| b < 0x20 && b != b'\n') {
        return Err(NoteError::ControlChar {
            offset,
            byte: bytes[offset],
        });
    }
    if !text.ends_with('\n') {
        return Err(NoteError::NoFinalNewline);
    }
    Ok(text)
}

fn parse_signature_line(line: &str, number: usize) -> Result<NoteSignature, NoteError> {
    let bad = |problem| NoteError::SignatureLine {
        line: number,
        problem,
    };
    let rest = line
        .strip_prefix(SIGNATURE_PREFIX)
        .ok_or(bad(LineProblem::NoDash))?;
    let (name, encoded) = rest.split_once(' ').ok_or(bad(LineProblem::NoSpace))?;
    if !key::valid_name(name) {
        return Err(bad(LineProblem::BadName));
    }
    let bytes = base64::decode(encoded).map_err(|_| bad(LineProblem::NotBase64))?;
    match bytes.split_first_chunk::<4>() {
        Some((id, signature)) if !signature.is_empty() => Ok(NoteSignature {
            name: name.to_owned(),
            id: u32::from_be_bytes(*id),
            signature: signature.to_vec(),
        }),
        _ => Err(bad(LineProblem::TooShort)),
    }
}

impl Note {
    /// Parses a signed note without verifying it: the size bound, UTF-8,
    /// no control characters, the final newline, the last empty line as the
    /// separator, and every signature line's shape.
    pub fn parse(bytes: &[u8]) -> Result<Note, NoteError> {
        let all = check_text(bytes)?;
        // The separator is the last "\n\n": signature lines are never empty.
        let split = all.rfind("\n\n").ok_or(NoteError::NoSeparator)?;
        let (text, block) = (&all[..=split], &all[split + 2..]);
        if block.is_empty() {
            return Err(NoteError::NoSignatures);
        }
        let Some(block) = block.strip_suffix('\n') else {
            return Err(NoteError::NoFinalNewline);
        };
        let mut signatures = Vec::new();
        for (i, line) in block.split('\n').enumerate() {
            if i == MAX_SIGNATURES {
                return Err(NoteError::TooManySignatures {
                    max: MAX_SIGNATURES,
                });
            }
            signatures.push(parse_signature_line(line, i + 1)?);
        }
        Ok(Note {
            text: text.to_owned(),
            signatures,
        })
    }

    /// Verifies the signatures against `keys`: those from other keys (by
    /// name and ID) are ignored; one from a given key that fails refuses the
    /// note; at least one must verify. Returns the keys that signed, in the
    /// order of their signature lines.
    pub fn verify<'k>(&self, keys: &'k [VerifierKey]) -> Result<Vec<&'k VerifierKey>, NoteError> {
        let mut signed_by = Vec::new();
        for sig in &self.signatures {
            let Some(key) = keys
                .iter()
                .find(|k| k.name() == sig.name && k.id() == sig.id)
            else {
                continue;
            };
            if !key.verifies(self.text.as_bytes(), &sig.signature) {
                return Err(NoteError::BadSignature {
                    name: sig.name.clone(),
                    id: sig.id,
                });
            }
            signed_by.push(key);
        }
        if signed_by.is_empty() {
            return Err(NoteError::NoKnownSignature {
                signatures: self.signatures.len(),
            });
        }
        Ok(signed_by)
    }

    /// The note as text: the text, the empty line, the signature lines. It
    /// writes what it holds; for a note from [`parse`](Note::parse) that is
    /// exactly the bytes parsed (base64 has one spelling).
    pub fn encode(&self) -> String {
        let mut out = self.text.clone();
        out.push('\n');
        for sig in &self.signatures {
            out.push_str(&sig.line());
        }
        out
    }
}

/// Parses a note and verifies it against `keys` ([`Note::verify`]).
pub fn open(bytes: &[u8], keys: &[VerifierKey]) -> Result<Note, NoteError> {
    let note = Note::parse(bytes)?;
    note.verify(keys)?;
    Ok(note)
}

/// Signs `text` (which must end with a newline and have no control
/// character but newline) with each of `signers`, in order, and returns the
/// whole note.
pub fn sign(text: &str, signers: &[&SignerKey]) -> Result<String, NoteError> {
    check_text(text.as_bytes())?;
    if signers.is_empty() {
        return Err(NoteError::NoSignatures);
    }
    if signers.len() > MAX_SIGNATURES {
        return Err(NoteError::TooManySignatures {
            max: MAX_SIGNATURES,
        });
    }
    let note = Note {
        text: text.to_owned(),
        signatures: signers
            .iter()
            .map(|k| NoteSignature {
                name: k.name().to_owned(),
                id: k.id(),
                signature: k.sign_bytes(text.as_bytes()).to_vec(),
            })
            .collect(),
    };
    let out = note.encode();
    if out.len() > MAX_NOTE_LEN {
        return Err(NoteError::TooLarge {
            len: out.len(),
            max: MAX_NOTE_LEN,
        });
    }
    Ok(out)
}
