//! The header (sites and their link, badges) and the bottom key bar.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::age;
use crate::app::{App, View};
use crate::model::Link;

pub fn header_height(_app: &App) -> u16 {
    2
}

pub fn header(app: &App, frame: &mut Frame, area: Rect) {
    let t = &app.theme;
    let mut top = vec![Span::styled(" ferry ", t.get("title"))];
    // Full titles when they fit beside the badges, short ones when not.
    let badges = 12 * usize::from(app.read_only) + 6 * usize::from(app.noc);
    let full: usize = View::ALL.iter().map(|v| v.title().len() + 3).sum();
    let narrow = 7 + full + badges > usize::from(area.width);
    for view in View::ALL {
        let style = if view == app.view {
            t.get("selected")
        } else {
            t.get("dim")
        };
        let title = if narrow { view.short() } else { view.title() };
        top.push(Span::styled(format!(" {title} "), style));
        top.push(Span::raw(" "));
    }
    if app.read_only {
        top.push(Span::styled(" READ-ONLY ", t.get("badge")));
        top.push(Span::raw(" "));
    }
    if app.noc {
        top.push(Span::styled(" NOC ", t.get("badge")));
    }
    let mut sites = vec![Span::raw(" ")];
    for site in &app.model.sites {
        let (symbol, word, style) = match site.link {
            Link::Connected => ("●", "connected".to_string(), t.get("ok")),
            Link::Connecting => ("○", "connecting".to_string(), t.get("dim")),
            Link::Unreachable => (
                "✖",
                format!(
                    "UNREACHABLE, data {} old",
                    age(site.stale_for(app.now).unwrap_or_default().as_secs_f64())
                ),
                t.get("crit"),
            ),
        };
        sites.push(Span::styled(site.name.clone(), t.get("accent")));
        sites.push(Span::styled(format!(" {symbol} {word}"), style));
        sites.push(Span::raw("   "));
    }
    frame.render_widget(
        Paragraph::new(vec![Line::from(top), Line::from(sites)]),
        area,
    );
}

pub fn footer(app: &App, frame: &mut Frame, area: Rect) {
    let t = &app.theme;
    let mut spans = Vec::new();
    if let Some(status) = &app.status {
        spans.push(Span::styled(format!(" {status} "), t.get("badge")));
        spans.push(Span::raw(" "));
    }
    if !app.filter.is_empty() {
        spans.push(Span::styled(format!("/{} ", app.filter), t.get("accent")));
    }
    // Keys that do not fit are left to `?`, never cut mid-word, and the
    // last one (quit, or back) always shows.
    let used: usize = spans.iter().map(|s| s.width()).sum();
    let keys = app.keys();
    let width = |(key, what): &(&str, &str)| key.chars().count() + what.chars().count() + 3;
    let last = keys.last().map_or(0, width);
    let mut room = (area.width as usize).saturating_sub(used + last);
    let mut full = false;
    for (i, entry) in keys.iter().enumerate() {
        if i + 1 < keys.len() {
            // In order: the first key that does not fit ends the run.
            full |= width(entry) > room;
            if full {
                continue;
            }
            room -= width(entry);
        }
        let (key, what) = entry;
        spans.push(Span::styled(format!(" {key}"), t.get("key")));
        spans.push(Span::styled(format!(" {what} "), t.get("dim")));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}
