//! The run actions' state machine: dialogs, the read-only gate, replies.

use ferry_api::types::{ErrorBody, RunMode, RunState};

use super::*;
use crate::app::fixture;
use crate::app::{Action, Effect, View};
use crate::model::runs::fixture as runs;

fn app(read_only: bool) -> App {
    let mut app = fixture::app(read_only);
    for site in 0..2 {
        if let Some(p) = app.model.sites[site]
            .protection
            .plans
            .get_mut("plan-tier-1")
        {
            p.allowed = vec![
                RunMode::Test,
                RunMode::PlannedMigration,
                RunMode::DisasterRecovery,
            ];
        }
    }
    for update in runs::feed() {
        app.feed(update);
    }
    app.update(Action::Show(View::Plans));
    app
}

fn typed(app: &mut App, text: &str) {
    for c in text.chars() {
        app.update(Action::Type(c));
    }
}

#[test]
fn a_real_failover_needs_the_plans_name_typed() {
    let mut app = app(false);
    assert_eq!(
        app.update(Action::StartRun(RunMode::DisasterRecovery)),
        None
    );
    assert_eq!(app.scope(), Scope::Text, "letters are the name now");
    typed(&mut app, "tier-1");
    assert_eq!(app.update(Action::Open), None, "a mismatch sends nothing");
    match &app.run_dialog {
        Some(RunDialog::TypeName { typed, error, .. }) => {
            assert!(typed.is_empty());
            assert!(error.as_deref().unwrap_or("").contains("nothing was sent"));
        }
        other => panic!("the dialog stays open: {other:?}"),
    }
    typed(&mut app, "Tier-1");
    let Some(Effect::Run(call)) = app.update(Action::Open) else {
        panic!("the typed name starts the run");
    };
    assert_eq!(call.site, 1, "sent to the plan's recovery site");
    assert_eq!(call.call.path(), "/plans/plan-tier-1/runs");
    let body = call.call.body().unwrap();
    assert_eq!(body["mode"], "disaster_recovery");
    assert_eq!(body["confirm"], "Tier-1");
    assert!(app.run_dialog.is_none());
}

#[test]
fn esc_leaves_the_name_dialog_without_sending() {
    let mut app = app(false);
    app.update(Action::StartRun(RunMode::PlannedMigration));
    typed(&mut app, "Tier");
    assert_eq!(app.update(Action::Back), None);
    assert!(app.run_dialog.is_none());
}

#[test]
fn a_test_asks_yes_then_opens_its_run_view() {
    let mut app = app(false);
    app.update(Action::StartRun(RunMode::Test));
    assert!(matches!(app.run_dialog, Some(RunDialog::Start(_))));
    assert_eq!(app.scope(), Scope::Confirm);
    let Some(Effect::Run(call)) = app.update(Action::Yes) else {
        panic!("y starts the test");
    };
    assert_eq!(
        call.call.body().unwrap(),
        serde_json::json!({"mode": "test", "confirm": null, "sync": null, "force": null})
    );
    let mut run = runs::waiting();
    run.id = "run-9".into();
    run.state = RunState::Running;
    app.run_replied(RunReply {
        site: 1,
        purpose: call.purpose,
        outcome: Ok(serde_json::to_value(&run).unwrap()),
    });
    assert_eq!(app.run.as_ref().map(|v| v.id.as_str()), Some("run-9"));
    assert_eq!(app.scope(), Scope::Run);
    assert_eq!(app.model.runs()[0].run.id, "run-9", "newest first");
}

#[test]
fn a_mode_the_plan_does_not_allow_now_is_refused_with_its_next_step() {
    let mut app = app(false);
    app.update(Action::StartRun(RunMode::Reprotect));
    assert!(app.run_dialog.is_none());
    assert!(
        app.status
            .as_deref()
            .unwrap_or("")
            .contains("no reprotect now")
    );
}

#[test]
fn read_only_refuses_every_run_action_but_opens_runs() {
    let mut app = app(true);
    for action in [
        Action::StartRun(RunMode::Test),
        Action::StartRun(RunMode::DisasterRecovery),
        Action::ForceCleanup,
        Action::CancelRun,
    ] {
        assert_eq!(app.update(action), None);
        assert!(app.run_dialog.is_none());
        assert!(app.status.as_deref().unwrap_or("").contains("read-only"));
    }
    app.update(Action::OpenRun);
    assert_eq!(app.run.as_ref().map(|v| v.id.as_str()), Some("run-3"));
    assert!(app.prompt().is_some(), "the prompt shows");
    assert_eq!(app.update(Action::Open), None, "no acknowledging read-only");
    assert!(app.status.as_deref().unwrap_or("").contains("read-only"));
}

#[test]
fn a_prompt_is_acknowledged_with_enter_or_left_with_esc() {
    let mut app = app(false);
    app.update(Action::OpenRun);
    assert_eq!(app.scope(), Scope::Confirm);
    app.update(Action::Back);
    assert!(app.prompt().is_none(), "left waiting");
    assert!(app.run.is_some(), "still in the run view");
    app.update(Action::Ack);
    assert!(app.prompt().is_some(), "a opens it again");
    let Some(Effect::Run(call)) = app.update(Action::Open) else {
        panic!("Enter acknowledges");
    };
    assert_eq!(
        (call.site, call.call.path().as_str()),
        (1, "/runs/run-3/ack")
    );
    app.run_replied(RunReply {
        site: 1,
        purpose: RunPurpose::Ack,
        outcome: Err(ErrorBody {
            error: "conflict".into(),
            message: "no prompt waits".into(),
            field: None,
        }),
    });
    assert_eq!(
        app.status.as_deref(),
        Some("not acknowledged: no prompt waits")
    );
}

#[test]
fn cancel_asks_then_goes_to_the_runs_site() {
    let mut app = app(false);
    app.update(Action::CancelRun);
    assert!(matches!(app.run_dialog, Some(RunDialog::Cancel { .. })));
    let Some(Effect::Run(call)) = app.update(Action::Yes) else {
        panic!("y cancels");
    };
    assert_eq!(call.call.path(), "/runs/run-3/cancel");
}

#[test]
fn history_opens_and_exports_the_selected_run() {
    let mut app = app(false);
    app.update(Action::Show(View::History));
    app.update(Action::Down);
    app.update(Action::Open);
    assert_eq!(app.run.as_ref().map(|v| v.id.as_str()), Some("run-7"));
    assert!(matches!(app.update(Action::Export), Some(Effect::Export(run)) if run.id == "run-7"));
    app.update(Action::Back);
    assert!(app.run.is_none());
    assert_eq!(app.view, View::History);
}
