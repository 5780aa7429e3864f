//! Fuzzes `ferry_replicator::fuzzing::block_sums`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferry_replicator::fuzzing::block_sums(data));
