//! The broker connections service: opens and closes the console's connections (the sandbox's,
//! saved profiles', `--connect`), keeps one of them active, mirrors their states into the
//! status, tags every message with its connection, and publishes, subscribes and clears
//! retained messages through the active one. Other services see the active connection as a
//! [`Link`].

use std::sync::Arc;
use std::time::Duration;

use rumqttc::QoS;
use tokio::sync::watch;

use super::conns::{Conn, ConnId, ConnInfo, Conns, MAX_CONNECTIONS};
use super::retained::{Cleared, clear_retained, find_retained, on_second_connection};
use super::shared::{Service, Shared};
use super::{ConnectTo, Event, Reply};
use crate::devices::commands::AckTracker;
use crate::mqtt::ConnState;
use crate::mqtt::client::BrokerOptions;
use crate::mqtt::profile::Profile;
use crate::mqtt::worker::{Worker, WorkerOptions, WorkerSinks};
use crate::verdict::L10n;

/// The label of the sandbox connection.
pub const SANDBOX_LABEL: &str = "sandbox";

/// What the Broker, Topics and Overview panels ask of the connections.
pub enum ConnCmd {
    /// Publish through the active connection (MQTT 5 properties need an MQTT 5 one).
    Publish {
        topic: String,
        payload: Vec<u8>,
        qos: QoS,
        retain: bool,
        props: Option<Box<crate::mqtt::Props>>,
    },
    /// Open a connection for a saved broker profile and make it the active one. Other open
    /// connections keep running; one open for a profile of the same name is replaced.
    /// Answers the connection's id and the client id used.
    ConnectProfile {
        profile: Box<Profile>,
        reply: Reply<(ConnId, String), L10n>,
    },
    /// Close the active connection (the most recent other one becomes active).
    Disconnect,
    /// Make the sandbox connection active (opened through its relay when it is not open).
    ConnectSandbox,
    /// Make another open connection the active one.
    Activate {
        id: ConnId,
    },
    /// Close one open connection.
    Close {
        id: ConnId,
    },
    /// Subscribe the active connection (kept across reconnects).
    Subscribe {
        filter: String,
        qos: QoS,
    },
    Unsubscribe {
        filter: String,
    },
    /// Ask the broker which topics at or under `prefix` hold a retained message: a fresh
    /// subscription gets them (with the retain flag), live forwarding would not.
    FindRetained {
        prefix: String,
        reply: Reply<Vec<String>, L10n>,
    },
    /// Publish an empty retained message on each topic (clears what the broker keeps), on a
    /// second connection at QoS 1 so every clear is acknowledged; `progress` counts the
    /// acknowledgements (done, total); then the broker is asked again what `prefix` holds.
    ClearRetained {
        prefix: String,
        topics: Vec<String>,
        progress: watch::Sender<(usize, usize)>,
        reply: Reply<Cleared, L10n>,
    },
}

impl ConnCmd {
    pub(super) fn refuse(self, why: &L10n) {
        let why = why.clone();
        match self {
            ConnCmd::ConnectProfile { reply, .. } => reply.send(Err(why)),
            ConnCmd::FindRetained { reply, .. } => reply.send(Err(why)),
            ConnCmd::ClearRetained { reply, .. } => reply.send(Err(why)),
            ConnCmd::Publish { topic, .. } => {
                tracing::warn!("nothing published to {topic}: {}", why.en)
            }
            _ => {}
        }
    }
}

/// Where the sandbox connection goes: the sandbox relay over `wss://`, or the broker over
/// plain TCP when the relay's TLS could not be set up.
#[derive(Clone)]
pub(super) enum Target {
    Tcp(std::net::SocketAddr),
    Wss {
        url: String,
        port: u16,
        tls: Arc<rustls::ClientConfig>,
    },
}

impl Target {
    /// Host, port and transport for rumqttc.
    pub fn endpoint(&self) -> (String, u16, Option<rumqttc::Transport>) {
        match self {
            Target::Tcp(addr) => (addr.ip().to_string(), addr.port(), None),
            Target::Wss { url, port, tls } => (
                url.clone(),
                *port,
                Some(rumqttc::Transport::wss_with_config((**tls).clone().into())),
            ),
        }
    }

    fn url(&self) -> String {
        match self {
            Target::Tcp(a) => format!("mqtt://{a}"),
            Target::Wss { url, .. } => url.clone(),
        }
    }
}

/// How a second connection reaches the same broker as an open one.
#[derive(Clone)]
pub(super) enum Route {
    Sandbox(Target),
    Profile(Box<Profile>),
}

/// The active connection, as the devices service needs it.
#[derive(Clone)]
pub(super) struct Link {
    pub worker: Worker,
    pub route: Route,
}

