//! Fuzz target: `proto::fuzz::json_check` (see proto/src/fuzz.rs), with
//! serde_json as the reference the metadata JSON check must agree with.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| proto::fuzz::json_check(data, |t| {
    serde_json::from_str::<serde::de::IgnoredAny>(t).is_ok()
}));
