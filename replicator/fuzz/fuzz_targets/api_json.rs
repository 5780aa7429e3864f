//! Fuzzes `ferry_replicator::fuzzing::api_json`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferry_replicator::fuzzing::api_json(data));
