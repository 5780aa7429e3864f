//! What opens on top of a view: help, the command palette, the filter
//! prompt and the detail panes of a replication and of an alarm.

use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::{age, bytes, clock, date_time};
use crate::app::{App, Overlay};
use crate::model::{compliance, lag_seconds};
use crate::theme::Theme;

pub fn render(app: &App, frame: &mut Frame, area: Rect) {
    match &app.overlay {
        Overlay::None => {}
        Overlay::Help => help(app, frame, area),
        Overlay::Palette(input) => palette(app, frame, area, input),
        Overlay::Filter => prompt(app, frame, area, &format!("/{}", app.filter)),
        Overlay::Detail(vm_id) => detail(app, frame, area, vm_id),
        Overlay::Event(key) => event(app, frame, area, key),
    }
}

pub fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let [row] = Layout::vertical([Constraint::Length(height.min(area.height))])
        .flex(Flex::Center)
        .areas(area);
    let [cell] = Layout::horizontal([Constraint::Length(width.min(area.width))])
        .flex(Flex::Center)
        .areas(row);
    cell
}

pub fn boxed<'a>(app: &App, title: &'a str) -> Block<'a> {
    Block::new()
        .borders(Borders::ALL)
        .border_style(app.theme.get("accent"))
        .title(Span::styled(title, app.theme.get("title")))
        .style(app.theme.get("base"))
}

fn help(app: &App, frame: &mut Frame, area: Rect) {
    let t = &app.theme;
    let mut lines = vec![Line::from(Span::styled(
        "Keys in this view",
        t.get("title"),
    ))];
    let keys = app_keys_under_help(app);
    for (key, what) in keys {
        lines.push(Line::from(vec![
            Span::styled(format!("{key:>10}  "), t.get("key")),
            Span::raw(what),
        ]));
    }
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled("Commands (:)", t.get("title"))));
    for (cmd, what) in app.commands() {
        lines.push(Line::from(vec![
            Span::styled(format!("{:>10}  ", format!(":{cmd}")), t.get("key")),
            Span::raw(what),
        ]));
    }
    lines.push(Line::from(vec![
        Span::styled(format!("{:>10}  ", "0 … 7"), t.get("key")),
        Span::raw("the views, in the header's order (0 Home)"),
    ]));
    let height = lines.len() as u16 + 2;
    let popup = centered(area, 56, height);
    frame.render_widget(Clear, popup);
    let title = format!(" Help ({} theme): ? or Esc closes ", app.theme.name);
    frame.render_widget(Paragraph::new(lines).block(boxed(app, &title)), popup);
}

/// The keys the view offers with nothing open on top of it.
fn app_keys_under_help(app: &App) -> Vec<(&'static str, &'static str)> {
    let mut keys = vec![
        ("Tab/S-Tab", "next / previous view"),
        ("h l ← →", "previous / next view"),
        (":", "command palette"),
        ("?", "this help"),
        ("q", "quit"),
    ];
    if app.view == crate::app::View::Replication {
        keys.extend([
            ("↑ ↓ j k", "move"),
            ("g G", "first / last row"),
            ("/", "filter rows"),
            ("s", "sort by the next column"),
            ("S", "reverse the sort"),
            ("Enter", "details of the VM"),
            ("Esc", "back; clear the filter"),
        ]);
        if app.may_replicate() {
            keys.extend([("n", "sync the VM now"), ("p", "pause or resume it")]);
        }
    }
    if app.view == crate::app::View::Events {
        keys.push(("↑ ↓ j k", "move"));
    }
    if app.view == crate::app::View::Home {
        keys.push(("↑ ↓ j k", "move through the alarms"));
        if app.may_ack() {
            keys.push(("a", "acknowledge the alarm (at its site, seen by all)"));
        }
    }
    if app.run.is_some() || app.view == crate::app::View::History {
        return [keys, app.run_help_keys()].concat();
    }
    if app.view.edits() {
        keys.extend(app.help_keys());
    }
    if app.view == crate::app::View::Plans && app.editor.is_none() {
        keys.extend(app.plan_run_keys(true));
    }
    keys
}

