//! The dashboard: both sites side by side (link, protection, RPO
//! compliance, throughput), and the latest alarms.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Sparkline};

use super::{age, bytes, events};
use crate::app::App;
use crate::model::{BUCKET, Link};
use ferry_api::types::PeerStatus;

pub fn render(app: &App, frame: &mut Frame, area: Rect) {
    let [sites_area, alarms_area] =
        Layout::vertical([Constraint::Length(9), Constraint::Min(3)]).areas(area);
    let count = app.model.sites.len().max(1) as u32;
    let columns =
        Layout::horizontal((0..count).map(|_| Constraint::Ratio(1, count))).split(sites_area);
    for (i, column) in columns.iter().enumerate() {
        site(app, i, frame, *column);
    }
    events::list(app, frame, alarms_area, " Recent alarms ");
}

fn site(app: &App, index: usize, frame: &mut Frame, area: Rect) {
    let t = &app.theme;
    let Some(s) = app.model.sites.get(index) else {
        return;
    };
    let (link, style) = match s.link {
        Link::Connected => ("● connected".to_string(), t.get("ok")),
        Link::Connecting => ("○ connecting".to_string(), t.get("dim")),
        Link::Unreachable => (
            format!("✖ UNREACHABLE {}", s.error.clone().unwrap_or_default()),
            t.get("crit"),
        ),
    };
    let contact = s.last_contact.map_or("never".into(), |c| {
        format!("{} ago", age((app.now - c).as_secs_f64()))
    });
    let peer = s.peer.as_ref().map_or("unpaired".to_string(), |p| {
        let status = match p.status {
            PeerStatus::Connected => "● connected",
            PeerStatus::Unreachable => "✖ unreachable",
            // A site waits for a peer it has not reached since it started
            // before calling it unreachable.
            PeerStatus::Unknown if p.error.is_some() => "○ waiting for first contact",
            PeerStatus::Unknown => "○ not checked yet",
        };
        format!("{} {status}", p.name)
    });
    let [ok, risk, violated, pending] = app.model.compliance_counts(index, app.now_ms);
    let recent: u64 = s.throughput.iter().rev().take(12).sum();
    let rate = recent as f64 / (12 * BUCKET.as_secs()) as f64;
    let lines = vec![
        Line::from(vec![Span::styled(link, style)]),
        Line::from(format!(
            "{}, contact {contact}",
            s.url.trim_start_matches("http://")
        )),
        Line::from(format!("peer {peer}")),
        Line::from(format!(
            "protected VMs {}, {}/s",
            app.model.protected_count(index),
            bytes(rate as u64)
        )),
        Line::from(vec![
            Span::styled(format!("✔ {ok} ok  "), t.get("ok")),
            Span::styled(format!("▲ {risk} at risk  "), t.get("warn")),
            Span::styled(format!("✖ {violated} violated  "), t.get("crit")),
            Span::styled(format!("… {pending}"), t.get("dim")),
        ]),
    ];
    let stale = s.stale_for(app.now).is_some();
    let block = Block::new()
        .borders(Borders::ALL)
        .border_style(if stale {
            t.get("crit")
        } else {
            t.get("border")
        })
        .title(Span::styled(format!(" {} ", s.name), t.get("title")));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [text, spark] = Layout::vertical([Constraint::Length(5), Constraint::Min(1)]).areas(inner);
    let paragraph = Paragraph::new(lines).style(if stale { t.get("stale") } else { t.get("base") });
    frame.render_widget(paragraph, text);
    let data: Vec<u64> = s.throughput.iter().copied().collect();
    frame.render_widget(
        Sparkline::default().data(&data).style(t.get("accent")),
        spark,
    );
}
