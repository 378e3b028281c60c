//! The bodies of the protocol's fuzz targets (`fuzz/`), here so that
//! `cargo test` replays the stored corpus through the same code
//! (`proto/tests/fuzz_corpus.rs`). Each panics only on a real bug.

use std::time::Duration;

use crate::frame::{self, FrameError, DEFAULT_MAX_BODY};
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
