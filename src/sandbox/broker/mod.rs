//! The embedded MQTT broker: rmqtt (MQTT 3.1.1 and 5, patched in `vendor/`) in a process of
//! its own (`mpbridge broker`), watched by a supervisor in the console.
//!
//! Why a process: whatever a client does to the broker, and whatever goes wrong inside it, the
//! console, its relay and its other connections carry on; a broker that dies or stops routing
//! is replaced within seconds on the same ports, with its retained messages and sessions
//! (kept on disk in the data folder). The supervisor checks it with a real MQTT round trip
//! every two seconds and says in one sentence what happened (`BrokerHealth::notice`).
//!
//! ```text
//!  console / `mpbridge sandbox`                     `mpbridge broker` process
//!  EmbeddedBroker ── spawn, stdin lifeline ──▶  child::main → server::serve (rmqtt)
//!     supervisor  ◀── one JSON line (ports, store) ── stdout
//!                 ◀── log lines ───────────────── stderr (→ tracing, target mpbridge::broker)
//!                 ── MQTT probe every 2 s ──────▶ tcp listener
//! ```

pub mod child;
#[cfg(feature = "embedded-broker")]
pub mod extend;
#[cfg(feature = "embedded-broker")]
pub mod fuzz;
pub mod probe;
#[cfg(feature = "embedded-broker")]
pub mod server;
pub mod store;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

pub use child::Ready;
pub use store::StoreState;

use crate::verdict::L10n;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(
        "the embedded broker runs as `mpbridge broker`, and no mpbridge program was found beside {0}"
    )]
    NoProgram(String),
    #[error("the embedded broker could not start: {0}")]
    Start(String),
    #[error("this build has no embedded broker (cargo feature `embedded-broker` is off)")]
    Disabled,
}

/// How to run the broker.
#[derive(Debug, Clone, Default)]
pub struct BrokerOptions {
    /// The store folder (retained messages, persistent sessions); `None` keeps them in memory.
    pub store: Option<PathBuf>,
    /// Also serve MQTT over plain WebSocket (`ws://127.0.0.1:PORT/mqtt`).
    pub ws: bool,
    /// The mpbridge program to run; `None` finds it (see [`program`]).
    pub program: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BrokerState {
    #[default]
    Starting,
    Running,
    /// Replacing a broker that died or stopped answering.
    Restarting,
    /// It kept dying; the supervisor gave up.
    Failed,
    Stopped,
}

/// What the console shows about the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerHealth {
    pub state: BrokerState,
    /// Restarts after a failure, since the start.
    pub restarts: u32,
    /// One sentence about the last thing that went wrong (the store set aside, a restart);
    /// `None` while all is well.
    pub notice: Option<L10n>,
    pub store: StoreState,
    /// The broker process, for the benchmarks' CPU and memory figures.
    pub pid: Option<u32>,
}

impl Default for BrokerHealth {
    fn default() -> Self {
        BrokerHealth {
            state: BrokerState::Starting,
            restarts: 0,
            notice: None,
            store: StoreState::Memory { in_use: None },
            pid: None,
        }
    }
}

/// Probe period, and how many failed probes in a row count as a dead broker.
const PROBE_EVERY: Duration = Duration::from_secs(2);
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
const PROBE_FAILURES: u32 = 2;
/// More restarts than this within `CRASH_WINDOW` and the supervisor stops trying.
const CRASH_LIMIT: usize = 5;
const CRASH_WINDOW: Duration = Duration::from_secs(60);
/// How long a broker process may take to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// The running embedded broker. Dropping it kills the broker process; [`EmbeddedBroker::stop`]
/// stops it cleanly first.
pub struct EmbeddedBroker {
    tcp: SocketAddr,
    ws: Option<SocketAddr>,
    health: watch::Receiver<BrokerHealth>,
    orders: mpsc::Sender<Order>,
    cancel: CancellationToken,
    done: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

#[derive(Debug)]
enum Order {
    /// Kill the process as a crash would (tests of the supervisor).
    Kill,
}

impl EmbeddedBroker {
    /// Starts the broker on free loopback ports and returns once it answers MQTT.
    pub async fn start(opts: BrokerOptions) -> Result<Self, BrokerError> {
        if !cfg!(feature = "embedded-broker") {
            return Err(BrokerError::Disabled);
        }
        let program = match &opts.program {
            Some(p) => p.clone(),
            None => program()?,
        };
        let mut spec = Spec {
            program,
            store: opts.store.clone(),
            tcp: SocketAddr::from(([127, 0, 0, 1], 0)),
            ws: opts.ws.then(|| SocketAddr::from(([127, 0, 0, 1], 0))),
            set_aside: false,
        };
        // A store that kills the broker while it opens is set aside on the second try.
        let mut first = spec.launch().await;
        if first.is_err() && spec.store.is_some() {
            tracing::warn!(
                "the embedded broker did not start ({}); trying again with its store set aside",
                first.as_ref().err().map(String::as_str).unwrap_or_default()
            );
            spec.set_aside = true;
            first = spec.launch().await;
            spec.set_aside = false;
        }
        let running = first.map_err(BrokerError::Start)?;
        spec.tcp = running.ready.tcp;
        spec.ws = running.ready.ws;
        let tcp = running.ready.tcp;
        let ws = running.ready.ws;
        probe::round_trip(tcp, PROBE_TIMEOUT)
            .await
            .map_err(|e| BrokerError::Start(format!("it does not answer MQTT on {tcp}: {e}")))?;
        tracing::info!(
            "embedded broker listening on mqtt://{tcp}{}",
            ws.map(|a| format!(" and ws://{a}/mqtt"))
                .unwrap_or_default()
        );
        let health = BrokerHealth {
            state: BrokerState::Running,
            restarts: 0,
            notice: store_notice(&running.ready.store),
            store: running.ready.store.clone(),
            pid: running.child.id(),
        };
        let (health_tx, health_rx) = watch::channel(health);
        let (orders_tx, orders_rx) = mpsc::channel(4);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(supervise(
            spec,
            running,
            health_tx,
            orders_rx,
            cancel.clone(),
        ));
        Ok(EmbeddedBroker {
            tcp,
            ws,
            health: health_rx,
            orders: orders_tx,
            cancel,
            done: Mutex::new(Some(task)),
        })
    }

