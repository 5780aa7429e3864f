//! The kept point-in-time instances of the replicas at this site, as the
//! API lists them: newest first, each with its score, suspicious ones
//! marked and the newest clean one recommended.

use super::{Site, SiteError};
use crate::storage::{KeptInstance, Replica};
use ferry_api::types::{InstanceInfo, InstanceScore};

/// The API's view of kept instances, newest first.
pub fn describe(kept: &[KeptInstance]) -> Vec<InstanceInfo> {
    let suspicious = |k: &KeptInstance| k.score.is_some_and(|s| s.score.suspicious);
    let recommended = kept.iter().find(|k| !suspicious(k)).map(|k| k.instance);
    kept.iter()
        .map(|k| InstanceInfo {
            id: k.instance.to_string(),
            point_time_ms: k.point_time_ms,
            bytes_changed: k.score.map(|s| s.score.bytes_changed),
            score: k.score.map(|s| InstanceScore {
                rate: s.score.rate,
                encrypted_share: s.score.share,
                baseline_rate: s.score.baseline_rate,
                baseline_share: s.score.baseline_share,
                jump: s.score.jump,
            }),
            suspicious: suspicious(k),
            recommended: recommended == Some(k.instance),
        })
        .collect()
}

impl Site {
    /// `GET /vms/{id}/instances`: the kept instances of the replica of
    /// `vm_id` held here, read without holding the replica (a cycle may
    /// run meanwhile).
    pub async fn instances(&self, vm_id: &str) -> Result<Vec<InstanceInfo>, SiteError> {
        let missing =
            || SiteError::NotFound(format!("no replica of {vm_id:?} at site {}", self.name));
        let datastore = self.replica_datastore(vm_id).ok_or_else(missing)?;
        let dir = self
            .replications
            .receiver
            .replica_dir(&datastore, vm_id)
            .map_err(|e| SiteError::invalid("vm_id", e.to_string()))?;
        let kept = tokio::task::spawn_blocking(move || {
            let replica = match Replica::inspect(&dir) {
                Ok(replica) => replica,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(e),
            };
            replica.kept()
        })
        .await
        .map_err(|e| SiteError::Io(std::io::Error::other(e.to_string())))?
        .map_err(|e| {
            SiteError::Io(std::io::Error::new(
                e.kind(),
                format!("reading the instances of {vm_id}: {e}"),
            ))
        })?;
        Ok(describe(&kept))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::ScoreRecord;
    use crate::storage::clean_point::InstanceScore as Score;

    fn kept(instance: u64, suspicious: Option<bool>) -> KeptInstance {
        KeptInstance {
            instance,
            point_time_ms: instance * 1000,
            disk_sizes: vec![1 << 20],
            score: suspicious.map(|suspicious| ScoreRecord {
                score: Score {
                    bytes_changed: instance,
                    suspicious,
                    jump: suspicious,
                    ..Score::default()
                },
                ..ScoreRecord::default()
            }),
        }
    }

    #[test]
    fn the_newest_instance_not_suspicious_is_recommended() {
        let listed = describe(&[
            kept(9, Some(true)),
            kept(8, Some(true)),
            kept(7, Some(false)),
            kept(1, None),
        ]);
        let ids: Vec<&str> = listed.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["9", "8", "7", "1"]);
        assert!(listed[0].suspicious && listed[1].suspicious && !listed[2].suspicious);
        let recommended: Vec<&str> = listed
            .iter()
            .filter(|i| i.recommended)
            .map(|i| i.id.as_str())
            .collect();
        assert_eq!(recommended, ["7"]);
        assert_eq!(
            listed[3].bytes_changed, None,
            "the initial sync is not scored"
        );
    }
}
