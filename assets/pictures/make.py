#!/usr/bin/env python3
"""Makes the README's pictures from the real TUI: starts `ferry demo` in a
tmux terminal of its own with a fresh data directory, waits for the screens
worth showing (the dashboard with both sites replicating, the replication
view, and the run view while a test failover of the demo's plan runs),
captures each with its colours (`tmux capture-pane -e`) and writes it as an
SVG next to this script (or to --out).

    python3 assets/pictures/make.py [--ferry target/release/ferry] [--out DIR]

CI runs it (tests/e2e/pictures.rs) so it keeps working as the UI changes.
"""

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ansi_svg  # noqa: E402

COLS, ROWS = 120, 34
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


class Terminal:
    """A tmux server of its own running one ferry."""

    def __init__(self, command, cols, rows):
        self.socket = "ferry-pictures-%d" % os.getpid()
        # Should this script die without its `finally` (SIGKILL), the
        # watchdog in the window stops the server, and with it the demo.
        watchdog = "(tail --pid=%d -f /dev/null; tmux -L %s kill-server) & " % (os.getpid(), self.socket)
        self.tmux("new-session", "-d", "-s", "t", "-x", str(cols), "-y", str(rows), watchdog + command)

    def tmux(self, *args):
        out = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True)
        return out.stdout

    def screen(self, colour=False):
        return self.tmux("capture-pane", "-p", *(["-e"] if colour else []), "-t", "t")

    def keys(self, *keys):
        for key in keys:
            self.tmux("send-keys", "-t", "t", key)

    def wait(self, what, check, seconds):
        """The first screen (with colours) whose text passes `check`."""
        deadline = time.monotonic() + seconds
        while True:
            plain = self.screen()
            if check(plain):
                return self.screen(colour=True)
            if time.monotonic() > deadline:
                raise SystemExit("make.py: timed out waiting for %s; the screen:\n%s" % (what, plain))
            time.sleep(0.05)

    def close(self):
        self.tmux("kill-server")


def free_port_base():
    """Four free loopback ports in a row for the demo's sites."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base > 65000:
            continue
        try:
            held = []
            for port in range(base, base + 4):
                s = socket.socket()
                s.bind(("127.0.0.1", port))
                held.append(s)
            for s in held:
                s.close()
            return base
        except OSError:
            continue
    raise SystemExit("make.py: no four free loopback ports in a row")


def in_sync(screen):
    """Both sites up, no VM violated, and all but at most two VMs ok (the
    others syncing): the demo's guests keep writing, so some always are."""
    ok = re.search(r"✔ (\d+) ok", screen)
    return (
        ok is not None
        and int(ok.group(1)) >= 10
        and "✖ 0 violated" in screen
        and "peer site-b ● connected" in screen
        and "peer site-a ● connected" in screen
        and "/s" in screen
        and "protected VMs 12, 0 B/s" not in screen
    )


def default_ferry():
    for profile in ("release", "debug"):
        path = os.path.join(ROOT, "target", profile, "ferry")
        if os.path.exists(path):
            return path
    raise SystemExit("make.py: build ferry first (cargo build --release), or pass --ferry PATH")


def stop_on(signum, _frame):
    """SIGTERM or SIGHUP (the test harness, a closed terminal): leave
    through the `finally` that stops the demo, as Ctrl-C does."""
    raise SystemExit("make.py: stopped by signal %d" % signum)


def main():
    signal.signal(signal.SIGTERM, stop_on)
    signal.signal(signal.SIGHUP, stop_on)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ferry", help="the ferry binary (default: target/release or target/debug)")
    parser.add_argument("--out", default=HERE, help="where the SVG files go (default: beside this script)")
    args = parser.parse_args()
    ferry = os.path.abspath(args.ferry or default_ferry())
    if shutil.which("tmux") is None:
        raise SystemExit("make.py: tmux is needed (apt-get install tmux)")
    os.makedirs(args.out, exist_ok=True)

    home = tempfile.mkdtemp(prefix="ferry-pictures-")
    command = (
        "cd {home} && env -u NO_COLOR XDG_CONFIG_HOME={home}/config XDG_DATA_HOME={home}/data "
        "{ferry} demo --data-dir {home}/demo --port-base {port}; sleep 60"
    ).format(home=home, ferry=ferry, port=free_port_base())
    term = Terminal(command, COLS, ROWS)
    shots = {}
    try:
        term.wait("both sites", lambda s: "site-a ● connected" in s and "site-b ● connected" in s, 90)
        term.keys("1")
        shots["dashboard"] = term.wait("the dashboard with the VMs in sync", in_sync, 120)
        term.keys("2")
        shots["replication"] = term.wait("the replication view", lambda s: "Replication: 12 of 12" in s, 20)
        term.keys("6")
        term.wait("the demo's plan", lambda s: "Three-tier" in s and "ready" in s, 120)
        term.keys("t")
        term.wait("the question", lambda s: "Start a test of plan Three-tier" in s, 20)
        term.keys("y")
        # The run while it powers VMs on, or its end when it was quicker.
        shots["run"] = term.wait(
            "the run view",
            lambda s: "Steps:" in s
            and "db-01" in s
            and (re.search(r"⟳ running +Priority [23]", s) is not None or "succeeded" in s),
            60,
        )
        term.keys("q")
    finally:
        term.close()
        shutil.rmtree(home, ignore_errors=True)

    titles = {
        "dashboard": "ferry: the dashboard of a demo pair",
        "replication": "ferry: per-VM replication, RPO and lag",
        "run": "ferry: a test failover of a recovery plan, step by step",
    }
    for name, screen in shots.items():
        path = os.path.join(args.out, name + ".svg")
        with open(path, "w", encoding="utf-8") as f:
            f.write(ansi_svg.to_svg(screen, COLS, ROWS, titles[name]))
        print(path)


if __name__ == "__main__":
    main()
