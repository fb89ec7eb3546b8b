//! The console's backend: everything that touches the network or the disk, on the tokio
//! runtime that `main` owns. The UI talks to it through a [`BackendHandle`]:
//!
//! | traffic | channel |
//! |---|---|
//! | commands UI → backend | bounded `mpsc`, `try_send` (full queue: "busy", never blocks) |
//! | events backend → UI (messages) | bounded `mpsc` + waker; what does not fit is counted as dropped |
//! | statuses (sandbox, broker connection) | `watch` |
//! | one-shot jobs | [`Requested`] |

pub mod conns;
pub mod requested;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rumqttc::QoS;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

pub use conns::{ConnId, ConnInfo, MAX_CONNECTIONS};
pub use requested::{Abandoned, Reply, Requested};

use crate::config::Paths;
use crate::mqtt::client::BrokerOptions;
use crate::mqtt::worker::{Worker, WorkerOptions, WorkerSinks};
use crate::mqtt::{ConnState, MqttMessage};
use crate::relay::tls::CertBrief;
use crate::relay::{Relay, RelayConfig, RelayPhase, RelaySnapshot};
use crate::sandbox::{Sandbox, SandboxInfo};
use conns::{Conn, Conns};

/// Asks the UI to repaint soon. Cheap; may be called from any thread.
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// Capacity of the command queue (UI → backend).
pub const COMMAND_CAPACITY: usize = 64;
/// Capacity of the event queue (backend → UI).
pub const EVENT_CAPACITY: usize = 16_384;

/// What the UI asks the backend to do.
pub enum Command {
    /// Publish through the active connection (MQTT 5 properties need an MQTT 5 one).
    Publish {
        topic: String,
        payload: Vec<u8>,
        qos: QoS,
        retain: bool,
        props: Option<Box<crate::mqtt::Props>>,
    },
    /// Count files and bytes in a folder and check it is writable.
    InspectFolder {
        path: PathBuf,
        reply: Reply<FolderReport, String>,
    },
    /// Validate a relay configuration (TOML) and apply it: reload the running relay when the
    /// listen address is unchanged, otherwise stop it and start a new one. Saved to
    /// `relay.toml` in the config folder when it works.
    RelayApply {
        toml: String,
        reply: Reply<String, String>,
    },
    RelayStop,
    /// Start the relay again with its last configuration.
    RelayStart,
    /// Close one live relayed connection.
    RelayClose {
        id: u64,
    },
    /// The nginx `server {}` block for a relay configuration (TOML).
    NginxExport {
        toml: String,
        reply: Reply<String, String>,
    },
    /// Name and expiry of a certificate file.
    InspectCert {
        path: PathBuf,
        reply: Reply<CertBrief, String>,
    },
    /// Open certificate files (and keys) and judge them (Certificates panel).
    CertInspect {
        job: CertJob,
        reply: Reply<Arc<crate::certs::Report>, String>,
    },
    /// Fetch and judge the chain a TLS server presents.
    CertFetch {
        target: String,
        sni: Option<String>,
        reply: Reply<Arc<crate::certs::Report>, String>,
    },
    /// Build fullchain.pem + privkey.pem from the files into `<data>/certs/<name>/`, and with
    /// `use_for_relay` make them the relay's certificate (saved to relay.toml).
    CertRepair {
        job: CertJob,
        use_for_relay: bool,
        reply: Reply<RepairDone, String>,
    },
    /// The native file dialog (xdg portal or zenity on Linux): the files picked, none when
    /// cancelled, an error when no dialog is available.
    PickFiles {
        /// Pick one folder instead of files.
        folder: bool,
        reply: Reply<Vec<PathBuf>, String>,
    },
    /// Run the Mini Program compliance checks; each decided check is pushed to `progress`,
    /// the run is saved to the history and answered.
    RunChecks {
        job: ChecksJob,
        progress: watch::Sender<Vec<crate::checks::Check>>,
        cancel: CancellationToken,
        reply: Reply<Arc<crate::checks::Report>, String>,
    },
    /// The saved runs, newest first.
    ChecksHistory {
        reply: Reply<Vec<Arc<crate::checks::Report>>, String>,
    },
    /// Ask the broker which topics at or under `prefix` hold a retained message: a fresh
    /// subscription gets them (with the retain flag), live forwarding would not.
    FindRetained {
        prefix: String,
        reply: Reply<Vec<String>, String>,
    },
    /// Publish an empty retained message on each topic (clears what the broker keeps), on a
    /// second connection at QoS 1 so every clear is acknowledged; `progress` counts the
    /// acknowledgements (done, total); then the broker is asked again what `prefix` holds.
    ClearRetained {
        prefix: String,
        topics: Vec<String>,
        progress: watch::Sender<(usize, usize)>,
        reply: Reply<Cleared, String>,
    },
    /// Write messages as JSONL or CSV into `<data>/exports/` (serialised off the UI thread).
    ExportMessages {
        messages: Vec<crate::topics::Stored>,
        csv: bool,
        reply: Reply<PathBuf, String>,
    },
    /// Write text into `<data>/exports/NAME`.
    ExportText {
        file_name: String,
        text: String,
        reply: Reply<PathBuf, String>,
    },
    /// Open a connection for a saved broker profile and make it the active one. Other open
    /// connections keep running; one open for a profile of the same name is replaced.
    /// Answers the connection's id and the client id used.
    ConnectProfile {
        profile: Box<crate::mqtt::profile::Profile>,
        reply: Reply<(ConnId, String), String>,
    },
    /// Close the active connection (the most recent other one becomes active).
    DisconnectBroker,
    /// Make the sandbox connection active (opened through its relay when it is not open).
    ConnectSandbox,
    /// Make another open connection the active one.
    ActivateConnection {
        id: ConnId,
    },
    /// Close one open connection.
    CloseConnection {
        id: ConnId,
    },
    /// Subscribe the console's connection (kept across reconnects).
    Subscribe {
        filter: String,
        qos: QoS,
    },
    Unsubscribe {
        filter: String,
    },
    /// Publish a device command through the console's connection and wait for its answer.
    DeviceSend {
        cmd: Box<crate::devices::commands::Prepared>,
        reply: Reply<crate::devices::commands::Outcome, String>,
    },
    /// Run the Mini Program demo flow for a device on its own connection, over the same
    /// transport as the console (the sandbox relay).
    RunFlow {
        device: Box<crate::devices::config::DeviceDef>,
        reply: Reply<Vec<crate::devices::flow::FlowStep>, String>,
    },
    /// Start simulated devices on the sandbox broker (replacing any running); their ids.
    SimulateStart {
        count: usize,
        reply: Reply<Vec<String>, String>,
    },
    SimulateStop,
    /// Write a report as Markdown or JSON into `<data>/checks/`.
    SaveCheckReport {
        report: Arc<crate::checks::Report>,
        markdown: bool,
        zh: bool,
        reply: Reply<PathBuf, String>,
    },
}

