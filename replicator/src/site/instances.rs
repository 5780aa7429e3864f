//! The kept point-in-time instances of the replicas at this site, as the
//! API lists them: newest first, each with its score, suspicious ones
//! marked and the newest clean one recommended.

use std::collections::BTreeMap;

use super::{Site, SiteError};
use crate::replication::sender::now_ms;
use crate::storage::{KeptInstance, Replica};
use ferry_api::types::{InstanceInfo, InstanceScore, RunMode, RunRequest};

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

/// The instance a run recovers of one VM when it chose an older one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChosenInstance {
    pub instance: u64,
    pub point_time_ms: u64,
    /// The newest kept instance's point: the choice gives up what came after.
    pub newest_point_ms: u64,
}

/// Picks from `kept` (newest first) the instance `id`, or the newest at or
/// before `at_ms`; the error names the VM, the instance and why.
pub fn choose(
    vm: &str,
    kept: &[KeptInstance],
    id: Option<&str>,
    at_ms: Option<u64>,
    now_ms: u64,
) -> Result<Option<ChosenInstance>, SiteError> {
    let Some(newest) = kept.first() else {
        return Err(SiteError::invalid(
            "instances",
            format!("VM {vm} has no complete instance at this site yet"),
        ));
    };
    let listed = || {
        let ids: Vec<String> = kept.iter().map(|k| k.instance.to_string()).collect();
        ids.join(", ")
    };
    let found = match (id, at_ms) {
        (Some(id), _) => {
            let number: u64 = id.parse().map_err(|_| {
                SiteError::invalid(
                    "instances",
                    format!("VM {vm}: instance {id:?} is not an instance id (a number)"),
                )
            })?;
            if number > newest.instance {
                return Err(SiteError::invalid(
                    "instances",
                    format!(
                        "VM {vm}: instance {number} does not exist yet: the newest is {}",
                        newest.instance
                    ),
                ));
            }
            kept.iter().find(|k| k.instance == number).ok_or_else(|| {
                SiteError::invalid(
                    "instances",
                    format!(
                        "VM {vm}: instance {number} is not kept (pruned by retention, or never kept); kept: {}",
                        listed()
                    ),
                )
            })?
        }
        (None, Some(at)) => {
            if at > now_ms {
                return Err(SiteError::invalid(
                    "at_ms",
                    format!(
                        "{at} is in the future (now is {now_ms}): no instance can be from then"
                    ),
                ));
            }
            kept.iter().find(|k| k.point_time_ms <= at).ok_or_else(|| {
                let oldest = kept.last().map_or(0, |k| k.point_time_ms);
                SiteError::invalid(
                    "at_ms",
                    format!(
                        "VM {vm} keeps no instance at or before {at}: its oldest is from {oldest}"
                    ),
                )
            })?
        }
        (None, None) => return Ok(None),
    };
    Ok(Some(ChosenInstance {
        instance: found.instance,
        point_time_ms: found.point_time_ms,
        newest_point_ms: newest.point_time_ms,
    }))
}

impl Site {
    /// The kept instances of the replica of `vm_id` held here, newest
    /// first, read without holding the replica (a cycle may run meanwhile).
    async fn kept_instances(&self, vm_id: &str) -> Result<Vec<KeptInstance>, SiteError> {
        let missing =
            || SiteError::NotFound(format!("no replica of {vm_id:?} at site {}", self.name));
        let datastore = self.replica_datastore(vm_id).ok_or_else(missing)?;
        let dir = self
            .replications
            .receiver
            .replica_dir(&datastore, vm_id)
            .map_err(|e| SiteError::invalid("vm_id", e.to_string()))?;
        tokio::task::spawn_blocking(move || {
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
        })
    }

    /// `GET /vms/{id}/instances`.
    pub async fn instances(&self, vm_id: &str) -> Result<Vec<InstanceInfo>, SiteError> {
        Ok(describe(&self.kept_instances(vm_id).await?))
    }

    /// The instance each VM of a run recovers, where the request chose one:
    /// by id per VM (`instances`) or by time for the plan (`at_ms`).
    pub(crate) async fn choose_instances(
        &self,
        request: &RunRequest,
        vms: &[(String, String)],
    ) -> Result<BTreeMap<String, ChosenInstance>, SiteError> {
        if let Some(unknown) = request
            .instances
            .keys()
            .find(|id| !vms.iter().any(|(v, _)| v == *id))
        {
            return Err(SiteError::invalid(
                "instances",
                format!("VM {unknown:?} is not in this plan"),
            ));
        }
        if (request.at_ms.is_some() || !request.instances.is_empty())
            && request.mode != RunMode::Test
        {
            return Err(SiteError::invalid(
                "instances",
                "only a test run can start at a chosen instance; other runs recover the newest",
            ));
        }
        let mut chosen = BTreeMap::new();
        for (vm_id, name) in vms {
            let id = request.instances.get(vm_id).map(String::as_str);
            if id.is_none() && request.at_ms.is_none() {
                continue;
            }
            let kept = self.kept_instances(vm_id).await?;
            if let Some(c) = choose(name, &kept, id, request.at_ms, now_ms())? {
                chosen.insert(vm_id.clone(), c);
            }
        }
        Ok(chosen)
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
