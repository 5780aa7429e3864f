//! The recovery site's end of replication: accepts authenticated peers and
//! turns their cycles into complete instances of each VM's replica.
//!
//! Per cycle: blocks go to the replica's redo log; at `End` the log is
//! fsynced and committed (`Committed` tells the sender the instance is
//! complete), then consolidated into the base disks (`Consolidated`). Any
//! bad frame, bad value or failure closes the connection and leaves the
//! redo log uncommitted, so the replica stays at its last instance.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use super::connection::{self, Connection};
use super::error::WireError;
use super::frame::{FrameReader, FrameWriter};
use super::handshake::unexpected;
use super::message::Message;
use super::refusal::{HoldError, ReplicaDirError, check_begin, check_layout};
use super::tls::{LinkReader, LinkTls, LinkWriter, is_tls_refusal};
use crate::storage::replica::{InstanceWriter, Retention, budget_alarm};
use crate::storage::{Geometry, RedoHeader, Replica};
use crate::sync::lock;
use ferry_api::retention::RetentionPolicy;

/// Sessions served at once; more connections are closed at once rather than
/// queued, so a flood cannot starve the peers already replicating.
const MAX_SESSIONS: usize = 256;
/// Blocks hashed per `Hashes` frame during a full sync.
const HASH_BATCH: u64 = 256;
/// How long a session waits for the replica's previous session to end. A
/// sender that reconnects (after a restart or a dropped link) can be quicker
/// than the old session's thread is to see the close; longer than this, the
/// old session is alive and the new one is refused.
const BUSY_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    /// This site's name, sent to peers in the handshake.
    pub site: String,
    /// This site's identity and the peer certificate it accepts.
    pub tls: LinkTls,
    /// Datastore name → directory. Replicas live in `<dir>/replicas/<vm>/`.
    pub datastores: BTreeMap<String, PathBuf>,
}

/// Told why a connection was refused by TLS or a block failed its hash,
/// and from where.
pub type RefusedHandler = dyn Fn(SocketAddr, &str) + Send + Sync;

/// Told of a replica's history event: the VM, the alarm's kind
/// (`clean_point`, `history_pruned`) and its message.
pub type HistoryHandler = dyn Fn(&str, &str, &str) + Send + Sync;

/// Answers a site-to-site call: the authenticated peer's name and the
/// request body in, the reply body out.
pub type ControlHandler = dyn Fn(&str, &[u8]) -> Vec<u8> + Send + Sync;

pub struct Receiver {
    config: ReceiverConfig,
    /// The site's answer to `Control` calls, set once the site exists.
    control: std::sync::OnceLock<Arc<ControlHandler>>,
    /// The TLS settings in force; replaced when the site is paired anew.
    tls: std::sync::RwLock<LinkTls>,
    /// Told when TLS refuses a connection (a stranger's certificate, a
    /// tampered record), so the site can raise an alarm.
    on_refused: std::sync::OnceLock<Arc<RefusedHandler>>,
    /// Told when a cycle's instance looks attacked or retention's budget
    /// dropped instances, so the site can raise an alarm.
    on_history: std::sync::OnceLock<Arc<HistoryHandler>>,
    /// VMs with a session in progress: one writer per replica at a time.
    busy: Leases,
    /// VMs recovered at this site: their replicas take no more cycles.
    fenced: Mutex<HashSet<String>>,
}

/// A replica held still (no session may write it) until dropped.
pub struct ReplicaHold {
    receiver: Arc<Receiver>,
    key: String,
    pub dir: PathBuf,
}

impl Drop for ReplicaHold {
    fn drop(&mut self) {
        self.receiver.busy.release(&self.key);
    }
}

/// Releases a VM's replica when its session ends.
struct ReplicaLease<'a> {
    busy: &'a Leases,
    key: String,
}

impl Drop for ReplicaLease<'_> {
    fn drop(&mut self) {
        self.busy.release(&self.key);
    }
}

/// The replicas a session or a hold has (by `<datastore>/<vm>`), and a
/// signal each time one is let go, so a session can wait out its
/// predecessor without polling.
#[derive(Default)]
struct Leases {
    held: Mutex<HashSet<String>>,
    /// Wakes a session thread waiting out its predecessor.
    freed: Condvar,
    /// Wakes an async hold (a test copy, a promote) waiting for the replica.
    released: tokio::sync::Notify,
}

impl Leases {
    fn try_take(&self, key: &str) -> bool {
        lock(&self.held).insert(key.to_string())
    }

    /// Takes `key`, waiting up to `wait` for its holder to let go.
    fn take_within(&self, key: &str, wait: Duration) -> bool {
        let held = lock(&self.held);
        let (mut held, _) = self
            .freed
            .wait_timeout_while(held, wait, |held| held.contains(key))
            .unwrap_or_else(|e| e.into_inner());
        held.insert(key.to_string())
    }

