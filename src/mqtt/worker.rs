//! A task that owns one rumqttc `EventLoop`: connects, subscribes (again after every
//! reconnect), forwards incoming publishes, and reconnects with backoff. Publishing goes
//! through the `AsyncClient`'s `try_publish`, never awaited from the polling task.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rumqttc::{MqttOptions, QoS};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::client::{BrokerOptions, Client, DISCONNECT_GRACE, Polled, Session, Unfinished};
use super::{ConnState, MqttMessage, backoff};

/// Where to connect and what to subscribe to.
#[derive(Clone)]
pub struct WorkerOptions {
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub keep_alive: Duration,
    pub subscriptions: Vec<(String, QoS)>,
    /// Largest packet accepted from the broker.
    pub max_packet_bytes: usize,
    /// `None`: plain TCP to `host:port`. For WebSocket transports `host` is the full URL.
    pub transport: Option<rumqttc::Transport>,
}

/// What the worker reports to: statuses on a watch, messages to a callback (which must not
/// block; the backend's sink counts what it cannot queue).
pub struct WorkerSinks {
    pub state: watch::Sender<ConnState>,
    pub on_message: Box<dyn FnMut(MqttMessage) + Send>,
    /// Every SUBACK: the filter it answers (when it can be matched to one) and, when the
    /// broker refused it, why, in both languages (`None`: granted).
    pub on_suback: Box<dyn FnMut(Option<String>, Option<crate::verdict::L10n>) + Send>,
}

impl WorkerSinks {
    /// Sinks that only log refused subscriptions.
    pub fn new(
        state: watch::Sender<ConnState>,
        on_message: Box<dyn FnMut(MqttMessage) + Send>,
    ) -> Self {
        WorkerSinks {
            state,
            on_message,
            on_suback: Box::new(|_, _| {}),
        }
    }
}

/// SUBSCRIBE requests queued and not yet sent, oldest first: each SUBSCRIBE the event loop
/// sends takes the oldest, so a SUBACK's packet id leads back to its filter.
type Queued = Arc<Mutex<VecDeque<String>>>;

/// What is subscribed now (made again after every reconnect).
type Subscribed = Arc<Mutex<Vec<(String, QoS)>>>;

/// Handle to a running worker.
#[derive(Clone)]
pub struct Worker {
    pub client: Client,
    cancel: CancellationToken,
    /// What is subscribed now: re-subscribed after every reconnect.
    subscriptions: Subscribed,
    queued: Queued,
}

impl Worker {
    /// Starts the worker on `handle`. It runs until `stop` or the parent token is cancelled.
    pub fn spawn(
        handle: &tokio::runtime::Handle,
        opts: WorkerOptions,
        sinks: WorkerSinks,
        parent: &CancellationToken,
    ) -> Self {
        let mut mqtt = MqttOptions::new(opts.client_id.clone(), opts.host.clone(), opts.port);
        mqtt.set_keep_alive(opts.keep_alive);
        mqtt.set_max_packet_size(opts.max_packet_bytes, opts.max_packet_bytes);
        mqtt.set_clean_session(true);
        if let Some(t) = opts.transport.clone() {
            mqtt.set_transport(t);
        }
        Self::spawn_with(
            handle,
            BrokerOptions::v4(mqtt),
            opts.subscriptions,
            sinks,
            parent,
        )
    }

    /// Starts a worker on ready-made options (a broker profile).
    pub fn spawn_with(
        handle: &tokio::runtime::Handle,
        mqtt: BrokerOptions,
        subscriptions: Vec<(String, QoS)>,
        sinks: WorkerSinks,
        parent: &CancellationToken,
    ) -> Self {
        let target = mqtt.target();
        let cancel = parent.child_token();
        mqtt.start_forward(handle, &cancel);
        let tls = TlsHelp {
            forward: mqtt.forward.clone(),
            probe: mqtt.probe.clone(),
        };
        let (client, eventloop) = mqtt.into_client(256);
        let subscriptions = Arc::new(Mutex::new(subscriptions));
        let queued = Queued::default();
        handle.spawn(run(
            eventloop,
            client.clone(),
            target,
            tls,
            (subscriptions.clone(), queued.clone()),
            sinks,
            cancel.clone(),
        ));
        Self {
            client,
            cancel,
            subscriptions,
            queued,
        }
    }

