//! The console's backend: everything that touches the network or the disk, on the tokio
//! runtime that `main` owns. The UI talks to it through a [`BackendHandle`]:
//!
//! | traffic | channel |
//! |---|---|
//! | commands UI → backend | bounded `mpsc`, `try_send` (full queue: "busy", never blocks) |
//! | events backend → UI (messages) | bounded `mpsc` + waker; what does not fit is counted as dropped |
//! | statuses (sandbox, broker connection) | `watch` |
//! | one-shot jobs | [`Requested`] |

pub mod certs;
pub mod checks;
pub mod connections;
pub mod conns;
pub mod devices;
pub mod files;
pub mod keeper;
pub mod relay;
pub mod requested;
mod retained;
mod sandbox;
mod shared;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

pub use certs::{CertCmd, CertJob, RepairDone};
pub use checks::{ChecksCmd, ChecksJob};
pub use connections::{ConnCmd, SANDBOX_LABEL};
pub use conns::{ConnId, ConnInfo, MAX_CONNECTIONS};
pub use devices::DeviceCmd;
pub use files::{FileCmd, FolderReport, inspect_folder};
pub use relay::RelayCmd;
pub use requested::{Abandoned, Reply, Requested};
pub use retained::Cleared;

use crate::config::Paths;
use crate::i18n::L10n;
use crate::mqtt::{ConnState, MqttMessage};
use crate::relay::tls::CertBrief;
use crate::relay::{RelayPhase, RelaySnapshot};
use crate::sandbox::SandboxInfo;
use shared::{EventSink, Service, Shared, serve};

/// Asks the UI to repaint soon. Cheap; may be called from any thread.
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// Capacity of the command queue (UI → backend), and of each service's queue.
pub const COMMAND_CAPACITY: usize = 64;
/// Capacity of the event queue (backend → UI).
pub const EVENT_CAPACITY: usize = 16_384;

/// What the UI asks the backend to do: a command for one of its services.
pub enum Command {
    Relay(RelayCmd),
    Conn(ConnCmd),
    Certs(CertCmd),
    Checks(ChecksCmd),
    Devices(DeviceCmd),
    Files(FileCmd),
}

macro_rules! command_from {
    ($($variant:ident($cmd:ty)),*) => {$(
        impl From<$cmd> for Command {
            fn from(c: $cmd) -> Self {
                Command::$variant(c)
            }
        }
    )*};
}
command_from!(
    Relay(RelayCmd),
    Conn(ConnCmd),
    Certs(CertCmd),
    Checks(ChecksCmd),
    Devices(DeviceCmd),
    Files(FileCmd)
);

impl Command {
    /// Answers the command's reply, if it has one, with `why` instead of running it.
    pub fn refuse(self, why: &L10n) {
        match self {
            Command::Relay(c) => c.refuse(why),
            Command::Conn(c) => c.refuse(why),
            Command::Certs(c) => c.refuse(why),
            Command::Checks(c) => c.refuse(why),
            Command::Devices(c) => c.refuse(why),
            Command::Files(c) => c.refuse(why),
        }
    }
}

/// Said to a panel whose command found a full queue.
fn busy() -> L10n {
    L10n::new(
        "the backend is busy with earlier requests; try again in a moment",
        "后台正忙于之前的请求；请稍后再试",
    )
}

/// Said to a panel whose command came after the backend stopped.
fn stopped() -> L10n {
    L10n::new("the backend has stopped", "后台已停止")
}