fn palette(app: &App, frame: &mut Frame, area: Rect, input: &str) {
    let t = &app.theme;
    let matches: Vec<Line> = app
        .commands()
        .into_iter()
        .filter(|(c, _)| c.starts_with(input))
        .map(|(c, what)| {
            Line::from(vec![
                Span::styled(format!(":{c:<12}"), t.get("key")),
                Span::raw(what),
            ])
        })
        .collect();
    let mut lines = vec![Line::from(Span::styled(
        format!(":{input}█"),
        t.get("accent"),
    ))];
    lines.extend(matches);
    let popup = centered(area, 48, lines.len() as u16 + 2);
    frame.render_widget(Clear, popup);
    frame.render_widget(Paragraph::new(lines).block(boxed(app, " Command ")), popup);
}

fn prompt(app: &App, frame: &mut Frame, area: Rect, text: &str) {
    let [line] = Layout::vertical([Constraint::Length(1)])
        .flex(Flex::End)
        .areas(area);
    frame.render_widget(Clear, line);
    frame.render_widget(
        Paragraph::new(Span::styled(format!("{text}█"), app.theme.get("accent"))),
        line,
    );
}

/// A one-line sparkline of `values` in block characters.
fn sparkline(values: &[u64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = values.iter().copied().max().unwrap_or(0).max(1);
    values
        .iter()
        .map(|&v| BARS[((v * 7) / max) as usize])
        .collect()
}

fn detail(app: &App, frame: &mut Frame, area: Rect, vm_id: &str) {
    let t = &app.theme;
    let Some((site, r)) = app.model.replications().find(|(_, r)| r.vm_id == vm_id) else {
        return;
    };
    let c = compliance(r, app.now_ms);
    let lag = lag_seconds(r, app.now_ms).map_or("-".into(), age);
    let mut lines = vec![
        Line::from(format!(
            "{} → {}",
            r.source_site,
            r.target_site.as_deref().unwrap_or("?")
        )),
        Line::from(format!(
            "state {}   RPO {}   lag {lag} {} {}",
            r.state,
            age(r.rpo_seconds as f64),
            c.symbol(),
            c.word()
        )),
        Line::from(format!(
            "target datastore {}   compression {}   paused {}",
            r.datastore, r.compress, r.paused
        )),
    ];
    let state = app.model.sites.get(site);
    if let Some(vm) = state.and_then(|s| s.vms.get(vm_id)) {
        let disks: Vec<String> = vm
            .disks
            .iter()
            .map(|d| format!("{} {}", d.datastore, bytes(d.size_bytes)))
            .collect();
        lines.push(Line::from(format!(
            "disks {}   folder {}   pool {}",
            disks.join(", "),
            vm.folder,
            vm.resource_pool
        )));
        lines.extend(compute_lines(t, vm));
    }
    if let Some(p) = r.progress {
        let speed =
            state
                .and_then(|s| s.rate_and_eta(r, app.now))
                .map_or(String::new(), |(rate, eta)| {
                    format!(
                        " at {}/s, ETA {}",
                        bytes(rate as u64),
                        age(eta.as_secs_f64())
                    )
                });
        lines.push(Line::from(format!(
            "syncing {} of {}{speed}",
            bytes(p.bytes_done),
            bytes(p.bytes_total)
        )));
    }
    if let Some(l) = r.last_sync {
        lines.push(Line::from(format!(
            "last cycle: instance {} at {} took {} ms, {} sent{}",
            l.instance,
            clock(l.finished_at),
            l.duration_ms,
            bytes(l.bytes),
            if l.full { " (full sync)" } else { "" }
        )));
    }
    if let Some(e) = &r.last_error {
        lines.push(Line::from(Span::styled(
            format!("error: {e}"),
            t.get("crit"),
        )));
    }
    if let Some(old) = app.model.sites.get(site).and_then(|s| s.stale_for(app.now)) {
        lines.push(Line::from(Span::styled(
            format!("STALE: site data {} old", age(old.as_secs_f64())),
            t.get("stale"),
        )));
    }
    if let Some(cycles) = state
        .and_then(|s| s.cycles.get(vm_id))
        .filter(|c| c.len() > 1)
    {
        let peaks: Vec<u64> = cycles
            .iter()
            .map(|c| (c.peak_lag_s * 10.0) as u64)
            .collect();
        let worst = cycles.iter().map(|c| c.peak_lag_s).fold(0.0, f64::max);
        lines.push(Line::from(format!(
            "lag before each cycle, last {}: {} (worst {})",
            cycles.len(),
            sparkline(&peaks),
            age(worst)
        )));
        for c in cycles.iter().rev().take(4) {
            lines.push(Line::from(Span::styled(
                format!(
                    "  {} {} ms {}{}",
                    clock(c.finished_at_ms),
                    c.duration_ms,
                    bytes(c.bytes),
                    if c.full { " full" } else { "" }
                ),
                t.get("dim"),
            )));
        }
    }
    lines.push(Line::from(""));
    // The timeline gets what height the pane has left after the events.
    let room = (area.height as usize).saturating_sub(lines.len() + 2 + 2 + 4 + 2);
    lines.extend(super::timeline::lines(app, room.min(12)));
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled(
        "Events for this VM",
        t.get("title"),
    )));
    let events: Vec<Line> = app
        .model
        .alarms
        .iter()
        .filter(|a| a.row.vm_id.as_deref() == Some(vm_id))
        .take(8)
        .map(|a| Line::from(format!("{} {}", clock(a.row.at_ms), a.row.message)))
        .collect();
    if events.is_empty() {
        lines.push(Line::from(Span::styled("none", t.get("dim"))));
    }
    lines.extend(events);
    let title = format!(" {} ", r.vm);
    let popup = centered(area, 76, lines.len() as u16 + 2);
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .block(boxed(app, &title)),
        popup,
    );
}

