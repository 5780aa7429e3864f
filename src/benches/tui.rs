//! TUI benchmark: 10,000 replicated VMs in the state (synthetic,
//! in-process), rendered at 200x60.
//!
//! `cargo bench -p ferry --bench tui`. Prints the median frame time of the
//! replication view, the time to apply 1,000 status events, filter and sort
//! times, and the peak RSS.

use std::time::{Duration, Instant};

use ferry::app::{Action, App, View};
use ferry::model::tests::replication;
use ferry::model::{FeedUpdate, Model, SiteState};
use ferry::theme::Theme;
use ferry_api::types::{ProgressInfo, SiteEvent, SiteInfo};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const VMS: usize = 10_000;
const NOW: u64 = 1_795_000_000_000;

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let started = Instant::now();
    let mut model = Model::new(vec![
        SiteState::new("a", "http://a"),
        SiteState::new("b", "http://b"),
    ]);
    for site in 0..2 {
        let replications = (0..VMS / 2)
            .map(|i| {
                let mut r = replication(
                    &format!("vm-{site}-{i:05}"),
                    [15, 60, 300][i % 3],
                    Some((i as u64 * 37) % 400_000),
                    NOW,
                );
                r.vm_id = format!("site-{site}.vm-{i:05}");
                r
            })
            .collect();
        model.apply(
            FeedUpdate::Snapshot {
                site,
                info: SiteInfo {
                    name: format!("site-{site}"),
                    role: ferry_api::types::Role::Admin,
                    peer: None,
                    vm_count: VMS / 2,
                    replicated_count: VMS / 2,
                    fingerprint: None,
                    replication: None,
                },
                replications,
                alarms: vec![],
                vms: vec![],
            },
            Instant::now(),
        );
    }
    let theme = Theme::load("dark", std::path::Path::new("/nonexistent")).expect("theme");
    let mut app = App::new(model, theme, false, false);
    app.now_ms = NOW;
    app.update(Action::Show(View::Replication));
    println!(
        "state of {VMS} VMs built in {:.0} ms",
        started.elapsed().as_secs_f64() * 1e3
    );

    let mut terminal = Terminal::new(TestBackend::new(200, 60)).expect("terminal");
    let mut frames = Vec::new();
    for i in 0..200 {
        if i % 2 == 0 {
            app.update(Action::Down);
        }
        let t = Instant::now();
        terminal.draw(|f| ferry::ui::render(&app, f)).expect("draw");
        frames.push(t.elapsed());
    }
    println!(
        "render replication view, 200x60, {VMS} VMs: median {:.3} ms (target < 2 ms)",
        median(frames).as_secs_f64() * 1e3
    );

    let events: Vec<FeedUpdate> = (0..1000)
        .map(|i| {
            let mut r = replication(&format!("vm-0-{i:05}"), 15, Some(500), NOW);
            r.vm_id = format!("site-0.vm-{i:05}");
            r.state = "syncing".into();
            r.progress = Some(ProgressInfo {
                bytes_done: i,
                bytes_total: 1000,
            });
            FeedUpdate::Event {
                site: 0,
                event: SiteEvent::Replication(r),
            }
        })
        .collect();
    let t = Instant::now();
    for event in events {
        app.feed(event);
    }
    println!(
        "apply 1,000 status events: {:.3} ms (target < 1 ms)",
        t.elapsed().as_secs_f64() * 1e3
    );

    app.filter = "vm-1-0".into();
    let t = Instant::now();
    let shown = app.rows().len();
    println!(
        "filter {VMS} rows to {shown}: {:.3} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    app.filter.clear();
    for _ in 0..4 {
        app.update(Action::SortNext);
    }
    let t = Instant::now();
    let rows = app.rows().len();
    println!(
        "sort {rows} rows by lag: {:.3} ms",
        t.elapsed().as_secs_f64() * 1e3
    );

    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let peak = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    println!("peak RSS {:.1} MiB (target < 100 MB)", peak / 1024.0);
}
