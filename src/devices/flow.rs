//! The demo flow of the seed's Mini Program (WeChatMiniEsp8266), run end to end on its own
//! connection: connect, subscribe one topic, subscribe several with different QoS, publish a
//! command and see the device answer, unsubscribe one, unsubscribe several — each step checked
//! against what the broker and the device actually do.

use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS, SubscribeFilter};

use super::config::DeviceDef;
use crate::i18n::{L10n, l};

#[derive(Debug, Clone, PartialEq)]
pub struct FlowStep {
    pub name: L10n,
    pub ok: bool,
    pub detail: L10n,
    pub elapsed_ms: u64,
}

/// Polls until `want` picks something out of an event, or the time is up.
async fn until<T>(
    ev: &mut EventLoop,
    timeout: Duration,
    mut want: impl FnMut(&Event) -> Option<T>,
) -> Result<T, L10n> {
    tokio::time::timeout(timeout, async {
        loop {
            match ev.poll().await {
                Ok(e) => {
                    if let Some(t) = want(&e) {
                        return Ok(t);
                    }
                }
                Err(e) => return Err(crate::mqtt::describe_error("", &e)),
            }
        }
    })
    .await
    .map_err(|_| {
        let secs = timeout.as_secs();
        l(
            format!("nothing within {secs} s"),
            format!("{secs} 秒内没有任何回应"),
        )
    })?
}

/// A request the client could not queue.
fn not_queued(e: &rumqttc::ClientError) -> L10n {
    crate::i18n::quoted(&e.to_string())
}

/// Runs the flow for `device`; `mqtt` says where and how to connect.
pub async fn run(mut mqtt: MqttOptions, device: &DeviceDef, timeout: Duration) -> Vec<FlowStep> {
    mqtt.set_keep_alive(Duration::from_secs(30));
    mqtt.set_clean_session(true);
    let (client, ev) = AsyncClient::new(mqtt, 16);
    let mut flow = Flow {
        client,
        ev,
        timeout,
        state: device.state_topic(),
        telemetry: device.telemetry_topic(),
        status: device.availability_topic(),
        cmd: device.command_topic(),
    };
    let connected = flow.connect().await;
    let ok = connected.ok;
    let mut steps = vec![connected];
    if ok {
        steps.push(flow.subscribe_one().await);
        steps.push(flow.subscribe_two().await);
        steps.push(flow.command().await);
        steps.push(flow.unsubscribe_one().await);
        steps.push(flow.unsubscribe_two().await);
        flow.client.disconnect().await.ok();
        let _ = tokio::time::timeout(Duration::from_millis(300), flow.ev.poll()).await;
    }
    steps
}

/// One run of the flow: the connection and the device's topics.
struct Flow {
    client: AsyncClient,
    ev: EventLoop,
    timeout: Duration,
    state: String,
    telemetry: String,
    status: String,
    cmd: String,
}

fn step(name: L10n, ok: bool, detail: L10n, t0: Instant) -> FlowStep {
    FlowStep {
        name,
        ok,
        detail,
        elapsed_ms: t0.elapsed().as_millis() as u64,
    }
}

impl Flow {
    /// 1. Connect.
    async fn connect(&mut self) -> FlowStep {
        let t0 = Instant::now();
        let r = until(&mut self.ev, self.timeout, |e| match e {
            Event::Incoming(Packet::ConnAck(a)) => Some(a.code),
            _ => None,
        })
        .await;
        let ok = matches!(r, Ok(rumqttc::ConnectReturnCode::Success));
        let detail = match r {
            Ok(c) => L10n::same(format!("CONNACK {c:?}")),
            Err(e) => e,
        };
        step(l("Connect", "连接"), ok, detail, t0)
    }

    /// 2. Subscribe one topic.
    async fn subscribe_one(&mut self) -> FlowStep {
        let state = self.state.clone();
        let t0 = Instant::now();
        let r = match self.client.subscribe(&state, QoS::AtMostOnce).await {
            Ok(()) => {
                until(&mut self.ev, self.timeout, |e| match e {
                    Event::Incoming(Packet::SubAck(a)) => Some(a.return_codes.clone()),
                    _ => None,
                })
                .await
            }
            Err(e) => Err(not_queued(&e)),
        };
        let ok = matches!(&r, Ok(c) if c.len() == 1 && matches!(c[0], rumqttc::SubscribeReasonCode::Success(_)));
        let detail = match r {
            Ok(c) => L10n::same(format!("SUBACK {c:?}")),
            Err(e) => e,
        };
        let name = l(
            format!("Subscribe {state} (QoS 0)"),
            format!("订阅 {state}（QoS 0）"),
        );
        step(name, ok, detail, t0)
    }

