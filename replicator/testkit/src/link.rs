//! Both ends of a replication link in one process: the two sites'
//! certificates, a receiver on a free loopback port in a runtime of its own,
//! the sender's target, and a deterministic random source for the blocks a
//! test or benchmark writes. The engine tests and the benchmarks use these.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use ferry_replicator::identity::{Fingerprint, Identity};
use ferry_replicator::replication::{LinkTls, Receiver, ReceiverConfig, SyncTarget, receiver};

/// The two ends' certificates, made once per binary.
pub static SENDER: LazyLock<Identity> =
    LazyLock::new(|| Identity::ephemeral().expect("a sender identity"));
pub static RECEIVER: LazyLock<Identity> =
    LazyLock::new(|| Identity::ephemeral().expect("a receiver identity"));

/// The receiver's link settings: accepts only the sender.
pub fn receiver_tls() -> LinkTls {
    LinkTls::new(&RECEIVER, Some(SENDER.fingerprint)).expect("receiver TLS")
}

/// The sender's link settings, pinning `receiver`'s certificate.
pub fn sender_tls(receiver: Fingerprint) -> LinkTls {
    LinkTls::new(&SENDER, Some(receiver)).expect("sender TLS")
}

/// The VM a test replicates when it has one.
pub const VM: &str = "vm-1";

/// Where a receiver with `datastore` keeps [`VM`]'s replica.
pub fn replica_dir(datastore: &Path) -> PathBuf {
    datastore.join("replicas").join(VM)
}

/// A target at `addr` (datastore `ds` of site-b) whose certificate is
/// `receiver`.
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

/// A target at `addr` pinning [`RECEIVER`].
pub fn target(addr: &str) -> SyncTarget {
    target_pinning(addr, RECEIVER.fingerprint)
}

/// A small deterministic PRNG (xorshift64*), so failures replay by seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    // Not an Iterator: it never ends, and tests call it by this name.
    #[allow(clippy::should_implement_trait)]
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
    /// `n` distinct blocks of `0..total`, in random order.
    pub fn blocks(&mut self, total: u64, n: u64) -> Vec<u64> {
        let mut all: Vec<u64> = (0..total).collect();
        for i in 0..n as usize {
            let j = i + self.below(total - i as u64) as usize;
            all.swap(i, j);
        }
        all.truncate(n as usize);
        all
    }
}

/// A receiver (site-b, one datastore `ds`) serving in a background runtime;
/// stops when dropped.
pub struct TestReceiver {
    pub addr: String,
    /// Connections TLS refused (a stranger, a tampered session), as the
    /// site's alarm hook would see them.
    pub refusals: Arc<AtomicUsize>,
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
        let refusals = Arc::new(AtomicUsize::new(0));
        let receiver = Receiver::new(config);
        let counter = refusals.clone();
        receiver.set_on_refused(Arc::new(move |_, _| {
            counter.fetch_add(1, Ordering::SeqCst);
        }));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("a runtime for the receiver");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("a loopback port");
                let addr = listener.local_addr().expect("the bound address");
                addr_tx
                    .send(addr)
                    .expect("the starter waits for the address");
                receiver::serve(listener, receiver, async {
                    let _ = stopped.await;
                })
                .await;
            });
        });
        Self {
            addr: addr_rx.recv().expect("the receiver's address").to_string(),
            refusals,
            datastore: datastore.to_path_buf(),
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Where [`VM`]'s replica lives.
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
