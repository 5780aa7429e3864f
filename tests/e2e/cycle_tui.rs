//! The full cycle driven from the real TUI in a real terminal (tmux), as
//! an operator would: a test and its cleanup, a planned migration, a
//! reprotect, a test of a plan whose group now recovers the other way
//! (its VMs skipped), and the failback, each started with the plans
//! view's keys and typed names. At every stage the screen must say what
//! the sites say: no failure on a recovered VM, the protected counts per
//! site, and each plan's Next as its site computed it (`GET /plans`).

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use super::runs::protected_pair;
use super::support::*;
use super::terminal::Tmux;
use ferry_api::types::{Plan, RunMode};

/// How long one of the cycle's runs may take to end on a loaded machine.
const RUN_DEADLINE: Duration = Duration::from_secs(90);

/// The row of the list on `screen` that starts with `name` (after the
/// cursor), or "".
fn row<'a>(screen: &'a str, name: &str) -> &'a str {
    screen
        .lines()
        .find(|l| l.trim_start_matches(['▶', ' ']).starts_with(name))
        .unwrap_or("")
}

/// The sites, each with its name.
type Sites<'a> = [(&'a Api, &'a str); 2];

/// The plan called `name` as the site that owns it (its recovery site)
/// lists it.
async fn plan(sites: &Sites<'_>, name: &str) -> Option<Plan> {
    for (api, site) in sites {
        // A dead site lists nothing; its peer may still own the plan.
        let Ok(plans) = api.typed.plans().await else {
            continue;
        };
        if let Some(p) = plans
            .into_iter()
            .find(|p| p.name == name && p.recovery_site == *site)
        {
            return Some(p);
        }
    }
    None
}

/// Waits until the plans view's row of `name` shows the state word
/// `state` and, in its Next column, the `next` its site computes now
/// (fetched again on every look, since readiness moves with the sites);
/// returns the plan.
async fn plans_view_agrees(term: &Tmux, sites: &Sites<'_>, name: &str, state: &str) -> Plan {
    plans_view(term);
    let seen = LastSeen::default();
    eventually(
        &format!("plan {name} {state} with its site's Next on the screen"),
        Duration::from_secs(30),
        || async {
            let plan = plan(sites, name).await;
            let screen = term.screen();
            let line = row(&screen, name);
            // The Next column is cut at the screen's edge: compare what fits.
            let agrees = plan.as_ref().is_some_and(|p| {
                let next: String = p.next.chars().take(70).collect();
                line.contains(state) && line.contains(&next)
            });
            if !agrees {
                *seen.0.lock().unwrap() = format!("{plan:?}\n{screen}");
            }
            agrees.then_some(plan).flatten()
        },
    )
    .await
}

/// What a wait saw last, printed should the wait fail.
#[derive(Default)]
struct LastSeen(std::sync::Mutex<String>);

impl Drop for LastSeen {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("last seen: {}", self.0.lock().unwrap());
        }
    }
}

/// Waits for `what`: the run view of `title` at its end, which must be
/// `ended` (the state's symbol and word); returns the screen.
fn run_ends(term: &Tmux, title: &str, ended: &str) -> String {
    let screen = term.wait_within(title, RUN_DEADLINE, |s| {
        s.contains(title)
            && [
                "✔ succeeded",
                "▲ succeeded with warnings",
                "✖ failed",
                "■ cancelled",
                "✖ interrupted",
            ]
            .iter()
            .any(|w| s.contains(w))
    });
    let header = screen
        .lines()
        .find(|l| l.contains("elapsed"))
        .unwrap_or_default();
    assert!(header.contains(ended), "{title} ended otherwise:\n{screen}");
    // Back to the view the run was started from.
    term.keys(&["Escape"]);
    term.wait_for("the run view closed", |s| !s.contains("Steps:"));
    screen
}

