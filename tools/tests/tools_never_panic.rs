//! segment-verify and segment-dump never panic, whatever the directory
//! holds: the fuzz corpus's open_dir inputs and seeded random mutations of
//! them are materialised as real directories and run through both tools.

use std::path::Path;

use engine::testing::Rng;
use tools::{dump_cmd, verify_cmd, EXIT_ERROR, EXIT_INVALID, EXIT_VALID};

fn materialise(dir: &Path, input: &[u8]) {
    std::fs::create_dir_all(dir).expect("mkdir");
    for (name, bytes) in engine::testing::fuzz::split_files(input) {
        std::fs::write(dir.join(name), bytes).expect("write");
    }
}

#[test]
fn arbitrary_directories_never_panic_the_tools() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/open_dir");
    let seeds: Vec<Vec<u8>> = std::fs::read_dir(&corpus)
        .expect("stored corpus")
        .map(|e| std::fs::read(e.expect("entry").path()).expect("read"))
        .collect();
    assert!(!seeds.is_empty());
    let base = tempfile::tempdir().expect("tempdir");
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
    let mut outcomes = [0u32; 3];
    for i in 0..300 {
        let mut input = seeds[i % seeds.len()].clone();
        for _ in 0..(i % 8) {
            if input.is_empty() {
                break;
            }
            let at = rng.below(input.len() as u64) as usize;
            input[at] = rng.next_u64() as u8;
        }
        let dir = base.path().join(format!("case-{i}"));
        materialise(&dir, &input);
        let mut sink = Vec::new();
        let code = verify_cmd::run(
            &verify_cmd::Args {
                dir: dir.clone(),
                json: i % 2 == 0,
                threads: Some(1 + i % 2),
                ..Default::default()
            },
            &mut sink,
        );
        assert!([EXIT_VALID, EXIT_INVALID, EXIT_ERROR].contains(&code));
        outcomes[code as usize] += 1;
        let code = dump_cmd::run(
            &dump_cmd::Args {
                path: dir.clone(),
                headers: true,
                ..Default::default()
            },
            &mut sink,
        );
        assert!([EXIT_VALID, EXIT_INVALID, EXIT_ERROR].contains(&code));
    }
    eprintln!(
        "verify outcomes over 300 directories: valid {}, invalid {}, error {}",
        outcomes[0], outcomes[1], outcomes[2]
    );
    assert!(
        outcomes[0] > 0 && outcomes[1] > 0,
        "the inputs should include valid and invalid logs"
    );
}
