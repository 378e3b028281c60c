//! `chainlogd`, the chainlog server: the wire protocol over TCP in front of
//! the storage engine.
//!
//! - [`config`]: the TOML configuration and its defaults.
//! - [`auth`]: API keys, stored as hashes, compared in constant time.
//! - [`schema`]: a log's allowed action patterns, strict or permissive.
//! - [`managed`]: keys and schemas changed at runtime, kept in the data
//!   directory's `managed.json`.
//! - [`admin`]: the operations that change them.
//! - [`dedup`]: idempotency keys pending or not yet indexed; older keys are found through [`evindex`].
//! - [`evindex`]: event indexes per segment (postings by tenant, actor, action, resource and exact key), which the query planner reads.
//! - [`store`]: one served log and the operations on it.
//! - `ctx`: what every connection shares.
//! - `conn`: a connection's task on the event loop: frames in, replies out.
//! - `route`: what each request needs and where it runs.
//! - `outbox`: a connection's replies in request order.
//! - `reply`: reply frames.
//! - [`tail`]: tail subscriptions, a task each, bounded per connection.
//! - [`ingest`]: NATS JetStream consumers appending to the logs.
//! - [`tls`]: TLS on the listeners (rustls), reloaded on SIGHUP.
//! - [`server`]: the event loop, listening, accepting, shutdown.
//! - [`metrics`]: counters, histograms, process figures, the Prometheus
//!   endpoint.

use std::path::PathBuf;

pub mod admin;
pub mod auth;
pub mod checkpoints;
pub mod config;
mod conn;
mod ctx;
pub mod dedup;
pub mod evindex;
mod http;
pub mod ingest;
pub mod managed;
pub mod metrics;
mod outbox;
pub mod rate;
mod reply;
mod route;
pub mod schema;
pub mod server;
pub mod store;
pub mod tail;
pub mod tls;

pub use config::{KeyConfig, LogConfig, ServerConfig};
pub use server::Server;

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// A value is wrong; the message says which.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A log would not open (recovery refused, or the directory is locked).
    #[error("log {0}: {1}")]
    Log(String, engine::Error),
    /// A socket or file operation failed.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// The TLS files are unusable.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// A log's checkpoint key or checkpoints file is unusable.
    #[error("log {0}: {1}")]
    Checkpoints(String, checkpoints::CheckpointError),
}
