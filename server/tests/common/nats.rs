//! A real `nats-server` with JetStream for the ingest tests, on a loopback
//! port with its store in a temporary directory, and a small JetStream
//! client (async-nats on its own runtime) to make streams, publish and
//! read consumer state. The server binary is `$CHAINLOG_NATS_SERVER`, or
//! `nats-server` on the PATH; `.ci/run` installs one.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream;

/// The nats-server binary, if there is one new enough (2.10: consumers
/// with several subject filters).
pub fn binary() -> Result<PathBuf, String> {
    let bin = std::env::var_os("CHAINLOG_NATS_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("nats-server"));
    let out = Command::new(&bin)
        .arg("--version")
        .output()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    // "nats-server: v2.15.1"
    let v = text.trim().rsplit('v').next().unwrap_or("");
    let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if (major, minor) < (2, 10) {
        return Err(format!(
            "{} is {text:?}; the tests need 2.10 or newer",
            bin.display()
        ));
    }
    Ok(bin)
}

/// A message: subject, headers, body.
pub type Msg = (String, Vec<(String, String)>, Vec<u8>);

/// A running nats-server.
pub struct NatsServer {
    bin: PathBuf,
    pub port: u16,
    store: PathBuf,
    child: Option<Child>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl NatsServer {
    /// Starts one with JetStream, its store under `dir`.
    pub fn start(bin: &Path, dir: &Path) -> NatsServer {
        let mut s = NatsServer {
            bin: bin.to_path_buf(),
            port: free_port(),
            store: dir.join("nats-store"),
            child: None,
        };
        s.launch();
        s
    }

    fn launch(&mut self) {
        let child = Command::new(&self.bin)
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(&self.store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Stops it (SIGTERM, then waits).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and store.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A JetStream client on its own runtime, for a test's synchronous code.
pub struct Js {
    rt: tokio::runtime::Runtime,
    pub client: async_nats::Client,
    pub js: jetstream::Context,
}

impl Js {
    pub fn connect(url: &str) -> Js {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let client = rt.block_on(async_nats::connect(url)).unwrap();
        let js = {
            let _in_runtime = rt.enter();
            jetstream::new(client.clone())
        };
        Js { rt, client, js }
    }

    /// Creates a file-backed stream on `subjects`.
    pub fn stream(&self, name: &str, subjects: &[&str]) {
        self.rt
            .block_on(self.js.create_stream(jetstream::stream::Config {
                name: name.into(),
                subjects: subjects.iter().map(|s| s.to_string()).collect(),
                storage: jetstream::stream::StorageType::File,
                ..Default::default()
            }))
            .unwrap();
    }

    /// Publishes every (subject, headers, body), each confirmed by the
    /// stream; up to 512 in flight.
    pub fn publish(&self, msgs: &[Msg]) {
        self.rt.block_on(async {
            for chunk in msgs.chunks(512) {
                let mut acks = Vec::with_capacity(chunk.len());
                for (subject, headers, body) in chunk {
                    let mut h = async_nats::HeaderMap::new();
                    for (k, v) in headers {
                        h.insert(k.as_str(), v.as_str());
                    }
                    acks.push(
                        self.js
                            .publish_with_headers(subject.clone(), h, body.clone().into())
                            .await
                            .unwrap(),
                    );
                }
                for a in acks {
                    a.await.unwrap();
                }
            }
        })
    }

    /// The consumer's (pending, waiting for ack) counts, once it exists.
    pub fn consumer_state(&self, stream: &str, durable: &str) -> Option<(u64, u64)> {
        self.rt.block_on(async {
            let s = self.js.get_stream(stream).await.ok()?;
            let mut c: jetstream::consumer::Consumer<jetstream::consumer::pull::Config> =
                s.get_consumer(durable).await.ok()?;
            let info = c.info().await.ok()?;
            Some((info.num_pending, info.num_ack_pending as u64))
        })
    }

    /// Waits until the consumer has nothing pending or unacknowledged.
    pub fn wait_drained(&self, stream: &str, durable: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if self.consumer_state(stream, durable) == Some((0, 0)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "consumer {durable} not drained: {:?}",
                self.consumer_state(stream, durable)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every message of a stream: (subject, headers, body).
    pub fn read_all(&self, stream: &str) -> Vec<Msg> {
        self.rt.block_on(async {
            let s = self.js.get_stream(stream).await.unwrap();
            let last = s.get_info().await.unwrap().state.last_sequence;
            let mut out = Vec::new();
            for seq in 1..=last {
                let Ok(m) = s.get_raw_message(seq).await else {
                    continue;
                };
                let headers = m
                    .headers
                    .iter()
                    .flat_map(|(k, vs)| vs.iter().map(move |v| (k.to_string(), v.to_string())))
                    .collect();
                out.push((m.subject.to_string(), headers, m.payload.to_vec()));
            }
            out
        })
    }
}