impl Command {
    /// Answers the command's reply, if it has one, with `why` instead of running it.
    pub fn refuse(self, why: &str) {
        match self {
            Command::InspectFolder { reply, .. } => reply.send(Err(why.to_owned())),
            Command::RelayApply { reply, .. } => reply.send(Err(why.to_owned())),
            Command::NginxExport { reply, .. } => reply.send(Err(why.to_owned())),
            Command::InspectCert { reply, .. } => reply.send(Err(why.to_owned())),
            Command::CertInspect { reply, .. } => reply.send(Err(why.to_owned())),
            Command::CertFetch { reply, .. } => reply.send(Err(why.to_owned())),
            Command::CertRepair { reply, .. } => reply.send(Err(why.to_owned())),
            Command::PickFiles { reply, .. } => reply.send(Err(why.to_owned())),
            Command::RunChecks { reply, .. } => reply.send(Err(why.to_owned())),
            Command::ChecksHistory { reply, .. } => reply.send(Err(why.to_owned())),
            Command::FindRetained { reply, .. } => reply.send(Err(why.to_owned())),
            Command::ClearRetained { reply, .. } => reply.send(Err(why.to_owned())),
            Command::ExportMessages { reply, .. } => reply.send(Err(why.to_owned())),
            Command::ExportText { reply, .. } => reply.send(Err(why.to_owned())),
            Command::ConnectProfile { reply, .. } => reply.send(Err(why.to_owned())),
            Command::DeviceSend { reply, .. } => reply.send(Err(why.to_owned())),
            Command::RunFlow { reply, .. } => reply.send(Err(why.to_owned())),
            Command::SimulateStart { reply, .. } => reply.send(Err(why.to_owned())),
            Command::SaveCheckReport { reply, .. } => reply.send(Err(why.to_owned())),
            _ => {}
        }
    }
}

/// What the Checks panel asks for.
#[derive(Debug, Clone, Default)]
pub struct ChecksJob {
    pub url: String,
    pub username: Option<String>,
    pub password: Option<crate::config::Secret>,
    pub keepalive_test: bool,
    pub project: Option<PathBuf>,
}

/// What the Certificates panel opened.
#[derive(Debug, Clone, Default)]
pub struct CertJob {
    pub files: Vec<PathBuf>,
    pub password: Option<crate::config::Secret>,
    pub domain: Option<String>,
}

