//! Keys to actions, in the style of k9s. While text is being typed (filter,
//! palette, a form) letters are text; in the callout text area every key
//! goes to it; otherwise letters are commands, which depend on the view
//! or editor ([`Scope`]).

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use ferry_api::types::RunMode;

use crate::app::{Action, Scope, View};

pub fn action(key: KeyEvent, scope: Scope) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl && key.code == KeyCode::Char('c') {
        return Some(Action::Quit);
    }
    match scope {
        Scope::TextArea => {
            return Some(match key.code {
                KeyCode::Esc => Action::Back,
                _ => Action::Input(key),
            });
        }
        Scope::Text => return text(key),
        _ => {}
    }
    if ctrl && key.code == KeyCode::Char('s') {
        return Some(Action::Save);
    }
    let shift = key.modifiers.contains(KeyModifiers::SHIFT);
    let scoped = match (scope, key.code) {
        (Scope::Confirm, KeyCode::Char('s')) => Some(Action::Save),
        (Scope::Confirm, KeyCode::Char('d')) => Some(Action::Discard),
        (Scope::Confirm, KeyCode::Char('y')) => Some(Action::Yes),
        (Scope::Confirm, KeyCode::Char('n')) => Some(Action::Back),
        (Scope::Confirm, KeyCode::Char('q')) => Some(Action::Quit),
        (Scope::Confirm, _) => None,
        (Scope::Picker | Scope::GroupEditor, KeyCode::Char(' ')) => Some(Action::Toggle),
        (Scope::Picker, KeyCode::Char('q')) => None,
        (Scope::View(view), KeyCode::Char('/')) if view.lists() => Some(Action::OpenFilter),
        (Scope::View(View::Home), KeyCode::Char('a')) => Some(Action::AckAlarm),
        (Scope::Overlay, KeyCode::Char('t')) => Some(Action::StartRun(RunMode::Test)),
        (Scope::Overlay, KeyCode::Char('A')) => Some(Action::Attack),
        (Scope::View(View::Replication), KeyCode::Char('s')) => Some(Action::SortNext),
        (Scope::View(View::Replication), KeyCode::Char('S')) => Some(Action::SortReverse),
        (Scope::View(View::Replication), KeyCode::Char('n')) => Some(Action::SyncNow),
        (Scope::View(View::Replication), KeyCode::Char('p')) => Some(Action::TogglePause),
        (Scope::View(View::Mappings), KeyCode::Left | KeyCode::Char('h')) => Some(Action::Left),
        (Scope::View(View::Mappings), KeyCode::Right | KeyCode::Char('l')) => Some(Action::Right),
        (Scope::View(View::Mappings), KeyCode::Char('a')) => Some(Action::New),
        (Scope::View(View::Groups | View::Plans), KeyCode::Char('n')) => Some(Action::New),
        (Scope::View(View::Plans), KeyCode::Char('t')) => Some(Action::StartRun(RunMode::Test)),
        (Scope::View(View::Plans), KeyCode::Char('c')) => Some(Action::StartRun(RunMode::Cleanup)),
        (Scope::View(View::Plans), KeyCode::Char('C')) => Some(Action::ForceCleanup),
        (Scope::View(View::Plans), KeyCode::Char('m')) => {
            Some(Action::StartRun(RunMode::PlannedMigration))
        }
        (Scope::View(View::Plans), KeyCode::Char('d')) => {
            Some(Action::StartRun(RunMode::DisasterRecovery))
        }
        (Scope::View(View::Plans), KeyCode::Char('r')) => {
            Some(Action::StartRun(RunMode::Reprotect))
        }
        (Scope::View(View::Plans | View::History) | Scope::Run, KeyCode::Char('X')) => {
            Some(Action::CancelRun)
        }
        (Scope::View(View::Plans), KeyCode::Char('o')) => Some(Action::OpenRun),
        (Scope::View(View::History) | Scope::Run, KeyCode::Char('e')) => Some(Action::Export),
        (Scope::Run, KeyCode::Char('x')) => Some(Action::CancelRun),
        (Scope::Run, KeyCode::Char('a')) => Some(Action::Ack),
        (Scope::Run, KeyCode::Char(' ')) => Some(Action::Toggle),
        (Scope::View(v), KeyCode::Char('x') | KeyCode::Delete) if v.edits() => Some(Action::Delete),
        (
            Scope::View(View::Mappings) | Scope::GroupEditor | Scope::PlanEditor,
            KeyCode::Char('w'),
        ) => Some(Action::Save),
        (Scope::GroupEditor | Scope::PlanEditor, KeyCode::Char('r')) => Some(Action::Rename),
        (Scope::PlanEditor, KeyCode::Char('K')) => Some(Action::Raise),
        (Scope::PlanEditor, KeyCode::Char('J')) => Some(Action::Lower),
        (Scope::PlanEditor, KeyCode::Up) if shift => Some(Action::Raise),
        (Scope::PlanEditor, KeyCode::Down) if shift => Some(Action::Lower),
        (Scope::PlanEditor, KeyCode::Char('d')) => Some(Action::Depends),
        (Scope::PlanEditor, KeyCode::Char('p')) => Some(Action::TogglePower),
        (Scope::PlanEditor, KeyCode::Char('t')) => Some(Action::Timeout),
        (Scope::PlanEditor, KeyCode::Char('i')) => Some(Action::IpMode),
        (Scope::PlanEditor, KeyCode::Char('c')) => Some(Action::Callouts),
        (Scope::PlanEditor, KeyCode::Char('C')) => Some(Action::PlanCallouts),
        (Scope::PlanEditor, KeyCode::Char('a')) => Some(Action::PickGroups),
        _ => None,
    };
    if scoped.is_some() {
        return scoped;
    }
    Some(match key.code {
        KeyCode::Esc => Action::Back,
        KeyCode::Enter => Action::Open,
        KeyCode::Tab => Action::NextView,
        KeyCode::BackTab => Action::PrevView,
        KeyCode::Up | KeyCode::Char('k') => Action::Up,
        KeyCode::Down | KeyCode::Char('j') => Action::Down,
        KeyCode::Left | KeyCode::Char('h') => Action::PrevView,
        KeyCode::Right | KeyCode::Char('l') => Action::NextView,
        KeyCode::PageUp => Action::PageUp,
        KeyCode::PageDown => Action::PageDown,
        KeyCode::Home | KeyCode::Char('g') => Action::Top,
        KeyCode::End | KeyCode::Char('G') => Action::Bottom,
        KeyCode::Char('q') => Action::Quit,
        KeyCode::Char('?') => Action::OpenHelp,
        KeyCode::Char(':') => Action::OpenPalette,
        // 0 is Home, 1 … 7 the other views in the header's order.
        KeyCode::Char(c @ '0'..='7') => Action::Show(View::ALL[c as usize - '0' as usize]),
        _ => return None,
    })
}

