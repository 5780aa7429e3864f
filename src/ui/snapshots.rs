//! Snapshot tests of every view, rendered to ratatui's `TestBackend` at
//! 80x24 and 160x48, from two real sites (in-process, on port 0) replicating
//! for real. Volatile text (ages, clocks, sizes, ports) is masked.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_replicator::access::{Role, TokenEntry, hash_token};
use ferry_replicator::api::types::{ReplicationInfo, SiteInfo};
use ferry_replicator::config::LoadedConfig;
use ferry_replicator::site::{self, Site};
use ferry_replicator::store::EventRow;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use serde_json::json;

use crate::app::{Action, App};
use crate::model::{FeedUpdate, Model, SiteState};
use crate::theme::Theme;

const TOKEN: &str = "snapshot-admin-token";

fn config_text(name: &str, vms: usize) -> String {
    let mut text = format!(
        "name = \"{name}\"\nfolders = [\"f\"]\nresource_pools = [\"p\"]\n[listen]\napi = \"127.0.0.1:0\"\nreplication = \"127.0.0.1:0\"\n[[datastores]]\nname = \"ds1\"\npath = \"ds1\"\n[[networks]]\nname = \"net\"\n"
    );
    let token = TokenEntry {
        name: "admin".into(),
        role: Role::Admin,
        hash: hash_token(TOKEN),
    };
    text.push_str(&format!(
        "[[tokens]]\nname = \"{}\"\nrole = \"admin\"\nhash = \"{}\"\n",
        token.name, token.hash
    ));
    for vm in ["db-01", "app-01", "web-01"].iter().take(vms) {
        text.push_str(&format!(
            "[[vms]]\nname = \"{vm}\"\nfolder = \"f\"\nresource_pool = \"p\"\npower_on = true\ndisks = [{{ datastore = \"ds1\", size_mib = 4 }}]\n"
        ));
    }
    text
}

struct Running {
    url: String,
    repl: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

async fn start(dir: &std::path::Path, name: &str, vms: usize) -> Running {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("site.toml"), config_text(name, vms)).unwrap();
    let config = LoadedConfig::load(&dir.join("site.toml")).unwrap();
    let (site, listeners): (Arc<Site>, _) = Site::start(config).await.unwrap();
    let url = format!("http://{}", listeners.api.local_addr().unwrap());
    let repl = listeners.replication.local_addr().unwrap().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = site::serve(site, listeners, async {
            let _ = stopped.await;
        })
        .await;
    });
    Running {
        url,
        repl,
        stop,
        task,
    }
}

