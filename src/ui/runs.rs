//! The run view (the run's header and gauge, its steps with live state and
//! elapsed time, the selected step's per-VM sub-steps; on wide terminals
//! the VMs' results and the step's detail beside them) and the run dialogs:
//! start, type the plan's name, cancel, and a prompt the run waits on.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, Borders, Cell, Clear, Gauge, HighlightSpacing, List, ListItem, ListState, Paragraph,
    Row, Table, Wrap,
};

use super::clock;
use super::mappings::fit;
use super::overlays::{boxed, centered};
use crate::app::{App, RunDialog, RunView};
use crate::model::runs::{
    duration_text, elapsed_ms, loss_text, progress, run_look, step_elapsed_ms, step_look_in,
    worst_loss_text,
};
use crate::theme::Theme;
use ferry_api::types::{Run, RunMode, RunVm, Step};

/// From this width the VMs' results sit beside the steps.
const SPLIT_FROM: u16 = 120;

fn took(ms: Option<u64>) -> String {
    ms.map_or(String::new(), duration_text)
}

pub fn render(app: &App, frame: &mut Frame, area: Rect, view: &RunView) {
    let t = &app.theme;
    let Some(entry) = app.model.run(&view.id) else {
        frame.render_widget(
            Paragraph::new(Span::styled(
                format!("run {}: not known to either site (yet)", view.id),
                t.get("dim"),
            )),
            area,
        );
        return;
    };
    let run = entry.run;
    let [head, gauge, body] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Length(1),
        Constraint::Min(3),
    ])
    .areas(area);
    header(app, frame, head, run);
    let (done, all) = progress(run);
    let (_, _, role) = run_look(run.state);
    frame.render_widget(
        Gauge::default()
            .gauge_style(t.get(if role == "accent" { "gauge" } else { role }))
            .ratio(if all == 0 {
                0.0
            } else {
                done as f64 / all as f64
            })
            .label(format!("{done}/{all} steps")),
        gauge,
    );
    if area.width >= SPLIT_FROM {
        let [left, right] =
            Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)])
                .areas(body);
        steps(app, frame, left, run, view);
        side(app, frame, right, run, view);
    } else if run.vms.is_empty() || body.height < 12 {
        steps(app, frame, body, run, view);
    } else {
        // The steps first; the VMs' results below, as many as fit.
        let vm_height = (run.vms.len() as u16 + 2).min(body.height / 3);
        let [top, bottom] =
            Layout::vertical([Constraint::Min(6), Constraint::Length(vm_height)]).areas(body);
        steps(app, frame, top, run, view);
        vm_table(app, frame, bottom, run, Borders::TOP);
    }
}

fn header(app: &App, frame: &mut Frame, area: Rect, run: &Run) {
    let t = &app.theme;
    let (symbol, word, role) = run_look(run.state);
    let elapsed = elapsed_ms(Some(run.started_ms), run.ended_ms, app.now_ms);
    let rto = run
        .rto_seconds
        .map_or("—".to_string(), |r| format!("{r:.1} s"));
    let loss = worst_loss_text(run);
    let mut lines = vec![
        Line::from(vec![
            Span::styled(
                format!(" {} of {} ", run.mode.label(), run.plan_name),
                t.get("title"),
            ),
            Span::raw(format!(
                " {} → {}  {}  started {} by {}",
                run.protected_site,
                run.recovery_site,
                run.id,
                clock(run.started_ms),
                run.started_by
            )),
        ]),
        Line::from(vec![
            Span::styled(format!(" {symbol} {word}"), t.get(role)),
            Span::styled("   elapsed ", t.get("dim")),
            Span::raw(took(elapsed)),
            Span::styled("   RTO ", t.get("dim")),
            Span::raw(rto),
            Span::styled("   worst data loss ", t.get("dim")),
            Span::raw(loss),
        ]),
    ];
    let mut note = run.message.clone();
    if run.cancel_requested && !run.state.is_finished() {
        note = format!("cancel requested: stops at the next safe point. {note}");
    }
    lines.push(Line::from(Span::styled(format!(" {note}"), t.get("dim"))));
    frame.render_widget(Paragraph::new(lines), area);
}

