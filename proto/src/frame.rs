//! The connection preamble and length-prefixed frames.
//!
//! A connection opens with the client's 8-byte preamble, `"CHLG"`, the
//! lowest and the highest protocol version it speaks (u16 LE each). The
//! server answers `"CHLG"`, the version it chose, and a reserved u16 0; or,
//! if it shares no version with the client, an error frame, and closes.
//!
//! Every message after that is a frame:
//!
//! ```text
//! u32 LE  length of what follows (type + request id + body), 5..=5+max_body
//! u8      frame type (see msg.rs)
//! u32 LE  request id, chosen by the client; replies carry the same id
//! ...     body
//! ```
//!
//! The declared length is checked against the maximum before anything is
//! allocated, and the body buffer grows only as bytes actually arrive, so
//! a peer declaring 4 GiB and sending 10 bytes costs nothing.

use std::io::{self, Read};
use std::time::{Duration, Instant};

use thiserror::Error;

/// The first four bytes of both preambles.
pub const MAGIC: [u8; 4] = *b"CHLG";
/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u16 = 1;
/// Bytes in a preamble.
pub const PREAMBLE_LEN: usize = 8;
/// Bytes before a frame's body: length, type, request id.
pub const FRAME_HEADER_LEN: usize = 9;
/// The length field counts the type and request id too.
const LEN_OVERHEAD: u32 = 5;
/// The default largest frame body: room for an append of 1 MiB of events
/// and their per-event length prefixes.
pub const DEFAULT_MAX_BODY: usize = (1 << 20) + 8 * 1024;

const _: () = assert!(FRAME_HEADER_LEN == 4 + LEN_OVERHEAD as usize);

/// A failure to read or parse a frame or preamble.
#[derive(Debug, Error)]
pub enum FrameError {
    /// The peer closed the connection between frames.
    #[error("connection closed")]
    Closed,
    /// The peer closed the connection inside a frame.
    #[error("connection closed inside a frame ({got} of {expected} bytes)")]
    Truncated {
        /// Bytes of the frame received.
        got: usize,
        /// Bytes it should have had.
        expected: usize,
    },
    /// No frame started before the read timed out.
    #[error("no frame arrived before the read timeout")]
    Idle,
    /// A started frame did not complete within its deadline.
    #[error("a started frame did not complete within {0:?}")]
    Stalled(Duration),
    /// The declared length is over the maximum.
    #[error("frame declares {declared} bytes, more than the maximum of {max}")]
    TooLarge {
        /// What the frame declared.
        declared: u64,
        /// The maximum.
        max: usize,
    },
    /// The declared length cannot hold a type and a request id.
    #[error("frame declares {0} bytes, fewer than the 5 every frame has")]
    TooShort(u32),
    /// A preamble without the magic.
    #[error("not a chainlog connection (bad preamble {0:02x?})")]
    BadMagic([u8; 4]),
    /// No version in common.
    #[error(
        "the peer speaks protocol versions {min}..={max}; this side speaks {PROTOCOL_VERSION}"
    )]
    UnsupportedVersion {
        /// The peer's lowest version.
        min: u16,
        /// The peer's highest version.
        max: u16,
    },
    /// The transport failed.
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
}

/// A frame's header, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// The frame type.
    pub kind: u8,
    /// The request id.
    pub request_id: u32,
    /// Bytes of body that follow.
    pub body_len: usize,
}

/// The client's preamble.
pub fn client_preamble(min: u16, max: u16) -> [u8; PREAMBLE_LEN] {
    let mut p = [0u8; PREAMBLE_LEN];
    p[..4].copy_from_slice(&MAGIC);
    p[4..6].copy_from_slice(&min.to_le_bytes());
    p[6..8].copy_from_slice(&max.to_le_bytes());
    p
}

/// The server's answer, naming the version chosen.
pub fn server_preamble(version: u16) -> [u8; PREAMBLE_LEN] {
    client_preamble(version, 0)
}

/// Parses a client's preamble and chooses the version to speak.
pub fn accept_preamble(p: &[u8; PREAMBLE_LEN]) -> Result<u16, FrameError> {
    let (min, max) = split_preamble(p)?;
    if min <= PROTOCOL_VERSION && PROTOCOL_VERSION <= max {
        Ok(PROTOCOL_VERSION)
    } else {
        Err(FrameError::UnsupportedVersion { min, max })
    }
}

