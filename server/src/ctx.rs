//! What every connection, tail and admin operation shares: the
//! configuration, the keys, the served logs, the metrics, and the stop
//! signal. Its own module so that the connection, the admin operations and
//! the server all depend on it and not on each other.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::auth::KeyStore;
use crate::config::ServerConfig;
use crate::managed::Managed;
use crate::metrics::Metrics;
use crate::store::LogState;
use crate::tls::Tls;

/// The shared state.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub config: ServerConfig,
    /// The keys in force: the config's and the runtime changes.
    pub keys: KeyStore,
    /// The runtime changes, as written to `managed.json`; its lock
    /// serialises admin changes.
    pub managed: Mutex<Managed>,
    pub logs: HashMap<String, Arc<LogState>>,
    pub metrics: Metrics,
    /// TLS, if configured.
    pub tls: Option<Tls>,
    /// The ingests, in config order.
    pub ingests: Vec<Arc<crate::ingest::Ingest>>,
    stopping: AtomicBool,
    /// Turns true once, when the server begins to stop.
    stop: watch::Sender<bool>,
}

impl Ctx {
    pub fn new(
        config: ServerConfig,
        keys: KeyStore,
        managed: Managed,
        logs: HashMap<String, Arc<LogState>>,
        tls: Option<Tls>,
    ) -> Ctx {
        Ctx {
            keys,
            managed: Mutex::new(managed),
            logs,
            metrics: Metrics::default(),
            tls,
            ingests: config
                .ingest
                .nats
                .iter()
                .map(|c| Arc::new(crate::ingest::Ingest::new(c.clone())))
                .collect(),
            stopping: AtomicBool::new(false),
            stop: watch::Sender::new(false),
            config,
        }
    }

    /// The TLS acceptor for listener `l`, if it speaks TLS.
    pub fn tls_acceptor(&self, l: crate::config::Listener) -> Option<tokio_rustls::TlsAcceptor> {
        self.tls.as_ref().and_then(|t| t.acceptor(l))
    }

    /// Whether the server is stopping.
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Begins the stop; true the first time only.
    pub fn begin_stop(&self) -> bool {
        let first = !self.stopping.swap(true, Ordering::AcqRel);
        if first {
            self.stop.send_replace(true);
        }
        first
    }

    /// A receiver whose value turns true when the server begins to stop.
    pub fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }
}

/// Waits until `rx` says the server is stopping (at once if it already is).
pub(crate) async fn stopped(rx: &mut watch::Receiver<bool>) {
    // An error means the sender is gone: the server is gone too.
    let _ = rx.wait_for(|s| *s).await;
}

/// The next connection on `listener`, or `None` once the server stops. An
/// accept error (out of file descriptors, most likely) waits a moment for
/// some to close rather than spin.
pub(crate) async fn accept(
    listener: &tokio::net::TcpListener,
    stop: &mut watch::Receiver<bool>,
) -> Option<(tokio::net::TcpStream, std::net::SocketAddr)> {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = stopped(stop) => return None,
        };
        match accepted {
            Ok(s) => return Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

/// A place among `max_connections`, held until dropped, however the
/// connection's task ends (a panic included), so that no place leaks.
pub(crate) struct OpenConnection(pub Arc<Ctx>);

impl OpenConnection {
    /// Takes a place if one is free (both protocols share them).
    pub fn take(ctx: &Arc<Ctx>) -> Option<OpenConnection> {
        let open = ctx.metrics.connections.load(Ordering::Acquire);
        if open as usize >= ctx.config.max_connections {
            return None;
        }
        ctx.metrics.connections.fetch_add(1, Ordering::AcqRel);
        ctx.metrics
            .connections_total
            .fetch_add(1, Ordering::Relaxed);
        Some(OpenConnection(ctx.clone()))
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.metrics.connections.fetch_sub(1, Ordering::AcqRel);
    }
}
