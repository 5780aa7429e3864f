//! The history view: every run of both sites, newest first, with its
//! result, duration, RTO and the worst data loss against its RPO.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::Span;
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, TableState};

use super::date_time;
use crate::app::App;
use crate::model::runs::{duration_text, elapsed_ms, run_look, worst_loss, worst_loss_text};
use ferry_api::types::{RunMode, RunState};

/// Below this width modes and losses take their short forms.
const COMPACT_BELOW: u16 = 120;

fn short(mode: RunMode) -> &'static str {
    match mode {
        RunMode::PlannedMigration => "migration",
        RunMode::DisasterRecovery => "DR",
        other => other.label(),
    }
}

pub fn render(app: &App, frame: &mut Frame, area: Rect) {
    let t = &app.theme;
    let runs = app.runs_shown();
    let all = app.model.runs().len();
    let block = Block::new()
        .borders(Borders::TOP)
        .border_style(t.get("border"))
        .title(Span::styled(
            if runs.len() == all {
                format!(" History: {all} runs, newest first ")
            } else {
                format!(" History: {} of {all} runs, newest first ", runs.len())
            },
            t.get("title"),
        ));
    if runs.is_empty() {
        let hint = if all > 0 {
            "No run matches the filter (Esc clears it)."
        } else {
            "No runs yet: start one from the plans view (6)."
        };
        frame.render_widget(
            Paragraph::new(Span::styled(hint, t.get("dim"))).block(block),
            area,
        );
        return;
    }
    let compact = area.width < COMPACT_BELOW;
    let inner_height = area.height.saturating_sub(2) as usize;
    let selected = app.cursor_among(runs.iter().map(|e| e.run.id.as_str()));
    let offset = selected.saturating_sub(inner_height.saturating_sub(1));
    let rows: Vec<Row> = runs
        .iter()
        .skip(offset)
        .take(inner_height.max(1))
        .map(|e| {
            let run = e.run;
            let (symbol, word, role) = run_look(run.state);
            let took = elapsed_ms(Some(run.started_ms), run.ended_ms, app.now_ms)
                .map_or(String::new(), duration_text);
            let rto = run
                .rto_seconds
                .map_or("—".to_string(), |r| format!("{r:.1} s"));
            let loss = match worst_loss(run) {
                Some(v) if compact && v.data_loss_seconds.unwrap_or(0.0) > 0.0 => {
                    format!("{:.1} s {}", v.data_loss_seconds.unwrap_or(0.0), v.vm)
                }
                _ => worst_loss_text(run),
            };
            let mode = if compact {
                short(run.mode)
            } else {
                run.mode.label()
            };
            Row::new([
                // The day too: history spans days; compact keeps month-day.
                Cell::from(if compact {
                    date_time(run.started_ms)[5..16].to_string()
                } else {
                    date_time(run.started_ms)
                }),
                Cell::from(run.plan_name.clone()),
                Cell::from(mode),
                Cell::from(Span::styled(
                    if compact && run.state == RunState::SucceededWithWarnings {
                        format!("{symbol} warnings")
                    } else {
                        format!("{symbol} {word}")
                    },
                    t.get(role),
                )),
                Cell::from(took),
                Cell::from(rto),
                Cell::from(loss),
            ])
        })
        .collect();
    let widths = if compact {
        [
            Constraint::Length(11),
            Constraint::Min(8),
            Constraint::Length(9),
            Constraint::Length(13),
            Constraint::Length(6),
            Constraint::Length(7),
            Constraint::Length(13),
        ]
    } else {
        [
            Constraint::Length(19),
            Constraint::Min(14),
            Constraint::Length(18),
            Constraint::Length(26),
            Constraint::Length(8),
            Constraint::Length(8),
            Constraint::Length(30),
        ]
    };
    let header = Row::new([
        "Started",
        "Plan",
        "Mode",
        "Result",
        "Took",
        "RTO",
        "Worst loss",
    ])
    .style(t.get("title"));
    let table = Table::new(rows, widths)
        .header(header)
        .block(block)
        .row_highlight_style(t.get("selected"))
        .highlight_symbol("▶ ");
    let mut state = TableState::default().with_selected(Some(selected - offset));
    frame.render_stateful_widget(table, area, &mut state);
}
