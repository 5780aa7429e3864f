//! A QMP client: the QEMU Machine Protocol on a VM's unix socket.
//!
//! One task reads the socket: replies go to the command that waits for them
//! (matched by `id`), events are kept for the caller (a short backlog and a
//! broadcast). Every command has a timeout, and every error names the VM and
//! the socket, because a site runs many VMs and "QMP timed out" alone tells
//! the operator nothing.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;

use crate::sync::lock;

/// How long a command may take unless the caller says otherwise. QMP answers
/// in milliseconds; a QEMU that does not answer in this time is stuck.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Events kept for [`Qmp::take_events`]; older ones are dropped.
const EVENT_BACKLOG: usize = 256;

/// A failed QMP exchange, naming the VM and its socket.
#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    #[error("VM {vm}: cannot reach QMP at {}: {source}", socket.display())]
    Connect {
        vm: String,
        socket: PathBuf,
        source: io::Error,
    },
    #[error("VM {vm}: QMP at {} did not answer {command} within {after:?}", socket.display())]
    Timeout {
        vm: String,
        socket: PathBuf,
        command: String,
        after: Duration,
    },
    #[error("VM {vm}: QMP at {} closed (QEMU gone?) during {command}", socket.display())]
    Closed {
        vm: String,
        socket: PathBuf,
        command: String,
    },
    #[error("VM {vm}: QMP {command} refused: {class}: {desc}")]
    Command {
        vm: String,
        command: String,
        class: String,
        desc: String,
    },
    #[error("VM {vm}: QMP at {} sent something unexpected: {what}", socket.display())]
    Protocol {
        vm: String,
        socket: PathBuf,
        what: String,
    },
}

/// An asynchronous event from QEMU (`BLOCK_JOB_CANCELLED`, `SHUTDOWN`...).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct QmpEvent {
    pub event: String,
    #[serde(default)]
    pub data: Value,
}

/// What `query-status` says about the guest's CPUs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RunStatus {
    pub status: String,
    pub running: bool,
}

/// A block node as `query-named-block-nodes` describes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BlockNode {
    pub node_name: String,
    /// The format driver: `qcow2`, `raw`, `file`...
    pub drv: String,
    #[serde(default)]
    pub dirty_bitmaps: Vec<DirtyBitmap>,
}

/// A dirty bitmap on a block node.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DirtyBitmap {
    /// Empty for QEMU's own anonymous bitmaps (a backup job's).
    #[serde(default)]
    pub name: String,
    pub granularity: u64,
    /// Dirty bytes.
    pub count: u64,
    pub recording: bool,
    #[serde(default)]
    pub persistent: bool,
    /// Set when QEMU loaded a persistent bitmap that was not saved cleanly:
    /// its contents cannot be trusted.
    #[serde(default)]
    pub inconsistent: bool,
}

/// One action of a QMP `transaction`: all of them take effect at the same
/// instant of the guest's I/O, which is what makes a consistency point.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(
    tag = "type",
    content = "data",
    rename_all = "kebab-case",
    rename_all_fields = "kebab-case"
)]
pub enum Action {
    BlockDirtyBitmapAdd {
        node: String,
        name: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        granularity: Option<u32>,
        persistent: bool,
        disabled: bool,
    },
    BlockDirtyBitmapRemove {
        node: String,
        name: String,
    },
    BlockDirtyBitmapEnable {
        node: String,
        name: String,
    },
    BlockDirtyBitmapDisable {
        node: String,
        name: String,
    },
    BlockDirtyBitmapMerge {
        node: String,
        target: String,
        bitmaps: Vec<String>,
    },
    /// `sync: "none"`: copy-before-write into `target` only.
    BlockdevBackup {
        job_id: String,
        device: String,
        target: String,
        sync: String,
    },
}

/// A command's `return` value, or its error's class and description.
type Reply = Result<Value, (String, String)>;

/// Replies not yet claimed, by command id.
#[derive(Default)]
struct Pending {
    waiting: HashMap<u64, oneshot::Sender<Reply>>,
    /// Set by the reader when the socket ends: no reply will come.
    closed: bool,
}

/// A connected, negotiated QMP session with one QEMU process.
pub struct Qmp {
    vm: String,
    socket: PathBuf,
    timeout: Duration,
    /// Commands are written whole under this lock, so lines never interleave.
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    pending: Arc<Mutex<Pending>>,
    backlog: Arc<Mutex<VecDeque<QmpEvent>>>,
    events: broadcast::Sender<QmpEvent>,
    next_id: AtomicU64,
    reader: JoinHandle<()>,
}

