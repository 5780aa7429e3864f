//! A running site: the composition root of one `ferry-replicator` process.
//! It owns the config, the database, the VMs with their disks and guests, the
//! replication tasks, the receiver for the peer's replicas and the event bus
//! the API streams from.
//!
//! - [`vms`]: power and inventory views; [`lifecycle`]: what each VM is
//!   now across both sites.
//! - [`replications`]: configure, pause, resume, sync, stop;
//!   [`bandwidth`]: the cap every replication of the site shares.
//! - [`peer`]: pairing and the peer's liveness.
//! - [`notify`]: events, alarms and the audit log.
//! - [`protection`]: mappings, protection groups and recovery plans.
//! - [`control`]: calls between the paired sites; [`trust`]: pairing and the peer's pinned certificate.
//! - [`site_view`]: a site as its peer sees it.
//! - [`tokens`]: the API tokens it accepts, revocable while it runs.
//! - [`test_copy_owner`]: which test run a test copy belongs to.
//! - [`runs`]: recovery runs, executed here at the plan's recovery site.
//! - [`recovered`]: a run's work on VMs and disks at the recovery site
//!   (test copies, test VMs, promotion); [`protected`]: what it asks of the
//!   protected site (synchronize, shut down, demote); [`work_error`]: why
//!   either failed for a VM.

mod attack;
pub mod bandwidth;
pub mod control;
mod control_auth;
pub mod http;
pub mod instances;
pub mod lifecycle;
pub mod notify;
pub mod peer;
pub mod protected;
pub mod protection;
mod qemu_follow;
pub mod recovered;
pub mod replications;
pub mod runs;
pub mod scrub;
pub mod site_view;
pub mod test_copy_owner;
pub mod tokens;
pub mod trust;
pub mod vms;
pub mod work_error;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use tracing::{info, warn};

use crate::compute::{Compute, ComputeKind};
use crate::config::{LoadedConfig, PeerConfig};
use crate::identity::Identity;
use crate::inventory::VmRecord;
use crate::replication::receiver::{self, Receiver, ReceiverConfig};
use crate::replication::scheduler::Scheduler;
use crate::storage::{DEFAULT_BLOCK_SIZE, Geometry, TrackedVm};
use crate::store::{self, Store, StoreError};
use crate::sync::lock;
use notify::EventBus;
pub(crate) use vms::VmRuntime;

/// Cycles running at once across the site.
const MAX_CONCURRENT_CYCLES: usize = 16;

