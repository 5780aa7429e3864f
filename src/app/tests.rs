//! The editors as a state machine: keys in, drafts, dialogs and requests
//! out, replies back; on the pinned pair of `editor::fixture`.

use ferry_api::types::{ErrorBody, GroupSpec, MappingSpec, PlanSpec};
use serde_json::json;

use super::{Action, App, Editor, Effect, Leave, Popup, View};
use crate::app::fixture::{alarm, app};
use crate::editor::fixture;
use crate::editor::mappings::Row;
use crate::editor::{Method, Purpose, Reply, Request};

fn run(app: &mut App, actions: impl IntoIterator<Item = Action>) -> Vec<Effect> {
    actions.into_iter().filter_map(|a| app.update(a)).collect()
}

fn typed(text: &str) -> Vec<Action> {
    text.chars().map(Action::Type).collect()
}

fn sent(effects: &[Effect]) -> Vec<Request> {
    effects
        .iter()
        .flat_map(|e| match e {
            Effect::Send(requests) => requests.clone(),
            _ => Vec::new(),
        })
        .collect()
}

fn plan_editor(app: &App) -> &crate::editor::plans::PlanEditor {
    match &app.editor {
        Some(Editor::Plan(p)) => p,
        other => panic!("no plan editor: {other:?}"),
    }
}

#[test]
fn mappings_pick_a_target_and_save_to_the_recovery_site() {
    let mut app = app(false);
    run(&mut app, [Action::Show(View::Mappings)]);
    let rows = app.mapping_rows(0);
    let web = rows
        .iter()
        .position(|r| matches!(r, Row::Pair { source, .. } if source == "prod-web"))
        .unwrap();
    for _ in 0..web {
        app.update(Action::Down);
    }
    run(&mut app, [Action::Open]);
    let Some(Popup::Picker(picker)) = &app.popup else {
        panic!("no picker: {:?}", app.popup)
    };
    let labels: Vec<&str> = picker.items.iter().map(|i| i.label.as_str()).collect();
    assert_eq!(
        labels,
        ["(unmapped)", "dr-db", "dr-app", "dr-web"],
        "no test network"
    );
    run(
        &mut app,
        [Action::Down, Action::Down, Action::Down, Action::Open],
    );
    assert!(app.popup.is_none() && app.is_dirty());
    let effects = run(&mut app, [Action::Save]);
    let requests = sent(&effects);
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(
        (r.site, r.call.method(), r.call.path().as_str()),
        (1, Method::Put, "/mappings/site-a-to-site-b")
    );
    let spec: MappingSpec = serde_json::from_value(r.call.body().unwrap()).unwrap();
    assert!(
        spec.networks
            .iter()
            .any(|p| p.source == "prod-web" && p.target == "dr-web")
    );
}

#[test]
fn invalid_ip_rules_stay_in_the_form_with_the_field_and_are_not_kept() {
    let mut app = app(false);
    run(
        &mut app,
        [
            Action::Show(View::Mappings),
            Action::Bottom,
            Action::Up,
            Action::Open,
        ],
    );
    let Some(Popup::Form(form)) = &app.popup else {
        panic!("no form: {:?}", app.popup)
    };
    assert!(form.title.contains("New IP subnet rule"));
    let mut keys = typed("10.10.2.0/24");
    keys.extend([Action::Complete, Action::Complete]);
    keys.extend(typed("10.20.2.0/24"));
    keys.push(Action::Complete);
    keys.extend(typed("10.99.9.1"));
    keys.push(Action::Open);
    run(&mut app, keys);
    let Some(Popup::Form(form)) = &app.popup else {
        panic!("the form closed on a bad gateway")
    };
    let gateway = form.fields.iter().find(|f| f.key == "to_gateway").unwrap();
    assert!(
        gateway
            .error
            .as_deref()
            .unwrap()
            .contains("outside 10.20.2.0/24"),
        "{gateway:?}"
    );
    assert!(!app.is_dirty(), "nothing kept");
    // Fix it: the rule is kept, as a change to save.
    let mut keys = vec![Action::Erase; 9];
    keys.extend(typed("10.20.2.1"));
    keys.push(Action::Open);
    run(&mut app, keys);
    assert!(app.popup.is_none(), "{:?}", app.popup);
    assert_eq!(
        app.mappings
            .spec(
                &app.model,
                &crate::editor::mappings::directions(&app.model)[0]
            )
            .ip_rules
            .len(),
        2
    );
    // The site refuses a field: the error sits on the row it names.
    run(&mut app, [Action::Save]);
    app.reply(Reply {
        purpose: Purpose::SaveMappings {
            id: "site-a-to-site-b".into(),
        },
        outcome: Err(ErrorBody {
            error: "invalid_value".into(),
            message: "overlaps".into(),
            field: Some("ip_rules[1].from_subnet".into()),
        }),
    });
    let draft = &app.mappings.drafts["site-a-to-site-b"];
    assert_eq!(draft.errors[0].0, Row::Rule(1));
    assert!(app.status.as_deref().unwrap().contains("not saved"));
}

