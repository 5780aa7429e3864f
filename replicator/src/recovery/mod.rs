//! Protection and recovery: inventory mappings, protection groups, recovery
//! plans and their runs. Above replication, below the API. The objects and
//! their pure rules are in the `ferry-api` crate, re-exported here:
//!
//! - [`model`]: the objects and the API bodies that carry them.
//! - [`mapping`]: checking mapping sets.
//! - [`placement`]: placing VMs by a mapping set, rewriting their addresses.
//! - [`plan`]: checking plans, resolving VM settings, the start order.
//! - [`run`]: a run's record, its outcome, RTO and data loss.

// The objects and their pure rules live in `ferry-api`, which the TUI shares;
// re-exported here so the site names them where they belong.
pub use ferry_api::{Invalid, mapping, model, placement, plan, run};
