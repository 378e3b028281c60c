//! The daemon's core: opens the logs, accepts connections (bounded), serves
//! metrics, and stops cleanly.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::Mutex;
use proto::msg::{self, ErrorCode, ErrorReply, Response};

use crate::auth::KeyStore;
use crate::config::ServerConfig;
use crate::managed::Managed;
use crate::metrics::{self, Metrics};
use crate::store::LogState;
use crate::ServerError;

/// What every connection shares.
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
    pub stopping: AtomicBool,
}

/// A running server; [`shutdown`](Self::shutdown) stops it.
#[derive(Debug)]
pub struct Server {
    ctx: Arc<Ctx>,
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    acceptor: Option<JoinHandle<()>>,
    conns: Arc<Mutex<HashMap<u64, JoinHandle<()>>>>,
}

impl Server {
    /// Opens every configured log (running recovery, rebuilding the dedup
    /// window and query index) and starts listening. `data_dir` in
    /// `config` is used as given; the runtime changes kept in its
    /// `managed.json` apply over the config's keys and schemas.
    pub fn start(config: ServerConfig) -> Result<Server, ServerError> {
        config.validate()?;
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
            let state = LogState::open(&config.data_dir, l.clone(), runtime_schema)
                .map_err(|e| ServerError::Log(l.name.clone(), e))?;
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
        let listener = TcpListener::bind(config.listen_addr()?)
            .map_err(|e| ServerError::Io(format!("listen on {}", config.listen), e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| ServerError::Io("local address".into(), e))?;
        let metrics_listener =
            if config.metrics_listen.is_empty() {
                None
            } else {
                Some(TcpListener::bind(&config.metrics_listen).map_err(|e| {
                    ServerError::Io(format!("listen on {}", config.metrics_listen), e)
                })?)
            };
        let metrics_addr = metrics_listener.as_ref().and_then(|l| l.local_addr().ok());
        let ctx = Arc::new(Ctx {
            config,
            keys: KeyStore::new(keyring),
            managed: Mutex::new(managed),
            logs,
            metrics: Metrics::default(),
            stopping: AtomicBool::new(false),
        });
        if let Some(l) = metrics_listener {
            // A weak reference: the endpoint must not keep the logs open
            // after shutdown.
            let weak = Arc::downgrade(&ctx);
            let _ = std::thread::Builder::new()
                .name("chainlog-metrics".into())
                .spawn(move || {
                    let w2 = weak.clone();
                    let stop = move || {
                        w2.upgrade()
                            .is_none_or(|c| c.stopping.load(Ordering::Acquire))
                    };
                    metrics::serve(l, stop, move || {
                        weak.upgrade()
                            .map(|c| render_metrics(&c))
                            .unwrap_or_default()
                    });
                });
        }
        let conns = Arc::new(Mutex::new(HashMap::new()));
        let acceptor = {
            let ctx = ctx.clone();
            let conns = conns.clone();
            std::thread::Builder::new()
                .name("chainlog-accept".into())
                .spawn(move || accept_loop(&listener, &ctx, &conns))
                .map_err(|e| ServerError::Io("spawn acceptor".into(), e))?
        };
        tracing::info!(%addr, metrics = ?metrics_addr, "chainlogd listening");
        Ok(Server {
            ctx,
            addr,
            metrics_addr,
            acceptor: Some(acceptor),
            conns,
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

    /// The Prometheus page, as the endpoint serves it.
    pub fn metrics_text(&self) -> String {
        render_metrics(&self.ctx)
    }

    /// A served log, by name.
    pub fn log(&self, name: &str) -> Option<&Arc<LogState>> {
        self.ctx.logs.get(name)
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
        if self.ctx.stopping.swap(true, Ordering::AcqRel) {
            return;
        }
        // Wake the acceptors with connections of our own.
        let _ = TcpStream::connect(self.addr);
        if let Some(m) = self.metrics_addr {
            let _ = TcpStream::connect(m);
        }
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
        let handles: Vec<_> = self.conns.lock().drain().map(|(_, h)| h).collect();
        for h in handles {
            let _ = h.join();
        }
        for state in self.ctx.logs.values() {
            state.stop();
        }
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
    metrics::render(&ctx.metrics, &logs)
}

fn accept_loop(
    listener: &TcpListener,
    ctx: &Arc<Ctx>,
    conns: &Arc<Mutex<HashMap<u64, JoinHandle<()>>>>,
) {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    for stream in listener.incoming() {
        if ctx.stopping.load(Ordering::Acquire) {
            return;
        }
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                std::thread::sleep(std::time::Duration::from_millis(10));
                continue;
            }
        };
        let Ok(peer) = stream.peer_addr() else {
            continue;
        };
        conns.lock().retain(|_, h| !h.is_finished());
        let open = ctx.metrics.connections.load(Ordering::Acquire);
        if open as usize >= ctx.config.max_connections {
            ctx.metrics.error(ErrorCode::Busy);
            tracing::warn!(%peer, open, "refusing a connection: at max_connections");
            refuse(stream, ErrorCode::Busy, "too many connections");
            continue;
        }
        ctx.metrics.connections.fetch_add(1, Ordering::AcqRel);
        ctx.metrics
            .connections_total
            .fetch_add(1, Ordering::Relaxed);
        let c = ctx.clone();
        let spawned = std::thread::Builder::new()
            .name("chainlog-conn".into())
            .spawn(move || {
                tracing::debug!(%peer, "connection opened");
                crate::conn::serve(stream, peer, c.clone());
                c.metrics.connections.fetch_sub(1, Ordering::AcqRel);
                tracing::debug!(%peer, "connection closed");
            });
        match spawned {
            Ok(h) => {
                conns.lock().insert(NEXT.fetch_add(1, Ordering::Relaxed), h);
            }
            Err(e) => {
                ctx.metrics.connections.fetch_sub(1, Ordering::AcqRel);
                tracing::warn!(error = %e, "cannot start a connection thread");
            }
        }
    }
}

fn refuse(mut s: TcpStream, code: ErrorCode, why: &str) {
    use std::io::Write;
    let _ = s.set_write_timeout(Some(std::time::Duration::from_secs(1)));
    let mut out = Vec::new();
    msg::encode_response(&mut out, 0, &Response::Error(ErrorReply::new(code, why)));
    let _ = s.write_all(&out);
    // Discard what the client already sent (its preamble, perhaps): closing
    // with unread input resets the connection, and the client could lose
    // the error. Without waiting: the acceptor must not stall.
    let _ = s.shutdown(std::net::Shutdown::Write);
    if s.set_nonblocking(true).is_ok() {
        let mut buf = [0u8; 4096];
        while matches!(std::io::Read::read(&mut s, &mut buf), Ok(n) if n > 0) {}
    }
}
