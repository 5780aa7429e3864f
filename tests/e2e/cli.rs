//! The scripted commands against two real sites (`ferry demo --no-tui`):
//! `ferry status` exit codes (all well, a VM out of its RPO, a site down),
//! `plan test --wait` to success and to a failing callout, a real failover
//! refused without `--confirm`, `--output json` read back, an alarm
//! acknowledged, and the demo plan's runbook held to a snapshot.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use ferry_api::types::ReplicationRequest;
use ferry_api::{Call, ReplicationVerb};
use ferry_testkit::wait_until;
use serde_json::Value;

/// How often a test asks `ferry` again while it waits.
const POLL: Duration = Duration::from_millis(200);

/// `ferry demo --no-tui` in a directory of its own, with `ferry.toml`.
pub struct Demo {
    pub dir: PathBuf,
    process: Child,
}

impl Demo {
    pub fn start(home: &Path) -> Self {
        let dir = home.join("demo");
        let process = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["demo", "--no-tui", "--data-dir"])
            .arg(&dir)
            .env(
                "FERRY_DEMO_PORT_BASE",
                super::support::free_port_base().to_string(),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let demo = Self { dir, process };
        wait_until(
            "the demo's plan, ready and replicated",
            Duration::from_secs(120),
            POLL,
            || {
                let plans = text(&demo.ferry(&["plans"]).stdout);
                let status = demo.ferry(&["status"]);
                // Ready, with every VM's initial sync done (the site's
                // readiness says which are not replicated yet).
                match plans.contains("Three-tier")
                    && plans.contains("ready")
                    && !plans.contains("not replicated yet")
                    && status.status.success()
                {
                    true => Ok(()),
                    false => Err(format!("{plans}{}", text(&status.stdout))),
                }
            },
        );
        demo
    }

