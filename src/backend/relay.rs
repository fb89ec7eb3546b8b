//! The relay service: owns the console's relay and its configuration in force, applies new
//! configurations (reload in place, or stop and start on a new address), saves `relay.toml`,
//! and refreshes the Relay panel's view of live connections twice a second.
//!
//! Its commands run one at a time: an apply that moves the relay waits for the old one to
//! drain, and holds up only other relay commands.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::shared::Shared;
use super::{RELAY_VIEW_EVERY, RELAY_VIEW_HISTORY, RelayView, Reply};
use crate::i18n::{L10n, l};
use crate::relay::{Relay, RelayConfig, RelayPhase, RelaySettings};

/// What the Relay panel (and the certificate repair) ask of the relay.
pub enum RelayCmd {
    /// Load a relay configuration's certificates and apply it: reload the running relay when
    /// the listen address is unchanged, otherwise stop it and start a new one. Saved to
    /// `relay.toml` in the config folder when it works.
    Apply {
        settings: Box<RelaySettings>,
        reply: Reply<L10n, L10n>,
    },
    Stop,
    /// Start the relay again with its last configuration.
    Start,
    /// Close one live relayed connection.
    Close {
        id: u64,
    },
    /// The nginx `server {}` block for a relay configuration.
    NginxExport {
        settings: Box<RelaySettings>,
        reply: Reply<String, L10n>,
    },
    /// Serve this certificate and key from now on (the rest of the configuration in force
    /// unchanged), saved to `relay.toml`.
    UseCert {
        cert: PathBuf,
        key: PathBuf,
        reply: Reply<L10n, L10n>,
    },
}

impl RelayCmd {
    pub(super) fn refuse(self, why: &L10n) {
        let why = why.clone();
        match self {
            RelayCmd::Apply { reply, .. } | RelayCmd::UseCert { reply, .. } => reply.send(Err(why)),
            RelayCmd::NginxExport { reply, .. } => reply.send(Err(why)),
            RelayCmd::Stop | RelayCmd::Start | RelayCmd::Close { .. } => {}
        }
    }
}

pub(super) struct RelayService {
    shared: Shared,
    relay: Option<Relay>,
    /// The configuration in force; the checks read its idle timeout.
    config: watch::Sender<Option<Arc<RelayConfig>>>,
    view: watch::Sender<Arc<RelayView>>,
    seq: u64,
}

impl RelayService {
    /// `relay` is the sandbox's relay, when the sandbox runs.
    pub fn new(shared: Shared, relay: Option<Relay>, view: watch::Sender<Arc<RelayView>>) -> Self {
        let (config, _) = watch::channel(relay.as_ref().map(|r| Arc::new(r.config())));
        Self {
            shared,
            relay,
            config,
            view,
            seq: 0,
        }
    }

    /// The configuration in force, as it changes.
    pub fn config(&self) -> watch::Receiver<Option<Arc<RelayConfig>>> {
        self.config.subscribe()
    }

    /// A saved `relay.toml` takes over from the sandbox's relay.
    pub async fn load_saved(&mut self) {
        let saved = self.shared.paths.config_dir.join("relay.toml");
        if saved.is_file() {
            let text = tokio::fs::read_to_string(&saved).await.unwrap_or_default();
            let base = self.shared.paths.config_dir.clone();
            let parsed = tokio::task::spawn_blocking(move || RelayConfig::parse(&text, &base))
                .await
                .map_err(|e| crate::i18n::quoted(&e.to_string()))
                .and_then(|r| r.map_err(|e| unusable(&e)));
            let applied = match parsed {
                Ok(cfg) => self.apply_config(cfg, false).await,
                Err(e) => Err(e),
            };
            if let Err(e) = applied {
                tracing::error!("{}", e.en);
                self.shared.set_status(|s| s.relay.error = Some(e));
            }
        }
        self.publish();
    }

