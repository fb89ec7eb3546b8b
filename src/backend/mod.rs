//! The console's backend: everything that touches the network or the disk, on the tokio
//! runtime that `main` owns. The UI talks to it through a [`BackendHandle`]:
//!
//! | traffic | channel |
//! |---|---|
//! | commands UI → backend | bounded `mpsc`, `try_send` (full queue: "busy", never blocks) |
//! | events backend → UI (messages) | bounded `mpsc` + waker; what does not fit is counted as dropped |
//! | statuses (sandbox, broker connection) | `watch` |
//! | one-shot jobs | [`Requested`] |

pub mod requested;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rumqttc::QoS;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

pub use requested::{Abandoned, Reply, Requested};

use crate::config::Paths;
use crate::mqtt::worker::{Worker, WorkerOptions, WorkerSinks};
use crate::mqtt::{ConnState, MqttMessage};
use crate::sandbox::{Sandbox, SandboxInfo};

/// Asks the UI to repaint soon. Cheap; may be called from any thread.
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// Capacity of the command queue (UI → backend).
pub const COMMAND_CAPACITY: usize = 64;
/// Capacity of the event queue (backend → UI).
pub const EVENT_CAPACITY: usize = 16_384;

/// What the UI asks the backend to do.
pub enum Command {
    Publish {
        topic: String,
        payload: Vec<u8>,
        qos: QoS,
        retain: bool,
    },
    /// Count files and bytes in a folder and check it is writable.
    InspectFolder {
        path: PathBuf,
        reply: Reply<FolderReport, String>,
    },
}

/// What the backend tells the UI, in order.
#[derive(Debug, Clone)]
pub enum Event {
    Message(MqttMessage),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SandboxState {
    #[default]
    Off,
    Starting,
    Running(SandboxInfo),
    Failed(String),
}

/// The latest state of everything long-lived.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BackendStatus {
    pub sandbox: SandboxState,
    pub broker: ConnState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderReport {
    pub files: u64,
    pub bytes: u64,
}

/// Counters shared by the backend and the UI.
#[derive(Debug, Default)]
pub struct Counters {
    /// Events that did not fit in the event queue.
    pub dropped: AtomicU64,
}

/// The UI's handle on the backend. Holds no sockets; dropping it stops the backend.
pub struct BackendHandle {
    commands: mpsc::Sender<Command>,
    events: mpsc::Receiver<Event>,
    status: watch::Receiver<BackendStatus>,
    counters: Arc<Counters>,
    cancel: CancellationToken,
    waker: Waker,
}

/// The command queue is full; the UI says "busy" and the user retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("backend busy")]
pub struct Busy;

impl BackendHandle {
    /// Queues a command without blocking.
    pub fn send(&self, cmd: Command) -> Result<(), Busy> {
        self.commands.try_send(cmd).map_err(|_| Busy)
    }

    /// Drains queued events until the queue is empty or `budget` is spent. Returns whether
    /// events remain (the caller should then repaint soon to continue).
    pub fn drain(&mut self, budget: Duration, mut f: impl FnMut(Event)) -> bool {
        let start = Instant::now();
        loop {
            match self.events.try_recv() {
                Ok(ev) => f(ev),
                Err(_) => return false,
            }
            if start.elapsed() >= budget {
                return !self.events.is_empty();
            }
        }
    }

    pub fn status(&self) -> BackendStatus {
        self.status.borrow().clone()
    }

    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    pub fn waker(&self) -> Waker {
        self.waker.clone()
    }

    /// Stops every backend task.
    pub fn shutdown(&self) {
        self.cancel.cancel();
    }

