//! The bodies of the protocol's fuzz targets (`fuzz/`), here so that
//! `cargo test` replays the stored corpus through the same code
//! (`proto/tests/fuzz_corpus.rs`). Each panics only on a real bug.
//! Compiled only with the `testing` feature (tests and `fuzz/`).

use std::time::Duration;

use crate::frame::{self, FrameError, DEFAULT_MAX_BODY};
use crate::json::{self, JsonErrorKind, MAX_DEPTH};
use crate::msg::{decode_request, decode_response, encode_request, encode_response};

/// The server's decoder: a byte stream of frames, each decoded as a
/// request. Whatever decodes re-encodes to the same frame; nothing panics;
/// a declared length over the maximum is refused.
pub fn frame_decoder(data: &[u8]) {
    let mut input = data;
    let mut body = Vec::new();
    for _ in 0..64 {
        let before = input.len();
        match frame::read_frame(&mut input, 4096, Duration::from_secs(1), &mut body) {
            Ok(h) => {
                assert!(h.body_len <= 4096, "body over the maximum");
                if let Ok(req) = decode_request(h.kind, &body) {
                    let mut again = Vec::new();
                    encode_request(&mut again, h.request_id, &req);
                    let consumed = before - input.len();
                    let start = data.len() - before;
                    assert_eq!(
                        again,
                        data[start..start + consumed],
                        "request does not round-trip"
                    );
                }
                if let Ok(resp) = decode_response(h.kind, &body) {
                    let mut again = Vec::new();
                    encode_response(&mut again, h.request_id, &resp);
                    let mut b2 = Vec::new();
                    let h2 = frame::read_frame(
                        &mut &again[..],
                        DEFAULT_MAX_BODY,
                        Duration::from_secs(1),
                        &mut b2,
                    )
                    .expect("re-encoded frame reads");
                    assert_eq!(
                        decode_response(h2.kind, &b2).ok(),
                        Some(resp),
                        "response does not round-trip"
                    );
                }
            }
            Err(
                FrameError::Closed
                | FrameError::Truncated { .. }
                | FrameError::TooLarge { .. }
                | FrameError::TooShort(_),
            ) => return,
            Err(e) => panic!("unexpected frame error from a byte slice: {e}"),
        }
    }
}

/// The event decoder: whatever decodes re-encodes to the same bytes, and
/// validation never panics.
pub fn event_decoder(data: &[u8]) {
    if let Ok(e) = crate::event::EventRef::decode(data) {
        let mut again = Vec::new();
        e.encode(&mut again);
        assert_eq!(again, data, "event does not round-trip");
        let _ = e.validate(&crate::event::Limits::default(), 1_700_000_000_000_000_000);
    }
}

/// The metadata JSON check against a reference: `reference(text)` says
/// whether `text` is one JSON value by the parser the check replaced
/// (serde_json's `from_str::<IgnoredAny>`, passed in by the fuzz target and
/// the tests, so that serde_json is not a dependency of this crate). The
/// two must agree on every text, with the old top-level rule (`{` after
/// leading whitespace), except that nesting deeper than [`MAX_DEPTH`] is
/// refused here only: the reference's skipping path has no limit.
pub fn json_check(data: &[u8], reference: fn(&str) -> bool) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let ours = json::check_object(text);
    let accepted = reference(text) && text.trim_start().starts_with('{');
    let depth = if accepted { nesting_depth(text) } else { 0 };
    match ours {
        Ok(()) => {
            assert!(accepted, "accepted {text:?}, which the reference refuses");
            assert!(depth <= MAX_DEPTH, "accepted {text:?}, {depth} deep");
        }
        Err(e) => {
            assert!(e.offset <= text.len(), "{e} is past the end of {text:?}");
            if accepted {
                assert!(
                    e.kind == JsonErrorKind::Depth && depth > MAX_DEPTH,
                    "refused {text:?} ({e}), which the reference accepts ({depth} deep)"
                );
            }
        }
    }
}

/// The deepest nesting of arrays and objects in valid JSON text.
fn nesting_depth(text: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0);
    let (mut in_string, mut escaped) = (false, false);
    for c in text.bytes() {
        match (in_string, c) {
            (true, _) if escaped => escaped = false,
            (true, b'\\') => escaped = true,
            (true, b'"') => in_string = false,
            (true, _) => {}
            (false, b'"') => in_string = true,
            (false, b'{' | b'[') => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            (false, b'}' | b']') => depth = depth.saturating_sub(1),
            (false, _) => {}
        }
    }
    deepest
}
