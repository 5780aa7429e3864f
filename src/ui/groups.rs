//! The protection groups view (each group, then the selected group's VMs
//! with status and placeholder) and the group editor (a multi-select list
//! of the VMs replicated toward the recovery site).

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, Borders, Cell, HighlightSpacing, List, ListItem, ListState, Paragraph, Row, Table,
    TableState,
};

use super::mappings::fit;
use crate::app::App;
use crate::editor::groups::GroupEditor;
use crate::theme::Theme;
use ferry_api::types::{GroupVm, ProtectionGroup};

pub fn render(app: &App, frame: &mut Frame, area: Rect) {
    let t = &app.theme;
    let groups = app.groups_shown();
    let list_height = (groups.len() as u16 + 3).clamp(4, area.height / 2);
    let [top, bottom] =
        Layout::vertical([Constraint::Length(list_height), Constraint::Min(3)]).areas(area);
    let selected = app.cursor_among(groups.iter().map(|g| g.id.as_str()));
    let rows: Vec<Row> = groups
        .iter()
        .map(|g| {
            Row::new([
                Cell::from(g.name.clone()),
                Cell::from(format!("{} → {}", g.protected_site, g.recovery_site)),
                Cell::from(g.vms.len().to_string()),
                Cell::from(summary(t, &g.vms)),
                Cell::from(
                    g.locked_by
                        .as_deref()
                        .map_or(String::new(), |r| format!("🔒 {r}")),
                ),
            ])
        })
        .collect();
    let title = super::counted("Protection groups", groups.len(), app.model.groups().len());
    let table = Table::new(
        rows,
        [
            Constraint::Min(12),
            Constraint::Length(18),
            Constraint::Length(4),
            Constraint::Min(16),
            Constraint::Length(12),
        ],
    )
    .header(Row::new(["Name", "Direction", "VMs", "Status", "Lock"]).style(t.get("title")))
    .block(
        Block::new()
            .borders(Borders::TOP)
            .border_style(t.get("border"))
            .title(Span::styled(title, t.get("title"))),
    )
    .row_highlight_style(t.get("selected"))
    .highlight_symbol("▶ ");
    let mut state = TableState::default().with_selected((!groups.is_empty()).then_some(selected));
    frame.render_stateful_widget(table, top, &mut state);
    match groups.get(selected) {
        Some(g) => members(app, frame, bottom, g),
        None => frame.render_widget(
            Paragraph::new(Span::styled(
                if !app.may(ferry_api::types::Role::Admin, None) {
                    "No protection groups yet."
                } else {
                    "No protection groups yet: n makes one."
                },
                t.get("dim"),
            )),
            bottom,
        ),
    }
}

/// `✔ 4 ok  ⚠ 1 mapping missing`
fn summary<'a>(t: &Theme, vms: &[GroupVm]) -> Line<'a> {
    let ok = vms.iter().filter(|v| v.status == "ok").count();
    let bad = vms.len() - ok;
    let mut spans = vec![Span::styled(format!("✔ {ok} ok"), t.get("ok"))];
    if bad > 0 {
        spans.push(Span::styled(format!("  ⚠ {bad} not ready"), t.get("warn")));
    }
    Line::from(spans)
}

/// The symbol and style of a VM's status in a group.
fn status<'a>(t: &Theme, status: &str) -> Span<'a> {
    let (symbol, role) = match status {
        "ok" => ("✔", "ok"),
        s if s.starts_with("mapping missing") => ("⚠", "warn"),
        _ => ("✖", "crit"),
    };
    Span::styled(format!("{symbol} {status}"), t.get(role))
}

fn placeholder(vm: &GroupVm) -> String {
    vm.placeholder
        .as_ref()
        .map_or("no placeholder".into(), |p| {
            format!(
                "{}/{} {} {}",
                p.folder,
                p.resource_pool,
                p.datastore,
                p.networks.join(",")
            )
        })
}