impl Drop for Qmp {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Qmp {
    /// Connects to `socket` for the VM `vm`, reads the greeting and leaves
    /// capabilities negotiation mode.
    pub async fn connect(vm: &str, socket: &Path) -> Result<Self, QmpError> {
        Self::connect_with_timeout(vm, socket, DEFAULT_TIMEOUT).await
    }

    pub async fn connect_with_timeout(
        vm: &str,
        socket: &Path,
        timeout: Duration,
    ) -> Result<Self, QmpError> {
        let connect_error = |source| QmpError::Connect {
            vm: vm.to_string(),
            socket: socket.to_path_buf(),
            source,
        };
        let timed_out = |command: &str| QmpError::Timeout {
            vm: vm.to_string(),
            socket: socket.to_path_buf(),
            command: command.to_string(),
            after: timeout,
        };
        let stream = tokio::time::timeout(timeout, UnixStream::connect(socket))
            .await
            .map_err(|_| timed_out("connect"))?
            .map_err(connect_error)?;
        let (read, write) = stream.into_split();
        let mut read = BufReader::new(read);
        let mut greeting = String::new();
        let n = tokio::time::timeout(timeout, read.read_line(&mut greeting))
            .await
            .map_err(|_| timed_out("the greeting"))?
            .map_err(connect_error)?;
        let greeting: Value = serde_json::from_str(&greeting).unwrap_or(Value::Null);
        if n == 0 || greeting.get("QMP").is_none() {
            return Err(QmpError::Protocol {
                vm: vm.to_string(),
                socket: socket.to_path_buf(),
                what: format!("no QMP greeting but {greeting}"),
            });
        }
        let pending = Arc::new(Mutex::new(Pending::default()));
        let backlog = Arc::new(Mutex::new(VecDeque::new()));
        let (events, _) = broadcast::channel(EVENT_BACKLOG);
        let reader = tokio::spawn(read_loop(
            read,
            pending.clone(),
            backlog.clone(),
            events.clone(),
        ));
        let qmp = Self {
            vm: vm.to_string(),
            socket: socket.to_path_buf(),
            timeout,
            writer: tokio::sync::Mutex::new(write),
            pending,
            backlog,
            events,
            next_id: AtomicU64::new(1),
            reader,
        };
        qmp.execute_raw("qmp_capabilities", None).await?;
        Ok(qmp)
    }

