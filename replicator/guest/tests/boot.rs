//! The guest image boots for real: image.sh builds it, QEMU runs it under TCG
//! with two qcow2 disks, and the agent speaks on its virtio-serial port. The
//! guest verifies both disks, beats, applies its IP setting, powers off on the
//! host's `shutdown` and on the ACPI power button, its record log goes on
//! across boots, and a QEMU killed outright loses no record the guest
//! reported (read from the host's side of the disks).
//!
//! Skipped, with the reason printed, only where `qemu-system-x86_64` is not
//! installed; CI installs it.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ferry_guest::agent::{self, DiskBoot, GuestMessage, Heartbeat, HostMessage};
use ferry_guest::boot::{BootParams, IpSetting};
use ferry_guest::record_log;

const QEMU: &str = "qemu-system-x86_64";
/// Generous for TCG on a loaded two-core machine; a boot takes a few seconds.
const BOOT_DEADLINE: Duration = Duration::from_secs(60);
const DISKS: [(&str, &str); 2] = [("disk-0.qcow2", "64M"), ("disk-1.qcow2", "32M")];

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// The image directory, from image.sh's last line.
fn build_image() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("image.sh");
    let out = Command::new("bash")
        .arg(&script)
        .stderr(Stdio::inherit())
        .output()
        .expect("run image.sh");
    assert!(out.status.success(), "image.sh failed: {:?}", out.status);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let dir = PathBuf::from(
        stdout
            .lines()
            .last()
            .expect("image.sh printed its directory"),
    );
    assert!(dir.join("vmlinuz").is_file() && dir.join("initrd.img").is_file());
    dir
}

/// A QEMU process, killed if the test ends before it exits.
struct Vm {
    child: Child,
    dir: PathBuf,
}

impl Drop for Vm {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Vm {
    /// Starts the VM with the command line the qemu backend uses.
    fn start(image: &Path, dir: &Path) -> Vm {
        for sock in ["qmp.sock", "agent.sock"] {
            let _ = std::fs::remove_file(dir.join(sock));
        }
        let params = BootParams {
            vm: "vm-smoke".into(),
            ips: vec![IpSetting::new("lan", "10.0.1.11/24", Some("10.0.1.1")).unwrap()],
            records_per_second: 20.0,
            overwrite_kib_per_second: 64,
        };
        let append = format!("console=ttyS0 panic=-1 {}", params.kernel_args().unwrap());
        let mut cmd = Command::new(QEMU);
        cmd.current_dir(dir)
            .args([
                "-machine",
                "q35,accel=tcg",
                "-nodefaults",
                "-display",
                "none",
            ])
            .args(["-no-user-config", "-m", "128", "-smp", "1"])
            .arg("-kernel")
            .arg(image.join("vmlinuz"))
            .arg("-initrd")
            .arg(image.join("initrd.img"))
            .args(["-append", &append])
            .args(["-serial", "file:console.log"])
            .args(["-qmp", "unix:qmp.sock,server=on,wait=off"])
            .args(["-device", "virtio-serial"])
            .args([
                "-chardev",
                "socket,id=agent,path=agent.sock,server=on,wait=off",
            ])
            .args([
                "-device",
                "virtserialport,chardev=agent,name=org.ferry.agent.0",
            ]);
        for (n, (file, _)) in DISKS.iter().enumerate() {
            cmd.args([
                "-blockdev",
                &format!("driver=file,filename={file},node-name=file-{n}"),
                "-blockdev",
                &format!("driver=qcow2,file=file-{n},node-name=disk-{n}"),
                "-device",
                &format!("virtio-blk-pci,drive=disk-{n},id=vd-{n}"),
            ]);
        }
        cmd.arg("-no-reboot").stdin(Stdio::null());
        let child = cmd.spawn().expect("start qemu");
        Vm {
            child,
            dir: dir.to_path_buf(),
        }
    }

    fn console(&self) -> String {
        std::fs::read_to_string(self.dir.join("console.log")).unwrap_or_default()
    }

