//! The operator's guide (`assets/guide.md`) is run as written: its `tui`
//! blocks start in a real terminal (tmux), its `sh` blocks run in order in
//! bash against the demo the first one started, in a home directory of
//! their own. A command the program no longer takes fails this test.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::terminal::Tmux;

const GUIDE: &str = include_str!("../../assets/guide.md");

/// The guide's fenced blocks of kind `sh` or `tui`, in order.
fn blocks() -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let mut current: Option<(&'static str, String)> = None;
    for line in GUIDE.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(("sh", String::new())),
            (None, "```tui") => current = Some(("tui", String::new())),
            (Some(_), "```") => out.extend(current.take()),
            (Some((_, text)), line) => {
                text.push_str(line);
                text.push('\n');
            }
            (None, _) => {}
        }
    }
    out
}

/// Runs one `sh` block in bash, with the variables the blocks before it
/// exported.
fn run_sh(home: &Path, work: &Path, block: &str) {
    let state = home.join("guide-env.sh");
    let script = format!(
        "set -euo pipefail\n[ -f {state} ] && source {state}\n{block}\nexport -p > {state}\n",
        state = state.display()
    );
    let bin = Path::new(env!("CARGO_BIN_EXE_ferry")).parent().unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(work)
        .env_clear()
        .env("HOME", home)
        .env(
            "PATH",
            format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display()),
        )
        .env("LANG", "C.UTF-8")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the guide's block failed ({}):\n{block}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_command_of_the_guide_works_as_written() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    let work = home.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let config = home.join(".local/share/ferry/demo/ferry.toml");
    let mut demo: Option<Tmux> = None;
    let blocks = blocks();
    assert!(
        blocks.len() >= 10,
        "the guide lost its commands: {blocks:#?}"
    );
    for (i, (kind, text)) in blocks.iter().enumerate() {
        match *kind {
            "tui" => {
                let command = text.trim();
                let args = command
                    .strip_prefix("ferry ")
                    .expect("a tui block runs ferry");
                // A home of its own; the demo's ports out of other tests' way.
                let env = format!(
                    "HOME={} FERRY_CONFIG={} FERRY_DEMO_PORT_BASE={}",
                    home.display(),
                    config.display(),
                    super::support::free_port_base()
                );
                let terminal =
                    Tmux::ferry_with_env(&format!("guide-{i}"), &work, &env, args, (120, 36));
                if demo.is_none() {
                    terminal.wait_within("the demo up", Duration::from_secs(120), |s| {
                        s.contains("site-a ● connected") && s.contains("site-b ● connected")
                    });
                    // The demo makes its plan once site-b sees site-a's VMs,
                    // seconds after it starts: the reader sees it in view 6.
                    terminal.keys(&["6"]);
                    terminal.wait_within("the demo's plan", Duration::from_secs(120), |s| {
                        s.contains("Three-tier") && s.contains("ready")
                    });
                    demo = Some(terminal);
                } else {
                    let badge = if args.contains("--noc") {
                        " NOC"
                    } else {
                        " READ-ONLY"
                    };
                    terminal.wait_within(command, Duration::from_secs(30), |s| {
                        s.contains(badge) && s.contains("site-a") && s.contains("site-b")
                    });
                    terminal.keys(&["q"]);
                }
            }
            _ => run_sh(home, &work, text),
        }
    }
    let read = |name: &str| std::fs::read_to_string(work.join(name)).unwrap();
    assert!(read("three-tier-runbook.md").starts_with("# Runbook: recovery plan Three-tier"));
    assert!(read("last-run.md").starts_with("# Run "));
    assert!(read("ferry.1").contains("ferry"));
    assert!(read("ferry.bash").contains("_ferry"));
    // After the failback and its reprotect, the plan protects site-a again.
    let plans = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["plans"])
        .env("FERRY_CONFIG", &config)
        .output()
        .unwrap();
    let plans = String::from_utf8_lossy(&plans.stdout);
    assert!(
        plans.contains("Three-tier  site-a → site-b  ready"),
        "{plans}"
    );
    drop(demo);
    // The site the guide restarted by hand is not the demo's child.
    let _ = Command::new("pkill")
        .args([
            "-f",
            &format!(
                "{}/.local/share/ferry/demo/site-a/site.toml",
                home.display()
            ),
        ])
        .status();
}
