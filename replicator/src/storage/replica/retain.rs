//! A replica's retention: the policy kept in its `history` file, applied
//! after every consolidation, and what it dropped, in words an alarm can
//! carry (history never shrinks silently).

use std::io;

use ferry_api::retention::{Point, RetentionPolicy, over_budget};
use serde::{Deserialize, Serialize};

use super::super::durable;
use super::super::fs as layer_fs;
use super::Replica;
use super::history::{HISTORY_FILE, InstanceError};

/// The `history` file: the policy and the bytes its older instances may use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    pub policy: RetentionPolicy,
    /// Bytes this replica's older instances may take on its datastore.
    pub budget_bytes: Option<u64>,
}

/// Why an instance was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PruneReason {
    /// The policy no longer keeps it.
    Policy,
    /// The budget forced it out although the policy keeps it.
    Budget(u64),
}

/// One dropped instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub instance: u64,
    pub point_time_ms: u64,
    pub reason: PruneReason,
}

/// The alarm for instances a budget forced out beyond the policy; `None`
/// when the policy alone dropped them (what it was set to do).
pub fn budget_alarm(vm: &str, pruned: &[Pruned]) -> Option<String> {
    let forced: Vec<&Pruned> = pruned
        .iter()
        .filter(|p| matches!(p.reason, PruneReason::Budget(_)))
        .collect();
    let budget = forced.iter().find_map(|p| match p.reason {
        PruneReason::Budget(b) => Some(b),
        PruneReason::Policy => None,
    })?;
    let points: Vec<String> = forced
        .iter()
        .map(|p| format!("{} (point {} ms)", p.instance, p.point_time_ms))
        .collect();
    Some(format!(
        "VM {vm}: instances {} dropped although the retention policy keeps them: their history exceeds the budget of {budget} bytes on its datastore",
        points.join(", ")
    ))
}

impl Replica {
    /// The retention in the `history` file: newest only without the file;
    /// `None` when the file holds no readable policy (then nothing is
    /// pruned).
    pub fn retention(&self) -> Option<Retention> {
        match layer_fs::read_all(&*self.layer, &self.dir.join(HISTORY_FILE)) {
            Ok(bytes) => serde_json::from_slice(&bytes).ok(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Some(Retention::default()),
            Err(_) => None,
        }
    }

    /// Sets the retention durably; the newest-only policy turns keeping
    /// off (instances already kept go at the next [`Replica::retain`]).
    pub fn set_retention(&mut self, retention: Retention) -> io::Result<()> {
        let path = self.dir.join(HISTORY_FILE);
        if retention.policy.newest_only() {
            durable::remove_durably_in(&*self.layer, &path)?;
            self.history = false;
            return Ok(());
        }
        let text = serde_json::to_vec(&retention).map_err(io::Error::other)?;
        durable::write_atomic_in(&*self.layer, &path, &text)?;
        self.history = true;
        Ok(())
    }

    /// Drops what the retention no longer keeps at `now_ms`, then, oldest
    /// first, what the budget cannot hold. Each drop is crash-safe alone.
    pub fn retain(&mut self, now_ms: u64) -> Result<Vec<Pruned>, InstanceError> {
        // Without a readable policy nothing is dropped: history never
        // shrinks for want of a rule.
        let Some(retention) = self.retention() else {
            return Ok(Vec::new());
        };
        let kept = self.kept()?;
        if kept.len() < 2 {
            return Ok(Vec::new());
        }
        let points: Vec<Point> = kept
            .iter()
            .map(|k| Point {
                instance: k.instance,
                point_time_ms: k.point_time_ms,
                bytes: if Some(k.instance) == self.state.instance {
                    0
                } else {
                    self.layer
                        .open(&self.undo_path(k.instance), super::super::fs::Open::Read)
                        .and_then(|f| f.size())
                        .unwrap_or(0)
                },
            })
            .collect();
        let expired = retention.policy.expired(&points, now_ms);
        let left: Vec<Point> = points
            .iter()
            .filter(|p| !expired.contains(&p.instance))
            .copied()
            .collect();
        let mut pruned: Vec<Pruned> = expired
            .iter()
            .map(|&instance| Pruned {
                instance,
                point_time_ms: point_of(&points, instance),
                reason: PruneReason::Policy,
            })
            .collect();
        if let Some(budget) = retention.budget_bytes {
            for instance in over_budget(&left, budget) {
                pruned.push(Pruned {
                    instance,
                    point_time_ms: point_of(&points, instance),
                    reason: PruneReason::Budget(budget),
                });
            }
        }
        // Oldest first: the oldest kept instance goes by removing its undo
        // file alone, where a middle one is merged into its neighbour.
        pruned.sort_by_key(|p| p.instance);
        for p in &pruned {
            self.prune(p.instance)?;
        }
        Ok(pruned)
    }
}

fn point_of(points: &[Point], instance: u64) -> u64 {
    points
        .iter()
        .find(|p| p.instance == instance)
        .map_or(0, |p| p.point_time_ms)
}
