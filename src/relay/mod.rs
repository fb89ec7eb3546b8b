//! The WSS relay: the nginx role. TLS termination, the `/mqtt` upgrade with the `mqtt`
//! subprotocol, upstream to a broker's WebSocket or TCP listener, limits, hot reload,
//! graceful drain, and a record of every connection.
//!
//! Lifecycle phases are published on a `watch` channel: `Starting → Running → Draining →
//! Stopped` (or `Failed`). The accept loop spawns a task per connection first; TLS and the
//! HTTP upgrade run inside that task under the handshake timeout, so a slow client never
//! stalls `accept`. With a setup runtime of its own ([`handoff::Runtimes`]) the accept loop and
//! the set-up run there and each established connection moves to the data loop.

pub mod client_tls;
pub mod config;
pub mod frames;
pub mod handoff;
pub mod handshake;
pub mod inspect;
pub mod nginx;
pub mod session;
pub mod stats;
pub mod tls;
pub mod upstream;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use config::{RelayConfig, RelaySettings, Upstream};
pub use stats::{ConnRecord, RejectKind, Rejection, RelaySnapshot};

/// Where the relay is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RelayPhase {
    #[default]
    Starting,
    Running {
        addr: SocketAddr,
    },
    Draining,
    Stopped,
    Failed(String),
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("reload refused: {0}")]
    Reload(String),
}

/// The configuration in force for new connections, with its per-route state.
pub struct Active {
    pub config: RelayConfig,
    /// Per route path: round robin and passive health of its upstreams.
    pub balancers: HashMap<String, Arc<upstream::Balancer>>,
}

impl Active {
    fn new(config: RelayConfig) -> Self {
        let balancers = config
            .routes
            .iter()
            .map(|r| {
                (
                    r.path.clone(),
                    Arc::new(upstream::Balancer::new(r.upstreams.len())),
                )
            })
            .collect();
        Self { config, balancers }
    }
}

/// Refusals answered with a 503 at once; more are cut right after accept, so a flood at a
/// limit costs bounded work.
const MAX_ANSWERED_REFUSALS: usize = 64;

struct Shared {
    active: RwLock<Arc<Active>>,
    /// Refusals being answered now.
    refusing: Arc<AtomicUsize>,
    ctx: Arc<session::Ctx>,
    stop_accept: CancellationToken,
    phase: watch::Sender<RelayPhase>,
    addr: SocketAddr,
}

/// A running relay. Cloning gives another handle to the same relay.
#[derive(Clone)]
pub struct Relay {
    shared: Arc<Shared>,
}

impl Relay {
    /// Binds the listener and starts accepting on `handle`. The bound address (useful with
    /// port 0) is in [`Relay::addr`].
    pub async fn start(
        config: RelayConfig,
        handle: &tokio::runtime::Handle,
    ) -> Result<Self, RelayError> {
        Self::start_shared(config, handoff::Runtimes::one(handle), false).await
    }

    /// The same on `runtimes` (connection setup on a pool, relaying on one loop, as
    /// `mpbridge relay` runs); with `reuse_port` several processes bind the same address and
    /// the kernel spreads new connections across them (`mpbridge relay --workers N`).
    pub async fn start_shared(
        config: RelayConfig,
        runtimes: handoff::Runtimes,
        reuse_port: bool,
    ) -> Result<Self, RelayError> {
        let (phase, _) = watch::channel(RelayPhase::Starting);
        let listen = config.listen;
        // The listener belongs to the runtime that accepts.
        let listener =
            match &runtimes.setup {
                Some(setup) => setup.spawn(bind(listen, reuse_port)).await.map_err(|e| {
                    RelayError::Bind {
                        addr: listen,
                        source: std::io::Error::other(e),
                    }
                })??,
                None => bind(listen, reuse_port).await?,
            };
        let addr = listener.local_addr().map_err(|source| RelayError::Bind {
            addr: listen,
            source,
        })?;
        let shared = Arc::new(Shared {
            active: RwLock::new(Arc::new(Active::new(config))),
            ctx: Arc::new(session::Ctx {
                registry: Arc::default(),
                drain: CancellationToken::new(),
                data: runtimes.setup.is_some().then(|| runtimes.data.clone()),
            }),
            stop_accept: CancellationToken::new(),
            refusing: Arc::default(),
            phase,
            addr,
        });
        shared.phase.send_replace(RelayPhase::Running { addr });
        tracing::info!("relay listening on {addr}");
        runtimes
            .setup
            .as_ref()
            .unwrap_or(&runtimes.data)
            .spawn(accept_loop(listener, shared.clone()));
        Ok(Self { shared })
    }

    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    pub fn phase(&self) -> watch::Receiver<RelayPhase> {
        self.shared.phase.subscribe()
    }

    pub fn config(&self) -> RelayConfig {
        self.active().config.clone()
    }

