//! Recovery, segment-verify and segment-dump read a segment through the
//! same walk: fed the same damaged logs, they agree on where the valid
//! records end and on the last valid record before it.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use engine::{Config, Log};
use segment_files::{fix_crc, records, segments};
use serde_json::Value;

mod segment_files;

fn config() -> Config {
    Config {
        segment_size: 2048,
        index_interval: 256,
        log_id: Some(*b"walk-agreement-1"),
        ..Config::default()
    }
}

/// A log of 60 records, one sync each: several sealed segments and an
/// active one holding some records.
fn make_log(dir: &Path) {
    let log = Log::open(dir, config()).expect("open");
    for i in 0..60u64 {
        log.append(format!("agreement event {i:03} with some padding").as_bytes())
            .expect("append");
    }
}

fn edit(path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let mut b = std::fs::read(path).expect("read");
    f(&mut b);
    std::fs::write(path, b).expect("write");
}

fn name(p: &Path) -> String {
    p.file_name().expect("name").to_string_lossy().into_owned()
}

/// Where a tool stopped reading: the file and offset of the first byte
/// that is not part of a valid record (none when the log ends cleanly),
/// and the last valid record before it (none when a tool cannot tell).
#[derive(Debug, PartialEq, Eq)]
struct Stop {
    at: Option<(String, u64)>,
    last_valid: Option<u64>,
}

fn by_verify(dir: &Path) -> Stop {
    let r = engine::verify::verify_dir(&engine::storage::FsStorage, dir).expect("verify");
    let problem = r.problems().first().map(|c| (name(&c.file), c.offset));
    let tail = r.tail.as_ref().map(|t| (name(&t.path), t.offset));
    // The last valid record: through the first segment with a problem.
    let mut last_valid = None;
    for s in &r.segments {
        last_valid = s.last_seq().or(last_valid);
        if s.error.is_some() {
            break;
        }
    }
    Stop {
        at: problem.or(tail),
        last_valid,
    }
}

fn by_dump(dir: &Path) -> Stop {
    let mut out = Vec::new();
    tools::dump_cmd::run(
        &tools::dump_cmd::Args {
            path: dir.to_path_buf(),
            ..Default::default()
        },
        &mut out,
    );
    let mut stop = Stop {
        at: None,
        last_valid: None,
    };
    for line in String::from_utf8(out).expect("utf8").lines() {
        let v: Value = serde_json::from_str(line).expect("json");
        let seg = v["segment"].as_str().expect("segment").to_owned();
        if v["error"].is_string() {
            stop.at = Some((seg, v["offset"].as_u64().expect("offset")));
            break;
        }
        stop.last_valid = v["seq"].as_u64();
    }
    stop
}

/// Opens the log (which repairs what it may). A refusal names where; the
/// last valid record is then unknown to recovery.
fn by_recovery(dir: &Path) -> Stop {
    match Log::open(dir, config()) {
        Ok(log) => Stop {
            at: log
                .recovery_report()
                .cut
                .as_ref()
                .map(|c| (name(&c.segment), c.offset)),
            last_valid: log.head().map(|h| h.seq),
        },
        Err(e) => {
            let c = e.corruption().expect("a corruption error");
            Stop {
                at: Some((name(&c.file), c.offset)),
                last_valid: None,
            }
        }
    }
}

struct Case {
    name: &'static str,
    /// Recovery must refuse to open (damage that no crash produces)
    /// rather than cut.
    refused: bool,
    /// Damages the log; returns where the valid records end and the last
    /// valid record before that.
    damage: fn(&Path) -> Stop,
}

