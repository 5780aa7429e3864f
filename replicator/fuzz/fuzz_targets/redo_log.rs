//! Fuzzes `ferry_replicator::fuzzing::redo_log`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferry_replicator::fuzzing::redo_log(data));