    fn release(&self, key: &str) {
        lock(&self.held).remove(key);
        self.freed.notify_all();
        self.released.notify_waiters();
    }
}

/// A name that is safe as a single path component: no separators, no `..`,
/// nothing hidden.
pub fn is_safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl Receiver {
    pub fn new(config: ReceiverConfig) -> Arc<Self> {
        Arc::new(Self {
            tls: std::sync::RwLock::new(config.tls.clone()),
            on_refused: std::sync::OnceLock::new(),
            on_history: std::sync::OnceLock::new(),
            config,
            control: std::sync::OnceLock::new(),
            busy: Leases::default(),
            fenced: Mutex::new(HashSet::new()),
        })
    }

    /// Refuses (`true`) or again accepts cycles into `vm`'s replica.
    pub fn fence(&self, vm: &str, fenced: bool) {
        let mut set = lock(&self.fenced);
        if fenced {
            set.insert(vm.to_string());
        } else {
            set.remove(vm);
        }
    }

    /// Holds `vm`'s replica in `datastore` still, waiting up to `timeout`
    /// for a cycle in progress to finish. While held, the sender's next
    /// session is refused and retried later; the replica stays at its last
    /// complete instance.
    pub async fn hold(
        self: &Arc<Self>,
        datastore: &str,
        vm: &str,
        timeout: std::time::Duration,
    ) -> Result<ReplicaHold, HoldError> {
        let dir = self.replica_dir(datastore, vm)?;
        let key = format!("{datastore}/{vm}");
        let deadline = std::time::Instant::now() + timeout;
        let deadline = tokio::time::Instant::from_std(deadline);
        loop {
            // Registered before the try, so a release after it wakes us.
            let released = self.busy.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if self.busy.try_take(&key) {
                return Ok(ReplicaHold {
                    receiver: self.clone(),
                    key,
                    dir,
                });
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(HoldError::Busy {
                    vm: vm.to_string(),
                    seconds: timeout.as_secs(),
                });
            }
            tokio::select! {
                () = released => {}
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    /// Installs the answer to site-to-site calls (once; later calls are
    /// ignored).
    pub fn set_control(&self, handler: Arc<ControlHandler>) {
        let _ = self.control.set(handler);
    }

    /// Pairs with a new peer certificate; sessions already running keep
    /// theirs.
    pub fn set_tls(&self, tls: LinkTls) {
        *self.tls.write().unwrap_or_else(|e| e.into_inner()) = tls;
    }

    /// The TLS settings in force.
    pub fn tls(&self) -> LinkTls {
        self.tls.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Installs the hook told of TLS refusals (once).
    pub fn set_on_refused(&self, handler: Arc<RefusedHandler>) {
        let _ = self.on_refused.set(handler);
    }

    pub fn set_on_history(&self, handler: Arc<HistoryHandler>) {
        let _ = self.on_history.set(handler);
    }

    /// Raises what the cycle that made `instance` says about history.
    fn report_history(&self, vm: &str, replica: &mut Replica, instance: u64) {
        let pruned = replica.take_pruned();
        let alarms = [
            ("clean_point", replica.clean_point_alarm(instance)),
            ("history_pruned", budget_alarm(vm, &pruned)),
        ];
        for (kind, message) in alarms {
            let Some(message) = message else { continue };
            warn!(%vm, "{message}");
            if let Some(handler) = self.on_history.get() {
                handler(vm, kind, &message);
            }
        }
    }

    /// Where the replica of `vm` in `datastore` lives.
    pub fn replica_dir(&self, datastore: &str, vm: &str) -> Result<PathBuf, ReplicaDirError> {
        if !is_safe_name(vm) {
            return Err(ReplicaDirError::BadName(vm.to_string()));
        }
        let root = self
            .config
            .datastores
            .get(datastore)
            .ok_or_else(|| ReplicaDirError::NoDatastore(datastore.to_string()))?;
        Ok(root.join("replicas").join(vm))
    }

    /// Serves one connection to its end, logging why it ended.
    pub fn handle(&self, stream: TcpStream, addr: SocketAddr) {
        match self.session(stream) {
            Ok(()) => debug!(%addr, "replication session ended"),
            Err(WireError::Io(e)) if is_tls_refusal(&e) => {
                warn!(%addr, "replication connection refused: {e}");
                if let Some(hook) = self.on_refused.get() {
                    hook(addr, &e.to_string());
                }
            }
            Err(e @ WireError::Integrity(_)) => {
                warn!(%addr, "replication connection closed: {e}");
                if let Some(hook) = self.on_refused.get() {
                    hook(addr, &e.to_string());
                }
            }
            Err(e) => warn!(%addr, "replication connection closed: {e}"),
        }
    }

    fn session(&self, stream: TcpStream) -> Result<(), WireError> {
        let mut conn = Connection::accept(stream, &self.tls(), &self.config.site)?;
        let (vm, datastore, block_size, disk_sizes, retention) = match conn.recv() {
            Err(WireError::Closed) => return Ok(()),
            Ok(Message::Control { body }) => {
                let body = body.to_vec();
                return self.control_session(conn, body);
            }
            Ok(Message::Open {
                vm,
                datastore,
                block_size,
                disk_sizes,
                retention,
            }) => (
                vm.to_string(),
                datastore.to_string(),
                block_size,
                disk_sizes,
                retention,
            ),
            Ok(other) => return Err(unexpected("Open", &other)),
            Err(e) => return Err(e),
        };
        if let Err(invalid) = retention.validate(0) {
            return Err(refuse(
                &mut conn,
                format!("VM {vm}: {}: {}", invalid.field, invalid.message),
            ));
        }
        let geometries = match check_layout(block_size, &disk_sizes) {
            Ok(g) => g,
            Err(reason) => return Err(refuse(&mut conn, reason.to_string())),
        };
        let dir = match self.replica_dir(&datastore, &vm) {
            Ok(dir) => dir,
            Err(reason) => return Err(refuse(&mut conn, reason.to_string())),
        };
        if lock(&self.fenced).contains(&vm) {
            return Err(refuse(
                &mut conn,
                format!(
                    "VM {vm} was recovered at site {}; its replica takes no more cycles until it is reprotected",
                    self.config.site
                ),
            ));
        }
        let key = format!("{datastore}/{vm}");
        if !self.busy.take_within(&key, BUSY_WAIT) {
            return Err(refuse(
                &mut conn,
                format!("VM {vm} is already receiving a cycle on another connection"),
            ));
        }
        let _lease = ReplicaLease {
            busy: &self.busy,
            key,
        };
        let mut replica = Replica::open(&dir)?;
        if let Some(deferred) = replica.deferred() {
            // A committed instance waits unapplied: a new cycle would
            // replace its log. The sender alarms with this reason.
            return Err(refuse(&mut conn, deferred.to_string()));
        }
        apply_retention(&mut replica, retention)?;
        conn.send_now(&Message::Opened {
            instance: replica.state().instance,
            point_time_ms: replica.state().point_time_ms,
        })?;
        info!(peer = %conn.peer, %vm, "replication session opened");
        loop {
            let (instance, point_time_ms, full) = match conn.recv() {
                Err(WireError::Closed) => return Ok(()),
                Ok(Message::Begin {
                    instance,
                    point_time_ms,
                    full,
                }) => (instance, point_time_ms, full),
                Ok(other) => return Err(unexpected("Begin", &other)),
                Err(e) => return Err(e),
            };
            if let Err(reason) = check_begin(&replica, instance, full, block_size, &disk_sizes) {
                return Err(refuse(&mut conn, reason.to_string()));
            }
            let header = RedoHeader {
                instance,
                point_time_ms,
                block_size,
                disk_sizes: disk_sizes.clone(),
            };
            let log = replica.begin(&header)?;
            let log = receive_blocks(&mut conn, &replica, &geometries, instance, full, log)?;
            replica.commit(log)?;
            conn.send_now(&Message::Committed { instance })?;
            replica.consolidate().map_err(std::io::Error::from)?;
            conn.send_now(&Message::Consolidated { instance })?;
            self.report_history(&vm, &mut replica, instance);
            debug!(%vm, instance, full, "instance consolidated");
        }
    }
}

impl Receiver {
    /// Answers site-to-site calls until the peer closes the connection.
    fn control_session(&self, mut conn: Connection, mut body: Vec<u8>) -> Result<(), WireError> {
        let Some(handler) = self.control.get().cloned() else {
            return Err(refuse(&mut conn, "this site takes no calls yet".into()));
        };
        loop {
            let reply = handler(&conn.peer, &body);
            conn.send_now(&Message::ControlReply { body: &reply })?;
            body = match conn.recv() {
                Err(WireError::Closed) => return Ok(()),
                Ok(Message::Control { body }) => body.to_vec(),
                Ok(other) => return Err(unexpected("Control", &other)),
                Err(e) => return Err(e),
            };
        }
    }
}

/// Makes the replica keep what the replication's policy asks for from this
/// cycle's consolidation on; the budget already set on it stays.
fn apply_retention(replica: &mut Replica, policy: RetentionPolicy) -> std::io::Result<()> {
    let current = replica.retention();
    let wanted = Retention {
        policy,
        budget_bytes: current.and_then(|r| r.budget_bytes),
    };
    if current != Some(wanted) {
        replica.set_retention(wanted)?;
    }
    Ok(())
}

fn refuse(conn: &mut Connection, reason: String) -> WireError {
    conn.refuse(&reason);
    WireError::Refused(reason)
}

/// Receives the cycle's blocks into `log`, streaming our hashes alongside
/// when it is a full sync. Returns the log once `End` checks out.
fn receive_blocks(
    conn: &mut Connection,
    replica: &Replica,
    geometries: &[Geometry],
    instance: u64,
    full: bool,
    mut log: InstanceWriter,
) -> Result<InstanceWriter, WireError> {
    let Connection { reader, writer, .. } = conn;
    std::thread::scope(|scope| {
        let hashing = full.then(|| scope.spawn(|| send_hashes(writer, replica, geometries)));
        let received = append_blocks(reader, geometries, instance, &mut log);
        if received.is_err() {
            // Unblock the hashing thread if it waits on a full socket.
            let _ = reader.get_ref().tcp().shutdown(std::net::Shutdown::Both);
        }
        let hashed = match hashing.map(|h| h.join()) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(WireError::malformed("hashing thread panicked")),
            None => Ok(()),
        };
        received?;
        hashed
    })?;
    Ok(log)
}

fn append_blocks(
    reader: &mut FrameReader<LinkReader>,
    geometries: &[Geometry],
    instance: u64,
    log: &mut InstanceWriter,
) -> Result<(), WireError> {
    loop {
        match connection::recv(reader)? {
            Message::Blocks { disk, entries } => {
                let g = geometries.get(usize::from(disk)).ok_or_else(|| {
                    WireError::malformed(format!("block for disk {disk} of {}", geometries.len()))
                })?;
                for entry in entries {
                    if entry.block >= g.block_count()
                        || entry.len as usize != g.block_len(entry.block)
                    {
                        return Err(WireError::malformed(format!(
                            "block {} of {} bytes does not fit disk {disk} ({} blocks)",
                            entry.block,
                            entry.len,
                            g.block_count()
                        )));
                    }
                    match entry.data {
                        Some(data) => log.append_data(disk, entry.block, data)?,
                        None => log.append_zero(disk, entry.block, entry.len)?,
                    }
                }
            }
            Message::End {
                instance: ended,
                blocks,
            } => {
                if ended != instance || blocks != log.records() {
                    return Err(WireError::malformed(format!(
                        "End of instance {ended} with {blocks} blocks, but received instance {instance} with {}",
                        log.records()
                    )));
                }
                return Ok(());
            }
            other => return Err(unexpected("Blocks or End", &other)),
        }
    }
}

fn send_hashes(
    writer: &mut FrameWriter<LinkWriter>,
    replica: &Replica,
    geometries: &[Geometry],
) -> Result<(), WireError> {
    let mut hashes = Vec::with_capacity(HASH_BATCH as usize);
    let mut payload = Vec::new();
    for (disk, g) in geometries.iter().enumerate() {
        let mut first = 0;
        while first < g.block_count() {
            let end = (first + HASH_BATCH).min(g.block_count());
            hashes.clear();
            replica.hash_blocks(disk, *g, first..end, &mut hashes)?;
            let message = Message::Hashes {
                disk: disk as u16,
                first_block: first,
                hashes: std::mem::take(&mut hashes),
            };
            payload.clear();
            message.encode(&mut payload);
            writer.write(message.kind(), &payload)?;
            if let Message::Hashes { hashes: back, .. } = message {
                hashes = back;
            }
            first = end;
        }
    }
    writer.flush()?;
    Ok(())
}

/// Accepts replication connections until `shutdown` completes. Each session
/// runs on a blocking thread: its work is file and socket I/O end to end.
pub async fn serve(
    listener: tokio::net::TcpListener,
    receiver: Arc<Receiver>,
    shutdown: impl Future<Output = ()>,
) {
    let sessions = Arc::new(Semaphore::new(MAX_SESSIONS));
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, addr) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors and the like: back off, do not spin.
                warn!("accepting a replication connection failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = sessions.clone().try_acquire_owned() else {
            warn!(%addr, "refusing replication connection: {MAX_SESSIONS} sessions already");
            continue;
        };
        let stream = match stream.into_std().and_then(|s| {
            s.set_nonblocking(false)?;
            Ok(s)
        }) {
            Ok(stream) => stream,
            Err(e) => {
                warn!(%addr, "replication connection unusable: {e}");
                continue;
            }
        };
        let receiver = receiver.clone();
        tokio::task::spawn_blocking(move || {
            receiver.handle(stream, addr);
            drop(permit);
        });
    }
}
