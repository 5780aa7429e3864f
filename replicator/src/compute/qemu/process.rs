//! A QEMU VM's process: its command line (the shared contract), starting it
//! until QMP answers or telling why it would not, the few QMP commands that
//! power needs (one short connection each, since a QMP socket serves one
//! client at a time and the sync cycle's client needs it too) and the KVM
//! probe; its disk images are made by [`super::image`].

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::{AGENT_SOCKET, CONSOLE_LOG, PID_FILE, QEMU_LOG, QMP_SOCKET};
use crate::compute::ComputeError;
use crate::config::{GuestSeed, NicSeed};
use ferry_guest::boot::{BootParams, IpSetting};

pub use super::image::{convert_to_raw, create_overlay, create_qcow2};

/// How long QMP may take to greet and answer one command.
pub const QMP_TIMEOUT: Duration = Duration::from_secs(10);

/// One disk as QEMU attaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachedDisk {
    pub file: PathBuf,
    /// `qcow2` or `raw`.
    pub driver: &'static str,
}

/// Everything a VM's command line is made of.
#[derive(Debug, Clone)]
pub struct Launch {
    pub binary: PathBuf,
    pub dir: PathBuf,
    pub accelerator: &'static str,
    pub memory_mib: u32,
    pub vcpus: u32,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub append: String,
    pub disks: Vec<AttachedDisk>,
}

/// A started process that answers QMP.
pub struct Started {
    pub child: tokio::process::Child,
    pub pid: u32,
}

/// `name` as a path, or looked up on `PATH`; `None` when not executable.
pub fn find_binary(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if name.contains('/') {
        let p = PathBuf::from(name);
        return executable(&p).then_some(p);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| executable(p))
    })
}

/// The disks to attach: `disk-N.qcow2` where it exists beside `disk-N.raw`.
pub fn attached_disks(files: &[PathBuf]) -> Vec<AttachedDisk> {
    files
        .iter()
        .map(|f| {
            let qcow2 = f.with_extension("qcow2");
            if f.extension().is_some_and(|e| e == "qcow2") || qcow2.exists() {
                AttachedDisk {
                    file: qcow2,
                    driver: "qcow2",
                }
            } else {
                AttachedDisk {
                    file: f.clone(),
                    driver: "raw",
                }
            }
        })
        .collect()
}

