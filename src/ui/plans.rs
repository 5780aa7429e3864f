//! The recovery plans view (each plan, then the selected plan's start
//! order) and the plan editor: VMs by priority on the left; the selected
//! VM's settings and the start order, recomputed on every edit, on the
//! right.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{
    Block, Borders, Cell, HighlightSpacing, List, ListItem, ListState, Paragraph, Row, Table,
    TableState, Wrap,
};

use super::mappings::fit;
use crate::app::App;
use crate::editor::callouts;
use crate::editor::plans::{PlanEditor, ip_word};
use crate::model::Model;
use crate::theme::Theme;
use ferry_api::types::{Callout, PlanVm};

pub fn render(app: &App, frame: &mut Frame, area: Rect) {
    let t = &app.theme;
    let plans = app.plans_shown();
    let list_height = (plans.len() as u16 + 3).clamp(4, area.height / 2);
    let [top, bottom] =
        Layout::vertical([Constraint::Length(list_height), Constraint::Min(3)]).areas(area);
    let selected = app.cursor_among(plans.iter().map(|p| p.id.as_str()));
    let rows: Vec<Row> = plans
        .iter()
        .map(|p| {
            Row::new([
                Cell::from(p.name.clone()),
                Cell::from(format!("{} → {}", p.protected_site, p.recovery_site)),
                Cell::from(p.state.label()),
                Cell::from(p.vms.len().to_string()),
                Cell::from(p.next.clone()),
            ])
        })
        .collect();
    // The State column fits its longest word: `reprotect in progress`
    // is never cut to `reprotect in`.
    let state_width = plans
        .iter()
        .map(|p| p.state.label().chars().count() as u16)
        .max()
        .unwrap_or(0)
        .max(5);
    // Names take what the longest needs, so Next (what the operator acts
    // on) gets the rest of the width.
    let name_width = plans
        .iter()
        .map(|p| p.name.chars().count() as u16)
        .max()
        .unwrap_or(0)
        .clamp(4, 32);
    let table = Table::new(
        rows,
        [
            Constraint::Length(name_width),
            Constraint::Length(18),
            Constraint::Length(state_width),
            Constraint::Length(4),
            Constraint::Min(10),
        ],
    )
    .header(Row::new(["Name", "Direction", "State", "VMs", "Next"]).style(t.get("title")))
    .block(
        Block::new()
            .borders(Borders::TOP)
            .border_style(t.get("border"))
            .title(Span::styled(
                super::counted("Recovery plans", plans.len(), app.model.plans().len()),
                t.get("title"),
            )),
    )
    .row_highlight_style(t.get("selected"))
    .highlight_symbol("▶ ");
    let mut state = TableState::default().with_selected((!plans.is_empty()).then_some(selected));
    frame.render_stateful_widget(table, top, &mut state);
    let Some(plan) = plans.get(selected) else {
        let hint = if !app.may(ferry_api::types::Role::Admin, None) {
            "No recovery plans yet."
        } else {
            "No recovery plans yet: n makes one."
        };
        frame.render_widget(Paragraph::new(Span::styled(hint, t.get("dim"))), bottom);
        return;
    };
    let mut lines = vec![Line::from(vec![
        Span::styled("groups ", t.get("dim")),
        Span::raw(group_names(&app.model, &plan.groups)),
        Span::styled("   callouts ", t.get("dim")),
        Span::raw(callouts::summary(&plan.pre_power_on, &plan.post_power_on)),
    ])];
    if !plan.description.is_empty() {
        lines.push(Line::from(Span::styled(
            plan.description.clone(),
            t.get("dim"),
        )));
    }
    if let Some(line) = super::runs::plan_run_line(app, &plan.id) {
        lines.push(line);
    }
    lines.extend(order_lines(t, &app.model, &plan.start_order, &plan.vms));
    frame.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: false }).block(
            Block::new()
                .borders(Borders::TOP)
                .border_style(t.get("border"))
                .title(Span::styled(
                    format!(" {}: start order ", plan.name),
                    t.get("title"),
                )),
        ),
        bottom,
    );
}

