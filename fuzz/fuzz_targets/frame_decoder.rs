//! Fuzz target: `proto::fuzz::frame_decoder` (see proto/src/fuzz.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| proto::fuzz::frame_decoder(data));
