//! The server's configuration: a TOML file, with flags overriding it, and
//! defaults that run a development server out of the working directory.
//!
//! ```toml
//! listen = "127.0.0.1:7400"          # the protocol port
//! metrics_listen = "127.0.0.1:7401"  # Prometheus text at /metrics ("" = off)
//! http_listen = "127.0.0.1:7480"     # the HTTP/JSON API ("" = off)
//! http_max_body_bytes = 8388608      # an HTTP request body, after gzip
//! data_dir = "chainlog-data"         # one subdirectory per log
//! max_connections = 1024
//! idle_timeout_secs = 300            # no request and nothing in flight
//! frame_timeout_secs = 10            # a started frame must complete
//! max_frame_bytes = 1056768          # 1 MiB of events + length prefixes
//! max_batch_events = 1000
//! io_threads = 0                     # event-loop threads; 0 = one per core (at most 8)
//! blocking_threads = 4               # queries, reads, tail steps, admin operations
//!
//! [tls]                              # optional: TLS on the listeners
//! cert = "server.crt"                # PEM chain, leaf first
//! key = "server.key"                 # PEM private key
//! client_ca = "clients-ca.crt"       # optional: ask for client certificates
//! client_auth = "required"           # or "optional" (with client_ca)
//! listeners = ["protocol", "http"]   # and/or "metrics"
//!
//! [[logs]]
//! name = "default"
//! single_tenant = false
//! schema_mode = "permissive"         # or "strict"
//! actions = ["user.*", "document.deleted"]   # empty: every action
//! dedup_window_secs = 0              # 0: a key of any age is a duplicate
//!
//! [[keys]]
//! id = "billing-service"
//! hash = "sha256:..."                # `chainlogd hash-key` prints it
//! log = "default"
//! rights = ["append", "read"]        # and/or "admin"
//! tenants = ["acme"]                 # empty or absent: every tenant
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::auth::KeyConfig;
use crate::schema::Mode;
use crate::ConfigError;

/// The whole server configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// The protocol's listening address.
    pub listen: String,
    /// The metrics endpoint's address; empty for none.
    pub metrics_listen: String,
    /// The HTTP/JSON API's address (`docs/http.md`); empty for none.
    pub http_listen: String,
    /// The largest HTTP request body accepted, in bytes after a gzip body
    /// is inflated.
    pub http_max_body_bytes: usize,
    /// Where the logs live. chainlogd resolves a relative path in a config
    /// file against the file's directory (`--data-dir` overrides it).
    pub data_dir: PathBuf,
    /// Connections served at once; more are refused with `busy`.
    pub max_connections: usize,
    /// A connection with no request and nothing in flight for this long is
    /// closed.
    pub idle_timeout_secs: u64,
    /// A frame whose first byte has arrived must complete within this.
    pub frame_timeout_secs: u64,
    /// The largest frame body accepted.
    pub max_frame_bytes: usize,
    /// The most events in one append.
    pub max_batch_events: usize,
    /// Event-loop threads serving every connection; 0: one per core, at
    /// most 8.
    pub io_threads: usize,
    /// Threads for queries, reads, tail steps and admin operations, shared
    /// by every connection (requests beyond wait their turn).
    pub blocking_threads: usize,
    /// The logs served.
    pub logs: Vec<LogConfig>,
    /// The API keys.
    pub keys: Vec<KeyConfig>,
    /// TLS on the listeners; none: plain TCP (the loopback dev default).
    pub tls: Option<TlsConfig>,
    /// Ingest from other systems (`docs/nats.md`).
    pub ingest: IngestConfig,
}

/// The `[ingest]` section.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// `[[ingest.nats]]`: NATS JetStream pull consumers.
    pub nats: Vec<NatsIngest>,
}