    /// A handle wired to plain channels, for UI tests that play the backend themselves.
    pub fn from_parts(
        commands: mpsc::Sender<Command>,
        events: mpsc::Receiver<Event>,
        status: watch::Receiver<BackendStatus>,
    ) -> Self {
        Self {
            commands,
            events,
            status,
            counters: Arc::default(),
            cancel: CancellationToken::new(),
            waker: Arc::new(|| {}),
        }
    }
}

impl Drop for BackendHandle {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// How the backend starts.
#[derive(Debug, Clone)]
pub struct BackendOptions {
    pub paths: Paths,
    /// Start the embedded sandbox and connect to it.
    pub sandbox: bool,
}

/// Pushes events to the UI without ever blocking the network task.
#[derive(Clone)]
struct EventSink {
    tx: mpsc::Sender<Event>,
    counters: Arc<Counters>,
    waker: Waker,
    last_wake_ms: Arc<AtomicU64>,
    epoch: Instant,
}

impl EventSink {
    fn emit(&self, ev: Event) {
        if self.tx.try_send(ev).is_err() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
        // At most one wake per 8 ms: the UI drains everything queued in one frame anyway.
        let now = self.epoch.elapsed().as_millis() as u64;
        let last = self.last_wake_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= 8 || last == 0 {
            self.last_wake_ms.store(now.max(1), Ordering::Relaxed);
            (self.waker)();
        }
    }
}

pub struct Backend;

impl Backend {
    /// Starts the backend's tasks on `handle` and returns the UI's handle.
    pub fn spawn(
        handle: &tokio::runtime::Handle,
        opts: BackendOptions,
        waker: Waker,
    ) -> BackendHandle {
        let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_CAPACITY);
        let (ev_tx, ev_rx) = mpsc::channel(EVENT_CAPACITY);
        let (status_tx, status_rx) = watch::channel(BackendStatus::default());
        let counters = Arc::new(Counters::default());
        let cancel = CancellationToken::new();
        let sink = EventSink {
            tx: ev_tx,
            counters: counters.clone(),
            waker: waker.clone(),
            last_wake_ms: Arc::default(),
            epoch: Instant::now(),
        };
        handle.spawn(run(opts, cmd_rx, sink, status_tx, cancel.clone()));
        BackendHandle {
            commands: cmd_tx,
            events: ev_rx,
            status: status_rx,
            counters,
            cancel,
            waker,
        }
    }
}

async fn run(
    opts: BackendOptions,
    mut commands: mpsc::Receiver<Command>,
    sink: EventSink,
    status: watch::Sender<BackendStatus>,
    cancel: CancellationToken,
) {
    let handle = tokio::runtime::Handle::current();
    let mut _sandbox: Option<Sandbox> = None;
    let mut worker: Option<Worker> = None;

    if opts.sandbox {
        set_status(&status, &sink, |s| s.sandbox = SandboxState::Starting);
        match Sandbox::start(&opts.paths, &cancel).await {
            Ok(sb) => {
                let info = sb.info.clone();
                tracing::info!("sandbox running: broker {}", info.broker);
                worker = Some(connect(
                    &handle,
                    info.broker_addr.to_string(),
                    &sink,
                    &status,
                    &cancel,
                ));
                set_status(&status, &sink, |s| s.sandbox = SandboxState::Running(info));
                _sandbox = Some(sb);
            }
            Err(e) => {
                tracing::error!("sandbox: {e}");
                set_status(&status, &sink, |s| {
                    s.sandbox = SandboxState::Failed(e.to_string())
                });
            }
        }
    }

    loop {
        let cmd = tokio::select! {
            _ = cancel.cancelled() => break,
            c = commands.recv() => match c { Some(c) => c, None => break },
        };
        match cmd {
            Command::Publish {
                topic,
                payload,
                qos,
                retain,
            } => match &worker {
                Some(w) => {
                    if let Err(e) = w.client.try_publish(topic.clone(), qos, retain, payload) {
                        tracing::warn!("could not publish to {topic}: {e}");
                    }
                }
                None => tracing::warn!("not connected to a broker; nothing published to {topic}"),
            },
            Command::InspectFolder { path, reply } => {
                handle.spawn_blocking(move || reply.send(inspect_folder(&path)));
            }
        }
    }
    if let Some(w) = worker {
        w.stop();
    }
}

/// Connects the console's MQTT worker to `addr` (host:port) and subscribes to everything.
fn connect(
    handle: &tokio::runtime::Handle,
    addr: String,
    sink: &EventSink,
    status: &watch::Sender<BackendStatus>,
    cancel: &CancellationToken,
) -> Worker {
    let (host, port) = addr
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_owned(), p.parse().ok()?)))
        .unwrap_or_else(|| (addr.clone(), 1883));
    let (state_tx, mut state_rx) = watch::channel(ConnState::Idle);
    // Mirror the worker's connection state into the backend status.
    {
        let status = status.clone();
        let sink = sink.clone();
        let cancel = cancel.clone();
        handle.spawn(async move {
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    changed = state_rx.changed() => if changed.is_err() { break },
                }
                let s = state_rx.borrow_and_update().clone();
                set_status(&status, &sink, |st| st.broker = s);
            }
        });
    }
    let msg_sink = sink.clone();
    Worker::spawn(
        handle,
        WorkerOptions {
            host,
            port,
            client_id: format!("mpbridge-console-{:08x}", rand::random::<u32>()),
            keep_alive: Duration::from_secs(30),
            subscriptions: vec![("#".to_owned(), QoS::AtMostOnce)],
            max_packet_bytes: crate::sandbox::broker::MAX_PAYLOAD_BYTES + 1024,
        },
        WorkerSinks {
            state: state_tx,
            on_message: Box::new(move |m| msg_sink.emit(Event::Message(m))),
        },
        cancel,
    )
}

fn set_status(
    status: &watch::Sender<BackendStatus>,
    sink: &EventSink,
    f: impl FnOnce(&mut BackendStatus),
) {
    status.send_modify(f);
    (sink.waker)();
}

/// Walks a folder (bounded: 100 000 entries) and tries to create a file in it.
pub fn inspect_folder(path: &Path) -> Result<FolderReport, String> {
    std::fs::create_dir_all(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let probe = path.join(format!(".mpbridge-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"ok").map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::remove_file(&probe).ok();
    let mut report = FolderReport { files: 0, bytes: 0 };
    let mut stack = vec![path.to_path_buf()];
    let mut seen = 0u32;
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            seen += 1;
            if seen > 100_000 {
                return Ok(report);
            }
            match entry.metadata() {
                Ok(m) if m.is_dir() => stack.push(entry.path()),
                Ok(m) => {
                    report.files += 1;
                    report.bytes += m.len();
                }
                Err(_) => {}
            }
        }
    }
    Ok(report)
}
