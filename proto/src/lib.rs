//! chainlog's wire protocol and audit event model.
//!
//! One codec, shared by the server (`chainlogd`) and the Rust client, so
//! that the two cannot disagree about a byte. Everything here is pure
//! encode/decode and validation: no sockets, no files. The byte layouts are
//! specified in `docs/protocol.md`.
//!
//! - [`event`]: the audit event, its versioned binary encoding (the payload
//!   of every stored record, and the form events travel in), and its
//!   validation.
//! - [`frame`]: the connection preamble (version handshake) and
//!   length-prefixed frames, with the declared length checked before any
//!   buffer is allocated.
//! - [`json`]: the check that event metadata is one JSON object, a single
//!   allocation-free pass on every append.
//! - [`msg`]: the requests and responses carried in frames.
//! - [`wire`]: the primitive readers and writers the others are built from.
//! - `fuzz` (only with the `testing` feature, which production builds never
//!   enable): the bodies of the fuzz targets, replayed by the tests.

pub mod event;
pub mod frame;
#[cfg(any(test, feature = "testing"))]
pub mod fuzz;
pub mod json;
pub mod msg;
pub mod time;
pub mod wire;

pub use event::{Event, EventError, Limits, StoredEvent};
pub use frame::{FrameError, FrameHeader, PROTOCOL_VERSION};
pub use msg::{ErrorCode, Query, Request, Response, SchemaMode, SchemaSpec, TimeField};
pub use wire::DecodeError;