/// Parses the server's answer: the version it chose.
pub fn parse_server_preamble(p: &[u8; PREAMBLE_LEN]) -> Result<u16, FrameError> {
    let (version, _) = split_preamble(p)?;
    if version != PROTOCOL_VERSION {
        return Err(FrameError::UnsupportedVersion {
            min: version,
            max: version,
        });
    }
    Ok(version)
}

/// The two version fields of a preamble, once its magic is checked.
fn split_preamble(p: &[u8; PREAMBLE_LEN]) -> Result<(u16, u16), FrameError> {
    let magic = [p[0], p[1], p[2], p[3]];
    if magic != MAGIC {
        return Err(FrameError::BadMagic(magic));
    }
    Ok((
        u16::from_le_bytes([p[4], p[5]]),
        u16::from_le_bytes([p[6], p[7]]),
    ))
}

/// Checks a frame's declared length (its first four bytes) against the
/// minimum and `max_body`; returns the body's length. A reader can refuse
/// a bad frame as soon as these four bytes are in.
pub fn check_length(len: [u8; 4], max_body: usize) -> Result<usize, FrameError> {
    let len = u32::from_le_bytes(len);
    if len < LEN_OVERHEAD {
        return Err(FrameError::TooShort(len));
    }
    let body_len = (len - LEN_OVERHEAD) as usize;
    if body_len > max_body {
        return Err(FrameError::TooLarge {
            declared: u64::from(len),
            max: max_body + LEN_OVERHEAD as usize,
        });
    }
    Ok(body_len)
}

/// Parses a frame header, refusing a declared length over `max_body`.
pub fn parse_header(
    h: &[u8; FRAME_HEADER_LEN],
    max_body: usize,
) -> Result<FrameHeader, FrameError> {
    let body_len = check_length([h[0], h[1], h[2], h[3]], max_body)?;
    Ok(FrameHeader {
        kind: h[4],
        request_id: u32::from_le_bytes([h[5], h[6], h[7], h[8]]),
        body_len,
    })
}

/// Starts a frame in `out`; finish it with [`finish_frame`] once the body
/// is appended. Returns where the frame starts.
pub fn begin_frame(out: &mut Vec<u8>, kind: u8, request_id: u32) -> usize {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    out.push(kind);
    out.extend_from_slice(&request_id.to_le_bytes());
    at
}

/// Writes the length of the frame begun at `at`.
pub fn finish_frame(out: &mut [u8], at: usize) {
    let len = u32::try_from(out.len() - at - 4).expect("frame over 4 GiB");
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
}

/// Reads bytes into the chunk size the body buffer grows by.
const READ_CHUNK: usize = 64 << 10;

/// Reads one frame from `r` into `body` (cleared first).
///
/// `deadline` bounds the whole frame once its first byte has arrived
/// (checked after every read, so trickling bytes does not extend it). If
/// `r` has a read timeout and it expires before the first byte,
/// [`FrameError::Idle`] is returned and nothing was consumed, so the call
/// can simply be repeated.
pub fn read_frame<R: Read>(
    r: &mut R,
    max_body: usize,
    deadline: Duration,
    body: &mut Vec<u8>,
) -> Result<FrameHeader, FrameError> {
    body.clear();
    let mut h = [0u8; FRAME_HEADER_LEN];
    let mut got = 0;
    let mut started: Option<Instant> = None;
    while got < FRAME_HEADER_LEN {
        match r.read(&mut h[got..]) {
            Ok(0) if got == 0 => return Err(FrameError::Closed),
            Ok(0) => {
                return Err(FrameError::Truncated {
                    got,
                    expected: FRAME_HEADER_LEN,
                })
            }
            Ok(n) => {
                got += n;
                // Checked after every read too: a peer trickling a byte at
                // a time never lets the read time out.
                if started.get_or_insert_with(Instant::now).elapsed() >= deadline {
                    return Err(FrameError::Stalled(deadline));
                }
            }
            Err(e) if is_timeout(&e) => match started {
                None => return Err(FrameError::Idle),
                Some(t) if t.elapsed() >= deadline => return Err(FrameError::Stalled(deadline)),
                Some(_) => {}
            },
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let started = started.unwrap_or_else(Instant::now);
    let header = parse_header(&h, max_body)?;
    while body.len() < header.body_len {
        let have = body.len();
        let want = (header.body_len - have).min(READ_CHUNK);
        body.resize(have + want, 0);
        match r.read(&mut body[have..]) {
            Ok(0) => {
                return Err(FrameError::Truncated {
                    got: FRAME_HEADER_LEN + have,
                    expected: FRAME_HEADER_LEN + header.body_len,
                })
            }
            Ok(n) => {
                body.truncate(have + n);
                if started.elapsed() >= deadline {
                    return Err(FrameError::Stalled(deadline));
                }
            }
            Err(e) => {
                body.truncate(have);
                if is_timeout(&e) {
                    if started.elapsed() >= deadline {
                        return Err(FrameError::Stalled(deadline));
                    }
                } else if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e.into());
                }
            }
        }
    }
    Ok(header)
}

