//! The demo flow of the seed's Mini Program (WeChatMiniEsp8266), run end to end on its own
//! connection: connect, subscribe one topic, subscribe several with different QoS, publish a
//! command and see the device answer, unsubscribe one, unsubscribe several — each step checked
//! against what the broker and the device actually do.

use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS, SubscribeFilter};

use super::config::DeviceDef;
use crate::verdict::L10n;

#[derive(Debug, Clone, PartialEq)]
pub struct FlowStep {
    pub name: L10n,
    pub ok: bool,
    pub detail: L10n,
    pub elapsed_ms: u64,
}

fn l(en: impl Into<String>, zh: impl Into<String>) -> L10n {
    L10n::new(en, zh)
}

/// Polls until `want` picks something out of an event, or the time is up.
async fn until<T>(
    ev: &mut EventLoop,
    timeout: Duration,
    mut want: impl FnMut(&Event) -> Option<T>,
) -> Result<T, String> {
    tokio::time::timeout(timeout, async {
        loop {
            match ev.poll().await {
                Ok(e) => {
                    if let Some(t) = want(&e) {
                        return Ok(t);
                    }
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    })
    .await
    .map_err(|_| format!("nothing within {} s", timeout.as_secs()))?
}

/// Runs the flow for `device`; `mqtt` says where and how to connect.
pub async fn run(mut mqtt: MqttOptions, device: &DeviceDef, timeout: Duration) -> Vec<FlowStep> {
    let mut steps = Vec::new();
    let state = device.state_topic();
    let telemetry = device.telemetry_topic();
    let status = device.availability_topic();
    let cmd = device.command_topic();
    mqtt.set_keep_alive(Duration::from_secs(30));
    mqtt.set_clean_session(true);
    let (client, mut ev) = AsyncClient::new(mqtt, 16);

    // 1. Connect.
    let t0 = Instant::now();
    let r = until(&mut ev, timeout, |e| match e {
        Event::Incoming(Packet::ConnAck(a)) => Some(a.code),
        _ => None,
    })
    .await;
    let ok = matches!(r, Ok(rumqttc::ConnectReturnCode::Success));
    steps.push(FlowStep {
        name: l("Connect", "连接"),
        ok,
        detail: match &r {
            Ok(c) => l(format!("CONNACK {c:?}"), format!("CONNACK {c:?}")),
            Err(e) => L10n::same(e.clone()),
        },
        elapsed_ms: t0.elapsed().as_millis() as u64,
    });
    if !ok {
        return steps;
    }

    // 2. Subscribe one topic.
    let t0 = Instant::now();
    let r = match client.subscribe(&state, QoS::AtMostOnce).await {
        Ok(()) => {
            until(&mut ev, timeout, |e| match e {
                Event::Incoming(Packet::SubAck(a)) => Some(a.return_codes.clone()),
                _ => None,
            })
            .await
        }
        Err(e) => Err(e.to_string()),
    };
    steps.push(FlowStep {
        name: l(format!("Subscribe {state} (QoS 0)"), format!("订阅 {state}（QoS 0）")),
        ok: matches!(&r, Ok(c) if c.len() == 1 && matches!(c[0], rumqttc::SubscribeReasonCode::Success(_))),
        detail: match &r {
            Ok(c) => L10n::same(format!("SUBACK {c:?}")),
            Err(e) => L10n::same(e.clone()),
        },
        elapsed_ms: t0.elapsed().as_millis() as u64,
    });

    // 3. Subscribe several, with different QoS: the retained status and telemetry arrive.
    let t0 = Instant::now();
    let filters = vec![
        SubscribeFilter::new(telemetry.clone(), QoS::AtMostOnce),
        SubscribeFilter::new(status.clone(), QoS::AtLeastOnce),
    ];
    let mut got_status = None;
    let mut got_telemetry = false;
    let mut codes = None;
    let r = match client.subscribe_many(filters).await {
        Ok(()) => {
            until(&mut ev, timeout, |e| {
                match e {
                    Event::Incoming(Packet::SubAck(a)) => codes = Some(a.return_codes.clone()),
                    Event::Incoming(Packet::Publish(p)) if p.topic == status => {
                        got_status = Some(String::from_utf8_lossy(&p.payload).into_owned());
                    }
                    Event::Incoming(Packet::Publish(p)) if p.topic == telemetry => {
                        got_telemetry = true;
                    }
                    _ => {}
                }
                (codes.is_some() && got_status.is_some() && got_telemetry).then_some(())
            })
            .await
        }
        Err(e) => Err(e.to_string()),
    };
    let granted_ok = codes.as_ref().is_some_and(|c| {
        c.len() == 2
            && c.iter()
                .all(|x| matches!(x, rumqttc::SubscribeReasonCode::Success(_)))
    });
    steps.push(FlowStep {
        name: l(
            format!("Subscribe {telemetry} (QoS 0) and {status} (QoS 1)"),
            format!("订阅 {telemetry}（QoS 0）和 {status}（QoS 1）"),
        ),
        ok: r.is_ok() && granted_ok,
        detail: match &r {
            Ok(()) => l(
                format!(
                    "SUBACK {:?}; retained status \"{}\"; telemetry flowing",
                    codes.clone().unwrap_or_default(),
                    got_status.clone().unwrap_or_default()
                ),
                format!(
                    "SUBACK {:?}；保留状态“{}”；遥测数据正在到达",
                    codes.unwrap_or_default(),
                    got_status.unwrap_or_default()
                ),
            ),
            Err(e) => l(
                format!("{e} (SUBACK {codes:?}, status {got_status:?}, telemetry {got_telemetry})"),
                format!("{e}（SUBACK {codes:?}，状态 {got_status:?}，遥测 {got_telemetry}）"),
            ),
        },
        elapsed_ms: t0.elapsed().as_millis() as u64,
    });

    // 4. Publish a command; the device answers on its state topic.
    let t0 = Instant::now();
    let r = match client
        .publish(&cmd, QoS::AtMostOnce, false, r#"{"led":"toggle"}"#)
        .await
    {
        Ok(()) => {
            until(&mut ev, timeout, |e| match e {
                Event::Incoming(Packet::Publish(p)) if p.topic == state => {
                    Some(String::from_utf8_lossy(&p.payload).into_owned())
                }
                _ => None,
            })
            .await
        }
        Err(e) => Err(e.to_string()),
    };
    steps.push(FlowStep {
        name: l(
            format!("Publish {{\"led\":\"toggle\"}} to {cmd}"),
            format!("向 {cmd} 发布 {{\"led\":\"toggle\"}}"),
        ),
        ok: r.is_ok(),
        detail: match &r {
            Ok(p) => l(format!("the device answered {p}"), format!("设备回应 {p}")),
            Err(e) => L10n::same(e.clone()),
        },
        elapsed_ms: t0.elapsed().as_millis() as u64,
    });

    // 5. Unsubscribe one.
    let t0 = Instant::now();
    let r = match client.unsubscribe(&state).await {
        Ok(()) => {
            until(&mut ev, timeout, |e| {
                matches!(e, Event::Incoming(Packet::UnsubAck(_))).then_some(())
            })
            .await
        }
        Err(e) => Err(e.to_string()),
    };
    steps.push(FlowStep {
        name: l(format!("Unsubscribe {state}"), format!("取消订阅 {state}")),
        ok: r.is_ok(),
        detail: match &r {
            Ok(()) => L10n::same("UNSUBACK"),
            Err(e) => L10n::same(e.clone()),
        },
        elapsed_ms: t0.elapsed().as_millis() as u64,
    });

    // 6. Unsubscribe several: then telemetry stops arriving.
    let t0 = Instant::now();
    // One UNSUBSCRIBE with both filters, as mqtt.js's `unsubscribe([a, b])` sends it (the
    // client API has no such call; the event loop takes the request directly).
    ev.pending
        .push_back(rumqttc::Request::Unsubscribe(rumqttc::Unsubscribe {
            pkid: 0,
            topics: vec![telemetry.clone(), status.clone()],
        }));
    let r = until(&mut ev, timeout, |e| {
        matches!(e, Event::Incoming(Packet::UnsubAck(_))).then_some(())
    })
    .await;
    // Telemetry comes every second: two quiet seconds show the unsubscription took effect.
    // Quiet means the two seconds passed: a publish, or a dropped connection, is not quiet.
    let quiet = if r.is_ok() {
        let heard = tokio::time::timeout(Duration::from_millis(2200), async {
            loop {
                match ev.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) if p.topic == telemetry => return,
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        })
        .await;
        heard.is_err()
    } else {
        false
    };
    steps.push(FlowStep {
        name: l(
            format!("Unsubscribe {telemetry} and {status}"),
            format!("取消订阅 {telemetry} 和 {status}"),
        ),
        ok: r.is_ok() && quiet,
        detail: match (&r, quiet) {
            (Ok(()), true) => l(
                "UNSUBACK; no telemetry in the next two seconds",
                "UNSUBACK；之后两秒内没有遥测消息",
            ),
            (Ok(()), false) => l(
                "UNSUBACK, but telemetry still arrives",
                "收到 UNSUBACK，但遥测消息仍在到达",
            ),
            (Err(e), _) => L10n::same(e.clone()),
        },
        elapsed_ms: t0.elapsed().as_millis() as u64,
    });
    client.disconnect().await.ok();
    let _ = tokio::time::timeout(Duration::from_millis(300), ev.poll()).await;
    steps
}
