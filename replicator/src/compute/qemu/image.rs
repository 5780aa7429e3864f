//! A QEMU VM's disk images, made and converted with `qemu-img`: empty
//! qcow2 disks, overlays over a raw replica, and raw seeds written back
//! from qcow2; each made durable before it is used.

use std::path::Path;

use crate::compute::ComputeError;

/// Creates `file` as an empty qcow2 disk of `size` bytes with `qemu-img`.
pub async fn create_qcow2(
    vm: &str,
    disk: usize,
    file: &Path,
    size: u64,
) -> Result<(), ComputeError> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(|e| ComputeError::io(vm, "the VM's directory", e))?;
    }
    let out = tokio::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(file)
        .arg(size.to_string())
        .output()
        .await
        .map_err(|e| ComputeError::io(vm, "running qemu-img (install qemu-utils)", e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(ComputeError::DiskRefused {
            vm: vm.to_string(),
            disk,
            file: file.display().to_string(),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Runs `qemu-img` with `args`; a failure is QEMU refusing disk `disk`.
async fn qemu_img(
    vm: &str,
    disk: usize,
    file: &Path,
    args: &[&std::ffi::OsStr],
) -> Result<(), ComputeError> {
    let out = tokio::process::Command::new("qemu-img")
        .args(args)
        .output()
        .await
        .map_err(|e| ComputeError::io(vm, "running qemu-img (install qemu-utils)", e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(ComputeError::DiskRefused {
            vm: vm.to_string(),
            disk,
            file: file.display().to_string(),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Makes `overlay` a qcow2 file over the raw `base` (replacing any file
/// there): the guest's writes land in the overlay, where QEMU's persistent
/// bitmaps can track them, and the base stays as it was received.
pub async fn create_overlay(
    vm: &str,
    disk: usize,
    base: &Path,
    overlay: &Path,
) -> Result<(), ComputeError> {
    let _ = std::fs::remove_file(overlay);
    let base_name = base
        .file_name()
        .ok_or_else(|| ComputeError::io(vm, "the overlay's base", "has no file name"))?;
    // Relative to the overlay, so the pair can move together.
    qemu_img(
        vm,
        disk,
        overlay,
        &[
            "create".as_ref(),
            "-q".as_ref(),
            "-f".as_ref(),
            "qcow2".as_ref(),
            "-F".as_ref(),
            "raw".as_ref(),
            "-b".as_ref(),
            base_name,
            overlay.as_os_str(),
        ],
    )
    .await?;
    fsync(vm, overlay)
}

/// Writes the disk `from` (qcow2, through its backing chain) as the raw
/// file `to`, sparse, fsynced.
pub async fn convert_to_raw(
    vm: &str,
    disk: usize,
    from: &Path,
    to: &Path,
) -> Result<(), ComputeError> {
    qemu_img(
        vm,
        disk,
        from,
        &[
            "convert".as_ref(),
            "-q".as_ref(),
            "-O".as_ref(),
            "raw".as_ref(),
            from.as_os_str(),
            to.as_os_str(),
        ],
    )
    .await?;
    fsync(vm, to)
}

fn fsync(vm: &str, file: &Path) -> Result<(), ComputeError> {
    std::fs::File::open(file)
        .and_then(|f| f.sync_all())
        .map_err(|e| ComputeError::io(vm, &format!("fsync of {}", file.display()), e))
}
