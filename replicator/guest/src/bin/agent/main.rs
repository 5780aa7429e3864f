//! ferry's guest agent: the built-in guest's workload inside a real VM. It
//! reads its VM, IP settings and rates from the kernel command line, verifies
//! the record log on every virtio disk, applies the IP settings, then writes
//! the workload (O_DIRECT) and talks to the site over the virtio-serial port
//! until the host or the power button asks it to shut down; then it flushes
//! the disks and powers the VM off. The guest image's /init starts it after
//! loading the virtio modules (see image.sh).

/// A line on the console (the VM's `console.log`), stamped with the time
/// since boot like the kernel's own lines.
macro_rules! say {
    ($($arg:tt)*) => {
        eprintln!("[{:>12.6}] ferry-guest-agent: {}", $crate::uptime(), format_args!($($arg)*))
    };
}

mod bench;
mod channel;
mod disk;
mod net;
mod power;
mod workload;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ferry_guest::agent::{GuestMessage, PORT_NAME};
use ferry_guest::boot::BootParams;

/// How long the agent port may take to show up after its module loads.
const PORT_WAIT: Duration = Duration::from_secs(5);

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Seconds since boot (CLOCK_BOOTTIME).
pub fn uptime() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let cmdline = std::fs::read_to_string("/proc/cmdline")
        .map_err(|e| format!("reading /proc/cmdline: {e}"))?;
    let (params, problems) =
        BootParams::from_cmdline_lenient(&cmdline).map_err(|e| e.to_string())?;
    say!("VM {}", params.vm);
    for problem in problems {
        say!("{problem}: left out");
    }

    // Watched from the start: a press during a long verification is not
    // lost (evdev only queues events for a device that is open).
    let stop = Arc::new(AtomicBool::new(false));
    for button in power::power_buttons(Path::new("/sys/class/input")) {
        let stop = stop.clone();
        std::thread::spawn(move || power::watch(button, stop));
    }

    let found = disk::find(Path::new("/sys/block")).map_err(|e| format!("listing disks: {e}"))?;
    // A VM always has a disk: none means the virtio modules did not load.
    if found.is_empty() {
        return Err("no virtio disk (/dev/vd*) to verify".into());
    }
    let disks = found
        .iter()
        .map(|(device, size)| {
            disk::Disk::open(device, *size)
                .map_err(|e| format!("opening {}: {e}", device.display()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (mut workload, report) = workload::Workload::boot(
        disks,
        params.records_per_second,
        params.overwrite_kib_per_second,
    )
    .map_err(|e| format!("verifying the disks: {e}"))?;
    let ips = net::apply(&params.ips, Path::new("/sys/class/net"));

    let deadline = Instant::now() + PORT_WAIT;
    let port = loop {
        match channel::find_port(Path::new("/sys/class/virtio-ports"), PORT_NAME) {
            Some(port) => break Some(port),
            None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            None => break None,
        }
    };
    match port {
        Some(port) => {
            let boot = GuestMessage::Boot { disks: report };
            let channel =
                channel::Channel::open(&port, boot, ips, workload.status.clone(), stop.clone())
                    .map_err(|e| format!("opening {}: {e}", port.display()))?;
            std::thread::spawn(move || channel.run());
        }
        None => say!("no port named {PORT_NAME}: running unheard"),
    }

    say!("running");
    workload.run(&stop);
    say!("disks flushed, powering off");
    power::power_off();
    Ok(())
}
