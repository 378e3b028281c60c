//! The daemon's core: opens the logs, runs the event loop (a tokio runtime
//! with a fixed number of threads) that accepts and serves every
//! connection and the metrics endpoint, and stops cleanly.
//!
//! Threads, whatever the number of connections or tails: `io_threads`
//! event-loop workers, at most `blocking_threads` for queries, admin
//! operations and tail steps, and per log the engine's writer, syncer and
//! pre-writer and the query indexer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use proto::msg::{ErrorCode, ErrorReply};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::auth::KeyStore;
use crate::config::{Listener, ServerConfig};
use crate::ctx::{self, Ctx, OpenConnection};
use crate::managed::Managed;
use crate::metrics;
use crate::reply;
use crate::store::LogState;
use crate::tls::{Tls, TlsError};
use crate::ServerError;

/// A running server; [`shutdown`](Self::shutdown) stops it.
#[derive(Debug)]
pub struct Server {
    ctx: Arc<Ctx>,
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    http_addr: Option<SocketAddr>,
    runtime: Option<tokio::runtime::Runtime>,
    /// Closed (`recv` gives `None`) once the acceptor and every connection
    /// task have ended: each holds a sender.
    tasks_done: mpsc::Receiver<()>,
}

impl Server {
    /// Opens every configured log (running recovery, rebuilding the dedup
    /// window and query index) and starts listening. `data_dir` in
    /// `config` is used as given; the runtime changes kept in its
    /// `managed.json` apply over the config's keys and schemas.
    pub fn start(config: ServerConfig) -> Result<Server, ServerError> {
        config.validate()?;
        // The TLS files first: a bad path fails the start before any log
        // is opened (and recovered).
        let tls = match &config.tls {
            Some(t) => Some(Tls::load(t)?),
            None => None,
        };
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| ServerError::Io(format!("create {}", config.data_dir.display()), e))?;
        let managed = Managed::load(&config.data_dir)?;
        let keyring = managed.keyring(&config)?;
        let served = |log: &str| config.logs.iter().any(|l| l.name == log);
        for k in managed.keys.iter().filter(|k| !served(&k.log)) {
            tracing::warn!(key = %k.id, log = %k.log, "a key created at runtime names a log that is not configured: it opens nothing");
        }
        for log in managed.schemas.keys().filter(|l| !served(l)) {
            tracing::warn!(%log, "a schema set at runtime is for a log that is not configured");
        }
        let mut logs = HashMap::new();
        for l in &config.logs {
            let started = std::time::Instant::now();
            let runtime_schema = managed.schema(&l.name);
            if runtime_schema.is_some() {
                tracing::info!(log = %l.name, "using the schema set at runtime (managed.json), not the config's");
            }
            let state = LogState::open(&config.data_dir, l.clone(), runtime_schema)?;
            tracing::info!(
                log = %l.name,
                key = %state.checkpoints.verifier(),
                "checkpoints are signed by this verifier key"
            );
            let stats = state.stats();
            tracing::info!(
                log = %l.name,
                events = stats.next_seq,
                segments = stats.segments,
                dedup_keys = state.dedup.len(),
                ms = started.elapsed().as_millis() as u64,
                "log opened"
            );
            logs.insert(l.name.clone(), state);
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.io_threads())
            .max_blocking_threads(config.blocking_threads)
            .thread_name("chainlog-io")
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| ServerError::Io("start the event loop".into(), e))?;
        let bind = |addr: &str| -> Result<TcpListener, ServerError> {
            let l = std::net::TcpListener::bind(addr)
                .map_err(|e| ServerError::Io(format!("listen on {addr}"), e))?;
            l.set_nonblocking(true)
                .map_err(|e| ServerError::Io(format!("listen on {addr}"), e))?;
            let _in_runtime = runtime.enter();
            TcpListener::from_std(l).map_err(|e| ServerError::Io(format!("listen on {addr}"), e))
        };
        let listener = bind(&config.listen)?;
        let addr = listener
            .local_addr()
            .map_err(|e| ServerError::Io("local address".into(), e))?;
        let metrics_listener = if config.metrics_listen.is_empty() {
            None
        } else {
            Some(bind(&config.metrics_listen)?)
        };
        let metrics_addr = metrics_listener.as_ref().and_then(|l| l.local_addr().ok());
        let http_listener = if config.http_listen.is_empty() {
            None
        } else {
            Some(bind(&config.http_listen)?)
        };
        let http_addr = http_listener.as_ref().and_then(|l| l.local_addr().ok());
        for (l, a) in [
            (Listener::Protocol, Some(addr)),
            (Listener::Http, http_addr),
        ] {
            if let Some(a) = a.filter(|a| !a.ip().is_loopback() && !config.tls_on(l)) {
                tracing::warn!(
                    listener = l.name(),
                    addr = %a,
                    "listening beyond loopback without TLS: API keys and events cross the network in clear"
                );
            }
        }
        let ctx = Arc::new(Ctx::new(config, KeyStore::new(keyring), managed, logs, tls));
        if let Some(l) = metrics_listener {
            // A weak reference: the endpoint must not keep the logs open
            // after shutdown.
            let weak = Arc::downgrade(&ctx);
            let stop = ctx.stop_signal();
            runtime.spawn(crate::http::serve_metrics(
                l,
                weak.clone(),
                stop,
                move || {
                    weak.upgrade()
                        .map(|c| render_metrics(&c))
                        .unwrap_or_default()
                },
            ));
        }
        let (done_tx, tasks_done) = mpsc::channel(1);
        if let Some(l) = http_listener {
            runtime.spawn(crate::http::accept_loop(l, ctx.clone(), done_tx.clone()));
        }
        for (n, ingest) in ctx.ingests.iter().enumerate() {
            runtime.spawn(crate::ingest::nats::run(
                ctx.clone(),
                ingest.clone(),
                n,
                done_tx.clone(),
            ));
        }
        runtime.spawn(accept_loop(listener, ctx.clone(), done_tx));
        tracing::info!(%addr, metrics = ?metrics_addr, http = ?http_addr, "chainlogd listening");
        Ok(Server {
            ctx,
            addr,
            metrics_addr,
            http_addr,
            runtime: Some(runtime),
            tasks_done,
        })
    }

    /// The protocol address (with the real port if 0 was configured).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The metrics address, if enabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The HTTP API's address, if enabled.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// The Prometheus page, as the endpoint serves it.
    pub fn metrics_text(&self) -> String {
        render_metrics(&self.ctx)
    }

    /// A served log, by name.
    pub fn log(&self, name: &str) -> Option<&Arc<LogState>> {
        self.ctx.logs.get(name)
    }

    /// Each log's name and the verifier key of its checkpoints (C2SP
    /// `name+keyid+base64`), by name.
    pub fn verifier_keys(&self) -> Vec<(String, String)> {
        let mut keys: Vec<_> = self
            .ctx
            .logs
            .iter()
            .map(|(name, s)| (name.clone(), s.checkpoints.verifier().to_string()))
            .collect();
        keys.sort();
        keys
    }

    /// Reads the TLS certificate, key and client CA files again (chainlogd
    /// does on SIGHUP). New connections use them; open ones keep theirs. A
    /// failure changes nothing. `Ok(false)`: no TLS is configured.
    pub fn reload_tls(&self) -> Result<bool, TlsError> {
        let Some(tls) = &self.ctx.tls else {
            return Ok(false);
        };
        let r = tls.reload();
        let m = &self.ctx.metrics;
        match &r {
            Ok(()) => m
                .tls_reloads
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            Err(_) => m
                .tls_reload_failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        };
        r.map(|()| true)
    }

    /// The ingests (`[[ingest.nats]]`), in config order.
    pub fn ingests(&self) -> &[Arc<crate::ingest::Ingest>] {
        &self.ctx.ingests
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.ctx.config.data_dir.clone()
    }

    /// Stops accepting, lets every connection finish what it submitted
    /// (appends already durable are acknowledged), closes them, and closes
    /// the logs.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if !self.ctx.begin_stop() {
            return;
        }
        let Some(runtime) = self.runtime.take() else {
            return;
        };
        // Every connection ends its tails, answers what it owes and closes;
        // the acceptor stops. Then nothing can submit to the logs.
        let tasks_done = &mut self.tasks_done;
        runtime.block_on(async { while tasks_done.recv().await.is_some() {} });
        for state in self.ctx.logs.values() {
            state.stop();
        }
        // Whatever is left (a metrics request, a refused connection's
        // linger) is dropped.
        runtime.shutdown_timeout(Duration::from_secs(1));
        tracing::info!("chainlogd stopped");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn render_metrics(ctx: &Ctx) -> String {
    let mut logs: Vec<_> = ctx
        .logs
        .values()
        .map(|s| (s.metrics.clone(), s.gauges()))
        .collect();
    logs.sort_by(|a, b| a.0.log.cmp(&b.0.log));
    let mut page = metrics::render(&ctx.metrics, &logs);
    crate::ingest::render_metrics(&ctx.ingests, &mut page);
    page
}

