//! Replays every stored fuzz input (fuzz/corpus/TARGET and, for inputs that
//! once crashed, fuzz/artifacts/TARGET) through the fuzz bodies, and runs a
//! bounded, seeded mutation loop over them (CHAINLOG_FUZZ_ITERS per target,
//! default 2,000). Long fuzzing runs use cargo-fuzz in fuzz/.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use engine::testing::fuzz;

type Body = fn(&[u8]);

const TARGETS: [(&str, Body); 9] = [
    ("record", fuzz::record),
    ("segment_header", fuzz::segment_header),
    ("segment_footer", fuzz::segment_footer),
    ("index_file", fuzz::index_file),
    ("open_dir", fuzz::open_dir),
    ("signed_note", fuzz::signed_note),
    ("checkpoint", fuzz::checkpoint),
    ("tlog_proof", fuzz::tlog_proof),
    ("tree_file", fuzz::tree_file),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

#[test]
fn stored_inputs_and_seeded_mutations_never_crash() {
    let iters: u64 = std::env::var("CHAINLOG_FUZZ_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000);
    for (target, body) in TARGETS {
        let stored = fuzz::replay_corpus(&fuzz_dir(), target, body, iters);
        assert!(stored > 0, "no stored corpus for {target}");
        eprintln!("{target}: {stored} stored inputs, {iters} mutations");
    }
}

/// Writes the seed corpus from real structures. Run by hand after a format
/// change: `cargo test -p chainlog-engine --test fuzz_corpus -- --ignored`.
#[test]
#[ignore = "regenerates fuzz/corpus seeds"]
fn write_seed_corpus() {
    use engine::storage::Storage;
    use engine::testing::SimStorage;
    let storage = SimStorage::new(3);
    let dir = Path::new("/seed/log");
    storage.create_dir_all(dir).expect("mkdir");
    let config = engine::Config {
        segment_size: 1024,
        index_interval: 128,
        segment_age: None,
        log_id: Some(*b"fuzz-seed-log-id"),
        ..engine::Config::default()
    };
    let log = engine::Log::open_with_storage(Arc::new(storage.clone()), dir, config).expect("open");
    for i in 0..9u32 {
        let mut p = format!("seed record {i}").into_bytes();
        p.resize(60 + i as usize * 20, b'.');
        log.append(&p).expect("append");
    }
    drop(log);
    let mut names = storage.list(dir).expect("list");
    names.sort();
    let read = |n: &str| storage.read_file(&dir.join(n)).expect("file");
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let d = fuzz_dir().join("corpus").join(target);
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(d.join(name), bytes).expect("write seed");
    };
    let segs: Vec<&String> = names.iter().filter(|n| n.ends_with(".seg")).collect();
    assert!(segs.len() >= 3, "{} segments", segs.len());
    let seg0 = read(segs[0]);
    write("segment_header", "seed-header", &seg0[..128]);
    write("record", "seed-record", &seg0[128..]);
    write("segment_footer", "seed-footer", &seg0[seg0.len() - 256..]);
    for n in &names {
        if n.ends_with(".idx") {
            write(
                "index_file",
                "seed-offset-index",
                &[[0u8].as_slice(), &read(n)].concat(),
            );
        }
        if n.ends_with(".tix") {
            write(
                "index_file",
                "seed-time-index",
                &[[1u8].as_slice(), &read(n)].concat(),
            );
        }
    }
    let files: Vec<(String, Vec<u8>)> = names.iter().map(|n| (n.clone(), read(n))).collect();
    let all: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    write("open_dir", "seed-log", &fuzz::join_files(&all));
    let first: Vec<(&str, &[u8])> = all
        .iter()
        .filter(|(n, _)| n.starts_with(segs[0].trim_end_matches(".seg")))
        .copied()
        .collect();
    write("open_dir", "seed-first-segment", &fuzz::join_files(&first));
    // The trust formats: a tree file of the log, a signed checkpoint of it,
    // and an inclusion proof at that checkpoint.
    let tree = names
        .iter()
        .find(|n| n.ends_with(".tree"))
        .expect("a sealed segment's tree file");
    write("tree_file", "seed-tree", &read(tree));
    let key = engine::note::SignerKey::from_seed("fuzz.example/log", &[7; 32]).expect("key");
    let mut hashes = engine::merkle::MemoryTree::new();
    for h in [[1u8; 32], [2; 32], [3; 32]] {
        hashes.push(engine::merkle::leaf_hash(&h));
    }
    let cp = engine::note::Checkpoint {
        origin: "fuzz.example/log".into(),
        size: 3,
        root_hash: engine::merkle::root_at(&hashes, 3).expect("root"),
        extensions: vec!["an extension line".into()],
    };
    let note = cp.sign(&key).expect("sign");
    write("signed_note", "seed-checkpoint-note", note.as_bytes());
    write(
        "checkpoint",
        "seed-checkpoint",
        cp.encode().expect("encode").as_bytes(),
    );
    let path = engine::merkle::inclusion_proof(&hashes, 1, 3).expect("proof");
    let proof = engine::note::proof::Proof::for_record(1, &[2; 32], path, note.as_bytes())
        .expect("proof file");
    write("tlog_proof", "seed-proof", proof.encode().as_bytes());
}

/// The `open_dir` body's cross-checks of verification against recovery run
/// on the stored corpus: its whole logs (the seeds, and mutations that
/// stayed whole) take the checked path, and the rest do not.
#[test]
fn open_dir_cross_checks_run_on_the_whole_logs_of_the_corpus() {
    let dir = fuzz_dir().join("corpus").join("open_dir");
    let (mut whole, mut other) = (0, 0);
    for e in std::fs::read_dir(&dir).expect("corpus") {
        let path = e.expect("entry").path();
        let data = std::fs::read(&path).expect("read");
        let checked = fuzz::open_dir_checks(&data);
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("seed-") {
            assert!(checked, "{name}: a seed log is whole");
        }
        if checked {
            whole += 1;
        } else {
            other += 1;
        }
    }
    assert!(whole >= 2, "only {whole} whole logs in the corpus");
    assert!(other > 0, "no damaged input in the corpus");
    eprintln!("open_dir corpus: {whole} whole logs cross-checked, {other} damaged or refused");
}