/// One `[[ingest.nats]]`: a durable pull consumer on a JetStream stream,
/// appending to one log (`docs/nats.md`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct NatsIngest {
    /// Its name in metrics and log lines; empty: the durable's.
    pub name: String,
    /// NATS server URLs (`nats://host:4222`, or `tls://`).
    pub servers: Vec<String>,
    /// A NATS credentials file (JWT and nkey seed); empty for none.
    pub credentials_file: PathBuf,
    /// A token; empty for none.
    pub token: String,
    /// The JetStream stream, which must exist.
    pub stream: String,
    /// The durable consumer's name; created with `subjects` if absent.
    pub durable: String,
    /// Subject filters (wildcards allowed); empty: the whole stream.
    pub subjects: Vec<String>,
    /// The log events are appended to.
    pub log: String,
    /// Messages taken per pull, and appended as one group.
    pub batch: usize,
    /// Groups appended and not yet acknowledged, at most.
    pub max_in_flight: usize,
    /// The consumer's ack wait: an unacknowledged message is redelivered
    /// after this.
    pub ack_wait_secs: u64,
    /// Where messages that cannot be stored are published (with the reason
    /// in headers) before they are terminated; a JetStream stream must
    /// capture it. Empty: terminated with a log line only.
    pub dead_letter_subject: String,
    /// A `busy` log naks messages with this delay.
    pub busy_delay_ms: u64,
    /// Where `action` comes from when the body has none.
    pub action_from_subject: ActionFromSubject,
    /// A header that gives `tenant_id` when the body has none; empty: none.
    pub tenant_header: String,
    /// What to do with body fields that are not event fields.
    pub unknown_fields: UnknownFields,
    /// The metadata member that records the message's subject; empty: not
    /// recorded.
    pub subject_metadata_key: String,
    /// Body field renames: source name to event field name.
    pub rename: std::collections::BTreeMap<String, String>,
}

impl Default for NatsIngest {
    fn default() -> Self {
        NatsIngest {
            name: String::new(),
            servers: vec!["nats://127.0.0.1:4222".into()],
            credentials_file: PathBuf::new(),
            token: String::new(),
            stream: String::new(),
            durable: String::new(),
            subjects: Vec::new(),
            log: "default".into(),
            batch: 256,
            max_in_flight: 4,
            ack_wait_secs: 30,
            dead_letter_subject: String::new(),
            busy_delay_ms: 1000,
            action_from_subject: ActionFromSubject::WithoutVersion,
            tenant_header: String::new(),
            unknown_fields: UnknownFields::Metadata,
            subject_metadata_key: "nats_subject".into(),
            rename: Default::default(),
        }
    }
}

impl NatsIngest {
    /// Its name in metrics and log lines.
    pub fn label(&self) -> &str {
        if self.name.is_empty() {
            &self.durable
        } else {
            &self.name
        }
    }
}

/// The action of a message whose body has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionFromSubject {
    /// The subject without a last token `v1`, `v2`, ...:
    /// `identity.user.created.v1` gives `identity.user.created`.
    WithoutVersion,
    /// The whole subject.
    Subject,
    /// None: a body without `action` is refused.
    None,
}

/// Body fields that are not event fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnknownFields {
    /// Kept as members of the event's metadata.
    Metadata,
    /// The message is refused (dead-lettered).
    Reject,
    /// Dropped.
    Ignore,
}

/// The `[tls]` section. chainlogd resolves relative paths in a config file
/// against the file's directory; SIGHUP reads the files again.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, PEM, the server's own certificate first.
    pub cert: PathBuf,
    /// The private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates, PEM, that client certificates must chain to; empty:
    /// no client certificate is asked for.
    #[serde(default)]
    pub client_ca: PathBuf,
    /// With `client_ca`: whether a client must present a certificate
    /// (unset: required). Set without `client_ca`, the config is refused
    /// rather than silently asking for no certificate.
    #[serde(default)]
    pub client_auth: Option<ClientAuth>,
    /// The listeners that speak TLS.
    #[serde(default = "TlsConfig::default_listeners")]
    pub listeners: Vec<Listener>,
}

impl TlsConfig {
    fn default_listeners() -> Vec<Listener> {
        vec![Listener::Protocol, Listener::Http]
    }

