//! Request bodies read within bounds, and response bodies.
//!
//! A request body is refused by its `Content-Length` before a byte of it is
//! read, and cut off at the limit while it streams in (chunked); each chunk
//! must arrive within the frame timeout. A gzipped body is inflated into at
//! most the same limit, so a small bomb costs the server no more than a
//! large plain body.

use std::convert::Infallible;
use std::io::Read;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::header::{HeaderMap, CONTENT_ENCODING, CONTENT_LENGTH};
use tokio::sync::mpsc;

use super::reply::HttpError;

/// Reads the whole request body: at most `max` bytes on the wire and at
/// most `max` after inflating a `Content-Encoding: gzip` body.
pub(crate) async fn read(
    headers: &HeaderMap,
    mut body: Incoming,
    max: usize,
    stall: Duration,
) -> Result<Bytes, HttpError> {
    let too_large = |n: &str| {
        HttpError::new(
            hyper::StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the body is {n} bytes, over the limit of {max}"),
        )
    };
    let gzip = match headers.get(CONTENT_ENCODING).map(|v| v.to_str()) {
        None => false,
        Some(Ok(v)) if v.eq_ignore_ascii_case("gzip") => true,
        Some(Ok(v)) if v.eq_ignore_ascii_case("identity") => false,
        Some(_) => {
            return Err(HttpError::new(
                hyper::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Content-Encoding must be gzip or identity",
            ))
        }
    };
    if let Some(len) = headers.get(CONTENT_LENGTH) {
        let len: u64 = len
            .to_str()
            .ok()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| HttpError::malformed("Content-Length is not a number"))?;
        if len > max as u64 {
            return Err(too_large(&len.to_string()));
        }
    }
    let mut buf = BytesMut::new();
    loop {
        let next = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx));
        let frame = match tokio::time::timeout(stall, next).await {
            Err(_) => {
                return Err(HttpError::new(
                    hyper::StatusCode::REQUEST_TIMEOUT,
                    "timeout",
                    format!("the body stalled for {} s", stall.as_secs()),
                ))
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(HttpError::malformed(format!("reading the body: {e}")));
            }
            Ok(Some(Ok(f))) => f,
        };
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > max {
                return Err(too_large(&format!("more than {max}")));
            }
            buf.extend_from_slice(&data);
        }
    }
    let raw = buf.freeze();
    if !gzip {
        return Ok(raw);
    }
    inflate(&raw, max)
}

/// Inflates a gzip body into at most `max` bytes.
fn inflate(raw: &[u8], max: usize) -> Result<Bytes, HttpError> {
    let mut out = Vec::new();
    let mut decoder = flate2::read::MultiGzDecoder::new(raw).take(max as u64 + 1);
    decoder
        .read_to_end(&mut out)
        .map_err(|e| HttpError::malformed(format!("the gzip body does not inflate: {e}")))?;
    if out.len() > max {
        return Err(HttpError::new(
            hyper::StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the body inflates to more than the limit of {max} bytes"),
        ));
    }
    Ok(out.into())
}

/// A response body: all of it at once, or chunks from a channel (a
/// Server-Sent Events stream) until its sender is dropped.
#[derive(Debug)]
pub(crate) enum Body {
    /// The whole body (taken when sent).
    Whole(Option<Bytes>),
    /// Chunks as they are made.
    Stream(mpsc::Receiver<Bytes>),
}

impl Body {
    /// An empty body.
    pub fn empty() -> Body {
        Body::Whole(None)
    }
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Body {
        Body::Whole(Some(b))
    }
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Body::Whole(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Body::Stream(rx) => rx.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Body::Whole(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Whole(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Body::Stream(_) => SizeHint::default(),
        }
    }
}
