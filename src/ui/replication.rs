//! The replication view: one row per VM, only the visible rows built.

use std::time::Duration;

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Row, Table, TableState};

use super::{age, bytes};
use crate::app::{App, Column};
use crate::model::{Compliance, compliance, lag_seconds};
use ferry_api::types::{Lifecycle, ReplicationInfo};

/// Below this width the direction goes (it is in the detail pane) and the
/// sync gauge shrinks to a bar and a percentage.
const COMPACT_BELOW: u16 = 120;

/// A column's width: the State column as wide as its longest word, so no
/// state is cut short; the Sync gauge only while a shown VM syncs.
fn width(column: Column, compact: bool, state_width: u16) -> Constraint {
    match (column, compact) {
        (Column::Vm, false) => Constraint::Min(10),
        (Column::Vm, true) => Constraint::Min(8),
        (Column::Direction, _) => Constraint::Length(17),
        (Column::State, false) => Constraint::Length(state_width.max(14)),
        (Column::State, true) => Constraint::Length(state_width.max(6)),
        (Column::Rpo, _) => Constraint::Length(6),
        (Column::Lag, false) => Constraint::Length(17),
        (Column::Lag, true) => Constraint::Length(16),
        (Column::Progress, false) => Constraint::Min(44),
        (Column::Progress, true) => Constraint::Length(10),
        (Column::LastSync, false) => Constraint::Length(18),
        (Column::LastSync, true) => Constraint::Length(14),
    }
}

pub fn render(app: &App, frame: &mut Frame, area: Rect) {
    let t = &app.theme;
    let rows = app.rows();
    let title = format!(
        " Replication: {} of {} VMs, sorted by {}{} ",
        rows.len(),
        app.model.replications().count(),
        app.sort.title(),
        if app.descending { " ↓" } else { " ↑" }
    );
    let block = Block::new()
        .borders(Borders::TOP)
        .border_style(t.get("border"))
        .title(Span::styled(title, t.get("title")));
    let inner_height = area.height.saturating_sub(2) as usize; // border + header row
    let selected = app.cursor_among(rows.iter().map(|(_, r)| r.vm_id.as_str()));
    let offset = selected.saturating_sub(inner_height.saturating_sub(1));
    let visible = rows.iter().skip(offset).take(inner_height.max(1));
    let compact = area.width < COMPACT_BELOW;
    let syncing = rows.iter().any(|(_, r)| r.progress.is_some());
    let columns: Vec<Column> = Column::ALL
        .into_iter()
        .filter(|c| !(compact && *c == Column::Direction))
        .filter(|c| syncing || *c != Column::Progress)
        .collect();
    let state_width = rows
        .iter()
        .map(|(_, r)| state_word(app, r).chars().count() as u16)
        .max()
        .unwrap_or(0);
    let table_rows: Vec<Row> = visible
        .map(|(site, r)| row(app, *site, r, compact, syncing))
        .collect();
    let header = Row::new(columns.iter().copied().map(|c| {
        let marker = match (c == app.sort, app.descending) {
            (false, _) => "",
            (true, true) => "↓",
            (true, false) => "↑",
        };
        Cell::from(format!("{}{marker}", c.title()))
    }))
    .style(t.get("title"));
    let widths = columns.iter().map(|c| width(*c, compact, state_width));
    let table = Table::new(table_rows, widths)
        .header(header)
        .block(block)
        .row_highlight_style(t.get("selected"))
        .highlight_symbol("▶ ");
    let mut state = TableState::default().with_selected(Some(selected - offset));
    if rows.is_empty() {
        state.select(None);
    }
    frame.render_stateful_widget(table, area, &mut state);
}

