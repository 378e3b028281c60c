//! Fuzz target: `engine::fuzz::record` (see engine/src/fuzz.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| engine::fuzz::record(data));
