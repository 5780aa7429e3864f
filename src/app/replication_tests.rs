//! The replication view's state: selection, sorting, filtering, details.

use super::*;
use crate::model::SiteState;
use crate::model::tests::replication;
use ferry_api::types::SiteInfo;

fn app(read_only: bool) -> App {
    let mut model = Model::new(vec![SiteState::new("a", "http://a")]);
    let now = 1_000_000;
    model.apply(
        FeedUpdate::Snapshot {
            site: 0,
            info: SiteInfo {
                name: "site-a".into(),
                role: ferry_api::types::Role::Admin,
                peer: None,
                vm_count: 3,
                replicated_count: 3,
                fingerprint: None,
                replication: None,
            },
            replications: vec![
                replication("web-01", 300, Some(10_000), now),
                replication("db-01", 15, Some(20_000), now),
                replication("app-01", 60, Some(50_000), now),
            ],
            alarms: vec![],
            vms: vec![],
        },
        Instant::now(),
    );
    let theme = crate::theme::Theme::load("dark", std::path::Path::new("/none")).unwrap();
    let mut app = App::new(model, theme, read_only, false);
    app.now_ms = now;
    app.view = View::Replication;
    app
}

fn names(app: &App) -> Vec<String> {
    app.rows().iter().map(|(_, r)| r.vm.clone()).collect()
}

#[test]
fn filter_sort_and_select() {
    let mut app = app(false);
    assert_eq!(names(&app), ["app-01", "db-01", "web-01"]);
    app.update(Action::OpenFilter);
    for c in "viol".chars() {
        app.update(Action::Type(c));
    }
    assert_eq!(names(&app), ["db-01"], "filter by compliance word");
    app.update(Action::Back);
    assert_eq!(app.rows().len(), 3);
    for _ in 0..4 {
        app.update(Action::SortNext); // Vm → Direction → State → Rpo → Lag
    }
    assert_eq!(app.sort, Column::Lag);
    app.update(Action::SortReverse);
    assert_eq!(names(&app), ["app-01", "db-01", "web-01"]);
    app.update(Action::Bottom);
    assert_eq!(app.selected, 2);
    app.update(Action::Down);
    assert_eq!(app.selected, 2, "stays on the last row");
}

#[test]
fn palette_completes_and_switches_views() {
    let mut app = app(false);
    app.update(Action::OpenPalette);
    app.update(Action::Type('e'));
    app.update(Action::Complete);
    assert_eq!(app.overlay, Overlay::Palette("events".into()));
    app.update(Action::Open);
    assert_eq!((app.view, &app.overlay), (View::Events, &Overlay::None));
    app.update(Action::OpenPalette);
    app.update(Action::Type('x'));
    app.update(Action::Open);
    assert!(
        app.status
            .as_deref()
            .unwrap_or("")
            .contains("no command :x")
    );
    app.update(Action::Quit);
    assert!(app.quit);
}

#[test]
fn read_only_refuses_actions_in_one_place() {
    let mut app = app(true);
    assert_eq!(app.update(Action::SyncNow), None);
    assert!(app.status.as_deref().unwrap_or("").contains("read-only"));
    assert!(!app.keys().iter().any(|(_, what)| *what == "sync now"));
    let mut app = self::app(false);
    let Some(Effect::Post { site, call, .. }) = app.update(Action::SyncNow) else {
        panic!("sync now posts to the replication's site");
    };
    assert_eq!(
        (site, call.path().as_str()),
        (0, "/replications/site-a.app-01/sync")
    );
}

#[test]
fn the_selection_follows_its_vm_through_resorts_and_updates() {
    let mut app = app(false);
    for _ in 0..4 {
        app.update(Action::SortNext);
    }
    assert_eq!(app.sort, Column::Lag);
    assert_eq!(names(&app), ["web-01", "db-01", "app-01"]);
    app.update(Action::Down);
    assert_eq!(app.cursor(), 1, "on db-01");
    // db-01 syncs: its lag drops and it moves to the top of the list.
    let now = app.now_ms;
    app.feed(FeedUpdate::Event {
        site: 0,
        event: ferry_api::types::SiteEvent::Replication(replication("db-01", 15, Some(1_000), now)),
    });
    assert_eq!(names(&app), ["db-01", "web-01", "app-01"]);
    assert_eq!(app.cursor(), 0, "the cursor moved with db-01");
    // The key acts on db-01, named now and in the result.
    let effect = app.update(Action::TogglePause);
    assert_eq!(
        effect,
        Some(Effect::Post {
            site: 0,
            call: Call::Replication {
                vm_id: "site-a.db-01".into(),
                verb: ReplicationVerb::Pause,
            },
            vm: "db-01".into(),
        })
    );
    assert_eq!(app.status.as_deref(), Some("pausing db-01…"));
    // Reversing the sort keeps it on db-01 too; a filter that hides it
    // leaves the cursor on a row, and clearing the filter finds it again.
    app.update(Action::SortReverse);
    assert_eq!(names(&app)[app.cursor()], "db-01");
    app.update(Action::OpenFilter);
    app.update(Action::Type('w'));
    assert_eq!(names(&app), ["web-01"]);
    assert_eq!(app.cursor(), 0);
    app.update(Action::Back);
    assert_eq!(names(&app)[app.cursor()], "db-01");
}