/// The plans view, every plan shown: another view and back clears the
/// last filter (an Escape sent just before a key would read as Alt-key).
fn plans_view(term: &Tmux) {
    term.keys(&["0"]);
    term.wait_for("the home screen", |s| s.contains("Runs now"));
    term.keys(&["6"]);
    term.wait_for("the plans view", |s| s.contains("Recovery plans: 2"));
}

/// Selects the plan `name` in the plans view by filtering on it.
fn select_plan(term: &Tmux, name: &str) {
    plans_view(term);
    term.keys(&["/"]);
    term.text(name);
    term.keys(&["Enter"]);
    term.wait_for(&format!("only plan {name}"), |s| {
        s.contains("Recovery plans: 1 of ") && row(s, name).starts_with('▶')
    });
}

/// Starts a real failover or reprotect of the selected plan `name`: the key,
/// then its name typed.
fn start_typed(term: &Tmux, key: &str, name: &str) {
    term.keys(&[key]);
    term.wait_for("the name to type", |s| {
        s.contains("Type the plan's name to go on")
    });
    term.text(name);
    term.keys(&["Enter"]);
}

/// The dashboard's line of protected VMs, split into site-a's pane and
/// site-b's.
fn protected_counts(screen: &str) -> (String, String) {
    let line = screen
        .lines()
        .find(|l| l.contains("protected VMs"))
        .unwrap_or_default();
    let (a, b) = line.split_once("││").unwrap_or((line, ""));
    (a.to_string(), b.to_string())
}

/// The dashboard shows `a` protected VMs at site-a and `b` at site-b.
fn dashboard_counts(term: &Tmux, a: usize, b: usize) {
    term.keys(&["1"]);
    term.wait_for(&format!("protected VMs {a} and {b}"), |s| {
        let (left, right) = protected_counts(s);
        left.contains(&format!("protected VMs {a},"))
            && right.contains(&format!("protected VMs {b},"))
    });
}

/// The replication view and the alarms say nothing false of the VMs
/// recovered at `site`: each row says so, none says error or violated,
/// and no open alarm says their RPO is violated or replication failing.
fn recovered_rows_are_true(term: &Tmux, site: &str) {
    term.keys(&["2"]);
    let screen = term.wait_for(&format!("both VMs recovered at {site}"), |s| {
        ["vm-0", "vm-1"].iter().all(|vm| {
            s.lines().any(|l| {
                l.split_whitespace().any(|w| w == *vm)
                    && l.contains(&format!("recovered at {site}"))
            })
        })
    });
    for line in screen
        .lines()
        .filter(|l| l.contains(&format!("recovered at {site}")))
    {
        assert!(
            !line.contains("violated") && !line.contains("error"),
            "a recovered VM shown failing: {line}\n{screen}"
        );
    }
    // Home: the group's VMs are recovered elsewhere, and no plan or group
    // shows their old replication's lag as a risk.
    term.keys(&["0"]);
    let screen = term.wait_for("the group's VMs recovered elsewhere", |s| {
        s.contains("recovered elsewhere 2")
    });
    for line in screen.lines().filter(|l| !l.contains("acked")) {
        assert!(
            !line.contains("violated") && !line.contains("▲ at risk"),
            "a recovered VM shown at risk: {line}\n{screen}"
        );
    }
    no_open_replication_alarms(term);
}