#[derive(Debug, Clone)]
pub struct RepairDone {
    pub fullchain: PathBuf,
    pub key: Option<PathBuf>,
    pub changes: Vec<crate::verdict::L10n>,
    /// With `use_for_relay`: what the relay said.
    pub relay: Option<String>,
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
    /// The configuration in force, as `relay.toml` text.
    pub config_toml: Option<String>,
    pub cert: Option<CertBrief>,
    /// The last start or apply failure.
    pub error: Option<String>,
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
    pub fn send(&self, cmd: Command) -> Result<(), Busy> {
        use tokio::sync::mpsc::error::TrySendError;
        match self.commands.try_send(cmd) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(cmd)) => {
                cmd.refuse("the backend is busy with earlier requests; try again in a moment");
                Err(Busy)
            }
            Err(TrySendError::Closed(cmd)) => {
                cmd.refuse("the backend has stopped");
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
        let (view_tx, view_rx) = watch::channel(Arc::<RelayView>::default());
        let counters = Arc::new(Counters::default());
        let cancel = CancellationToken::new();
        let sink = EventSink {
            tx: ev_tx,
            counters: counters.clone(),
            waker: waker.clone(),
            last_wake_ms: Arc::default(),
            epoch: Instant::now(),
        };
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

async fn run(
    opts: BackendOptions,
    mut commands: mpsc::Receiver<Command>,
    sink: EventSink,
    status: watch::Sender<BackendStatus>,
    view: watch::Sender<Arc<RelayView>>,
    cancel: CancellationToken,
) {
    let handle = tokio::runtime::Handle::current();
    let mut sandbox: Option<Sandbox> = None;
    let mut conns = Conns::default();
    let mut relay: Option<Relay> = None;
    let mut relay_cfg: Option<RelayConfig> = None;
    // Device commands waiting for their answer, matched against every received message.
    let acks = crate::devices::commands::AckTracker::default();
    let mut sandbox_target: Option<Target> = None;
    let mut sim_cancel: Option<CancellationToken> = None;
    let ctx = ConnCtx {
        handle: handle.clone(),
        sink: sink.clone(),
        status: status.clone(),
        cancel: cancel.clone(),
        acks: acks.clone(),
    };

    if opts.sandbox {
        set_status(&status, &sink, |s| s.sandbox = SandboxState::Starting);
        match Sandbox::start(&opts.paths, &cancel).await {
            Ok(sb) => {
                let info = sb.info.clone();
                tracing::info!(
                    "sandbox running: broker {}, relay {}",
                    info.broker,
                    info.relay
                );
                // The console watches the sandbox through its relay, so the Relay panel shows
                // a live connection from the first second; plain TCP if TLS setup fails.
                let target = match crate::relay::tls::client_config_with_roots(&[&info.ca]) {
                    Ok(tls) => Target::Wss {
                        url: info.relay.clone(),
                        port: info.relay_addr.port(),
                        tls: Arc::new(tls),
                    },
                    Err(e) => {
                        tracing::warn!("console falls back to plain MQTT: {e}");
                        Target::Tcp(info.broker_addr.to_string())
                    }
                };
                sandbox_target = Some(target.clone());
                if opts.connect.is_none() {
                    let conn = ctx.open_sandbox(conns.next_id(), target);
                    conns.push_active(conn);
                    ctx.publish_active(&conns);
                }
                relay_cfg = Some(sb.relay.config());
                relay = Some(sb.relay.clone());
                let health = sb.broker.health();
                set_status(&status, &sink, |s| {
                    s.broker_health = Some(health.borrow().clone());
                    s.sandbox = SandboxState::Running(info);
                });
                tokio::spawn(forward_broker_health(
                    health,
                    status.clone(),
                    sink.clone(),
                    cancel.clone(),
                ));
                sandbox = Some(sb);
            }
            Err(e) => {
                tracing::error!("sandbox: {e}");
                set_status(&status, &sink, |s| {
                    s.sandbox = SandboxState::Failed(e.to_string())
                });
            }
        }
    }
    // `--connect`: the console's connection goes to that broker instead.
    if let Some(c) = &opts.connect {
        // A profile like any other, trusting this computer's certificate store.
        let mut profile = crate::mqtt::profile::Profile::new("--connect", c.url.trim());
        profile.client_id = "mpbridge-console".into();
        profile.subscriptions = c.filters();
        let in_url = c
            .url
            .split_once("://")
            .is_some_and(|(_, rest)| rest.split('/').next().unwrap_or("").contains('@'));
        let shown = crate::config::secret::redact_url(&c.url);
        let mqtt = if in_url {
            Err(crate::verdict::L10n::new(
                format!(
                    "{shown}: put the user name and password in a broker profile, not in the URL"
                ),
                format!("{shown}：请把用户名和密码写在代理配置中，而不是写在地址里"),
            ))
        } else {
            profile.options().map_err(crate::verdict::L10n::same)
        };
        match mqtt {
            Ok(mqtt) => {
                tracing::info!("connecting the console to {}", c.url.trim());
                let conn = ctx.open_profile(conns.next_id(), profile, mqtt);
                conns.push_active(conn);
                ctx.publish_active(&conns);
            }
            Err(e) => {
                tracing::error!("--connect: {}", e.en);
                set_status(&status, &sink, |s| {
                    s.broker = ConnState::Disconnected {
                        error: e,
                        retry_in: Duration::ZERO,
                    }
                });
            }
        }
    }
    // A saved relay configuration takes over from the sandbox's relay.
    let saved = opts.paths.config_dir.join("relay.toml");
    if saved.is_file() {
        let text = tokio::fs::read_to_string(&saved).await.unwrap_or_default();
        if let Err(e) = apply_relay(&text, &opts.paths, &mut relay, &mut relay_cfg, false).await {
            tracing::error!("relay.toml: {e}");
            set_status(&status, &sink, |s| s.relay.error = Some(e));
        }
    }
    publish_relay(&status, &sink, relay.as_ref(), relay_cfg.as_ref());

    let mut tick = tokio::time::interval(RELAY_VIEW_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut seq = 0u64;
    let mut phase_rx = relay.as_ref().map(Relay::phase);
    loop {
        let phase_changed = async {
            match phase_rx.as_mut() {
                Some(rx) => rx.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        let cmd = tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {
                if let Some(r) = relay.as_ref().filter(|r| matches!(*r.phase().borrow(), RelayPhase::Running { .. })) {
                    // Only a changed view is published (and repainted): a quiet relay costs
                    // the UI nothing.
                    let snapshot = r.snapshot(RELAY_VIEW_HISTORY);
                    if view.borrow().snapshot != snapshot {
                        seq += 1;
                        view.send_replace(Arc::new(RelayView {
                            seq,
                            taken: Some(Instant::now()),
                            snapshot,
                        }));
                        (sink.waker)();
                    }
                }
                continue;
            }
            ok = phase_changed => {
                if !ok { phase_rx = None; }
                publish_relay(&status, &sink, relay.as_ref(), relay_cfg.as_ref());
                continue;
            }
            c = commands.recv() => match c { Some(c) => c, None => break },
        };
        match cmd {
            Command::Publish {
                topic,
                payload,
                qos,
                retain,
                props,
            } => {
                use crate::verdict::L10n;
                let refused = match conns.worker() {
                    Some(w) => w
                        .client
                        .try_publish(&topic, qos, retain, payload, props.as_deref())
                        .err()
                        .map(crate::mqtt::client::publish_refusal),
                    None => Some(L10n::new("not connected to a broker", "未连接到代理")),
                };
                if let Some(why) = refused {
                    tracing::warn!("nothing published to {topic}: {}", why.en);
                    ctx.sink.emit(Event::PublishRefused { topic, why });
                }
            }
            Command::InspectFolder { path, reply } => {
                handle.spawn_blocking(move || reply.send(inspect_folder(&path)));
            }
            Command::InspectCert { path, reply } => {
                handle.spawn_blocking(move || reply.send(crate::relay::tls::cert_brief(&path)));
            }
            Command::CertInspect { job, reply } => {
                let req = cert_request(&job, sandbox.as_ref());
                handle.spawn_blocking(move || {
                    let password = job.password.as_ref().map(|p| p.expose().to_owned());
                    let (_, report) =
                        crate::certs::inspect_paths(&job.files, &[], password.as_deref(), &req);
                    reply.send(Ok(Arc::new(report)));
                });
            }
            Command::CertFetch { target, sni, reply } => {
                let req = cert_request(&CertJob::default(), sandbox.as_ref());
                handle.spawn(async move {
                    let r = crate::certs::fetch::fetch_report(
                        &target,
                        sni.as_deref(),
                        req,
                        Duration::from_secs(10),
                    )
                    .await;
                    reply.send(r.map(Arc::new));
                });
            }
            Command::CertRepair {
                job,
                use_for_relay,
                reply,
            } => {
                // Building a fullchain needs names and signatures, not the OS verifier
                // (which may go to the network on some systems and would hold up commands).
                let mut req = cert_request(&job, sandbox.as_ref());
                req.trust.os_store = false;
                let data = opts.paths.data_dir.join("certs");
                let written = tokio::task::spawn_blocking(move || repair_files(&job, &req, &data))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r);
                let result = match written {
                    Ok(mut done) if use_for_relay => match (&done.key, &relay_cfg) {
                        (None, _) => Err(
                            "open the private key too: the relay needs the certificate's key"
                                .to_owned(),
                        ),
                        (_, None) => Err("the relay has no configuration yet".to_owned()),
                        (Some(key), Some(cfg)) => {
                            let toml = with_relay_cert(&cfg.render_toml(), &done.fullchain, key);
                            let r =
                                apply_relay(&toml, &opts.paths, &mut relay, &mut relay_cfg, true)
                                    .await;
                            set_status(&status, &sink, |s| {
                                s.relay.error = r.as_ref().err().cloned()
                            });
                            phase_rx = relay.as_ref().map(Relay::phase);
                            publish_relay(&status, &sink, relay.as_ref(), relay_cfg.as_ref());
                            r.map(|msg| {
                                done.relay = Some(msg);
                                done
                            })
                        }
                    },
                    other => other,
                };
                reply.send(result);
            }
            Command::PickFiles { folder, reply } => {
                handle.spawn_blocking(move || {
                    if !file_dialog_available() {
                        reply.send(Err("no file dialog on this system (it needs xdg-desktop-portal or zenity): drop the files on the panel or type a path".into()));
                        return;
                    }
                    let picked = if folder {
                        rfd::FileDialog::new().pick_folder().map(|f| vec![f])
                    } else {
                        rfd::FileDialog::new()
                            .add_filter(
                                "certificates",
                                &["pem", "crt", "cer", "der", "key", "pfx", "p12", "zip"],
                            )
                            .add_filter("all", &["*"])
                            .pick_files()
                    };
                    reply.send(Ok(picked.unwrap_or_default()));
                });
            }
            Command::RunChecks {
                job,
                progress,
                cancel,
                reply,
            } => {
                let mut copts = crate::checks::Options {
                    username: job.username.clone().filter(|u| !u.is_empty()),
                    // MQTT 3.1.1 allows a password only with a user name.
                    password: job.password.clone().filter(|p| {
                        !p.is_empty() && job.username.as_ref().is_some_and(|u| !u.is_empty())
                    }),
                    keepalive_test: job.keepalive_test,
                    project: job.project.clone(),
                    relay_idle_secs: relay_cfg.as_ref().map(|c| c.limits.idle_timeout.as_secs()),
                    ..Default::default()
                };
                // The sandbox's dev CA verifies its relay's chain for the other checks.
                if let Some(sb) = &sandbox {
                    let mut o = crate::certs::Opened::default();
                    crate::certs::open::open_path(&sb.info.ca, None, &mut o);
                    copts.extra_roots = o.certs.into_iter().map(|c| c.der).collect();
                    copts.extra_roots_origin =
                        crate::verdict::L10n::new("the sandbox's dev CA", "沙盒的开发 CA");
                }
                let history = checks_history_file(&opts.paths);
                let waker = sink.waker.clone();
                handle.spawn(async move {
                    let report = crate::checks::run(
                        &job.url,
                        &copts,
                        |c| {
                            progress.send_modify(|v| v.push(c.clone()));
                            waker();
                        },
                        cancel,
                    )
                    .await;
                    let saved = report.clone();
                    let written = tokio::task::spawn_blocking(move || {
                        crate::checks::save_history(&history, &saved)
                    })
                    .await;
                    if let Ok(Err(e)) = written {
                        tracing::warn!("check history not saved: {e}");
                    }
                    reply.send(Ok(Arc::new(report)));
                });
            }
            Command::FindRetained { prefix, reply } => {
                let (mqtt, guard) = match second_connection(conns.active.as_ref(), &handle, &cancel)
                {
                    Ok(m) => m,
                    Err(e) => {
                        reply.send(Err(e));
                        continue;
                    }
                };
                handle.spawn(async move {
                    reply.send(find_retained(mqtt, &prefix).await);
                    drop(guard);
                });
            }
            Command::ClearRetained {
                prefix,
                topics,
                progress,
                reply,
            } => {
                let (mqtt, guard) = match second_connection(conns.active.as_ref(), &handle, &cancel)
                {
                    Ok(m) => m,
                    Err(e) => {
                        reply.send(Err(e));
                        continue;
                    }
                };
                handle.spawn(async move {
                    let done = clear_retained(mqtt, &prefix, topics, &progress).await;
                    match &done {
                        Ok(c) => tracing::info!(
                            "cleared {} retained message(s) under \"{prefix}\"; {} left",
                            c.acknowledged,
                            c.left
                        ),
                        Err(e) => tracing::warn!("clearing retained messages: {e}"),
                    }
                    reply.send(done);
                    drop(guard);
                });
            }
            Command::ExportMessages {
                messages,
                csv,
                reply,
            } => {
                let dir = opts.paths.data_dir.join("exports");
                handle.spawn_blocking(move || {
                    let (ext, text) = if csv {
                        ("csv", crate::topics::to_csv(messages.iter()))
                    } else {
                        ("jsonl", crate::topics::to_jsonl(messages.iter()))
                    };
                    let path = dir.join(format!(
                        "messages-{}.{ext}",
                        chrono::Local::now().format("%Y%m%d-%H%M%S")
                    ));
                    reply.send(
                        std::fs::create_dir_all(&dir)
                            .and_then(|_| crate::config::store::save_atomic(&path, &text))
                            .map(|_| path.clone())
                            .map_err(|e| format!("cannot write {}: {e}", path.display())),
                    );
                });
            }
            Command::ExportText {
                file_name,
                text,
                reply,
            } => {
                let dir = opts.paths.data_dir.join("exports");
                handle.spawn_blocking(move || {
                    let name = std::path::Path::new(&file_name)
                        .file_name()
                        .map(|n| n.to_owned())
                        .unwrap_or_else(|| "export.txt".into());
                    let path = dir.join(name);
                    reply.send(
                        std::fs::create_dir_all(&dir)
                            .and_then(|_| crate::config::store::save_atomic(&path, &text))
                            .map(|_| path.clone())
                            .map_err(|e| format!("cannot write {}: {e}", path.display())),
                    );
                });
            }
            Command::ConnectProfile { profile, reply } => {
                // The same profile connected again replaces its old connection.
                let same = conns.find_label(&profile.name);
                if same.is_none() && conns.len() >= MAX_CONNECTIONS {
                    reply.send(Err(format!(
                        "at most {MAX_CONNECTIONS} connections at once: close one first"
                    )));
                    continue;
                }
                match profile.options() {
                    Ok(mqtt) => {
                        if let Some(old) = same.and_then(|id| conns.remove(id)) {
                            ctx.close(old);
                        }
                        let id = mqtt.client_id();
                        tracing::info!(
                            "connecting to profile \"{}\" ({}, MQTT {})",
                            profile.name,
                            crate::config::secret::redact_url(&profile.url),
                            if mqtt.protocol() == 5 { "5" } else { "3.1.1" }
                        );
                        let cid = conns.next_id();
                        let conn = ctx.open_profile(cid, *profile, mqtt);
                        conns.push_active(conn);
                        ctx.publish_active(&conns);
                        reply.send(Ok((cid, id)));
                    }
                    Err(e) => reply.send(Err(e)),
                }
            }
            Command::DisconnectBroker => {
                if let Some(old) = conns.active_id().and_then(|id| conns.remove(id)) {
                    ctx.close(old);
                }
                ctx.publish_active(&conns);
            }
            Command::ConnectSandbox => {
                if let Some(target) = sandbox_target.clone() {
                    match conns.find_label(SANDBOX_LABEL) {
                        Some(id) => {
                            conns.activate(id);
                        }
                        None => {
                            let conn = ctx.open_sandbox(conns.next_id(), target);
                            conns.push_active(conn);
                        }
                    }
                    ctx.publish_active(&conns);
                }
            }
            Command::ActivateConnection { id } => {
                if conns.activate(id) {
                    ctx.publish_active(&conns);
                }
            }
            Command::CloseConnection { id } => {
                if let Some(old) = conns.remove(id) {
                    ctx.close(old);
                }
                ctx.publish_active(&conns);
            }
            Command::Subscribe { filter, qos } => match conns.worker() {
                Some(w) => w.subscribe(&filter, qos),
                None => tracing::warn!("not connected to a broker; {filter} not subscribed"),
            },
            Command::Unsubscribe { filter } => {
                if let Some(w) = conns.worker() {
                    w.unsubscribe(&filter);
                }
            }
            Command::DeviceSend { cmd, reply } => {
                let Some(w) = conns.worker() else {
                    reply.send(Err("not connected to a broker".into()));
                    continue;
                };
                let qos = crate::mqtt::qos(cmd.qos);
                // Expect the answer before publishing: a fast device must not be missed.
                let rx = cmd.ack.clone().map(|a| acks.expect(a));
                let sent = Instant::now();
                if let Err(e) = w.client.try_publish(
                    &cmd.topic,
                    qos,
                    cmd.retain,
                    cmd.payload.clone().into_bytes(),
                    None,
                ) {
                    reply.send(Err(format!("could not publish to {}: {e}", cmd.topic)));
                    continue;
                }
                tracing::info!("command to {}: {} {}", cmd.device, cmd.topic, cmd.payload);
                let timeout = cmd.timeout;
                handle.spawn(async move {
                    let out = match rx {
                        Some(rx) => crate::devices::commands::wait(rx, sent, timeout).await,
                        None => crate::devices::commands::Outcome::Sent,
                    };
                    reply.send(Ok(out));
                });
            }
            Command::RunFlow { device, reply } => {
                let (mqtt, guard) = match second_connection(conns.active.as_ref(), &handle, &cancel)
                {
                    Ok(m) => m,
                    Err(e) => {
                        reply.send(Err(e));
                        continue;
                    }
                };
                handle.spawn(async move {
                    let steps =
                        crate::devices::flow::run(mqtt, &device, Duration::from_secs(10)).await;
                    reply.send(Ok(steps));
                    drop(guard);
                });
            }
            Command::SimulateStart { count, reply } => {
                if let Some(c) = sim_cancel.take() {
                    c.cancel();
                }
                match &sandbox {
                    Some(sb) => {
                        let token = cancel.child_token();
                        let mut base =
                            crate::devices::sim::SimOptions::demo("", sb.info.broker_addr);
                        base.start_jitter = Duration::from_millis((count as u64 * 5).min(3_000));
                        let ids = crate::devices::sim::spawn_fleet(
                            &handle,
                            &base,
                            "sim",
                            count.clamp(1, 1000),
                            &token,
                        );
                        sim_cancel = Some(token);
                        reply.send(Ok(ids));
                    }
                    None => reply.send(Err(
                        "the simulator runs on the sandbox broker, which is not running".into(),
                    )),
                }
            }
            Command::SimulateStop => {
                if let Some(c) = sim_cancel.take() {
                    c.cancel();
                }
            }
            Command::ChecksHistory { reply } => {
                let history = checks_history_file(&opts.paths);
                handle.spawn_blocking(move || {
                    let mut runs: Vec<Arc<crate::checks::Report>> =
                        crate::checks::load_history(&history)
                            .into_iter()
                            .map(Arc::new)
                            .collect();
                    runs.reverse();
                    reply.send(Ok(runs));
                });
            }
            Command::SaveCheckReport {
                report,
                markdown,
                zh,
                reply,
            } => {
                let dir = opts.paths.data_dir.join("checks");
                handle.spawn_blocking(move || {
                    let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
                    let (name, text) = if markdown {
                        (
                            format!("report-{stamp}.md"),
                            crate::checks::report::markdown(&report, zh),
                        )
                    } else {
                        (
                            format!("report-{stamp}.json"),
                            serde_json::to_string_pretty(&*report).unwrap_or_default(),
                        )
                    };
                    let path = dir.join(name);
                    let r = std::fs::create_dir_all(&dir)
                        .and_then(|_| crate::config::store::save_atomic(&path, &text))
                        .map(|_| path.clone())
                        .map_err(|e| format!("cannot write {}: {e}", path.display()));
                    reply.send(r);
                });
            }
            Command::NginxExport { toml, reply } => {
                let base = opts.paths.config_dir.clone();
                handle.spawn_blocking(move || {
                    reply.send(
                        RelayConfig::parse(&toml, &base)
                            .map(|c| crate::relay::nginx::render(&c))
                            .map_err(|e| e.to_string()),
                    )
                });
            }
            Command::RelayApply { toml, reply } => {
                let result =
                    apply_relay(&toml, &opts.paths, &mut relay, &mut relay_cfg, true).await;
                set_status(&status, &sink, |s| {
                    s.relay.error = result.as_ref().err().cloned()
                });
                phase_rx = relay.as_ref().map(Relay::phase);
                publish_relay(&status, &sink, relay.as_ref(), relay_cfg.as_ref());
                reply.send(result);
            }
            Command::RelayStop => {
                if let Some(r) = relay.clone() {
                    // Draining may take the configured drain time; do not hold up commands.
                    handle.spawn(async move { r.stop().await });
                }
            }
            Command::RelayStart => {
                let running = relay
                    .as_ref()
                    .is_some_and(|r| !matches!(*r.phase().borrow(), RelayPhase::Stopped));
                if let (false, Some(cfg)) = (running, relay_cfg.clone()) {
                    match Relay::start(cfg, &handle).await {
                        Ok(r) => {
                            phase_rx = Some(r.phase());
                            relay = Some(r);
                            set_status(&status, &sink, |s| s.relay.error = None);
                        }
                        Err(e) => {
                            set_status(&status, &sink, |s| s.relay.error = Some(e.to_string()))
                        }
                    }
                    publish_relay(&status, &sink, relay.as_ref(), relay_cfg.as_ref());
                }
            }
            Command::RelayClose { id } => {
                if let Some(r) = &relay {
                    r.close_connection(id);
                }
            }
        }
    }
    for c in conns.drain() {
        c.worker.stop();
    }
    if let Some(r) = relay {
        r.stop().await;
    }
    if let Some(sb) = sandbox {
        sb.stop().await;
    }
}

/// Validates `toml` and applies it to the console's relay (reload in place when the listen
/// address is the same, otherwise stop and start).
/// Subscribes `prefix` and `prefix/#` on a new connection and collects the retained
/// messages the broker sends for them (for 1.5 s after the SUBACK).
async fn find_retained(
    mut mqtt: rumqttc::MqttOptions,
    prefix: &str,
) -> Result<Vec<String>, String> {
    use rumqttc::{Event, Packet};
    mqtt.set_keep_alive(Duration::from_secs(30));
    mqtt.set_max_packet_size(crate::mqtt::MAX_PACKET_BYTES, crate::mqtt::MAX_PACKET_BYTES);
    let (client, mut ev) = rumqttc::AsyncClient::new(mqtt, 16);
    let prefix = prefix.trim().trim_end_matches('/');
    let filters: Vec<String> = if prefix.is_empty() {
        vec!["#".into()]
    } else {
        vec![prefix.to_owned(), format!("{prefix}/#")]
    };
    for f in &filters {
        client
            .subscribe(f.clone(), QoS::AtMostOnce)
            .await
            .map_err(|e| e.to_string())?;
    }
    let mut found = std::collections::BTreeSet::new();
    let mut acks = 0;
    let mut deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, ev.poll()).await {
            Err(_) => break,
            Ok(Err(e)) => return Err(format!("the broker connection failed: {e}")),
            Ok(Ok(Event::Incoming(Packet::SubAck(a)))) => {
                if a.return_codes
                    .iter()
                    .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                {
                    client.disconnect().await.ok();
                    return Err(format!(
                        "the broker refused the subscription to {} (not authorised?)",
                        filters.join(" and ")
                    ));
                }
                acks += 1;
                if acks == filters.len() {
                    deadline = tokio::time::Instant::now() + Duration::from_millis(1500);
                }
            }
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) if p.retain && !p.payload.is_empty() => {
                found.insert(p.topic);
            }
            Ok(Ok(_)) => {}
        }
        if found.len() >= 100_000 {
            break;
        }
    }
    client.disconnect().await.ok();
    if acks < filters.len() {
        return Err("the broker did not acknowledge the subscription within 10 s".into());
    }
    Ok(found.into_iter().collect())
}