pub(super) struct ConnectionsService {
    shared: Shared,
    conns: Conns,
    sandbox: Option<Target>,
    /// Device commands waiting for their answer, matched against every received message.
    acks: AckTracker,
    link: watch::Sender<Option<Link>>,
}

impl ConnectionsService {
    pub fn new(shared: Shared, sandbox: Option<Target>, acks: AckTracker) -> Self {
        Self {
            shared,
            conns: Conns::default(),
            sandbox,
            acks,
            link: watch::channel(None).0,
        }
    }

    /// The active connection, as it changes.
    pub fn link(&self) -> watch::Receiver<Option<Link>> {
        self.link.subscribe()
    }

    /// Opens the first connection: `--connect`'s broker, else the sandbox.
    pub fn open_first(&mut self, connect: Option<&ConnectTo>) {
        match connect {
            Some(c) => self.open_connect_to(c),
            None => {
                if let Some(target) = self.sandbox.clone() {
                    let conn = self.open_sandbox(target);
                    self.conns.push_active(conn);
                    self.publish_active();
                }
            }
        }
    }

    /// `--connect`: a profile like any other, trusting this computer's certificate store.
    fn open_connect_to(&mut self, c: &ConnectTo) {
        let mut profile = Profile::new("--connect", c.url.trim());
        profile.client_id = "mpbridge-console".into();
        profile.subscriptions = c.filters();
        let in_url = c
            .url
            .split_once("://")
            .is_some_and(|(_, rest)| rest.split('/').next().unwrap_or("").contains('@'));
        let shown = crate::config::secret::redact_url(&c.url);
        let mqtt = if in_url {
            Err(L10n::new(
                format!(
                    "{shown}: put the user name and password in a broker profile, not in the URL"
                ),
                format!("{shown}：请把用户名和密码写在代理配置中，而不是写在地址里"),
            ))
        } else {
            profile.options()
        };
        match mqtt {
            Ok(mqtt) => {
                tracing::info!("connecting the console to {}", c.url.trim());
                let conn = self.open_profile(profile, mqtt);
                self.conns.push_active(conn);
                self.publish_active();
            }
            Err(e) => {
                tracing::error!("--connect: {}", e.en);
                self.shared.set_status(|s| {
                    s.broker = ConnState::Disconnected {
                        error: e,
                        retry_in: Duration::ZERO,
                    }
                });
            }
        }
    }

    fn publish(
        &self,
        topic: String,
        payload: Vec<u8>,
        qos: QoS,
        retain: bool,
        props: Option<&crate::mqtt::Props>,
    ) {
        let refused = match self.conns.worker() {
            Some(w) => w
                .client
                .try_publish(&topic, qos, retain, payload, props)
                .err()
                .map(crate::mqtt::client::publish_refusal),
            None => Some(L10n::new("not connected to a broker", "未连接到代理")),
        };
        if let Some(why) = refused {
            tracing::warn!("nothing published to {topic}: {}", why.en);
            self.shared.sink.emit(Event::PublishRefused { topic, why });
        }
    }

    fn connect_profile(&mut self, profile: Profile) -> Result<(ConnId, String), L10n> {
        // The same profile connected again replaces its old connection.
        let same = self.conns.find_label(&profile.name);
        if same.is_none() && self.conns.len() >= MAX_CONNECTIONS {
            return Err(L10n::new(
                format!("at most {MAX_CONNECTIONS} connections at once: close one first"),
                format!("最多同时打开 {MAX_CONNECTIONS} 个连接：请先关闭一个"),
            ));
        }
        let mqtt = profile.options()?;
        if let Some(old) = same.and_then(|id| self.conns.remove(id)) {
            self.close(old);
        }
        let client_id = mqtt.client_id();
        tracing::info!(
            "connecting to profile \"{}\" ({}, MQTT {})",
            profile.name,
            crate::config::secret::redact_url(&profile.url),
            if mqtt.protocol() == 5 { "5" } else { "3.1.1" }
        );
        let conn = self.open_profile(profile, mqtt);
        let id = conn.id;
        self.conns.push_active(conn);
        self.publish_active();
        Ok((id, client_id))
    }

    fn connect_sandbox(&mut self) {
        let Some(target) = self.sandbox.clone() else {
            return;
        };
        match self.conns.find_label(SANDBOX_LABEL) {
            Some(id) => {
                self.conns.activate(id);
            }
            None => {
                let conn = self.open_sandbox(target);
                self.conns.push_active(conn);
            }
        }
        self.publish_active();
    }