/// One alarm in full: when (with the day), where, what kind, which VM, and
/// the whole message, wrapped, however long the list row cut it.
fn event(app: &App, frame: &mut Frame, area: Rect, key: &str) {
    let t = &app.theme;
    let Some(a) = app
        .model
        .alarms
        .iter()
        .find(|a| crate::app::alarm_key(a) == key)
    else {
        return;
    };
    let vm = a
        .row
        .vm_id
        .as_deref()
        .map_or("—".to_string(), |id| app.model.vm_name(id));
    let lines = vec![
        Line::from(vec![
            Span::styled("at ", t.get("dim")),
            Span::raw(format!("{} UTC", date_time(a.row.at_ms))),
            Span::styled("   site ", t.get("dim")),
            Span::raw(a.site.clone()),
        ]),
        Line::from(vec![
            Span::styled("severity ", t.get("dim")),
            Span::raw(a.row.severity.clone()),
            Span::styled("   kind ", t.get("dim")),
            Span::raw(a.row.kind.clone()),
            Span::styled("   VM ", t.get("dim")),
            Span::raw(vm),
        ]),
        Line::from(""),
        Line::from(a.row.message.clone()),
    ];
    let width = 76u16.min(area.width);
    let wrapped = a.row.message.chars().count() as u16 / width.saturating_sub(4).max(1) + 1;
    let popup = centered(area, width, 5 + wrapped + 1);
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .block(boxed(app, " Event ")),
        popup,
    );
}

#[cfg(test)]
#[path = "role_tests.rs"]
mod role_tests;

/// A real QEMU VM: its process, size and power; a crash's cause; and the
/// tail of its console.
fn compute_lines<'a>(t: &Theme, vm: &'a ferry_api::types::VmInfo) -> Vec<Line<'a>> {
    use ferry_api::types::{ComputeKind, PowerState};
    let mut lines = Vec::new();
    let power = match vm.power_state {
        PowerState::On => "on",
        PowerState::Off => "off",
        PowerState::Crashed => "CRASHED",
    };
    // The built-in guest is the default and says nothing unless it failed.
    if vm.compute == ComputeKind::Qemu {
        lines.push(Line::from(format!(
            "real VM (qemu{}{})   {} MiB, {} vCPU   power {power}",
            vm.pid.map_or(String::new(), |p| format!(", pid {p}")),
            vm.accelerator
                .as_deref()
                .map_or(String::new(), |a| format!(", {a}")),
            vm.memory_mib,
            vm.vcpus,
        )));
    }
    if let Some(problem) = &vm.problem {
        lines.push(Line::from(Span::styled(
            format!("problem: {problem}"),
            t.get("crit"),
        )));
    }
    if let Some(console) = vm.console_tail.as_deref().filter(|c| !c.is_empty()) {
        lines.push(Line::from(Span::styled("console:", t.get("title"))));
        for line in console.lines() {
            lines.push(Line::from(Span::styled(format!("  {line}"), t.get("dim"))));
        }
    }
    lines
}