/// What clearing retained messages did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cleared {
    /// Clears the broker acknowledged.
    pub acknowledged: usize,
    /// Retained messages the broker still holds under the prefix afterwards.
    pub left: usize,
}

/// Publishes an empty retained message (QoS 1) on each topic and counts the broker's
/// acknowledgements, then looks again under `prefix`.
async fn clear_retained(
    mqtt: rumqttc::MqttOptions,
    prefix: &str,
    topics: Vec<String>,
    progress: &watch::Sender<(usize, usize)>,
) -> Result<Cleared, String> {
    use rumqttc::{Event, Packet};
    let total = topics.len();
    progress.send_replace((0, total));
    let mut opts = mqtt.clone();
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut ev) = rumqttc::AsyncClient::new(opts, 64);
    // Publishing waits for room in the queue while the loop below drains it.
    let publisher = {
        let client = client.clone();
        tokio::spawn(async move {
            for t in topics {
                if client
                    .publish(t, QoS::AtLeastOnce, true, Vec::new())
                    .await
                    .is_err()
                {
                    break;
                }
            }
        })
    };
    let mut acknowledged = 0;
    let result = loop {
        if acknowledged == total {
            break Ok(());
        }
        match tokio::time::timeout(Duration::from_secs(10), ev.poll()).await {
            Err(_) => {
                break Err(format!(
                    "the broker acknowledged {acknowledged} of {total} clears, then nothing for 10 s"
                ));
            }
            Ok(Err(e)) => {
                break Err(format!(
                    "the broker connection failed after {acknowledged} of {total} clears: {e}"
                ));
            }
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => {
                acknowledged += 1;
                progress.send_replace((acknowledged, total));
            }
            Ok(Ok(_)) => {}
        }
    };
    publisher.abort();
    client.disconnect().await.ok();
    let _ = tokio::time::timeout(Duration::from_millis(300), ev.poll()).await;
    result?;
    let left = find_retained(mqtt, prefix).await?.len();
    Ok(Cleared { acknowledged, left })
}

