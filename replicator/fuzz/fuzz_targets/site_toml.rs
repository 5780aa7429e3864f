//! Fuzzes `ferry_replicator::fuzzing::site_toml`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferry_replicator::fuzzing::site_toml(data));
