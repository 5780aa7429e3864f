//! A real site whose `[compute]` is QEMU (TCG, the real guest image): its
//! VM with two disks boots as a `qemu-system-x86_64` process the API
//! describes (compute, pid, accelerator, console); a QEMU killed under it
//! is `crashed` with an alarm; powered on again, it survives a kill -9 of
//! the site and is found again by the restarted site; a clean stop of the
//! site shuts it down.

use std::path::Path;
use std::time::Duration;

use ferry_api::types::{PowerState, VmInfo};
use ferry_replicator::access::Role;
use ferry_replicator::config::{Accelerator, ComputeConfig, ComputeKind, DiskSeed, VmSeed};
use ferry_testkit::{SiteConfigBuilder, SiteProcess, config, wait_until};
use serde_json::{Value, json};

const TOKEN: &str = "qemu-admin-token";
const BOOT: Duration = Duration::from_secs(180);

/// Running, not a zombie nobody reaped (the site that started it is gone).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}

struct Api {
    url: String,
    http: reqwest::blocking::Client,
}

impl Api {
    fn vm(&self, id: &str) -> VmInfo {
        self.http
            .get(format!("{}/api/v1/vms/{id}", self.url))
            .bearer_auth(TOKEN)
            .send()
            .unwrap()
            .json()
            .unwrap()
    }

    fn power(&self, id: &str, state: &str) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/api/v1/vms/{id}/power", self.url))
            .bearer_auth(TOKEN)
            .json(&json!({ "state": state }))
            .send()
            .unwrap();
        (r.status().as_u16(), r.json().unwrap())
    }

    fn alarms(&self) -> Vec<Value> {
        self.http
            .get(format!("{}/api/v1/alarms", self.url))
            .bearer_auth(TOKEN)
            .send()
            .unwrap()
            .json()
            .unwrap()
    }

    /// The VM once its guest has reported its boot verification.
    fn booted(&self, id: &str) -> VmInfo {
        wait_until(
            "the guest's boot report",
            BOOT,
            Duration::from_millis(250),
            || {
                let vm = self.vm(id);
                match vm.guest.as_ref().and_then(|g| g.boot_verification.as_ref()) {
                    Some(_) => Ok(vm),
                    None => Err(format!("{:?} {:?}", vm.power_state, vm.problem)),
                }
            },
        )
    }
}

fn start(dir: &Path) -> (SiteProcess, Api) {
    let process = SiteProcess::spawn(
        Path::new(env!("CARGO_BIN_EXE_ferry-replicator")),
        &["--config"],
        dir,
        "info",
    );
    let api = Api {
        url: process.api.clone(),
        http: reqwest::blocking::Client::new(),
    };
    (process, api)
}