async fn api<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<serde_json::Value>,
) -> T {
    let mut request = client.request(method, url).bearer_auth(TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap().json().await.unwrap()
}

fn render(app: &App, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|frame| super::render(app, frame)).unwrap();
    let buffer = terminal.backend().buffer();
    (0..height)
        .map(|y| {
            (0..width)
                .map(|x| buffer[(x, y)].symbol().to_string())
                .collect::<String>()
                .trim_end()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_view_at_both_sizes() {
    let tmp = tempfile::tempdir().unwrap();
    let a = start(&tmp.path().join("a"), "site-a", 3).await;
    let b = start(&tmp.path().join("b"), "site-b", 0).await;
    let client = reqwest::Client::new();
    for (site, peer, name) in [(&a, &b, "site-b"), (&b, &a, "site-a")] {
        let shown: SiteInfo = api(
            &client,
            reqwest::Method::GET,
            format!("{}/api/v1/site", peer.url),
            None,
        )
        .await;
        let _: serde_json::Value = api(
            &client,
            reqwest::Method::PUT,
            format!("{}/api/v1/site/peer", site.url),
            Some(
                json!({"name": name, "url": peer.url, "replication": peer.repl, "fingerprint": shown.fingerprint}),
            ),
        )
        .await;
    }
    for vm in ["db-01", "app-01", "web-01"] {
        let _: serde_json::Value = api(
            &client,
            reqwest::Method::PUT,
            format!("{}/api/v1/replications/site-a.{vm}", a.url),
            Some(json!({"rpo_seconds": 3600})),
        )
        .await;
    }
    let started = Instant::now();
    let (info_a, reps_a) = loop {
        let info: SiteInfo = api(
            &client,
            reqwest::Method::GET,
            format!("{}/api/v1/site", a.url),
            None,
        )
        .await;
        let reps: Vec<ReplicationInfo> = api(
            &client,
            reqwest::Method::GET,
            format!("{}/api/v1/replications", a.url),
            None,
        )
        .await;
        let connected = info
            .peer
            .as_ref()
            .is_some_and(|p| p.status == ferry_replicator::api::types::PeerStatus::Connected);
        if connected && reps.len() == 3 && reps.iter().all(|r| r.state == "ok") {
            break (info, reps);
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "sites did not settle: {reps:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut alarms: Vec<EventRow> = api(
        &client,
        reqwest::Method::GET,
        format!("{}/api/v1/alarms", a.url),
        None,
    )
    .await;
    // Whether site-a saw site-b before site-b was paired depends on timing;
    // the one alarm every run has is the connection being made.
    alarms.retain(|a| a.kind == "peer_connected");
    assert_eq!(alarms.len(), 1, "{alarms:?}");
    let vms_a: Vec<ferry_replicator::api::types::VmInfo> = api(
        &client,
        reqwest::Method::GET,
        format!("{}/api/v1/vms", a.url),
        None,
    )
    .await;
    let vms_a: Vec<_> = vms_a
        .into_iter()
        .map(|mut vm| {
            vm.guest = None; // heartbeats and sequence numbers move
            vm
        })
        .collect();
    // The dashboard shows each site's view of its peer: wait for site-b's
    // too, not only site-a's, so the snapshot does not race its check.
    let info_b: SiteInfo = loop {
        let info: SiteInfo = api(
            &client,
            reqwest::Method::GET,
            format!("{}/api/v1/site", b.url),
            None,
        )
        .await;
        let connected = info
            .peer
            .as_ref()
            .is_some_and(|p| p.status == ferry_replicator::api::types::PeerStatus::Connected);
        if connected {
            break info;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "site-b never saw site-a: {info:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // Pin what changes from run to run (times, sizes, ports), keeping all
    // that the sites really said: names, states, peers, alarms.
    const T0: u64 = 1_795_000_000_000;
    let mut reps_a = reps_a;
    for (i, r) in reps_a.iter_mut().enumerate() {
        r.point_time_ms = Some(T0 - 4_000 - 1_000 * i as u64);
        r.lag_seconds = Some(4.0 + i as f64);
        if let Some(last) = r.last_sync.as_mut() {
            last.finished_at = T0 - 3_000;
            last.duration_ms = 42;
            last.bytes = 3 << 20;
        }
    }
    for alarm in alarms.iter_mut() {
        alarm.at_ms = T0 - 10_000;
    }
    let mut info_a = info_a;
    let mut info_b = info_b;
    for peer in [info_a.peer.as_mut(), info_b.peer.as_mut()]
        .into_iter()
        .flatten()
    {
        peer.url = "http://127.0.0.1:PORT".into();
        peer.last_contact_ms = Some(T0 - 1_000);
    }
    let now = Instant::now();
    let mut model = Model::new(vec![
        SiteState::new("a", "http://127.0.0.1:47800"),
        SiteState::new("b", "http://127.0.0.1:47802"),
    ]);
    model.apply(
        FeedUpdate::Snapshot {
            site: 0,
            info: info_a,
            replications: reps_a,
            alarms,
            vms: vms_a,
        },
        now,
    );
    model.apply(
        FeedUpdate::Snapshot {
            site: 1,
            info: info_b,
            replications: vec![],
            alarms: vec![],
            vms: vec![],
        },
        now,
    );
    let theme = Theme::load("dark", std::path::Path::new("/nonexistent")).unwrap();
    let mut app = App::new(model, theme, false, false);
    app.now_ms = T0;
    app.now = now;

    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT");
    settings.bind(|| {
        for (width, height) in [(80u16, 24u16), (160, 48)] {
            for (view, keys) in [
                ("replication", vec![]),
                ("dashboard", vec![Action::Show(crate::app::View::Dashboard)]),
                ("events", vec![Action::Show(crate::app::View::Events)]),
                (
                    "help",
                    vec![
                        Action::Show(crate::app::View::Replication),
                        Action::OpenHelp,
                    ],
                ),
                ("detail", vec![Action::Back, Action::Down, Action::Open]),
                (
                    "palette",
                    vec![Action::Back, Action::OpenPalette, Action::Type('e')],
                ),
            ] {
                for key in keys {
                    app.update(key);
                }
                insta::assert_snapshot!(
                    format!("{view}_{width}x{height}"),
                    render(&app, width, height)
                );
            }
            app.update(Action::Back);
        }
    });
    for running in [a, b] {
        let _ = running.stop.send(());
        let _ = running.task.await;
    }
}

/// Each editor and its dialogs on the pinned pair of `editor::fixture`
/// (no sites needed: every value is fixed).
#[test]
fn every_editor_at_both_sizes() {
    use crate::app::View;
    use crate::editor::fixture;
    use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

    let typed = |text: &str| text.chars().map(Action::Type).collect::<Vec<_>>();
    let key = |c: char| Action::Input(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
    let mut bad_rule = vec![
        Action::Show(View::Mappings),
        Action::Bottom,
        Action::Up,
        Action::Open,
    ];
    bad_rule.extend(typed("10.10.2.0/24"));
    bad_rule.extend([Action::Complete, Action::Complete]);
    bad_rule.extend(typed("10.20.2.0/24"));
    bad_rule.push(Action::Complete);
    bad_rule.extend(typed("10.99.9.1"));
    bad_rule.push(Action::Open);
    let mut callouts = vec![Action::Show(View::Plans), Action::Open, Action::Callouts];
    callouts.extend("pre command 120s: /opt/dr/check-db".chars().map(key));
    let steps: Vec<(&str, Vec<Action>)> = vec![
        (
            "mappings",
            vec![Action::Show(View::Mappings), Action::Down, Action::Down],
        ),
        (
            "mappings_target",
            vec![
                Action::Show(View::Mappings),
                Action::Down,
                Action::Down,
                Action::Open,
            ],
        ),
        ("mappings_rule_error", bad_rule),
        ("groups", vec![Action::Show(View::Groups)]),
        (
            "group_editor",
            vec![
                Action::Show(View::Groups),
                Action::Open,
                Action::Down,
                Action::Down,
                Action::Toggle,
            ],
        ),
        ("plans", vec![Action::Show(View::Plans)]),
        (
            "plan_editor",
            vec![
                Action::Show(View::Plans),
                Action::Open,
                Action::Down,
                Action::Lower,
            ],
        ),
        (
            "plan_depends",
            vec![Action::Show(View::Plans), Action::Open, Action::Depends],
        ),
        ("plan_callouts", callouts),
        (
            "plan_leave",
            vec![
                Action::Show(View::Plans),
                Action::Open,
                Action::TogglePower,
                Action::Back,
            ],
        ),
        (
            "editor_help",
            vec![Action::Show(View::Plans), Action::Open, Action::OpenHelp],
        ),
    ];
    for (width, height) in [(80u16, 24u16), (160, 48)] {
        for (name, actions) in &steps {
            let mut app = fixture::app(false);
            for action in actions {
                app.update(action.clone());
            }
            insta::assert_snapshot!(
                format!("{name}_{width}x{height}"),
                render(&app, width, height)
            );
        }
    }
    let mut app = fixture::app(true);
    app.update(Action::Show(View::Plans));
    insta::assert_snapshot!("plans_read_only_80x24", render(&app, 80, 24));
}
