//! The `:` command palette: its commands, what a prefix resolves to, and
//! what each command does.

use super::*;

/// `:` commands and what they do.
pub const COMMANDS: [(&str, &str); 21] = [
    ("home", "runs, plans' readiness and risk, alarms"),
    ("dash", "the dashboard"),
    ("vms", "the replication view"),
    ("replication", "the replication view"),
    ("events", "alarms, newest first"),
    ("mappings", "inventory mappings, both directions"),
    ("groups", "protection groups"),
    ("plans", "recovery plans"),
    ("history", "past runs, newest first"),
    ("run", "the selected plan's run"),
    ("test", "test the selected plan"),
    ("cleanup", "clean up after its test"),
    ("migrate", "planned migration of the plan"),
    ("failover", "disaster recovery of the plan"),
    ("reprotect", "reverse the plan's direction"),
    ("cancel", "cancel the plan's run"),
    ("new", "a new group or plan (in their views)"),
    ("save", "save the open editor"),
    ("help", "the keys"),
    ("quit", "leave ferry"),
    ("q", "leave ferry"),
];

impl App {
    pub(super) fn run_command(&mut self, command: &str) -> Option<Effect> {
        match command {
            "home" => return self.leave(Leave::Show(View::Home)),
            "dash" | "dashboard" => return self.leave(Leave::Show(View::Dashboard)),
            "vms" | "replication" | "repl" => return self.leave(Leave::Show(View::Replication)),
            "events" | "alarms" => return self.leave(Leave::Show(View::Events)),
            "mappings" | "map" => return self.leave(Leave::Show(View::Mappings)),
            "groups" | "pg" => return self.leave(Leave::Show(View::Groups)),
            "plans" | "plan" => return self.leave(Leave::Show(View::Plans)),
            "history" | "runs" => return self.leave(Leave::Show(View::History)),
            "run" | "test" | "cleanup" | "migrate" | "failover" | "reprotect" | "cancel"
                if self.view == View::Plans && self.editor.is_none() =>
            {
                use ferry_api::types::RunMode;
                return self.normal(match command {
                    "run" => Action::OpenRun,
                    "test" => Action::StartRun(RunMode::Test),
                    "cleanup" => Action::StartRun(RunMode::Cleanup),
                    "migrate" => Action::StartRun(RunMode::PlannedMigration),
                    "failover" => Action::StartRun(RunMode::DisasterRecovery),
                    "reprotect" => Action::StartRun(RunMode::Reprotect),
                    _ => Action::CancelRun,
                });
            }
            "run" | "test" | "cleanup" | "migrate" | "failover" | "reprotect" | "cancel" => {
                self.status = Some(format!(
                    ":{command} works on the plans view's selected plan"
                ));
            }
            "new" if matches!(self.view, View::Groups | View::Plans) && self.editor.is_none() => {
                return self.act(Action::New);
            }
            "save" | "w" if self.view.edits() => return self.act(Action::Save),
            "help" => self.overlay = Overlay::Help,
            "quit" | "q" => return self.leave(Leave::Quit),
            "" => {}
            other => {
                self.status = Some(format!(
                    "no command :{other}; try :dash, :vms, :events, :mappings, :groups, :plans, :history, :help, :quit"
                ))
            }
        }
        None
    }
}

/// What `:` input means: a command as typed, else the one command it
/// begins (`:p` is `:plans`); several or none stay as typed, to be refused
/// with the list.
pub(super) fn resolve(input: &str) -> &str {
    if input.is_empty() || COMMANDS.iter().any(|(c, _)| *c == input) {
        return input;
    }
    let mut begun = COMMANDS.iter().filter(|(c, _)| c.starts_with(input));
    match (begun.next(), begun.next()) {
        (Some((only, _)), None) => only,
        _ => input,
    }
}