const CASES: &[Case] = &[
    Case {
        name: "torn final record",
        refused: false,
        damage: |dir| {
            let active = segments(dir).pop().expect("segments");
            let r = records(&active);
            let (at, len, seq) = *r.last().expect("records");
            edit(&active, |b| b.truncate(at + len / 2));
            Stop {
                at: Some((name(&active), at as u64)),
                last_valid: Some(seq - 1),
            }
        },
    },
    Case {
        name: "zeros after the last record (pre-written space)",
        refused: false,
        damage: |dir| {
            let active = segments(dir).pop().expect("segments");
            edit(&active, |b| b.extend_from_slice(&[0; 3000]));
            Stop {
                at: None,
                last_valid: Some(59),
            }
        },
    },
    Case {
        name: "garbage after the last record",
        refused: false,
        damage: |dir| {
            let active = segments(dir).pop().expect("segments");
            let end = std::fs::metadata(&active).expect("stat").len();
            edit(&active, |b| {
                b.extend((0..300u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8 | 1))
            });
            Stop {
                at: Some((name(&active), end)),
                last_valid: Some(59),
            }
        },
    },
    Case {
        name: "bad footer of a sealed segment",
        refused: true,
        damage: |dir| {
            let s = segments(dir)[1].clone();
            let last = records(&s).last().expect("records").2;
            let len = std::fs::metadata(&s).expect("stat").len();
            edit(&s, |b| b[len as usize - 256 + 40] ^= 1);
            Stop {
                at: Some((name(&s), len - 256)),
                last_valid: Some(last),
            }
        },
    },
    Case {
        name: "footer last_seq edited with its checksum recomputed",
        refused: true,
        damage: |dir| {
            let s = segments(dir)[1].clone();
            let last = records(&s).last().expect("records").2;
            let len = std::fs::metadata(&s).expect("stat").len() as usize;
            edit(&s, |b| {
                let f = len - 256;
                b[f + 24..f + 32].copy_from_slice(&(last + 2).to_le_bytes());
                fix_crc(&mut b[f..], 252);
            });
            Stop {
                at: Some((name(&s), len as u64 - 256)),
                last_valid: Some(last),
            }
        },
    },
    Case {
        name: "edited record in the active segment (records after it were durable)",
        refused: true,
        damage: |dir| {
            let active = segments(dir).pop().expect("segments");
            let r = records(&active);
            assert!(r.len() >= 3, "the active segment holds {} records", r.len());
            let (at, _, seq) = r[1];
            edit(&active, |b| b[at + 40] ^= 0x20);
            Stop {
                at: Some((name(&active), at as u64)),
                last_valid: Some(seq - 1),
            }
        },
    },
    Case {
        name: "edited record in a sealed segment whose index is rebuilt",
        refused: true,
        damage: |dir| {
            let s = segments(dir)[2].clone();
            let r = records(&s);
            let (at, _, seq) = r[2];
            edit(&s, |b| b[at + 40] ^= 0x20);
            // Without its index files, opening the log walks the segment.
            std::fs::remove_file(s.with_extension("idx")).expect("remove idx");
            Stop {
                at: Some((name(&s), at as u64)),
                last_valid: Some(seq - 1),
            }
        },
    },
];

#[test]
fn recovery_verify_and_dump_agree_on_where_valid_records_end() {
    let base = tempfile::tempdir().expect("tempdir");
    let orig = base.path().join("orig");
    make_log(&orig);
    assert!(segments(&orig).len() >= 4, "several sealed segments");
    for (i, case) in CASES.iter().enumerate() {
        let dir = base.path().join(format!("case-{i}"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        for e in std::fs::read_dir(&orig).expect("read_dir") {
            let e = e.expect("entry");
            std::fs::copy(e.path(), dir.join(e.file_name())).expect("copy");
        }
        let expected = (case.damage)(&dir);
        assert_eq!(by_verify(&dir), expected, "{}: segment-verify", case.name);
        assert_eq!(by_dump(&dir), expected, "{}: segment-dump", case.name);
        // Recovery last: it may cut the tail. When it refuses to open, it
        // names the place, not the last valid record.
        let recovered = by_recovery(&dir);
        if case.refused {
            let refusal = Stop {
                at: expected.at,
                last_valid: None,
            };
            assert_eq!(recovered, refusal, "{}: recovery", case.name);
        } else {
            assert_eq!(recovered, expected, "{}: recovery", case.name);
        }
    }
}
