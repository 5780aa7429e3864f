//! Rendering: pure functions of the [`App`], drawn into a ratatui frame.
//! Widgets ask the theme for roles; every state has a symbol or a word as
//! well as a colour.

mod chrome;
mod dashboard;
mod dialogs;
mod events;
mod groups;
mod history;
mod home;
mod mappings;
mod overlays;
mod plans;
mod replication;
mod runs;
#[cfg(test)]
mod snapshots;
#[cfg(test)]
pub(crate) mod testing;
mod timeline;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};
use ratatui::widgets::Block;

use crate::app::{App, Editor, View};

pub fn render(app: &App, frame: &mut Frame) {
    let area = frame.area();
    frame.render_widget(Block::new().style(app.theme.get("base")), area);
    let [header, body, footer] = Layout::vertical([
        Constraint::Length(chrome::header_height(app)),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(area);
    chrome::header(app, frame, header);
    match (&app.editor, app.view) {
        (None, _) if app.run.is_some() => {
            if let Some(run) = &app.run {
                runs::render(app, frame, body, run);
            }
        }
        (Some(Editor::Group(g)), _) => groups::editor(app, frame, body, g),
        (Some(Editor::Plan(p)), _) => plans::editor(app, frame, body, p),
        (None, View::Home) => home::render(app, frame, body),
        (None, View::Dashboard) => dashboard::render(app, frame, body),
        (None, View::Replication) => replication::render(app, frame, body),
        (None, View::Events) => events::render(app, frame, body),
        (None, View::Mappings) => mappings::render(app, frame, body),
        (None, View::Groups) => groups::render(app, frame, body),
        (None, View::Plans) => plans::render(app, frame, body),
        (None, View::History) => history::render(app, frame, body),
    }
    chrome::footer(app, frame, footer);
    overlays::render(app, frame, body);
    dialogs::render(app, frame, body);
    runs::dialogs(app, frame, body);
}

/// `1.5 MiB`, `812 KiB`, `37 B`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `45s`, `12m03s`, `3h05m`.
pub fn age(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

// One spelling of wall-clock times for the TUI, the CLI and the sites.
pub use ferry_api::time::{clock, date, date_time};

/// ` Recovery plans: 3 `, or ` Recovery plans: 1 of 3 ` under a filter.
pub fn counted(what: &str, shown: usize, all: usize) -> String {
    if shown == all {
        format!(" {what}: {all} ")
    } else {
        format!(" {what}: {shown} of {all} ")
    }
}