fn row<'a>(
    app: &'a App,
    site: usize,
    r: &'a ReplicationInfo,
    compact: bool,
    syncing: bool,
) -> Row<'a> {
    let t = &app.theme;
    let stale = app.model.sites.get(site).and_then(|s| s.stale_for(app.now));
    let c = compliance(r, app.now_ms);
    let lag_style = match c {
        Compliance::Ok => t.get("ok"),
        Compliance::AtRisk => t.get("warn"),
        Compliance::Violated => t.get("crit"),
        Compliance::Unknown => t.get("dim"),
    };
    let lag = lag_seconds(r, app.now_ms).map_or("-".to_string(), age);
    // A VM recovered at the other site: its replication ended, and neither
    // its state nor its lag is a failure (the sites say so).
    let lifecycle = app.model.lifecycle(r);
    let ended = lifecycle.has_ended();
    let state = if ended {
        Line::from(Span::styled(state_word(app, r), t.get("accent")))
    } else {
        Line::from(state_word(app, r))
    };
    let last = match stale {
        Some(old) => format!("STALE {}", age(old.as_secs_f64())),
        None => r.last_sync.map_or("never".into(), |l| {
            let ago = age(app.now_ms.saturating_sub(l.finished_at) as f64 / 1000.0);
            if compact {
                format!("{ago} ago")
            } else {
                format!("{ago} ago {}", bytes(l.bytes))
            }
        }),
    };
    // A real VM (QEMU) is marked as such; the built-in guest is the default.
    let real = app
        .model
        .sites
        .get(site)
        .and_then(|s| s.vms.get(&r.vm_id))
        .is_some_and(|vm| vm.compute == ferry_api::types::ComputeKind::Qemu);
    let mut cells = vec![Cell::from(if real {
        format!("{} [qemu]", r.vm)
    } else {
        r.vm.clone()
    })];
    if !compact {
        cells.push(Cell::from(format!(
            "{} → {}",
            r.source_site,
            r.target_site.as_deref().unwrap_or("?")
        )));
    }
    cells.extend([
        Cell::from(state),
        Cell::from(age(r.rpo_seconds as f64)),
        if ended {
            Cell::from(Span::styled("- ended", t.get("dim")))
        } else {
            Cell::from(Span::styled(
                format!("{} {lag} {}", c.symbol(), c.word()),
                lag_style,
            ))
        },
    ]);
    if syncing {
        cells.push(Cell::from(progress_text(
            r,
            compact,
            app.model
                .sites
                .get(site)
                .and_then(|s| s.rate_and_eta(r, app.now)),
        )));
    }
    cells.push(Cell::from(last));
    let row = Row::new(cells);
    if stale.is_some() {
        row.style(t.get("stale"))
    } else {
        row
    }
}

/// The State column's text: the replication's state, or what the VM is
/// when that says more (recovered elsewhere, reprotecting, a test copy).
fn state_word(app: &App, r: &ReplicationInfo) -> String {
    match app.model.lifecycle(r) {
        l @ Lifecycle::RecoveredAt { .. } => format!("⇥ {}", l.words()),
        l @ Lifecycle::Reprotecting { .. } => format!("⟳ {}", l.words()),
        l @ Lifecycle::TestCopy { .. } => format!("{} · {}", state_text(r), l.words()),
        _ => state_text(r),
    }
}

fn state_text(r: &ReplicationInfo) -> String {
    let symbol = match r.state.as_str() {
        "ok" => "✔",
        "syncing" | "full_sync" | "initial_full_sync" => "⟳",
        "rpo_violation" | "error" => "✖",
        "paused" => "⏸",
        "not_active" => "⚠",
        _ => "·",
    };
    format!("{symbol} {}", r.state.replace('_', " "))
}

/// `████░░░░ 45% 12.0 MiB/27.0 MiB 80.0 MiB/s ETA 3s` while syncing
/// (`███░ 45%` compact).
fn progress_text(r: &ReplicationInfo, compact: bool, rate: Option<(f64, Duration)>) -> String {
    let Some(p) = r.progress else {
        return String::new();
    };
    let ratio = p.bytes_done as f64 / p.bytes_total.max(1) as f64;
    let cells = if compact { 4 } else { 8 };
    let filled = ((ratio * cells as f64).round() as usize).min(cells);
    let bar: String = "█".repeat(filled) + &"░".repeat(cells - filled);
    if compact {
        return format!("{bar} {:>3.0}%", ratio * 100.0);
    }
    let speed = rate.map_or(String::new(), |(rate, eta)| {
        format!(" {}/s ETA {}", bytes(rate as u64), age(eta.as_secs_f64()))
    });
    format!(
        "{bar} {:>3.0}% {}/{}{speed}",
        ratio * 100.0,
        bytes(p.bytes_done),
        bytes(p.bytes_total)
    )
}
