//! Snapshot tests of every view, rendered to ratatui's `TestBackend` at
//! 80x24 and 160x48. The live views render `fixtures/live_pair.json`: what
//! two real sites replicating three VMs said over the API, with what changes
//! from run to run (times, sizes, ports) pinned; heartbeats are left out.

use std::time::Instant;

use ferry_api::types::{EventRow, ReplicationInfo, SiteInfo, VmInfo};
use serde::Deserialize;

use crate::app::{Action, App};
use crate::model::{FeedUpdate, Model, SiteState};
use crate::theme::Theme;
use crate::ui::testing::render_to_string as render;

/// The pinned clock of the fixture.
const T0: u64 = 1_795_000_000_000;

#[derive(Deserialize)]
struct LivePair {
    site_a: SiteA,
    site_b: SiteB,
}

#[derive(Deserialize)]
struct SiteA {
    info: SiteInfo,
    replications: Vec<ReplicationInfo>,
    alarms: Vec<EventRow>,
    vms: Vec<VmInfo>,
}

#[derive(Deserialize)]
struct SiteB {
    info: SiteInfo,
}

#[test]
fn every_view_at_both_sizes() {
    let pair: LivePair = serde_json::from_str(include_str!("fixtures/live_pair.json")).unwrap();
    let (info_a, reps_a, alarms, vms_a) = (
        pair.site_a.info,
        pair.site_a.replications,
        pair.site_a.alarms,
        pair.site_a.vms,
    );
    let info_b = pair.site_b.info;
    let now = Instant::now();
    let mut model = Model::new(vec![
        SiteState::new("a", "http://127.0.0.1:47800"),
        SiteState::new("b", "http://127.0.0.1:47802"),
    ]);
    model.apply(
        FeedUpdate::Snapshot {
            site: 0,
            info: info_a,
            replications: reps_a,
            alarms,
            vms: vms_a,
        },
        now,
    );
    model.apply(
        FeedUpdate::Snapshot {
            site: 1,
            info: info_b,
            replications: vec![],
            alarms: vec![],
            vms: vec![],
        },
        now,
    );
    let theme = Theme::load("dark", std::path::Path::new("/nonexistent")).unwrap();
    let mut app = App::new(model, theme, false, false);
    app.now_ms = T0;
    app.now = now;

    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT");
    settings.bind(|| {
        for (width, height) in [(80u16, 24u16), (160, 48)] {
            for (view, keys) in [
                // Shown, not assumed: the previous size's loop ends on
                // another view.
                ("home", vec![Action::Show(crate::app::View::Home)]),
                (
                    "replication",
                    vec![Action::Show(crate::app::View::Replication)],
                ),
                ("dashboard", vec![Action::Show(crate::app::View::Dashboard)]),
                ("events", vec![Action::Show(crate::app::View::Events)]),
                (
                    "help",
                    vec![
                        Action::Show(crate::app::View::Replication),
                        Action::OpenHelp,
                    ],
                ),
                ("detail", vec![Action::Back, Action::Down, Action::Open]),
                (
                    "palette",
                    vec![Action::Back, Action::OpenPalette, Action::Type('e')],
                ),
            ] {
                for key in keys {
                    app.update(key);
                }
                insta::assert_snapshot!(
                    format!("{view}_{width}x{height}"),
                    render(&app, width, height)
                );
                if view == "detail" {
                    // The timeline as site b would list it after a demo
                    // attack: the cursor starts on the clean point.
                    app.timeline.site = Some(1);
                    let vm_id = app.timeline.vm_id.clone();
                    app.instances_replied(&vm_id, Ok(attacked_instances()));
                    assert_eq!(app.timeline.selected().map(|i| i.id.as_str()), Some("37"));
                    insta::assert_snapshot!(
                        format!("timeline_{width}x{height}"),
                        render(&app, width, height)
                    );
                }
            }
            app.update(Action::Back);
        }
    });
}