    /// Handles commands, refreshes the view and follows the relay's phase until the backend
    /// stops; then stops the relay.
    pub async fn run(mut self, mut commands: mpsc::Receiver<RelayCmd>, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(RELAY_VIEW_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut phase = self.relay.as_ref().map(Relay::phase);
        loop {
            let phase_changed = async {
                match phase.as_mut() {
                    Some(rx) => rx.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = tick.tick() => self.refresh_view(),
                ok = phase_changed => {
                    if !ok {
                        phase = None;
                    }
                    self.publish();
                }
                c = commands.recv() => {
                    let Some(c) = c else { break };
                    self.handle(c).await;
                    // An apply may have replaced the relay.
                    phase = self.relay.as_ref().map(Relay::phase);
                }
            }
        }
        if let Some(r) = self.relay.take() {
            r.stop().await;
        }
    }

    pub async fn handle(&mut self, cmd: RelayCmd) {
        match cmd {
            RelayCmd::Apply { settings, reply } => {
                reply.send(self.apply_and_publish(*settings).await)
            }
            RelayCmd::UseCert { cert, key, reply } => {
                let current = self.config.borrow().as_ref().map(|c| c.settings.clone());
                let result = match current {
                    None => Err(l("the relay has no configuration yet", "中继还没有配置")),
                    Some(mut settings) => {
                        settings.certs.cert = cert;
                        settings.certs.key = key;
                        self.apply_and_publish(settings).await
                    }
                };
                reply.send(result);
            }
            RelayCmd::NginxExport { settings, reply } => {
                reply.send(Ok(crate::relay::nginx::render(&settings)));
            }
            RelayCmd::Stop => {
                if let Some(r) = self.relay.clone() {
                    // Draining may take the configured drain time; the phase watch reports
                    // its end.
                    self.shared.handle.spawn(async move { r.stop().await });
                }
            }
            RelayCmd::Start => self.start_again().await,
            RelayCmd::Close { id } => {
                if let Some(r) = &self.relay {
                    r.close_connection(id);
                }
            }
        }
    }

    async fn apply_and_publish(&mut self, settings: RelaySettings) -> Result<L10n, L10n> {
        let result = self.apply(settings).await;
        let error = result.as_ref().err().cloned();
        self.shared.set_status(|s| s.relay.error = error);
        self.publish();
        result
    }

    async fn start_again(&mut self) {
        let running = self
            .relay
            .as_ref()
            .is_some_and(|r| !matches!(*r.phase().borrow(), RelayPhase::Stopped));
        let Some(cfg) = self.config.borrow().clone() else {
            return;
        };
        if running {
            return;
        }
        match Relay::start((*cfg).clone(), &self.shared.handle).await {
            Ok(r) => {
                self.relay = Some(r);
                self.shared.set_status(|s| s.relay.error = None);
            }
            Err(e) => self
                .shared
                .set_status(|s| s.relay.error = Some(relay_error(&e))),
        }
        self.publish();
    }

    /// Loads the certificates of `settings` (off the runtime's workers), applies them and
    /// saves `relay.toml`.
    async fn apply(&mut self, settings: RelaySettings) -> Result<L10n, L10n> {
        let cfg = tokio::task::spawn_blocking(move || settings.into_config())
            .await
            .map_err(|e| crate::i18n::quoted(&e.to_string()))??;
        self.apply_config(cfg, true).await
    }

    /// Applies a loaded configuration (reload in place when the listen address is the same,
    /// otherwise stop and start); with `save`, writes it to `relay.toml`.
    async fn apply_config(&mut self, cfg: RelayConfig, save: bool) -> Result<L10n, L10n> {
        let running = self
            .relay
            .as_ref()
            .filter(|r| matches!(*r.phase().borrow(), RelayPhase::Running { .. }));
        let same_listen = self
            .config
            .borrow()
            .as_ref()
            .is_some_and(|c| c.listen == cfg.listen);
        let message = match running {
            Some(r) if same_listen => {
                r.reload(cfg.clone()).map_err(|e| relay_error(&e))?;
                l(
                    "reloaded: new connections use the new configuration; live ones stay",
                    "已重新加载：新连接使用新配置，已有连接保持不变",
                )
            }
            _ => {
                if let Some(r) = self.relay.take() {
                    r.stop().await;
                }
                let r = Relay::start(cfg.clone(), &self.shared.handle)
                    .await
                    .map_err(|e| relay_error(&e))?;
                let msg = l(
                    format!("started on {}", r.addr()),
                    format!("已在 {} 上启动", r.addr()),
                );
                self.relay = Some(r);
                msg
            }
        };
        let text = cfg.render_toml();
        self.config.send_replace(Some(Arc::new(cfg)));
        if save {
            let path = self.shared.paths.config_dir.join("relay.toml");
            tokio::task::spawn_blocking(move || crate::config::store::save_atomic(&path, &text))
                .await
                .map_err(|e| crate::i18n::quoted(&e.to_string()))?
                .map_err(|e| {
                    let e = crate::i18n::io_error(&e);
                    e.after(
                        "applied, but relay.toml could not be saved: ",
                        "已应用，但无法保存 relay.toml：",
                    )
                })?;
        }
        Ok(message)
    }

    /// Mirrors the relay's phase, address, certificate and configuration into the status.
    fn publish(&self) {
        let phase = self
            .relay
            .as_ref()
            .map(|r| r.phase().borrow().clone())
            .unwrap_or(RelayPhase::Stopped);
        let cfg = self.config.borrow().clone();
        let url = match (&phase, &cfg) {
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
        let cert = cfg
            .as_ref()
            .and_then(|c| crate::relay::tls::cert_brief(&c.certs.cert).ok());
        let settings = cfg.as_deref().map(|c| c.settings.clone());
        self.shared.set_status(|s| {
            s.relay.phase = phase;
            s.relay.url = url;
            s.relay.cert = cert;
            s.relay.config = settings;
        });
    }

    /// Publishes the live connections when they changed: a quiet relay costs the UI nothing.
    fn refresh_view(&mut self) {
        let Some(r) = self
            .relay
            .as_ref()
            .filter(|r| matches!(*r.phase().borrow(), RelayPhase::Running { .. }))
        else {
            return;
        };
        let snapshot = r.snapshot(RELAY_VIEW_HISTORY);
        if self.view.borrow().snapshot != snapshot {
            self.seq += 1;
            self.view.send_replace(Arc::new(RelayView {
                seq: self.seq,
                taken: Some(Instant::now()),
                snapshot,
            }));
            self.shared.wake();
        }
    }
}

/// A relay configuration that cannot be used; the parser's own words (file, line, field) are
/// quoted.
fn unusable(e: &impl std::fmt::Display) -> L10n {
    l(
        format!("relay.toml: {e}"),
        format!("relay.toml 无法使用（“{e}”）"),
    )
}

/// The relay could not start or reload.
fn relay_error(e: &crate::relay::RelayError) -> L10n {
    match e {
        crate::relay::RelayError::Bind { addr, source } => {
            let why = crate::i18n::io_error(source);
            l(
                format!("cannot listen on {addr}: {}", why.en),
                format!("无法在 {addr} 上监听：{}", why.zh),
            )
        }
        crate::relay::RelayError::Reload(r) => l(
            format!("reload refused: {r}"),
            format!("拒绝重新加载（“{r}”）"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Requested;
    use crate::relay::config::Upstream;

    async fn apply(relay: &mut RelayService, settings: RelaySettings) -> Result<L10n, L10n> {
        let (req, reply) = Requested::new(None);
        let settings = Box::new(settings);
        relay.handle(RelayCmd::Apply { settings, reply }).await;
        req.wait().await
    }

    /// A saved relay.toml that does not parse and settings whose certificate is missing are
    /// refused in both languages with the relay untouched; good settings start the relay and
    /// are saved; the same address again reloads in place; a new certificate from the repair
    /// keeps the rest of the configuration.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn apply_starts_reloads_saves_and_takes_a_new_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let paths = crate::config::Paths {
            config_dir: dir.path().join("config"),
            data_dir: dir.path().join("data"),
        };
        std::fs::create_dir_all(&paths.config_dir).unwrap();
        let (shared, _, status) = Shared::for_test(paths.clone());
        let (view, _) = watch::channel(Arc::default());
        let mut relay = RelayService::new(shared, None, view);
        let config = relay.config();

        std::fs::write(paths.config_dir.join("relay.toml"), "listen = [").unwrap();
        relay.load_saved().await;
        let e = status.borrow().relay.error.clone().unwrap();
        assert!(e.en.starts_with("relay.toml:"), "{e:?}");
        assert!(e.zh.starts_with("relay.toml 无法使用"), "{e:?}");
        assert!(relay.relay.is_none() && config.borrow().is_none());

        let ca = crate::sandbox::devca::ensure(&dir.path().join("ca")).unwrap();
        let mut cfg = RelayConfig::simple(
            "127.0.0.1:0".parse().unwrap(),
            &ca.leaf_chain,
            &ca.leaf_key,
            "/mqtt",
            Upstream::parse("tcp://127.0.0.1:9").unwrap(),
        )
        .unwrap();
        let mut missing = cfg.settings.clone();
        missing.certs.cert = dir.path().join("gone.pem");
        let e = apply(&mut relay, missing).await.unwrap_err();
        assert!(e.en.contains("gone.pem"), "{e:?}");
        assert_eq!(crate::i18n::english_in_chinese(&e.zh), None, "{e:?}");
        assert_eq!(status.borrow().relay.error.as_ref(), Some(&e));
        assert!(relay.relay.is_none() && config.borrow().is_none());
        let started = apply(&mut relay, cfg.settings.clone()).await.unwrap();
        assert!(
            started.en.starts_with("started on 127.0.0.1:"),
            "{started:?}"
        );
        assert!(matches!(
            status.borrow().relay.phase,
            RelayPhase::Running { .. }
        ));
        assert!(status.borrow().relay.error.is_none());
        let saved = paths.config_dir.join("relay.toml");
        assert_eq!(std::fs::read_to_string(&saved).unwrap(), cfg.render_toml());

        cfg.limits.idle_timeout = std::time::Duration::from_secs(77);
        let reloaded = apply(&mut relay, cfg.settings.clone()).await.unwrap();
        assert!(reloaded.en.starts_with("reloaded"), "{reloaded:?}");
        let idle = config.borrow().as_ref().unwrap().limits.idle_timeout;
        assert_eq!(idle.as_secs(), 77);

        let other = crate::sandbox::devca::ensure(&dir.path().join("other")).unwrap();
        let (req, reply) = Requested::new(None);
        relay
            .handle(RelayCmd::UseCert {
                cert: other.leaf_chain.clone(),
                key: other.leaf_key.clone(),
                reply,
            })
            .await;
        assert!(req.wait().await.unwrap().en.starts_with("reloaded"));
        let now = config.borrow().clone().unwrap();
        assert_eq!(now.certs.cert, other.leaf_chain);
        assert_eq!(now.limits.idle_timeout.as_secs(), 77, "the rest is kept");
        assert!(
            std::fs::read_to_string(&saved)
                .unwrap()
                .contains(&*other.leaf_chain.to_string_lossy())
        );

        relay.handle(RelayCmd::Stop).await;
        let r = relay.relay.clone().unwrap();
        let mut phase = r.phase();
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            phase.wait_for(|p| matches!(p, RelayPhase::Stopped)),
        )
        .await
        .unwrap()
        .unwrap();
    }
}