/// Options for a second connection to the broker of the active connection (always MQTT
/// 3.1.1: the demo flow plays a Mini Program, and finding retained messages needs no more).
/// The guard stops a server-name forwarder when the second connection is done.
fn second_connection(
    active: Option<&Conn>,
    handle: &tokio::runtime::Handle,
    cancel: &CancellationToken,
) -> Result<(rumqttc::MqttOptions, tokio_util::sync::DropGuard), String> {
    let token = cancel.child_token();
    let opts = match active {
        Some(Conn {
            target: Some(t), ..
        }) => BrokerOptions::v4(flow_options(t.clone())),
        Some(Conn {
            profile: Some(p), ..
        }) => {
            let mut p = p.clone();
            p.client_id = format!("{}-aux", p.client_id);
            p.random_suffix = true;
            p.will = None;
            p.clean_session = true;
            p.session_expiry_secs = None;
            p.version = crate::mqtt::profile::MqttVersion::V311;
            p.options()?
        }
        _ => return Err("not connected to a broker".into()),
    };
    let mqtt = opts
        .into_v4_started(handle, &token)
        .ok_or("the second connection needs MQTT 3.1.1")?;
    Ok((mqtt, token.drop_guard()))
}

/// MQTT options for a second connection over the console's transport (the demo flow).
fn flow_options(target: Target) -> rumqttc::MqttOptions {
    let id = format!("mpbridge-flow-{:08x}", rand::random::<u32>());
    match target {
        Target::Tcp(addr) => {
            let (h, p) = addr
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.to_owned(), p.parse().ok()?)))
                .unwrap_or_else(|| (addr.clone(), 1883));
            rumqttc::MqttOptions::new(id, h, p)
        }
        Target::Wss { url, port, tls } => {
            let mut o = rumqttc::MqttOptions::new(id, url, port);
            o.set_transport(rumqttc::Transport::wss_with_config((*tls).clone().into()));
            o
        }
    }
}