#[test]
fn the_palette_runs_the_single_command_begun() {
    let mut app = app(false);
    app.update(Action::OpenPalette);
    app.update(Action::Type('p'));
    app.update(Action::Open);
    assert_eq!(
        app.view,
        View::Plans,
        ":p is :plans, the one command it begins"
    );
    app.update(Action::OpenPalette);
    for c in "he".chars() {
        app.update(Action::Type(c));
    }
    app.update(Action::Open);
    assert_eq!(app.overlay, Overlay::Help, ":he is :help");
    app.update(Action::Back);
    app.update(Action::OpenPalette);
    for c in "re".chars() {
        app.update(Action::Type(c));
    }
    app.update(Action::Open);
    assert_eq!(
        app.view,
        View::Plans,
        ":re begins :replication and :reprotect"
    );
    assert!(
        app.status
            .as_deref()
            .unwrap_or("")
            .contains("no command :re")
    );
}

#[test]
fn keys_while_typing_are_text_not_commands() {
    let mut app = app(false);
    app.update(Action::OpenFilter);
    app.update(Action::Quit);
    assert!(!app.quit, "q while filtering is not quit");
}

#[test]
fn an_ended_replication_is_offered_no_sync_or_pause_and_says_why() {
    let mut ended = replication("app-01", 60, Some(50_000), 1_000_000);
    ended.lifecycle = ferry_api::types::Lifecycle::RecoveredAt {
        site: "site-b".into(),
        run_id: Some("run-7".into()),
    };
    let mut app = app(false);
    app.feed(FeedUpdate::Event {
        site: 0,
        event: ferry_api::types::SiteEvent::Replication(ended),
    });
    // app-01 is the first row by name.
    assert_eq!(app.selected_replication().unwrap().1.vm, "app-01");
    assert!(!app.keys().iter().any(|(_, what)| *what == "sync now"));
    assert_eq!(app.update(Action::SyncNow), None);
    assert_eq!(
        app.status.as_deref(),
        Some("app-01: replication ended, the VM is recovered at site-b (run-7)")
    );
    assert_eq!(app.update(Action::TogglePause), None);
    app.update(Action::Down);
    assert!(app.keys().iter().any(|(_, what)| *what == "sync now"));
}

#[test]
fn the_detail_pane_offers_the_demo_attack_to_admins_and_says_where_instances_are_missing() {
    let mut app = app(false);
    // db-01's replica is at a site this TUI does not know: nothing is
    // asked, and the pane says why there is no timeline.
    let opened = app.update(Action::Bottom).and(app.update(Action::Open));
    assert_eq!(opened, None);
    let vm_id = app.timeline.vm_id.clone();
    assert!(matches!(app.timeline.instances, Some(Err(ref e)) if e.contains("not one of")));
    assert!(app.keys().contains(&("A", "demo attack")));
    assert!(!app.keys().contains(&("t", "test at instance")));
    let Some(Effect::Post { site, call, .. }) = app.update(Action::Attack) else {
        panic!("the attack was not sent");
    };
    assert_eq!(site, 0);
    assert_eq!(call, Call::SimulateAttack { vm_id });
    // With no instance listed, a test at one is refused, saying so.
    assert_eq!(
        app.update(Action::StartRun(ferry_api::types::RunMode::Test)),
        None
    );
    assert!(
        app.status
            .as_deref()
            .is_some_and(|s| s.contains("no instance"))
    );

    let mut viewer = super::replication_tests::app(true);
    viewer.update(Action::Open);
    assert_eq!(viewer.update(Action::Attack), None);
    assert!(!viewer.keys().contains(&("A", "demo attack")));
}
