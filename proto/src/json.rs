//! The check that a text is one JSON object, run on every event's
//! `metadata` as it is appended, without building the object.
//!
//! What it accepts is what the check it replaced accepted
//! (`serde_json::from_str::<serde::de::IgnoredAny>` on a text whose first
//! non-whitespace character is `{`), less nesting deeper than
//! [`MAX_DEPTH`]. That is RFC 8259 JSON, with these details pinned by the
//! differential test against serde_json (`proto/tests/json_check.rs`):
//!
//! - whitespace is space, tab, LF and CR only, before and after the object
//!   and between tokens;
//! - a string holds no raw U+0000..U+001F; its escapes are `\" \\ \/ \b \f
//!   \n \r \t \uXXXX`, and a `\uXXXX` surrogate need not be paired
//!   (serde_json pairs them only when it builds a string, not when it skips
//!   one);
//! - a number is `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, of any
//!   length;
//! - duplicate keys are accepted;
//! - the input is a `&str`, so UTF-8 is not checked again.
//!
//! One pass, no recursion, no allocation: the kinds of the open containers
//! are one bit each in a `u128`, which is why nesting is bounded.

use std::fmt;

/// The deepest nesting accepted, counting the top-level object as 1
/// (`docs/protocol.md`, event rule 7). serde_json's skipping path has no
/// limit at all; this one keeps the open containers in 128 bits, so hostile
/// input costs neither stack nor heap.
pub const MAX_DEPTH: usize = 128;
const _: () = assert!(MAX_DEPTH <= u128::BITS as usize);

/// Why a text is not one JSON object: what was expected, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{kind} at byte {offset}")]
pub struct JsonError {
    /// Bytes from the start of the text to where something else was found;
    /// the text's length when the text ended too soon.
    pub offset: usize,
    /// What was expected there.
    pub kind: JsonErrorKind,
}

/// What [`check_object`] expected where it stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonErrorKind {
    /// `{`: the text (after whitespace) is not an object at all.
    Object,
    /// A value: an object, array, string, number, `true`, `false` or `null`.
    Value,
    /// `"` opening a key: object keys are strings.
    Key,
    /// `:` after a key.
    Colon,
    /// `,` or `}` after a member.
    CommaOrObjectEnd,
    /// `,` or `]` after an element.
    CommaOrArrayEnd,
    /// This literal, in full; the offset is its first byte.
    Literal(&'static str),
    /// A digit: the first of a number's integer part, fraction or exponent.
    Digit,
    /// An escape after `\`: one of `" \ / b f n r t u`.
    Escape,
    /// One of the four hex digits of `\uXXXX`.
    HexDigit,
    /// The `"` closing a string, before the text ended.
    StringEnd,
    /// An escape in place of this raw control character (U+0000..U+001F
    /// are not allowed unescaped in a string).
    ControlCharacter(u8),
    /// No `{` or `[` here: it would nest deeper than [`MAX_DEPTH`].
    Depth,
    /// The end of the text (only whitespace may follow the object).
    End,
}

impl fmt::Display for JsonErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonErrorKind::Object => f.write_str("expected '{'"),
            JsonErrorKind::Value => f.write_str("expected a value"),
            JsonErrorKind::Key => f.write_str("expected '\"' starting a key"),
            JsonErrorKind::Colon => f.write_str("expected ':'"),
            JsonErrorKind::CommaOrObjectEnd => f.write_str("expected ',' or '}'"),
            JsonErrorKind::CommaOrArrayEnd => f.write_str("expected ',' or ']'"),
            JsonErrorKind::Literal(word) => write!(f, "expected '{word}'"),
            JsonErrorKind::Digit => f.write_str("expected a digit"),
            JsonErrorKind::Escape => f.write_str("expected an escape (one of \" \\ / b f n r t u)"),
            JsonErrorKind::HexDigit => f.write_str("expected a hex digit"),
            JsonErrorKind::StringEnd => f.write_str("expected '\"' closing the string"),
            JsonErrorKind::ControlCharacter(c) => {
                write!(
                    f,
                    "expected an escape in place of control character U+{c:04X}"
                )
            }
            JsonErrorKind::Depth => write!(f, "expected at most {MAX_DEPTH} levels of nesting"),
            JsonErrorKind::End => f.write_str("expected the end of the text"),
        }
    }
}

