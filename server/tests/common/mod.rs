//! Shared by the server's tests: servers on loopback port 0 over temporary
//! directories (in-process or as a child `chainlogd`), keys, and events.
#![allow(dead_code, missing_docs, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use client::{Client, Event};
use server::auth::{generate_key, hash_key};
use server::{KeyConfig, LogConfig, Server, ServerConfig};

pub mod certs;
pub mod nats;

/// A key to configure, with its text.
pub struct TestKey {
    pub text: String,
    pub config: KeyConfig,
}

pub fn key(id: &str, log: &str, rights: &[&str], tenants: &[&str]) -> TestKey {
    let text = generate_key().unwrap();
    TestKey {
        config: KeyConfig {
            id: id.into(),
            hash: hash_key(&text),
            log: log.into(),
            rights: rights.iter().map(|s| s.to_string()).collect(),
            tenants: tenants.iter().map(|s| s.to_string()).collect(),
            events_per_sec: 0,
            burst: 0,
        },
        text,
    }
}

/// The segment size of test logs: small, so that a test's server does not
/// start by writing (and, pre-written, fsyncing) a 64 MiB segment.
pub const TEST_SEGMENT_SIZE: u64 = 1 << 20;

/// A log for tests: the defaults, except small segments and no
/// pre-writing (which would write and sync a whole spare segment at every
/// start). A test about pre-writing turns it back on.
pub fn test_log(name: &str) -> LogConfig {
    LogConfig {
        name: name.into(),
        segment_size: TEST_SEGMENT_SIZE,
        prewrite_segments: false,
        ..LogConfig::default()
    }
}

/// A config serving one log "default" (see [`test_log`]) from `dir` on
/// loopback port 0, with no metrics port, and the given keys.
pub fn config(dir: &Path, keys: &[&TestKey]) -> ServerConfig {
    ServerConfig {
        listen: "127.0.0.1:0".into(),
        metrics_listen: String::new(),
        http_listen: "127.0.0.1:0".into(),
        data_dir: dir.to_path_buf(),
        logs: vec![test_log("default")],
        keys: keys.iter().map(|k| k.config.clone()).collect(),
        ..ServerConfig::default()
    }
}

pub fn connect(addr: SocketAddr, key: &TestKey) -> Client {
    let mut c = Client::connect(addr).unwrap();
    c.auth(&key.text).unwrap();
    c
}

/// An event with the required fields and a fixed time.
pub fn event(tenant: &str, actor: &str, action: &str, resource: &str) -> Event {
    Event {
        tenant_id: tenant.into(),
        actor_id: actor.into(),
        action: action.into(),
        resource: resource.into(),
        occurred_at: 1_700_000_000_000_000_000,
        ..Event::default()
    }
}

/// A `chainlogd` child process, with its stderr collected.
pub struct Daemon {
    pub child: Child,
    pub addr: SocketAddr,
    pub stderr: Arc<Mutex<String>>,
    pub stdout: Arc<Mutex<String>>,
}

/// Writes `config` as TOML into `dir/chainlogd.toml`: one log "default",
/// with small segments and no pre-writing (as [`test_log`]) unless
/// `log_extra` sets them.
pub fn write_config(dir: &Path, listen: &str, keys: &[&TestKey], log_extra: &str) -> PathBuf {
    let mut log = String::from("name = \"default\"\n");
    if !log_extra.contains("segment_size") {
        log.push_str(&format!("segment_size = {TEST_SEGMENT_SIZE}\n"));
    }
    if !log_extra.contains("prewrite_segments") {
        log.push_str("prewrite_segments = false\n");
    }
    let mut t = format!("listen = \"{listen}\"\nmetrics_listen = \"\"\nhttp_listen = \"127.0.0.1:0\"\ndata_dir = \".\"\n\n[[logs]]\n{log}{log_extra}\n");
    for k in keys {
        let c = &k.config;
        t.push_str(&format!(
            "\n[[keys]]\nid = \"{}\"\nhash = \"{}\"\nlog = \"{}\"\nrights = {:?}\ntenants = {:?}\n",
            c.id, c.hash, c.log, c.rights, c.tenants
        ));
    }
    let path = dir.join("chainlogd.toml");
    std::fs::write(&path, t).unwrap();
    path
}

