//! chainlogd: the TCP server, its wire protocol, the Rust client and the
//! audit event model. Not built yet: see issue 5. The crate exists so that
//! the workspace has its final shape.
