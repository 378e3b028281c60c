//! Shared by the CLI tests: an in-process chainlogd on loopback port 0 and
//! a way to run the `chainlog` binary against it.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

use server::auth::{generate_key, hash_key};
use server::{KeyConfig, LogConfig, Server, ServerConfig};

pub struct Running {
    pub server: Server,
    pub key: String,
}

pub fn start(dir: &Path) -> Running {
    start_with(dir, |_| {})
}

/// A server with `adjust` applied to its config first.
pub fn start_with(dir: &Path, adjust: impl FnOnce(&mut ServerConfig)) -> Running {
    let key = generate_key().unwrap();
    let config = ServerConfig {
        listen: "127.0.0.1:0".into(),
        metrics_listen: String::new(),
        http_listen: String::new(),
        data_dir: dir.to_path_buf(),
        // Small segments and no pre-writing: a test server that writes and
        // syncs a 64 MiB spare at every start slows every test down.
        logs: vec![LogConfig {
            segment_size: 1 << 20,
            prewrite_segments: false,
            ..LogConfig::default()
        }],
        keys: vec![KeyConfig {
            id: "admin".into(),
            hash: hash_key(&key),
            log: "default".into(),
            rights: vec!["append".into(), "read".into(), "admin".into()],
            tenants: vec![],
            events_per_sec: 0,
            burst: 0,
        }],
        ..ServerConfig::default()
    };
    let mut config = config;
    adjust(&mut config);
    Running {
        server: Server::start(config).unwrap(),
        key,
    }
}

impl Running {
    /// The `chainlog` command, pointed at this server.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_chainlog"));
        c.args(args)
            .env("CHAINLOG_ADDR", self.server.addr().to_string())
            .env("CHAINLOG_KEY", &self.key)
            .env_remove("CHAINLOG_CONFIG")
            .env("HOME", "/nonexistent");
        c
    }

    /// Runs `chainlog ARGS` with `stdin`; returns its output.
    pub fn run(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
