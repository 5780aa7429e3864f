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
