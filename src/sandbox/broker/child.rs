//! `mpbridge broker` (hidden): the embedded broker's own process, started and watched by the
//! console or `mpbridge sandbox` (see `EmbeddedBroker`).
//!
//! Protocol with the parent, all lines of UTF-8:
//! - stdout: exactly one JSON line once the listeners are bound: `{"tcp":…, "ws":…, "store":…}`.
//! - stderr: log lines, `LEVEL target: message`.
//! - stdin: `stop` asks for a clean stop; end of file (the parent is gone, however it ended)
//!   stops too, so a broker never outlives its console.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use serde::{Deserialize, Serialize};

use super::store::StoreState;

/// The arguments the parent passes.
#[derive(Debug, Clone, clap::Args)]
pub struct BrokerArgs {
    /// MQTT over TCP on this address (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub tcp: SocketAddr,
    /// MQTT over plain WebSocket on this address.
    #[arg(long)]
    pub ws: Option<SocketAddr>,
    /// Keep retained messages and persistent sessions in this folder (default: in memory).
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// Move the store aside before opening it (it made the broker stop twice).
    #[arg(long)]
    pub set_aside_store: bool,
    /// Largest MQTT packet accepted (default: MQTT's own limit, as mosquitto).
    #[arg(long, default_value_t = MAX_PACKET_BYTES)]
    pub max_packet: u32,
}

/// The one line printed once the broker listens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    pub tcp: SocketAddr,
    pub ws: Option<SocketAddr>,
    pub store: StoreState,
}

/// The largest MQTT packet: the protocol's own limit (a 4-byte remaining length), which is
/// also mosquitto's default (`max_packet_size 0`, no limit).
pub const MAX_PACKET_BYTES: u32 = 268_435_455;

/// How long a clean stop waits before the process exits: sled writes its log every 500 ms.
#[cfg(feature = "embedded-broker")]
const FLUSH_GRACE: std::time::Duration = std::time::Duration::from_millis(700);

#[cfg(not(feature = "embedded-broker"))]
pub fn main(_args: BrokerArgs) -> ExitCode {
    eprintln!("ERROR mpbridge::broker: {}", super::BrokerError::Disabled);
    ExitCode::from(2)
}

#[cfg(feature = "embedded-broker")]
pub fn main(args: BrokerArgs) -> ExitCode {
    use super::server::{self, ServeOptions};
    use super::store;
    init_logging();
    // One line per panic, which the console quotes when the broker stops.
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("unnamed");
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("ERROR mpbridge::broker: thread '{name}' panicked at {at}: {msg}");
    }));
    let store = match &args.store {
        Some(dir) => store::prepare(dir, args.set_aside_store),
        None => StoreState::Memory { in_use: None },
    };
    let persistent_dir = match &store {
        StoreState::Persistent { path } | StoreState::SetAside { path, .. } => Some(path.clone()),
        StoreState::Memory { .. } => None,
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("mpbridge-broker")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ERROR mpbridge::broker: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let opts = ServeOptions {
        tcp: args.tcp,
        ws: args.ws,
        store: persistent_dir,
        max_packet_bytes: args.max_packet,
    };
    // A panic that reaches here (not one inside a connection's task, which only ends that
    // connection) ends the process at once: the runtime's drop would wait on rmqtt's blocking
    // storage tasks forever, and the console restarts a broker that exits.
    let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(async move {
            let serve = server::serve(opts, move |bound| {
                let ready = Ready {
                    tcp: bound.tcp,
                    ws: bound.ws,
                    store,
                };
                let line = serde_json::to_string(&ready).unwrap_or_default();
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                // The parent reads this line; if it cannot, it is gone and stdin says so next.
                writeln!(out, "{line}").ok();
                out.flush().ok();
            });
            tokio::select! {
                r = serve => {
                    let why = match r {
                        Ok(()) => "the listeners stopped".to_owned(),
                        Err(e) => format!("{e:#}"),
                    };
                    eprintln!("ERROR mpbridge::broker: the broker could not run: {why}");
                    1
                }
                () = lifeline() => {
                    tokio::time::sleep(FLUSH_GRACE).await;
                    0
                }
            }
        })
    }))
    .unwrap_or(101);
    // Exit without dropping the runtime: rmqtt's storage keeps blocking tasks that a runtime
    // drop would wait for.
    std::process::exit(code)
}

/// Returns when the parent asks for a stop or goes away.
#[cfg(feature = "embedded-broker")]
async fn lifeline() {
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        match lines.next_line().await {
            Ok(Some(line)) if line.trim() == "stop" => return,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return,
        }
    }
}

#[cfg(feature = "embedded-broker")]
/// Plain lines on stderr for the parent to read. rmqtt is held at `warn` whatever the console's
/// level: its debug output prints whole CONNECT packets, passwords included.
fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::default()
        .add_directive(tracing::Level::INFO.into())
        .add_directive("rmqtt=warn".parse().unwrap_or_default())
        .add_directive("rmqtt_net=warn".parse().unwrap_or_default())
        .add_directive("rmqtt_retainer=warn".parse().unwrap_or_default())
        .add_directive("rmqtt_session_storage=warn".parse().unwrap_or_default())
        .add_directive("rmqtt_storage=warn".parse().unwrap_or_default())
        .add_directive("sled=warn".parse().unwrap_or_default());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .without_time()
        .try_init()
        .ok();
}