impl Daemon {
    /// Starts `chainlogd` with `args` and waits for its "listening on" line.
    pub fn start(args: &[&str], cwd: &Path) -> Daemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_chainlogd"))
            .args(args)
            .current_dir(cwd)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let stdout = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().unwrap();
        let e2 = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                e2.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let o2 = stdout.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                o2.lock().unwrap().push_str(&format!("{line}\n"));
                if let Some(rest) = line.strip_prefix("chainlogd listening on ") {
                    let addr = rest.split(',').next().unwrap().to_string();
                    let _ = tx.send(addr);
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(a) => a.parse().unwrap(),
            Err(_) => {
                let _ = child.kill();
                panic!("chainlogd did not start: {}", stderr.lock().unwrap());
            }
        };
        Daemon {
            child,
            addr,
            stderr,
            stdout,
        }
    }

    /// Starts `chainlogd --config <dir>/chainlogd.toml`.
    pub fn with_config(dir: &Path) -> Daemon {
        let cfg = dir.join("chainlogd.toml");
        Daemon::start(
            &["--config", cfg.to_str().unwrap(), "--log-level", "debug"],
            dir,
        )
    }

    /// The HTTP API's address, from the "http on" line of its output.
    pub fn http_addr(&self) -> SocketAddr {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let out = self.stdout.lock().unwrap().clone();
            if let Some(line) = out
                .lines()
                .find_map(|l| l.strip_prefix("chainlogd: http on "))
            {
                return line.trim().parse().unwrap();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no http line in {out}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        self.child.wait().unwrap()
    }

    /// Resident memory in KiB, from /proc.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.child.id())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Starts an in-process server.
pub fn start(dir: &Path, keys: &[&TestKey]) -> Server {
    Server::start(config(dir, keys)).unwrap()
}

// ---- Raw-socket, error and HTTP helpers (for the isolation, auth, bad
// frame and limits tests). ----

/// The server's typed error, or a panic naming what came back instead.
pub fn server_error<T: std::fmt::Debug>(r: Result<T, client::ClientError>) -> client::ErrorReply {
    match r {
        Err(client::ClientError::Server(e)) => e,
        other => panic!("expected a server error, got {other:?}"),
    }
}

/// A raw connection with a read timeout (so a test can never hang).
pub fn raw_connect(addr: SocketAddr) -> std::net::TcpStream {
    let s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// A raw connection that has completed the version handshake.
pub fn raw_handshake(addr: SocketAddr) -> std::net::TcpStream {
    use std::io::Write;
    let mut s = raw_connect(addr);
    s.write_all(&proto::frame::client_preamble(1, 1)).unwrap();
    let mut p = [0u8; proto::frame::PREAMBLE_LEN];
    s.read_exact(&mut p).unwrap();
    assert_eq!(proto::frame::parse_server_preamble(&p).unwrap(), 1);
    s
}

/// Reads one response frame from a raw connection.
pub fn read_response(
    s: &mut std::net::TcpStream,
) -> Result<(u32, proto::Response), proto::FrameError> {
    let mut body = Vec::new();
    let h = proto::frame::read_frame(s, 4 << 20, Duration::from_secs(10), &mut body)?;
    let r = proto::msg::decode_response(h.kind, &body)
        .unwrap_or_else(|e| panic!("undecodable response of type {:#04x}: {e}", h.kind));
    Ok((h.request_id, r))
}

/// Reads one response frame, which must be an error; returns it.
pub fn read_error(s: &mut std::net::TcpStream) -> client::ErrorReply {
    match read_response(s) {
        Ok((_, proto::Response::Error(e))) => e,
        other => panic!("expected an error frame, got {other:?}"),
    }
}

/// What reading a connection after the server is done with it gives.
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    /// An orderly close (read returned 0).
    Eof,
    /// More bytes arrived.
    Data(usize),
    /// Nothing within the read timeout: the connection is still open.
    Open,
    /// Another error (reset).
    Failed(std::io::ErrorKind),
}

/// Reads once and says how the connection stands.
pub fn ending(s: &mut std::net::TcpStream) -> Ending {
    let mut b = [0u8; 256];
    match s.read(&mut b) {
        Ok(0) => Ending::Eof,
        Ok(n) => Ending::Data(n),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Ending::Open
        }
        Err(e) => Ending::Failed(e.kind()),
    }
}

