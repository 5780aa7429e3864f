//! The real `ferry demo` in a real terminal (tmux): every demo VM appears,
//! keys filter, open help and switch views, killing site-a raises the
//! unreachable banner, and quitting restores the terminal and stops the sites;
//! SIGTERM and SIGHUP restore it too.

use super::terminal::Tmux;
use std::path::Path;
use std::time::Duration;

fn demo_pid(dir: &Path, site: usize) -> i32 {
    let text = std::fs::read_to_string(dir.join("demo.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["sites"][site]["pid"].as_i64().unwrap() as i32
}

#[test]
fn the_demo_in_a_real_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("demo");
    let port_base = super::support::free_port_base();
    let tmux = Tmux::ferry(
        "ferry-test",
        tmp.path(),
        &format!("demo --data-dir {} --port-base {port_base}", data.display()),
        (120, 36),
    );

    // The home screen opens first; 2 is the replication view.
    tmux.wait_within("the home screen", Duration::from_secs(60), |s| {
        s.contains("Runs now") && s.contains("site-a ● connected")
    });
    tmux.keys(&["2"]);
    // The twelve VMs come from site-a; site-b may still be connecting.
    let screen = tmux.wait_within(
        "all twelve demo VMs, both sites connected",
        Duration::from_secs(60),
        |s| {
            s.contains("12 of 12 VMs")
                && s.contains("web-06")
                && s.contains("db-02")
                && s.contains("site-a ● connected")
                && s.contains("site-b ● connected")
        },
    );
    for vm in ["db-01", "db-02", "app-01", "app-04", "web-01", "web-06"] {
        assert!(screen.contains(vm), "{vm} missing:\n{screen}");
    }

    tmux.keys(&["/", "d", "b", "Enter"]);
    tmux.wait_within("the filter", Duration::from_secs(5), |s| {
        s.contains("2 of 12 VMs") && !s.contains("web-01")
    });
    tmux.keys(&["Escape"]);
    tmux.wait_within("the filter cleared", Duration::from_secs(5), |s| {
        s.contains("12 of 12 VMs")
    });
    tmux.keys(&["?"]);
    tmux.wait_within("help", Duration::from_secs(5), |s| {
        s.contains("Help") && s.contains("filter rows")
    });
    // Esc and Tab sent together can read as one Alt-Tab: one at a time.
    tmux.keys(&["Escape"]);
    tmux.wait_within("help closed", Duration::from_secs(5), |s| {
        !s.contains("Help (")
    });
    tmux.keys(&["Tab"]);
    tmux.wait_within("the events view", Duration::from_secs(5), |s| {
        s.contains("Events: alarms")
    });
    tmux.keys(&[":", "d", "a", "Tab", "Enter"]);
    tmux.wait_within(
        "the dashboard via the palette",
        Duration::from_secs(5),
        |s| s.contains("protected VMs 12"),
    );
    tmux.keys(&["2"]);
    tmux.wait_within("the replication view", Duration::from_secs(5), |s| {
        s.contains("12 of 12 VMs")
    });

    // Sorted by lag, rows re-order as cycles finish; the pause key acts on
    // the VM under the cursor, and names it.
    tmux.keys(&["s", "s", "s", "s", "j", "j", "j"]);
    let screen = tmux.wait_within(
        "sorted by lag, on the fourth row",
        Duration::from_secs(5),
        |s| {
            let lines: Vec<&str> = s.lines().collect();
            let header = lines.iter().position(|l| l.trim_start().starts_with("VM"));
            let cursor = lines.iter().position(|l| l.starts_with('▶'));
            s.contains("sorted by Lag")
                && matches!((header, cursor), (Some(h), Some(c)) if c == h + 4)
        },
    );
    let cursor_vm = |screen: &str| -> String {
        let line = screen.lines().find(|l| l.starts_with('▶')).unwrap();
        line.split_whitespace().nth(1).unwrap().to_string()
    };
    let selected = cursor_vm(&screen);
    tmux.keys(&["p"]);
    let screen = tmux.wait_within("the pause's result", Duration::from_secs(10), |s| {
        s.contains(&format!("paused {selected}"))
    });
    assert!(
        !screen.contains("/replications/"),
        "no API path in the message:\n{screen}"
    );
    // The site says so: the row of that VM turns paused.
    tmux.wait_within(
        "the site to report it paused",
        Duration::from_secs(10),
        |s| {
            s.lines()
                .any(|l| l.split_whitespace().any(|w| w == selected) && l.contains("⏸ paused"))
        },
    );

    // A disaster: site-a dies; its header and rows say so within 5 s.
    // SAFETY: kill(2) on the demo's child, by the pid it published.
    unsafe {
        libc::kill(demo_pid(&data, 0), libc::SIGKILL);
    }
    let screen = tmux.wait_within("the unreachable banner", Duration::from_secs(5), |s| {
        s.contains("site-a ✖ UNREACHABLE") && s.contains("STALE")
    });
    assert!(
        screen.contains("site-b ● connected"),
        "the other site stays live:\n{screen}"
    );

    tmux.keys(&["q"]);
    let screen = tmux.wait_within("ferry to exit", Duration::from_secs(40), |s| {
        s.contains("FERRY-EXITED")
    });
    assert!(screen.contains("FERRY-EXITED 0"), "exit status:\n{screen}");
    assert!(
        !screen.contains("Replication:"),
        "the UI left the screen:\n{screen}"
    );
    let modes = tmux.run(&[
        "display-message",
        "-p",
        "-t",
        "t",
        "#{alternate_on} #{cursor_flag}",
    ]);
    assert_eq!(
        modes.trim(),
        "0 1",
        "alternate screen left and cursor shown again"
    );
    // SAFETY: signal 0 only checks whether the process exists.
    assert!(
        unsafe { libc::kill(demo_pid(&data, 1), 0) } != 0,
        "site-b stopped with the UI"
    );
}

/// The pid of the ferry a tmux pane runs: the shell's child named ferry
/// (its other child is the window's watchdog).
fn pane_child(tmux: &Tmux) -> i32 {
    let shell = tmux.run(&["display-message", "-p", "-t", "t", "#{pane_pid}"]);
    let shell = shell.trim();
    let children = std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children")).unwrap();
    children
        .split_whitespace()
        .find(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "ferry")
        })
        .unwrap_or_else(|| panic!("no ferry among the pane's processes {children}"))
        .parse()
        .unwrap()
}