#[test]
fn a_group_is_made_by_name_and_a_multi_select_and_saved_where_it_recovers() {
    let mut app = app(false);
    run(&mut app, [Action::Show(View::Groups), Action::New]);
    let mut keys = typed("Apps");
    keys.push(Action::Open);
    run(&mut app, keys);
    let Some(Editor::Group(g)) = &app.editor else {
        panic!("no group editor")
    };
    assert_eq!((g.name.as_str(), g.site.as_str()), ("Apps", "site-b"));
    let names: Vec<String> = g
        .candidates(&app.model)
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["app-01", "db-01", "db-02", "web-01"]);
    // db-01 is in Databases already: refused, with why.
    run(&mut app, [Action::Toggle, Action::Down, Action::Toggle]);
    assert!(
        app.status
            .as_deref()
            .unwrap()
            .contains("already in group Databases")
    );
    run(&mut app, [Action::Bottom, Action::Toggle]);
    let requests = sent(&run(&mut app, [Action::Save]));
    assert_eq!(
        (requests[0].site, requests[0].call.method()),
        (1, Method::Post)
    );
    let spec: GroupSpec = serde_json::from_value(requests[0].call.body().unwrap()).unwrap();
    assert_eq!(spec.vms, ["site-a.app-01", "site-a.web-01"]);
    let mut group = fixture::group();
    group.id = "pg-apps".into();
    group.name = "Apps".into();
    group.vms.clear();
    app.reply(Reply {
        purpose: Purpose::SaveGroup,
        outcome: Ok(serde_json::to_value(&group).unwrap()),
    });
    assert!(!app.is_dirty(), "saved");
    run(&mut app, [Action::Back]);
    assert!(app.editor.is_none());
}

#[test]
fn moving_a_vm_away_and_back_never_drops_a_dependency_silently() {
    let mut app = app(false);
    run(&mut app, [Action::Show(View::Plans), Action::Open]);
    // db-01 (which db-02 starts after) goes down a priority, then back up.
    run(&mut app, [Action::Lower]);
    assert!(
        app.status
            .as_deref()
            .unwrap()
            .contains("dropped dependencies: db-02 after db-01")
    );
    run(&mut app, [Action::Raise]);
    assert!(
        app.status
            .as_deref()
            .unwrap()
            .contains("restored dependencies: db-02 after db-01")
    );
    let db2 = plan_editor(&app)
        .spec
        .vms
        .iter()
        .find(|v| v.vm_id == "site-a.db-02")
        .unwrap();
    assert_eq!(db2.depends_on, ["site-a.db-01"]);
}

