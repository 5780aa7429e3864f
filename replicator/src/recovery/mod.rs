//! Protection and recovery: inventory mappings, protection groups, recovery
//! plans and their runs. Above replication, below the API.
//!
//! - [`model`]: the objects and the API bodies that carry them.

pub mod model;