impl JsonError {
    fn at(offset: usize, kind: JsonErrorKind) -> Self {
        JsonError { offset, kind }
    }
}

/// Checks that `text` is one JSON object, optionally surrounded by
/// whitespace (see the module doc for the exact language).
pub fn check_object(text: &str) -> Result<(), JsonError> {
    let b = text.as_bytes();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return Err(JsonError::at(i, JsonErrorKind::Object));
    }
    let mut open = Open::default();
    'value: loop {
        // `i` is at the first byte of a value. A non-empty container is
        // opened and the loop goes round for its first value; anything else
        // is skipped whole.
        match b.get(i) {
            Some(&c @ (b'{' | b'[')) => {
                if open.depth == MAX_DEPTH {
                    return Err(JsonError::at(i, JsonErrorKind::Depth));
                }
                let object = c == b'{';
                i = skip_ws(b, i + 1);
                let close = if object { b'}' } else { b']' };
                if b.get(i) == Some(&close) {
                    i += 1;
                } else {
                    open.push(object);
                    if object {
                        i = key_and_colon(b, i)?;
                    }
                    continue 'value;
                }
            }
            Some(b'"') => i = string_end(b, i + 1)?,
            Some(b't') => i = literal_end(b, i, "true")?,
            Some(b'f') => i = literal_end(b, i, "false")?,
            Some(b'n') => i = literal_end(b, i, "null")?,
            Some(b'-' | b'0'..=b'9') => i = number_end(b, i)?,
            _ => return Err(JsonError::at(i, JsonErrorKind::Value)),
        }
        // A value ended: close the containers it completes, until a ','
        // leads to the next value or the top-level object is closed.
        while let Some(object) = open.innermost() {
            i = skip_ws(b, i);
            match (b.get(i), object) {
                (Some(b','), true) => {
                    i = key_and_colon(b, skip_ws(b, i + 1))?;
                    continue 'value;
                }
                (Some(b','), false) => {
                    i = skip_ws(b, i + 1);
                    continue 'value;
                }
                (Some(b'}'), true) | (Some(b']'), false) => {
                    i += 1;
                    open.pop();
                }
                (_, true) => return Err(JsonError::at(i, JsonErrorKind::CommaOrObjectEnd)),
                (_, false) => return Err(JsonError::at(i, JsonErrorKind::CommaOrArrayEnd)),
            }
        }
        break;
    }
    let end = skip_ws(b, i);
    if end != b.len() {
        return Err(JsonError::at(end, JsonErrorKind::End));
    }
    Ok(())
}

/// The open non-empty containers, innermost in bit 0 of `kinds`
/// (1 = object, 0 = array).
#[derive(Default)]
struct Open {
    kinds: u128,
    depth: usize,
}

impl Open {
    fn push(&mut self, object: bool) {
        assert!(self.depth < MAX_DEPTH, "depth is checked before a push");
        self.kinds = self.kinds << 1 | u128::from(object);
        self.depth += 1;
    }

    fn pop(&mut self) {
        assert!(self.depth > 0, "a close matched an open container");
        self.kinds >>= 1;
        self.depth -= 1;
    }

    /// Whether the innermost open container is an object; `None` once the
    /// top-level object is closed.
    fn innermost(&self) -> Option<bool> {
        (self.depth > 0).then_some(self.kinds & 1 == 1)
    }
}

// The helpers are `#[inline(always)]`: they run once per token, and a call
// with its saved registers and a `Result` returned through memory cost more
// than the work (a 138-byte object of short members: 140 ns called, 110 ns
// inlined).

/// The index of the first byte at or after `i` that is not JSON whitespace.
#[inline(always)]
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = b.get(i) {
        i += 1;
    }
    i
}

/// Checks a key and its colon starting at `i`; returns the index of the
/// member's value (whitespace skipped).
#[inline(always)]
fn key_and_colon(b: &[u8], i: usize) -> Result<usize, JsonError> {
    if b.get(i) != Some(&b'"') {
        return Err(JsonError::at(i, JsonErrorKind::Key));
    }
    let i = skip_ws(b, string_end(b, i + 1)?);
    if b.get(i) != Some(&b':') {
        return Err(JsonError::at(i, JsonErrorKind::Colon));
    }
    Ok(skip_ws(b, i + 1))
}