#[test]
fn plan_priorities_dependencies_and_the_live_start_order() {
    let mut app = app(false);
    run(&mut app, [Action::Show(View::Plans), Action::Open]);
    assert_eq!(plan_editor(&app).spec.name, "Tier-1");
    // db-02 (after db-01) moves to priority 2: the dependency goes, named.
    run(&mut app, [Action::Down, Action::Lower]);
    assert!(
        app.status
            .as_deref()
            .unwrap()
            .contains("dropped dependencies: db-02 after db-01")
    );
    let order = plan_editor(&app).start_order().unwrap();
    assert_eq!(order[0], ["site-a.db-01"]);
    assert_eq!(order[1], ["site-a.db-02"]);
    // Back up: the dependency the move dropped comes back, named, so `J`
    // then `K` loses nothing; db-01 after db-02 would now close a cycle.
    run(&mut app, [Action::Raise]);
    assert!(
        app.status
            .as_deref()
            .unwrap()
            .contains("restored dependencies: db-02 after db-01"),
        "{:?}",
        app.status
    );
    run(&mut app, [Action::Up, Action::Depends]);
    let Some(Popup::Picker(picker)) = &app.popup else {
        panic!("no picker")
    };
    assert_eq!(
        picker.items[0].refused.as_deref(),
        Some("would make a cycle: db-01 → db-02 → db-01")
    );
    run(&mut app, [Action::Back]);
    // Without it, db-01 after db-02 is fine, and db-02 after db-01 would
    // close a cycle: the picker refuses it with the chain.
    run(&mut app, [Action::Down, Action::Depends, Action::Toggle]);
    run(&mut app, [Action::Open, Action::Up, Action::Depends]);
    run(&mut app, [Action::Toggle, Action::Open]);
    assert_eq!(plan_editor(&app).spec.vms[0].depends_on, ["site-a.db-02"]);
    run(&mut app, [Action::Down, Action::Depends]);
    let Some(Popup::Picker(picker)) = &app.popup else {
        panic!("no picker")
    };
    assert_eq!(
        picker.items[0].refused.as_deref(),
        Some("would make a cycle: db-02 → db-01 → db-02")
    );
    run(&mut app, [Action::Back]);
    let order = plan_editor(&app).start_order().unwrap();
    assert_eq!(order[0], ["site-a.db-02", "site-a.db-01"]);
    // Power, heartbeat (a bad value stays in the form), callouts.
    run(&mut app, [Action::TogglePower, Action::Timeout]);
    let mut keys = vec![Action::Erase; 3];
    keys.extend(typed("0"));
    keys.push(Action::Open);
    run(&mut app, keys);
    assert!(matches!(&app.popup, Some(Popup::Form(f)) if f.fields[0].error.is_some()));
    let mut keys = vec![Action::Erase];
    keys.extend(typed("90"));
    keys.push(Action::Open);
    run(&mut app, keys);
    let db2 = plan_editor(&app)
        .spec
        .vms
        .iter()
        .find(|v| v.vm_id == "site-a.db-02")
        .unwrap()
        .clone();
    assert_eq!((db2.power_on, db2.heartbeat_timeout_seconds), (false, 90));
    let requests = sent(&run(&mut app, [Action::Save]));
    assert_eq!(
        (requests[0].site, requests[0].call.path().as_str()),
        (1, "/plans/plan-tier-1")
    );
    let spec: PlanSpec = serde_json::from_value(requests[0].call.body().unwrap()).unwrap();
    assert_eq!(spec.vms.len(), 2);
}

