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
    // A site that stopped answering: its counts are what it last said, and
    // say so in words; its rate is unknown, not the last one seen.
    let stale_age = s.stale_for(app.now).map(|d| age(d.as_secs_f64()));
    let protected = match &stale_age {
        Some(old) => format!(
            "protected VMs {} · STALE {old}",
            app.model.protected_count(index)
        ),
        None => format!(
            "protected VMs {}, {}/s",
            app.model.protected_count(index),
            bytes(rate as u64)
        ),
    };
    // The cap in force and what the senders draw now, only while the site
    // answers (a stale rate would be a guess).
    let protected = match (&s.bandwidth, &stale_age) {
        (Some(b), None) => format!(
            "{protected} · cap {} · sending {}/s",
            b.now,
            bytes(b.rate_bytes_per_second)
        ),
        _ => protected,
    };
    let mut counts = Vec::new();
    if stale_age.is_some() {
        counts.push(Span::styled("STALE ", t.get("stale")));
    }
    counts.extend([
        Span::styled(format!("✔ {ok} ok  "), t.get("ok")),
        Span::styled(format!("▲ {risk} at risk  "), t.get("warn")),
        Span::styled(format!("✖ {violated} violated  "), t.get("crit")),
        Span::styled(format!("… {pending}"), t.get("dim")),
    ]);
    let lines = vec![
        Line::from(vec![Span::styled(link, style)]),
        Line::from(format!(
            "{}, contact {contact}",
            s.url.trim_start_matches("http://")
        )),
        Line::from(format!("peer {peer}")),
        Line::from(protected),
        Line::from(counts),
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

#[cfg(test)]
mod tests {
    use crate::app::fixture;
    use crate::app::{Action, View};
    use crate::model::FeedUpdate;
    use crate::ui::testing::render_to_string as render;

    /// A dead site's counts say they are the last known, in words.
    #[test]
    fn a_dead_sites_counts_are_marked_stale() {
        let mut app = fixture::app(false);
        app.update(Action::Show(View::Dashboard));
        let live = render(&app, 160, 48);
        assert!(!live.contains("STALE"), "{live}");
        app.feed(FeedUpdate::Down {
            site: 0,
            error: "connection refused".into(),
        });
        let screen = render(&app, 160, 48);
        // Site-a's pane is the left one; site-b's stays live.
        let line = screen
            .lines()
            .find(|l| l.contains("protected VMs"))
            .unwrap_or_default();
        let (a, b) = line.split_once("││").unwrap_or((line, ""));
        assert!(a.contains("STALE"), "{screen}");
        assert!(!a.contains("/s"), "no rate while stale: {a}");
        assert!(b.contains("/s") && !b.contains("STALE"), "{b}");
        assert!(screen.lines().any(|l| l.contains("STALE ✔")), "{screen}");
    }

    /// The cap in force and the rate sent show beside the site's rate, and
    /// go once the site stops answering.
    #[test]
    fn the_bandwidth_cap_and_rate_show_while_the_site_answers() {
        use ferry_api::bandwidth::{BandwidthInfo, BandwidthPolicy, CapInForce};
        let mut app = fixture::app(false);
        app.update(Action::Show(View::Dashboard));
        assert!(!render(&app, 200, 48).contains("cap "));
        app.feed(FeedUpdate::Bandwidth {
            site: 0,
            info: BandwidthInfo {
                policy: BandwidthPolicy::default(),
                now: CapInForce {
                    mib_per_second: Some(50),
                    window: Some(0),
                },
                rate_bytes_per_second: 48 << 20,
            },
        });
        let screen = render(&app, 200, 48);
        assert!(
            screen.contains("cap 50 MiB/s (window 1) · sending 48.0 MiB/s"),
            "{screen}"
        );
        app.feed(FeedUpdate::Down {
            site: 0,
            error: "connection refused".into(),
        });
        assert!(!render(&app, 200, 48).contains("sending"));
    }
}