#[test]
fn a_site_runs_supervises_and_finds_again_its_qemu_vm() {
    let work = tempfile::tempdir().unwrap();
    let _reaper = ferry_testkit::QemuReaper(std::path::absolute(work.path()).unwrap());
    let dir = work.path().join("site");
    let builder = SiteConfigBuilder::new("site-q")
        .token("admin", Role::Admin, TOKEN)
        .vm(VmSeed {
            disks: vec![
                DiskSeed {
                    datastore: "ds1".into(),
                    size_mib: 16,
                },
                DiskSeed {
                    datastore: "ds1".into(),
                    size_mib: 8,
                },
            ],
            nics: vec![config::nic("net", "10.0.0.9/24")],
            ..config::vm("vm-0", 16)
        })
        .compute(ComputeConfig {
            backend: ComputeKind::Qemu,
            accelerator: Accelerator::Tcg,
            guest_image: Some(ferry_testkit::guest_image()),
            shutdown_timeout_seconds: 30,
            ..ComputeConfig::default()
        });
    builder.write(&dir);
    let (mut site, api) = start(&dir);
    let id = "site-q.vm-0";

    let vm = api.booted(id);
    assert_eq!(vm.compute, ComputeKind::Qemu);
    assert_eq!(vm.accelerator.as_deref(), Some("tcg"));
    assert_eq!((vm.memory_mib, vm.vcpus), (128, 1));
    let boot = vm
        .guest
        .as_ref()
        .unwrap()
        .boot_verification
        .clone()
        .unwrap();
    assert!(boot.ok, "{boot:?}");
    assert!(vm.console_tail.as_deref().is_some_and(|c| !c.is_empty()));
    let pid = vm.pid.expect("a running QEMU VM has a pid");
    assert!(alive(pid));

    // Killed under the site: crashed, with the cause and an alarm.
    // SAFETY: the QEMU process of this test's site.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let crashed = wait_until("the VM crashed", BOOT, Duration::from_millis(100), || {
        let vm = api.vm(id);
        (vm.power_state == PowerState::Crashed)
            .then_some(vm.clone())
            .ok_or(format!("{:?}", vm.power_state))
    });
    assert!(
        crashed
            .problem
            .as_deref()
            .is_some_and(|p| p.contains("signal 9")),
        "{crashed:?}"
    );
    assert!(crashed.pid.is_none());
    let alarm = api.alarms().into_iter().find(|a| a["kind"] == "vm_crashed");
    assert!(alarm.is_some_and(|a| a["vm_id"] == id));
    // `crashed` is reported, never asked for.
    assert_eq!(api.power(id, "crashed").0, 422);

    // Powered on again; its records survived (every disk verifies).
    let (status, _) = api.power(id, "on");
    assert_eq!(status, 200);
    let again = api.booted(id);
    assert!(again.guest.unwrap().boot_verification.unwrap().ok);
    let pid = again.pid.unwrap();

    // The site dies; its VM runs on and the restarted site finds it.
    site.kill9();
    assert!(alive(pid));
    let (mut site, api) = start(&dir);
    let found = api.booted(id);
    assert_eq!((found.power_state, found.pid), (PowerState::On, Some(pid)));

    // A clean stop of the site shuts its VM down cleanly.
    site.terminate();
    wait_until(
        "QEMU to stop with the site",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || {
            if alive(pid) {
                Err("still running".to_string())
            } else {
                Ok(())
            }
        },
    );
    let log = std::fs::read_to_string(dir.join("site.log")).unwrap();
    assert!(log.contains("clean shutdown"), "{log}");
}

/// Bad input through the API: a VM whose disk QEMU refuses is not powered
/// on; the answer, the VM's problem and an alarm each name the VM and the
/// cause, no process is left, and the VM stays off with its disk as it was.
#[test]
fn a_refused_disk_is_an_api_error_naming_the_vm() {
    let work = tempfile::tempdir().unwrap();
    let _reaper = ferry_testkit::QemuReaper(std::path::absolute(work.path()).unwrap());
    let dir = work.path().join("site");
    SiteConfigBuilder::new("site-q")
        .token("admin", Role::Admin, TOKEN)
        .vm(VmSeed {
            power_on: false,
            ..config::vm("vm-0", 8)
        })
        .compute(ComputeConfig {
            backend: ComputeKind::Qemu,
            accelerator: Accelerator::Tcg,
            guest_image: Some(ferry_testkit::guest_image()),
            ..ComputeConfig::default()
        })
        .write(&dir);
    let (_site, api) = start(&dir);
    let id = "site-q.vm-0";
    let disk = dir.join("ds1/vms").join(id).join("disk-0.qcow2");
    assert!(disk.exists(), "the site made its qcow2 disk");
    let garbage = vec![0x5au8; 4096];
    std::fs::write(&disk, &garbage).unwrap();

    let (status, body) = api.power(id, "on");
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"], "compute_failed", "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with(id) && message.contains("refused disk 0"),
        "{message}"
    );
    let vm = api.vm(id);
    assert_eq!(vm.power_state, PowerState::Off);
    assert!(vm.pid.is_none());
    assert!(
        vm.problem.as_deref().is_some_and(|p| p == message),
        "{:?}",
        vm.problem
    );
    let alarm = api
        .alarms()
        .into_iter()
        .find(|a| a["kind"] == "vm_power_on_failed");
    assert!(
        alarm.as_ref().is_some_and(|a| a["vm_id"] == id),
        "{alarm:?}"
    );
    assert_eq!(
        std::fs::read(&disk).unwrap(),
        garbage,
        "the disk was changed"
    );
    let running = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .any(|c| String::from_utf8_lossy(&c).contains(&disk.display().to_string()));
    assert!(!running, "a QEMU on the refused disk is left running");
}