/// Accepts connections until the server stops; each is a task holding a
/// clone of `done` until it ends.
async fn accept_loop(listener: TcpListener, ctx: Arc<Ctx>, done: mpsc::Sender<()>) {
    let mut stop = ctx.stop_signal();
    // Refusals in progress (each takes up to a second, two over TLS): a
    // flood beyond max_connections is closed at once past this many, so
    // refusing costs bounded memory and CPU.
    let refusing = Arc::new(tokio::sync::Semaphore::new(MAX_REFUSALS));
    while let Some((stream, peer)) = ctx::accept(&listener, &mut stop).await {
        let guard = done.clone();
        let Some(open) = OpenConnection::take(&ctx) else {
            tracing::warn!(%peer, "refusing a connection: at max_connections");
            let Ok(permit) = refusing.clone().try_acquire_owned() else {
                drop(stream);
                continue;
            };
            let f = reply::error_frame(
                &ctx.metrics,
                0,
                ErrorReply::new(ErrorCode::Busy, "too many connections"),
            );
            let ctx = ctx.clone();
            tokio::spawn(async move {
                refuse(&ctx, stream, peer, &f).await;
                drop((permit, guard));
            });
            continue;
        };
        tokio::spawn(async move {
            tracing::debug!(%peer, "connection opened");
            crate::conn::serve(stream, peer, open.0.clone()).await;
            tracing::debug!(%peer, "connection closed");
            drop(open);
            drop(guard);
        });
    }
}

/// Connections beyond max_connections that are sent a `busy` frame at
/// once; more arriving while these are refused are closed without one.
const MAX_REFUSALS: usize = 64;

/// Sends a refused connection its `busy` frame (after a short TLS
/// handshake if the listener speaks TLS) and closes it, a second at most
/// for each step.
async fn refuse(ctx: &Ctx, stream: TcpStream, peer: SocketAddr, frame: &[u8]) {
    let limit = Duration::from_secs(1);
    let Some(mut io) = crate::tls::accept(ctx, Listener::Protocol, stream, peer, limit).await
    else {
        return;
    };
    if tokio::time::timeout(limit, crate::conn::write_all(&mut io, frame))
        .await
        .is_ok_and(|r| r.is_ok())
    {
        crate::conn::linger(io).await;
    }
}
