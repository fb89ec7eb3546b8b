//! MQTT 5 cases, raw packets.

use std::time::Instant;

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5;

use super::harness::Target;
use super::raw::{In, QoS5, Raw, connect5, filter5, publish5};
use super::{s, uid};

async fn client(
    t: &Target,
    id: &str,
    clean: bool,
    expiry: Option<u32>,
) -> Result<(Raw, v5::ConnAck), String> {
    let mut c = Raw::tcp(t.tcp, true).await;
    let ack = c.connect5(connect5(id, clean, 30, expiry), None).await?;
    if ack.code != v5::ConnectReturnCode::Success {
        return Err(format!("CONNACK {:?}", ack.code));
    }
    Ok((c, ack))
}

async fn subscriber(t: &Target, filter: &str, qos: QoS5) -> Result<Raw, String> {
    let (mut c, _) = client(t, &uid("sub5"), true, None).await?;
    let ack = c.subscribe5(1, vec![filter5(filter, qos)], None).await?;
    match ack.return_codes.first() {
        Some(v5::SubscribeReasonCode::Success(_)) => Ok(c),
        other => Err(format!("SUBACK {other:?}")),
    }
}

async fn publisher(t: &Target) -> Result<Raw, String> {
    Ok(client(t, &uid("pub5"), true, None).await?.0)
}

fn will_delay(secs: u32) -> v5::LastWillProperties {
    v5::LastWillProperties {
        delay_interval: Some(secs),
        payload_format_indicator: None,
        message_expiry_interval: None,
        content_type: None,
        response_topic: None,
        correlation_data: None,
        user_properties: vec![],
    }
}

fn text(p: &v5::Publish) -> String {
    String::from_utf8_lossy(&p.payload).into_owned()
}

/// §3.1.2.10: keep alive 0 is accepted and the connection stays up.
pub async fn v5_keepalive_zero_is_accepted(t: &Target) -> Result<(), String> {
    let topic = format!("ka0v5/{}", uid("t"));
    let mut c = Raw::tcp(t.tcp, true).await;
    let ack = c
        .connect5(connect5(&uid("ka0"), true, 0, None), None)
        .await?;
    if ack.code != v5::ConnectReturnCode::Success {
        return Err(format!("CONNACK {:?}", ack.code));
    }
    tokio::time::sleep(s(3.0)).await;
    c.subscribe5(1, vec![filter5(&topic, QoS5::AtLeastOnce)], None)
        .await?;
    c.publish5(publish5(&topic, QoS5::AtLeastOnce, 2, "hi"))
        .await?;
    let m = c.next_publish5(s(3.0)).await?;
    (text(&m) == "hi")
        .then_some(())
        .ok_or("wrong payload".into())
}

/// §3.1.3-6: an empty client id gets one assigned (Assigned Client Identifier).
pub async fn v5_assigned_client_id(t: &Target) -> Result<(), String> {
    let mut c = Raw::tcp(t.tcp, true).await;
    let ack = c.connect5(connect5("", true, 30, None), None).await?;
    let assigned = ack
        .properties
        .as_ref()
        .and_then(|p| p.assigned_client_identifier.clone())
        .unwrap_or_default();
    (ack.code == v5::ConnectReturnCode::Success && !assigned.is_empty())
        .then_some(())
        .ok_or(format!("CONNACK {:?}, assigned {assigned:?}", ack.code))
}