    fn active(&self) -> Arc<Active> {
        match self.shared.active.read() {
            Ok(a) => a.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Applies a new configuration to new connections; live ones keep theirs. The listen
    /// address cannot change without a restart.
    pub fn reload(&self, config: RelayConfig) -> Result<(), RelayError> {
        let current = self.active().config.listen;
        if config.listen != current && !(config.listen.port() == 0 && current.port() == 0) {
            return Err(RelayError::Reload(format!(
                "listen.addr changed from {current} to {}; restart the relay to move it",
                config.listen
            )));
        }
        let routes: Vec<_> = config.routes.iter().map(|r| r.path.clone()).collect();
        let next = Arc::new(Active::new(config));
        match self.shared.active.write() {
            Ok(mut a) => *a = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
        tracing::info!(
            "relay configuration reloaded (routes: {})",
            routes.join(", ")
        );
        Ok(())
    }

    pub fn snapshot(&self, history: usize) -> RelaySnapshot {
        self.shared.ctx.registry.snapshot(history)
    }

    pub fn prometheus(&self) -> String {
        self.shared.ctx.registry.prometheus()
    }

    /// Closes one live connection (code 1000, "closed by the operator").
    pub fn close_connection(&self, id: u64) -> bool {
        self.shared.ctx.registry.close(id)
    }

    /// Stops accepting, sends close 1001 to every live connection and waits for them to end,
    /// at most `limits.drain`.
    pub async fn stop(&self) {
        if matches!(
            *self.shared.phase.borrow(),
            RelayPhase::Stopped | RelayPhase::Draining
        ) {
            return;
        }
        self.shared.phase.send_replace(RelayPhase::Draining);
        self.shared.stop_accept.cancel();
        self.shared.ctx.drain.cancel();
        let drain = self.active().config.limits.drain;
        let registry = self.shared.ctx.registry.clone();
        let waited = tokio::time::timeout(drain.max(Duration::from_millis(100)), async {
            while registry.open_count() > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        if waited.is_err() {
            tracing::warn!(
                "drain time ({} s) over with {} connections still open; dropping them",
                drain.as_secs(),
                registry.open_count()
            );
        }
        self.shared.phase.send_replace(RelayPhase::Stopped);
        tracing::info!("relay stopped");
    }
}

/// Connections the kernel queues for `accept`. The standard library's (and tokio's) 128 is
/// less than a crowd of reconnecting Mini Programs opens at once: past it the kernel drops their
/// SYNs and each waits a second to retry. nginx uses 511; the kernel caps this at somaxconn.
const LISTEN_BACKLOG: u32 = 4096;

async fn bind(listen: SocketAddr, reuse_port: bool) -> Result<TcpListener, RelayError> {
    let bind_error = |source| RelayError::Bind {
        addr: listen,
        source,
    };
    let socket = if listen.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(bind_error)?;
    #[cfg(unix)]
    socket.set_reuseaddr(true).map_err(bind_error)?;
    #[cfg(unix)]
    if reuse_port {
        socket.set_reuseport(true).map_err(bind_error)?;
    }
    #[cfg(not(unix))]
    let _ = reuse_port;
    socket.bind(listen).map_err(bind_error)?;
    socket.listen(LISTEN_BACKLOG).map_err(bind_error)
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let registry = shared.ctx.registry.clone();
    loop {
        let accepted = tokio::select! {
            _ = shared.stop_accept.cancelled() => break,
            a = listener.accept() => a,
        };
        let (tcp, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!("accept failed: {e}; pausing 100 ms");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let active = match shared.active.read() {
            Ok(a) => a.clone(),
            Err(p) => p.into_inner().clone(),
        };
        let limits = &active.config.limits;
        match registry.admit(
            peer.ip(),
            limits.max_connections,
            limits.max_connections_per_ip,
        ) {
            Ok(slot) => {
                tokio::spawn(session::serve(tcp, peer, active, shared.ctx.clone(), slot));
            }
            Err((kind, reason)) => {
                let refusing = shared.refusing.clone();
                let answered = refusing.fetch_add(1, Ordering::Relaxed) < MAX_ANSWERED_REFUSALS;
                if answered {
                    let active = active.clone();
                    tokio::spawn(async move {
                        session::refuse(tcp, active, kind).await;
                        refusing.fetch_sub(1, Ordering::Relaxed);
                    });
                } else {
                    refusing.fetch_sub(1, Ordering::Relaxed);
                    drop(tcp);
                }
                registry.reject(Rejection {
                    time: chrono::Local::now(),
                    peer,
                    sni: None,
                    path: None,
                    // What the client is told, unless the flood of refusals got a bare close.
                    status: answered.then_some(503),
                    kind,
                    reason,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 300 connections arriving before the relay accepts any (a crowd after a broker restart)
    /// all complete their TCP handshake: none waits for a SYN retransmit.
    #[tokio::test]
    async fn the_listen_queue_holds_a_crowd() {
        let listener = bind("127.0.0.1:0".parse().unwrap(), false).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut held = Vec::new();
        for i in 0..300 {
            let c = tokio::time::timeout(
                Duration::from_millis(500),
                tokio::net::TcpStream::connect(addr),
            )
            .await;
            assert!(matches!(c, Ok(Ok(_))), "connection {i} not queued: {c:?}");
            held.push(c);
        }
        drop(listener);
    }
}