    /// Connects to a socket QEMU creates, failing if QEMU is gone.
    fn connect(&mut self, name: &str, deadline: Instant) -> UnixStream {
        loop {
            if let Ok(s) = UnixStream::connect(self.dir.join(name)) {
                return s;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("qemu exited ({status}) before {name} was up");
            }
            assert!(Instant::now() < deadline, "no {name} in time");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_console(&self, text: &str, deadline: Instant) {
        while !self.console().contains(text) {
            assert!(
                Instant::now() < deadline,
                "no {text:?} on the console:\n{}",
                self.console()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_exit(&mut self, deadline: Instant) -> std::process::ExitStatus {
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "qemu did not exit in time; console:\n{}",
                self.console()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The agent's side of agent.sock.
struct Agent {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Agent {
    fn new(stream: UnixStream) -> Agent {
        Agent {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
        }
    }

    fn next(&mut self, deadline: Instant, vm: &Vm) -> GuestMessage {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no agent message in time; console:\n{}",
            vm.console()
        );
        self.reader.get_ref().set_read_timeout(Some(left)).unwrap();
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(n) if n > 0 => agent::parse_guest(&line).expect("a message"),
            other => panic!("agent port: {other:?}; console:\n{}", vm.console()),
        }
    }

    fn boot(&mut self, deadline: Instant, vm: &Vm) -> Vec<DiskBoot> {
        match self.next(deadline, vm) {
            GuestMessage::Boot { disks } => disks,
            other => panic!("first message is not boot: {other:?}"),
        }
    }

    /// The first heartbeat that `pred` accepts.
    fn heartbeat(
        &mut self,
        deadline: Instant,
        vm: &Vm,
        pred: impl Fn(&Heartbeat) -> bool,
    ) -> Heartbeat {
        loop {
            if let GuestMessage::Heartbeat(beat) = self.next(deadline, vm)
                && pred(&beat)
            {
                return beat;
            }
        }
    }

    fn send(&mut self, message: &HostMessage) {
        self.writer
            .write_all(agent::encode(message).as_bytes())
            .unwrap();
    }
}

/// QMP `system_powerdown`: the ACPI power button.
fn press_power_button(vm: &mut Vm, deadline: Instant) {
    let stream = vm.connect("qmp.sock", deadline);
    stream.set_read_timeout(Some(BOOT_DEADLINE)).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap(); // the greeting
    for command in ["qmp_capabilities", "system_powerdown"] {
        writeln!(writer, "{{\"execute\":\"{command}\"}}").unwrap();
        loop {
            line.clear();
            assert!(reader.read_line(&mut line).unwrap() > 0, "QMP closed");
            if line.contains("\"return\"") {
                break;
            }
            assert!(!line.contains("\"error\""), "{command}: {line}");
        }
    }
}

fn assert_intact(disks: &[DiskBoot]) {
    let devices: Vec<_> = disks.iter().map(|d| d.device.as_str()).collect();
    assert_eq!(devices, ["/dev/vda", "/dev/vdb"]);
    for d in disks {
        assert!(d.verification.ok, "{}: {:?}", d.device, d.verification);
    }
}

/// The record log as the host reads it from a powered-off VM's disk.
fn host_verification(dir: &Path, disk: &str) -> record_log::Verification {
    let raw = dir.join(format!("{disk}.raw"));
    let status = Command::new("qemu-img")
        .args(["convert", "-O", "raw"])
        .arg(dir.join(disk))
        .arg(&raw)
        .status()
        .unwrap();
    assert!(status.success());
    let bytes = std::fs::read(&raw).unwrap();
    record_log::verify(bytes.len() as u64, |buf, at| {
        buf.copy_from_slice(&bytes[at as usize..at as usize + buf.len()]);
        Ok(())
    })
    .unwrap()
}

#[test]
fn guest_image_boots_verifies_beats_and_powers_off() {
    if on_path(QEMU).is_none() {
        println!("SKIPPED: {QEMU} is not installed (apt-get install qemu-system-x86 qemu-utils)");
        return;
    }
    let image = build_image();
    let initrd = std::fs::metadata(image.join("initrd.img")).unwrap().len();
    let dir = tempfile::tempdir().unwrap();
    for (file, size) in DISKS {
        let status = Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", file, size])
            .current_dir(dir.path())
            .status()
            .expect("qemu-img");
        assert!(status.success());
    }

    // First boot: blank disks verify as empty logs; the workload starts.
    let started = Instant::now();
    let deadline = started + BOOT_DEADLINE;
    let mut vm = Vm::start(&image, dir.path());
    let mut agent = Agent::new(vm.connect("agent.sock", deadline));
    let disks = agent.boot(deadline, &vm);
    let boot_time = started.elapsed();
    assert_intact(&disks);
    assert!(disks.iter().all(|d| d.verification.last_seq == 0));
    let beat = agent.heartbeat(deadline, &vm, |b| b.last_seq >= 10);
    assert_eq!(beat.ips, ["lan=10.0.1.11/24"]);
    assert!(beat.last_record_ms > 0 && beat.time_ms >= beat.last_record_ms);
    agent.send(&HostMessage::Shutdown);
    let status = vm.wait_exit(Instant::now() + BOOT_DEADLINE);
    assert!(status.success(), "qemu: {status}");
    let console = vm.console();
    assert!(console.contains("shutdown asked by the host"), "{console}");
    drop(vm);

    // Second boot: the log is intact on both disks and goes on.
    let deadline = Instant::now() + BOOT_DEADLINE;
    let mut vm = Vm::start(&image, dir.path());
    let mut agent = Agent::new(vm.connect("agent.sock", deadline));
    let disks = agent.boot(deadline, &vm);
    assert_intact(&disks);
    let last = disks[0].verification.last_seq;
    assert!(last >= beat.last_seq, "{last} < {}", beat.last_seq);
    // A clean shutdown leaves every disk's log at the same record.
    assert_eq!(disks[1].verification.last_seq, last);
    agent.heartbeat(deadline, &vm, |_| true);
    // A host that reconnects (a site restarted) hears the boot message again,
    // once the guest has seen it leave.
    drop(agent);
    vm.wait_console("host left the agent port", deadline);
    let mut agent = Agent::new(vm.connect("agent.sock", deadline));
    assert_eq!(agent.boot(deadline, &vm), disks);
    let later = agent.heartbeat(deadline, &vm, |b| b.last_seq > last + 5);
    // The guest's clock comes from the emulated RTC: whole seconds, so it
    // runs up to a second behind the host's, and a beat is up to 1.1 s old.
    let skew = now_ms().abs_diff(later.time_ms);
    assert!(skew < 5_000, "guest clock {skew} ms off the host's");
    press_power_button(&mut vm, deadline);
    let status = vm.wait_exit(Instant::now() + BOOT_DEADLINE);
    assert!(status.success(), "qemu: {status}");
    assert!(vm.console().contains("power button pressed"));

    // Third boot: the log went on to where the guest stopped; QEMU is then
    // killed, and every record a heartbeat reported is still on the disks
    // as the host reads them (the guest flushes records before reporting).
    let deadline = Instant::now() + BOOT_DEADLINE;
    let mut vm = Vm::start(&image, dir.path());
    let mut agent = Agent::new(vm.connect("agent.sock", deadline));
    let disks = agent.boot(deadline, &vm);
    assert_intact(&disks);
    assert!(disks[0].verification.last_seq >= later.last_seq);
    let last = disks[0].verification.last_seq;
    let reported = agent.heartbeat(deadline, &vm, |b| b.last_seq > last + 5);
    vm.child.kill().unwrap();
    vm.child.wait().unwrap();
    for (file, _) in DISKS {
        let v = host_verification(dir.path(), file);
        assert!(v.ok && v.last_seq >= reported.last_seq, "{file}: {v:?}");
    }
    println!(
        "guest boot: {:.1} s from qemu start to the boot message; initramfs {} KiB",
        boot_time.as_secs_f64(),
        initrd / 1024
    );
}