    /// Whether `l` speaks TLS.
    pub fn covers(&self, l: Listener) -> bool {
        self.listeners.contains(&l)
    }

    /// Whether client certificates are asked for, and if so whether one is
    /// required.
    pub fn client_auth(&self) -> Option<ClientAuth> {
        if self.client_ca.as_os_str().is_empty() {
            None
        } else {
            Some(self.client_auth.unwrap_or(ClientAuth::Required))
        }
    }
}

/// Whether a client certificate is required (with `client_ca`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientAuth {
    /// A connection without a certificate chaining to `client_ca` is refused.
    Required,
    /// A certificate is asked for and checked if sent; none is accepted.
    Optional,
}

/// One of the server's listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Listener {
    /// The binary protocol (`listen`).
    Protocol,
    /// The HTTP/JSON API (`http_listen`).
    Http,
    /// The Prometheus endpoint (`metrics_listen`).
    Metrics,
}

impl Listener {
    /// Its name in the config and the logs.
    pub fn name(self) -> &'static str {
        match self {
            Listener::Protocol => "protocol",
            Listener::Http => "http",
            Listener::Metrics => "metrics",
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:7400".into(),
            metrics_listen: "127.0.0.1:7401".into(),
            http_listen: "127.0.0.1:7480".into(),
            http_max_body_bytes: 8 << 20,
            data_dir: PathBuf::from("chainlog-data"),
            max_connections: 1024,
            idle_timeout_secs: 300,
            frame_timeout_secs: 10,
            max_frame_bytes: proto::frame::DEFAULT_MAX_BODY,
            max_batch_events: 1000,
            io_threads: 0,
            blocking_threads: 4,
            logs: vec![LogConfig::default()],
            keys: Vec::new(),
            tls: None,
            ingest: IngestConfig::default(),
        }
    }
}

/// What an acknowledgement promises, parsed where the config is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Durability {
    /// Acknowledged means fdatasynced: survives a crash or power loss.
    #[default]
    Sync,
    /// Acknowledged means written to the page cache only: lost on a power
    /// failure. For benchmarks of everything but the disk.
    UnsafeNoSync,
}

impl Durability {
    /// The engine's level.
    pub fn engine(self) -> engine::Durability {
        match self {
            Durability::Sync => engine::Durability::SyncEveryGroup,
            Durability::UnsafeNoSync => engine::Durability::UnsafeNoSync,
        }
    }
}

/// One log.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Its name: also its directory under `data_dir`.
    pub name: String,
    /// True if events need no `tenant_id`.
    pub single_tenant: bool,
    /// Strict (refuse) or permissive (store and count) for unknown actions.
    pub schema_mode: Mode,
    /// Allowed action patterns; empty allows all.
    pub actions: Vec<String>,
    /// How old a stored idempotency key or source event id may be and
    /// still make a duplicate; 0 (the default): any age.
    pub dedup_window_secs: u64,
    /// The longest identifier or name field, in bytes.
    pub max_field_bytes: usize,
    /// The longest metadata object, in bytes.
    pub max_metadata_bytes: usize,
    /// The longest encoded event, in bytes.
    pub max_event_bytes: usize,
    /// How far in the future `occurred_at` may be, in seconds.
    pub max_future_skew_secs: u64,
    /// Bytes after which a segment is sealed.
    pub segment_size: u64,
    /// Prepare each next segment as a file of zeros, synced, in the
    /// background (see the engine's `Config::prewrite_segments`).
    pub prewrite_segments: bool,
    /// With `prewrite_segments`: after a segment that filled in fewer
    /// seconds than this, the next is not pre-written (at that rate syncs
    /// cover many records each, and pre-writing doubles the bytes written);
    /// 0: always pre-write.
    pub prewrite_min_fill_secs: u64,
    /// Appends that may wait for the writer before `busy`.
    pub queue_depth: usize,
    /// At light load (one append in flight), the event-loop thread that
    /// read it writes, syncs and answers it itself: two thread hand-offs
    /// fewer. Off: every append goes through the engine's writer thread and
    /// the event loop never waits for the disk.
    pub commit_inline: bool,
    /// `"sync"` (the default) or `"unsafe-no-sync"`.
    pub durability: Durability,
    /// The log's identity in its signed checkpoints (C2SP origin line), also
    /// its signing key's name; empty: `chainlog/NAME`.
    pub checkpoint_origin: String,
    /// The log's Ed25519 signing key (a C2SP signer key file); empty:
    /// `DATA_DIR/keys/NAME.key`, generated on first start (mode 0600).
    /// Never inside the log's directory, which is copied to auditors.
    pub checkpoint_key_file: PathBuf,
    /// A checkpoint is issued when this many seconds passed since the last
    /// one and records were added; 0: never on time alone.
    pub checkpoint_interval_secs: u64,
    /// A checkpoint is issued when this many records were added since the
    /// last one; 0: never on count alone. (One is also issued at every
    /// seal, and on request.)
    pub checkpoint_every_records: u64,
    /// FOR TESTS ONLY: the clock for the log's `created_at`, its dedup
    /// window and admission's "now" (the system clock by default). Never
    /// read from a config file, so that a test can move time without
    /// sleeping and production always runs on the system clock.
    #[serde(skip)]
    pub clock: Arc<dyn engine::Clock>,
}

