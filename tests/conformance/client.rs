//! Cases driven by rumqttc's client (the one the console itself uses), MQTT 3.1.1 and 5.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, Publish, QoS};
use tokio::sync::mpsc;

use super::harness::Target;
use super::{s, uid};

/// A client whose event loop runs on its own task, handing over every PUBLISH.
struct Client {
    c: AsyncClient,
    rx: mpsc::Receiver<Publish>,
    task: tokio::task::JoinHandle<()>,
}

impl Client {
    async fn start(mut o: MqttOptions) -> Result<(Client, bool), String> {
        o.set_keep_alive(Duration::from_secs(30));
        let (c, mut ev) = AsyncClient::new(o, 64);
        let present = loop {
            match tokio::time::timeout(s(5.0), ev.poll()).await {
                Ok(Ok(Event::Incoming(Packet::ConnAck(a)))) => break a.session_present,
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(format!("connect: {e}")),
                Err(_) => return Err("no CONNACK".into()),
            }
        };
        let (tx, rx) = mpsc::channel(256);
        let task = tokio::spawn(async move {
            while let Ok(e) = ev.poll().await {
                if let Event::Incoming(Packet::Publish(p)) = e
                    && tx.send(p).await.is_err()
                {
                    return;
                }
            }
        });
        Ok((Client { c, rx, task }, present))
    }

    async fn next(&mut self) -> Result<Publish, String> {
        tokio::time::timeout(s(5.0), self.rx.recv())
            .await
            .ok()
            .flatten()
            .ok_or_else(|| "no message".to_owned())
    }

    /// Ends the connection without DISCONNECT.
    fn vanish(self) {
        self.task.abort();
    }

    async fn close(self) {
        self.c.disconnect().await.ok();
        tokio::time::sleep(s(0.2)).await;
        self.task.abort();
    }
}

fn opts(t: &Target, id: &str) -> MqttOptions {
    MqttOptions::new(id, t.tcp.ip().to_string(), t.tcp.port())
}

pub async fn rumqttc_qos_round_trips(t: &Target) -> Result<(), String> {
    let topic = format!("rc/qos/{}", uid("t"));
    let (mut a, _) = Client::start(opts(t, &uid("rc"))).await?;
    a.c.subscribe(&topic, QoS::ExactlyOnce)
        .await
        .map_err(|e| e.to_string())?;
    tokio::time::sleep(s(0.2)).await;
    for q in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        a.c.publish(&topic, q, false, format!("{}", q as u8))
            .await
            .map_err(|e| e.to_string())?;
    }
    let mut got = Vec::new();
    for _ in 0..3 {
        let p = a.next().await?;
        got.push((
            String::from_utf8_lossy(&p.payload).into_owned(),
            p.qos as u8,
        ));
    }
    a.close().await;
    got.sort();
    (got == [("0".into(), 0), ("1".into(), 1), ("2".into(), 2)])
        .then_some(())
        .ok_or(format!("{got:?}"))
}

pub async fn rumqttc_persistent_session(t: &Target) -> Result<(), String> {
    let id = uid("rcp");
    let topic = format!("rc/persist/{}", uid("t"));
    let mut o = opts(t, &id);
    o.set_clean_session(false);
    let (a, _) = Client::start(o.clone()).await?;
    a.c.subscribe(&topic, QoS::AtLeastOnce)
        .await
        .map_err(|e| e.to_string())?;
    tokio::time::sleep(s(0.3)).await;
    a.close().await;
    let (p, _) = Client::start(opts(t, &uid("rcw"))).await?;
    p.c.publish(&topic, QoS::AtLeastOnce, false, "queued")
        .await
        .map_err(|e| e.to_string())?;
    tokio::time::sleep(s(0.3)).await;
    p.close().await;
    let (mut a, present) = Client::start(o).await?;
    let m = a.next().await?;
    a.close().await;
    let mut clean = opts(t, &id);
    clean.set_clean_session(true);
    Client::start(clean).await?.0.close().await;
    (present && m.payload.as_ref() == b"queued")
        .then_some(())
        .ok_or(format!("present {present}, {m:?}"))
}