    /// MQTT over TCP: `127.0.0.1:PORT`.
    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp
    }

    /// MQTT over plain WebSocket, when asked for.
    pub fn ws_addr(&self) -> Option<SocketAddr> {
        self.ws
    }

    pub fn health(&self) -> watch::Receiver<BrokerHealth> {
        self.health.clone()
    }

    /// Kills the broker process the way a crash would; the supervisor replaces it. For tests
    /// and demonstrations of the recovery, never used by the console itself.
    pub async fn kill_for_test(&self) {
        self.orders.send(Order::Kill).await.ok();
    }

    /// Stops the broker cleanly (its store written out). Idempotent.
    pub async fn stop(&self) {
        self.cancel.cancel();
        let task = self.done.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            task.await.ok();
        }
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        // The supervisor owns the child with kill_on_drop; cancelling ends it (and the child
        // also exits when its stdin closes).
        self.cancel.cancel();
    }
}

/// Set by the `mpbridge` binary's `main` (through `cli::main`): this process is
/// mpbridge itself, whatever its file is called (`mpbridge-0.1.0-windows-x86_64.exe`, or
/// `mpbridge (1).exe` after a second download), so it can run `mpbridge broker` as itself.
static THIS_IS_MPBRIDGE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Called once by `mpbridge`'s entry point; test executables never call it.
pub fn this_program_is_mpbridge() {
    THIS_IS_MPBRIDGE.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// The program that runs `mpbridge broker`: `$MPBRIDGE_EXE`, else this program when it is
/// mpbridge, else an `mpbridge` next to this program or one folder up (where cargo puts the
/// binary for its test executables in `target/<profile>/deps/`).
pub fn program() -> Result<PathBuf, BrokerError> {
    if let Some(p) = std::env::var_os("MPBRIDGE_EXE") {
        return Ok(PathBuf::from(p));
    }
    let me = std::env::current_exe().map_err(|e| BrokerError::NoProgram(e.to_string()))?;
    let name = format!("mpbridge{}", std::env::consts::EXE_SUFFIX);
    if THIS_IS_MPBRIDGE.load(std::sync::atomic::Ordering::Relaxed)
        || me.file_name().is_some_and(|n| n == name.as_str())
    {
        return Ok(me);
    }
    let dir = me.parent().unwrap_or(Path::new("."));
    [dir.join(&name), dir.join("..").join(&name)]
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| BrokerError::NoProgram(dir.display().to_string()))
}

/// Everything needed to (re)start the broker process.
struct Spec {
    program: PathBuf,
    store: Option<PathBuf>,
    tcp: SocketAddr,
    ws: Option<SocketAddr>,
    set_aside: bool,
}

/// A broker process that printed its ready line.
struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
    ready: Ready,
    /// Its last log lines, to explain an unexpected exit.
    tail: Arc<Mutex<VecDeque<String>>>,
}