    /// Runs `ferry <args>` on the demo's sites.
    pub fn ferry(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(args)
            .env("FERRY_CONFIG", self.dir.join("ferry.toml"))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// A site's pid, URL and admin token from demo.json.
    pub fn site(&self, name: &str) -> (u32, String, String) {
        let text = std::fs::read_to_string(self.dir.join("demo.json")).unwrap();
        let json: Value = serde_json::from_str(&text).unwrap();
        let site = json["sites"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap()
            .clone();
        (
            site["pid"].as_u64().unwrap() as u32,
            site["url"].as_str().unwrap().to_string(),
            site["tokens"]["admin"].as_str().unwrap().to_string(),
        )
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        unsafe { libc::kill(self.process.id() as i32, libc::SIGTERM) };
        let _ = self.process.wait();
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", text(&out.stdout)))
}

#[test]
fn scripted_commands_check_run_and_report_with_meaningful_exit_codes() {
    let home = tempfile::tempdir().unwrap();
    let demo = Demo::start(home.path());

    // All well: exit 0, and the JSON says so.
    let status = demo.ferry(&["status", "--output", "json"]);
    assert_eq!(status.status.code(), Some(0), "{}", text(&status.stdout));
    assert_eq!(json(&status)["healthy"], true);
    let vms = json(&demo.ferry(&["vms", "--output", "json"]));
    assert_eq!(vms.as_array().unwrap().len(), 12, "{vms:#}");
    assert!(vms[0]["replication"]["rpo_seconds"].is_u64(), "{vms:#}");

    // The runbook, before any run, matches the plan.
    let runbook = demo.ferry(&["plan", "runbook", "Three-tier"]);
    assert_eq!(runbook.status.code(), Some(0), "{}", text(&runbook.stderr));
    insta::assert_snapshot!("demo_runbook", text(&runbook.stdout));

    // A test followed to its end: report on stdout, steps on stderr.
    let test = demo.ferry(&["plan", "test", "Three-tier", "--yes", "--wait"]);
    let (out, err) = (text(&test.stdout), text(&test.stderr));
    assert_eq!(test.status.code(), Some(0), "{out}\n{err}");
    assert!(
        out.starts_with("✔ test of plan Three-tier succeeded at site-b"),
        "{out}"
    );
    assert!(out.contains("RTO ") && out.contains("db-01"), "{out}");
    assert!(
        err.contains("[13/13] ✔ done Priority 3: wait for heartbeats"),
        "{err}"
    );
    let runs = json(&demo.ferry(&["runs", "--output", "json"]));
    let id = runs[0]["id"].as_str().unwrap().to_string();
    assert_eq!(runs[0]["state"], "succeeded");
    let shown = json(&demo.ferry(&["run", "show", &id, "--output", "json"]));
    assert_eq!(shown, runs[0]);
    let md = demo.ferry(&["run", "export", &id, "--format", "md"]);
    assert!(text(&md.stdout).starts_with(&format!("# Run {id}: test of plan Three-tier")));
    let cleanup = demo.ferry(&["plan", "cleanup", "Three-tier", "--yes", "--wait"]);
    assert_eq!(cleanup.status.code(), Some(0), "{}", text(&cleanup.stderr));

    // Without a terminal, a test needs --yes; a real failover needs the
    // plan's name, whatever else is said.
    let unasked = demo.ferry(&["plan", "test", "Three-tier"]);
    assert_eq!(unasked.status.code(), Some(2));
    assert!(
        text(&unasked.stderr).contains("add --yes"),
        "{}",
        text(&unasked.stderr)
    );
    for confirm in [&[][..], &["--confirm", "three-tier"][..]] {
        let args = [
            &["plan", "migrate", "Three-tier", "--yes", "--wait"][..],
            confirm,
        ]
        .concat();
        let refused = demo.ferry(&args);
        assert_eq!(refused.status.code(), Some(2), "{args:?}");
        assert!(
            text(&refused.stderr).contains("confirm it with --confirm \"Three-tier\""),
            "{}",
            text(&refused.stderr)
        );
    }
    let plans = json(&demo.ferry(&["plans", "--output", "json"]));
    assert_eq!(plans[0]["state"], "ready", "nothing was started: {plans:#}");
    let unknown = demo.ferry(&["plan", "test", "Four-tier", "--yes"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        text(&unknown.stderr)
            .contains("no recovery plan is named \"Four-tier\"; the plans are: Three-tier")
    );

    // A failing callout fails the run, and the exit code says so.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let admin = |name: &str| {
        let (_, url, token) = demo.site(name);
        ferry_api::Client::new(name, &url, &token, Duration::from_secs(10)).unwrap()
    };
    let plan: ferry_api::types::Plan = serde_json::from_value(plans[0].clone()).unwrap();
    let spec = ferry_api::types::PlanSpec {
        name: plan.name.clone(),
        description: plan.description.clone(),
        groups: plan.groups.clone(),
        vms: plan.vms.clone(),
        pre_power_on: vec![ferry_api::types::Callout::Command {
            command: "echo no database; exit 3".into(),
            timeout_seconds: 30,
        }],
        post_power_on: plan.post_power_on.clone(),
    };
    runtime
        .block_on(admin("site-b").send(&Call::SavePlan {
            id: Some(plan.id.clone()),
            spec,
        }))
        .unwrap();
    let failing = demo.ferry(&["plan", "test", "Three-tier", "--yes", "--wait"]);
    let (out, err) = (text(&failing.stdout), text(&failing.stderr));
    assert_eq!(failing.status.code(), Some(1), "{out}\n{err}");
    assert!(out.starts_with("✖ test of plan Three-tier failed"), "{out}");
    assert!(err.contains("exit status: 3"), "{err}");
    assert!(
        err.contains("ferry: the test of plan Three-tier failed"),
        "{err}"
    );
    demo.ferry(&["plan", "cleanup", "Three-tier", "--yes", "--wait"]);

    // A VM out of its RPO: exit 1, naming it.
    let (pid_a, _, _) = demo.site("site-a");
    let site_a = admin("site-a");
    let vm_id = "site-a.db-01".to_string();
    runtime
        .block_on(site_a.send(&Call::Protect {
            vm_id: vm_id.clone(),
            request: ReplicationRequest {
                rpo_seconds: 5,
                datastore: None,
                compress: None,
                retention: None,
            },
        }))
        .unwrap();
    runtime
        .block_on(site_a.send(&Call::Replication {
            vm_id,
            verb: ReplicationVerb::Pause,
        }))
        .unwrap();
    let violated = wait_until(
        "db-01 out of its RPO",
        Duration::from_secs(60),
        POLL,
        || {
            let out = demo.ferry(&["status"]);
            match out.status.code() {
                Some(1) => Ok(out),
                _ => Err(text(&out.stdout)),
            }
        },
    );
    assert!(
        text(&violated.stdout).contains("PROBLEM: db-01 on site-a is outside its RPO of 5s"),
        "{}",
        text(&violated.stdout)
    );

    // An alarm of site-a, acknowledged from the command line at its site.
    let alarms = json(&demo.ferry(&["alarms", "--output", "json"]));
    let rpo = alarms
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["site"] == "site-a")
        .unwrap_or_else(|| panic!("no alarm at site-a: {alarms:#}"))
        .clone();
    let name = format!("site-a#{}", rpo["id"]);
    let ack = demo.ferry(&["alarm", "ack", &name]);
    assert_eq!(ack.status.code(), Some(0), "{}", text(&ack.stderr));
    assert!(
        text(&ack.stderr).contains(&format!("acknowledged {name}")),
        "{}",
        text(&ack.stderr)
    );
    let listed = text(&demo.ferry(&["alarms"]).stdout);
    let line = listed
        .lines()
        .find(|l| l.starts_with(&name))
        .unwrap_or_default();
    assert!(line.contains("acked by"), "{listed}");

    // A site down: exit 3, naming it.
    unsafe { libc::kill(pid_a as i32, libc::SIGKILL) };
    let down = wait_until("site-a unreachable", Duration::from_secs(30), POLL, || {
        let out = demo.ferry(&["status"]);
        match out.status.code() {
            Some(3) => Ok(out),
            _ => Err(text(&out.stdout)),
        }
    });
    assert!(
        text(&down.stdout).contains("PROBLEM: site-a is unreachable"),
        "{}",
        text(&down.stdout)
    );
}