fn members(app: &App, frame: &mut Frame, area: Rect, g: &ProtectionGroup) {
    let t = &app.theme;
    let rows: Vec<Row> = g
        .vms
        .iter()
        .map(|vm| {
            Row::new([
                Cell::from(vm.vm.clone()),
                Cell::from(status(t, &vm.status)),
                Cell::from(placeholder(vm)),
            ])
        })
        .collect();
    let table = Table::new(
        rows,
        [
            Constraint::Length(14),
            Constraint::Length(28),
            Constraint::Min(20),
        ],
    )
    .header(
        Row::new([
            "VM",
            "Status",
            "Placeholder (folder/pool datastore networks)",
        ])
        .style(t.get("title")),
    )
    .block(
        Block::new()
            .borders(Borders::TOP)
            .border_style(t.get("border"))
            .title(Span::styled(
                format!(" {}: {} VMs ", g.name, g.vms.len()),
                t.get("title"),
            )),
    );
    frame.render_widget(table, area);
}

pub fn editor(app: &App, frame: &mut Frame, area: Rect, g: &GroupEditor) {
    let t = &app.theme;
    let [head, body] = Layout::vertical([Constraint::Length(3), Constraint::Min(3)]).areas(area);
    let state = if app.saving > 0 {
        Span::styled("⟳ saving", t.get("accent"))
    } else if g.is_dirty() {
        Span::styled("● unsaved", t.get("warn"))
    } else {
        Span::styled("✔ saved", t.get("ok"))
    };
    let mut lines = vec![Line::from(vec![
        Span::styled(format!(" Group {} ", g.name), t.get("title")),
        Span::raw(format!(" recovers to {}  {} VMs  ", g.site, g.vms.len())),
        state,
    ])];
    for key in ["name", ""] {
        if let Some(why) = g.errors.get(key) {
            let field = if key.is_empty() {
                String::new()
            } else {
                format!("{key}: ")
            };
            lines.push(Line::from(Span::styled(
                format!(" ✖ {field}{why}"),
                t.get("crit"),
            )));
        }
    }
    if lines.len() == 1 {
        lines.push(Line::from(Span::styled(
            " VMs replicated toward the recovery site; Space adds or removes one",
            t.get("dim"),
        )));
    }
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::new()
                .borders(Borders::BOTTOM)
                .border_style(t.get("border")),
        ),
        head,
    );
    let width = body.width.saturating_sub(4) as usize;
    let candidates = g.candidates(&app.model);
    let items: Vec<ListItem> = candidates
        .iter()
        .map(|c| {
            let chosen = g.vms.contains(&c.vm_id);
            let mut spans = vec![
                Span::raw(if chosen { "[x] " } else { "[ ] " }),
                Span::raw(format!("{:<12} ", fit(&c.name, 12))),
            ];
            match (&c.member, chosen, &c.elsewhere) {
                (_, false, Some(other)) => {
                    spans.push(Span::styled(format!("in group {other}"), t.get("dim")))
                }
                (Some(m), true, _) => {
                    spans.push(status(t, &m.status));
                    spans.push(Span::styled(format!("  {}", placeholder(m)), t.get("dim")));
                }
                (Some(_), false, _) => spans.push(Span::styled("− to remove", t.get("warn"))),
                (None, true, _) => spans.push(Span::styled("+ to add", t.get("accent"))),
                (None, false, _) => {
                    spans.push(Span::styled(format!("from {}", c.source), t.get("dim")))
                }
            }
            let mut text = ratatui::text::Text::from(Line::from(spans));
            if let Some(why) = g.errors.get(&c.vm_id) {
                text.push_line(Span::styled(
                    format!("    ✖ {}", fit(why, width)),
                    t.get("crit"),
                ));
            }
            ListItem::new(text)
        })
        .collect();
    let empty = items.is_empty();
    let list = List::new(items)
        .block(Block::new())
        .highlight_style(t.get("selected"))
        .highlight_symbol("▶")
        .highlight_spacing(HighlightSpacing::Always);
    let mut state = ListState::default().with_selected((!empty).then_some(g.selected));
    frame.render_stateful_widget(list, body, &mut state);
    if empty {
        frame.render_widget(
            Paragraph::new(Span::styled(
                format!(" No VM replicates toward {} yet.", g.site),
                t.get("dim"),
            )),
            body,
        );
    }
}
