//! Fuzz target: `engine::testing::fuzz::tlog_proof` (see engine/src/testing/fuzz.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| engine::testing::fuzz::tlog_proof(data));
