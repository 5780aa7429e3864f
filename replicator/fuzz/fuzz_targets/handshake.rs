//! Fuzzes `ferry_replicator::fuzzing::handshake`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferry_replicator::fuzzing::handshake(data));
