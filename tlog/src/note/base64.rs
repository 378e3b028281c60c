//! Base64 as the C2SP formats use it: the standard alphabet of RFC 4648
//! section 4 (`A-Z a-z 0-9 + /`), always padded with `=`.
//!
//! Decoding is strict, so that every byte string has exactly one accepted
//! text: the length must be a multiple of 4, padding only at the end and
//! only as much as the length needs, the unused low bits of the last
//! character zero, and nothing else (no whitespace, no line breaks, no URL
//! alphabet). Hand-written rather than a dependency: it is this page, and
//! strict is the only mode wanted.

use thiserror::Error;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Why text is not canonical padded standard base64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Base64Error {
    /// The length is not a multiple of 4.
    #[error("base64 of {len} characters: not a multiple of 4")]
    Length {
        /// The length of the text.
        len: usize,
    },
    /// A byte outside the alphabet, or `=` before the last two places.
    #[error("byte 0x{byte:02x} at {offset} is not standard base64")]
    Char {
        /// Its offset in the text.
        offset: usize,
        /// The byte.
        byte: u8,
    },
    /// The last character carries bits past the end of the data: another
    /// encoder's spelling of bytes that have a canonical one.
    #[error("base64 is not canonical: unused bits set at {offset}")]
    NonCanonical {
        /// The offset of the character with the stray bits.
        offset: usize,
    },
}

/// The padded standard base64 of `bytes`.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        let chars = [18, 12, 6, 0].map(|shift| ALPHABET[(n >> shift) as usize & 63] as char);
        // 1 byte gives 2 characters, 2 give 3, 3 give 4; pad the rest.
        for (i, c) in chars.into_iter().enumerate() {
            out.push(if i <= chunk.len() { c } else { '=' });
        }
    }
    out
}

/// The 6-bit value of an alphabet character.
fn value(c: u8) -> Option<u32> {
    let v = match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    };
    Some(u32::from(v))
}

/// Decodes canonical padded standard base64 (see the module doc).
pub fn decode(text: &str) -> Result<Vec<u8>, Base64Error> {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return Err(Base64Error::Length { len: bytes.len() });
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let quads = bytes.len() / 4;
    for (q, quad) in bytes.chunks_exact(4).enumerate() {
        let base = q * 4;
        // Padding is allowed only in the last quad, as "xx==" or "xxx=".
        let pad = if q + 1 == quads {
            match (quad[2], quad[3]) {
                (b'=', b'=') => 2,
                (_, b'=') => 1,
                _ => 0,
            }
        } else {
            0
        };
        let mut n = 0u32;
        for (i, &c) in quad[..4 - pad].iter().enumerate() {
            let v = value(c).ok_or(Base64Error::Char {
                offset: base + i,
                byte: c,
            })?;
            n |= v << (18 - 6 * i);
        }
        let data = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        let kept = 3 - pad;
        // The bits of the last character past the kept bytes must be zero.
        let stray = match pad {
            2 => n & 0xffff,
            1 => n & 0xff,
            _ => 0,
        };
        if stray != 0 {
            return Err(Base64Error::NonCanonical {
                offset: base + 3 - pad,
            });
        }
        out.extend_from_slice(&data[..kept]);
    }
    Ok(out)
}

/// Decodes base64 that must hold exactly `N` bytes; `None` for any other
/// length.
pub fn decode_array<const N: usize>(text: &str) -> Result<Option<[u8; N]>, Base64Error> {
    Ok(decode(text)?.try_into().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4648 section 10's test vectors.
    const RFC4648: [(&str, &str); 7] = [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ];

    #[test]
    fn rfc4648_vectors_both_ways() {
        for (plain, coded) in RFC4648 {
            assert_eq!(encode(plain.as_bytes()), coded);
            assert_eq!(decode(coded), Ok(plain.as_bytes().to_vec()));
        }
    }

    #[test]
    fn every_byte_value_and_length_round_trips() {
        let all: Vec<u8> = (0..=255u8).collect();
        for len in 0..all.len() {
            let text = encode(&all[..len]);
            assert_eq!(text.len(), len.div_ceil(3) * 4);
            assert_eq!(decode(&text), Ok(all[..len].to_vec()));
        }
    }

    #[test]
    fn strict_decoding_rejects_every_other_spelling() {
        assert_eq!(decode("Zg="), Err(Base64Error::Length { len: 3 }));
        assert_eq!(decode("Zg"), Err(Base64Error::Length { len: 2 }));
        assert_eq!(decode("Zh=="), Err(Base64Error::NonCanonical { offset: 1 }));
        assert_eq!(decode("Zm9="), Err(Base64Error::NonCanonical { offset: 2 }));
        assert_eq!(
            decode("Zg==Zg=="),
            Err(Base64Error::Char {
                offset: 2,
                byte: b'='
            })
        );
        assert_eq!(
            decode("Z==="),
            Err(Base64Error::Char {
                offset: 1,
                byte: b'='
            })
        );
        assert_eq!(
            decode("===="),
            Err(Base64Error::Char {
                offset: 0,
                byte: b'='
            })
        );
        assert_eq!(
            decode("Z=g="),
            Err(Base64Error::Char {
                offset: 1,
                byte: b'='
            })
        );
        assert_eq!(decode("Zm9v\n"), Err(Base64Error::Length { len: 5 }));
        assert_eq!(
            decode("Zm 9"),
            Err(Base64Error::Char {
                offset: 2,
                byte: b' '
            })
        );
        assert_eq!(
            decode("Zm-_"),
            Err(Base64Error::Char {
                offset: 2,
                byte: b'-'
            })
        );
        assert_eq!(
            decode("Zm9vZé="),
            Err(Base64Error::Char {
                offset: 5,
                byte: 0xc3
            })
        );
    }

    #[test]
    fn decode_array_checks_the_length() {
        assert_eq!(decode_array::<3>("Zm9v"), Ok(Some(*b"foo")));
        assert_eq!(decode_array::<2>("Zm9v"), Ok(None));
        assert_eq!(
            decode_array::<3>("Zm9"),
            Err(Base64Error::Length { len: 3 })
        );
    }
}