/// A session with an expiry keeps QoS 1/2 messages while offline; one whose expiry passed is gone.
pub async fn v5_session_expiry(t: &Target) -> Result<(), String> {
    let keep = uid("keep");
    let short = uid("short");
    let topic = format!("expiry/{}", uid("t"));
    for (id, secs) in [(&keep, 300), (&short, 1)] {
        let (mut c, _) = client(t, id, true, Some(secs)).await?;
        c.subscribe5(1, vec![filter5(&topic, QoS5::ExactlyOnce)], None)
            .await?;
        c.send5(v5::Packet::Disconnect(v5::Disconnect::new(
            v5::DisconnectReasonCode::NormalDisconnection,
        )))
        .await?;
    }
    let mut p = publisher(t).await?;
    p.publish5(publish5(&topic, QoS5::AtLeastOnce, 1, "q1"))
        .await?;
    p.publish5(publish5(&topic, QoS5::ExactlyOnce, 2, "q2"))
        .await?;
    tokio::time::sleep(s(3.0)).await;
    let (mut k, ack) = client(t, &keep, false, Some(300)).await?;
    if !ack.session_present {
        return Err("the 300 s session is gone after 3 s".into());
    }
    let got: Vec<String> = k.drain5(s(1.5)).await.iter().map(text).collect();
    if got != ["q1", "q2"] {
        return Err(format!("queued messages: {got:?}"));
    }
    let (_, ack) = client(t, &short, false, Some(0)).await?;
    if ack.session_present {
        return Err("the 1 s session was still there after 3 s".into());
    }
    client(t, &keep, true, Some(0)).await?;
    Ok(())
}

/// A will with a delay is sent after the delay, not at once (§3.1.3.2.2).
pub async fn v5_will_delay(t: &Target) -> Result<(), String> {
    let topic = format!("wdelay/{}", uid("t"));
    let mut watcher = subscriber(t, &topic, QoS5::AtLeastOnce).await?;
    let mut c = Raw::tcp(t.tcp, true).await;
    let will = v5::LastWill::new(
        &topic,
        "late",
        QoS5::AtLeastOnce,
        false,
        Some(will_delay(2)),
    );
    c.connect5(connect5(&uid("wd"), true, 30, Some(10)), Some(will))
        .await?;
    drop(c);
    let start = Instant::now();
    let m = watcher.next_publish5(s(6.0)).await?;
    let after = start.elapsed().as_secs_f64();
    if text(&m) != "late" || after < 1.5 {
        return Err(format!(
            "will {:?} after {after:.1} s (delay 2 s)",
            text(&m)
        ));
    }
    Ok(())
}

/// Reconnecting within the will delay cancels the will.
pub async fn v5_will_delay_cancelled_by_reconnect(t: &Target) -> Result<(), String> {
    let topic = format!("wcancel/{}", uid("t"));
    let id = uid("wc");
    let mut watcher = subscriber(t, &topic, QoS5::AtLeastOnce).await?;
    let mut c = Raw::tcp(t.tcp, true).await;
    let will = v5::LastWill::new(
        &topic,
        "should-not",
        QoS5::AtLeastOnce,
        false,
        Some(will_delay(3)),
    );
    c.connect5(connect5(&id, false, 30, Some(30)), Some(will))
        .await?;
    drop(c);
    tokio::time::sleep(s(0.5)).await;
    let (mut back, _) = client(t, &id, false, Some(30)).await?;
    let got = watcher.drain5(s(4.0)).await;
    back.send5(v5::Packet::Disconnect(v5::Disconnect::new(
        v5::DisconnectReasonCode::NormalDisconnection,
    )))
    .await?;
    client(t, &id, true, Some(0)).await?;
    got.is_empty()
        .then_some(())
        .ok_or(format!("will sent although the client came back: {got:?}"))
}

/// DISCONNECT with reason 0x04 asks for the will to be sent.
pub async fn v5_disconnect_with_will(t: &Target) -> Result<(), String> {
    let topic = format!("wdisc/{}", uid("t"));
    let mut watcher = subscriber(t, &topic, QoS5::AtLeastOnce).await?;
    let mut c = Raw::tcp(t.tcp, true).await;
    let will = v5::LastWill::new(&topic, "asked", QoS5::AtLeastOnce, false, None);
    c.connect5(connect5(&uid("wd4"), true, 30, None), Some(will))
        .await?;
    c.send5(v5::Packet::Disconnect(v5::Disconnect::new(
        v5::DisconnectReasonCode::DisconnectWithWillMessage,
    )))
    .await?;
    let m = watcher.next_publish5(s(3.0)).await?;
    (text(&m) == "asked")
        .then_some(())
        .ok_or("wrong will".into())
}

