//! Fuzz target: `engine::testing::fuzz::signed_note` (see engine/src/testing/fuzz.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| engine::testing::fuzz::signed_note(data));
