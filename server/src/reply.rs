//! Reply frames: one helper per kind of reply, so that every error is
//! counted in the metrics the same way, whoever sends it.

use proto::frame;
use proto::msg::{self, ErrorReply, Response};

use crate::metrics::Metrics;

/// A response as a frame.
pub(crate) fn frame(id: u32, r: &Response) -> Vec<u8> {
    let mut out = Vec::new();
    msg::encode_response(&mut out, id, r);
    out
}

/// A frame of type `kind` around an already encoded body.
pub(crate) fn body_frame(kind: u8, id: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(frame::FRAME_HEADER_LEN + body.len());
    let at = frame::begin_frame(&mut out, kind, id);
    out.extend_from_slice(body);
    frame::finish_frame(&mut out, at);
    out
}

/// An error reply, counted in the metrics.
pub(crate) fn error_frame(metrics: &Metrics, id: u32, e: ErrorReply) -> Vec<u8> {
    metrics.error(e.code);
    frame(id, &Response::Error(e))
}