/// Publish properties reach the subscriber unchanged: user properties (order and repeated
/// keys), content type, response topic, correlation data, payload format indicator.
pub async fn v5_properties_carried_through(t: &Target) -> Result<(), String> {
    let topic = format!("props/{}", uid("t"));
    let mut sub = subscriber(t, &topic, QoS5::AtLeastOnce).await?;
    let mut p = publisher(t).await?;
    let props = v5::PublishProperties {
        payload_format_indicator: Some(1),
        response_topic: Some(format!("{topic}/reply")),
        correlation_data: Some(Bytes::from_static(b"\x00\x01corr")),
        user_properties: vec![
            ("b".into(), "2".into()),
            ("a".into(), "1".into()),
            ("a".into(), "again".into()),
            ("中文".into(), "值".into()),
        ],
        content_type: Some("application/json".into()),
        ..Default::default()
    };
    let mut m = publish5(&topic, QoS5::AtLeastOnce, 1, "{\"x\":1}");
    m.properties = Some(props.clone());
    p.publish5(m).await?;
    let got = sub.next_publish5(s(3.0)).await?;
    let g = got.properties.clone().unwrap_or_default();
    let mut problems = Vec::new();
    if g.payload_format_indicator != props.payload_format_indicator {
        problems.push(format!("payload format {:?}", g.payload_format_indicator));
    }
    if g.response_topic != props.response_topic {
        problems.push(format!("response topic {:?}", g.response_topic));
    }
    if g.correlation_data != props.correlation_data {
        problems.push(format!("correlation data {:?}", g.correlation_data));
    }
    if g.user_properties != props.user_properties {
        problems.push(format!("user properties {:?}", g.user_properties));
    }
    if g.content_type != props.content_type {
        problems.push(format!("content type {:?}", g.content_type));
    }
    problems.is_empty().then_some(()).ok_or(problems.join("; "))
}

/// Message expiry: a message that expires while queued is dropped; one that does not arrives
/// with its remaining lifetime (§3.3.2.3.3).
pub async fn v5_message_expiry(t: &Target) -> Result<(), String> {
    let id = uid("mexp");
    let topic = format!("mexp/{}", uid("t"));
    let (mut c, _) = client(t, &id, true, Some(300)).await?;
    c.subscribe5(1, vec![filter5(&topic, QoS5::AtLeastOnce)], None)
        .await?;
    c.send5(v5::Packet::Disconnect(v5::Disconnect::new(
        v5::DisconnectReasonCode::NormalDisconnection,
    )))
    .await?;
    let mut p = publisher(t).await?;
    for (i, (secs, body)) in [(1u32, "expires"), (60, "lives")].into_iter().enumerate() {
        let mut m = publish5(&topic, QoS5::AtLeastOnce, i as u16 + 1, body);
        m.properties = Some(v5::PublishProperties {
            message_expiry_interval: Some(secs),
            ..Default::default()
        });
        p.publish5(m).await?;
    }
    tokio::time::sleep(s(3.0)).await;
    let (mut c, _) = client(t, &id, false, Some(300)).await?;
    let got = c.drain5(s(1.5)).await;
    client(t, &id, true, Some(0)).await?;
    let bodies: Vec<String> = got.iter().map(text).collect();
    if bodies != ["lives"] {
        return Err(format!("delivered {bodies:?}, expected only \"lives\""));
    }
    let left = got[0]
        .properties
        .as_ref()
        .and_then(|p| p.message_expiry_interval)
        .unwrap_or(0);
    (1..60)
        .contains(&left)
        .then_some(())
        .ok_or(format!("remaining expiry {left}, expected under 60"))
}

