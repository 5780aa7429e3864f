//! Fuzzes `ferry_replicator::fuzzing::promote_marker`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferry_replicator::fuzzing::promote_marker(data));
