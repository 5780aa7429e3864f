//! Shared helpers: an in-process receiver on port 0, VMs in temp dirs,
//! a deterministic random source, and replica comparison.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use ferry_replicator::identity::{Fingerprint, Identity};
use ferry_replicator::replication::connection::Connection;
use ferry_replicator::replication::message::Message;
use ferry_replicator::replication::{
    CycleProgress, CycleReport, LinkTls, Receiver, ReceiverConfig, SyncTarget, WireError, receiver,
    run_cycle,
};
use ferry_replicator::storage::{Geometry, Replica, TrackedVm};

/// The two ends' certificates, made once per test binary.
pub static SENDER: LazyLock<Identity> = LazyLock::new(|| Identity::ephemeral().unwrap());
pub static RECEIVER: LazyLock<Identity> = LazyLock::new(|| Identity::ephemeral().unwrap());

/// The receiver's link settings: accepts only the sender.
pub fn receiver_tls() -> LinkTls {
    LinkTls::new(&RECEIVER, Some(SENDER.fingerprint)).unwrap()
}

/// The sender's link settings, pinning `receiver`'s certificate.
pub fn sender_tls(receiver: Fingerprint) -> LinkTls {
    LinkTls::new(&SENDER, Some(receiver)).unwrap()
}
pub const VM: &str = "vm-1";

/// A small deterministic PRNG (xorshift64*), so failures replay by seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// A receiver serving in a background runtime; stops when dropped.
pub struct TestReceiver {
    pub addr: String,
    /// Connections TLS refused (a stranger, a tampered session), as the
    /// site's alarm hook would see them.
    pub refusals: Arc<std::sync::atomic::AtomicUsize>,
    pub datastore: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestReceiver {
    pub fn start(datastore: &Path) -> Self {
        let config = ReceiverConfig {
            site: "site-b".into(),
            tls: receiver_tls(),
            datastores: BTreeMap::from([("ds".to_string(), datastore.to_path_buf())]),
        };
        let refusals = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let receiver = Receiver::new(config);
        let counter = refusals.clone();
        receiver.set_on_refused(Arc::new(move |_, _| {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                receiver::serve(listener, receiver, async {
                    let _ = stopped.await;
                })
                .await;
            });
        });
        Self {
            addr: addr_rx.recv().unwrap().to_string(),
            refusals,
            datastore: datastore.to_path_buf(),
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn replica_dir(&self) -> PathBuf {
        replica_dir(&self.datastore)
    }
}

impl Drop for TestReceiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

pub fn replica_dir(datastore: &Path) -> PathBuf {
    datastore.join("replicas").join(VM)
}

pub fn target(addr: &str) -> SyncTarget {
    target_pinning(addr, RECEIVER.fingerprint)
}

/// A target whose certificate is `receiver`.
pub fn target_pinning(addr: &str, receiver: Fingerprint) -> SyncTarget {
    SyncTarget {
        addr: addr.to_string(),
        tls: sender_tls(receiver),
        site: "site-a".into(),
        datastore: "ds".into(),
        compress: false,
        retention: Default::default(),
    }
}

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
