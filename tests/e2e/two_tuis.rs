//! Two TUIs on the same demo: what one saves, the other shows within a
//! couple of seconds, from the sites' event streams, in both directions.

use std::time::Duration;

use super::demo;
use super::terminal::Tmux;

/// How soon the other TUI must show an edit.
const FOLLOW: Duration = Duration::from_secs(3);

/// `--site … --token …` for every site of a demo, with `role`'s tokens.
pub fn site_args(printed: &serde_json::Value, role: &str) -> String {
    printed["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "--site {} --token {}",
                s["url"].as_str().unwrap(),
                s["tokens"][role].as_str().unwrap()
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The row of the list on `screen` that starts with `name`, trimmed.
fn row<'a>(screen: &'a str, name: &str) -> &'a str {
    screen
        .lines()
        .find(|l| l.trim_start_matches(['▶', ' ']).starts_with(name))
        .unwrap_or("")
}

#[test]
fn an_edit_in_one_tui_shows_in_the_other() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut demo, printed) = demo::start(tmp.path());
    let args = site_args(&printed, "admin");
    for home in ["one", "two"] {
        std::fs::create_dir_all(tmp.path().join(home)).unwrap();
    }
    let one = Tmux::ferry("ferry-two-1", &tmp.path().join("one"), &args, (160, 40));
    let two = Tmux::ferry("ferry-two-2", &tmp.path().join("two"), &args, (160, 40));

    // Both directions' mappings are the sites' own, saved, in both TUIs.
    for term in [&one, &two] {
        term.keys(&["4"]);
        term.wait_within("both directions' mappings", Duration::from_secs(60), |s| {
            s.contains("site-a → site-b ✔ saved") && s.contains("site-b → site-a ✔ saved")
        });
    }

    // The second TUI watches the plans; the first takes app-01 out of
    // "Apps and web".
    two.keys(&["6"]);
    two.wait_for("the plan with its 12 VMs", |s| {
        row(s, "Three-tier").contains(" 12 ")
    });
    one.keys(&["5"]);
    one.wait_for("the groups", |s| row(s, "Apps and web").contains(" 10 "));
    one.keys(&["Enter"]);
    one.wait_for("the group editor", |s| s.contains("▶[x] app-01"));
    one.keys(&["Space", "C-s"]);
    one.wait_for("the group saved", |s| {
        s.contains("saved group Apps and web")
    });
    two.wait_within("the plan's VMs to follow the group", FOLLOW, |s| {
        row(s, "Three-tier").contains(" 11 ")
    });
    two.keys(&["5"]);
    two.wait_within("the group's VMs", FOLLOW, |s| {
        row(s, "Apps and web").contains(" 9 ")
    });

    // And back: the second TUI puts app-01 in again; the first sees it.
    one.keys(&["Escape"]);
    one.wait_for("the groups list", |s| {
        row(s, "Apps and web").contains(" 9 ")
    });
    two.keys(&["Enter"]);
    two.wait_for("the group editor", |s| s.contains("▶[ ] app-01"));
    two.keys(&["Space", "C-s"]);
    two.wait_for("the group saved", |s| {
        s.contains("saved group Apps and web")
    });
    one.wait_within("the group's VMs", FOLLOW, |s| {
        row(s, "Apps and web").contains(" 10 ")
    });
    one.keys(&["6"]);
    one.wait_within("the plan's VMs", FOLLOW, |s| {
        row(s, "Three-tier").contains(" 12 ")
    });

    two.keys(&["Escape", "q"]);
    one.keys(&["q"]);
    for term in [&one, &two] {
        let screen = term.wait_for("ferry to exit", |s| s.contains("FERRY-EXITED"));
        assert!(screen.contains("FERRY-EXITED 0"), "{screen}");
    }
    assert!(demo::stop(&mut demo).success());
}
