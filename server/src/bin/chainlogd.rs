//! `chainlogd`: the chainlog server.
//!
//! With no arguments it runs a development server out of the working
//! directory: data under `./chainlog-data`, listening on loopback, and (on
//! the first start) a freshly generated API key printed once.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use server::config::Listener;
use server::{auth, config, Server, ServerConfig};

/// The chainlog server: a tamper-evident, append-only audit log over TCP.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// The TOML config file. Without it, `<data-dir>/chainlogd.toml` is
    /// used, and created on the first start with a development key. A
    /// relative `data_dir` inside a config file is relative to the file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where the logs live (one subdirectory per log) [default:
    /// chainlog-data]. Overrides the config file's `data_dir`.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The protocol's listening address (overrides the config).
    #[arg(long)]
    listen: Option<String>,
    /// The Prometheus endpoint's address; "" turns it off (overrides the
    /// config).
    #[arg(long)]
    metrics_listen: Option<String>,
    /// The HTTP API's address; "" turns it off (overrides the config).
    #[arg(long)]
    http_listen: Option<String>,
    /// Connections served at once (overrides the config).
    #[arg(long)]
    max_connections: Option<usize>,
    /// Seconds before an idle connection is closed (overrides the config).
    #[arg(long)]
    idle_timeout_secs: Option<u64>,
    /// Seconds a started frame has to arrive in full (overrides the config).
    #[arg(long)]
    frame_timeout_secs: Option<u64>,
    /// `sync` (acknowledge after fdatasync) or `unsafe-no-sync` (benchmarks
    /// only: acknowledged events can be lost in a power failure), for every
    /// log (overrides the config).
    #[arg(long, value_enum)]
    durability: Option<server::config::Durability>,
    /// Log level: error, warn, info, debug or trace.
    #[arg(long, default_value = "info")]
    log_level: tracing::Level,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Prints the stored form (`sha256:...`) of a key for a `[[keys]]`
    /// entry; with no key, generates one and prints both.
    HashKey {
        /// The key's text.
        key: Option<String>,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(Command::HashKey { key }) = &args.command {
        let key = match key {
            Some(k) => k.clone(),
            None => match auth::generate_key() {
                Ok(k) => {
                    println!("key:  {k}");
                    k
                }
                Err(e) => {
                    eprintln!("chainlogd: cannot generate a key: {e}");
                    return ExitCode::from(1);
                }
            },
        };
        println!("hash: {}", auth::hash_key(&key));
        return ExitCode::SUCCESS;
    }
    tracing_subscriber::fmt()
        .with_max_level(args.log_level)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let config = match load_config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("chainlogd: {e}");
            return ExitCode::from(2);
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            eprintln!("chainlogd: cannot handle signal {sig}: {e}");
            return ExitCode::from(1);
        }
    }
    // SIGHUP reads the TLS files again (and does nothing else).
    let reload = Arc::new(AtomicBool::new(false));
    if let Err(e) = signal_hook::flag::register(signal_hook::consts::SIGHUP, reload.clone()) {
        eprintln!("chainlogd: cannot handle SIGHUP: {e}");
        return ExitCode::from(1);
    }
    let tls_on: Vec<&str> = config
        .tls
        .iter()
        .flat_map(|t| t.listeners.iter().map(|l| l.name()))
        .collect();
    let metrics_scheme = if config.tls_on(Listener::Metrics) {
        "https"
    } else {
        "http"
    };
    let server = match Server::start(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("chainlogd: {e}");
            return ExitCode::from(1);
        }
    };
    let metrics = server
        .metrics_addr()
        .map(|a| format!(", metrics on {metrics_scheme}://{a}/metrics"))
        .unwrap_or_default();
    println!("chainlogd listening on {}{metrics}", server.addr());
    if let Some(a) = server.http_addr() {
        println!("chainlogd: http on {a}");
    }
    for (log, key) in server.verifier_keys() {
        println!("chainlogd: log {log}: checkpoints verify with {key}");
    }
    if !tls_on.is_empty() {
        println!("chainlogd: tls on {}", tls_on.join(", "));
    }
    let _ = std::io::stdout().flush();
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(100));
        if reload.swap(false, Ordering::AcqRel) {
            match server.reload_tls() {
                Ok(true) => tracing::info!("SIGHUP: tls certificate, key and client CA reloaded"),
                Ok(false) => tracing::info!("SIGHUP: no [tls] configured, nothing to reload"),
                Err(e) => {
                    tracing::error!(error = %e, "SIGHUP: tls reload failed; the previous certificate stays in force")
                }
            }
        }
    }
    tracing::info!("signal received: stopping");
    server.shutdown();
    ExitCode::SUCCESS
}

fn load_config(args: &Args) -> Result<ServerConfig, String> {
    let mut config = match &args.config {
        Some(path) => load_file(path)?,
        None => {
            let dir = args
                .data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("chainlog-data"));
            let path = dir.join("chainlogd.toml");
            if !path.exists() {
                // The addresses given now are written into the config, so
                // that the next start (without them) listens there too.
                let d = config::DevListeners::default();
                let listeners = config::DevListeners {
                    listen: args.listen.clone().unwrap_or(d.listen),
                    metrics_listen: args.metrics_listen.clone().unwrap_or(d.metrics_listen),
                    http_listen: args.http_listen.clone().unwrap_or(d.http_listen),
                };
                first_start(&dir, &path, &listeners)?;
            }
            load_file(&path)?
        }
    };
    if let Some(d) = &args.data_dir {
        config.data_dir = d.clone();
    }
    if let Some(l) = &args.listen {
        config.listen = l.clone();
    }
    if let Some(l) = &args.metrics_listen {
        config.metrics_listen = l.clone();
    }
    if let Some(l) = &args.http_listen {
        config.http_listen = l.clone();
    }
    if let Some(n) = args.max_connections {
        config.max_connections = n;
    }
    if let Some(n) = args.idle_timeout_secs {
        config.idle_timeout_secs = n;
    }
    if let Some(n) = args.frame_timeout_secs {
        config.frame_timeout_secs = n;
    }
    if let Some(d) = &args.durability {
        for l in &mut config.logs {
            l.durability = *d;
        }
    }
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

fn load_file(path: &Path) -> Result<ServerConfig, String> {
    let mut c = ServerConfig::load(path).map_err(|e| e.to_string())?;
    c.resolve_paths(path.parent().unwrap_or(Path::new(".")));
    Ok(c)
}

/// Creates the data directory and a development config with a new key,
/// printing the key once.
fn first_start(
    data_dir: &Path,
    path: &Path,
    listeners: &config::DevListeners,
) -> Result<(), String> {
    std::fs::create_dir_all(data_dir).map_err(|e| format!("create {}: {e}", data_dir.display()))?;
    let key = auth::generate_key().map_err(|e| format!("cannot generate a key: {e}"))?;
    let text = config::dev_config_text(&auth::hash_key(&key), listeners);
    // Durable before the key is shown: a key printed for a config that a
    // crash then lost would be a key that opens nothing.
    let tmp = path.with_extension("toml.tmp");
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(data_dir)?.sync_all()
    };
    write().map_err(|e| format!("write {}: {e}", path.display()))?;
    println!(
        "chainlogd: first start: wrote {} (one log, one key)",
        path.display()
    );
    println!("chainlogd: development API key, shown once (only its hash is stored):");
    println!("    {key}");
    Ok(())
}
