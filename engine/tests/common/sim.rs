//! The simulated-storage workloads' shared pieces: a deterministic clock,
//! the configuration, and the checks made after every crash.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use engine::merkle::{self, leaf_hash, MemoryTree};
use engine::storage::Storage;
use engine::testing::SimStorage;
use engine::{Clock, Config, Log, Receipt};

/// A deterministic clock: every reading is 1 µs after the previous one.
#[derive(Debug)]
pub struct StepClock(AtomicU64);

impl Clock for StepClock {
    fn now_nanos(&self) -> u64 {
        self.0.fetch_add(1_000, Ordering::SeqCst)
    }
}

/// Whether a workload's segments start in pre-written files of zeros (as
/// chainlogd runs). In the sweeps the spare is prepared at each roll on
/// the writer thread (`Config::prewrite_inline`), so that the order of
/// operations, and so every crash point, is the same on every run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prewrite {
    Off,
    AtRoll,
    /// As chainlogd runs: the spare is prepared by the background thread,
    /// and a roll takes it only if it is ready (timing decides).
    Background,
}

pub const MODES: [Prewrite; 2] = [Prewrite::Off, Prewrite::AtRoll];

pub fn config_for(mode: Prewrite) -> Config {
    Config {
        prewrite_segments: mode != Prewrite::Off,
        prewrite_inline: mode == Prewrite::AtRoll,
        ..config()
    }
}

pub fn config() -> Config {
    Config {
        segment_size: 1024,
        segment_age: None,
        index_interval: 128,
        // Workloads of a few dozen records: stored tree nodes from level 1
        // up, so that every level file holds some for the proofs made
        // after each crash to need.
        tree_min_level: 1,
        log_id: Some(*b"crash-sim-log-id"),
        clock: Arc::new(StepClock(AtomicU64::new(1_700_000_000_000_000_000))),
        ..Config::default()
    }
}

/// `CHAINLOG_CRASH_SCALE`: how many times the default counts to run (1
/// when unset). Zero or anything but a positive integer is refused: a
/// sweep of no cases would pass having proved nothing.
pub fn scale() -> u64 {
    match std::env::var("CHAINLOG_CRASH_SCALE") {
        Err(_) => 1,
        Ok(s) => match s.parse::<u64>() {
            Ok(n) if n > 0 => n,
            _ => panic!("CHAINLOG_CRASH_SCALE={s:?}: expected a positive integer"),
        },
    }
}

pub fn dir() -> &'static Path {
    Path::new("/sim/log")
}

/// What a workload attempted and what was acknowledged.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Payloads in the order they were submitted (single writer: seq order).
    pub attempted: Vec<Vec<u8>>,
    pub acked: Vec<(Receipt, Vec<u8>)>,
    /// Segments the workload started in a pre-written file.
    pub prewritten: u64,
}

/// What a sweep's cases did, summed, so that a sweep can prove it damaged
/// what it claims to: a simulator that stopped tearing, dropping or losing
/// anything must fail the sweep, not pass it.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub cases: u64,
    /// Crashes (a case may crash twice).
    pub crashes: u64,
    /// Unsynced writes torn at a sector boundary, dropped, replaced with
    /// garbage (summed over crashes).
    pub torn: u64,
    pub dropped: u64,
    pub garbage: u64,
    /// Directory changes lost for want of a directory sync.
    pub dir_ops_lost: u64,
    /// Cases whose final recovery cut a torn tail.
    pub cuts: u64,
    /// Cases whose final recovery rebuilt a tree file.
    pub trees_rebuilt: u64,
    /// Cases whose proofs after the crash rebuilt a level file.
    pub levels_rebuilt: u64,
    /// Cases in which fewer appends were acknowledged than attempted.
    pub fewer_acks: u64,
    /// Cases whose active segment, after the crash, ended in zeros
    /// (pre-written space read as the end of the log).
    pub zeros_at_end: u64,
}

impl Tally {
    /// Counts what the crash just taken did.
    pub fn crashed(&mut self, storage: &SimStorage) {
        let c = storage.last_crash();
        self.crashes += 1;
        self.torn += c.torn;
        self.dropped += c.dropped;
        self.garbage += c.garbage;
        self.dir_ops_lost += c.dir_ops_lost;
    }

