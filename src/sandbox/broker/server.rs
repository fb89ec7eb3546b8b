//! The broker itself: rmqtt configured to behave as mosquitto does by default, on a TCP and a
//! plain WebSocket listener. This runs inside the broker process (`mpbridge broker`, see
//! `child.rs`); nothing here knows about the console.

use std::net::SocketAddr;
use std::num::NonZeroU16;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rmqtt::context::ServerContext;
use rmqtt::net::Builder;
use rmqtt::server::MqttServer;

use super::extend::{RetainedStore, RoundRobin};

/// What the broker listens on and keeps.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub tcp: SocketAddr,
    /// A plain WebSocket listener (any path, `mqtt` / `mqttv3.1` subprotocols), like EMQX's
    /// 8083 and mosquitto's `protocol websockets`.
    pub ws: Option<SocketAddr>,
    /// Where retained messages and persistent sessions live; `None` keeps them in memory.
    pub store: Option<PathBuf>,
    pub max_packet_bytes: u32,
}

/// Where the broker ended up listening.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    pub tcp: SocketAddr,
    pub ws: Option<SocketAddr>,
}

/// Listener settings, the same for TCP and WebSocket. Each departure from rmqtt's defaults is
/// mosquitto 2's default behaviour (the reference the conformance suite holds us to).
fn listener(name: &str, addr: SocketAddr, max_packet_bytes: u32) -> Builder {
    Builder::new()
        .name(name)
        .laddr(addr)
        // A restarted broker takes its ports back even with connections in TIME_WAIT. (On
        // Windows SO_REUSEADDR would let another program steal a bound port: left off there.)
        .reuseaddr(Some(cfg!(unix)))
        .nodelay(true)
        .allow_anonymous(true)
        .max_connections(100_000)
        // CONNECTs being handled at once; more wait their turn (rmqtt's default). A larger
        // pool costs memory on every connection (rmqtt's handshake executor).
        .max_handshaking_limit(1_000)
        .max_packet_size(max_packet_bytes)
        // Keep alive 0 turns keep-alive off (MQTT 3.1.1 and 5 §3.1.2.10); others are held to
        // 1.5× by the session (patched rmqtt).
        .allow_zero_keepalive(true)
        .min_keepalive(0)
        .max_keepalive(u16::MAX)
        .max_inflight(NonZeroU16::new(20).unwrap_or(NonZeroU16::MIN))
        .max_mqueue_len(1000)
        // mosquitto keeps persistent sessions and queued messages until the client returns
        // (no `persistent_client_expiration`, no expiry on messages that carry none). MQTT 5's
        // "never" is u32::MAX seconds.
        .session_expiry_interval(Duration::from_secs(u64::from(u32::MAX)))
        .max_session_expiry_interval(Duration::ZERO)
        .message_expiry_interval(Duration::ZERO)
        // No resending while connected: MQTT 3.1.1 §4.4 and 5 §4.4 resend only on reconnect.
        .message_retry_interval(Duration::ZERO)
        .max_topic_aliases(10)
        .max_clientid_len(65_535)
        .handshake_timeout(Duration::from_secs(20))
        // A client that takes nothing for 30 s while the broker has bytes for it is dropped,
        // so a slow reader never holds up the others.
        .send_timeout(Duration::from_secs(30))
}

/// Builds the broker, binds its listeners, calls `ready` with the bound addresses, then serves
/// until the future is dropped.
pub async fn serve(opts: ServeOptions, ready: impl FnOnce(Bound)) -> anyhow::Result<()> {
    let mut builder = ServerContext::new()
        // Never refuse clients because the machine is busy (rmqtt's default samples CPU load).
        .busy_check_enable(false)
        .mqtt_max_sessions(0);
    if let Some(dir) = &opts.store {
        builder = builder.plugins_config_map_add("rmqtt-session-storage", session_config(dir)?);
    }
    let scx = builder.build().await;
    let retained =
        RetainedStore::open(opts.store.as_ref().map(|d| d.join("retained")).as_deref()).await?;
    *scx.extends.retain_mut().await = Box::new(retained.clone());
    *scx.extends.shared_subscription_mut().await = Box::new(RoundRobin::default());
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(60)).await;
            retained.sweep().await;
        }
    });
    if opts.store.is_some() {
        rmqtt_session_storage::register(&scx, true, true).await?;
    }
    let tcp = listener("tcp", opts.tcp, opts.max_packet_bytes)
        .bind()?
        .tcp()?;
    let mut bound = Bound {
        tcp: tcp.local_addr()?,
        ws: None,
    };
    // Listener ids name the listeners in rmqtt's sessions (persisted): fixed, not the ports.
    let mut server = MqttServer::new(scx).listener_by_id(tcp, 1);
    if let Some(addr) = opts.ws {
        let ws = listener("ws", addr, opts.max_packet_bytes).bind()?.ws()?;
        bound.ws = Some(ws.local_addr()?);
        server = server.listener_by_id(ws, 2);
    }
    ready(bound);
    server.build().run().await?;
    Ok(())
}

/// TOML strings for rmqtt's plugin configuration: paths must be valid UTF-8 and are quoted.
fn toml_path(p: &Path) -> anyhow::Result<String> {
    let s = p.to_str().ok_or_else(|| {
        anyhow::anyhow!(
            "the broker's store path is not valid UTF-8: {}",
            p.display()
        )
    })?;
    Ok(toml::Value::String(s.to_owned()).to_string())
}

fn session_config(dir: &Path) -> anyhow::Result<String> {
    Ok(format!(
        "storage.type = \"sled\"\nstorage.sled.path = {}\nstorage.sled.cache_capacity = \"8M\"\n",
        toml_path(&dir.join("sessions"))?
    ))
}
