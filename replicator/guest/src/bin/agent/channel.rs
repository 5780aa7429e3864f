//! The virtio-serial port to the host: the boot message whenever the host
//! (re)connects, a heartbeat every second, and the host's commands.
//!
//! The port is non-blocking: a host that is gone or not reading must never
//! stall the agent. While no host is connected the kernel reports POLLHUP and
//! anything queued is dropped; the next connection starts with the boot
//! message again, so a site that restarted still learns the verification.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ferry_guest::agent::{self, GuestMessage, Heartbeat, HostMessage};

use crate::workload::Status;

const HEARTBEAT: Duration = Duration::from_secs(1);
/// How often a port with no host is looked at again (poll returns at once).
const IDLE: Duration = Duration::from_millis(200);

/// The device of the port named `name`, from `/sys/class/virtio-ports`.
pub fn find_port(sys_ports: &Path, name: &str) -> Option<PathBuf> {
    std::fs::read_dir(sys_ports)
        .ok()?
        .filter_map(|e| e.ok())
        .find(|e| std::fs::read_to_string(e.path().join("name")).is_ok_and(|n| n.trim() == name))
        .map(|e| Path::new("/dev").join(e.file_name()))
}

pub struct Channel {
    port: File,
    boot: GuestMessage,
    ips: Vec<String>,
    status: Arc<Status>,
    stop: Arc<AtomicBool>,
    connected: bool,
    out: Vec<u8>,
    input: Vec<u8>,
}

impl Channel {
    pub fn open(
        device: &Path,
        boot: GuestMessage,
        ips: Vec<String>,
        status: Arc<Status>,
        stop: Arc<AtomicBool>,
    ) -> io::Result<Self> {
        let port = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(device)?;
        Ok(Self {
            port,
            boot,
            ips,
            status,
            stop,
            connected: false,
            out: Vec::new(),
            input: Vec::new(),
        })
    }

    /// Serves the port until the agent stops.
    pub fn run(mut self) {
        let mut next_beat = Instant::now();
        while !self.stop.load(Ordering::Relaxed) {
            let mut events = libc::POLLIN;
            if !self.out.is_empty() {
                events |= libc::POLLOUT;
            }
            let wait = next_beat.saturating_duration_since(Instant::now());
            let revents = match self.poll(events, wait) {
                Ok(r) => r,
                Err(e) => {
                    say!("polling the agent port: {e}");
                    std::thread::sleep(IDLE);
                    continue;
                }
            };
            if revents & libc::POLLHUP != 0 {
                if self.connected {
                    say!("host left the agent port");
                }
                self.connected = false;
                self.out.clear();
                self.input.clear();
                std::thread::sleep(IDLE);
                continue;
            }
            if !self.connected {
                self.connected = true;
                say!("host on the agent port");
                self.out
                    .extend_from_slice(agent::encode(&self.boot).as_bytes());
                next_beat = Instant::now();
            }
            if revents & libc::POLLIN != 0 {
                self.read();
            }
            if Instant::now() >= next_beat {
                next_beat = Instant::now() + HEARTBEAT;
                // One line waits at most: a host that does not read gets
                // the newest beat when it does.
                if self.out.is_empty() {
                    let beat = self.heartbeat();
                    self.out.extend_from_slice(agent::encode(&beat).as_bytes());
                }
            }
            self.flush();
        }
    }

    fn poll(&self, events: libc::c_short, wait: Duration) -> io::Result<libc::c_short> {
        let mut fd = libc::pollfd {
            fd: self.port.as_raw_fd(),
            events,
            revents: 0,
        };
        let ms = wait.as_millis().min(i32::MAX as u128) as libc::c_int;
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut fd, 1, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(0)
            } else {
                Err(e)
            };
        }
        Ok(fd.revents)
    }

    fn heartbeat(&self) -> GuestMessage {
        GuestMessage::Heartbeat(Heartbeat {
            time_ms: self.status.tick_ms.load(Ordering::Relaxed),
            last_seq: self.status.last_seq.load(Ordering::Relaxed),
            last_record_ms: self.status.last_record_ms.load(Ordering::Relaxed),
            ips: self.ips.clone(),
            write_bench: self
                .status
                .write_bench
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        })
    }

    fn read(&mut self) {
        let mut buf = [0u8; 4096];
        loop {
            match self.port.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => self.input.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    say!("reading the agent port: {e}");
                    return;
                }
            }
        }
        while let Some(end) = self.input.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.input.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            if line.trim().is_empty() {
                continue;
            }
            match agent::parse_host(&line) {
                Ok(HostMessage::Shutdown) => {
                    say!("shutdown asked by the host");
                    self.stop.store(true, Ordering::Relaxed);
                }
                Ok(HostMessage::WriteBench { id, mib }) => {
                    crate::bench::start(id, mib, self.status.clone())
                }
                Err(e) => say!("{e}"),
            }
        }
        if self.input.len() > agent::MAX_LINE {
            say!("dropping an endless line from the host");
            self.input.clear();
        }
    }

    fn flush(&mut self) {
        while !self.out.is_empty() {
            match self.port.write(&self.out) {
                Ok(0) => return,
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    say!("writing the agent port: {e}");
                    self.out.clear();
                    return;
                }
            }
        }
    }
}
