//! Alarms, newest first: RPO violated and restored, peer lost and back,
//! replication errors.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, List, ListItem, ListState};

use super::clock;
use crate::app::App;

pub fn render(app: &App, frame: &mut Frame, area: Rect) {
    let (shown, all) = (app.alarms_shown().len(), app.model.alarms.len());
    let title = if shown == all {
        " Events: alarms, newest first ".to_string()
    } else {
        format!(" Events: {shown} of {all} alarms, newest first ")
    };
    list(app, frame, area, &title);
}

pub fn list(app: &App, frame: &mut Frame, area: Rect, title: &str) {
    let t = &app.theme;
    let height = area.height.saturating_sub(1) as usize;
    let selecting = app.view == crate::app::View::Events;
    let alarms = if selecting {
        app.alarms_shown()
    } else {
        app.model.alarms.iter().collect()
    };
    let keys: Vec<String> = alarms.iter().map(|a| crate::app::alarm_key(a)).collect();
    let selected = app.cursor_among(keys.iter().map(String::as_str));
    let offset = if selecting {
        selected.saturating_sub(height.saturating_sub(1))
    } else {
        0
    };
    let items: Vec<ListItem> = alarms
        .iter()
        .skip(offset)
        .take(height.max(1))
        .map(|a| {
            let (symbol, style) = match a.row.severity.as_str() {
                "critical" => ("✖ CRIT", t.get("crit")),
                "warning" => ("▲ WARN", t.get("warn")),
                _ => ("● info", t.get("ok")),
            };
            ListItem::new(Line::from(vec![
                Span::styled(format!("{} ", clock(a.row.at_ms)), t.get("dim")),
                Span::styled(format!("{symbol:<6} "), style),
                Span::styled(format!("{:<8} ", a.site), t.get("accent")),
                Span::raw(a.row.message.clone()),
            ]))
        })
        .collect();
    let empty = items.is_empty();
    let block = Block::new()
        .borders(Borders::TOP)
        .border_style(t.get("border"))
        .title(Span::styled(title.to_string(), t.get("title")));
    let list = List::new(if empty {
        vec![ListItem::new(Span::styled("no alarms", t.get("dim")))]
    } else {
        items
    })
    .block(block)
    .highlight_style(t.get("selected"));
    let mut state = ListState::default();
    if selecting && !empty {
        state.select(Some(selected - offset));
    }
    frame.render_stateful_widget(list, area, &mut state);
}