fn state_span(t: &Theme, run: &Run, state: ferry_api::types::StepState) -> Span<'static> {
    let (symbol, word, role) = step_look_in(run, state);
    Span::styled(format!("{symbol} {word:<8}"), t.get(role))
}

fn steps(app: &App, frame: &mut Frame, area: Rect, run: &Run, view: &RunView) {
    let t = &app.theme;
    let width = area.width.saturating_sub(2) as usize;
    let name_width = (width * 45 / 100).clamp(12, 34);
    let selected = view.selected.min(run.steps.len().saturating_sub(1));
    let mut items = Vec::new();
    let mut selected_item = None;
    for (i, step) in run.steps.iter().enumerate() {
        if i == selected {
            selected_item = Some(items.len());
        }
        let spent = took(step_elapsed_ms(
            run,
            step.state,
            step.started_ms,
            step.ended_ms,
            app.now_ms,
        ));
        let used = 11 + name_width + 8;
        items.push(ListItem::new(Line::from(vec![
            state_span(t, run, step.state),
            Span::raw(format!(" {:<name_width$}", fit(&step.name, name_width))),
            Span::raw(format!(" {spent:>6} ")),
            Span::styled(fit(&step.message, width.saturating_sub(used)), t.get("dim")),
        ])));
        if i == selected && view.expanded {
            for sub in &step.vms {
                let spent = took(step_elapsed_ms(
                    run,
                    sub.state,
                    sub.started_ms,
                    sub.ended_ms,
                    app.now_ms,
                ));
                let (symbol, word, role) = step_look_in(run, sub.state);
                items.push(ListItem::new(Line::from(vec![
                    Span::raw("    "),
                    Span::styled(format!("{symbol} {word:<8}"), t.get(role)),
                    Span::raw(format!(" {:<10}", fit(&sub.vm, 10))),
                    Span::raw(format!(" {spent:>6} ")),
                    Span::styled(fit(&sub.message, width.saturating_sub(36)), t.get("dim")),
                ])));
            }
        }
    }
    let hint = if view.expanded {
        " Enter hides the VMs "
    } else {
        " Enter shows the VMs "
    };
    let list = List::new(items)
        .block(
            Block::new()
                .borders(Borders::TOP)
                .border_style(t.get("border"))
                .title(Span::styled(
                    format!(" Steps: {} ", run.steps.len()),
                    t.get("title"),
                ))
                .title_bottom(Span::styled(hint, t.get("dim"))),
        )
        .highlight_style(t.get("selected"))
        .highlight_symbol("▶")
        .highlight_spacing(HighlightSpacing::Always);
    let mut state = ListState::default().with_selected(selected_item);
    frame.render_stateful_widget(list, area, &mut state);
}

/// The VMs' results and the selected step's message and output.
fn side(app: &App, frame: &mut Frame, area: Rect, run: &Run, view: &RunView) {
    let t = &app.theme;
    let vm_height = (run.vms.len() as u16 + 2).min(area.height / 2).max(3);
    let [vms, detail] =
        Layout::vertical([Constraint::Length(vm_height), Constraint::Min(2)]).areas(area);
    vm_table(app, frame, vms, run, Borders::TOP | Borders::LEFT);
    let Some(step) = run
        .steps
        .get(view.selected.min(run.steps.len().saturating_sub(1)))
    else {
        return;
    };
    frame.render_widget(
        Paragraph::new(step_detail(t, run, step))
            .wrap(Wrap { trim: false })
            .block(
                Block::new()
                    .borders(Borders::TOP | Borders::LEFT)
                    .border_style(t.get("border"))
                    .title(Span::styled(format!(" {} ", step.name), t.get("title"))),
            ),
        detail,
    );
}

