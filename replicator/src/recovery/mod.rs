//! Protection and recovery: inventory mappings, protection groups, recovery
//! plans and their runs. Above replication, below the API.
//!
//! - [`model`]: the objects and the API bodies that carry them.
//! - [`mapping`]: checking mapping sets.
//! - [`placement`]: placing VMs by a mapping set, rewriting their addresses.
//! - [`plan`]: checking plans, resolving VM settings, the start order.
//! - [`run`]: a run's record, its outcome, RTO and data loss.

pub mod mapping;
pub mod model;
pub mod placement;
pub mod plan;
pub mod run;

/// A value out of range or inconsistent, with the field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: String,
    pub message: String,
}

impl Invalid {
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_string(),
            message: message.into(),
        }
    }
}