/// Why a site operation failed; the API maps each to a status.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    #[error("{0}")]
    NotFound(String),
    /// A value out of range or inconsistent: names the field.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("{0}")]
    Conflict(String),
    /// The object belongs to the other site.
    #[error("{message}")]
    WrongSite { owner: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The compute backend could not power a VM on or off.
    #[error(transparent)]
    Compute(#[from] crate::compute::ComputeError),
    /// The site's key or certificate cannot be used.
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
    /// site.toml's tokens clash with those `token create` made.
    #[error(transparent)]
    Tokens(#[from] crate::store::tokens::TokenError),
}

impl SiteError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

pub struct Site {
    pub name: String,
    pub config: LoadedConfig,
    pub store: Store,
    pub events: EventBus,
    /// The API tokens accepted now (revocable while the site runs).
    pub tokens: tokens::TokenBook,
    /// The site's key and certificate on the replication link.
    identity: Identity,
    /// Where the replication listener is bound (port 0 resolved), which
    /// the API shows for pairing.
    pub replication_addr: std::net::SocketAddr,
    /// This site's VMs and the test VMs booted on replicas.
    pub(crate) inventory: vms::Inventory,
    /// What runs the VMs: the built-in guest or QEMU.
    pub(crate) compute: Compute,
    /// The cycles out and the receiver of the peer's replicas.
    pub(crate) replications: replications::Replications,
    /// The paired site: its settings, liveness and last view.
    pub(crate) peer: peer::Peer,
    /// Mappings, groups and plans recovering to this site.
    pub(crate) protection: protection::Protection,
    /// Recovery runs executing here.
    pub(crate) runs: runs::Runs,
    /// What each VM is now, and what was last streamed of it.
    pub(crate) lifecycles: lifecycle::Lifecycles,
    /// The last scrub of each replica held here.
    pub(crate) scrubs: scrub::Scrubs,
    /// Set once when the site starts stopping; long-lived streams end on it.
    pub stopping: tokio::sync::watch::Sender<bool>,
}

/// The bound listeners of a started site.
pub struct Listeners {
    pub api: tokio::net::TcpListener,
    pub replication: tokio::net::TcpListener,
}

impl Site {
    /// Opens the database, creates the seed inventory on a first start,
    /// binds the listeners, opens every VM's disks and starts guests and
    /// replication as they were.
    pub async fn start(config: LoadedConfig) -> Result<(Arc<Self>, Listeners), SiteError> {
        trust::secure_data_dir(&config.dir)?;
        let db = config.dir.join("site.db");
        let store = Store::open(&db)?;
        let tokens = tokens::TokenBook::open(&db, store.clone(), &config.site.tokens)?;
        let name = config.site.name.clone();
        let seeded = store.now(|c| store::list_vms(c))?.is_empty();
        if seeded {
            replications::seed(&store, &config)?;
        }
        let peer_config = match store.now(|c| store::get_peer(c))? {
            Some(peer) => Some(peer),
            None => config.site.peer.clone(),
        };
        let identity = Identity::load_or_create(&config.dir)?;
        let tls = trust::link_tls(&identity, peer_config.as_ref())?;
        let datastores = config
            .site
            .datastores
            .iter()
            .map(|d| (d.name.clone(), config.dir.join(&d.path)))
            .collect::<BTreeMap<_, _>>();
        for dir in datastores.values() {
            trust::private_dir(dir)?;
        }
        let receiver = Receiver::new(ReceiverConfig {
            site: name.clone(),
            tls,
            datastores,
        });
        let (compute_events, exits) = tokio::sync::mpsc::unbounded_channel();
        let compute = Compute::new(config.site.compute.clone(), compute_events);
        let api = bind(&config.site.listen.api).await?;
        let replication = bind(&config.site.listen.replication).await?;
        let replication_addr = replication.local_addr()?;
        let site = Arc::new(Self {
            name,
            replication_addr,
            tokens,
            identity,
            config,
            store,
            events: EventBus::new(),
            inventory: vms::Inventory::default(),
            compute,
            replications: replications::Replications {
                scheduler: Scheduler::new(MAX_CONCURRENT_CYCLES),
                receiver,
            },
            peer: peer::Peer::new(peer_config),
            protection: protection::Protection::default(),
            runs: runs::Runs::default(),
            lifecycles: lifecycle::Lifecycles::default(),
            scrubs: scrub::Scrubs::default(),
            stopping: tokio::sync::watch::Sender::new(false),
        });
        site.load_protection()?;
        site.load_bandwidth()?;
        site.replications
            .receiver
            .set_control(control::handler(Arc::downgrade(&site)));
        site.replications
            .receiver
            .set_on_refused(trust::refused_handler(Arc::downgrade(&site)));
        site.replications
            .receiver
            .set_on_history(trust::history_handler(Arc::downgrade(&site)));
        tokio::spawn(vms::supervise(Arc::downgrade(&site), exits));
        site.open_vms(seeded).await?;
        site.interrupt_unfinished_runs().await?;
        site.load_lifecycles()?;
        site.refresh_lifecycles().await;
        Ok((site, Listeners { api, replication }))
    }

    /// Opens every VM's disks and brings back what ran: the built-in guest
    /// boots again; a QEMU VM's process is found again, or the VM is
    /// marked crashed with an alarm. A first start gives a QEMU site's VMs
    /// their qcow2 disks.
    async fn open_vms(self: &Arc<Self>, seeded: bool) -> Result<(), SiteError> {
        let records = self.store.call(|c| store::list_vms(c)).await?;
        let rows = self.store.call(|c| store::list_replications(c)).await?;
        self.resume_promotes(&records)
            .await
            .map_err(|e| SiteError::Io(std::io::Error::other(e)))?;
        for record in records {
            let disks = Arc::new(self.open_disks(&record)?);
            if seeded {
                let spec = self.boot_spec(&record, disks.clone(), None)?;
                let files: Vec<_> = spec
                    .disk_files
                    .iter()
                    .zip(&record.disks)
                    .map(|(f, d)| (f.with_extension("qcow2"), d.size_bytes))
                    .collect();
                self.compute.create_disks(&record.id, &files).await?;
            }
            let (mut machine, mut problem) = (None, None);
            if record.power_on {
                let spec = self.boot_spec(&record, disks.clone(), None)?;
                match self.compute.find_again(spec).await {
                    Ok(Some(found)) => machine = Some(found),
                    Ok(None) => {
                        problem = Some(format!(
                            "VM {} was running, but its QEMU process was gone when site {} \
                             started again",
                            record.id, self.name
                        ))
                    }
                    // The built-in guest that cannot read its disk stops
                    // the start, as it always has.
                    Err(e) if self.compute.kind() == ComputeKind::Builtin => return Err(e.into()),
                    Err(e) => problem = Some(e.to_string()),
                }
            }
            let id = record.id.clone();
            // A VM of this site takes no cycles from the peer (see promote).
            self.replications.receiver.fence(&id, true);
            lock(&self.inventory.vms).insert(
                id.clone(),
                VmRuntime {
                    record,
                    disks,
                    machine,
                    problem: problem.clone(),
                    replication: None,
                },
            );
            if let Some(problem) = problem {
                self.alarm("vm_crashed", notify::Severity::Critical, Some(&id), problem)
                    .await;
            }
            if let Some(row) = rows.iter().find(|r| r.vm_id == id) {
                self.start_replication(row.clone());
            }
        }
        Ok(())
    }

    fn vm_dir(&self, datastore: &str, vm_id: &str) -> Result<PathBuf, SiteError> {
        let root = self
            .config
            .datastore_path(datastore)
            .ok_or_else(|| SiteError::NotFound(format!("no datastore {datastore:?}")))?;
        Ok(root.join("vms").join(vm_id))
    }

    fn open_disks(&self, record: &VmRecord) -> Result<TrackedVm, SiteError> {
        let first = record
            .disks
            .first()
            .ok_or_else(|| SiteError::invalid("disks", "a VM needs a disk"))?;
        let home = self.vm_dir(&first.datastore, &record.id)?;
        let layout = record
            .disks
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let dir = self.vm_dir(&d.datastore, &record.id)?;
                std::fs::create_dir_all(&dir)?;
                Ok((
                    dir.join(format!("disk-{i}.raw")),
                    Geometry::new(d.size_bytes, DEFAULT_BLOCK_SIZE),
                ))
            })
            .collect::<Result<Vec<_>, SiteError>>()?;
        Ok(TrackedVm::open(&home, &layout)?)
    }

    /// Stops guests and replication (letting cycles in flight finish) and
    /// saves change tracking, so the next start resumes without a full sync.
    /// QEMU VMs and test VMs shut down cleanly, all at once; their records
    /// stay powered on, so the next start boots them again.
    pub async fn shut_down(&self) {
        self.save_active_runs().await;
        let mut vms = std::mem::take(&mut *lock(&self.inventory.vms));
        let tests = std::mem::take(&mut *lock(&self.inventory.test_vms));
        let timeout = self.compute.shutdown_timeout();
        let machines = vms
            .values_mut()
            .filter_map(|vm| vm.machine.take().map(|m| (vm.record.id.clone(), m)))
            .chain(
                tests
                    .into_values()
                    .filter_map(|mut t| t.machine.take().map(|m| (String::new(), m))),
            )
            .map(|(id, m)| async move {
                match m.power_off(timeout).await {
                    Ok(how) => info!(vm = %id, "stopped with the site: {how}"),
                    Err(e) => warn!(vm = %id, "shutting down: {e}"),
                }
            });
        futures_util::future::join_all(machines).await;
        for (id, vm) in vms {
            if let Some(replicated) = vm.replication {
                replicated.stop().await;
            }
            match Arc::try_unwrap(vm.disks) {
                Ok(disks) => {
                    if let Err(e) = disks.close() {
                        warn!(vm = %id, "saving change tracking failed: {e}");
                    }
                }
                Err(_) => warn!(vm = %id, "disks still in use at shutdown; tracking not saved"),
            }
        }
        info!(site = %self.name, "site stopped");
    }
}

