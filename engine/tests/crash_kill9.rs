//! Real processes: a child appends with durable acknowledgements and reports
//! each receipt to its parent, which kills it with SIGKILL at a random
//! moment, reopens the log and finds every acknowledged record. Repeated,
//! so each cycle also recovers what the previous kill left. (SIGKILL never
//! loses page-cache data, so this complements the power-loss simulation.)
//!
//! CHAINLOG_KILL9_CYCLES sets the number of cycles (default 200).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use engine::testing::Rng;
use engine::{Config, Log};

const CHILD_ENV: &str = "CHAINLOG_KILL9_CHILD_DIR";

fn config() -> Config {
    Config {
        segment_size: 16 << 10,
        index_interval: 1024,
        log_id: Some(*b"kill9-test-logid"),
        ..Config::default()
    }
}

/// The child's body, run by the parent as a separate process; ignored in
/// normal runs.
#[test]
#[ignore = "run by kill9_cycles as a child process"]
fn kill9_child() {
    let dir = std::env::var(CHILD_ENV).expect("run by kill9_cycles");
    let log = Log::open(&dir, config()).expect("child open");
    let out = std::io::stdout();
    let mut out = out.lock();
    for i in 0u64.. {
        let payload = format!("pid {} record {i}", std::process::id());
        let r = log.append(payload.as_bytes()).expect("child append");
        writeln!(out, "ACK {} {}", r.seq, engine::error::hex(&r.hash)).expect("report");
        out.flush().expect("flush");
    }
}

#[test]
fn kill9_cycles() {
    let cycles: u64 = std::env::var("CHAINLOG_KILL9_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("test binary");
    let mut rng = Rng::new(42);
    let started = Instant::now();
    let (mut total_acked, mut cuts) = (0u64, 0u64);
    for cycle in 0..cycles {
        let mut child = Command::new(&exe)
            .args([
                "--ignored",
                "--exact",
                "kill9_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("ACK ") {
                    let mut parts = rest.split(' ');
                    let seq: u64 = parts.next().and_then(|s| s.parse().ok()).expect("seq");
                    let hash = parts.next().expect("hash").to_owned();
                    if tx.send((seq, hash)).is_err() {
                        break;
                    }
                }
            }
        });
        // Kill after the first acknowledgement, a random few milliseconds in.
        let first = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("child acknowledged nothing");
        std::thread::sleep(Duration::from_micros(rng.below(20_000)));
        child.kill().expect("SIGKILL");
        child.wait().expect("wait");
        reader.join().expect("reader");
        let mut acked = vec![first];
        acked.extend(rx.try_iter());
        total_acked += acked.len() as u64;

        let log = Log::open(dir.path(), config())
            .unwrap_or_else(|e| panic!("cycle {cycle}: reopen failed: {e}"));
        if log.recovery_report().cut.is_some() {
            cuts += 1;
        }
        for (seq, hash) in &acked {
            let rec = log
                .read(*seq)
                .unwrap_or_else(|e| panic!("cycle {cycle}: acknowledged seq {seq} lost: {e}"));
            assert_eq!(
                &engine::error::hex(&rec.hash),
                hash,
                "cycle {cycle}: seq {seq}"
            );
        }
    }
    let report =
        engine::verify::verify_dir(&engine::storage::FsStorage, dir.path()).expect("verify");
    assert!(report.is_valid(), "{:?}", report.problems());
    eprintln!(
        "kill -9: {cycles} cycles, {total_acked} acknowledged records all found, {cuts} torn tails cut, {} records in {} segments, {:.1} s",
        report.records_checked,
        report.segments.len(),
        started.elapsed().as_secs_f64()
    );
}
