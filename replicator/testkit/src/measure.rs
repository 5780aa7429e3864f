//! The units the benchmarks print their figures in, computed one way.

use std::time::Duration;

const MIB: f64 = (1 << 20) as f64;

/// A duration in milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A rate in MiB/s: `bytes` moved in `d`.
pub fn mib_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / MIB / d.as_secs_f64()
}
