//! Fuzz target: `engine::fuzz::segment_footer` (see engine/src/fuzz.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| engine::fuzz::segment_footer(data));
