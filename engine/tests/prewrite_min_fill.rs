//! `Config::prewrite_min_fill`: a segment that filled faster than the limit
//! (by its records' `created_at`) is followed by a plain segment, and
//! pre-writing resumes after one that filled more slowly. Spares are
//! prepared at the roll (`prewrite_inline`), so the counts are exact.

mod common;

use std::time::Duration;

use common::{payload, small_config, ManualClock};
use engine::{Config, Log};

const SECOND: u64 = 1_000_000_000;

/// Appends until `rolls` more segments have been sealed.
fn roll(log: &Log, next: &mut u64, rolls: u64, clock: &ManualClock, step: u64) {
    let target = log.stats().segments_sealed + rolls;
    while log.stats().segments_sealed < target {
        log.append(&payload(*next)).expect("append");
        *next += 1;
        clock.advance(step);
    }
}

#[test]
fn fast_segments_are_followed_by_plain_ones_and_slow_ones_by_pre_written_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(SECOND);
    let config = Config {
        clock: clock.clone(),
        prewrite_segments: true,
        prewrite_inline: true,
        prewrite_min_fill: Some(Duration::from_secs(60)),
        ..small_config(4096)
    };
    let log = Log::open(dir.path(), config).expect("open");
    let mut next = 0;
    // Every record at the same instant: each segment fills in no time, so
    // none after the first is pre-written.
    roll(&log, &mut next, 4, &clock, 0);
    let s = log.stats();
    assert_eq!((s.segments_sealed, s.segments_prewritten), (4, 0));
    // A minute between records: each segment filled in more than 60 s (it
    // holds several records), so each next one is pre-written.
    roll(&log, &mut next, 3, &clock, 61 * SECOND);
    let s = log.stats();
    assert_eq!((s.segments_sealed, s.segments_prewritten), (7, 3));
    // Fast again: the first segment sealed now began a minute before its
    // last record (its first came in the slow phase), so its successor is
    // pre-written; after that, plain again.
    roll(&log, &mut next, 3, &clock, 0);
    let s = log.stats();
    assert_eq!((s.segments_sealed, s.segments_prewritten), (10, 4));
    drop(log);
    let report =
        engine::verify::verify_dir(&engine::storage::FsStorage, dir.path()).expect("verify");
    assert!(report.is_valid(), "{:?}", report.problems());
    assert_eq!(report.records_checked, next);
}

#[test]
fn without_a_limit_every_segment_is_pre_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(SECOND);
    let config = Config {
        clock: clock.clone(),
        prewrite_segments: true,
        prewrite_inline: true,
        ..small_config(4096)
    };
    let log = Log::open(dir.path(), config).expect("open");
    let mut next = 0;
    roll(&log, &mut next, 4, &clock, 0);
    let s = log.stats();
    assert_eq!((s.segments_sealed, s.segments_prewritten), (4, 4));
}
