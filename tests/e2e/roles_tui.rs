//! Role-aware keys in a real terminal on a real demo: with viewer tokens,
//! and with admin tokens under `--read-only`, the TUI offers no key, help
//! entry or `:` command that changes a site; with admin tokens it offers
//! them (so the absence is the role's doing, not a screen that never
//! learned it).

use std::time::Duration;

use super::demo;
use super::terminal::Tmux;
use super::two_tuis::site_args;

/// What only a role that may change a site is offered: in the key bar of
/// the replication and plans views, in help, and in the palette.
const CHANGING: [&str; 9] = [
    "n sync now",
    "p pause/resume",
    "pause or resume it",
    "sync the VM now",
    ":test ",
    ":migrate ",
    ":reprotect ",
    "t test",
    "m migrate",
];

/// Every screen an operator would look at for what they may do: the
/// replication view with its help and its palette, and the plans view.
fn offered(term: &Tmux) -> String {
    let mut seen = String::new();
    term.keys(&["2"]);
    seen += &term.wait_for("the demo's VMs", |s| s.contains("12 of 12 VMs"));
    term.keys(&["?"]);
    seen += &term.wait_for("help", |s| s.contains("Commands (:)"));
    term.keys(&["Escape"]);
    term.wait_for("help closed", |s| !s.contains("Help ("));
    term.keys(&[":"]);
    seen += &term.wait_for("the palette", |s| s.contains(":history"));
    // One at a time: Escape and a key sent together read as Alt-key.
    term.keys(&["Escape"]);
    term.wait_for("the palette closed", |s| !s.contains(":history"));
    term.keys(&["6"]);
    // The demo makes its plan once site-b knows site-a's VMs.
    seen += &term.wait_within("the demo's plan", Duration::from_secs(90), |s| {
        s.contains("Recovery plans") && s.contains("Three-tier")
    });
    seen
}

#[test]
fn viewers_and_read_only_are_offered_nothing_that_changes_a_site() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut demo, printed) = demo::start(tmp.path());
    let admin = site_args(&printed, "admin");
    for (name, args, may_change) in [
        ("admin", admin.clone(), true),
        ("viewer", site_args(&printed, "viewer"), false),
        ("read-only", format!("{admin} --read-only"), false),
    ] {
        let home = tmp.path().join(name);
        std::fs::create_dir_all(&home).unwrap();
        let term = Tmux::ferry(&format!("ferry-role-{name}"), &home, &args, (160, 48));
        term.wait_within("both sites", Duration::from_secs(60), |s| {
            s.contains("site-a ● connected") && s.contains("site-b ● connected")
        });
        let seen = offered(&term);
        for what in CHANGING {
            assert_eq!(
                seen.contains(what),
                may_change,
                "{name}: {what:?} offered {}:\n{seen}",
                if may_change { "not" } else { "yet" }
            );
        }
        term.keys(&["q"]);
        let screen = term.wait_for("ferry to exit", |s| s.contains("FERRY-EXITED"));
        assert!(screen.contains("FERRY-EXITED 0"), "{name}: {screen}");
    }
    assert!(demo::stop(&mut demo).success());
}
