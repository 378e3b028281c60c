//! Checkpoints (C2SP `tlog-checkpoint`): the text of a signed note that
//! commits to a log's Merkle tree at one size.
//!
//! ```text
//! <origin>\n                 the log's identity, non-empty
//! <tree size>\n              decimal ASCII, no leading zero (the empty tree is "0")
//! <base64 root hash>\n       the RFC 6962 root (32 bytes) at that size
//! <extension line>\n ...     optional, each non-empty, opaque
//! ```
//!
//! The log signs it as a note whose key name should be the origin.
//! [`parse`](Checkpoint::parse) never panics, whatever the text.

use thiserror::Error;

use super::{base64, DecimalProblem, NoteError, SignerKey, VerifierKey};
use crate::Hash;

/// Why text is not a checkpoint, or a note is not a signed one.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CheckpointError {
    /// The note around it did not parse or verify.
    #[error(transparent)]
    Note(#[from] NoteError),
    /// The text does not end with a newline.
    #[error("checkpoint does not end with a newline")]
    NoFinalNewline,
    /// Fewer than the three lines origin, size, root.
    #[error("checkpoint has {lines} lines, fewer than 3")]
    TooFewLines {
        /// The number of lines.
        lines: usize,
    },
    /// The origin line is empty.
    #[error("checkpoint origin is empty")]
    EmptyOrigin,
    /// The origin has a control character (newline included).
    #[error("checkpoint origin has a control character")]
    OriginControlChar,
    /// The size line is not decimal digits.
    #[error("tree size {0:?} is not decimal digits")]
    SizeNotDecimal(String),
    /// The size has a leading zero (only the empty tree's "0" may start with 0).
    #[error("tree size {0:?} has a leading zero")]
    SizeLeadingZero(String),
    /// The size does not fit in 64 bits.
    #[error("tree size {0:?} does not fit in 64 bits")]
    SizeOverflow(String),
    /// The root line is not canonical base64.
    #[error("root hash is not canonical base64: {0}")]
    RootBase64(#[from] base64::Base64Error),
    /// The root line decodes to other than 32 bytes.
    #[error("root hash is {found} bytes, not 32")]
    RootLength {
        /// The decoded length.
        found: usize,
    },
    /// An extension line is empty (or has a control character, when
    /// encoding).
    #[error("extension line {line} is empty or has a control character")]
    BadExtension {
        /// Its number among the extension lines, from 1.
        line: usize,
    },
}

/// A log's signed commitment: its tree of `size` leaves has root `root_hash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's identity; by convention a schema-less URL, also the name of
    /// the key that signs it.
    pub origin: String,
    /// The number of leaves.
    pub size: u64,
    /// The Merkle root (RFC 6962) of those leaves.
    pub root_hash: Hash,
    /// Extension lines, without their newlines; opaque here.
    pub extensions: Vec<String>,
}

fn has_control(s: &str) -> bool {
    s.bytes().any(|b| b < 0x20)
}

fn parse_size(line: &str) -> Result<u64, CheckpointError> {
    super::parse_decimal(line).map_err(|p| {
        let line = line.to_owned();
        match p {
            DecimalProblem::NotDecimal => CheckpointError::SizeNotDecimal(line),
            DecimalProblem::LeadingZero => CheckpointError::SizeLeadingZero(line),
            DecimalProblem::Overflow => CheckpointError::SizeOverflow(line),
        }
    })
}