/// `<data>/checks/history.jsonl`.
fn checks_history_file(paths: &Paths) -> PathBuf {
    paths.data_dir.join("checks").join("history.jsonl")
}

/// rfd answers "cancelled" when it has no dialog to show; tell the user instead.
fn file_dialog_available() -> bool {
    if !cfg!(target_os = "linux") {
        return true;
    }
    let on_path = |exe: &str| {
        std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(exe).is_file()))
    };
    std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some() || on_path("zenity")
}

/// Trust for the Certificates panel: public roots, the OS store, and the sandbox's dev CA as a
/// supplied (never public) CA, so the sandbox relay's own certificate is explained.
fn cert_request(job: &CertJob, sandbox: Option<&Sandbox>) -> crate::certs::Request {
    let mut trust = crate::certs::Trust::default();
    if let Some(sb) = sandbox {
        let mut o = crate::certs::Opened::default();
        crate::certs::open::open_path(&sb.info.ca, None, &mut o);
        trust.extra.extend(o.certs.into_iter().map(|c| c.der));
    }
    crate::certs::Request {
        domain: job.domain.clone().filter(|d| !d.trim().is_empty()),
        trust,
        at: None,
    }
}

/// Writes the repaired chain into `<data>/certs/<leaf name>/`.
fn repair_files(
    job: &CertJob,
    req: &crate::certs::Request,
    certs_dir: &Path,
) -> Result<RepairDone, String> {
    let password = job.password.as_ref().map(|p| p.expose().to_owned());
    let (opened, report) = crate::certs::inspect_paths(&job.files, &[], password.as_deref(), req);
    let leaf = report
        .chain
        .iter()
        .find(|e| e.role == crate::certs::Role::Leaf)
        .ok_or_else(|| "no certificate was opened".to_owned())?;
    let name: String = leaf
        .info
        .common_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let dir = certs_dir.join(if name.is_empty() {
        "certificate".into()
    } else {
        name
    });
    let w = crate::certs::repair::write(&opened, &report.repair, &dir)?;
    let changes = match &report.repair {
        crate::certs::RepairPlan::Ready { changes, .. } => changes.clone(),
        crate::certs::RepairPlan::Impossible { .. } => Vec::new(),
    };
    Ok(RepairDone {
        fullchain: w.fullchain,
        key: w.key,
        changes,
        relay: None,
    })
}