impl Default for LogConfig {
    fn default() -> Self {
        let limits = proto::Limits::default();
        LogConfig {
            name: "default".into(),
            single_tenant: false,
            schema_mode: Mode::Permissive,
            actions: Vec::new(),
            dedup_window_secs: 0,
            max_field_bytes: limits.max_field_bytes,
            max_metadata_bytes: limits.max_metadata_bytes,
            max_event_bytes: limits.max_event_bytes,
            max_future_skew_secs: limits.max_future_skew.as_secs(),
            segment_size: 64 << 20,
            prewrite_segments: true,
            prewrite_min_fill_secs: 10,
            queue_depth: 4096,
            commit_inline: true,
            durability: Durability::Sync,
            checkpoint_origin: String::new(),
            checkpoint_key_file: PathBuf::new(),
            checkpoint_interval_secs: 60,
            checkpoint_every_records: 1_000_000,
            clock: Arc::new(engine::SystemClock),
        }
    }
}

impl LogConfig {
    /// The origin of its checkpoints.
    pub fn origin(&self) -> String {
        if self.checkpoint_origin.is_empty() {
            format!("chainlog/{}", self.name)
        } else {
            self.checkpoint_origin.clone()
        }
    }

    /// The event limits this log enforces.
    pub fn limits(&self) -> proto::Limits {
        proto::Limits {
            tenant_required: !self.single_tenant,
            max_field_bytes: self.max_field_bytes,
            max_metadata_bytes: self.max_metadata_bytes,
            max_event_bytes: self.max_event_bytes,
            max_future_skew: Duration::from_secs(self.max_future_skew_secs),
        }
    }
}

