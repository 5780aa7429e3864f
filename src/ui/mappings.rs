//! The mappings view: both directions side by side, each object of the
//! protected site with what it lands on, then the IP rules and per-VM NIC
//! addresses; a refused value is shown under its row, with why.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Borders, HighlightSpacing, List, ListItem, ListState};

use super::clock;
use crate::app::App;
use crate::editor::mappings::{self, Direction, Row};
use ferry_api::types::{IpRule, MappingSpec};

pub fn render(app: &App, frame: &mut Frame, area: Rect) {
    let dirs = mappings::directions(&app.model);
    let panes =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).split(area);
    if dirs.is_empty() {
        let block = Block::new().borders(Borders::TOP).title(" Mappings ");
        frame.render_widget(
            List::new([ListItem::new("waiting for both sites…")]).block(block),
            area,
        );
        return;
    }
    for (pane, dir) in dirs.iter().enumerate() {
        self::pane(app, frame, panes[pane], pane, dir);
    }
}

fn pane(app: &App, frame: &mut Frame, area: Rect, pane: usize, dir: &Direction) {
    let t = &app.theme;
    let focused = app.mappings.pane == pane && app.editor.is_none();
    let spec = app.mappings.spec(&app.model, dir);
    let draft = app.mappings.drafts.get(&dir.id());
    let saved = app.model.mappings(&dir.from, &dir.to);
    let state = match (draft.filter(|d| d.is_dirty()), saved) {
        (Some(_), _) if app.saving > 0 => Span::styled("⟳ saving", t.get("accent")),
        (Some(_), _) => Span::styled("● unsaved", t.get("warn")),
        (None, Some(m)) => Span::styled(format!("✔ saved {}", clock(m.updated_ms)), t.get("ok")),
        (None, None) => Span::styled("○ none yet", t.get("dim")),
    };
    let title = Line::from(vec![
        Span::styled(format!(" {} → {} ", dir.from, dir.to), t.get("title")),
        state,
        Span::raw(" "),
    ]);
    let block = Block::new()
        .borders(Borders::ALL)
        .border_style(t.get(if focused { "accent" } else { "border" }))
        .title(title);
    let width = area.width.saturating_sub(4) as usize;
    let errors = draft.map_or(&[][..], |d| d.errors.as_slice());
    let rows = mappings::rows(&app.model, dir, &spec);
    let mut items: Vec<ListItem> = Vec::new();
    for (row, why) in errors.iter().filter(|(r, _)| *r == Row::Whole) {
        let _ = row;
        items.push(ListItem::new(Span::styled(
            format!("✖ {why}"),
            t.get("crit"),
        )));
    }
    let offset = items.len();
    for row in &rows {
        let mut text = Text::from(row_line(app, &spec, row, width));
        for (_, why) in errors.iter().filter(|(r, _)| r == row) {
            text.push_line(Span::styled(format!("  ✖ {why}"), t.get("crit")));
        }
        items.push(ListItem::new(text));
    }
    let selected = app.mappings.selected[pane].min(rows.len().saturating_sub(1));
    let mut state = ListState::default().with_selected(focused.then_some(selected + offset));
    let list = List::new(items)
        .block(block)
        .highlight_style(t.get("selected"))
        .highlight_symbol("▶")
        .highlight_spacing(HighlightSpacing::Always);
    frame.render_stateful_widget(list, area, &mut state);
}

fn row_line<'a>(app: &App, spec: &MappingSpec, row: &Row, width: usize) -> Line<'a> {
    let t = &app.theme;
    let kind = |label: &str| Span::styled(format!("{label:<9} "), t.get("dim"));
    let half = width.saturating_sub(13) / 2;
    match row {
        Row::Pair { kind: k, source } => {
            let target = mappings::target(spec, *k, source);
            let target = match target {
                Some(t_) => Span::styled(fit(t_, half), t.get("ok")),
                None => Span::styled("⚠ unmapped", t.get("warn")),
            };
            Line::from(vec![
                kind(k.label()),
                Span::raw(format!("{:<half$}", fit(source, half))),
                Span::raw(" → "),
                target,
            ])
        }
        Row::Rule(i) => {
            let text = spec.ip_rules.get(*i).map_or(String::new(), rule_text);
            Line::from(vec![
                kind("IP rule"),
                Span::raw(fit(&text, width.saturating_sub(10))),
            ])
        }
        Row::AddRule => Line::from(vec![
            kind("IP rule"),
            Span::styled("+ add a subnet rule", t.get("dim")),
        ]),
        Row::Nic { vm, nic } => {
            let text = spec
                .ip_overrides
                .get(*vm)
                .and_then(|o| {
                    let n = o.nics.get(*nic)?;
                    let addr = [n.ipv4.as_deref(), n.ipv6.as_deref()]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(" ");
                    let gw = n.ipv4_gateway.as_deref().or(n.ipv6_gateway.as_deref());
                    Some(format!(
                        "{} nic{} → {addr}{}",
                        app.model.vm_name(&o.vm_id),
                        n.nic,
                        gw.map_or(String::new(), |g| format!(" gw {g}"))
                    ))
                })
                .unwrap_or_default();
            Line::from(vec![
                kind("VM NIC"),
                Span::raw(fit(&text, width.saturating_sub(10))),
            ])
        }
        Row::AddNic => Line::from(vec![
            kind("VM NIC"),
            Span::styled("+ add a per-VM NIC address", t.get("dim")),
        ]),
        Row::Whole => Line::from(""),
    }
}

/// `10.10.1.0/24 → 10.20.1.0/24 gw 10.20.1.1 dns 10.20.0.53`
pub fn rule_text(r: &IpRule) -> String {
    let mut text = format!("{} → {}", r.from_subnet, r.to_subnet);
    if let Some(gw) = &r.to_gateway {
        text.push_str(&format!(" gw {gw}"));
    }
    if !r.dns.is_empty() {
        text.push_str(&format!(" dns {}", r.dns.join(",")));
    }
    text
}

/// `text` cut to `width` characters, with `…` when cut.
pub fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut out: String = text.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}