/// Reads the 8 preamble bytes, with the same timeout rules as frames.
pub fn read_preamble<R: Read>(
    r: &mut R,
    deadline: Duration,
) -> Result<[u8; PREAMBLE_LEN], FrameError> {
    let mut p = [0u8; PREAMBLE_LEN];
    let mut got = 0;
    let start = Instant::now();
    while got < PREAMBLE_LEN {
        match r.read(&mut p[got..]) {
            Ok(0) if got == 0 => return Err(FrameError::Closed),
            Ok(0) => {
                return Err(FrameError::Truncated {
                    got,
                    expected: PREAMBLE_LEN,
                })
            }
            Ok(n) => {
                got += n;
                if start.elapsed() >= deadline {
                    return Err(FrameError::Stalled(deadline));
                }
            }
            Err(e) if is_timeout(&e) => {
                if start.elapsed() >= deadline {
                    return Err(FrameError::Stalled(deadline));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(p)
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_declared_length_is_refused_before_allocating() {
        let mut bytes = vec![0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0];
        bytes.extend_from_slice(&[7; 10]);
        let mut body = Vec::new();
        let err = read_frame(
            &mut &bytes[..],
            DEFAULT_MAX_BODY,
            Duration::from_secs(1),
            &mut body,
        )
        .expect_err("refused");
        assert!(
            matches!(
                err,
                FrameError::TooLarge {
                    declared: 0xffff_ffff,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(body.capacity(), 0);
    }

    #[test]
    fn frames_round_trip_and_truncation_is_reported() {
        let mut out = Vec::new();
        let at = begin_frame(&mut out, 9, 42);
        out.extend_from_slice(b"hello");
        finish_frame(&mut out, at);
        let mut body = Vec::new();
        let h = read_frame(&mut &out[..], 16, Duration::from_secs(1), &mut body).expect("reads");
        assert_eq!(
            (h.kind, h.request_id, h.body_len, &body[..]),
            (9, 42, 5, &b"hello"[..])
        );
        let err = read_frame(
            &mut &out[..out.len() - 1],
            16,
            Duration::from_secs(1),
            &mut body,
        )
        .expect_err("truncated");
        assert!(
            matches!(
                err,
                FrameError::Truncated {
                    got: 13,
                    expected: 14
                }
            ),
            "{err:?}"
        );
        assert!(matches!(
            read_frame(&mut &out[..0], 16, Duration::from_secs(1), &mut body),
            Err(FrameError::Closed)
        ));
    }

    /// Hands out one byte per read, slowly: never a timeout, but never done.
    struct Trickle(Vec<u8>, usize);

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            std::thread::sleep(Duration::from_millis(5));
            match (self.0.get(self.1), buf.first_mut()) {
                (Some(&b), Some(slot)) => {
                    *slot = b;
                    self.1 += 1;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    #[test]
    fn a_trickling_frame_is_cut_off_at_its_deadline() {
        let mut out = Vec::new();
        let at = begin_frame(&mut out, 9, 1);
        out.extend_from_slice(&[0; 100]);
        finish_frame(&mut out, at);
        let mut body = Vec::new();
        let err = read_frame(
            &mut Trickle(out, 0),
            4096,
            Duration::from_millis(50),
            &mut body,
        )
        .expect_err("stalled");
        assert!(matches!(err, FrameError::Stalled(_)), "{err:?}");
    }

    #[test]
    fn versions_are_negotiated() {
        assert_eq!(accept_preamble(&client_preamble(1, 3)).ok(), Some(1));
        assert!(matches!(
            accept_preamble(&client_preamble(2, 3)),
            Err(FrameError::UnsupportedVersion { min: 2, max: 3 })
        ));
        assert!(matches!(
            accept_preamble(b"GET / HT"),
            Err(FrameError::BadMagic(_))
        ));
    }
}