/// Subscription identifiers come back on the messages they matched (§3.8.2.1.2).
pub async fn v5_subscription_identifiers(t: &Target) -> Result<(), String> {
    let base = format!("subid/{}", uid("t"));
    let (mut c, _) = client(t, &uid("sid"), true, None).await?;
    c.subscribe5(
        1,
        vec![filter5(&format!("{base}/#"), QoS5::AtLeastOnce)],
        Some(7),
    )
    .await?;
    c.subscribe5(
        2,
        vec![filter5(&format!("{base}/+"), QoS5::AtLeastOnce)],
        Some(9),
    )
    .await?;
    let mut p = publisher(t).await?;
    p.publish5(publish5(&format!("{base}/a"), QoS5::AtLeastOnce, 1, "x"))
        .await?;
    let got = c.drain5(s(1.5)).await;
    let mut ids: Vec<usize> = got
        .iter()
        .flat_map(|m| {
            m.properties
                .clone()
                .unwrap_or_default()
                .subscription_identifiers
        })
        .collect();
    ids.sort();
    ids.dedup();
    (ids == [7, 9]).then_some(()).ok_or(format!(
        "subscription ids {ids:?} over {} message(s)",
        got.len()
    ))
}

/// A client's topic alias: set with the topic, then used alone (§3.3.2.3.4).
pub async fn v5_client_topic_alias(t: &Target) -> Result<(), String> {
    let topic = format!("alias/{}", uid("t"));
    let mut sub = subscriber(t, &topic, QoS5::AtLeastOnce).await?;
    let (mut p, ack) = client(t, &uid("al"), true, None).await?;
    let max = ack
        .properties
        .as_ref()
        .and_then(|p| p.topic_alias_max)
        .unwrap_or(0);
    if max == 0 {
        return Err("the broker takes no topic aliases".into());
    }
    let mut first = publish5(&topic, QoS5::AtLeastOnce, 1, "one");
    first.properties = Some(v5::PublishProperties {
        topic_alias: Some(1),
        ..Default::default()
    });
    p.publish5(first).await?;
    let mut second = publish5("", QoS5::AtLeastOnce, 2, "two");
    second.properties = Some(v5::PublishProperties {
        topic_alias: Some(1),
        ..Default::default()
    });
    p.publish5(second).await?;
    let got = sub.drain5(s(1.5)).await;
    let seen: Vec<(String, String)> = got
        .iter()
        .map(|m| (String::from_utf8_lossy(&m.topic).into_owned(), text(m)))
        .collect();
    (seen == [(topic.clone(), "one".into()), (topic.clone(), "two".into())])
        .then_some(())
        .ok_or(format!("delivered {seen:?}"))
}

/// Topic alias 0 is a protocol error: the server says so with a DISCONNECT before closing.
pub async fn v5_topic_alias_zero_gets_a_disconnect(t: &Target) -> Result<(), String> {
    let (mut c, _) = client(t, &uid("al0"), true, None).await?;
    let mut m = publish5(&format!("alias0/{}", uid("t")), QoS5::AtLeastOnce, 1, "bad");
    m.properties = Some(v5::PublishProperties {
        topic_alias: Some(0),
        ..Default::default()
    });
    c.send5(v5::Packet::Publish(m)).await?;
    let seen = c.until_closed(s(3.0)).await?;
    let reason = seen.iter().find_map(|p| match p {
        In::V5(v5::Packet::Disconnect(d)) => Some(d.reason_code as u8),
        _ => None,
    });
    match reason {
        Some(r) if r >= 0x80 => Ok(()),
        other => Err(format!("closed with DISCONNECT reason {other:?}")),
    }
}

/// The client's Maximum Packet Size: larger messages are not sent to it, smaller ones are.
pub async fn v5_maximum_packet_size(t: &Target) -> Result<(), String> {
    let topic = format!("maxpkt/{}", uid("t"));
    let mut c = Raw::tcp(t.tcp, true).await;
    let mut connect = connect5(&uid("mp"), true, 30, None);
    if let Some(p) = connect.properties.as_mut() {
        p.max_packet_size = Some(200);
    }
    c.connect5(connect, None).await?;
    c.subscribe5(1, vec![filter5(&topic, QoS5::AtLeastOnce)], None)
        .await?;
    let mut p = publisher(t).await?;
    p.publish5(publish5(&topic, QoS5::AtLeastOnce, 1, vec![b'x'; 1000]))
        .await?;
    p.publish5(publish5(&topic, QoS5::AtLeastOnce, 2, "small"))
        .await?;
    let got: Vec<String> = c.drain5(s(1.5)).await.iter().map(text).collect();
    (got == ["small"]).then_some(()).ok_or(format!(
        "delivered {:?}",
        got.iter().map(String::len).collect::<Vec<_>>()
    ))
}

