//! Fuzz target: `engine::fuzz::index_file` (see engine/src/fuzz.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| engine::fuzz::index_file(data));