/// Keys while typing into the palette, the filter or a form.
fn text(key: KeyEvent) -> Option<Action> {
    Some(match key.code {
        KeyCode::Esc => Action::Back,
        KeyCode::Enter => Action::Open,
        KeyCode::Backspace => Action::Erase,
        KeyCode::Tab => Action::Complete,
        KeyCode::BackTab => Action::PrevView,
        KeyCode::Up => Action::Up,
        KeyCode::Down => Action::Down,
        KeyCode::Left => Action::Left,
        KeyCode::Right => Action::Right,
        KeyCode::Char(c) => Action::Type(c),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn slash_filters_every_list_view() {
        let slash = key(KeyCode::Char('/'));
        for view in View::ALL {
            let expected = view.lists().then_some(Action::OpenFilter);
            assert_eq!(action(slash, Scope::View(view)), expected, "{view:?}");
        }
        assert_eq!(action(slash, Scope::PlanEditor), None);
    }

    #[test]
    fn letters_mean_what_the_scope_says() {
        let n = key(KeyCode::Char('n'));
        assert_eq!(
            action(n, Scope::View(View::Replication)),
            Some(Action::SyncNow)
        );
        assert_eq!(action(n, Scope::View(View::Plans)), Some(Action::New));
        assert_eq!(action(n, Scope::Text), Some(Action::Type('n')));
        assert_eq!(
            action(key(KeyCode::Char('q')), Scope::TextArea),
            Some(Action::Input(key(KeyCode::Char('q'))))
        );
        assert_eq!(
            action(key(KeyCode::Esc), Scope::TextArea),
            Some(Action::Back)
        );
        assert_eq!(
            action(key(KeyCode::Char('K')), Scope::PlanEditor),
            Some(Action::Raise)
        );
        assert_eq!(
            action(key(KeyCode::Char('l')), Scope::View(View::Mappings)),
            Some(Action::Right)
        );
        assert_eq!(
            action(key(KeyCode::Char('l')), Scope::View(View::Events)),
            Some(Action::NextView)
        );
        assert_eq!(
            action(key(KeyCode::Char('6')), Scope::View(View::Events)),
            Some(Action::Show(View::Plans))
        );
        let save = KeyEvent::new(KeyCode::Char('s'), KeyModifiers::CONTROL);
        assert_eq!(action(save, Scope::PlanEditor), Some(Action::Save));
        assert_eq!(
            action(key(KeyCode::Char('d')), Scope::Confirm),
            Some(Action::Discard)
        );
    }
}