impl ServerConfig {
    /// Reads and checks a TOML file.
    pub fn load(path: &Path) -> Result<ServerConfig, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| ConfigError::Io(path.to_owned(), e))?;
        let c: ServerConfig = toml::from_str(&text)
            .map_err(|e| ConfigError::Invalid(format!("{}: {e}", path.display())))?;
        c.validate()?;
        Ok(c)
    }

    /// Checks names, references and bounds.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        self.listen_addr()?;
        if !self.metrics_listen.is_empty() {
            parse_addr("metrics_listen", &self.metrics_listen)?;
        }
        if !self.http_listen.is_empty() {
            parse_addr("http_listen", &self.http_listen)?;
        }
        if self.http_max_body_bytes < 1024 || self.http_max_body_bytes > 256 << 20 {
            return bad("http_max_body_bytes must be in 1 KiB..=256 MiB".into());
        }
        if self.logs.is_empty() {
            return bad("at least one [[logs]] entry is needed".into());
        }
        for (i, l) in self.logs.iter().enumerate() {
            let ok = !l.name.is_empty()
                && l.name.len() <= 64
                && l.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !ok {
                return bad(format!(
                    "log name {:?} must be 1-64 of [A-Za-z0-9_-]",
                    l.name
                ));
            }
            if !engine::note::key::valid_name(&l.origin()) {
                return bad(format!(
                    "log {:?}: checkpoint_origin {:?} must be a key name: non-empty, no spaces or '+'",
                    l.name,
                    l.origin()
                ));
            }
            if self.logs[..i].iter().any(|o| o.name == l.name) {
                return bad(format!("log {:?} is configured twice", l.name));
            }
            if l.max_field_bytes > 4096
                || l.max_event_bytes > 1 << 20
                || l.max_metadata_bytes >= l.max_event_bytes
            {
                return bad(format!(
                    "log {:?}: need max_field_bytes <= 4096, max_metadata_bytes < max_event_bytes <= 1 MiB",
                    l.name
                ));
            }
            for a in &l.actions {
                if let Err(why) = crate::schema::check_pattern(a) {
                    return bad(format!("log {:?}: action pattern {a:?} {why}", l.name));
                }
            }
        }
        for k in &self.keys {
            if !self.logs.iter().any(|l| l.name == k.log) {
                return bad(format!(
                    "key {:?} names log {:?}, which is not configured",
                    k.id, k.log
                ));
            }
        }
        crate::auth::Keyring::new(&self.keys)?;
        if self.idle_timeout_secs == 0 || self.frame_timeout_secs == 0 {
            return bad("idle_timeout_secs and frame_timeout_secs must be at least 1".into());
        }
        if self.max_connections == 0 || self.max_batch_events == 0 || self.max_batch_events > 65535
        {
            return bad(
                "max_connections must be positive and max_batch_events in 1..=65535".into(),
            );
        }
        if self.io_threads > 64 || self.blocking_threads == 0 || self.blocking_threads > 64 {
            return bad("io_threads must be in 0..=64 and blocking_threads in 1..=64".into());
        }
        if self.max_frame_bytes < 1024 || self.max_frame_bytes > 64 << 20 {
            return bad("max_frame_bytes must be in 1 KiB..=64 MiB".into());
        }
        for (i, n) in self.ingest.nats.iter().enumerate() {
            let label = n.label();
            if n.stream.is_empty() || n.durable.is_empty() {
                return bad(format!(
                    "[[ingest.nats]] #{}: stream and durable are required",
                    i + 1
                ));
            }
            if self.ingest.nats[..i].iter().any(|o| o.label() == label) {
                return bad(format!("[[ingest.nats]] {label:?} is configured twice"));
            }
            if n.servers.is_empty() {
                return bad(format!("[[ingest.nats]] {label:?}: servers is empty"));
            }
            if !self.logs.iter().any(|l| l.name == n.log) {
                return bad(format!(
                    "[[ingest.nats]] {label:?} names log {:?}, which is not configured",
                    n.log
                ));
            }
            if n.batch == 0
                || n.batch > self.max_batch_events
                || n.max_in_flight == 0
                || n.max_in_flight > 64
            {
                return bad(format!("[[ingest.nats]] {label:?}: batch must be in 1..=max_batch_events and max_in_flight in 1..=64"));
            }
            if n.ack_wait_secs == 0 {
                return bad(format!(
                    "[[ingest.nats]] {label:?}: ack_wait_secs must be at least 1"
                ));
            }
            if !n.credentials_file.as_os_str().is_empty() && !n.token.is_empty() {
                return bad(format!(
                    "[[ingest.nats]] {label:?}: a credentials_file or a token, not both"
                ));
            }
            for (from, to) in &n.rename {
                if !crate::ingest::mapping::is_event_field(to) {
                    return bad(format!("[[ingest.nats]] {label:?}: rename {from:?} = {to:?}: {to:?} is not an event field"));
                }
            }
        }
        if let Some(t) = &self.tls {
            if t.cert.as_os_str().is_empty() || t.key.as_os_str().is_empty() {
                return bad("[tls] needs both cert and key".into());
            }
            if t.listeners.is_empty() {
                return bad("[tls] listeners is empty: remove the section for no TLS".into());
            }
            if t.client_auth.is_some() && t.client_ca.as_os_str().is_empty() {
                return bad(
                    "[tls] client_auth needs client_ca, the CA client certificates must chain to"
                        .into(),
                );
            }
            if t.covers(Listener::Metrics) && self.metrics_listen.is_empty() {
                return bad(
                    "[tls] listeners names metrics, but metrics_listen is off (\"\")".into(),
                );
            }
        }
        Ok(())
    }

    /// The protocol address, parsed.
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        parse_addr("listen", &self.listen)
    }

    /// Event-loop threads to start.
    pub fn io_threads(&self) -> usize {
        match self.io_threads {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get().min(8)),
            n => n,
        }
    }

    /// The idle timeout.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }

    /// The frame timeout.
    pub fn frame_timeout(&self) -> Duration {
        Duration::from_secs(self.frame_timeout_secs)
    }

    /// Whether listener `l` speaks TLS.
    pub fn tls_on(&self, l: Listener) -> bool {
        self.tls.as_ref().is_some_and(|t| t.covers(l))
    }

    /// Resolves relative paths (the data directory, the TLS files) against
    /// `base`, the config file's directory.
    pub fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if !p.as_os_str().is_empty() && p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.data_dir);
        for n in &mut self.ingest.nats {
            fix(&mut n.credentials_file);
        }
        if let Some(t) = &mut self.tls {
            fix(&mut t.cert);
            fix(&mut t.key);
            fix(&mut t.client_ca);
        }
    }
}