pub async fn rumqttc_retained_and_will(t: &Target) -> Result<(), String> {
    let topic = format!("rc/will/{}", uid("t"));
    let mut o = opts(t, &uid("rcd"));
    o.set_last_will(LastWill::new(&topic, "offline", QoS::AtLeastOnce, true));
    let (dying, _) = Client::start(o).await?;
    dying.vanish();
    tokio::time::sleep(s(0.5)).await;
    let (mut later, _) = Client::start(opts(t, &uid("rcl"))).await?;
    later
        .c
        .subscribe(&topic, QoS::AtLeastOnce)
        .await
        .map_err(|e| e.to_string())?;
    let m = later.next().await?;
    later
        .c
        .publish(&topic, QoS::AtLeastOnce, true, "")
        .await
        .map_err(|e| e.to_string())?;
    later.close().await;
    (m.payload.as_ref() == b"offline" && m.retain)
        .then_some(())
        .ok_or(format!("{m:?}"))
}

pub async fn rumqttc_v5_properties_and_session(t: &Target) -> Result<(), String> {
    use rumqttc::v5::mqttbytes::v5::PublishProperties;
    use rumqttc::v5::{AsyncClient as Client5, Event as Event5, MqttOptions as Opts5};
    let topic = format!("rc/v5/{}", uid("t"));
    let id = uid("rc5");
    let mut o = Opts5::new(&id, t.tcp.ip().to_string(), t.tcp.port());
    o.set_clean_start(true);
    o.set_session_expiry_interval(Some(300));
    let (c, mut ev) = Client5::new(o.clone(), 64);
    c.subscribe(&topic, rumqttc::v5::mqttbytes::QoS::AtLeastOnce)
        .await
        .map_err(|e| e.to_string())?;
    // Until the SUBACK, then drop the connection: the session stays (expiry 300 s).
    loop {
        match tokio::time::timeout(s(5.0), ev.poll()).await {
            Ok(Ok(Event5::Incoming(rumqttc::v5::Incoming::SubAck(_)))) => break,
            Ok(Ok(_)) => {}
            other => return Err(format!("SUBACK: {other:?}")),
        }
    }
    drop((c, ev));
    let (p, mut pev) = Client5::new(
        Opts5::new(uid("rc5p"), t.tcp.ip().to_string(), t.tcp.port()),
        64,
    );
    let props = PublishProperties {
        user_properties: vec![("k".into(), "v".into())],
        content_type: Some("text/plain".into()),
        ..Default::default()
    };
    p.publish_with_properties(
        &topic,
        rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
        false,
        "queued",
        props.clone(),
    )
    .await
    .map_err(|e| e.to_string())?;
    loop {
        match tokio::time::timeout(s(5.0), pev.poll()).await {
            Ok(Ok(Event5::Incoming(rumqttc::v5::Incoming::PubAck(_)))) => break,
            Ok(Ok(_)) => {}
            other => return Err(format!("PUBACK: {other:?}")),
        }
    }
    o.set_clean_start(false);
    let (_c, mut ev) = Client5::new(o, 64);
    let mut present = false;
    loop {
        match tokio::time::timeout(s(5.0), ev.poll()).await {
            Ok(Ok(Event5::Incoming(rumqttc::v5::Incoming::ConnAck(a)))) => {
                present = a.session_present
            }
            Ok(Ok(Event5::Incoming(rumqttc::v5::Incoming::Publish(m)))) => {
                let got = m.properties.unwrap_or_default();
                return (present
                    && m.payload.as_ref() == b"queued"
                    && got.user_properties == props.user_properties
                    && got.content_type == props.content_type)
                    .then_some(())
                    .ok_or(format!("present {present}, {got:?}"));
            }
            Ok(Ok(_)) => {}
            other => return Err(format!("queued message: {other:?}")),
        }
    }
}
