//! Note keys (C2SP signed-note, signature type `0x01`, Ed25519 per RFC
//! 8032): their names, 32-bit key IDs and text encodings.
//!
//! - key ID: the first 4 bytes, big-endian, of
//!   `SHA-256(name || 0x0A || 0x01 || public key)`;
//! - verifier key: `name+hex(key ID)+base64(0x01 || public key)`, the hex
//!   8 lowercase digits;
//! - signer key: `PRIVATE+KEY+name+hex(key ID)+base64(0x01 || seed)`, the
//!   32-byte RFC 8032 seed (the spelling Go's `golang.org/x/mod/sumdb/note`
//!   and the tools around C2SP logs use).
//!
//! Parsing checks everything a key string states: the name's rules, the
//! algorithm byte, the lengths, that the key ID is the one the name and key
//! give, and that a public key is a valid point.

use std::fmt;

use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::base64;

/// The signed-note signature type byte of Ed25519.
pub const ED25519: u8 = 0x01;

/// Bytes of an Ed25519 public key, and of a seed.
const KEY_LEN: usize = 32;

/// Bytes of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// The words before a signer key's name.
const PRIVATE_PREFIX: &str = "PRIVATE+KEY+";

/// Why a key name or key string was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyError {
    /// The name is empty, or has a Unicode space or a `+`.
    #[error("key name {0:?} is empty or has a space or '+'")]
    Name(String),
    /// A signer key does not start with `PRIVATE+KEY+`.
    #[error("a signer key starts with PRIVATE+KEY+")]
    NotPrivate,
    /// Fewer than three `+`-separated parts after any `PRIVATE+KEY+` (the
    /// third, base64, may itself hold `+`).
    #[error("a key is name+keyid+key, found {parts} '+'-separated parts")]
    Parts {
        /// The number of parts found.
        parts: usize,
    },
    /// The key ID is not 8 lowercase hex digits.
    #[error("key ID {0:?} is not 8 lowercase hex digits")]
    KeyIdHex(String),
    /// The key material is not canonical base64.
    #[error("key material is not canonical base64: {0}")]
    Base64(#[from] base64::Base64Error),
    /// The key material is not a type byte and 32 bytes.
    #[error("key material is {found} bytes, not 33")]
    Length {
        /// The decoded length.
        found: usize,
    },
    /// The type byte is not Ed25519's.
    #[error("signature type 0x{0:02x} is not Ed25519 (0x01)")]
    Algorithm(u8),
    /// The key ID stated is not the one the name and key give.
    #[error("key ID {stated:08x} stated, {computed:08x} computed from the name and key")]
    KeyIdMismatch {
        /// The key ID in the string.
        stated: u32,
        /// The key ID of the name and key.
        computed: u32,
    },
    /// The 32 bytes are not an Ed25519 public key.
    #[error("not an Ed25519 public key")]
    PublicKey,
}

/// Whether `name` may name a key: non-empty, no Unicode space, no `+`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

fn check_name(name: &str) -> Result<(), KeyError> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(KeyError::Name(name.to_owned()))
    }
}

/// The key ID of an Ed25519 key: `SHA-256(name || 0x0A || 0x01 ||
/// public key)[..4]`, big-endian.
pub fn key_id(name: &str, public_key: &[u8; 32]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ED25519]);
    h.update(public_key);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// Splits `name+keyid+base64` into the name, the key ID and the 32 key
/// bytes, checking the name, the hex and the type byte.
fn split_key(s: &str) -> Result<(&str, u32, [u8; KEY_LEN]), KeyError> {
    // Base64 has '+' in its alphabet: only the first two '+' separate.
    let parts: Vec<&str> = s.splitn(3, '+').collect();
    let [name, id, material] = parts[..] else {
        return Err(KeyError::Parts { parts: parts.len() });
    };
    check_name(name)?;
    let hex_ok = id.len() == 8 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let id = hex_ok
        .then(|| u32::from_str_radix(id, 16).ok())
        .flatten()
        .ok_or_else(|| KeyError::KeyIdHex(id.to_owned()))?;
    let bytes = base64::decode(material)?;
    let Some((&alg, key)) = bytes.split_first() else {
        return Err(KeyError::Length { found: 0 });
    };
    let key: [u8; KEY_LEN] = key
        .try_into()
        .map_err(|_| KeyError::Length { found: bytes.len() })?;
    if alg != ED25519 {
        return Err(KeyError::Algorithm(alg));
    }
    Ok((name, id, key))
}

