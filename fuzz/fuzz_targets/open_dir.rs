//! Fuzz target: `engine::fuzz::open_dir` (see engine/src/fuzz.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| engine::fuzz::open_dir(data));