/// A plain HTTP/1.1 GET; returns the status line and the body.
pub fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    use std::io::Write;
    let mut s = raw_connect(addr);
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_string(), body.to_string())
}

/// Set to `1` by `.ci/run`: a test that cannot run in this environment
/// (no root to mount a tmpfs) fails instead of skipping.
pub const MUST_RUN_ENV: &str = "CHAINLOG_TESTS_MUST_RUN";

/// Reports that `test` cannot run here, for `why`. Fails it when
/// [`MUST_RUN_ENV`] is `1`. Otherwise writes `SKIPPED test: why` straight
/// to the process's stderr, past the test harness's capture (which would
/// show a skipped test as a plain "ok"); `.ci/run` counts these lines.
pub fn skip(test: &str, why: &str) {
    use std::io::Write;
    if std::env::var(MUST_RUN_ENV).is_ok_and(|v| v == "1") {
        panic!("{test} must run here ({MUST_RUN_ENV}=1) but cannot: {why}");
    }
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED {test}: {why}");
}

/// Reads the whole log back through `c` and checks every receipted event is
/// stored with its receipt's hash and created_at and its content; returns
/// the log's event count.
pub fn assert_every_receipt_stored(
    c: &mut Client,
    receipts: &std::collections::HashMap<u64, (client::AppendReceipt, Event)>,
) -> u64 {
    let next = c.stats().unwrap().next_seq;
    let mut found = 0;
    let mut from = 0;
    while from < next {
        let page = c.read(from, next, 1000).unwrap();
        for s in &page.events {
            if let Some((r, e)) = receipts.get(&s.seq) {
                assert_eq!(
                    (&s.hash, s.created_at, &s.event),
                    (&r.hash, r.created_at, e),
                    "seq {}",
                    s.seq
                );
                found += 1;
            }
        }
        from = page.events.last().map_or(next, |e| e.seq + 1);
    }
    assert_eq!(found, receipts.len(), "every receipted event is stored");
    next
}

/// An HTTP reply, as [`http`] read it.
#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpReply {
    /// The body as JSON (panics, naming the body, if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: body is not JSON ({e}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// A header's value (names compared without case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The error's code, asserting the one error shape.
    pub fn error_code(&self) -> String {
        let v = self.json();
        let e = &v["error"];
        let keys: Vec<&String> = e.as_object().expect("an error object").keys().collect();
        assert_eq!(keys, ["code", "field", "index", "message"], "{v}");
        e["code"].as_str().unwrap().to_owned()
    }
}

/// One HTTP/1.1 request on a new connection (`Connection: close`), with a
/// `Content-Length` body; the reply read to the end (chunked or not).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpReply {
    use std::io::Write;
    let mut s = raw_connect(addr);
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT") {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    parse_http_reply(&raw)
}

/// Parses one whole HTTP/1.1 response.
pub fn parse_http_reply(raw: &[u8]) -> HttpReply {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers in {:?}", String::from_utf8_lossy(raw)));
    let head = std::str::from_utf8(&raw[..end]).unwrap();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let nl = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let size = usize::from_str_radix(std::str::from_utf8(&rest[..nl]).unwrap().trim(), 16)
                .unwrap();
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[nl + 2..nl + 2 + size]);
            rest = &rest[nl + 2 + size + 2..];
        }
        body = out;
    }
    HttpReply {
        status,
        headers,
        body,
    }
}

/// `Authorization: Bearer <key>`.
pub fn bearer(key: &TestKey) -> (&'static str, String) {
    ("Authorization", format!("Bearer {}", key.text))
}
