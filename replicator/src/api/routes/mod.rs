//! Routes, one module per resource, each exposing `router()`.

pub mod audit;
pub mod events;
pub mod protection;
pub mod replications;
pub mod runs;
pub mod site;
pub mod vms;

use std::sync::Arc;

use crate::site::Site;

pub type AppState = Arc<Site>;