/// Twelve instances 15 s apart, newest first: the attack's alarm at the
/// third newest, the one after it the recommended clean point.
fn attacked_instances() -> Vec<ferry_api::types::InstanceInfo> {
    use ferry_api::types::{InstanceInfo, InstanceScore};
    (0..12u64)
        .map(|k| {
            let attacked = k < 3;
            let (rate, share) = if attacked {
                (6_710_886.0, 1.0)
            } else {
                (11_000.0 + k as f64 * 10.0, 0.5)
            };
            InstanceInfo {
                id: (40 - k).to_string(),
                point_time_ms: T0 - k * 15_000,
                bytes_changed: Some((rate * 15.0) as u64),
                score: Some(InstanceScore {
                    rate,
                    encrypted_share: share,
                    baseline_rate: 10_500.0,
                    baseline_share: 0.6,
                    jump: k == 2,
                }),
                suspicious: attacked,
                recommended: k == 3,
            }
        })
        .collect()
}

/// Each editor and its dialogs on the pinned pair of `editor::fixture`
/// (no sites needed: every value is fixed).
#[test]
fn every_editor_at_both_sizes() {
    use crate::app::View;
    use crate::app::fixture;
    use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

    let typed = |text: &str| text.chars().map(Action::Type).collect::<Vec<_>>();
    let key = |c: char| Action::Input(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
    let mut bad_rule = vec![
        Action::Show(View::Mappings),
        Action::Bottom,
        Action::Up,
        Action::Open,
    ];
    bad_rule.extend(typed("10.10.2.0/24"));
    bad_rule.extend([Action::Complete, Action::Complete]);
    bad_rule.extend(typed("10.20.2.0/24"));
    bad_rule.push(Action::Complete);
    bad_rule.extend(typed("10.99.9.1"));
    bad_rule.push(Action::Open);
    let mut callouts = vec![Action::Show(View::Plans), Action::Open, Action::Callouts];
    callouts.extend("pre command 120s: /opt/dr/check-db".chars().map(key));
    let steps: Vec<(&str, Vec<Action>)> = vec![
        (
            "mappings",
            vec![Action::Show(View::Mappings), Action::Down, Action::Down],
        ),
        (
            "mappings_target",
            vec![
                Action::Show(View::Mappings),
                Action::Down,
                Action::Down,
                Action::Open,
            ],
        ),
        ("mappings_rule_error", bad_rule),
        ("groups", vec![Action::Show(View::Groups)]),
        (
            "group_editor",
            vec![
                Action::Show(View::Groups),
                Action::Open,
                Action::Down,
                Action::Down,
                Action::Toggle,
            ],
        ),
        ("plans", vec![Action::Show(View::Plans)]),
        (
            "plan_editor",
            vec![
                Action::Show(View::Plans),
                Action::Open,
                Action::Down,
                Action::Lower,
            ],
        ),
        (
            "plan_depends",
            vec![Action::Show(View::Plans), Action::Open, Action::Depends],
        ),
        ("plan_callouts", callouts),
        (
            "plan_leave",
            vec![
                Action::Show(View::Plans),
                Action::Open,
                Action::TogglePower,
                Action::Back,
            ],
        ),
        (
            "editor_help",
            vec![Action::Show(View::Plans), Action::Open, Action::OpenHelp],
        ),
    ];
    for (width, height) in [(80u16, 24u16), (160, 48)] {
        for (name, actions) in &steps {
            let mut app = fixture::app(false);
            for action in actions {
                app.update(action.clone());
            }
            insta::assert_snapshot!(
                format!("{name}_{width}x{height}"),
                render(&app, width, height)
            );
        }
    }
    let mut app = fixture::app(true);
    app.update(Action::Show(View::Plans));
    insta::assert_snapshot!("plans_read_only_80x24", render(&app, 80, 24));
}

#[test]
fn an_opened_alarm_shows_in_full() {
    use crate::app::fixture;
    let mut app = fixture::app(false);
    fixture::alarm(&mut app, 1, "critical", "db-01: RPO violated");
    fixture::alarm(&mut app, 2, "info", "db-01: RPO met again");
    for action in [
        Action::Show(crate::app::View::Events),
        Action::Down,
        Action::Open,
    ] {
        app.update(action);
    }
    let screen = render(&app, 80, 24);
    for shown in ["Event", "db-01: RPO violated", "critical", "UTC"] {
        assert!(screen.contains(shown), "{shown} missing:\n{screen}");
    }
}