/// No Local: a client does not get its own messages back on that subscription.
pub async fn v5_no_local(t: &Target) -> Result<(), String> {
    let topic = format!("nolocal/{}", uid("t"));
    let (mut a, _) = client(t, &uid("nla"), true, None).await?;
    let mut f = filter5(&topic, QoS5::AtLeastOnce);
    f.nolocal = true;
    a.subscribe5(1, vec![f], None).await?;
    let mut other = subscriber(t, &topic, QoS5::AtLeastOnce).await?;
    a.publish5(publish5(&topic, QoS5::AtLeastOnce, 2, "mine"))
        .await?;
    let others = other.drain5(s(1.0)).await;
    let own = a.drain5(s(0.3)).await;
    (own.is_empty() && others.len() == 1)
        .then_some(())
        .ok_or(format!("own copies {}, others {}", own.len(), others.len()))
}

/// Retain As Published and Retain Handling (§3.8.3.1).
pub async fn v5_retain_options(t: &Target) -> Result<(), String> {
    let topic = format!("rap/{}", uid("t"));
    let (mut a, _) = client(t, &uid("rap"), true, None).await?;
    let mut f = filter5(&topic, QoS5::AtLeastOnce);
    f.preserve_retain = true;
    a.subscribe5(1, vec![f], None).await?;
    let mut p = publisher(t).await?;
    let mut m = publish5(&topic, QoS5::AtLeastOnce, 1, "kept");
    m.retain = true;
    p.publish5(m).await?;
    let live = a.next_publish5(s(3.0)).await?;
    if !live.retain {
        return Err("retain-as-published lost the flag".into());
    }
    // Retain Handling 2: never send retained messages on subscribe.
    let (mut b, _) = client(t, &uid("rh2"), true, None).await?;
    let mut f = filter5(&topic, QoS5::AtLeastOnce);
    f.retain_forward_rule = v5::RetainForwardRule::Never;
    b.subscribe5(1, vec![f], None).await?;
    let never = b.drain5(s(1.0)).await;
    // Retain Handling 1: only when the subscription is new.
    let (mut c, _) = client(t, &uid("rh1"), true, None).await?;
    let mut f = filter5(&topic, QoS5::AtLeastOnce);
    f.retain_forward_rule = v5::RetainForwardRule::OnNewSubscribe;
    c.subscribe5(1, vec![f.clone()], None).await?;
    let first = c.drain5(s(1.0)).await;
    c.subscribe5(2, vec![f], None).await?;
    let again = c.drain5(s(1.0)).await;
    let mut clear = publish5(&topic, QoS5::AtLeastOnce, 3, "");
    clear.retain = true;
    p.publish5(clear).await?;
    (never.is_empty() && first.len() == 1 && again.is_empty())
        .then_some(())
        .ok_or(format!(
            "retain handling: never {} / new {} / again {}",
            never.len(),
            first.len(),
            again.len()
        ))
}