/// The relay configuration with another certificate and key in `[listen]`.
fn with_relay_cert(toml_text: &str, cert: &Path, key: &Path) -> String {
    let mut table: toml::Table = toml_text.parse().unwrap_or_default();
    let listen = table
        .entry("listen")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let toml::Value::Table(l) = listen {
        l.insert("cert".into(), cert.display().to_string().into());
        l.insert("key".into(), key.display().to_string().into());
    }
    toml::to_string(&table).unwrap_or_else(|_| toml_text.to_owned())
}

async fn apply_relay(
    toml: &str,
    paths: &Paths,
    relay: &mut Option<Relay>,
    relay_cfg: &mut Option<RelayConfig>,
    save: bool,
) -> Result<String, String> {
    let base = paths.config_dir.clone();
    let text = toml.to_owned();
    let cfg = tokio::task::spawn_blocking(move || RelayConfig::parse(&text, &base))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("relay.toml: {e}"))?;
    let running = relay
        .as_ref()
        .filter(|r| matches!(*r.phase().borrow(), RelayPhase::Running { .. }));
    let same_listen = relay_cfg.as_ref().is_some_and(|c| c.listen == cfg.listen);
    let message = match running {
        Some(r) if same_listen => {
            r.reload(cfg.clone()).map_err(|e| e.to_string())?;
            "reloaded: new connections use the new configuration; live ones stay".to_owned()
        }
        _ => {
            if let Some(r) = relay.take() {
                r.stop().await;
            }
            let r = Relay::start(cfg.clone(), &tokio::runtime::Handle::current())
                .await
                .map_err(|e| e.to_string())?;
            let msg = format!("started on {}", r.addr());
            *relay = Some(r);
            msg
        }
    };
    *relay_cfg = Some(cfg);
    if save {
        let path = paths.config_dir.join("relay.toml");
        let text = toml.to_owned();
        tokio::task::spawn_blocking(move || crate::config::store::save_atomic(&path, &text))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("applied, but relay.toml could not be saved: {e}"))?;
    }
    Ok(message)
}

fn publish_relay(
    status: &watch::Sender<BackendStatus>,
    sink: &EventSink,
    relay: Option<&Relay>,
    cfg: Option<&RelayConfig>,
) {
    let phase = relay
        .map(|r| r.phase().borrow().clone())
        .unwrap_or(RelayPhase::Stopped);
    let url = match (&phase, cfg) {
        (RelayPhase::Running { addr }, Some(c)) => {
            let path = c.routes.first().map_or("/mqtt", |r| r.path.as_str());
            let host = if addr.ip().is_loopback() || addr.ip().is_unspecified() {
                "localhost".to_owned()
            } else {
                addr.ip().to_string()
            };
            Some(format!("wss://{host}:{}{path}", addr.port()))
        }
        _ => None,
    };
    let cert = cfg.and_then(|c| crate::relay::tls::cert_brief(&c.certs.cert).ok());
    let config_toml = cfg.map(RelayConfig::render_toml);
    set_status(status, sink, |s| {
        s.relay.phase = phase;
        s.relay.url = url;
        s.relay.cert = cert;
        s.relay.config_toml = config_toml;
    });
}

