//! The NATS ingest's figures (`docs/benchmarks.md`), on this machine, in
//! one run: a real nats-server and a real chainlogd (release builds), a
//! stream pre-filled with 256-byte events.
//!
//! 1. Ingest rate from the pre-filled stream: events/s, fdatasyncs/s and
//!    events per sync, with the CPU of chainlogd, nats-server and this
//!    tool.
//! 2. The ceiling, in the same run: a consumer that only pulls and
//!    double-acks the same messages (same batch, same groups in flight),
//!    storing nothing: what NATS and the client allow on these cores.
//! 3. End-to-end latency at a steady 5,000 events/s: from publish to the
//!    event arriving on a tail, which is sent only once it is durable.
//!
//! ```sh
//! cargo build --release -p chainlog-server --bin chainlogd --example nats_ingest
//! CHAINLOG_NATS_SERVER=.ci/.nats-server/bin/nats-server \
//!   target/release/examples/nats_ingest [MESSAGES] [SECONDS_AT_5000]
//! ```
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::pull};
use futures_util::StreamExt;

fn cpu_secs(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &s[s.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    // utime and stime are fields 14 and 15 (1-based), 12 and 13 here.
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn body(i: usize, sent_ns: u128) -> Vec<u8> {
    // 256 bytes with the fields below.
    let head = format!(
        r#"{{"tenant_id":"t{}","actor_id":"user-{:05}","action":"user.login","resource":"session","resource_id":"s{i:08}","source_event_id":"evt-{i:09}","sent_ns":"{sent_ns}","pad":""#,
        i % 100,
        i % 5000
    );
    let mut b = head.into_bytes();
    while b.len() < 254 {
        b.push(b'x');
    }
    b.extend_from_slice(b"\"}");
    b
}

fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).map_or(100_000, |a| a.parse().unwrap());
    let steady_secs: u64 = args.get(2).map_or(10, |a| a.parse().unwrap());
    let nats_bin = std::env::var("CHAINLOG_NATS_SERVER").unwrap_or("nats-server".into());
    let chainlogd = std::env::var("CHAINLOGD_BIN").map_or_else(
        |_| {
            let me = std::env::current_exe().unwrap();
            me.parent().unwrap().parent().unwrap().join("chainlogd")
        },
        PathBuf::from,
    );
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let nats = Proc(
        Command::new(&nats_bin)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir.path().join("nats"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let url = format!("nats://127.0.0.1:{port}");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let client = rt.block_on(async_nats::connect(&url)).unwrap();
    let js = {
        let _g = rt.enter();
        jetstream::new(client.clone())
    };
    rt.block_on(js.create_stream(jetstream::stream::Config {
        name: "EVENTS".into(),
        subjects: vec!["audit.>".into()],
        storage: jetstream::stream::StorageType::File,
        ..Default::default()
    }))
    .unwrap();
    let started = Instant::now();
    rt.block_on(async {
        let mut acks = Vec::new();
        for i in 0..n {
            acks.push(
                js.publish("audit.user.login.v1", body(i, 0).into())
                    .await
                    .unwrap(),
            );
            if acks.len() == 1000 {
                for a in acks.drain(..) {
                    a.await.unwrap();
                }
            }
        }
        for a in acks {
            a.await.unwrap();
        }
    });
    println!(
        "pre-filled {n} messages of 256 bytes in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let nats_pid = nats.0.id();

    // 2 first: the ceiling, a consumer that only pulls and double-acks.
    let (batch, in_flight) = (256usize, 4usize);
    let nats_cpu0 = cpu_secs(nats_pid);
    let me_cpu0 = cpu_secs(std::process::id());
    let t = Instant::now();
    rt.block_on(async {
        let stream = js.get_stream("EVENTS").await.unwrap();
        let consumer = stream
            .get_or_create_consumer(
                "ceiling",
                pull::Config {
                    durable_name: Some("ceiling".into()),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    max_ack_pending: (batch * in_flight * 2) as i64,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let mut msgs = consumer
            .stream()
            .max_messages_per_batch(batch)
            .messages()
            .await
            .unwrap();
        let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(in_flight));
        let mut done = 0;
        while done < n {
            let permit = slots.clone().acquire_owned().await.unwrap();
            let mut group = vec![msgs.next().await.unwrap().unwrap()];
            while group.len() < batch {
                match futures_util::FutureExt::now_or_never(msgs.next()) {
                    Some(Some(Ok(m))) => group.push(m),
                    _ => break,
                }
            }
            done += group.len();
            tokio::spawn(async move {
                futures_util::future::join_all(group.iter().map(|m| m.double_ack())).await;
                drop(permit);
            });
        }
        let _ = slots.acquire_many(in_flight as u32).await.unwrap();
    });
    let ceiling_s = t.elapsed().as_secs_f64();
    println!(
        "ceiling (pull + double ack, nothing stored): {:.0} msgs/s; CPU per message: nats-server {:.1} us, this tool {:.1} us",
        n as f64 / ceiling_s,
        (cpu_secs(nats_pid) - nats_cpu0) / n as f64 * 1e6,
        (cpu_secs(std::process::id()) - me_cpu0) / n as f64 * 1e6,
    );

    // 1: chainlogd ingesting the same stream.
    let data = dir.path().join("chainlog");
    std::fs::create_dir_all(&data).unwrap();
    let key = "clk_bench_key_0123456789abcdef0123456789abcdef";
    let hash = String::from_utf8(
        Command::new(&chainlogd)
            .args(["hash-key", key])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let hash = hash
        .lines()
        .find_map(|l| l.strip_prefix("hash: "))
        .unwrap()
        .to_string();
    let cfg = format!(
        "listen = \"127.0.0.1:0\"\nmetrics_listen = \"\"\nhttp_listen = \"\"\ndata_dir = \".\"\n\n[[logs]]\nname = \"default\"\n\n[[keys]]\nid = \"bench\"\nhash = \"{hash}\"\nlog = \"default\"\nrights = [\"read\"]\n\n[[ingest.nats]]\nservers = [\"{url}\"]\nstream = \"EVENTS\"\ndurable = \"audit\"\nbatch = {batch}\nmax_in_flight = {in_flight}\n"
    );
    std::fs::write(data.join("chainlogd.toml"), cfg).unwrap();
    let mut child = Command::new(&chainlogd)
        .args(["--config", "chainlogd.toml", "--log-level", "warn"])
        .current_dir(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    let mut addr = String::new();
    for line in out.lines() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("chainlogd listening on ") {
            addr = rest.split(',').next().unwrap().to_string();
            break;
        }
    }
    let server = Proc(child);
    let pid = server.0.id();
    let mut c = client::Client::connect(addr.as_str()).unwrap();
    c.auth(key).unwrap();
    let (cpu0, nats_cpu0, me_cpu0) = (
        cpu_secs(pid),
        cpu_secs(nats_pid),
        cpu_secs(std::process::id()),
    );
    let mut t0 = None;
    loop {
        let s = c.stats().unwrap();
        if s.next_seq > 0 && t0.is_none() {
            t0 = Some(Instant::now());
        }
        if s.next_seq as usize >= n {
            let secs = t0.unwrap().elapsed().as_secs_f64();
            println!(
                "chainlogd ingest: {:.0} events/s, {:.0} fdatasyncs/s, {:.1} events per sync; CPU per event: chainlogd {:.1} us, nats-server {:.1} us, this tool {:.1} us",
                n as f64 / secs,
                s.syncs as f64 / secs,
                n as f64 / s.syncs.max(1) as f64,
                (cpu_secs(pid) - cpu0) / n as f64 * 1e6,
                (cpu_secs(nats_pid) - nats_cpu0) / n as f64 * 1e6,
                (cpu_secs(std::process::id()) - me_cpu0) / n as f64 * 1e6,
            );
            println!(
                "  ratio to the ceiling: {:.2}",
                (n as f64 / secs) / (n as f64 / ceiling_s)
            );
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }

    // 3: a steady 5,000 events/s, publish to tail.
    let rate = 5000u64;
    let total = (rate * steady_secs) as usize;
    let from = n as u64;
    let tail_addr = addr.clone();
    let tail = std::thread::spawn(move || {
        let mut c = client::Client::connect(tail_addr.as_str()).unwrap();
        c.auth(key).unwrap();
        let mut lat = Vec::with_capacity(total);
        for e in c.tail(from).unwrap() {
            let e = e.unwrap();
            let m: serde_json::Value = serde_json::from_str(&e.event.metadata).unwrap();
            let sent: u128 = m["sent_ns"].as_str().unwrap().parse().unwrap();
            lat.push((now_ns() - sent) as f64 / 1e6);
            if lat.len() == total {
                break;
            }
        }
        lat
    });
    std::thread::sleep(Duration::from_millis(200));
    let cpu0 = cpu_secs(pid);
    rt.block_on(async {
        let start = Instant::now();
        let mut interval = tokio::time::interval(Duration::from_millis(1));
        let mut sent = 0usize;
        let mut acks = Vec::new();
        while sent < total {
            interval.tick().await;
            let due = ((start.elapsed().as_secs_f64() * rate as f64) as usize).min(total);
            while sent < due {
                acks.push(
                    js.publish("audit.user.login.v1", body(n + sent, now_ns()).into())
                        .await
                        .unwrap(),
                );
                sent += 1;
            }
            if acks.len() >= 500 {
                for a in acks.drain(..) {
                    a.await.unwrap();
                }
            }
        }
        for a in acks {
            a.await.unwrap();
        }
    });
    let mut lat = tail.join().unwrap();
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let p = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    println!(
        "steady {rate}/s for {steady_secs} s, publish to durable (seen on a tail): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; chainlogd CPU {:.0}% of a core",
        p(0.50),
        p(0.99),
        lat[lat.len() - 1],
        (cpu_secs(pid) - cpu0) / steady_secs as f64 * 100.0
    );
    drop(server);
    drop(nats);
    let _ = Path::new(".");
}