/// Receive Maximum: at most that many unacknowledged QoS 1 messages at once (§4.9).
pub async fn v5_receive_maximum(t: &Target) -> Result<(), String> {
    let topic = format!("flow/{}", uid("t"));
    let mut c = Raw::tcp(t.tcp, true).await;
    let mut connect = connect5(&uid("rm"), true, 30, None);
    if let Some(p) = connect.properties.as_mut() {
        p.receive_maximum = Some(2);
    }
    c.connect5(connect, None).await?;
    c.subscribe5(1, vec![filter5(&topic, QoS5::AtLeastOnce)], None)
        .await?;
    let mut p = publisher(t).await?;
    for i in 0..5u16 {
        p.publish5(publish5(&topic, QoS5::AtLeastOnce, i + 1, i.to_string()))
            .await?;
    }
    let mut held = Vec::new();
    let deadline = tokio::time::Instant::now() + s(1.5);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match c.recv(left).await {
            Ok(In::V5(v5::Packet::Publish(m))) => held.push(m),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    if held.len() != 2 {
        return Err(format!(
            "{} unacknowledged messages in flight, receive maximum 2",
            held.len()
        ));
    }
    for m in &held {
        c.ack5(m).await?;
    }
    let rest = c.drain5(s(2.0)).await;
    (rest.len() == 3)
        .then_some(())
        .ok_or(format!("after acknowledging, {} more", rest.len()))
}

/// A take-over closes the old connection with DISCONNECT 0x8E (Session taken over).
pub async fn v5_take_over_says_why(t: &Target) -> Result<(), String> {
    let id = uid("to5");
    let (mut a, _) = client(t, &id, true, None).await?;
    let (_b, _) = client(t, &id, true, None).await?;
    let seen = a.until_closed(s(3.0)).await?;
    let reason = seen.iter().find_map(|p| match p {
        In::V5(v5::Packet::Disconnect(d)) => Some(d.reason_code as u8),
        _ => None,
    });
    (reason == Some(0x8E)).then_some(()).ok_or(format!(
        "old connection closed with DISCONNECT reason {reason:?}"
    ))
}

/// A persistent session's queued messages survive between connections (MQTT 5 flavour).
pub async fn v5_persistent_session_queues_while_offline(t: &Target) -> Result<(), String> {
    let id = uid("p5");
    let topic = format!("p5/{}", uid("t"));
    let (mut a, _) = client(t, &id, true, Some(600)).await?;
    a.subscribe5(1, vec![filter5(&topic, QoS5::ExactlyOnce)], None)
        .await?;
    drop(a);
    tokio::time::sleep(s(0.3)).await;
    let mut p = publisher(t).await?;
    p.publish5(publish5(&topic, QoS5::AtLeastOnce, 1, "one"))
        .await?;
    p.publish5(publish5(&topic, QoS5::ExactlyOnce, 2, "two"))
        .await?;
    tokio::time::sleep(s(0.3)).await;
    let (mut a, ack) = client(t, &id, false, Some(600)).await?;
    let got: Vec<String> = a.drain5(s(1.5)).await.iter().map(text).collect();
    client(t, &id, true, Some(0)).await?;
    (ack.session_present && got == ["one", "two"])
        .then_some(())
        .ok_or(format!(
            "session present {}, got {got:?}",
            ack.session_present
        ))
}

/// Shared subscriptions: each message goes to one member of the group (§4.8.2).
pub async fn v5_shared_subscription(t: &Target) -> Result<(), String> {
    let topic = format!("shared/{}", uid("t"));
    let group = format!("$share/{}/{topic}", uid("g"));
    let mut members = Vec::new();
    for _ in 0..2 {
        members.push(subscriber(t, &group, QoS5::AtLeastOnce).await?);
    }
    let mut p = publisher(t).await?;
    for i in 0..10u16 {
        p.publish5(publish5(&topic, QoS5::AtLeastOnce, i + 1, i.to_string()))
            .await?;
    }
    let mut total = Vec::new();
    for m in members.iter_mut() {
        total.extend(m.drain5(s(1.0)).await.iter().map(text));
    }
    total.sort();
    total.dedup();
    let n = total.len();
    let all: usize = 10;
    (n == all)
        .then_some(())
        .ok_or(format!("{n} distinct of 10 delivered across the group"))
}

/// A refused subscription says why in its reason code (here: an invalid shared filter).
pub async fn v5_invalid_filter_refused_with_a_reason(t: &Target) -> Result<(), String> {
    let (mut c, _) = client(t, &uid("badf"), true, None).await?;
    let ack = c
        .subscribe5(
            1,
            vec![filter5(&format!("bad/#/{}", uid("t")), QoS5::AtMostOnce)],
            None,
        )
        .await;
    match ack {
        Ok(a) => match a.return_codes.first() {
            Some(v5::SubscribeReasonCode::Success(_)) | None => {
                Err(format!("a filter with # in the middle was granted: {a:?}"))
            }
            Some(_) => Ok(()),
        },
        // Closing the connection (with a DISCONNECT) is also allowed for a malformed filter.
        Err(_) => Ok(()),
    }
}
