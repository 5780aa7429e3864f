//! Fixtures for tests and benchmarks, and the model's own tests.

#[cfg(test)]
use std::time::Duration;

use super::*;
use ferry_api::types::LastSyncInfo;

pub fn replication(vm: &str, rpo: u64, point_age_ms: Option<u64>, now_ms: u64) -> ReplicationInfo {
    ReplicationInfo {
        vm: vm.to_string(),
        vm_id: format!("site-a.{vm}"),
        source_site: "site-a".into(),
        target_site: Some("site-b".into()),
        state: "ok".into(),
        rpo_seconds: rpo,
        lag_seconds: point_age_ms.map(|a| a as f64 / 1000.0),
        rpo_violated: false,
        progress: None,
        last_sync: point_age_ms.map(|_| LastSyncInfo {
            finished_at: now_ms,
            duration_ms: 20,
            bytes: 1 << 20,
            full: false,
            instance: 3,
        }),
        point_time_ms: point_age_ms.map(|a| now_ms - a),
        datastore: "ds1".into(),
        compress: false,
        paused: false,
        last_error: None,
        lifecycle: ferry_api::types::Lifecycle::Protected,
        retention: Default::default(),
    }
}

#[test]
fn a_site_going_down_keeps_its_rows_and_marks_them_stale() {
    let t0 = Instant::now();
    let mut model = Model::new(vec![
        SiteState::new("a", "http://a"),
        SiteState::new("b", "http://b"),
    ]);
    let info = SiteInfo {
        name: "site-a".into(),
        role: ferry_api::types::Role::Admin,
        peer: None,
        vm_count: 1,
        replicated_count: 1,
        fingerprint: None,
        replication: None,
    };
    assert!(model.apply(
        FeedUpdate::Snapshot {
            site: 0,
            info,
            replications: vec![replication("db", 15, Some(1000), 5000)],
            alarms: vec![],
            vms: vec![],
        },
        t0
    ));
    assert_eq!(model.sites[0].stale_for(t0), None);
    model.apply(
        FeedUpdate::Down {
            site: 0,
            error: "connection refused".into(),
        },
        t0 + Duration::from_secs(1),
    );
    assert_eq!(model.sites[0].replications.len(), 1, "last-known rows stay");
    assert_eq!(
        model.sites[0].stale_for(t0 + Duration::from_secs(7)),
        Some(Duration::from_secs(7))
    );
}

#[cfg(test)]
mod protection_tests {
    use super::*;
    use crate::editor::fixture;

    #[test]
    fn the_owners_copy_wins_and_events_keep_it_current() {
        let mut model = fixture::model();
        // site-a holds a newer-looking mirror; site-b owns the group.
        let mut mirror = fixture::group();
        mirror.name = "stale mirror".into();
        mirror.updated_ms += 1_000;
        model.sites[0]
            .protection
            .groups
            .insert(mirror.id.clone(), mirror);
        assert_eq!(model.groups()[0].name, "Databases");
        let mut renamed = fixture::group();
        renamed.name = "DBs".into();
        let now = Instant::now();
        let event = |event| FeedUpdate::Event { site: 1, event };
        assert!(model.apply(event(SiteEvent::Group(renamed)), now));
        assert_eq!(model.group("pg-databases").unwrap().name, "DBs");
        let removed = SiteEvent::PlanRemoved {
            id: "plan-tier-1".into(),
        };
        assert!(model.apply(event(removed), now));
        assert!(model.plan("plan-tier-1").is_some(), "site-a's mirror stays");
        model.removed(&ferry_api::Call::DeletePlan {
            id: "plan-tier-1".into(),
        });
        assert!(model.plans().is_empty());
        assert!(model.mappings("site-a", "site-b").is_some());
        assert_eq!(model.vm_name("site-a.db-02"), "db-02");
    }
}