impl Spec {
    async fn launch(&self) -> Result<Running, String> {
        let mut cmd = Command::new(&self.program);
        cmd.arg("broker").arg("--tcp").arg(self.tcp.to_string());
        if let Some(ws) = self.ws {
            cmd.arg("--ws").arg(ws.to_string());
        }
        if let Some(dir) = &self.store {
            cmd.arg("--store").arg(dir);
        }
        if self.set_aside {
            cmd.arg("--set-aside-store");
        }
        // rmqtt reads plugin settings from `rmqtt_plugin_*` variables: none may leak in.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy()
                .to_ascii_lowercase()
                .starts_with("rmqtt")
            {
                cmd.env_remove(k);
            }
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        #[cfg(windows)]
        {
            // No console window for the broker.
            cmd.creation_flags(0x0800_0000);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.program.display()))?;
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(err) = child.stderr.take() {
            tokio::spawn(forward_log(err, tail.clone()));
        }
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| "the broker process has no stdout".to_owned())?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(READY_TIMEOUT, lines.next_line()).await;
        let ready = match line {
            Ok(Ok(Some(line))) => serde_json::from_str::<Ready>(&line)
                .map_err(|e| format!("unreadable ready line {line:?}: {e}"))?,
            Ok(Ok(None)) | Ok(Err(_)) => {
                let status = child.wait().await.ok();
                return Err(exit_words(status, &tail));
            }
            Err(_) => {
                child.kill().await.ok();
                return Err(format!(
                    "it was not ready within {} s",
                    READY_TIMEOUT.as_secs()
                ));
            }
        };
        let stdin = child.stdin.take();
        Ok(Running {
            child,
            stdin,
            ready,
            tail,
        })
    }
}

impl Running {
    /// Asks for a clean stop; kills after 3 s.
    async fn stop(mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            stdin.write_all(b"stop\n").await.ok();
            stdin.flush().await.ok();
        }
        if tokio::time::timeout(Duration::from_secs(3), self.child.wait())
            .await
            .is_err()
        {
            self.child.kill().await.ok();
        }
    }
}

/// Re-emits the broker's log lines (`LEVEL target: message`) as our own events and keeps the
/// last few.
async fn forward_log(stderr: tokio::process::ChildStderr, tail: Arc<Mutex<VecDeque<String>>>) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let trimmed = line.trim_start();
        let (level, rest) = trimmed.split_once(' ').unwrap_or(("", trimmed));
        match level {
            "ERROR" => tracing::error!(target: "mpbridge::broker", "{rest}"),
            "WARN" => tracing::warn!(target: "mpbridge::broker", "{rest}"),
            "INFO" => tracing::info!(target: "mpbridge::broker", "{rest}"),
            "DEBUG" | "TRACE" => tracing::debug!(target: "mpbridge::broker", "{rest}"),
            // A panic message or anything else printed raw.
            _ => tracing::error!(target: "mpbridge::broker", "{trimmed}"),
        }
        if let Ok(mut t) = tail.lock() {
            if t.len() >= 20 {
                t.pop_front();
            }
            t.push_back(line);
        }
    }
}

/// "exited with status 101 (thread 'x' panicked at …)".
fn exit_words(
    status: Option<std::process::ExitStatus>,
    tail: &Arc<Mutex<VecDeque<String>>>,
) -> String {
    let status = match status {
        Some(s) => match s.code() {
            Some(c) => format!("exited with status {c}"),
            None => "was killed".to_owned(),
        },
        None => "ended".to_owned(),
    };
    let last = tail.lock().ok().and_then(|t| {
        t.iter()
            .rev()
            .find(|l| l.contains("panicked") || l.trim_start().starts_with("ERROR"))
            .cloned()
    });
    match last {
        Some(l) => {
            let l: String = l.trim().chars().take(160).collect();
            format!("{status}: {l}")
        }
        None => status,
    }
}

fn store_notice(store: &StoreState) -> Option<L10n> {
    match store {
        StoreState::Persistent { .. } => None,
        StoreState::SetAside { moved_to, why, .. } => Some(L10n::new(
            format!(
                "The broker's store could not be read ({why}); it was set aside as {} and the broker started empty.",
                moved_to.display()
            ),
            format!(
                "代理的存储无法读取（“{why}”），已移到 {}，代理以空存储启动。",
                moved_to.display()
            ),
        )),
        StoreState::Memory { in_use: Some(dir) } => Some(L10n::new(
            format!(
                "Another mpbridge is using the broker's store in {}; this broker keeps retained messages and sessions in memory until it stops.",
                dir.display()
            ),
            format!(
                "另一个 mpbridge 正在使用 {} 中的代理存储；本代理的保留消息和会话只保存在内存中，停止后不保留。",
                dir.display()
            ),
        )),
        StoreState::Memory { in_use: None } => None,
    }
}