/// What the backend tells the UI, in order.
#[derive(Debug, Clone)]
pub enum Event {
    /// A message received on a connection.
    Message(ConnId, MqttMessage),
    /// A publish from the Topics panel that could not be queued, and why.
    PublishRefused {
        topic: String,
        why: crate::verdict::L10n,
    },
    /// The broker's answer to a subscription on a connection (its SUBACK): `refused` says
    /// why it was refused, `None` that it was granted.
    SubAck {
        conn: ConnId,
        filter: String,
        refused: Option<crate::verdict::L10n>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SandboxState {
    #[default]
    Off,
    Starting,
    Running(SandboxInfo),
    Failed(String),
}

/// The console's relay: its phase, where it listens and what it serves.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RelayStatus {
    pub phase: RelayPhase,
    /// `wss://host:port<first route>`.
    pub url: Option<String>,
    /// The configuration in force.
    pub config: Option<crate::relay::RelaySettings>,
    pub cert: Option<CertBrief>,
    /// The last start or apply failure.
    pub error: Option<L10n>,
}

/// The latest state of everything long-lived.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BackendStatus {
    pub sandbox: SandboxState,
    /// The sandbox's embedded broker: running, restarting, its store, what went wrong.
    pub broker_health: Option<crate::sandbox::broker::BrokerHealth>,
    /// The active connection's state.
    pub broker: ConnState,
    /// The active connection's protocol: 4 (MQTT 3.1.1) or 5.
    pub broker_protocol: u8,
    /// Every open connection, in the order opened.
    pub connections: Vec<ConnInfo>,
    pub active: Option<ConnId>,
    pub relay: RelayStatus,
}

/// The relay's connections, refreshed twice a second while it runs.
#[derive(Debug, Clone, Default)]
pub struct RelayView {
    /// Increases with each refresh.
    pub seq: u64,
    pub taken: Option<Instant>,
    pub snapshot: RelaySnapshot,
}

/// How often the relay view is refreshed.
pub const RELAY_VIEW_EVERY: Duration = Duration::from_millis(500);
/// Closed connections and rejections copied into each view.
pub const RELAY_VIEW_HISTORY: usize = 300;

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
    relay_view: watch::Receiver<Arc<RelayView>>,
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
    /// Queues `cmd`. A full queue (or a stopped backend) answers the command's reply at once
    /// with why, so the panel that waits says "busy" rather than a vague "no answer".
    pub fn send(&self, cmd: impl Into<Command>) -> Result<(), Busy> {
        use tokio::sync::mpsc::error::TrySendError;
        match self.commands.try_send(cmd.into()) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(cmd)) => {
                cmd.refuse(&busy());
                Err(Busy)
            }
            Err(TrySendError::Closed(cmd)) => {
                cmd.refuse(&stopped());
                Err(Busy)
            }
        }
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

    pub fn relay_view(&self) -> Arc<RelayView> {
        self.relay_view.borrow().clone()
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
        let (_, relay_view) = watch::channel(Arc::default());
        Self {
            commands,
            events,
            status,
            relay_view,
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
    /// Connect the console to this broker instead (`--connect`), subscribed to these filters.
    pub connect: Option<ConnectTo>,
}

/// `mpbridge --connect URL --subscribe FILTER…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectTo {
    /// `mqtt://`, `mqtts://`, `ws://` or `wss://`.
    pub url: String,
    pub subscribe: Vec<String>,
}