fn check_id(stated: u32, computed: u32) -> Result<(), KeyError> {
    if stated != computed {
        return Err(KeyError::KeyIdMismatch { stated, computed });
    }
    Ok(())
}

fn key_text(name: &str, id: u32, key: &[u8; KEY_LEN]) -> String {
    let mut material = Vec::with_capacity(1 + KEY_LEN);
    material.push(ED25519);
    material.extend_from_slice(key);
    format!("{name}+{id:08x}+{}", base64::encode(&material))
}

/// A public key that checks notes: its name and ID pick out the
/// signature lines it is asked to verify.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    id: u32,
    key: VerifyingKey,
}

impl VerifierKey {
    /// Parses `name+keyid+base64(0x01 || public key)`.
    pub fn parse(s: &str) -> Result<VerifierKey, KeyError> {
        let (name, id, bytes) = split_key(s)?;
        check_id(id, key_id(name, &bytes))?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::PublicKey)?;
        Ok(VerifierKey {
            name: name.to_owned(),
            id,
            key,
        })
    }

    /// The key's name, as its signature lines carry it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID, as the first 4 bytes of its signatures carry it.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The raw 32-byte Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// Whether `signature` (the bytes after the key ID) is this key's
    /// signature of `text`. Strict RFC 8032 verification: small-order keys
    /// and points and non-canonical scalars are refused.
    pub(super) fn verifies(&self, text: &[u8], signature: &[u8]) -> bool {
        let Ok(bytes) = <[u8; SIGNATURE_LEN]>::try_from(signature) else {
            return false;
        };
        let sig = ed25519_dalek::Signature::from_bytes(&bytes);
        self.key.verify_strict(text, &sig).is_ok()
    }
}

/// The verifier key string, `name+keyid+base64(0x01 || public key)`.
impl fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&key_text(&self.name, self.id, &self.key.to_bytes()))
    }
}

impl fmt::Debug for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifierKey({self})")
    }
}

/// A private key that signs notes. Its seed is wiped from memory when it is
/// dropped (ed25519-dalek's `zeroize`); its `Debug` shows only the name and
/// ID.
#[derive(Clone)]
pub struct SignerKey {
    name: String,
    id: u32,
    key: SigningKey,
}

impl SignerKey {
    /// The key for `name` from a 32-byte RFC 8032 seed (32 random bytes make
    /// a new key).
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<SignerKey, KeyError> {
        check_name(name)?;
        let key = SigningKey::from_bytes(seed);
        Ok(SignerKey {
            name: name.to_owned(),
            id: key_id(name, key.verifying_key().as_bytes()),
            key,
        })
    }

    /// Parses `PRIVATE+KEY+name+keyid+base64(0x01 || seed)`, checking that
    /// the key ID is that of the seed's public key.
    pub fn parse(s: &str) -> Result<SignerKey, KeyError> {
        let rest = s.strip_prefix(PRIVATE_PREFIX).ok_or(KeyError::NotPrivate)?;
        let (name, id, seed) = split_key(rest)?;
        let key = SignerKey::from_seed(name, &seed)?;
        check_id(id, key.id)?;
        Ok(key)
    }

    /// The signer key string, `PRIVATE+KEY+name+keyid+base64(0x01 ||
    /// seed)`: a secret, for the key file only.
    pub fn to_secret_string(&self) -> String {
        format!(
            "{PRIVATE_PREFIX}{}",
            key_text(&self.name, self.id, self.key.as_bytes())
        )
    }

    /// The key's name, written on its signature lines (for a log, by
    /// convention its checkpoints' origin).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID its signatures start with ([`key_id`] of the name and the
    /// public key).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The matching public key.
    pub fn verifier(&self) -> VerifierKey {
        VerifierKey {
            name: self.name.clone(),
            id: self.id,
            key: self.key.verifying_key(),
        }
    }

    /// The Ed25519 signature of `text` (deterministic, RFC 8032).
    pub(super) fn sign_bytes(&self, text: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.key.sign(text).to_bytes()
    }
}