fn group_names(model: &Model, ids: &[String]) -> String {
    if ids.is_empty() {
        return "none".into();
    }
    ids.iter()
        .map(|id| model.group(id).map_or(id.clone(), |g| g.name.clone()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `P1  db-01 → db-02` per priority that has VMs; `→` is "then".
fn order_lines<'a>(
    t: &Theme,
    model: &Model,
    order: &[Vec<String>],
    vms: &[PlanVm],
) -> Vec<Line<'a>> {
    let mut lines = Vec::new();
    let mut n = 0;
    for (i, ids) in order.iter().enumerate().filter(|(_, ids)| !ids.is_empty()) {
        let names: Vec<String> = ids
            .iter()
            .map(|id| {
                n += 1;
                let off = vms.iter().any(|v| v.vm_id == *id && !v.power_on);
                format!(
                    "{n}.{}{}",
                    model.vm_name(id),
                    if off { " (off)" } else { "" }
                )
            })
            .collect();
        lines.push(Line::from(vec![
            Span::styled(format!("P{} ", i + 1), t.get("key")),
            Span::raw(names.join(" → ")),
        ]));
    }
    if lines.is_empty() {
        lines.push(Line::from(Span::styled("no VMs yet", t.get("dim"))));
    }
    lines
}

pub fn editor(app: &App, frame: &mut Frame, area: Rect, p: &PlanEditor) {
    let t = &app.theme;
    let model = &app.model;
    let [head, body] = Layout::vertical([Constraint::Length(3), Constraint::Min(3)]).areas(area);
    let state = if app.saving > 0 {
        Span::styled("⟳ saving", t.get("accent"))
    } else if p.is_dirty() {
        Span::styled("● unsaved", t.get("warn"))
    } else {
        Span::styled("✔ saved", t.get("ok"))
    };
    let direction = match (
        p.site(model),
        p.spec.groups.first().and_then(|g| model.group(g)),
    ) {
        (Some(to), Some(g)) => format!("{} → {to}", g.protected_site),
        _ => "no groups yet (a picks)".into(),
    };
    let mut lines = vec![
        Line::from(vec![
            Span::styled(format!(" Plan {} ", p.spec.name), t.get("title")),
            Span::raw(format!(" {direction}  ")),
            state,
        ]),
        Line::from(vec![
            Span::styled(" groups ", t.get("dim")),
            Span::raw(group_names(model, &p.spec.groups)),
            Span::styled("  plan callouts ", t.get("dim")),
            Span::raw(callouts::summary(
                &p.spec.pre_power_on,
                &p.spec.post_power_on,
            )),
        ]),
    ];
    for (key, why) in p
        .errors
        .iter()
        .filter(|(k, _)| ["", "name", "groups", "callouts"].contains(&k.as_str()))
    {
        let field = if key.is_empty() {
            String::new()
        } else {
            format!("{key}: ")
        };
        lines.insert(
            1,
            Line::from(Span::styled(format!(" ✖ {field}{why}"), t.get("crit"))),
        );
    }
    frame.render_widget(Paragraph::new(lines), head);
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(body);
    vm_list(app, frame, left, p);
    side(app, frame, right, p);
}

fn vm_list(app: &App, frame: &mut Frame, area: Rect, p: &PlanEditor) {
    let t = &app.theme;
    let model = &app.model;
    let rows = p.rows(model);
    let width = area.width.saturating_sub(3) as usize;
    let mut items = Vec::new();
    let mut selected_item = None;
    let mut priority = 0;
    for (n, &i) in rows.iter().enumerate() {
        let vm = &p.spec.vms[i];
        if vm.priority != priority {
            priority = vm.priority;
            items.push(ListItem::new(Span::styled(
                format!("Priority {priority}"),
                t.get("title"),
            )));
        }
        if n == p.selected {
            selected_item = Some(items.len());
        }
        let mut spans = vec![
            Span::raw(format!("{:<12}", fit(&model.vm_name(&vm.vm_id), 12))),
            if vm.power_on {
                Span::styled(" on ", t.get("ok"))
            } else {
                Span::styled(" off", t.get("dim"))
            },
            Span::raw(format!(
                " {:>5}",
                format!("{}s", vm.heartbeat_timeout_seconds)
            )),
            Span::raw(format!(" {:<6}", fit(&ip_word(&vm.ip_customization), 6))),
        ];
        let callouts = vm.pre_power_on.len() + vm.post_power_on.len();
        if callouts > 0 {
            spans.push(Span::styled(format!(" ⚙{callouts}"), t.get("accent")));
        }
        if !vm.depends_on.is_empty() {
            let names: Vec<String> = vm.depends_on.iter().map(|d| model.vm_name(d)).collect();
            spans.push(Span::styled(
                format!(" after {}", names.join(",")),
                t.get("dim"),
            ));
        }
        let mut text = Text::from(Line::from(spans));
        if let Some(why) = p.errors.get(&vm.vm_id) {
            text.push_line(Span::styled(
                format!("  ✖ {}", fit(why, width)),
                t.get("crit"),
            ));
        }
        items.push(ListItem::new(text));
    }
    if items.is_empty() {
        items.push(ListItem::new(Span::styled(
            "no VMs: a picks protection groups",
            t.get("dim"),
        )));
    }
    let list = List::new(items)
        .block(
            Block::new()
                .borders(Borders::TOP | Borders::RIGHT)
                .border_style(t.get("border"))
                .title(Span::styled(" VMs by priority ", t.get("title"))),
        )
        .highlight_style(t.get("selected"))
        .highlight_symbol("▶")
        .highlight_spacing(HighlightSpacing::Always);
    let mut state = ListState::default().with_selected(selected_item);
    frame.render_stateful_widget(list, area, &mut state);
}

fn side(app: &App, frame: &mut Frame, area: Rect, p: &PlanEditor) {
    let t = &app.theme;
    let model = &app.model;
    let mut lines = Vec::new();
    if let Some(vm) = p.selected_vm(model) {
        let deps: Vec<String> = vm.depends_on.iter().map(|d| model.vm_name(d)).collect();
        lines.push(Line::from(Span::styled(
            model.vm_name(&vm.vm_id),
            t.get("title"),
        )));
        let field = |k: &str, v: String| {
            Line::from(vec![
                Span::styled(format!("{k:<10}"), t.get("dim")),
                Span::raw(v),
            ])
        };
        lines.push(field("priority", vm.priority.to_string()));
        lines.push(field(
            "after",
            if deps.is_empty() {
                "—".into()
            } else {
                deps.join(", ")
            },
        ));
        lines.push(field(
            "power",
            if vm.power_on {
                "on".into()
            } else {
                "left off".into()
            },
        ));
        lines.push(field(
            "heartbeat",
            format!("{} s", vm.heartbeat_timeout_seconds),
        ));
        lines.push(field("IP", ip_word(&vm.ip_customization)));
        for (when, list) in [("pre", &vm.pre_power_on), ("post", &vm.post_power_on)] {
            for c in list {
                lines.push(field(when, callout_text(c)));
            }
        }
        lines.push(Line::from(""));
    }
    lines.push(Line::from(Span::styled(
        "Start order (live)",
        t.get("title"),
    )));
    match p.start_order() {
        Ok(order) => lines.extend(order_lines(t, model, &order, &p.spec.vms)),
        Err(cycle) => {
            let names: Vec<String> = cycle.iter().map(|id| model.vm_name(id)).collect();
            lines.push(Line::from(Span::styled(
                format!("✖ dependency cycle: {}", names.join(" → ")),
                t.get("crit"),
            )));
        }
    }
    frame.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: false }).block(
            Block::new()
                .borders(Borders::TOP)
                .border_style(t.get("border")),
        ),
        area,
    );
}

fn callout_text(c: &Callout) -> String {
    match c {
        Callout::Command {
            command,
            timeout_seconds,
        } => format!("$ {command} ({timeout_seconds}s)"),
        Callout::Prompt { message } => format!("? {message}"),
    }
}

#[cfg(test)]
mod tests {
    use ferry_api::types::PlanState;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    use crate::app::fixture;
    use crate::app::{Action, View};

    #[test]
    fn a_long_plan_state_is_not_cut_at_80_columns() {
        let mut app = fixture::app(false);
        for site in &mut app.model.sites {
            for plan in site.protection.plans.values_mut() {
                plan.state = PlanState::ReprotectInProgress;
            }
        }
        app.update(Action::Show(View::Plans));
        let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
        terminal
            .draw(|frame| crate::ui::render(&app, frame))
            .unwrap();
        let buffer = terminal.backend().buffer();
        let screen: String = (0..24)
            .flat_map(|y| (0..80).map(move |x| (x, y)))
            .map(|xy| buffer[xy].symbol().to_string())
            .collect();
        assert!(screen.contains("reprotect in progress"), "{screen}");
    }
}