/// The guest's kernel command line: the console, then the `ferry.*`
/// parameters as the guest crate writes them (its VM id, its NICs'
/// addresses, quoted when a NIC name holds a space, and the workload's
/// rates), so the agent parses exactly what was written.
pub fn kernel_append(
    vm_id: &str,
    nics: &[NicSeed],
    guest: &GuestSeed,
) -> Result<String, ComputeError> {
    let bad = |message: String| ComputeError::BootParams {
        vm: vm_id.to_string(),
        message,
    };
    let ips = nics
        .iter()
        .filter_map(|n| {
            let ip = n.ip.as_ref()?;
            Some(
                IpSetting::new(&n.network, ip, n.gateway.as_deref())
                    .map_err(|e| bad(e.to_string())),
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let params = BootParams {
        vm: vm_id.to_string(),
        ips,
        records_per_second: guest.records_per_second,
        overwrite_kib_per_second: guest.overwrite_kib_per_second,
    };
    let args = params.kernel_args().map_err(|e| bad(e.to_string()))?;
    Ok(format!("console=ttyS0 panic=-1 {args}"))
}

/// The arguments after the binary, in the contract's order.
pub fn arguments(l: &Launch) -> Vec<String> {
    let path = |name: &str| l.dir.join(name).display().to_string();
    let mut args: Vec<String> = [
        "-machine".into(),
        format!("q35,accel={}", l.accelerator),
        "-nodefaults".into(),
        "-display".into(),
        "none".into(),
        "-no-user-config".into(),
        "-m".into(),
        l.memory_mib.to_string(),
        "-smp".into(),
        l.vcpus.to_string(),
        "-kernel".into(),
        l.kernel.display().to_string(),
        "-initrd".into(),
        l.initrd.display().to_string(),
        "-append".into(),
        l.append.clone(),
        "-serial".into(),
        format!("file:{}", path(CONSOLE_LOG)),
        "-qmp".into(),
        format!("unix:{},server=on,wait=off", path(QMP_SOCKET)),
        "-device".into(),
        "virtio-serial".into(),
        "-chardev".into(),
        format!(
            "socket,id=agent,path={},server=on,wait=off",
            path(AGENT_SOCKET)
        ),
        "-device".into(),
        "virtserialport,chardev=agent,name=org.ferry.agent.0".into(),
    ]
    .into();
    for (i, d) in l.disks.iter().enumerate() {
        args.push("-blockdev".into());
        args.push(format!(
            "driver=file,filename={},node-name=file-{i}",
            d.file.display()
        ));
        args.push("-blockdev".into());
        args.push(format!(
            "driver={},file=file-{i},node-name=disk-{i}",
            d.driver
        ));
        args.push("-device".into());
        args.push(format!("virtio-blk-pci,drive=disk-{i},id=vd-{i}"));
    }
    args.extend([
        "-no-reboot".into(),
        "-pidfile".into(),
        path(PID_FILE),
        "-name".into(),
        format!("ferry,process=ferry-{}", dir_name(&l.dir)),
    ]);
    args
}

fn dir_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default()
}

/// Starts the process and waits for QMP. A process that ends first died at
/// boot (a refused disk named as such); one whose QMP stays silent is
/// killed. Either way nothing is left running.
pub async fn start(vm: &str, l: &Launch) -> Result<Started, ComputeError> {
    std::fs::create_dir_all(&l.dir).map_err(|e| ComputeError::io(vm, "the VM's directory", e))?;
    for stale in [
        QMP_SOCKET,
        AGENT_SOCKET,
        PID_FILE,
        super::agent::BOOT_REPORT,
    ] {
        let _ = std::fs::remove_file(l.dir.join(stale));
    }
    let log = std::fs::File::create(l.dir.join(QEMU_LOG))
        .map_err(|e| ComputeError::io(vm, "creating qemu.log", e))?;
    let log2 = log
        .try_clone()
        .map_err(|e| ComputeError::io(vm, "qemu.log", e))?;
    let mut child = tokio::process::Command::new(&l.binary)
        .args(arguments(l))
        .current_dir(&l.dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        // Its own process group: a Ctrl-C meant for the site does not
        // kill the VMs before the site shuts them down cleanly.
        .process_group(0)
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
                ComputeError::MissingBinary {
                    vm: vm.to_string(),
                    binary: l.binary.display().to_string(),
                }
            }
            _ => ComputeError::io(vm, "starting QEMU", e),
        })?;
    let pid = child.id().unwrap_or(0);
    let qmp = l.dir.join(QMP_SOCKET);
    let deadline = tokio::time::Instant::now() + QMP_TIMEOUT;
    let answered = async {
        // The socket appears once QEMU has parsed its options and opened
        // its disks; until then there is nothing to connect to.
        let mut last = String::from("the socket never appeared");
        while tokio::time::Instant::now() < deadline {
            match qmp_at(&qmp, "query-status", deadline).await {
                Ok(_) => return Ok(()),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(last)
    };
    tokio::select! {
        status = child.wait() => {
            let status = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
            Err(died_at_boot(vm, l, status))
        }
        answered = answered => match answered {
            Ok(()) => Ok(Started { child, pid }),
            Err(message) => {
                let _ = child.kill().await;
                Err(ComputeError::QmpSilent { vm: vm.to_string(), seconds: QMP_TIMEOUT.as_secs(), message })
            }
        }
    }
}

/// Why a process ended before QMP answered, from its own words.
fn died_at_boot(vm: &str, l: &Launch, status: String) -> ComputeError {
    let said = tail(&l.dir.join(QEMU_LOG), 3);
    let said = said.trim().to_string();
    for (i, d) in l.disks.iter().enumerate() {
        let name = d.file.display().to_string();
        if said.contains(&name) || said.contains(&format!("disk-{i}")) {
            return ComputeError::DiskRefused {
                vm: vm.to_string(),
                disk: i,
                file: name,
                message: said,
            };
        }
    }
    ComputeError::DiedAtBoot {
        vm: vm.to_string(),
        status,
        message: if said.is_empty() {
            "QEMU said nothing".into()
        } else {
            said
        },
    }
}

/// Why one QMP command on its own connection got no answer.
#[derive(Debug, thiserror::Error)]
pub enum QmpCallError {
    #[error("cannot connect to {socket}: {source}")]
    Connect {
        socket: String,
        source: std::io::Error,
    },
    #[error("QMP connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("QMP closed the connection")]
    Closed,
    #[error("QMP said {line:?}: {source}")]
    Malformed {
        line: String,
        source: serde_json::Error,
    },
    #[error("QMP refused: {0}")]
    Refused(Value),
    #[error("no answer")]
    NoAnswer,
}

/// One QMP command on its own connection, within `timeout`.
pub async fn qmp(socket: &Path, command: &str, timeout: Duration) -> Result<Value, QmpCallError> {
    qmp_at(socket, command, tokio::time::Instant::now() + timeout).await
}

async fn qmp_at(
    socket: &Path,
    command: &str,
    deadline: tokio::time::Instant,
) -> Result<Value, QmpCallError> {
    let talk = async {
        let stream = UnixStream::connect(socket)
            .await
            .map_err(|source| QmpCallError::Connect {
                socket: socket.display().to_string(),
                source,
            })?;
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        read_answer(&mut lines).await?;
        let mut got = Value::Null;
        for execute in ["qmp_capabilities", command] {
            let line = json!({ "execute": execute }).to_string() + "\n";
            write.write_all(line.as_bytes()).await?;
            got = read_answer(&mut lines).await?;
        }
        Ok(got)
    };
    tokio::time::timeout_at(deadline, talk)
        .await
        .map_err(|_| QmpCallError::NoAnswer)?
}

/// The next answer on a QMP connection: the greeting, a return or an
/// error; events on the way are skipped.
async fn read_answer(
    lines: &mut tokio::io::Lines<BufReader<tokio::net::unix::OwnedReadHalf>>,
) -> Result<Value, QmpCallError> {
    loop {
        let line = lines.next_line().await?.ok_or(QmpCallError::Closed)?;
        let v: Value = serde_json::from_str(&line).map_err(|source| QmpCallError::Malformed {
            line: line.clone(),
            source,
        })?;
        if let Some(r) = v.get("return") {
            return Ok(r.clone());
        }
        if let Some(e) = v.get("error") {
            return Err(QmpCallError::Refused(e.clone()));
        }
        if v.get("QMP").is_some() {
            return Ok(Value::Null);
        }
    }
}

/// The last `lines` lines of a text file (empty when there is none).
pub fn tail(file: &Path, lines: usize) -> String {
    use std::io::{Read, Seek, SeekFrom};
    const MAX: u64 = 16 << 10;
    let Ok(mut f) = std::fs::File::open(file) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(MAX)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).replace('\r', "");
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// How long a KVM probe VM may take to get its agent talking.
pub const KVM_PROBE: Duration = Duration::from_secs(20);

/// Whether KVM boots the guest here: a probe VM without disks must get its
/// agent talking within `within` (nested KVM may hang at boot instead);
/// otherwise `tcg`. The probe VM is killed either way.
pub async fn probe_kvm(
    binary: &Path,
    image: Option<(PathBuf, PathBuf)>,
    within: Duration,
) -> &'static str {
    let usable = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    let (Some((kernel, initrd)), true) = (image, usable) else {
        return "tcg";
    };
    let Ok(dir) = tempfile_dir() else {
        return "tcg";
    };
    let launch = Launch {
        binary: binary.to_path_buf(),
        dir: dir.clone(),
        accelerator: "kvm",
        memory_mib: 128,
        vcpus: 1,
        kernel,
        initrd,
        append: "console=ttyS0 panic=-1 ferry.vm=probe ferry.records=0 ferry.overwrite_kib=0"
            .into(),
        disks: Vec::new(),
    };
    let answered = match start("kvm-probe", &launch).await {
        Ok(mut started) => {
            let agent = async {
                let stream = UnixStream::connect(dir.join(AGENT_SOCKET)).await.ok()?;
                BufReader::new(stream)
                    .lines()
                    .next_line()
                    .await
                    .ok()
                    .flatten()
            };
            let line = tokio::time::timeout(within, agent).await.ok().flatten();
            let _ = started.child.kill().await;
            line.is_some()
        }
        Err(_) => false,
    };
    let _ = std::fs::remove_dir_all(&dir);
    if answered { "kvm" } else { "tcg" }
}

fn tempfile_dir() -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("ferry-kvm-probe-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_follows_the_contract() {
        let l = Launch {
            binary: "qemu-system-x86_64".into(),
            dir: "/ds/vms/a.db".into(),
            accelerator: "tcg",
            memory_mib: 128,
            vcpus: 1,
            kernel: "/img/vmlinuz".into(),
            initrd: "/img/initrd.img".into(),
            append: kernel_append(
                "a.db",
                &[NicSeed {
                    network: "prod".into(),
                    ip: Some("10.0.0.5/24".into()),
                    gateway: Some("10.0.0.1".into()),
                    dns: Vec::new(),
                }],
                &GuestSeed::default(),
            )
            .unwrap(),
            disks: vec![
                AttachedDisk {
                    file: "/ds/vms/a.db/disk-0.qcow2".into(),
                    driver: "qcow2",
                },
                AttachedDisk {
                    file: "/ds/vms/a.db/disk-1.raw".into(),
                    driver: "raw",
                },
            ],
        };
        let line = arguments(&l).join(" ");
        for part in [
            "-machine q35,accel=tcg -nodefaults -display none -no-user-config -m 128 -smp 1",
            "console=ttyS0 panic=-1 ferry.vm=a.db ferry.records=5 ferry.overwrite_kib=64 ferry.ip=prod:10.0.0.5/24:10.0.0.1",
            "-serial file:/ds/vms/a.db/console.log",
            "-qmp unix:/ds/vms/a.db/qmp.sock,server=on,wait=off",
            "socket,id=agent,path=/ds/vms/a.db/agent.sock,server=on,wait=off",
            "virtserialport,chardev=agent,name=org.ferry.agent.0",
            "driver=file,filename=/ds/vms/a.db/disk-0.qcow2,node-name=file-0",
            "driver=qcow2,file=file-0,node-name=disk-0 -device virtio-blk-pci,drive=disk-0,id=vd-0",
            "driver=raw,file=file-1,node-name=disk-1",
            "-no-reboot",
        ] {
            assert!(line.contains(part), "{part:?} not in {line}");
        }
    }

    #[test]
    fn a_qcow2_beside_the_raw_file_is_attached() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("disk-0.raw");
        std::fs::write(&raw, b"").unwrap();
        assert_eq!(attached_disks(std::slice::from_ref(&raw))[0].driver, "raw");
        std::fs::write(dir.path().join("disk-0.qcow2"), b"").unwrap();
        let d = &attached_disks(&[raw])[0];
        assert_eq!(
            (d.driver, d.file.extension().unwrap().to_str()),
            ("qcow2", Some("qcow2"))
        );
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("console.log");
        std::fs::write(&f, "a\r\nb\nc\n").unwrap();
        assert_eq!(tail(&f, 2), "b\nc");
        assert_eq!(tail(&dir.path().join("none"), 2), "");
    }
}
