//! chainlog's operator and user tools. Each binary in `src/bin` is a thin
//! shell over a module here, so that tests call the same code:
//! `segment-verify` over [`verify_cmd`] (itself over `engine::verify`), and
//! `segment-dump` over [`dump_cmd`], and `chainlog` over [`cli`].

pub mod cli;
pub mod dump_cmd;
pub mod json;
pub mod verify_cmd;

/// Exit code: everything checked is valid.
pub const EXIT_VALID: i32 = 0;
/// Exit code: something is invalid (corrupt, tampered, missing).
pub const EXIT_INVALID: i32 = 1;
/// Exit code: usage error, or an I/O error that stopped the check.
pub const EXIT_ERROR: i32 = 2;