    /// Counts a checked case.
    pub fn checked(&mut self, out: &Outcome, rec: &Recovered) {
        self.cases += 1;
        self.cuts += u64::from(rec.cut);
        self.trees_rebuilt += u64::from(rec.trees_rebuilt);
        self.levels_rebuilt += u64::from(rec.levels_rebuilt);
        self.zeros_at_end += u64::from(rec.zeros_at_end);
        self.fewer_acks += u64::from(out.acked.len() < out.attempted.len());
    }

    pub fn add(&mut self, o: &Tally) {
        self.cases += o.cases;
        self.crashes += o.crashes;
        self.torn += o.torn;
        self.dropped += o.dropped;
        self.garbage += o.garbage;
        self.dir_ops_lost += o.dir_ops_lost;
        self.cuts += o.cuts;
        self.trees_rebuilt += o.trees_rebuilt;
        self.levels_rebuilt += o.levels_rebuilt;
        self.fewer_acks += o.fewer_acks;
        self.zeros_at_end += o.zeros_at_end;
    }

    /// Fails unless every kind of damage happened in some case (zeros at
    /// the end only where segments were pre-written).
    pub fn assert_damaged(&self, what: &str, mode: Prewrite) {
        let kinds = [
            ("torn writes", self.torn),
            ("dropped writes", self.dropped),
            ("garbage writes", self.garbage),
            ("lost directory entries", self.dir_ops_lost),
            ("recovery cuts", self.cuts),
            ("tree files rebuilt", self.trees_rebuilt),
            ("level files rebuilt", self.levels_rebuilt),
            (
                "cases with fewer acknowledgements than attempts",
                self.fewer_acks,
            ),
        ];
        for (kind, n) in kinds {
            assert!(n > 0, "{what}: no {kind} in {} cases: {self:?}", self.cases);
        }
        if mode == Prewrite::AtRoll {
            assert!(
                self.zeros_at_end > 0,
                "{what}: no case read pre-written zeros as the end of the log: {self:?}"
            );
        }
    }
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} cases, {} crashes: {} torn, {} dropped, {} garbage writes, {} directory changes lost; {} recoveries cut a tail, {} rebuilt a tree file, {} cases' proofs rebuilt a level file, {} active segments ended in zeros, {} cases acknowledged fewer than attempted",
            self.cases,
            self.crashes,
            self.torn,
            self.dropped,
            self.garbage,
            self.dir_ops_lost,
            self.cuts,
            self.trees_rebuilt,
            self.levels_rebuilt,
            self.zeros_at_end,
            self.fewer_acks
        )
    }
}

/// What [`check_recovered`] found.
#[derive(Debug, Clone, Copy)]
pub struct Recovered {
    /// Records in the recovered log.
    pub records: u64,
    /// Whether recovery cut a torn tail.
    pub cut: bool,
    /// Whether the last segment ended in zeros before recovery.
    pub zeros_at_end: bool,
    /// Whether recovery rebuilt a tree file (lost or torn by the crash).
    pub trees_rebuilt: bool,
    /// Whether the proofs made after recovery rebuilt a level file (lost,
    /// or never written, because of the crash).
    pub levels_rebuilt: bool,
}

/// True when the last segment file ends in at least 64 zero bytes: the
/// unused space of a pre-written segment (a record ends in its hash and a
/// footer in its CRC, so a whole record or footer does not end so).
fn ends_in_zeros(storage: &SimStorage) -> bool {
    let Ok(mut names) = storage.list(dir()) else {
        return false;
    };
    names.retain(|n| engine::parse_segment_name(n).is_some());
    names.sort();
    names
        .last()
        .and_then(|n| storage.read_file(&dir().join(n)))
        .is_some_and(|b| b.len() >= 64 && b[b.len() - 64..].iter().all(|&x| x == 0))
}

