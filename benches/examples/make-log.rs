//! Writes a log of a given size for verification benchmarks:
//! `cargo run --release -p chainlog-benches --example make-log -- DIR MIB [PAYLOAD_BYTES]`.
//! Appends in batches of 1,000 without per-group syncs (the seals are
//! synced), which is fine for a benchmark input.

use engine::{Config, Durability, Log};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (dir, mib) = match (args.get(1), args.get(2)) {
        (Some(d), Some(m)) => (d.clone(), m.parse::<u64>()?),
        _ => return Err("usage: make-log DIR MIB [PAYLOAD_BYTES]".into()),
    };
    let payload_len: usize = args.get(3).map_or(Ok(256), |p| p.parse())?;
    let config = Config {
        durability: Durability::UnsafeNoSync,
        ..Config::default()
    };
    let log = Log::open(&dir, config)?;
    let record = payload_len as u64 + 64;
    let records = (mib << 20) / record;
    let batch: Vec<Vec<u8>> = (0..1000)
        .map(|i| vec![(i % 251) as u8; payload_len])
        .collect();
    let started = std::time::Instant::now();
    let mut done = 0;
    while done < records {
        let n = (records - done).min(1000) as usize;
        log.append_batch(&batch[..n])?;
        done += n as u64;
    }
    log.close()?;
    eprintln!(
        "{records} records of {payload_len} bytes ({} MiB) in {:.1} s",
        (records * record) >> 20,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
