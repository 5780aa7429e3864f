//! Role-aware keys: a viewer's token, or `--read-only`, is offered no key,
//! help entry or `:` command that changes a site; an operator is offered
//! tests and cleanups but no real failover or edit.

use ferry_api::types::Role;

use super::app_keys_under_help;
use crate::app::fixture;
use crate::app::{Action, App, View};

/// Words of an offered action that changes a site.
const CHANGES: [&str; 18] = [
    "sync",
    "pause",
    "test",
    "cleanup",
    "migrate",
    "migration",
    "DR",
    "disaster",
    "reprotect",
    "cancel",
    "new",
    "edit",
    "delete",
    "remove",
    "save",
    "answer",
    "rename",
    "acknowledge",
];

fn app(role: Role, read_only: bool) -> App {
    let mut app = fixture::app(read_only);
    for site in &mut app.model.sites {
        site.role = Some(role);
    }
    app
}

/// Every key of the bar and of `?`, and every `:` command, in each view.
fn offered(app: &mut App) -> Vec<String> {
    let mut all = Vec::new();
    for view in View::ALL {
        app.update(Action::Show(view));
        let keys = app.keys().into_iter().chain(app_keys_under_help(app));
        all.extend(keys.map(|(key, what)| format!("{view:?}: {key} {what}")));
        all.extend(
            app.commands()
                .iter()
                .map(|(c, what)| format!("{view:?}: :{c} {what}")),
        );
    }
    all
}

fn changing(offered: &[String]) -> Vec<&String> {
    offered
        .iter()
        .filter(|o| {
            o.split(|c: char| !c.is_alphanumeric())
                .any(|word| CHANGES.contains(&word))
        })
        .collect()
}

#[test]
fn a_viewer_and_read_only_are_offered_nothing_that_changes_a_site() {
    for (role, read_only) in [(Role::Viewer, false), (Role::Admin, true)] {
        let mut app = app(role, read_only);
        let offered = offered(&mut app);
        assert!(
            changing(&offered).is_empty(),
            "{role:?}, read-only {read_only}: {:#?}",
            changing(&offered)
        );
        // Asked anyway, the one gate refuses, in a sentence.
        app.update(Action::Show(View::Plans));
        assert_eq!(
            app.update(Action::StartRun(ferry_api::types::RunMode::Test)),
            None
        );
        assert!(app.run_dialog.is_none());
    }
    let mut viewer = app(Role::Viewer, false);
    viewer.update(Action::Show(View::Plans));
    viewer.update(Action::StartRun(ferry_api::types::RunMode::Test));
    let status = viewer.status.clone().unwrap_or_default();
    assert!(
        status.contains("the viewer role") && status.contains("needs operator"),
        "{status}"
    );
}

#[test]
fn an_operator_is_offered_tests_but_no_failover_or_edit() {
    let mut app = app(Role::Operator, false);
    let offered = offered(&mut app);
    let has = |what: &str| offered.iter().any(|o| o.contains(what));
    assert!(has("Plans: t test") && has("Plans: c cleanup") && has(":test"));
    for not in [
        "migrat",
        "disaster",
        "reprotect",
        "save",
        "delete",
        ":new",
        "sync",
        "pause",
    ] {
        assert!(!has(not), "an operator is offered {not}: {offered:#?}");
    }
    let mut admin = self::app(Role::Admin, false);
    let offered = self::offered(&mut admin);
    assert!(offered.iter().any(|o| o.contains("Plans: m migrate")));
}
