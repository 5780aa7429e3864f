//! Powering off: the ACPI power button (QMP `system_powerdown`) asks for a
//! clean shutdown like the host's `shutdown` message does; the agent powers
//! the VM off itself once its disks are flushed.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

const EV_KEY: u16 = 1;
const KEY_POWER: u16 = 116;
/// `struct input_event` on x86_64: a 16-byte timeval, type, code, value.
const EVENT: usize = 24;

/// The event devices of the ACPI power buttons (`button` and `evdev`
/// modules), from `/sys/class/input`.
pub fn power_buttons(sys_input: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(sys_input) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("event"))
        .filter(|e| {
            std::fs::read_to_string(e.path().join("device/name"))
                .is_ok_and(|n| n.trim() == "Power Button")
        })
        .map(|e| Path::new("/dev/input").join(e.file_name()))
        .collect()
}

/// Sets `stop` when the button at `device` is pressed.
pub fn watch(device: PathBuf, stop: Arc<AtomicBool>) {
    let mut file = match File::open(&device) {
        Ok(f) => f,
        Err(e) => {
            say!("opening {}: {e}", device.display());
            return;
        }
    };
    let mut event = [0u8; EVENT];
    while file.read_exact(&mut event).is_ok() {
        if is_power_press(&event) {
            say!("power button pressed");
            stop.store(true, Ordering::Relaxed);
            return;
        }
    }
}

fn is_power_press(event: &[u8; EVENT]) -> bool {
    let kind = u16::from_ne_bytes([event[16], event[17]]);
    let code = u16::from_ne_bytes([event[18], event[19]]);
    let value = i32::from_ne_bytes([event[20], event[21], event[22], event[23]]);
    kind == EV_KEY && code == KEY_POWER && value == 1
}

/// Powers the VM off (QEMU exits). Only in the guest: the agent's parent is
/// the image's /init (or the agent is init itself).
pub fn power_off() {
    // SAFETY: plain system calls without pointers.
    unsafe {
        libc::sync();
        if libc::getpid() == 1 || libc::getppid() == 1 {
            libc::reboot(libc::RB_POWER_OFF);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_power_key_press_counts() {
        let event = |kind: u16, code: u16, value: i32| {
            let mut e = [0u8; EVENT];
            e[16..18].copy_from_slice(&kind.to_ne_bytes());
            e[18..20].copy_from_slice(&code.to_ne_bytes());
            e[20..24].copy_from_slice(&value.to_ne_bytes());
            e
        };
        assert!(is_power_press(&event(EV_KEY, KEY_POWER, 1)));
        assert!(!is_power_press(&event(EV_KEY, KEY_POWER, 0)));
        assert!(!is_power_press(&event(0, 0, 0)));
    }
}
