//! Fuzzes `ferry_replicator::fuzzing::replica_state`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferry_replicator::fuzzing::replica_state(data));
