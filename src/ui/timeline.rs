//! The instances timeline of a VM's detail pane: one line per kept
//! instance, newest first, with its size and score; suspicious instances
//! carry a symbol and a word, the recommended clean point its own.

use ratatui::text::{Line, Span};

use super::{bytes, clock};
use crate::app::App;
use ferry_api::types::InstanceInfo;

/// The timeline's lines, at most `rows` instances, windowed around the
/// cursor.
pub fn lines(app: &App, rows: usize) -> Vec<Line<'static>> {
    let t = &app.theme;
    let tl = &app.timeline;
    let at = tl
        .site
        .and_then(|s| app.model.sites.get(s))
        .map_or("?".to_string(), |s| s.name.clone());
    let mut out = vec![Line::from(Span::styled(
        format!("Instances at {at}, newest first"),
        t.get("title"),
    ))];
    let list = match &tl.instances {
        None => {
            out.push(Line::from(Span::styled("listing…", t.get("dim"))));
            return out;
        }
        Some(Err(e)) => {
            out.push(Line::from(Span::styled(
                format!("cannot list them: {e}"),
                t.get("crit"),
            )));
            return out;
        }
        Some(Ok(list)) => list,
    };
    if list.is_empty() {
        out.push(Line::from(Span::styled("none kept yet", t.get("dim"))));
        return out;
    }
    let rows = rows.max(1);
    let offset = tl.selected.saturating_sub(rows - 1);
    for (i, instance) in list.iter().enumerate().skip(offset).take(rows) {
        let (mark, style) = mark(instance);
        // Not spaces: the pane trims leading ones, and the rows must align.
        let cursor = if i == tl.selected { "▶ " } else { "· " };
        let mut spans = vec![Span::raw(format!("{cursor}{}", row(instance)))];
        if !mark.is_empty() {
            spans.push(Span::styled(format!("  {mark}"), t.get(style)));
        }
        let line = Line::from(spans);
        out.push(if i == tl.selected {
            line.style(t.get("selected"))
        } else {
            line
        });
    }
    if list.len() > rows {
        out.push(Line::from(Span::styled(
            format!("{} of {} shown; ↑↓ to move", rows, list.len()),
            t.get("dim"),
        )));
    }
    out
}

/// `08:14:35  #21  96.0 MiB  6.4 MiB/s ×612  enc 100%`
fn row(i: &InstanceInfo) -> String {
    let size = i.bytes_changed.map_or("full sync".into(), bytes);
    let score = i.score.map_or(String::new(), |s| {
        let times = if s.baseline_rate > 0.0 {
            format!(" ×{:.0}", s.rate / s.baseline_rate)
        } else {
            String::new()
        };
        format!(
            "  {}/s{times}  enc {:.0}%",
            bytes(s.rate as u64),
            s.encrypted_share * 100.0
        )
    });
    format!("{}  #{:<4} {size:>9}{score}", clock(i.point_time_ms), i.id)
}

/// The symbol and word of an instance, and its style.
fn mark(i: &InstanceInfo) -> (&'static str, &'static str) {
    match (i.suspicious, i.score.is_some_and(|s| s.jump), i.recommended) {
        (true, true, _) => ("⚠ SUSPICIOUS: alarm", "crit"),
        (true, false, _) => ("⚠ suspicious", "crit"),
        (false, _, true) => ("✔ clean point", "ok"),
        _ => ("", "dim"),
    }
}
