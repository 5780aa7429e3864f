//! A real terminal for the TUI tests: a tmux server of its own, with one
//! window (`t`) running the program under test.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// How long a screen may take to show what a test waits for by default.
const SCREEN_DEADLINE: Duration = Duration::from_secs(20);

pub struct Tmux {
    pub socket: String,
}

impl Tmux {
    /// Starts `ferry <args>` in a `cols`x`rows` terminal of a tmux server of
    /// its own (`<name>-<pid>`), in `home` and with its config and data
    /// there. When ferry exits the window shows `FERRY-EXITED <status>`.
    pub fn ferry(name: &str, home: &Path, args: &str, size: (u16, u16)) -> Self {
        let env = format!(
            "XDG_CONFIG_HOME={home}/config XDG_DATA_HOME={home}/data",
            home = home.display()
        );
        Self::ferry_with_env(name, home, &env, args, size)
    }

    /// Like [`Self::ferry`], in `dir` with exactly the variables `env`
    /// (`NAME=value …`) set over a clean XDG environment.
    pub fn ferry_with_env(
        name: &str,
        dir: &Path,
        env: &str,
        args: &str,
        (cols, rows): (u16, u16),
    ) -> Self {
        let tmux = Self {
            socket: format!("{name}-{}", std::process::id()),
        };
        // The server outlives no test: Drop kills it, and should the test
        // process die without unwinding (SIGKILL, a harness timeout), the
        // watchdog in the window does, and with it ferry and any demo sites
        // (they follow their demo).
        let command = format!(
            "(tail --pid={test} -f /dev/null; tmux -L {socket} kill-server) & \
             cd {dir} && env -u XDG_CONFIG_HOME -u XDG_DATA_HOME {env} {exe} {args}; echo FERRY-EXITED $?; sleep 120",
            test = std::process::id(),
            socket = tmux.socket,
            dir = dir.display(),
            exe = env!("CARGO_BIN_EXE_ferry"),
        );
        let (cols, rows) = (cols.to_string(), rows.to_string());
        tmux.run(&[
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            &cols,
            "-y",
            &rows,
            &command,
        ]);
        tmux
    }

    pub fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux is installed (.ci/run installs it)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "t"])
    }

    /// tmux key names: `Enter`, `Escape`, `C-s`, `j`.
    pub fn keys(&self, keys: &[&str]) {
        for key in keys {
            self.run(&["send-keys", "-t", "t", key]);
        }
    }

    /// Types `text` literally.
    pub fn text(&self, text: &str) {
        self.run(&["send-keys", "-t", "t", "-l", text]);
    }

    /// Waits up to 20 s for the screen to pass `check`; returns it.
    pub fn wait_for(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        self.wait_within(what, SCREEN_DEADLINE, check)
    }

    pub fn wait_within(
        &self,
        what: &str,
        deadline: Duration,
        check: impl Fn(&str) -> bool,
    ) -> String {
        ferry_testkit::wait_until(what, deadline, Duration::from_millis(50), || {
            let screen = self.screen();
            if check(&screen) {
                Ok(screen)
            } else {
                Err(format!("the screen:\n{screen}"))
            }
        })
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.run(&["kill-server"]);
    }
}
