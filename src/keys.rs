//! Keys to actions, in the style of k9s. While text is being typed (filter,
//! palette) letters are text; otherwise they are commands.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::app::{Action, Overlay};

pub fn action(key: KeyEvent, overlay: &Overlay) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
        return Some(Action::Quit);
    }
    let typing = matches!(overlay, Overlay::Palette(_) | Overlay::Filter);
    Some(match key.code {
        KeyCode::Esc => Action::Back,
        KeyCode::Enter => Action::Open,
        KeyCode::Backspace if typing => Action::Erase,
        KeyCode::Tab if typing => Action::Complete,
        KeyCode::Char(c) if typing => Action::Type(c),
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
        KeyCode::Char('/') => Action::OpenFilter,
        KeyCode::Char('s') => Action::SortNext,
        KeyCode::Char('S') => Action::SortReverse,
        KeyCode::Char('n') => Action::SyncNow,
        KeyCode::Char('p') => Action::TogglePause,
        KeyCode::Char('1') => Action::Show(crate::app::View::Dashboard),
        KeyCode::Char('2') => Action::Show(crate::app::View::Replication),
        KeyCode::Char('3') => Action::Show(crate::app::View::Events),
        _ => return None,
    })
}