fn parse_addr(what: &str, s: &str) -> Result<SocketAddr, ConfigError> {
    s.parse().map_err(|_| {
        ConfigError::Invalid(format!(
            "{what} {s:?} is not an address like 127.0.0.1:7400"
        ))
    })
}

/// The text of a development config: defaults, and one key with every
/// right on the default log, stored by hash.
pub fn dev_config_text(key_hash: &str, listeners: &DevListeners) -> String {
    // A TOML basic string (addresses need no more escaping than this; the
    // file is parsed and validated right after it is written).
    let quoted = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let loopback = [
        &listeners.listen,
        &listeners.metrics_listen,
        &listeners.http_listen,
    ]
    .iter()
    .all(|a| a.is_empty() || a.parse::<SocketAddr>().is_ok_and(|a| a.ip().is_loopback()));
    let reach = if loopback {
        "Listens on loopback only."
    } else {
        "Listens beyond loopback, in clear: add [tls] (docs/operations.md)."
    };
    format!(
        "# Written by chainlogd on its first start: a development setup.\n\
         # {reach} The key's text was printed once; only its\n\
         # hash is kept here. See docs/operations.md before production use.\n\
         listen = {}\n\
         metrics_listen = {}\n\
         http_listen = {}\n\
         data_dir = \".\"\n\
         \n\
         [[logs]]\n\
         name = \"default\"\n\
         \n\
         [[keys]]\n\
         id = \"dev\"\n\
         hash = \"{key_hash}\"\n\
         log = \"default\"\n\
         rights = [\"append\", \"read\", \"admin\"]\n",
        quoted(&listeners.listen),
        quoted(&listeners.metrics_listen),
        quoted(&listeners.http_listen),
    )
}

/// The addresses a first start writes into its config: the loopback
/// defaults, or what the command line gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevListeners {
    /// `listen`.
    pub listen: String,
    /// `metrics_listen` ("" for off).
    pub metrics_listen: String,
    /// `http_listen` ("" for off).
    pub http_listen: String,
}

impl Default for DevListeners {
    fn default() -> Self {
        DevListeners {
            listen: "127.0.0.1:7400".into(),
            metrics_listen: "127.0.0.1:7401".into(),
            http_listen: "127.0.0.1:7480".into(),
        }
    }
}