    /// Subscribes now (when connected) and after every reconnect.
    pub fn subscribe(&self, filter: &str, qos: QoS) {
        if let Ok(mut subs) = self.subscriptions.lock() {
            subs.retain(|(f, _)| f != filter);
            subs.push((filter.to_owned(), qos));
        }
        queue_subscribe(&self.client, &self.queued, filter, qos);
    }

    pub fn unsubscribe(&self, filter: &str) {
        if let Ok(mut subs) = self.subscriptions.lock() {
            subs.retain(|(f, _)| f != filter);
        }
        if let Err(e) = self.client.try_unsubscribe(filter) {
            tracing::warn!("could not queue UNSUBSCRIBE {filter}: {e}");
        }
    }

    pub fn stop(&self) {
        // Best effort: the task also ends on cancellation without it.
        self.client.try_disconnect().ok();
        self.cancel.cancel();
    }
}

/// Queues a SUBSCRIBE and remembers its filter for the SUBACK.
fn queue_subscribe(client: &Client, queued: &Queued, filter: &str, qos: QoS) {
    // Under the lock, so the order in `queued` is the order of the requests.
    let mut q = queued.lock().unwrap_or_else(PoisonError::into_inner);
    match client.try_subscribe(filter, qos) {
        Ok(()) => q.push_back(filter.to_owned()),
        Err(e) => tracing::warn!("could not queue SUBSCRIBE {filter}: {e}"),
    }
}

/// What explains a TLS failure better than rumqttc's error.
struct TlsHelp {
    /// A server-name forwarder's own failure (rumqttc only sees its loopback side).
    forward: Option<Arc<super::sni::Forward>>,
    /// How to judge the broker's chain when its certificate is refused.
    probe: Option<super::diagnose::TlsProbe>,
}

/// A connection that lasted this long resets the backoff.
const STABLE_CONNECTION: Duration = Duration::from_secs(10);

