//! The README's pictures come from the real TUI through
//! `assets/pictures/make.py`: the script must keep working as the UI
//! changes, and each picture must show what its caption promises.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

/// The script, stopped when the test ends by any path: on drop (a failed
/// assertion), or by the kernel when the test's thread dies without
/// unwinding. SIGTERM lets it run its `finally`, which stops its tmux
/// server and with it the demo and the TUI; Ctrl-C reaches it directly
/// (same process group). Should it be SIGKILLed, its tmux window's
/// watchdog stops the server.
struct Script(Child);

impl Drop for Script {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            // SAFETY: kill(2) on our own child, not yet reaped.
            unsafe {
                libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM);
            }
            let _ = self.0.wait();
        }
    }
}

#[test]
fn the_picture_script_draws_the_dashboard_the_replication_view_and_a_run() {
    let out = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/pictures/make.py");
    let mut command = Command::new("python3");
    command
        .arg(script)
        .arg("--ferry")
        .arg(env!("CARGO_BIN_EXE_ferry"))
        .arg("--out")
        .arg(out.path());
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork
    // and exec.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let mut script = Script(
        command
            .spawn()
            .expect("python3 is installed (.ci/run installs it)"),
    );
    let status = script.0.wait().unwrap();
    assert!(status.success(), "make.py failed: {status}");
    for (name, shows) in [
        ("dashboard", "Recent alarms"),
        ("replication", "db-01"),
        ("run", "test of Three-tier"),
    ] {
        let svg = std::fs::read_to_string(out.path().join(format!("{name}.svg"))).unwrap();
        assert!(svg.starts_with("<svg"), "{name}.svg is not an SVG");
        assert!(
            svg.contains(shows),
            "{name}.svg does not show {shows:?}:\n{svg}"
        );
        assert!(
            svg.matches("<text").count() > 20,
            "{name}.svg is nearly empty"
        );
    }
}
