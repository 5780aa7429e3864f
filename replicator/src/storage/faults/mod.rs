//! Storage under faults, on the simulated file system: the holes found by
//! the audit of issue 15, each with its test, and the crash sweep.

mod history;
mod holes;
mod io_sweep;
mod promote;
mod scrub;
mod sweep;
mod world;