/// Opens the recovered log with `cfg` and checks it against the outcome.
pub fn check_recovered(
    storage: &SimStorage,
    cfg: &Config,
    out: &Outcome,
    attempted_in_order: bool,
    base: usize,
) -> Recovered {
    let zeros_at_end = ends_in_zeros(storage);
    let log = match Log::open_with_storage(Arc::new(storage.clone()), dir(), cfg.clone()) {
        Ok(l) => l,
        Err(e) => panic!("open after crash failed: {e}"),
    };
    let recs: Vec<engine::Record> = log
        .scan(..)
        .map(|r| r.unwrap_or_else(|e| panic!("scan after crash: {e}")))
        .collect();
    for (r, payload) in &out.acked {
        let rec = recs.get(r.seq as usize).unwrap_or_else(|| {
            panic!("acknowledged seq {} lost ({} recovered)", r.seq, recs.len())
        });
        assert_eq!(rec.hash, r.hash, "seq {}: hash differs", r.seq);
        assert_eq!(&rec.payload, payload, "seq {}: payload differs", r.seq);
    }
    assert!(
        recs.len() >= base,
        "records from before the workload were lost"
    );
    if attempted_in_order {
        let ours = &recs[base..];
        assert!(
            ours.len() <= out.attempted.len(),
            "more records than attempted"
        );
        for (i, rec) in ours.iter().enumerate() {
            assert_eq!(
                rec.payload, out.attempted[i],
                "seq {} is not what was attempted",
                rec.seq
            );
        }
    } else {
        let mut seen = std::collections::HashSet::new();
        for rec in &recs[base..] {
            assert!(
                out.attempted.contains(&rec.payload),
                "seq {} was never attempted",
                rec.seq
            );
            assert!(
                seen.insert(rec.payload.clone()),
                "seq {} stored twice",
                rec.seq
            );
        }
    }
    let report = engine::verify::verify_dir(storage, dir()).expect("verify");
    assert!(
        report.is_valid(),
        "chain does not verify: {:?}",
        report.problems()
    );
    assert_eq!(report.head.map(|h| h.0 + 1).unwrap_or(0), recs.len() as u64);
    // The tree recovery continues is the one the records give.
    if let Some(h) = log.head() {
        assert_eq!(
            Some(h.tree_root),
            report.tree_root,
            "the recovered Merkle tree is not the records'"
        );
    }
    check_proofs(&log, &recs);
    let levels_rebuilt = log.stats().level_files_rebuilt > 0;
    // The recovered log takes appends and reopens with the exact count.
    let cut = log.recovery_report().cut.is_some();
    let trees_rebuilt = !log.recovery_report().rebuilt_trees.is_empty();
    let r = log
        .append(b"after recovery")
        .expect("append after recovery");
    assert_eq!(r.seq, recs.len() as u64);
    drop(log);
    let log =
        Log::open_with_storage(Arc::new(storage.clone()), dir(), cfg.clone()).expect("reopen");
    assert_eq!(log.head().map(|h| h.seq + 1), Some(recs.len() as u64 + 1));
    Recovered {
        records: recs.len() as u64,
        cut,
        zeros_at_end,
        trees_rebuilt,
        levels_rebuilt,
    }
}

/// Proofs from the recovered log, from its stored tree (level files the
/// crash lost are rebuilt from the records): every record's inclusion at
/// the head, and consistency from every size to the head, each equal to
/// the proof a tree over the recovered records gives.
fn check_proofs(log: &Log, recs: &[engine::Record]) {
    let mut t = MemoryTree::new();
    for r in recs {
        t.push(leaf_hash(&r.hash));
    }
    let n = recs.len() as u64;
    for seq in 0..n {
        let p = log
            .inclusion_proof(seq, n)
            .unwrap_or_else(|e| panic!("inclusion proof of {seq} at {n}: {e}"));
        assert_eq!(p, merkle::inclusion_proof(&t, seq, n).expect("reference"));
    }
    for old in 1..n {
        let p = log
            .consistency_proof(old, n)
            .unwrap_or_else(|e| panic!("consistency proof {old} -> {n}: {e}"));
        assert_eq!(p, merkle::consistency_proof(&t, old, n).expect("reference"));
    }
}