async fn run(
    mut eventloop: Session,
    client: Client,
    target: String,
    tls: TlsHelp,
    (subscriptions, queued): (Subscribed, Queued),
    mut sinks: WorkerSinks,
    cancel: CancellationToken,
) {
    // SUBSCRIBEs sent and not yet acknowledged: packet id → filter.
    let mut sent: HashMap<u16, String> = HashMap::new();
    // Sent but never acknowledged when the connection dropped: made again after a CONNACK
    // that kept the session (rumqttc keeps no SUBSCRIBE state; a new session re-subscribes
    // everything anyway).
    let mut unacked_subs: Vec<String> = Vec::new();
    // The certificate verdict that explains the last refused handshake (`Some(None)`: judged,
    // nothing more to say).
    let mut diagnosis: Option<Option<crate::verdict::L10n>> = None;
    let mut attempt: u32 = 0;
    // When the current connection was accepted: the backoff starts over only after a
    // connection that lasted, so a broker that accepts and then drops at once is not hammered.
    let mut connected_at: Option<std::time::Instant> = None;
    let mut unfinished = Unfinished::default();
    sinks
        .state
        .send_replace(ConnState::Connecting { attempt: 0 });
    loop {
        let polled = tokio::select! {
            _ = cancel.cancelled() => {
                // `stop()` queued a DISCONNECT: let it out, so the broker does not publish
                // the last will for a console that left on purpose.
                let _ = tokio::time::timeout(DISCONNECT_GRACE, async {
                    loop {
                        match eventloop.poll(&target).await {
                            Ok(Polled::DisconnectSent) | Err(_) => break,
                            Ok(_) => {}
                        }
                    }
                })
                .await;
                break;
            }
            p = eventloop.poll(&target) => p,
        };
        match polled {
            Ok(Polled::ConnAck { session_present }) => {
                connected_at = Some(std::time::Instant::now());
                diagnosis = None;
                tracing::info!("connected to MQTT broker {target}");
                if !session_present {
                    // SUBSCRIBEs left unsent belonged to the old session: they are not resent
                    // (the subscriptions are made again below).
                    let mut q = queued.lock().unwrap_or_else(PoisonError::into_inner);
                    for f in unfinished.subscribe_filters() {
                        if let Some(i) = q.iter().position(|x| *x == f) {
                            q.remove(i);
                        }
                    }
                }
                let lost = std::mem::take(&mut unacked_subs);
                if !unfinished.is_empty() {
                    let again = eventloop.resume(std::mem::take(&mut unfinished), session_present);
                    if again > 0 {
                        tracing::info!(
                            "{target}: {again} publish(es) the broker had not acknowledged go out again"
                        );
                    }
                }
                sinks.state.send_replace(ConnState::Connected {
                    since: chrono::Local::now(),
                });
                let subs = subscriptions
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                for (filter, qos) in &subs {
                    // Everything on a new session; on a kept one, what never got its SUBACK.
                    if !session_present || lost.contains(filter) {
                        queue_subscribe(&client, &queued, filter, *qos);
                    }
                }
            }
            Ok(Polled::Message(m)) => (sinks.on_message)(m),
            Ok(Polled::SubscribeSent(pkid)) => {
                let next = queued
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .pop_front();
                if let Some(f) = next {
                    sent.insert(pkid, f);
                }
            }
            Ok(Polled::SubAck { pkid, refused }) => {
                let filter = sent.remove(&pkid);
                if let Some(why) = &refused {
                    tracing::warn!(
                        "{target} refused the subscription to {}: {}",
                        filter.as_deref().unwrap_or("a filter"),
                        why.en
                    );
                }
                (sinks.on_suback)(filter, refused);
            }
            Ok(_) => {}
            Err(failure) => {
                // Through a server-name forwarder, rumqttc only sees the loopback side close:
                // the forwarder's own failure (naming the broker) says what happened.
                let mut error = tls
                    .forward
                    .as_ref()
                    .and_then(|f| f.take_error())
                    .unwrap_or(failure.words);
                // A refused certificate: the verdict on the chain the broker serves names the
                // problem (judged once per run of failures, not at every retry).
                if let (true, Some(probe)) = (failure.certificate, &tls.probe) {
                    if diagnosis.is_none() {
                        diagnosis = tokio::select! {
                            _ = cancel.cancelled() => break,
                            d = super::diagnose::diagnose(&target, probe) => Some(d),
                        };
                    }
                    if let Some(Some(better)) = &diagnosis {
                        error = better.clone();
                    }
                }
                eventloop.take_unfinished(&mut unfinished);
                // Sent and never acknowledged: made again after the reconnect.
                unacked_subs.extend(sent.drain().map(|(_, f)| f));
                if connected_at
                    .take()
                    .is_some_and(|t| t.elapsed() >= STABLE_CONNECTION)
                {
                    attempt = 0;
                }
                let retry_in = backoff(attempt);
                attempt = attempt.saturating_add(1);
                tracing::warn!(
                    "MQTT connection {}; retrying in {} ms",
                    error.en,
                    retry_in.as_millis()
                );
                sinks
                    .state
                    .send_replace(ConnState::Disconnected { error, retry_in });
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(retry_in) => {}
                }
                sinks.state.send_replace(ConnState::Connecting { attempt });
            }
        }
    }
    // No last "Idle": a replaced worker must not overwrite its successor's state (the
    // backend's status mirror ends when this sender is dropped).
    drop(sinks);
}