impl ConnectTo {
    /// The filters to subscribe (everything when none were given).
    pub fn filters(&self) -> Vec<String> {
        if self.subscribe.is_empty() {
            vec!["#".into()]
        } else {
            self.subscribe.clone()
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
        let (view_tx, view_rx) = watch::channel(Arc::<RelayView>::default());
        let counters = Arc::new(Counters::default());
        let cancel = CancellationToken::new();
        let sink = EventSink::new(ev_tx, counters.clone(), waker.clone());
        handle.spawn(run(opts, cmd_rx, sink, status_tx, view_tx, cancel.clone()));
        BackendHandle {
            commands: cmd_tx,
            events: ev_rx,
            status: status_rx,
            relay_view: view_rx,
            counters,
            cancel,
            waker,
        }
    }
}

/// Starts the sandbox and every service, then routes each command to its service until the
/// UI's handle is dropped; then waits for the services to stop, and stops the sandbox.
async fn run(
    opts: BackendOptions,
    mut commands: mpsc::Receiver<Command>,
    sink: EventSink,
    status: watch::Sender<BackendStatus>,
    view: watch::Sender<Arc<RelayView>>,
    cancel: CancellationToken,
) {
    let shared = Shared {
        handle: tokio::runtime::Handle::current(),
        sink,
        status,
        cancel: cancel.child_token(),
        paths: opts.paths.clone(),
    };
    let sandbox = match opts.sandbox {
        true => sandbox::start(&shared).await,
        false => None,
    };
    let info = sandbox.as_ref().map(|(sb, _)| sb.info.clone());
    let ca = info.as_ref().map(|i| i.ca.clone());

    let mut relay = relay::RelayService::new(
        shared.clone(),
        sandbox.as_ref().map(|(sb, _)| sb.relay.clone()),
        view,
    );
    let acks = crate::devices::commands::AckTracker::default();
    let mut conns = connections::ConnectionsService::new(
        shared.clone(),
        sandbox.as_ref().map(|(_, t)| t.clone()),
        acks.clone(),
    );
    conns.open_first(opts.connect.as_ref());
    relay.load_saved().await;
    let devices = devices::DevicesService::new(
        shared.clone(),
        conns.link(),
        acks,
        info.as_ref().map(|i| i.broker_addr),
    );
    let checks = checks::ChecksService::new(shared.clone(), ca.clone(), relay.config());

    let (relay_tx, relay_rx) = mpsc::channel(COMMAND_CAPACITY);
    let certs = certs::CertsService::new(shared.clone(), ca, relay_tx.clone());
    let stop = shared.cancel.clone();
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(relay.run(relay_rx, stop.clone()));
    let routes = Routes {
        relay: relay_tx,
        conn: start(&mut tasks, conns, &stop),
        certs: start(&mut tasks, certs, &stop),
        checks: start(&mut tasks, checks, &stop),
        devices: start(&mut tasks, devices, &stop),
        files: start(&mut tasks, files::FilesService::new(shared.clone()), &stop),
    };
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            c = commands.recv() => match c {
                Some(c) => routes.route(c),
                None => break,
            },
        }
    }
    stop.cancel();
    while tasks.join_next().await.is_some() {}
    if let Some((sb, _)) = sandbox {
        sb.stop().await;
    }
}

/// Spawns a service on `tasks`; its queue.
fn start<S: Service>(
    tasks: &mut tokio::task::JoinSet<()>,
    service: S,
    stop: &CancellationToken,
) -> mpsc::Sender<S::Cmd> {
    let (tx, rx) = mpsc::channel(COMMAND_CAPACITY);
    tasks.spawn(serve(service, rx, stop.clone()));
    tx
}

/// Each service's queue.
struct Routes {
    relay: mpsc::Sender<RelayCmd>,
    conn: mpsc::Sender<ConnCmd>,
    certs: mpsc::Sender<CertCmd>,
    checks: mpsc::Sender<ChecksCmd>,
    devices: mpsc::Sender<DeviceCmd>,
    files: mpsc::Sender<FileCmd>,
}

impl Routes {
    /// Hands a command to its service without waiting; a full queue answers busy.
    fn route(&self, cmd: Command) {
        fn to<C: Into<Command>>(tx: &mpsc::Sender<C>, c: C) {
            use tokio::sync::mpsc::error::TrySendError;
            match tx.try_send(c) {
                Ok(()) => {}
                Err(TrySendError::Full(c)) => c.into().refuse(&busy()),
                Err(TrySendError::Closed(c)) => c.into().refuse(&stopped()),
            }
        }
        match cmd {
            Command::Relay(c) => to(&self.relay, c),
            Command::Conn(c) => to(&self.conn, c),
            Command::Certs(c) => to(&self.certs, c),
            Command::Checks(c) => to(&self.checks, c),
            Command::Devices(c) => to(&self.devices, c),
            Command::Files(c) => to(&self.files, c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A full command queue is said as busy to the panel waiting for the answer; a stopped
    /// backend as stopped.
    #[test]
    fn a_full_queue_answers_busy_and_a_closed_one_stopped() {
        let (tx, rx) = mpsc::channel(1);
        let (_ev_tx, ev_rx) = mpsc::channel(1);
        let (_st_tx, st_rx) = watch::channel(BackendStatus::default());
        let handle = BackendHandle::from_parts(tx, ev_rx, st_rx);
        handle.send(RelayCmd::Stop).unwrap();
        let answer = |handle: &BackendHandle| {
            let (mut req, reply) = Requested::<Vec<String>, L10n>::new(None);
            let sent = handle.send(DeviceCmd::SimulateStart { count: 1, reply });
            assert!(sent.is_err());
            match req.poll() {
                Some(Err(e)) => e.clone(),
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(answer(&handle), busy());
        drop(rx);
        assert_eq!(answer(&handle), stopped());
    }
}
