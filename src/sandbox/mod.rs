//! The embedded default: with no configuration the console (and `mpbridge sandbox`) starts a
//! broker on loopback, a dev CA, the WSS relay in front of the broker (`wss://localhost:PORT/mqtt`
//! with the dev certificate) and a simulated ESP8266, so a newcomer sees live traffic at
//! once and offline.

pub mod broker;
pub mod devca;
pub mod miniprogram;

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::config::Paths;
use crate::devices::sim::{self, SimOptions};
use crate::relay::{Relay, RelayConfig, Upstream};

/// The id of the sandbox's simulated device.
pub const DEMO_DEVICE: &str = "esp8266-demo";

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(transparent)]
    Broker(#[from] broker::BrokerError),
    #[error(transparent)]
    DevCa(#[from] devca::DevCaError),
    #[error("the sandbox relay could not start: {0}")]
    Relay(String),
}

/// What a running sandbox offers; `mpbridge sandbox --json` prints this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SandboxInfo {
    /// `mqtt://127.0.0.1:PORT`
    pub broker: String,
    #[serde(skip)]
    pub broker_addr: SocketAddr,
    /// `ws://127.0.0.1:PORT/mqtt`: the broker's plain WebSocket listener (EMQX's 8083 role),
    /// for the relay's `ws://` upstream and browser clients.
    pub broker_ws: String,
    pub devices: Vec<String>,
    /// `wss://localhost:PORT/mqtt`: the relay in front of the broker, with the dev certificate.
    pub relay: String,
    #[serde(skip)]
    pub relay_addr: SocketAddr,
    /// The dev CA a client trusts to talk to the sandbox over TLS.
    pub ca: PathBuf,
}

/// A running sandbox. Dropping it stops the simulated device and the broker process.
pub struct Sandbox {
    pub info: SandboxInfo,
    pub relay: Relay,
    pub broker: broker::EmbeddedBroker,
    cancel: CancellationToken,
}

impl Sandbox {
    /// Starts the sandbox. Blocking parts (port probe, key generation) run on the blocking
    /// pool, so this may be awaited from any task.
    pub async fn start(paths: &Paths, parent: &CancellationToken) -> Result<Self, SandboxError> {
        let ca_dir = paths.dev_ca_dir();
        let ca = tokio::task::spawn_blocking(move || devca::ensure(&ca_dir))
            .await
            .map_err(|e| broker::BrokerError::Start(e.to_string()))??;
        let broker = broker::EmbeddedBroker::start(broker::BrokerOptions {
            store: Some(paths.broker_dir()),
            ws: true,
            program: None,
        })
        .await?;
        let addr = broker.tcp_addr();
        let ws_addr = broker.ws_addr().unwrap_or(addr);
        let relay_cfg = RelayConfig::simple(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            &ca.leaf_chain,
            &ca.leaf_key,
            "/mqtt",
            Upstream::Tcp {
                host: addr.ip().to_string(),
                port: addr.port(),
            },
        )
        .map_err(|e| SandboxError::Relay(e.to_string()))?;
        let handle = tokio::runtime::Handle::current();
        let relay = Relay::start(relay_cfg, &handle)
            .await
            .map_err(|e| SandboxError::Relay(e.to_string()))?;
        let relay_addr = relay.addr();
        let cancel = parent.child_token();
        sim::spawn(
            &tokio::runtime::Handle::current(),
            SimOptions::demo(DEMO_DEVICE, addr),
            cancel.clone(),
        );
        let tls = crate::relay::tls::client_config_with_roots(&[&ca.ca_cert])
            .map_err(|e| SandboxError::Relay(e.to_string()))?;
        miniprogram::spawn(
            &handle,
            miniprogram::MiniProgramOptions {
                url: format!("wss://localhost:{}/mqtt", relay_addr.port()),
                port: relay_addr.port(),
                tls: std::sync::Arc::new(tls),
                device: DEMO_DEVICE.to_owned(),
                every: std::time::Duration::from_secs(20),
            },
            cancel.clone(),
        );
        Ok(Self {
            info: SandboxInfo {
                broker: format!("mqtt://{addr}"),
                broker_addr: addr,
                broker_ws: format!("ws://{ws_addr}/mqtt"),
                devices: vec![DEMO_DEVICE.to_owned()],
                relay: format!("wss://localhost:{}/mqtt", relay_addr.port()),
                relay_addr,
                ca: ca.ca_cert,
            },
            relay,
            broker,
            cancel,
        })
    }

    /// Stops the device, drains the relay, then stops the broker (its store written out).
    pub async fn stop(&self) {
        self.cancel.cancel();
        self.relay.stop().await;
        self.broker.stop().await;
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