/// A VM's data loss, marked when it is past the VM's RPO.
fn loss_span(t: &Theme, v: &RunVm) -> Span<'static> {
    match (v.data_loss_seconds, v.rpo_seconds) {
        (Some(loss), Some(rpo)) if loss > rpo as f64 => {
            Span::styled(format!("{} ✖", loss_text(v)), t.get("crit"))
        }
        (Some(_), _) => Span::styled(loss_text(v), t.get("ok")),
        (None, _) => Span::styled(loss_text(v), t.get("dim")),
    }
}

/// Each VM's result, data loss against its RPO, verification, heartbeat.
fn vm_table(app: &App, frame: &mut Frame, area: Rect, run: &Run, borders: Borders) {
    let t = &app.theme;
    let rows: Vec<Row> = run
        .vms
        .iter()
        .map(|v| {
            let (symbol, word, role) = step_look_in(run, v.result);
            let verified = match v.verified {
                Some(true) => Span::styled("✔ yes", t.get("ok")),
                Some(false) => Span::styled("✖ NO", t.get("crit")),
                None => Span::styled("—", t.get("dim")),
            };
            let heartbeat = v.heartbeat_ms.map_or("—".to_string(), |h| {
                format!("+{}", duration_text(h.saturating_sub(run.started_ms)))
            });
            // A VM recovered at a chosen instance says which; the others
            // came from their newest.
            let vm = match &v.instance {
                Some(id) => format!("{} @#{id}", v.vm),
                None => v.vm.clone(),
            };
            Row::new([
                Cell::from(vm),
                Cell::from(format!("P{}", v.priority)),
                Cell::from(Span::styled(format!("{symbol} {word}"), t.get(role))),
                Cell::from(loss_span(t, v)),
                Cell::from(verified),
                Cell::from(heartbeat),
            ])
        })
        .collect();
    let table = Table::new(
        rows,
        [
            Constraint::Min(8),
            Constraint::Length(3),
            Constraint::Length(10),
            Constraint::Length(20),
            Constraint::Length(6),
            Constraint::Length(7),
        ],
    )
    .header(Row::new(["VM", "P", "Result", "Data loss", "Verif.", "Beat"]).style(t.get("title")))
    .block(
        Block::new()
            .borders(borders)
            .border_style(t.get("border"))
            .title(Span::styled(" VMs ", t.get("title"))),
    );
    frame.render_widget(table, area);
}

fn step_detail<'a>(t: &Theme, run: &Run, step: &'a Step) -> Vec<Line<'a>> {
    let (symbol, word, role) = step_look_in(run, step.state);
    let at = |ms: Option<u64>| ms.map_or("—".to_string(), clock);
    let mut lines = vec![Line::from(vec![
        Span::styled(format!("{symbol} {word}"), t.get(role)),
        Span::styled("  started ", t.get("dim")),
        Span::raw(at(step.started_ms)),
        Span::styled("  ended ", t.get("dim")),
        Span::raw(at(step.ended_ms)),
    ])];
    if !step.message.is_empty() {
        lines.push(Line::from(step.message.as_str()));
    }
    if let Some(output) = &step.output {
        lines.push(Line::from(Span::styled("output:", t.get("dim"))));
        lines.extend(
            output
                .lines()
                .rev()
                .take(8)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .map(Line::from),
        );
    }
    if run
        .prompt
        .as_ref()
        .is_some_and(|p| run.steps.get(p.step) == Some(step))
    {
        lines.push(Line::from(Span::styled(
            "waits for an operator: a answers",
            t.get("warn"),
        )));
    }
    lines
}

/// `run ⟳ running test, started 05:45:22 (o opens it)` under a plan.
pub fn plan_run_line(app: &App, plan_id: &str) -> Option<Line<'static>> {
    let t = &app.theme;
    let run = app.model.plan_run(plan_id)?.run;
    let (symbol, word, role) = run_look(run.state);
    Some(Line::from(vec![
        Span::styled("run ", t.get("dim")),
        Span::styled(format!("{symbol} {word}"), t.get(role)),
        Span::raw(format!(
            " {}, started {} ",
            run.mode.label(),
            clock(run.started_ms)
        )),
        Span::styled("(o opens it)", t.get("dim")),
    ]))
}