impl fmt::Debug for SignerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SignerKey({}+{:08x}, secret)", self.name, self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The verifier key of the example in C2SP signed-note.md (commit
    /// 5ba5ee830903e91240fc6f9f3a7a9293d49e69c9), used as data.
    const SPEC_VKEY: &str = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";

    #[test]
    fn the_spec_example_key_parses_and_prints_back() {
        let k = VerifierKey::parse(SPEC_VKEY).expect("spec key");
        assert_eq!(k.name(), "example.com/foo");
        assert_eq!(k.id(), 0x530d_903a);
        assert_eq!(k.to_string(), SPEC_VKEY);
        assert_eq!(key_id(k.name(), &k.public_key()), 0x530d_903a);
    }

    #[test]
    fn key_strings_are_checked_part_by_part() {
        assert_eq!(
            VerifierKey::parse("example.com/foo+530d903a"),
            Err(KeyError::Parts { parts: 2 })
        );
        assert_eq!(
            VerifierKey::parse(&format!("x+{SPEC_VKEY}")),
            Err(KeyError::KeyIdHex("example.com/foo".into()))
        );
        assert_eq!(
            VerifierKey::parse("example.com/foo"),
            Err(KeyError::Parts { parts: 1 })
        );
        assert_eq!(
            VerifierKey::parse(&SPEC_VKEY.replace("530d903a", "530D903A")),
            Err(KeyError::KeyIdHex("530D903A".into()))
        );
        assert_eq!(
            VerifierKey::parse(&SPEC_VKEY.replace("530d903a", "530d903")),
            Err(KeyError::KeyIdHex("530d903".into()))
        );
        assert_eq!(
            VerifierKey::parse(&SPEC_VKEY.replace("530d903a", "530d903b")),
            Err(KeyError::KeyIdMismatch {
                stated: 0x530d_903b,
                computed: 0x530d_903a
            })
        );
        assert_eq!(
            VerifierKey::parse(&SPEC_VKEY.replace("example.com/foo", "example.com/bar")),
            Err(KeyError::KeyIdMismatch {
                stated: 0x530d_903a,
                computed: key_id(
                    "example.com/bar",
                    &VerifierKey::parse(SPEC_VKEY)
                        .expect("spec key")
                        .public_key()
                )
            })
        );
        assert_eq!(
            VerifierKey::parse(&SPEC_VKEY.replace("example.com/foo", "")),
            Err(KeyError::Name(String::new()))
        );
        assert_eq!(
            VerifierKey::parse(&SPEC_VKEY.replace("example.com/foo", "a\u{a0}b")),
            Err(KeyError::Name("a\u{a0}b".into()))
        );
        // Type byte 0x02 instead of 0x01: "Ae" -> "Au".
        assert_eq!(
            VerifierKey::parse(&SPEC_VKEY.replace("+Aeky", "+Auky")),
            Err(KeyError::Algorithm(0x02))
        );
        assert_eq!(
            VerifierKey::parse("a+00000000+AQ=="),
            Err(KeyError::Length { found: 1 })
        );
        assert_eq!(
            VerifierKey::parse("a+00000000+"),
            Err(KeyError::Length { found: 0 })
        );
        assert!(matches!(
            VerifierKey::parse("a+00000000+AQ="),
            Err(KeyError::Base64(_))
        ));
        assert_eq!(
            SignerKey::parse(SPEC_VKEY).err(),
            Some(KeyError::NotPrivate)
        );
    }

    #[test]
    fn a_small_order_public_key_is_refused_or_never_verifies() {
        // The identity point (y = 1) is a valid encoding of a small-order
        // point: strict verification never accepts a signature under it.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let text = key_text("weak", key_id("weak", &identity), &identity);
        match VerifierKey::parse(&text) {
            Err(e) => assert_eq!(e, KeyError::PublicKey),
            Ok(k) => assert!(!k.verifies(b"x\n", &[0u8; 64])),
        }
    }

    #[test]
    fn signer_keys_round_trip_and_hide_their_secret() {
        let k = SignerKey::from_seed("example.com/log", &[7u8; 32]).expect("key");
        let text = k.to_secret_string();
        assert!(text.starts_with("PRIVATE+KEY+example.com/log+"));
        let again = SignerKey::parse(&text).expect("parse");
        assert_eq!(again.id(), k.id());
        assert_eq!(again.verifier(), k.verifier());
        assert_eq!(
            VerifierKey::parse(&k.verifier().to_string()),
            Ok(k.verifier())
        );
        let shown = format!("{k:?}");
        assert!(!shown.contains(&text[text.len() - 20..]), "{shown}");
        assert_eq!(
            SignerKey::from_seed("a+b", &[0; 32]).err(),
            Some(KeyError::Name("a+b".into()))
        );
    }
}
