//! Shared helpers: VMs in temp dirs, sessions and cycles, and replica
//! comparison; the in-process receiver, the certificates and the random
//! source come from the test kit's [`ferry_testkit::link`].

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ferry_api::Client;
use ferry_api::types::ReplicationInfo;
use ferry_replicator::replication::connection::Connection;
use ferry_replicator::replication::message::Message;
use ferry_replicator::replication::{CycleProgress, CycleReport, WireError, run_cycle};
use ferry_replicator::storage::{Geometry, Replica, TrackedVm};

pub use ferry_testkit::link::{
    RECEIVER, Rng, SENDER, TestReceiver, VM, sender_tls, target, target_pinning,
};

pub use ferry_testkit::link::replica_dir;

/// Opens a VM with `disks` disks of `size` bytes and 4 KiB blocks in `dir`.
pub fn open_vm(dir: &Path, disks: usize, size: u64) -> TrackedVm {
    let layout: Vec<_> = (0..disks)
        .map(|i| (dir.join(format!("disk-{i}.raw")), Geometry::new(size, 4096)))
        .collect();
    TrackedVm::open(dir, &layout).unwrap()
}

/// An authenticated connection that has asked for the VM's replica (one
/// 1 MiB disk of 4 KiB blocks); the answer is left unread.
pub fn open_session(addr: &str) -> Connection {
    let mut conn = Connection::connect(addr, &sender_tls(RECEIVER.fingerprint), "site-a").unwrap();
    conn.send_now(&Message::Open {
        vm: VM,
        datastore: "ds",
        block_size: 4096,
        disk_sizes: vec![1 << 20],
        retention: Default::default(),
    })
    .unwrap();
    conn
}

pub fn cycle(vm: &TrackedVm, addr: &str) -> Result<CycleReport, WireError> {
    run_cycle(VM, vm, &target(addr), false, &CycleProgress::default())
}

/// The full contents of every disk of the replica (after recovery).
pub fn replica_contents(dir: &Path) -> (Option<u64>, Vec<Vec<u8>>) {
    let replica = Replica::open(dir).unwrap();
    let disks = (0..replica.state().disk_sizes.len())
        .map(|i| std::fs::read(replica.disk_path(i)).unwrap())
        .collect();
    (replica.state().instance, disks)
}

/// The full contents of every source disk.
pub fn source_contents(vm: &TrackedVm) -> Vec<Vec<u8>> {
    vm.disks()
        .iter()
        .map(|d| {
            let mut buf = vec![0; d.geometry().disk_size as usize];
            d.read_at(&mut buf, 0).unwrap();
            buf
        })
        .collect()
}

/// Polls `check` every 10 ms until it holds, or panics at `deadline`: the
/// test kit's one wait, for checks that only say yes or no.
pub fn wait_for(what: &str, deadline: Duration, mut check: impl FnMut() -> bool) {
    ferry_testkit::wait_until(what, deadline, Duration::from_millis(10), || {
        if check() { Ok(()) } else { Err(String::new()) }
    })
}

pub fn assert_same(what: &str, got: &[Vec<u8>], want: &[Vec<u8>]) {
    assert_eq!(got.len(), want.len(), "{what}: disk count");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        if g != w {
            let first = g.iter().zip(w).position(|(a, b)| a != b);
            panic!("{what}: disk {i} differs (first difference at byte {first:?})");
        }
    }
}

pub type Shared<T> = Arc<std::sync::Mutex<T>>;

/// A frame's bytes written by hand (length of kind, flags and payload, big
/// endian; kind; flags; payload), so a test can send what the codec never
/// would, or send it where no session is.
pub fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = ((payload.len() + 2) as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(payload);
    out
}

/// A well-formed `Open` of [`VM`] (one 1 MiB disk, 4 KiB blocks) as a frame,
/// for the tests that send it before any handshake.
pub fn open_frame() -> Vec<u8> {
    let open = Message::Open {
        vm: VM,
        datastore: "ds",
        block_size: 4096,
        disk_sizes: vec![1 << 20],
        retention: Default::default(),
    };
    let mut payload = Vec::new();
    open.encode(&mut payload);
    frame(open.frame_kind() as u8, 0, &payload)
}

/// A site's API through the typed client (`ferry_api::Client`), for the
/// tests that run without an async runtime of their own.
pub struct SiteApi {
    client: Client,
    runtime: tokio::runtime::Runtime,
}

impl SiteApi {
    /// Requests give up after 5 s, so a hung site fails a wait, not the run.
    pub fn new(url: &str, token: &str) -> Self {
        SiteApi {
            client: Client::new("site", url, token, Duration::from_secs(5)).unwrap(),
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        }
    }

    /// The first replication the site lists; `None` while the site does not
    /// answer or lists none.
    pub fn first_replication(&self) -> Option<ReplicationInfo> {
        let list = self.runtime.block_on(self.client.replications()).ok()?;
        list.into_iter().next()
    }
}
