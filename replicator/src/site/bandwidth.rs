//! The site's cap on replication bandwidth: site.toml's `[bandwidth]` at
//! first, replaced (and kept in site.db across restarts) by `PUT
//! /site/bandwidth`; applied at once to the limiter every cycle draws from.

use ferry_api::bandwidth::{BandwidthInfo, BandwidthPolicy};

use super::{Site, SiteError};
use crate::store::{self, DocKind};

/// The one document of its kind.
const ID: &str = "site";

impl Site {
    /// Applies the stored cap, or site.toml's when none was set.
    pub(crate) fn load_bandwidth(&self) -> Result<(), SiteError> {
        let stored = self
            .store
            .now(|c| store::list_docs::<BandwidthPolicy>(c, DocKind::Bandwidth))?;
        let policy = stored
            .into_iter()
            .next()
            .unwrap_or_else(|| self.config.site.bandwidth.clone());
        self.limiter()
            .set_policy(policy)
            .map_err(|e| SiteError::invalid(&e.field, e.message))
    }

    fn limiter(&self) -> &crate::replication::Limiter {
        self.replications.scheduler.limiter()
    }

    /// Replaces the cap: checked first (a bad one changes nothing), stored,
    /// then in force for the next frame any sender writes.
    pub async fn set_bandwidth(&self, policy: BandwidthPolicy) -> Result<BandwidthInfo, SiteError> {
        policy
            .validate()
            .map_err(|e| SiteError::invalid(&e.field, e.message))?;
        let stored = policy.clone();
        self.store
            .call(move |c| store::put_doc(c, DocKind::Bandwidth, ID, &stored))
            .await?;
        self.limiter()
            .set_policy(policy)
            .map_err(|e| SiteError::invalid(&e.field, e.message))?;
        Ok(self.bandwidth_info())
    }

    /// The policy, the cap in force now and the rate being sent.
    pub fn bandwidth_info(&self) -> BandwidthInfo {
        let limiter = self.limiter();
        BandwidthInfo {
            policy: limiter.policy(),
            now: limiter.cap_now(),
            rate_bytes_per_second: limiter.rate(),
        }
    }
}