/// The events view shows no open alarm of an RPO violated or a
/// replication failing: in this cycle every one would be false (the old
/// copies' replications end, and the sites stay up until the very end).
fn no_open_replication_alarms(term: &Tmux) {
    term.keys(&["3"]);
    let screen = term.wait_for("the events", |s| s.contains("Events: alarms"));
    for line in screen.lines() {
        let false_alarm = (line.contains("RPO violated") || line.contains("replication failing"))
            && !line.contains("acked");
        assert!(
            !false_alarm,
            "an open alarm on an ended replication: {line}\n{screen}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_full_cycle_from_the_tui_shows_what_the_sites_say() {
    let tmp = tempfile::tempdir().unwrap();
    let mut a = SiteProcess::create(&tmp.path().join("a"), "site-a", 2);
    let b = SiteProcess::create(&tmp.path().join("b"), "site-b", 0);
    let group = protected_pair(&a, &b, 2).await;
    let (api_a, api_b) = (Api::new(&a), Api::new(&b));
    let sites = [(&api_a, "site-a"), (&api_b, "site-b")];
    // Two plans of one group: after "Apps" is reprotected, "Same group"
    // still recovers at site-b, so its VMs would be skipped.
    for name in ["Apps", "Same group"] {
        api_b
            .admin(
                Method::POST,
                "/plans",
                Some(json!({"name": name, "groups": [group]})),
            )
            .await;
    }

    let term = Tmux::ferry(
        "ferry-cycle",
        tmp.path(),
        &format!(
            "--site {} --token {ADMIN} --site {} --token {ADMIN}",
            a.api, b.api
        ),
        (160, 48),
    );
    term.wait_within("both sites", Duration::from_secs(30), |s| {
        s.contains("site-a ● connected") && s.contains("site-b ● connected")
    });
    dashboard_counts(&term, 2, 0);
    term.keys(&["6"]);
    let ready = plans_view_agrees(&term, &sites, "Apps", "ready").await;
    assert!(ready.allowed.contains(&RunMode::Test), "{ready:?}");
    // The home screen gives each plan's Next in full.
    term.keys(&["0"]);
    term.wait_for("the home screen's Next", |s| {
        s.contains(&format!("next: {}", ready.next))
    });

    // A test, and its cleanup.
    select_plan(&term, "Apps");
    term.keys(&["t"]);
    term.wait_for("the question", |s| {
        s.contains("Start a test of plan Apps at site-b?")
    });
    term.keys(&["y"]);
    run_ends(&term, "test of Apps", "✔ succeeded");
    dashboard_counts(&term, 2, 0);
    term.keys(&["2"]);
    term.wait_for("the test copies", |s| {
        s.matches("test copy at site-b").count() == 2
    });
    term.keys(&["6"]);
    plans_view_agrees(&term, &sites, "Apps", "test complete").await;
    select_plan(&term, "Apps");
    term.keys(&["c"]);
    term.wait_for("the cleanup question", |s| {
        s.contains("Clean up plan Apps's test?")
    });
    term.keys(&["y"]);
    run_ends(&term, "cleanup of Apps", "✔ succeeded");
    term.keys(&["6"]);
    plans_view_agrees(&term, &sites, "Apps", "ready").await;

    // The planned migration: the old copies are recovered at site-b, not
    // failing, and no longer counted as protected.
    select_plan(&term, "Apps");
    start_typed(&term, "m", "Apps");
    run_ends(&term, "planned migration of Apps", "✔ succeeded");
    recovered_rows_are_true(&term, "site-b");
    dashboard_counts(&term, 0, 0);
    term.keys(&["6"]);
    plans_view_agrees(&term, &sites, "Apps", "recovery complete").await;

    // Reprotect: site-b now protects the VMs toward site-a, and the plan
    // moves to site-a; the plan left at site-b says its VMs would be
    // skipped, and its test says it skipped them.
    select_plan(&term, "Apps");
    start_typed(&term, "r", "Apps");
    run_ends(&term, "reprotect of Apps", "✔ succeeded");
    term.keys(&["6"]);
    // site-b learns the group's new direction from its peer a moment
    // after the reprotect.
    eventually(
        "site-b to say the other plan's VMs would be skipped",
        Duration::from_secs(20),
        || async {
            let p = plan(&sites, "Same group").await?;
            (p.readiness.skipped.len() == 2).then_some(())
        },
    )
    .await;
    let skipping = plans_view_agrees(&term, &sites, "Same group", "ready").await;
    assert!(
        skipping.next.contains("2 VMs would be skipped"),
        "{skipping:?}"
    );
    select_plan(&term, "Same group");
    term.keys(&["t"]);
    term.wait_for("the question", |s| {
        s.contains("Start a test of plan Same group at site-b?")
    });
    term.keys(&["y"]);
    let screen = run_ends(&term, "test of Same group", "▲ succeeded with warnings");
    assert!(
        screen.contains("2 of the plan's 2 VMs skipped"),
        "the run says what it skipped:\n{screen}"
    );
    select_plan(&term, "Same group");
    term.wait_for("the plan's run under it", |s| {
        s.contains("succeeded with warnings")
    });
    term.keys(&["c"]);
    term.wait_for("the cleanup question", |s| {
        s.contains("Clean up plan Same group's test?")
    });
    term.keys(&["y"]);
    run_ends(&term, "cleanup of Same group", "✔ succeeded");
    dashboard_counts(&term, 0, 2);

    // Failback from site-a, once its site says a migration may start.
    term.keys(&["6"]);
    eventually(
        "site-a to allow the migration back",
        Duration::from_secs(60),
        || async {
            let p = plan(&sites, "Apps").await?;
            (p.recovery_site == "site-a" && p.allowed.contains(&RunMode::PlannedMigration))
                .then_some(())
        },
    )
    .await;
    plans_view_agrees(&term, &sites, "Apps", "ready").await;
    select_plan(&term, "Apps");
    start_typed(&term, "m", "Apps");
    run_ends(&term, "planned migration of Apps", "✔ succeeded");
    recovered_rows_are_true(&term, "site-a");
    dashboard_counts(&term, 0, 0);
    select_plan(&term, "Apps");
    start_typed(&term, "r", "Apps");
    run_ends(&term, "reprotect of Apps", "✔ succeeded");
    dashboard_counts(&term, 2, 0);
    term.keys(&["2"]);
    let screen = term.wait_for("site-a's VMs protected again", |s| s.contains("2 of 2 VMs"));
    assert!(
        !screen.contains("violated") && !screen.contains("✖ error"),
        "{screen}"
    );
    no_open_replication_alarms(&term);
    term.keys(&["6"]);
    plans_view_agrees(&term, &sites, "Apps", "ready").await;

    // A disaster: kill -9 of the protected site. Its counts on the
    // dashboard are its last word, marked STALE with their age; the plan
    // allows only disaster recovery, and says so wherever it is shown.
    a.kill9();
    term.keys(&["1"]);
    let screen = term.wait_for("site-a's counts marked stale", |s| {
        let (left, right) = protected_counts(s);
        left.contains("protected VMs 2 · STALE ") && right.contains("protected VMs 0,")
    });
    let (left, _) = protected_counts(&screen);
    let age = left.split("STALE ").nth(1).unwrap_or_default();
    assert!(
        age.starts_with(|c: char| c.is_ascii_digit()) && !left.contains("/s"),
        "a stale site's counts say their age and no rate: {left}"
    );
    assert!(
        screen.lines().any(|l| l.contains("STALE ✔")),
        "the compliance counts are marked too:\n{screen}"
    );
    let dr_only = eventually(
        "site-b to allow only disaster recovery",
        Duration::from_secs(30),
        || async {
            let p = plan(&sites, "Apps").await?;
            (p.allowed == [RunMode::DisasterRecovery]).then_some(p)
        },
    )
    .await;
    assert!(
        dr_only.next.contains("only disaster recovery (d)"),
        "{dr_only:?}"
    );
    term.keys(&["6"]);
    plans_view_agrees(&term, &sites, "Apps", "").await;
    term.keys(&["0"]);
    term.wait_for("the home screen's Next", |s| {
        s.contains(&format!("next: {}", dr_only.next))
    });
    // m says why not, before anything is asked or sent.
    select_plan(&term, "Apps");
    term.keys(&["m"]);
    let screen = term.wait_for("the refusal", |s| s.contains("no planned migration now"));
    assert!(
        !screen.contains("Type the plan's name"),
        "no question for a run the site would refuse:\n{screen}"
    );

    term.keys(&["q"]);
    let screen = term.wait_for("ferry to exit", |s| s.contains("FERRY-EXITED"));
    assert!(screen.contains("FERRY-EXITED 0"), "{screen}");
}