    pub fn vm(&self) -> &str {
        &self.vm
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Events since the last call (at most the newest [`EVENT_BACKLOG`]).
    pub fn take_events(&self) -> Vec<QmpEvent> {
        lock(&self.backlog).drain(..).collect()
    }

    /// Events from now on, as they arrive.
    pub fn subscribe(&self) -> broadcast::Receiver<QmpEvent> {
        self.events.subscribe()
    }

    /// True once the socket has ended (QEMU exited or closed it).
    pub fn is_closed(&self) -> bool {
        lock(&self.pending).closed
    }

    /// Runs `command` with `arguments` and returns its `return` value.
    pub async fn execute_raw(
        &self,
        command: &str,
        arguments: Option<Value>,
    ) -> Result<Value, QmpError> {
        self.execute_within(command, arguments, self.timeout).await
    }

    /// As [`Qmp::execute_raw`] with a timeout of its own (a `quit` or a long
    /// `human-monitor-command`).
    pub async fn execute_within(
        &self,
        command: &str,
        arguments: Option<Value>,
        timeout: Duration,
    ) -> Result<Value, QmpError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut line = json!({ "execute": command, "id": id });
        if let Some(arguments) = arguments {
            line["arguments"] = arguments;
        }
        let mut line = line.to_string();
        line.push('\n');
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = lock(&self.pending);
            if pending.closed {
                return Err(self.closed(command));
            }
            pending.waiting.insert(id, tx);
        }
        let exchange = async {
            let mut writer = self.writer.lock().await;
            if writer.write_all(line.as_bytes()).await.is_err() {
                lock(&self.pending).closed = true;
                return Err(self.closed(command));
            }
            drop(writer);
            rx.await.map_err(|_| self.closed(command))
        };
        let reply = tokio::time::timeout(timeout, exchange).await;
        lock(&self.pending).waiting.remove(&id);
        match reply {
            Err(_) => Err(QmpError::Timeout {
                vm: self.vm.clone(),
                socket: self.socket.clone(),
                command: command.to_string(),
                after: timeout,
            }),
            Ok(Err(e)) => Err(e),
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err((class, desc)))) => Err(QmpError::Command {
                vm: self.vm.clone(),
                command: command.to_string(),
                class,
                desc,
            }),
        }
    }

    /// Runs `command` and parses its `return` value as `T`.
    pub async fn execute<T: DeserializeOwned>(
        &self,
        command: &str,
        arguments: Option<Value>,
    ) -> Result<T, QmpError> {
        let value = self.execute_raw(command, arguments).await?;
        serde_json::from_value(value).map_err(|e| QmpError::Protocol {
            vm: self.vm.clone(),
            socket: self.socket.clone(),
            what: format!("the reply to {command}: {e}"),
        })
    }

    fn closed(&self, command: &str) -> QmpError {
        QmpError::Closed {
            vm: self.vm.clone(),
            socket: self.socket.clone(),
            command: command.to_string(),
        }
    }

    /// Waits for the first event that `matches`, from the events arriving
    /// on `events` (subscribe before the command that causes it).
    pub async fn wait_event(
        &self,
        events: &mut broadcast::Receiver<QmpEvent>,
        what: &str,
        timeout: Duration,
        matches: impl Fn(&QmpEvent) -> bool,
    ) -> Result<QmpEvent, QmpError> {
        let wait = async {
            loop {
                match events.recv().await {
                    Ok(event) if matches(&event) => return Ok(event),
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return Err(self.closed(what)),
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| QmpError::Timeout {
                vm: self.vm.clone(),
                socket: self.socket.clone(),
                command: what.to_string(),
                after: timeout,
            })?
    }

    pub async fn query_status(&self) -> Result<RunStatus, QmpError> {
        self.execute("query-status", None).await
    }

    /// Every named block node with its dirty bitmaps.
    pub async fn block_nodes(&self) -> Result<Vec<BlockNode>, QmpError> {
        self.execute("query-named-block-nodes", Some(json!({ "flat": true })))
            .await
    }

    /// Runs `actions` atomically: all or none.
    pub async fn transaction(&self, actions: &[Action]) -> Result<(), QmpError> {
        self.execute_raw("transaction", Some(json!({ "actions": actions })))
            .await
            .map(drop)
    }

    /// `blockdev-add` with the node's options as QEMU spells them.
    pub async fn blockdev_add(&self, options: Value) -> Result<(), QmpError> {
        self.execute_raw("blockdev-add", Some(options))
            .await
            .map(drop)
    }

    pub async fn blockdev_del(&self, node: &str) -> Result<(), QmpError> {
        self.execute_raw("blockdev-del", Some(json!({ "node-name": node })))
            .await
            .map(drop)
    }

    pub async fn bitmap_add(
        &self,
        node: &str,
        name: &str,
        persistent: bool,
        disabled: bool,
    ) -> Result<(), QmpError> {
        let arguments = json!({
            "node": node, "name": name, "persistent": persistent, "disabled": disabled,
        });
        self.execute_raw("block-dirty-bitmap-add", Some(arguments))
            .await
            .map(drop)
    }

    pub async fn bitmap_remove(&self, node: &str, name: &str) -> Result<(), QmpError> {
        let arguments = json!({ "node": node, "name": name });
        self.execute_raw("block-dirty-bitmap-remove", Some(arguments))
            .await
            .map(drop)
    }

    /// ORs `bitmaps` into `target`, all on `node`.
    pub async fn bitmap_merge(
        &self,
        node: &str,
        target: &str,
        bitmaps: &[&str],
    ) -> Result<(), QmpError> {
        let arguments = json!({ "node": node, "target": target, "bitmaps": bitmaps });
        self.execute_raw("block-dirty-bitmap-merge", Some(arguments))
            .await
            .map(drop)
    }

    /// Starts QEMU's NBD server on a unix socket (one per QEMU process).
    pub async fn nbd_server_start(&self, socket: &Path) -> Result<(), QmpError> {
        let path = socket.to_string_lossy();
        // nbd-server-start takes the legacy address form, with `data`.
        let arguments = json!({ "addr": { "type": "unix", "data": { "path": path } } });
        self.execute_raw("nbd-server-start", Some(arguments))
            .await
            .map(drop)
    }

    pub async fn nbd_server_stop(&self) -> Result<(), QmpError> {
        self.execute_raw("nbd-server-stop", None).await.map(drop)
    }

    /// Exports `node` read-only over the NBD server as `name`, with
    /// `bitmaps` (on `node` or its backing chain) as meta contexts.
    pub async fn block_export_add(
        &self,
        id: &str,
        node: &str,
        name: &str,
        bitmaps: &[&str],
    ) -> Result<(), QmpError> {
        let arguments = json!({
            "type": "nbd", "id": id, "node-name": node, "name": name,
            "writable": false, "bitmaps": bitmaps,
        });
        self.execute_raw("block-export-add", Some(arguments))
            .await
            .map(drop)
    }

    /// Removes an export and waits until QEMU has let go of its node.
    pub async fn block_export_del(&self, id: &str) -> Result<(), QmpError> {
        let mut events = self.subscribe();
        let arguments = json!({ "id": id, "mode": "hard" });
        self.execute_raw("block-export-del", Some(arguments))
            .await?;
        self.wait_event(&mut events, "block-export-del", self.timeout, |e| {
            e.event == "BLOCK_EXPORT_DELETED" && e.data["id"] == id
        })
        .await
        .map(drop)
    }

    /// Cancels a block job and waits until it has ended.
    pub async fn block_job_cancel(&self, job: &str) -> Result<(), QmpError> {
        let mut events = self.subscribe();
        let arguments = json!({ "device": job, "force": true });
        self.execute_raw("block-job-cancel", Some(arguments))
            .await?;
        self.wait_event(&mut events, "block-job-cancel", self.timeout, |e| {
            matches!(
                e.event.as_str(),
                "BLOCK_JOB_CANCELLED" | "BLOCK_JOB_COMPLETED"
            ) && e.data["device"] == job
        })
        .await
        .map(drop)
    }

    /// A command of the human monitor (`qemu-io disk-0 "write ..."` in tests).
    pub async fn human_monitor_command(&self, line: &str) -> Result<String, QmpError> {
        self.execute(
            "human-monitor-command",
            Some(json!({ "command-line": line })),
        )
        .await
    }

    /// Asks the guest to power off (ACPI power button).
    pub async fn system_powerdown(&self) -> Result<(), QmpError> {
        self.execute_raw("system_powerdown", None).await.map(drop)
    }

    /// Resumes a VM started with `-S` or stopped.
    pub async fn cont(&self) -> Result<(), QmpError> {
        self.execute_raw("cont", None).await.map(drop)
    }

    /// Ends QEMU at once; persistent bitmaps are saved as on a clean exit.
    /// The socket may close before the reply arrives: that counts as done.
    pub async fn quit(&self) -> Result<(), QmpError> {
        match self.execute_raw("quit", None).await {
            Ok(_) | Err(QmpError::Closed { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Routes replies to their commands and keeps events, until the socket ends.
async fn read_loop(
    mut read: BufReader<OwnedReadHalf>,
    pending: Arc<Mutex<Pending>>,
    backlog: Arc<Mutex<VecDeque<QmpEvent>>>,
    events: broadcast::Sender<QmpEvent>,
) {
    let mut line = String::new();
    loop {
        line.clear();
        match read.read_line(&mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let Ok(message) = serde_json::from_str::<Value>(&line) else {
            tracing::warn!(line = line.trim(), "QMP sent a line that is not JSON");
            continue;
        };
        if message.get("event").is_some() {
            if let Ok(event) = serde_json::from_value::<QmpEvent>(message) {
                let mut kept = lock(&backlog);
                if kept.len() == EVENT_BACKLOG {
                    kept.pop_front();
                }
                kept.push_back(event.clone());
                drop(kept);
                let _ = events.send(event);
            }
            continue;
        }
        let Some(id) = message.get("id").and_then(Value::as_u64) else {
            continue; // a reply to no command of ours
        };
        let reply = match message.get("error") {
            Some(error) => Err((
                error["class"].as_str().unwrap_or("Error").to_string(),
                error["desc"].as_str().unwrap_or("").to_string(),
            )),
            None => Ok(message.get("return").cloned().unwrap_or(Value::Null)),
        };
        if let Some(tx) = lock(&pending).waiting.remove(&id) {
            let _ = tx.send(reply);
        }
    }
    let mut pending = lock(&pending);
    pending.closed = true;
    // Dropping the senders wakes every waiting command with "closed".
    pending.waiting.clear();
}

#[cfg(test)]
#[path = "qmp_tests.rs"]
mod tests;