/// Checks a string's contents from `i` (just after its opening quote);
/// returns the index just after its closing quote.
#[inline(always)]
fn string_end(b: &[u8], mut i: usize) -> Result<usize, JsonError> {
    loop {
        i = plain_end(b, i);
        match b.get(i) {
            Some(b'"') => return Ok(i + 1),
            Some(b'\\') => match b.get(i + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                Some(b'u') => {
                    for h in i + 2..i + 6 {
                        if !b.get(h).is_some_and(u8::is_ascii_hexdigit) {
                            return Err(JsonError::at(h, JsonErrorKind::HexDigit));
                        }
                    }
                    i += 6;
                }
                _ => return Err(JsonError::at(i + 1, JsonErrorKind::Escape)),
            },
            Some(&c) => return Err(JsonError::at(i, JsonErrorKind::ControlCharacter(c))),
            None => return Err(JsonError::at(i, JsonErrorKind::StringEnd)),
        }
    }
}

/// The index of the first byte at or after `i` that a string cannot hold
/// as itself (`"`, `\` or a control character), or the text's length.
/// Metadata is mostly string bytes, so this looks at sixteen at a time, as
/// two words: a byte's high bit in `hits` is set where the byte is special,
/// and may also be set above a special byte (by a borrow), never below, so
/// the lowest set bit is exact.
fn plain_end(b: &[u8], i: usize) -> usize {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    const HIGHS: u64 = ONES << 7;
    let hits = |chunk: &[u8]| {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let zero_in = |x: u64| x.wrapping_sub(ONES) & !x;
        let quote = zero_in(w ^ (ONES * u64::from(b'"')));
        let backslash = zero_in(w ^ (ONES * u64::from(b'\\')));
        let below_space = w.wrapping_sub(ONES * 0x20) & !w;
        (quote | backslash | below_space) & HIGHS
    };
    let rest = &b[i..];
    let mut pairs = rest.chunks_exact(16);
    for (n, pair) in pairs.by_ref().enumerate() {
        let (lo, hi) = (hits(&pair[..8]), hits(&pair[8..]));
        if lo | hi != 0 {
            let lane = if lo != 0 {
                lo.trailing_zeros()
            } else {
                64 + hi.trailing_zeros()
            };
            return i + 16 * n + (lane / 8) as usize;
        }
    }
    let tail = pairs.remainder();
    let at = tail
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .unwrap_or(tail.len());
    b.len() - tail.len() + at
}

/// Checks that `word` is at `i`; returns the index just after it.
#[inline(always)]
fn literal_end(b: &[u8], i: usize, word: &'static str) -> Result<usize, JsonError> {
    if b[i..].starts_with(word.as_bytes()) {
        Ok(i + word.len())
    } else {
        Err(JsonError::at(i, JsonErrorKind::Literal(word)))
    }
}

/// Checks a number starting at `i` (a `-` or a digit); returns the index
/// just after it.
#[inline(always)]
fn number_end(b: &[u8], mut i: usize) -> Result<usize, JsonError> {
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    match b.get(i) {
        // A leading 0 stands alone; a digit after it ends the number and is
        // refused by whatever expected the number's end.
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i = digits_end(b, i + 1),
        _ => return Err(JsonError::at(i, JsonErrorKind::Digit)),
    }
    if b.get(i) == Some(&b'.') {
        i = some_digits_end(b, i + 1)?;
    }
    if let Some(b'e' | b'E') = b.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = b.get(i) {
            i += 1;
        }
        i = some_digits_end(b, i)?;
    }
    Ok(i)
}

/// The index of the first non-digit at or after `i`.
fn digits_end(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    i
}

/// Like [`digits_end`], requiring at least one digit.
fn some_digits_end(b: &[u8], i: usize) -> Result<usize, JsonError> {
    let end = digits_end(b, i);
    if end == i {
        return Err(JsonError::at(i, JsonErrorKind::Digit));
    }
    Ok(end)
}