    /// Connects to the sandbox (through its relay) and subscribes to everything.
    fn open_sandbox(&mut self, target: Target) -> Conn {
        let id = self.conns.next_id();
        let (host, port, transport) = target.endpoint();
        self.register(id, SANDBOX_LABEL, &target.url(), 4, false);
        let worker = Worker::spawn(
            &self.shared.handle,
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
            &self.shared.cancel,
        );
        Conn {
            id,
            label: SANDBOX_LABEL.into(),
            worker,
            route: Route::Sandbox(target),
        }
    }

    /// Connects a profile and subscribes to its filters.
    fn open_profile(&mut self, profile: Profile, mqtt: BrokerOptions) -> Conn {
        let id = self.conns.next_id();
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
        let worker = Worker::spawn_with(
            &self.shared.handle,
            mqtt,
            subs,
            self.sinks(id),
            &self.shared.cancel,
        );
        Conn {
            id,
            label: profile.name.clone(),
            worker,
            route: Route::Profile(Box::new(profile)),
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
        self.shared.set_status(|s| s.connections.push(info));
    }

    /// Stops a connection (DISCONNECT sent, so its last will stays unpublished).
    fn close(&self, conn: Conn) {
        tracing::info!("closing the connection \"{}\"", conn.label);
        conn.worker.stop();
        self.shared
            .set_status(|s| s.connections.retain(|c| c.id != conn.id));
    }

    /// Mirrors which connection is active into the status and the link.
    fn publish_active(&self) {
        let active = self.conns.active_id();
        self.shared.set_status(|s| {
            s.active = active;
            let c = s.connections.iter().find(|c| Some(c.id) == active);
            s.broker = c.map(|c| c.state.clone()).unwrap_or_default();
            s.broker_protocol = c.map_or(4, |c| c.protocol);
        });
        let link = self.conns.active.as_ref().map(|c| Link {
            worker: c.worker.clone(),
            route: c.route.clone(),
        });
        self.link.send_replace(link);
    }

    /// A connection's sinks: its state mirrored into the status, every message to the ack
    /// tracker and the UI (tagged with the connection).
    fn sinks(&self, id: ConnId) -> WorkerSinks {
        let (state_tx, state_rx) = watch::channel(ConnState::Idle);
        self.shared
            .handle
            .spawn(mirror_state(id, state_rx, self.shared.clone()));
        let msg_sink = self.shared.sink.clone();
        let suback_sink = self.shared.sink.clone();
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

/// Copies a connection's state into the status (and into `broker` while it is active).
async fn mirror_state(id: ConnId, mut state: watch::Receiver<ConnState>, shared: Shared) {
    loop {
        tokio::select! {
            () = shared.cancel.cancelled() => break,
            changed = state.changed() => if changed.is_err() { break },
        }
        let now = state.borrow_and_update().clone();
        shared.set_status(|st| {
            if st.active == Some(id) {
                st.broker = now.clone();
            }
            if let Some(c) = st.connections.iter_mut().find(|c| c.id == id) {
                c.state = now;
            }
        });
    }
}

impl Service for ConnectionsService {
    type Cmd = ConnCmd;

    async fn handle(&mut self, cmd: ConnCmd) {
        match cmd {
            ConnCmd::Publish {
                topic,
                payload,
                qos,
                retain,
                props,
            } => self.publish(topic, payload, qos, retain, props.as_deref()),
            ConnCmd::ConnectProfile { profile, reply } => {
                reply.send(self.connect_profile(*profile));
            }
            ConnCmd::Disconnect => {
                if let Some(old) = self.conns.active_id().and_then(|id| self.conns.remove(id)) {
                    self.close(old);
                }
                self.publish_active();
            }
            ConnCmd::ConnectSandbox => self.connect_sandbox(),
            ConnCmd::Activate { id } => {
                if self.conns.activate(id) {
                    self.publish_active();
                }
            }
            ConnCmd::Close { id } => {
                if let Some(old) = self.conns.remove(id) {
                    self.close(old);
                }
                self.publish_active();
            }
            ConnCmd::Subscribe { filter, qos } => match self.conns.worker() {
                Some(w) => w.subscribe(&filter, qos),
                None => tracing::warn!("not connected to a broker; {filter} not subscribed"),
            },
            ConnCmd::Unsubscribe { filter } => {
                if let Some(w) = self.conns.worker() {
                    w.unsubscribe(&filter);
                }
            }
            ConnCmd::FindRetained { prefix, reply } => {
                let route = self.conns.active.as_ref().map(|c| &c.route);
                on_second_connection(route, &self.shared, reply, move |mqtt| async move {
                    find_retained(mqtt, &prefix).await
                });
            }
            ConnCmd::ClearRetained {
                prefix,
                topics,
                progress,
                reply,
            } => {
                let route = self.conns.active.as_ref().map(|c| &c.route);
                on_second_connection(route, &self.shared, reply, move |mqtt| async move {
                    let done = clear_retained(mqtt, &prefix, topics, &progress).await;
                    match &done {
                        Ok(c) => tracing::info!(
                            "cleared {} retained message(s) under \"{prefix}\"; {} left",
                            c.acknowledged,
                            c.left
                        ),
                        Err(e) => tracing::warn!("clearing retained messages: {}", e.en),
                    }
                    done
                });
            }
        }
    }

    async fn stop(mut self) {
        for c in self.conns.drain() {
            c.worker.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Requested;

    fn service(
        dir: &std::path::Path,
    ) -> (
        ConnectionsService,
        tokio::sync::mpsc::Receiver<Event>,
        watch::Receiver<super::super::BackendStatus>,
    ) {
        let paths = crate::config::Paths {
            config_dir: dir.join("config"),
            data_dir: dir.join("data"),
        };
        let (shared, events, status) = Shared::for_test(paths);
        (
            ConnectionsService::new(shared, None, AckTracker::default()),
            events,
            status,
        )
    }

    async fn connect(
        conns: &mut ConnectionsService,
        name: &str,
        url: &str,
    ) -> Result<(ConnId, String), L10n> {
        let (req, reply) = Requested::new(None);
        let profile = Box::new(Profile::new(name, url));
        conns
            .handle(ConnCmd::ConnectProfile { profile, reply })
            .await;
        req.wait().await
    }

    /// With no connection a publish is refused with a reason the Topics panel shows, and
    /// second-connection jobs say why they cannot run.
    #[tokio::test]
    async fn nothing_open_refuses_publish_and_second_connection_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let (mut conns, mut events, _) = service(dir.path());
        conns
            .handle(ConnCmd::Publish {
                topic: "a/b".into(),
                payload: b"x".to_vec(),
                qos: QoS::AtMostOnce,
                retain: false,
                props: None,
            })
            .await;
        match events.try_recv() {
            Ok(Event::PublishRefused { topic, why }) => {
                assert_eq!(topic, "a/b");
                assert_eq!(why.en, "not connected to a broker");
            }
            other => panic!("{other:?}"),
        }
        let (req, reply) = Requested::new(None);
        conns
            .handle(ConnCmd::FindRetained {
                prefix: "a".into(),
                reply,
            })
            .await;
        assert_eq!(
            req.wait().await.unwrap_err().en,
            "not connected to a broker"
        );
        conns.handle(ConnCmd::ConnectSandbox).await;
        assert!(
            conns.link().borrow().is_none(),
            "no sandbox, nothing opened"
        );
    }

    /// Profiles open connections (the newest active, the link following it), a profile
    /// connected again replaces its connection, the seventh is refused, closing the active
    /// one makes the previous active, and a bad URL is an error in one sentence.
    #[tokio::test]
    async fn connections_open_replace_cap_and_close() {
        let dir = tempfile::tempdir().unwrap();
        let (mut conns, _, status) = service(dir.path());
        // Nothing listens on port 9 of loopback: the workers retry in the background.
        let (first, client_id) = connect(&mut conns, "p0", "mqtt://127.0.0.1:9")
            .await
            .unwrap();
        assert!(!client_id.is_empty());
        assert_eq!(status.borrow().active, Some(first));
        assert!(conns.link().borrow().is_some());

        let (again, _) = connect(&mut conns, "p0", "mqtt://127.0.0.1:9")
            .await
            .unwrap();
        assert_ne!(again, first, "a new connection replaces the old one");
        assert_eq!(status.borrow().connections.len(), 1);

        for i in 1..MAX_CONNECTIONS {
            connect(&mut conns, &format!("p{i}"), "mqtt://127.0.0.1:9")
                .await
                .unwrap();
        }
        let e = connect(&mut conns, "one more", "mqtt://127.0.0.1:9")
            .await
            .unwrap_err();
        assert!(e.en.contains("at most 6 connections"), "{e:?}");
        assert!(e.zh.contains("最多同时打开 6 个连接"), "{e:?}");
        assert_eq!(status.borrow().connections.len(), MAX_CONNECTIONS);

        let before = status.borrow().connections[MAX_CONNECTIONS - 2].id;
        conns.handle(ConnCmd::Disconnect).await;
        assert_eq!(status.borrow().active, Some(before));
        assert_eq!(status.borrow().connections.len(), MAX_CONNECTIONS - 1);

        conns.handle(ConnCmd::Activate { id: again }).await;
        assert_eq!(status.borrow().active, Some(again));
        assert_eq!(status.borrow().connections[0].label, "p0");

        let e = connect(&mut conns, "bad", "http://x").await.unwrap_err();
        assert!(!e.en.contains('\n') && e.en.contains("http"), "{e:?}");
        assert_eq!(crate::i18n::english_in_chinese(&e.zh), None, "{e:?}");
        conns.stop().await;
    }
}
