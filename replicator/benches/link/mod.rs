//! What the QEMU benches share: a receiver on loopback (its own thread and
//! runtime, as site-b's would be) and one sync cycle to it over TLS.

use std::collections::BTreeMap;
use std::path::Path;

use ferry_replicator::identity::Identity;
use ferry_replicator::replication::{
    CycleProgress, CycleReport, LinkTls, Receiver, ReceiverConfig, SyncTarget, receiver, run_cycle,
};
use ferry_replicator::storage::PointSource;

static SENDER: std::sync::LazyLock<Identity> =
    std::sync::LazyLock::new(|| Identity::ephemeral().expect("identity"));
static RECEIVER: std::sync::LazyLock<Identity> =
    std::sync::LazyLock::new(|| Identity::ephemeral().expect("identity"));

/// Starts a receiver keeping replicas under `datastore`; returns its address.
pub fn start_receiver(datastore: &Path) -> String {
    let config = ReceiverConfig {
        site: "site-b".into(),
        tls: LinkTls::new(&RECEIVER, Some(SENDER.fingerprint)).expect("tls"),
        datastores: BTreeMap::from([("ds".to_string(), datastore.to_path_buf())]),
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send(listener.local_addr().expect("addr")).expect("send");
            receiver::serve(listener, Receiver::new(config), std::future::pending()).await;
        });
    });
    rx.recv().expect("receiver address").to_string()
}

/// One cycle of `vm` to the receiver at `addr`.
pub fn cycle(vm_id: &str, vm: &dyn PointSource, addr: &str) -> CycleReport {
    let target = SyncTarget {
        addr: addr.to_string(),
        tls: LinkTls::new(&SENDER, Some(RECEIVER.fingerprint)).expect("tls"),
        site: "site-a".into(),
        datastore: "ds".into(),
        compress: false,
    };
    run_cycle(vm_id, vm, &target, false, &CycleProgress::default()).expect("cycle")
}