impl Checkpoint {
    /// The note text: origin, size, root and extension lines, each ending in
    /// a newline. Refuses an empty origin or extension line, and a control
    /// character in either.
    pub fn encode(&self) -> Result<String, CheckpointError> {
        if self.origin.is_empty() {
            return Err(CheckpointError::EmptyOrigin);
        }
        if has_control(&self.origin) {
            return Err(CheckpointError::OriginControlChar);
        }
        let mut text = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            base64::encode(&self.root_hash)
        );
        for (i, ext) in self.extensions.iter().enumerate() {
            if ext.is_empty() || has_control(ext) {
                return Err(CheckpointError::BadExtension { line: i + 1 });
            }
            text.push_str(ext);
            text.push('\n');
        }
        Ok(text)
    }

    /// Parses a checkpoint from a note's text (see the module doc).
    pub fn parse(text: &str) -> Result<Checkpoint, CheckpointError> {
        let body = text
            .strip_suffix('\n')
            .ok_or(CheckpointError::NoFinalNewline)?;
        let lines: Vec<&str> = body.split('\n').collect();
        let [origin, size, root, extensions @ ..] = &lines[..] else {
            return Err(CheckpointError::TooFewLines { lines: lines.len() });
        };
        if origin.is_empty() {
            return Err(CheckpointError::EmptyOrigin);
        }
        if has_control(origin) {
            return Err(CheckpointError::OriginControlChar);
        }
        let size = parse_size(size)?;
        let root = base64::decode(root)?;
        let root_hash: Hash = root
            .as_slice()
            .try_into()
            .map_err(|_| CheckpointError::RootLength { found: root.len() })?;
        let mut exts = Vec::with_capacity(extensions.len());
        for (i, ext) in extensions.iter().enumerate() {
            if ext.is_empty() || has_control(ext) {
                return Err(CheckpointError::BadExtension { line: i + 1 });
            }
            exts.push((*ext).to_owned());
        }
        Ok(Checkpoint {
            origin: (*origin).to_owned(),
            size,
            root_hash,
            extensions: exts,
        })
    }

    /// The checkpoint as a note signed by `key`.
    pub fn sign(&self, key: &SignerKey) -> Result<String, CheckpointError> {
        Ok(super::sign(&self.encode()?, &[key])?)
    }

    /// Parses a signed note, verifies it against `keys` (see
    /// [`Note::verify`](super::Note::verify)) and parses its text as a
    /// checkpoint.
    pub fn open(bytes: &[u8], keys: &[VerifierKey]) -> Result<Checkpoint, CheckpointError> {
        let note = super::open(bytes, keys)?;
        Checkpoint::parse(&note.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example checkpoint text in C2SP tlog-checkpoint.md (commit
    /// 5ba5ee830903e91240fc6f9f3a7a9293d49e69c9), used as data.
    const SPEC_TEXT: &str =
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";

    #[test]
    fn the_spec_example_parses_and_encodes_back() {
        let c = Checkpoint::parse(SPEC_TEXT).expect("spec checkpoint");
        assert_eq!(c.origin, "example.com/behind-the-sofa");
        assert_eq!(c.size, 20_852_163);
        assert_eq!(
            base64::encode(&c.root_hash),
            "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="
        );
        assert!(c.extensions.is_empty());
        assert_eq!(c.encode().as_deref(), Ok(SPEC_TEXT));
    }

    #[test]
    fn extension_lines_round_trip() {
        let text = format!("{SPEC_TEXT}ext one\n— not a signature\n");
        let c = Checkpoint::parse(&text).expect("parse");
        assert_eq!(c.extensions, ["ext one", "— not a signature"]);
        assert_eq!(c.encode(), Ok(text));
    }

    #[test]
    fn each_malformed_line_has_its_error() {
        let root = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=";
        let cases: [(String, CheckpointError); 13] = [
            (
                SPEC_TEXT.trim_end().to_owned(),
                CheckpointError::NoFinalNewline,
            ),
            (
                "o\n5\n".to_owned(),
                CheckpointError::TooFewLines { lines: 2 },
            ),
            (format!("\n5\n{root}\n"), CheckpointError::EmptyOrigin),
            (
                format!("o\t\n5\n{root}\n"),
                CheckpointError::OriginControlChar,
            ),
            (
                format!("o\n01\n{root}\n"),
                CheckpointError::SizeLeadingZero("01".into()),
            ),
            (
                format!("o\n00\n{root}\n"),
                CheckpointError::SizeLeadingZero("00".into()),
            ),
            (
                format!("o\n+5\n{root}\n"),
                CheckpointError::SizeNotDecimal("+5".into()),
            ),
            (
                format!("o\n\n{root}\n"),
                CheckpointError::SizeNotDecimal(String::new()),
            ),
            (
                format!("o\n 5\n{root}\n"),
                CheckpointError::SizeNotDecimal(" 5".into()),
            ),
            (
                format!("o\n18446744073709551616\n{root}\n"),
                CheckpointError::SizeOverflow("18446744073709551616".into()),
            ),
            (
                "o\n5\nZm9v\n".to_owned(),
                CheckpointError::RootLength { found: 3 },
            ),
            (
                "o\n5\nZm9\n".to_owned(),
                CheckpointError::RootBase64(base64::Base64Error::Length { len: 3 }),
            ),
            (
                format!("o\n5\n{root}\next\n\n"),
                CheckpointError::BadExtension { line: 2 },
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(Checkpoint::parse(&text), Err(expected), "{text:?}");
        }
        let max = format!("o\n18446744073709551615\n{root}\n");
        assert_eq!(Checkpoint::parse(&max).map(|c| c.size), Ok(u64::MAX));
        let zero = format!("o\n0\n{root}\n");
        assert_eq!(Checkpoint::parse(&zero).map(|c| c.size), Ok(0));
    }

    #[test]
    fn encode_refuses_what_parse_would() {
        let mut c = Checkpoint::parse(SPEC_TEXT).expect("spec checkpoint");
        c.extensions = vec!["fine".into(), String::new()];
        assert_eq!(c.encode(), Err(CheckpointError::BadExtension { line: 2 }));
        c.extensions = vec!["two\nlines".into()];
        assert_eq!(c.encode(), Err(CheckpointError::BadExtension { line: 1 }));
        c.extensions.clear();
        c.origin = "a\nb".into();
        assert_eq!(c.encode(), Err(CheckpointError::OriginControlChar));
        c.origin.clear();
        assert_eq!(c.encode(), Err(CheckpointError::EmptyOrigin));
    }
}