#[test]
fn sigterm_and_sighup_restore_the_terminal() {
    for (name, signal) in [("TERM", libc::SIGTERM), ("HUP", libc::SIGHUP)] {
        let tmp = tempfile::tempdir().unwrap();
        // The token comes from a file, so it shows in no `ps`; no site
        // answers there, which is fine for a screen to draw.
        std::fs::write(tmp.path().join("token"), "not-shown\n").unwrap();
        let tmux = Tmux::ferry(
            &format!("ferry-sig{name}"),
            tmp.path(),
            "--site http://127.0.0.1:9 --token-file token",
            (80, 24),
        );
        tmux.wait_within("the UI", Duration::from_secs(20), |s| {
            s.contains("Home") && s.contains("Runs now")
        });
        let modes = tmux.run(&["display-message", "-p", "-t", "t", "#{alternate_on}"]);
        assert_eq!(modes.trim(), "1", "the UI is in the alternate screen");
        let ferry = pane_child(&tmux);
        let args = std::fs::read_to_string(format!("/proc/{ferry}/cmdline")).unwrap();
        assert!(
            !args.contains("not-shown"),
            "the token is not on the command line"
        );
        // SAFETY: kill(2) on the child of the pane's shell: ferry.
        unsafe {
            libc::kill(ferry, signal);
        }
        let screen = tmux.wait_within("ferry to exit", Duration::from_secs(20), |s| {
            s.contains("FERRY-EXITED")
        });
        assert!(screen.contains("FERRY-EXITED 0"), "SIG{name}: {screen}");
        let modes = tmux.run(&[
            "display-message",
            "-p",
            "-t",
            "t",
            "#{alternate_on} #{cursor_flag}",
        ]);
        assert_eq!(
            modes.trim(),
            "0 1",
            "SIG{name}: alternate screen left and cursor shown again"
        );
    }
}
