//! Snapshots of the run view (a prompt waiting; a step's sub-steps), the
//! history view and the typed-name dialog at 80x24 and 160x48, on the
//! pinned runs of `model::runs::fixture`.

use ferry_api::types::RunMode;

use crate::app::fixture;
use crate::app::{Action, App, View};
use crate::model::runs::fixture as runs;
use crate::ui::testing::render_to_string as render;

fn app() -> App {
    let mut app = fixture::app(false);
    if let Some(p) = app.model.sites[1].protection.plans.get_mut("plan-tier-1") {
        p.allowed = vec![RunMode::DisasterRecovery];
    }
    for update in runs::feed() {
        app.feed(update);
    }
    app
}

#[test]
fn run_and_history_views_at_both_sizes() {
    let mut dr = vec![
        Action::Show(View::Plans),
        Action::StartRun(RunMode::DisasterRecovery),
    ];
    dr.extend("Tier".chars().map(Action::Type));
    let steps: Vec<(&str, Vec<Action>)> = vec![
        (
            "run_prompt",
            vec![Action::Show(View::Plans), Action::OpenRun],
        ),
        (
            "run_substeps",
            vec![
                Action::Show(View::Plans),
                Action::OpenRun,
                Action::Back,
                Action::Down,
                Action::Down,
                Action::Down,
            ],
        ),
        (
            "run_finished",
            vec![Action::Show(View::History), Action::Down, Action::Open],
        ),
        ("history", vec![Action::Show(View::History)]),
        (
            "plans_run_help",
            vec![Action::Show(View::Plans), Action::OpenHelp],
        ),
        ("run_type_name", dr),
    ];
    for (width, height) in [(80u16, 24u16), (160, 48)] {
        for (name, actions) in &steps {
            let mut app = app();
            for action in actions {
                app.update(action.clone());
            }
            insta::assert_snapshot!(
                format!("{name}_{width}x{height}"),
                render(&app, width, height)
            );
        }
    }
}

/// The home screen on the same runs, a test of Tier-1 before them (its RTO
/// is the estimate), and two alarms, the older one acknowledged.
#[test]
fn home_at_both_sizes() {
    use ferry_api::types::{EventRow, RunState, SiteEvent};
    for (width, height) in [(80u16, 24u16), (160, 48)] {
        let mut app = app();
        let mut test = runs::finished();
        test.id = "run-6".into();
        test.mode = RunMode::Test;
        test.state = RunState::Succeeded;
        test.started_ms -= 86_400_000;
        test.ended_ms = Some(test.started_ms + 40_000);
        test.rto_seconds = Some(38.0);
        app.feed(crate::model::FeedUpdate::Event {
            site: 1,
            event: SiteEvent::Run(test),
        });
        for (id, severity, message) in [
            (1, "warning", "db-02: RPO at risk"),
            (
                2,
                "critical",
                "peer site site-b is unreachable: connection refused",
            ),
        ] {
            app.feed(crate::model::FeedUpdate::Event {
                site: 0,
                event: SiteEvent::Alarm(EventRow {
                    id,
                    at_ms: fixture::T0 - 60_000 + id as u64 * 1000,
                    kind: "test".into(),
                    severity: severity.into(),
                    vm_id: None,
                    message: message.into(),
                    acked: None,
                }),
            });
        }
        app.update(Action::Show(View::Home));
        app.update(Action::Down);
        // The key asks site-a; its event marks the alarm acknowledged.
        let Some(crate::app::Effect::Post { site: 0, call, .. }) = app.update(Action::AckAlarm)
        else {
            panic!("the ack goes to site-a")
        };
        assert_eq!(call, ferry_api::Call::AckAlarm { id: 1 });
        app.feed(crate::model::FeedUpdate::Event {
            site: 0,
            event: SiteEvent::Alarm(EventRow {
                id: 1,
                at_ms: fixture::T0 - 60_000 + 1000,
                kind: "test".into(),
                severity: "warning".into(),
                vm_id: None,
                message: "db-02: RPO at risk".into(),
                acked: Some(ferry_api::types::Ack {
                    by: "ops".into(),
                    at_ms: fixture::T0 - 30_000,
                }),
            }),
        });
        insta::assert_snapshot!(
            format!("home_{width}x{height}"),
            render(&app, width, height)
        );
    }
}

/// A VM a finished recovery brought up at site-b: its old replication
/// reads as recovered there, with the run, not as failing, as the sites
/// say; dashboard counts leave it out. Site-b's word on a VM it recovered
/// counts too while site-a has not said it (down, or not yet heard).
#[test]
fn a_recovered_vm_reads_as_recovered_not_violated() {
    use ferry_api::types::{Lifecycle, SiteEvent};
    let mut app = app();
    let all = app.model.sites[0].replications.len();
    for r in app.model.sites[0].replications.values_mut() {
        r.state = "error".into();
        r.rpo_violated = true;
    }
    // Site-a says db-01's replication ended: recovered at site-b by run-7.
    let mut db1 = app.model.sites[0].replications["site-a.db-01"].clone();
    db1.state = "ended".into();
    db1.rpo_violated = false;
    db1.lifecycle = Lifecycle::RecoveredAt {
        site: "site-b".into(),
        run_id: Some("run-7".into()),
    };
    app.feed(crate::model::FeedUpdate::Event {
        site: 0,
        event: SiteEvent::Replication(db1),
    });
    app.update(Action::Show(View::Replication));
    let screen = render(&app, 160, 48);
    let line = |screen: &str, vm: &str| {
        screen
            .lines()
            .find(|l| l.contains(&format!("{vm} ")))
            .unwrap_or_default()
            .to_string()
    };
    let db1 = line(&screen, "db-01");
    assert!(
        db1.contains("⇥ recovered at site-b (run-7)") && !db1.contains("violated"),
        "{db1}"
    );
    assert!(!db1.contains("error"), "{db1}");
    let db2 = line(&screen, "db-02");
    assert!(db2.contains("✖ error") && db2.contains("violated"), "{db2}");
    assert_eq!(
        app.model.protected_count(0),
        all - 1,
        "db-01 is not protected at site-a now"
    );
    let [ok, risk, violated, pending] = app.model.compliance_counts(0, app.now_ms);
    assert_eq!(ok + risk + violated + pending, all - 1);
    // Site-b says it recovered db-02: that is the truth the screen shows.
    let vm = ferry_api::types::VmInfo {
        id: "site-a.db-02".into(),
        name: "db-02".into(),
        folder: "Databases".into(),
        resource_pool: "Gold".into(),
        power_state: ferry_api::types::PowerState::On,
        nics: Vec::new(),
        disks: Vec::new(),
        guest: None,
        replicated: false,
        compute: Default::default(),
        memory_mib: 128,
        vcpus: 1,
        pid: None,
        accelerator: None,
        problem: None,
        console_tail: None,
        lifecycle: Lifecycle::Recovered {
            from_site: "site-a".into(),
            run_id: Some("run-7".into()),
        },
    };
    app.feed(crate::model::FeedUpdate::Event {
        site: 1,
        event: SiteEvent::Vm(vm),
    });
    let screen = render(&app, 160, 48);
    let db2 = line(&screen, "db-02");
    assert!(db2.contains("⇥ recovered at site-b (run-7)"), "{db2}");
    assert_eq!(app.model.protected_count(0), all - 2);
}