#[test]
fn callouts_are_edited_as_text_and_a_bad_line_is_named() {
    use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    let mut app = app(false);
    run(
        &mut app,
        [Action::Show(View::Plans), Action::Open, Action::Callouts],
    );
    let key = |c: char| Action::Input(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
    run(&mut app, "pre nonsense".chars().map(key));
    run(&mut app, [Action::Back]);
    let Some(Popup::Callouts { error, .. }) = &app.popup else {
        panic!("the text area closed on a bad line")
    };
    assert!(error.as_deref().unwrap().starts_with("line 1"));
    let erase = Action::Input(KeyEvent::new(KeyCode::Backspace, KeyModifiers::NONE));
    run(&mut app, std::iter::repeat_n(erase, 12));
    run(&mut app, "pre prompt: storage promoted?".chars().map(key));
    run(&mut app, [Action::Back]);
    assert!(app.popup.is_none());
    let vm = &plan_editor(&app).spec.vms[0];
    assert_eq!(vm.pre_power_on.len(), 1);
}

#[test]
fn leaving_with_unsaved_changes_asks_save_discard_or_stay() {
    let mut app = app(false);
    run(
        &mut app,
        [Action::Show(View::Plans), Action::Open, Action::TogglePower],
    );
    run(&mut app, [Action::NextView]);
    assert!(matches!(
        app.popup,
        Some(Popup::Leave(Leave::Show(View::History)))
    ));
    run(&mut app, [Action::Back]);
    assert_eq!(
        (app.view, app.popup.is_none()),
        (View::Plans, true),
        "stayed"
    );
    run(&mut app, [Action::Quit]);
    assert!(!app.quit, "asked first");
    let effects = run(&mut app, [Action::Save]);
    assert_eq!(sent(&effects).len(), 1);
    assert!(!app.quit, "quits once saved");
    let mut stored = fixture::plan();
    stored.vms[0].power_on = false;
    app.reply(Reply {
        purpose: Purpose::SavePlan,
        outcome: Ok(serde_json::to_value(&stored).unwrap()),
    });
    assert!(app.quit);
    // Discard leaves at once; a refused save stays.
    let mut app = self::app(false);
    run(
        &mut app,
        [
            Action::Show(View::Plans),
            Action::Open,
            Action::TogglePower,
            Action::Back,
            Action::Discard,
        ],
    );
    assert!(app.editor.is_none());
    run(
        &mut app,
        [
            Action::Open,
            Action::TogglePower,
            Action::Back,
            Action::Save,
        ],
    );
    app.reply(Reply {
        purpose: Purpose::SavePlan,
        outcome: Err(ErrorBody {
            error: "wrong_site".into(),
            message: "plan Tier-1 belongs to site-b".into(),
            field: None,
        }),
    });
    assert!(app.editor.is_some(), "a refused save does not leave");
    assert!(plan_editor(&app).errors[""].contains("belongs to site-b"));
}

#[test]
fn read_only_offers_and_does_no_edit() {
    let mut app = app(true);
    for view in [View::Mappings, View::Groups, View::Plans] {
        run(&mut app, [Action::Show(view)]);
        for action in [Action::Open, Action::New, Action::Delete, Action::Save] {
            assert_eq!(app.update(action.clone()), None, "{view:?} {action:?}");
            assert!(app.status.as_deref().unwrap().contains("read-only"));
            assert!(app.editor.is_none() && app.popup.is_none());
        }
        let keys: Vec<&str> = app.keys().iter().map(|(_, what)| *what).collect();
        assert!(
            !keys
                .iter()
                .any(|k| ["edit", "new", "save", "delete"].contains(k)),
            "{keys:?}"
        );
    }
}

#[test]
fn deleting_asks_and_sends_to_the_owner() {
    let mut app = app(false);
    run(&mut app, [Action::Show(View::Groups), Action::Delete]);
    assert!(matches!(&app.popup, Some(Popup::Delete { what, .. }) if what == "group Databases"));
    let requests = sent(&run(&mut app, [Action::Yes]));
    assert_eq!(
        (
            requests[0].site,
            requests[0].call.method(),
            requests[0].call.path().as_str()
        ),
        (1, Method::Delete, "/protection-groups/pg-databases")
    );
    app.reply(Reply {
        purpose: requests[0].purpose.clone(),
        outcome: Ok(json!(null)),
    });
    assert!(app.model.groups().is_empty());
}

fn filtered(app: &mut App, view: View, text: &str) -> usize {
    run(app, [Action::Show(view), Action::OpenFilter]);
    run(app, typed(text));
    run(app, [Action::Open]);
    app.row_keys().len()
}

#[test]
fn every_list_view_filters_with_slash() {
    let mut app = app(false);
    for update in crate::model::runs::fixture::feed() {
        app.feed(update);
    }
    alarm(&mut app, 1, "critical", "db-01: RPO violated");
    alarm(&mut app, 2, "info", "db-01: RPO met again");
    assert_eq!(filtered(&mut app, View::Events, "violated"), 1);
    assert_eq!(filtered(&mut app, View::Groups, "datab"), 1);
    assert_eq!(filtered(&mut app, View::Groups, "nothing-like-it"), 0);
    assert_eq!(filtered(&mut app, View::Plans, "tier"), 1);
    assert_eq!(filtered(&mut app, View::Plans, "nothing-like-it"), 0);
    run(&mut app, [Action::Back]);
    assert_eq!(app.row_keys().len(), 1, "Esc clears the plans' filter");
    assert_eq!(app.model.runs().len(), 2);
    assert_eq!(filtered(&mut app, View::History, "disaster"), 1);
    // Another view starts unfiltered.
    run(&mut app, [Action::Show(View::Events)]);
    assert_eq!(app.row_keys().len(), 2);
}

#[test]
fn an_alarm_opens_in_full_and_the_cursor_stays_on_it_as_alarms_arrive() {
    let mut app = app(false);
    alarm(&mut app, 1, "critical", "db-01: RPO violated");
    alarm(&mut app, 2, "info", "db-01: RPO met again");
    run(&mut app, [Action::Show(View::Events), Action::Down]);
    assert_eq!(app.cursor(), 1, "on alarm 1, the older");
    alarm(&mut app, 3, "warning", "site-b: peer slow");
    assert_eq!(app.cursor(), 2, "a newer alarm on top moved it down a row");
    run(&mut app, [Action::Open]);
    assert_eq!(app.overlay, super::Overlay::Event("site-a#1".into()));
    // What the opened alarm shows: `ui::snapshots`.
}