    /// 3. Subscribe several, with different QoS: the retained status and telemetry arrive.
    async fn subscribe_two(&mut self) -> FlowStep {
        let (telemetry, status) = (self.telemetry.clone(), self.status.clone());
        let t0 = Instant::now();
        let filters = vec![
            SubscribeFilter::new(telemetry.clone(), QoS::AtMostOnce),
            SubscribeFilter::new(status.clone(), QoS::AtLeastOnce),
        ];
        let mut got_status = None;
        let mut got_telemetry = false;
        let mut codes = None;
        let r = match self.client.subscribe_many(filters).await {
            Ok(()) => {
                until(&mut self.ev, self.timeout, |e| {
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
            Err(e) => Err(not_queued(&e)),
        };
        let granted_ok = codes.as_ref().is_some_and(|c| {
            c.len() == 2
                && c.iter()
                    .all(|x| matches!(x, rumqttc::SubscribeReasonCode::Success(_)))
        });
        let ok = r.is_ok() && granted_ok;
        let detail = match r {
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
                format!(
                    "{} (SUBACK {codes:?}, status {got_status:?}, telemetry {got_telemetry})",
                    e.en
                ),
                format!(
                    "{}（SUBACK {codes:?}，状态 {got_status:?}，遥测 {got_telemetry}）",
                    e.zh
                ),
            ),
        };
        let name = l(
            format!("Subscribe {telemetry} (QoS 0) and {status} (QoS 1)"),
            format!("订阅 {telemetry}（QoS 0）和 {status}（QoS 1）"),
        );
        step(name, ok, detail, t0)
    }

    /// 4. Publish a command; the device answers on its state topic.
    async fn command(&mut self) -> FlowStep {
        let (cmd, state) = (self.cmd.clone(), self.state.clone());
        let t0 = Instant::now();
        let r = match self
            .client
            .publish(&cmd, QoS::AtMostOnce, false, r#"{"led":"toggle"}"#)
            .await
        {
            Ok(()) => {
                until(&mut self.ev, self.timeout, |e| match e {
                    Event::Incoming(Packet::Publish(p)) if p.topic == state => {
                        Some(String::from_utf8_lossy(&p.payload).into_owned())
                    }
                    _ => None,
                })
                .await
            }
            Err(e) => Err(not_queued(&e)),
        };
        let ok = r.is_ok();
        let detail = match r {
            Ok(p) => l(format!("the device answered {p}"), format!("设备回应 {p}")),
            Err(e) => e,
        };
        let name = l(
            format!("Publish {{\"led\":\"toggle\"}} to {cmd}"),
            format!("向 {cmd} 发布 {{\"led\":\"toggle\"}}"),
        );
        step(name, ok, detail, t0)
    }

    /// 5. Unsubscribe one.
    async fn unsubscribe_one(&mut self) -> FlowStep {
        let state = self.state.clone();
        let t0 = Instant::now();
        let r = match self.client.unsubscribe(&state).await {
            Ok(()) => {
                until(&mut self.ev, self.timeout, |e| {
                    matches!(e, Event::Incoming(Packet::UnsubAck(_))).then_some(())
                })
                .await
            }
            Err(e) => Err(not_queued(&e)),
        };
        let ok = r.is_ok();
        let detail = match r {
            Ok(()) => L10n::same("UNSUBACK"),
            Err(e) => e,
        };
        step(
            l(format!("Unsubscribe {state}"), format!("取消订阅 {state}")),
            ok,
            detail,
            t0,
        )
    }

    /// 6. Unsubscribe several: then telemetry stops arriving.
    async fn unsubscribe_two(&mut self) -> FlowStep {
        let (telemetry, status) = (self.telemetry.clone(), self.status.clone());
        let t0 = Instant::now();
        // One UNSUBSCRIBE with both filters, as mqtt.js's `unsubscribe([a, b])` sends it (the
        // client API has no such call; the event loop takes the request directly).
        self.ev
            .pending
            .push_back(rumqttc::Request::Unsubscribe(rumqttc::Unsubscribe {
                pkid: 0,
                topics: vec![telemetry.clone(), status.clone()],
            }));
        let r = until(&mut self.ev, self.timeout, |e| {
            matches!(e, Event::Incoming(Packet::UnsubAck(_))).then_some(())
        })
        .await;
        // Telemetry comes every second: two quiet seconds show the unsubscription took effect.
        // Quiet means the two seconds passed: a publish, or a dropped connection, is not quiet.
        let quiet = r.is_ok()
            && self
                .quiet_for(Duration::from_millis(2200), &telemetry)
                .await;
        let ok = r.is_ok() && quiet;
        let detail = match (r, quiet) {
            (Ok(()), true) => l(
                "UNSUBACK; no telemetry in the next two seconds",
                "UNSUBACK；之后两秒内没有遥测消息",
            ),
            (Ok(()), false) => l(
                "UNSUBACK, but telemetry still arrives",
                "收到 UNSUBACK，但遥测消息仍在到达",
            ),
            (Err(e), _) => e,
        };
        let name = l(
            format!("Unsubscribe {telemetry} and {status}"),
            format!("取消订阅 {telemetry} 和 {status}"),
        );
        step(name, ok, detail, t0)
    }

    /// Nothing on `topic` (and the connection up) for `span`.
    async fn quiet_for(&mut self, span: Duration, topic: &str) -> bool {
        let heard = tokio::time::timeout(span, async {
            loop {
                match self.ev.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) if p.topic == topic => return,
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        })
        .await;
        heard.is_err()
    }
}
