//! The home screen: runs going now with their progress; every plan with
//! its state, what it may do next (in full), the data it risks now and its
//! estimated RTO; RPO compliance per protection group; the alarms to
//! acknowledge.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};

use super::{age, clock, date_time};
use crate::app::App;
use crate::model::runs::{progress, run_look};
use crate::model::{Compliance, compliance};

pub fn render(app: &App, frame: &mut Frame, area: Rect) {
    let t = &app.theme;
    let [runs_area, plans_area, tiers_area, alarms_area] = Layout::vertical([
        // A run's line wraps on narrow terminals: room for two rows each.
        Constraint::Length(
            app.running().len().clamp(1, 3) as u16 * if area.width < 120 { 2 } else { 1 } + 1,
        ),
        Constraint::Min(4),
        Constraint::Length(app.model.groups().len().clamp(1, 4) as u16 + 1),
        Constraint::Min(3),
    ])
    .areas(area);
    let title = |text: String| {
        Block::new()
            .borders(Borders::TOP)
            .border_style(t.get("border"))
            .title(Span::styled(text, t.get("title")))
    };

    let running = app.running();
    let mut lines: Vec<Line> = running
        .iter()
        .map(|r| {
            let (symbol, word, role) = run_look(r.state);
            let (done, all) = progress(r);
            Line::from(vec![
                Span::styled(format!("{symbol} {word} "), t.get(role)),
                Span::raw(format!(
                    "{} of {}: step {done} of {all}, {}",
                    r.mode.label(),
                    r.plan_name,
                    r.message
                )),
            ])
        })
        .collect();
    if lines.is_empty() {
        lines.push(Line::from(Span::styled("no run in progress", t.get("dim"))));
    }
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(title(" Runs now ".into())),
        runs_area,
    );

    let mut lines = Vec::new();
    for plan in app.model.plans() {
        let risk = app.plan_at_risk(plan).map_or_else(
            || Span::styled("no VM protected", t.get("dim")),
            |r| {
                let role = match r.compliance {
                    Compliance::Ok => "ok",
                    Compliance::AtRisk => "warn",
                    Compliance::Violated => "crit",
                    Compliance::Unknown => "dim",
                };
                let lag = r.lag_seconds.map_or("never synced".into(), age);
                Span::styled(
                    format!(
                        "{} {} {lag} of RPO {}",
                        r.compliance.symbol(),
                        r.vm,
                        age(r.rpo_seconds as f64)
                    ),
                    t.get(role),
                )
            },
        );
        let rto = app.last_test(plan).map_or_else(
            || "RTO unknown: no test yet".to_string(),
            |run| match run.rto_seconds {
                Some(s) => format!("RTO ~{} (test {})", age(s), date_time(run.started_ms)),
                None => format!("RTO unknown (test {} had none)", date_time(run.started_ms)),
            },
        );
        lines.push(Line::from(vec![
            Span::styled(format!("{} ", plan.name), t.get("accent")),
            Span::raw(format!(
                "{} → {}  {}  ",
                plan.protected_site,
                plan.recovery_site,
                plan.state.label()
            )),
            risk,
            Span::styled(format!("  {rto}"), t.get("dim")),
        ]));
        // `next` in full, on its own line: it is what the operator acts on.
        lines.push(Line::from(vec![
            Span::styled("  next: ", t.get("dim")),
            Span::raw(plan.next.clone()),
        ]));
    }
    if lines.is_empty() {
        lines.push(Line::from(Span::styled(
            "no recovery plan yet",
            t.get("dim"),
        )));
    }
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(title(format!(" Plans: {} ", app.model.plans().len()))),
        plans_area,
    );

    let mut lines = Vec::new();
    for g in app.model.groups() {
        let mut counts = [0usize; 4];
        // VMs recovered at the other site: their old replication's lag is
        // no compliance, good or bad.
        let mut recovered = 0;
        for v in &g.vms {
            let copies: Vec<_> = app
                .model
                .replications()
                .filter(|(_, r)| r.vm_id == v.vm_id)
                .map(|(_, r)| r)
                .collect();
            let live = copies.iter().find(|r| !app.model.lifecycle(r).has_ended());
            match live {
                Some(r) => counts[compliance(r, app.now_ms) as usize] += 1,
                None if !copies.is_empty() => recovered += 1,
                None => counts[Compliance::Unknown as usize] += 1,
            }
        }
        let [ok, risk, violated, pending] = counts;
        let mut spans = vec![
            Span::styled(format!("{:<16} ", g.name), t.get("accent")),
            Span::styled(format!("✔ {ok} ok"), t.get("ok")),
        ];
        for (n, word, role) in [
            (risk, "▲ at risk", "warn"),
            (violated, "✖ violated", "crit"),
            (pending, "… pending", "dim"),
            (recovered, "⇥ recovered elsewhere", "dim"),
        ] {
            if n > 0 {
                spans.push(Span::styled(format!("  {word} {n}"), t.get(role)));
            }
        }
        lines.push(Line::from(spans));
    }
    if lines.is_empty() {
        lines.push(Line::from(Span::styled(
            "no protection group yet",
            t.get("dim"),
        )));
    }
    frame.render_widget(
        Paragraph::new(lines).block(title(" RPO by protection group ".into())),
        tiers_area,
    );

    let alarms = app.home_alarms();
    let open = alarms.iter().filter(|a| !app.acknowledged(a)).count();
    let at = app.cursor();
    let height = alarms_area.height.saturating_sub(1) as usize;
    let first = at.saturating_sub(height.saturating_sub(1));
    let lines: Vec<Line> = alarms
        .iter()
        .enumerate()
        .skip(first)
        .take(height)
        .map(|(i, a)| {
            let (mark, role) = match (&a.row.acked, a.row.severity.as_str()) {
                (Some(_), _) => ("✔ acked", "dim"),
                (None, "critical") => ("✖ CRIT ", "crit"),
                (None, _) => ("▲ WARN ", "warn"),
            };
            // Who acknowledged it, as the site recorded.
            let by = a.row.acked.as_ref().map_or(String::new(), |k| {
                format!(" (by {} {})", k.by, clock(k.at_ms))
            });
            let cursor = if i == at { "▶ " } else { "  " };
            Line::from(vec![
                Span::raw(cursor),
                Span::styled(format!("{mark} "), t.get(role)),
                Span::raw(format!(
                    "{} {} {}{by}",
                    clock(a.row.at_ms),
                    a.site,
                    a.row.message
                )),
            ])
        })
        .collect();
    let lines = if lines.is_empty() {
        vec![Line::from(Span::styled("no alarm", t.get("dim")))]
    } else {
        lines
    };
    frame.render_widget(
        Paragraph::new(lines).block(title(format!(" Alarms: {open} to acknowledge "))),
        alarms_area,
    );
}