/// The run dialogs and the prompt a run waits on, over everything.
pub fn dialogs(app: &App, frame: &mut Frame, area: Rect) {
    let t = &app.theme;
    if let Some(dialog) = &app.run_dialog {
        match dialog {
            RunDialog::Start(start) => {
                let what = match start.mode {
                    RunMode::Test => format!(
                        "Start a test of plan {} at {}? Storage is synchronized first; replication keeps running.",
                        start.plan_name,
                        app.model
                            .sites
                            .get(start.site)
                            .map_or("?", |s| s.name.as_str())
                    ),
                    _ if start.force => format!(
                        "Force the cleanup of plan {}'s test? It goes on past errors and says what it could not remove.",
                        start.plan_name
                    ),
                    _ => format!(
                        "Clean up plan {}'s test? Test VMs are powered off and their copies discarded.",
                        start.plan_name
                    ),
                };
                question(
                    app,
                    frame,
                    area,
                    &format!(" {} ", start.what()),
                    &what,
                    None,
                    "y/Enter start   n/Esc no",
                );
            }
            RunDialog::Cancel { what, .. } => question(
                app,
                frame,
                area,
                " Cancel the run ",
                &format!(
                    "Cancel {what}? It stops at its next safe point and says what state it left."
                ),
                None,
                "y/Enter cancel it   n/Esc keep it running",
            ),
            RunDialog::TypeName {
                start,
                typed,
                error,
            } => {
                let site = app
                    .model
                    .sites
                    .get(start.site)
                    .map_or("?", |s| s.name.as_str());
                let what = match start.mode {
                    RunMode::PlannedMigration => format!(
                        "A planned migration shuts down plan {}'s VMs at the protected site and runs them at {site}.",
                        start.plan_name
                    ),
                    RunMode::DisasterRecovery => format!(
                        "A disaster recovery runs plan {}'s VMs at {site} from their newest replicas; changes since are lost.",
                        start.plan_name
                    ),
                    _ => format!(
                        "A reprotect reverses plan {}: the VMs recovered at {site} become the protected ones.",
                        start.plan_name
                    ),
                };
                let mut input = vec![
                    Line::from(""),
                    Line::from(Span::styled("Type the plan's name to go on:", t.get("dim"))),
                    Line::from(Span::styled(format!("> {typed}█"), t.get("accent"))),
                ];
                if let Some(why) = error {
                    input.push(Line::from(Span::styled(format!("✖ {why}"), t.get("crit"))));
                }
                question(
                    app,
                    frame,
                    area,
                    &format!(" {} ", start.what()),
                    &what,
                    Some(input),
                    "Enter start   Esc cancel",
                );
            }
        }
        return;
    }
    if app.overlay != crate::app::Overlay::None {
        return;
    }
    if let Some(prompt) = app.prompt() {
        let mut text = prompt.message.clone();
        if let Some(vm) = &prompt.vm {
            text = format!("{text} (before {vm})");
        }
        question(
            app,
            frame,
            area,
            " The run waits for you ",
            &text,
            None,
            "Enter acknowledge, go on   Esc leave it waiting",
        );
    }
}

fn question(
    app: &App,
    frame: &mut Frame,
    area: Rect,
    title: &str,
    text: &str,
    extra: Option<Vec<Line>>,
    keys: &str,
) {
    let t = &app.theme;
    let width = 64u16.min(area.width);
    let inner = width.saturating_sub(2).max(1) as usize;
    let text_lines = text.chars().count().div_ceil(inner).max(1) as u16 + 1;
    let mut lines = vec![Line::from(text.to_string())];
    let extra = extra.unwrap_or_default();
    let extra_height = extra.len() as u16;
    lines.extend(extra);
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled(keys.to_string(), t.get("key"))));
    let popup = centered(area, width, text_lines + extra_height + 4);
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .block(boxed(app, title)),
        popup,
    );
}

#[cfg(test)]
mod snapshots;