/// Watches the broker process and replaces it when it dies or stops answering.
async fn supervise(
    spec: Spec,
    mut running: Running,
    health: watch::Sender<BrokerHealth>,
    mut orders: mpsc::Receiver<Order>,
    cancel: CancellationToken,
) {
    let mut failures = 0u32;
    let mut crashes: VecDeque<Instant> = VecDeque::new();
    let mut tick = tokio::time::interval(PROBE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        let why = tokio::select! {
            () = cancel.cancelled() => {
                running.stop().await;
                health.send_modify(|h| { h.state = BrokerState::Stopped; h.pid = None; });
                return;
            }
            status = running.child.wait() => exit_words(status.ok(), &running.tail),
            Some(Order::Kill) = orders.recv() => {
                running.child.start_kill().ok();
                continue;
            }
            _ = tick.tick() => {
                match probe::round_trip(running.ready.tcp, PROBE_TIMEOUT).await {
                    Ok(()) => { failures = 0; continue; }
                    Err(e) => {
                        failures += 1;
                        tracing::warn!("embedded broker health probe failed ({failures}/{PROBE_FAILURES}): {e}");
                        if failures < PROBE_FAILURES { continue; }
                        running.child.kill().await.ok();
                        format!("stopped answering MQTT ({e})")
                    }
                }
            }
        };
        failures = 0;
        let now = Instant::now();
        crashes.push_back(now);
        while crashes
            .front()
            .is_some_and(|t| now.duration_since(*t) > CRASH_WINDOW)
        {
            crashes.pop_front();
        }
        tracing::error!("the embedded broker {why}; restarting it");
        health.send_modify(|h| {
            h.state = BrokerState::Restarting;
            h.pid = None;
        });
        if crashes.len() > CRASH_LIMIT {
            fail(&health, &why, crashes.len());
            return;
        }
        let started = Instant::now();
        match relaunch(&spec, &cancel).await {
            Some(next) => {
                running = next;
                let secs = started.elapsed().as_secs_f64();
                let kept = matches!(running.ready.store, StoreState::Persistent { .. });
                let at = chrono::Local::now().format("%H:%M:%S");
                let notice = if kept {
                    L10n::new(
                        format!(
                            "The embedded broker {why}; it was restarted at {at} in {secs:.1} s with its retained messages and sessions."
                        ),
                        format!(
                            "内置代理{}；已于 {at} 在 {secs:.1} 秒内重启，保留消息和会话都在。",
                            why_zh(&why)
                        ),
                    )
                } else {
                    L10n::new(
                        format!(
                            "The embedded broker {why}; it was restarted at {at} in {secs:.1} s (it keeps its state in memory, so retained messages and sessions were lost)."
                        ),
                        format!(
                            "内置代理{}；已于 {at} 在 {secs:.1} 秒内重启（状态只在内存中，保留消息和会话已丢失）。",
                            why_zh(&why)
                        ),
                    )
                };
                tracing::warn!("{}", notice.en);
                health.send_modify(|h| {
                    h.state = BrokerState::Running;
                    h.restarts += 1;
                    h.store = running.ready.store.clone();
                    h.notice = Some(notice);
                    h.pid = running.child.id();
                });
            }
            None if cancel.is_cancelled() => {
                health.send_modify(|h| h.state = BrokerState::Stopped);
                return;
            }
            None => {
                fail(&health, &why, crashes.len());
                return;
            }
        }
    }
}

/// Starts the broker again on the same ports: a few tries while the old sockets close.
async fn relaunch(spec: &Spec, cancel: &CancellationToken) -> Option<Running> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if cancel.is_cancelled() {
            return None;
        }
        match spec.launch().await {
            Ok(r) => {
                if probe::round_trip(r.ready.tcp, PROBE_TIMEOUT).await.is_ok() {
                    return Some(r);
                }
                r.stop().await;
            }
            Err(e) => tracing::warn!("the embedded broker did not come back yet: {e}"),
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn fail(health: &watch::Sender<BrokerHealth>, why: &str, crashes: usize) {
    let notice = L10n::new(
        format!(
            "The embedded broker {why} and could not be brought back ({crashes} stops within a minute); restart the console."
        ),
        format!(
            "内置代理{}，无法恢复（一分钟内停止 {crashes} 次）；请重启控制台。",
            why_zh(why)
        ),
    );
    tracing::error!("{}", notice.en);
    health.send_modify(|h| {
        h.state = BrokerState::Failed;
        h.notice = Some(notice);
        h.pid = None;
    });
}

/// The Chinese for the supervisor's English "why" phrases (the detail stays as the broker
/// printed it).
fn why_zh(why: &str) -> String {
    if let Some(rest) = why.strip_prefix("stopped answering MQTT") {
        format!("不再响应 MQTT{rest}")
    } else if let Some(rest) = why.strip_prefix("was killed") {
        format!("被终止{rest}")
    } else if let Some(rest) = why.strip_prefix("exited with status ") {
        format!("意外退出（状态 {rest}）")
    } else {
        format!("意外停止（“{why}”）")
    }
}