async fn bind(addr: &str) -> Result<tokio::net::TcpListener, SiteError> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        SiteError::Io(std::io::Error::new(
            e.kind(),
            format!("cannot listen on {addr}: {e}"),
        ))
    })
}

/// Serves a started site until `shutdown` completes, then stops it
/// cleanly: `app` (the API, which stands on the site and is built above it)
/// on the API listener, the receiver on the replication listener, the peer
/// watch and the heartbeats.
pub async fn serve_with(
    site: Arc<Site>,
    listeners: Listeners,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), SiteError> {
    let stopped = {
        let site = site.clone();
        move || {
            let mut rx = site.stopping.subscribe();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        }
    };
    let receiving = tokio::spawn(receiver::serve(
        listeners.replication,
        site.replications.receiver.clone(),
        stopped(),
    ));
    let monitoring = tokio::spawn(peer::monitor(Arc::downgrade(&site), stopped()));
    let heartbeats = tokio::spawn(vms::heartbeats(Arc::downgrade(&site), stopped()));
    let scrubbing = tokio::spawn(scrub::periodic(Arc::downgrade(&site), stopped()));
    let stopping = site.clone();
    let tls = if site.config.site.listen.api_tls {
        Some(http::api_tls(&site.identity).map_err(|e| {
            SiteError::invalid("identity", format!("TLS refused the site's key: {e}"))
        })?)
    } else {
        None
    };
    let served = http::serve(
        listeners.api,
        app,
        tls,
        http::HttpLimits::default(),
        async move {
            shutdown.await;
            info!("stopping");
            stopping.stopping.send_replace(true);
        },
    )
    .await;
    let _ = tokio::join!(receiving, monitoring, heartbeats, scrubbing);
    site.shut_down().await;
    served.map_err(SiteError::Io)
}

/// The peer as configured now, if paired.
impl Site {
    pub fn peer_config(&self) -> Option<PeerConfig> {
        lock(&self.peer.state).config.clone()
    }
}
