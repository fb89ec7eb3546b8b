//! Jobs on a second connection to the active connection's broker: finding and clearing
//! retained messages (Topics panel) and the Mini Program demo flow (Devices panel).

use std::time::Duration;

use rumqttc::QoS;
use tokio::sync::watch;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::Reply;
use super::connections::{Route, Target};
use super::shared::Shared;
use crate::i18n::{L10n, l};
use crate::mqtt::client::BrokerOptions;

/// What clearing retained messages did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cleared {
    /// Clears the broker acknowledged.
    pub acknowledged: usize,
    /// Retained messages the broker still holds under the prefix afterwards.
    pub left: usize,
}

/// Options for a second connection to the broker behind `route` (always MQTT 3.1.1: the demo
/// flow plays a Mini Program, and finding retained messages needs no more). The guard stops a
/// server-name forwarder when the second connection is done.
fn second_connection(
    route: Option<&Route>,
    handle: &tokio::runtime::Handle,
    cancel: &CancellationToken,
) -> Result<(rumqttc::MqttOptions, DropGuard), L10n> {
    let token = cancel.child_token();
    let opts = match route {
        Some(Route::Sandbox(t)) => BrokerOptions::v4(flow_options(t)),
        Some(Route::Profile(p)) => {
            let mut p = (**p).clone();
            p.client_id = format!("{}-aux", p.client_id);
            p.random_suffix = true;
            p.will = None;
            p.clean_session = true;
            p.session_expiry_secs = None;
            p.version = crate::mqtt::profile::MqttVersion::V311;
            p.options()?
        }
        None => return Err(super::devices::not_connected()),
    };
    let mqtt = opts.into_v4_started(handle, &token).ok_or_else(|| {
        l(
            "the second connection needs MQTT 3.1.1",
            "第二个连接需要 MQTT 3.1.1",
        )
    })?;
    Ok((mqtt, token.drop_guard()))
}

/// Runs `job` on a second connection to the broker behind `route`, answering `reply`.
pub(super) fn on_second_connection<T, F, Fut>(
    route: Option<&Route>,
    shared: &Shared,
    reply: Reply<T, L10n>,
    job: F,
) where
    T: Send + 'static,
    F: FnOnce(rumqttc::MqttOptions) -> Fut,
    Fut: std::future::Future<Output = Result<T, L10n>> + Send + 'static,
{
    match second_connection(route, &shared.handle, &shared.cancel) {
        Err(e) => reply.send(Err(e)),
        Ok((mqtt, guard)) => {
            let job = job(mqtt);
            shared.handle.spawn(async move {
                reply.send(job.await);
                drop(guard);
            });
        }
    }
}

/// MQTT options for a second connection over the console's transport to the sandbox.
fn flow_options(target: &Target) -> rumqttc::MqttOptions {
    let id = format!("mpbridge-flow-{:08x}", rand::random::<u32>());
    let (host, port, transport) = target.endpoint();
    let mut o = rumqttc::MqttOptions::new(id, host, port);
    if let Some(t) = transport {
        o.set_transport(t);
    }
    o
}

/// Subscribes `prefix` and `prefix/#` on a new connection and collects the retained
/// messages the broker sends for them (for 1.5 s after the SUBACK).
pub(super) async fn find_retained(
    mut mqtt: rumqttc::MqttOptions,
    prefix: &str,
) -> Result<Vec<String>, L10n> {
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
            .map_err(|e| crate::i18n::quoted(&e.to_string()))?;
    }
    let mut found = std::collections::BTreeSet::new();
    let mut acks = 0;
    let mut deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, ev.poll()).await {
            Err(_) => break,
            Ok(Err(e)) => {
                let e = crate::mqtt::describe_error("", &e);
                return Err(e.after("the broker connection failed", "与代理的连接失败"));
            }
            Ok(Ok(Event::Incoming(Packet::SubAck(a)))) => {
                if a.return_codes
                    .iter()
                    .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                {
                    client.disconnect().await.ok();
                    return Err(l(
                        format!(
                            "the broker refused the subscription to {} (not authorised?)",
                            filters.join(" and ")
                        ),
                        format!("代理拒绝了对 {} 的订阅（未授权？）", filters.join(" 和 ")),
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
        return Err(l(
            "the broker did not acknowledge the subscription within 10 s",
            "代理在 10 秒内没有确认订阅",
        ));
    }
    Ok(found.into_iter().collect())
}

/// Publishes an empty retained message (QoS 1) on each topic and counts the broker's
/// acknowledgements, then looks again under `prefix`.
pub(super) async fn clear_retained(
    mqtt: rumqttc::MqttOptions,
    prefix: &str,
    topics: Vec<String>,
    progress: &watch::Sender<(usize, usize)>,
) -> Result<Cleared, L10n> {
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
                break Err(l(
                    format!(
                        "the broker acknowledged {acknowledged} of {total} clears, then nothing for 10 s"
                    ),
                    format!("代理确认了 {total} 条清除中的 {acknowledged} 条，之后 10 秒没有回应"),
                ));
            }
            Ok(Err(e)) => {
                let e = crate::mqtt::describe_error("", &e);
                break Err(l(
                    format!(
                        "the broker connection failed after {acknowledged} of {total} clears{}",
                        e.en
                    ),
                    format!(
                        "清除了 {total} 条中的 {acknowledged} 条后，与代理的连接失败{}",
                        e.zh
                    ),
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
