//! The real guest's boot image for tests of QEMU VMs: built once per test
//! binary by `replicator/guest/image.sh` (from Debian packages, cached
//! outside the source tree, so after the first build this only finds it).

use std::path::PathBuf;
use std::sync::OnceLock;

/// The directory with `vmlinuz` and `initrd.img`. Panics with the script's
/// own words when it cannot build the image: a QEMU test needs it.
pub fn guest_image() -> PathBuf {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    IMAGE
        .get_or_init(|| {
            let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../guest/image.sh");
            let out = std::process::Command::new("bash")
                .arg(&script)
                .output()
                .expect("bash runs");
            assert!(
                out.status.success(),
                "{} failed:\n{}",
                script.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            let stdout = String::from_utf8_lossy(&out.stdout);
            let dir = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
            assert!(
                dir.join("vmlinuz").is_file() && dir.join("initrd.img").is_file(),
                "{} printed {dir:?}, which has no vmlinuz and initrd.img",
                script.display()
            );
            dir
        })
        .clone()
}

/// Kills, when dropped, every QEMU process whose command line names a path
/// under its directory: a QEMU VM outlives the site that started it on
/// purpose, so a test that fails half way must not leave its VMs running.
pub struct QemuReaper(pub PathBuf);

impl Drop for QemuReaper {
    fn drop(&mut self) {
        let needle = self.0.display().to_string();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return;
        };
        for entry in entries.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let cmdline = String::from_utf8_lossy(&cmdline);
            if cmdline.contains("qemu-system") && cmdline.contains(&needle) {
                // SAFETY: kill(2) on a QEMU this test's directory names.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
    }
}