/// Where the console's MQTT worker connects.
#[derive(Clone)]
enum Target {
    Tcp(String),
    Wss {
        url: String,
        port: u16,
        tls: Arc<rustls::ClientConfig>,
    },
}

/// The label of the sandbox connection.
pub const SANDBOX_LABEL: &str = "sandbox";

/// What opening a connection needs from the backend.
struct ConnCtx {
    handle: tokio::runtime::Handle,
    sink: EventSink,
    status: watch::Sender<BackendStatus>,
    cancel: CancellationToken,
    acks: crate::devices::commands::AckTracker,
}

impl ConnCtx {
    /// Connects to the sandbox (through its relay) and subscribes to everything.
    fn open_sandbox(&self, id: ConnId, target: Target) -> Conn {
        let (host, port, transport) = match target.clone() {
            Target::Tcp(addr) => {
                let (h, p) = addr
                    .rsplit_once(':')
                    .and_then(|(h, p)| Some((h.to_owned(), p.parse().ok()?)))
                    .unwrap_or_else(|| (addr.clone(), 1883));
                (h, p, None)
            }
            Target::Wss { url, port, tls } => (
                url,
                port,
                Some(rumqttc::Transport::wss_with_config((*tls).clone().into())),
            ),
        };
        let url = match &target {
            Target::Tcp(a) => format!("mqtt://{a}"),
            Target::Wss { url, .. } => url.clone(),
        };
        self.register(id, SANDBOX_LABEL, &url, 4, false);
        let worker = Worker::spawn(
            &self.handle,
            WorkerOptions {
                host,
                port,
                client_id: format!("mpbridge-console-{:08x}", rand::random::<u32>()),
                keep_alive: Duration::from_secs(30),
                subscriptions: vec![("#".to_owned(), QoS::AtMostOnce)],
                max_packet_bytes: crate::mqtt::MAX_PACKET_BYTES,
                transport,
            },
            self.sinks(id),
            &self.cancel,
        );
        Conn {
            id,
            label: SANDBOX_LABEL.into(),
            worker,
            target: Some(target),
            profile: None,
        }
    }

    /// Connects a profile and subscribes to its filters.
    fn open_profile(
        &self,
        id: ConnId,
        profile: crate::mqtt::profile::Profile,
        mqtt: BrokerOptions,
    ) -> Conn {
        self.register(
            id,
            &profile.name,
            profile.url.trim(),
            mqtt.protocol(),
            profile.insecure,
        );
        let subs = profile
            .subscriptions
            .iter()
            .map(|f| (f.clone(), crate::mqtt::qos(profile.subscribe_qos)))
            .collect();
        let worker = Worker::spawn_with(&self.handle, mqtt, subs, self.sinks(id), &self.cancel);
        Conn {
            id,
            label: profile.name.clone(),
            worker,
            target: None,
            profile: Some(profile),
        }
    }

    fn register(&self, id: ConnId, label: &str, url: &str, protocol: u8, insecure: bool) {
        let info = ConnInfo {
            id,
            label: label.to_owned(),
            url: crate::config::secret::redact_url(url),
            protocol,
            state: ConnState::Connecting { attempt: 0 },
            insecure,
        };
        set_status(&self.status, &self.sink, |s| s.connections.push(info));
    }

    /// Stops a connection (DISCONNECT sent, so its last will stays unpublished).
    fn close(&self, conn: Conn) {
        tracing::info!("closing the connection \"{}\"", conn.label);
        conn.worker.stop();
        set_status(&self.status, &self.sink, |s| {
            s.connections.retain(|c| c.id != conn.id)
        });
    }

    /// Mirrors which connection is active into the status.
    fn publish_active(&self, conns: &Conns) {
        let active = conns.active_id();
        set_status(&self.status, &self.sink, |s| {
            s.active = active;
            let c = s.connections.iter().find(|c| Some(c.id) == active);
            s.broker = c.map(|c| c.state.clone()).unwrap_or_default();
            s.broker_protocol = c.map_or(4, |c| c.protocol);
        });
    }

    /// A connection's sinks: its state mirrored into the status, every message to the ack
    /// tracker and the UI (tagged with the connection).
    fn sinks(&self, id: ConnId) -> WorkerSinks {
        let (state_tx, mut state_rx) = watch::channel(ConnState::Idle);
        {
            let status = self.status.clone();
            let sink = self.sink.clone();
            let cancel = self.cancel.clone();
            self.handle.spawn(async move {
                loop {
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        changed = state_rx.changed() => if changed.is_err() { break },
                    }
                    let state = state_rx.borrow_and_update().clone();
                    set_status(&status, &sink, |st| {
                        if st.active == Some(id) {
                            st.broker = state.clone();
                        }
                        if let Some(c) = st.connections.iter_mut().find(|c| c.id == id) {
                            c.state = state;
                        }
                    });
                }
            });
        }
        let msg_sink = self.sink.clone();
        let suback_sink = self.sink.clone();
        let acks = self.acks.clone();
        WorkerSinks {
            state: state_tx,
            on_message: Box::new(move |m| {
                acks.observe(&m.topic, &m.payload);
                msg_sink.emit(Event::Message(id, m))
            }),
            on_suback: Box::new(move |filter, refused| {
                if let Some(filter) = filter {
                    suback_sink.emit(Event::SubAck {
                        conn: id,
                        filter,
                        refused,
                    });
                }
            }),
        }
    }
}

/// Copies each change of the embedded broker's health into the status the UI reads.
async fn forward_broker_health(
    mut health: watch::Receiver<crate::sandbox::broker::BrokerHealth>,
    status: watch::Sender<BackendStatus>,
    sink: EventSink,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            changed = health.changed() => {
                if changed.is_err() {
                    return;
                }
                let h = health.borrow_and_update().clone();
                set_status(&status, &sink, |s| s.broker_health = Some(h));
            }
        }
    }
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
        handle.send(Command::RelayStop).unwrap();
        let answer = |handle: &BackendHandle| {
            let (mut req, reply) = Requested::<Vec<String>, String>::new(None);
            let sent = handle.send(Command::SimulateStart { count: 1, reply });
            assert!(sent.is_err());
            match req.poll() {
                Some(Err(e)) => e.clone(),
                other => panic!("{other:?}"),
            }
        };
        assert!(answer(&handle).contains("busy"));
        drop(rx);
        assert!(answer(&handle).contains("stopped"));
    }
}
