//! Starting the embedded sandbox (broker, relay with the dev certificate, simulated device)
//! for the console, and mirroring the broker's health into the status.

use std::sync::Arc;

use tokio::sync::watch;

use super::SandboxState;
use super::connections::Target;
use super::shared::Shared;
use crate::sandbox::Sandbox;
use crate::sandbox::broker::BrokerHealth;

/// Starts the sandbox; `None` (and the failure in the status) when it cannot run. The target
/// is where the console's sandbox connection goes: through its relay, so the Relay panel
/// shows a live connection from the first second, or plain TCP when TLS setup fails.
pub(super) async fn start(shared: &Shared) -> Option<(Sandbox, Target)> {
    shared.set_status(|s| s.sandbox = SandboxState::Starting);
    let sb = match Sandbox::start(&shared.paths, &shared.cancel).await {
        Ok(sb) => sb,
        Err(e) => {
            tracing::error!("sandbox: {e}");
            shared.set_status(|s| s.sandbox = SandboxState::Failed(e.to_string()));
            return None;
        }
    };
    let info = sb.info.clone();
    tracing::info!(
        "sandbox running: broker {}, relay {}",
        info.broker,
        info.relay
    );
    let target = match crate::relay::tls::client_config_with_roots(&[&info.ca]) {
        Ok(tls) => Target::Wss {
            url: info.relay.clone(),
            port: info.relay_addr.port(),
            tls: Arc::new(tls),
        },
        Err(e) => {
            tracing::warn!("console falls back to plain MQTT: {e}");
            Target::Tcp(info.broker_addr)
        }
    };
    let health = sb.broker.health();
    shared.set_status(|s| {
        s.broker_health = Some(health.borrow().clone());
        s.sandbox = SandboxState::Running(info);
    });
    shared.handle.spawn(forward_health(health, shared.clone()));
    Some((sb, target))
}

/// Copies each change of the embedded broker's health into the status the UI reads.
async fn forward_health(mut health: watch::Receiver<BrokerHealth>, shared: Shared) {
    loop {
        tokio::select! {
            () = shared.cancel.cancelled() => return,
            changed = health.changed() => {
                if changed.is_err() {
                    return;
                }
                let h = health.borrow_and_update().clone();
                shared.set_status(|s| s.broker_health = Some(h));
            }
        }
    }
}
