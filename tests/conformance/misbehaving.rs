//! Clients that break the rules: each is disconnected (MQTT 5 clients with a reason where the
//! protocol has one) and nobody else notices. Every case ends with a fresh client that
//! connects and gets a message.

use std::time::Duration;

use rumqttc::mqttbytes::v4;
use rumqttc::v5::mqttbytes::v5;

use super::harness::Target;
use super::raw::{In, QoS, Raw, connect4, connect5, mstr, packet};
use super::{fresh_round_trip, s, uid};

/// Sends `bytes` on a new connection (after a CONNECT when `connect` is Some(version)) and
/// expects the broker to close it within 5 s.
async fn closes(t: &Target, connect: Option<u8>, bytes: &[u8]) -> Result<Vec<In>, String> {
    let v5 = connect == Some(5);
    let mut c = Raw::tcp(t.tcp, v5).await;
    match connect {
        Some(4) => {
            let (_, code) = c.connect4(connect4(&uid("bad"), true, 30)).await?;
            if code != 0 {
                return Err(format!("CONNACK {code}"));
            }
        }
        Some(5) => {
            c.connect5(connect5(&uid("bad5"), true, 30, None), None)
                .await?;
        }
        _ => {}
    }
    // The broker may close before it has read everything: a failed write is fine.
    let _ = c.bytes(bytes).await;
    c.until_closed(Duration::from_secs(5)).await
}

/// The DISCONNECT reason an MQTT 5 client was sent before the close.
fn reason(seen: &[In]) -> Option<u8> {
    seen.iter().find_map(|p| match p {
        In::V5(v5::Packet::Disconnect(d)) => Some(d.reason_code as u8),
        _ => None,
    })
}

async fn then_fresh(t: &Target, r: Result<Vec<In>, String>) -> Result<(), String> {
    r?;
    fresh_round_trip(t).await
}

pub async fn garbage_instead_of_connect(t: &Target) -> Result<(), String> {
    let junk: Vec<u8> = (0..200u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
        .collect();
    then_fresh(t, closes(t, None, &junk).await).await
}

pub async fn subscribe_before_connect(t: &Target) -> Result<(), String> {
    let mut body = vec![0, 1];
    body.extend(mstr(b"a/b"));
    body.push(0);
    then_fresh(t, closes(t, None, &packet(0x82, &body)).await).await
}

pub async fn wrong_protocol_name(t: &Target) -> Result<(), String> {
    let mut body = mstr(b"MQTX");
    body.extend([4, 2, 0, 30]);
    body.extend(mstr(uid("name").as_bytes()));
    then_fresh(t, closes(t, None, &packet(0x10, &body)).await).await
}

pub async fn unknown_protocol_level(t: &Target) -> Result<(), String> {
    let mut body = mstr(b"MQTT");
    body.extend([9, 2, 0, 30]);
    body.extend(mstr(uid("lvl").as_bytes()));
    then_fresh(t, closes(t, None, &packet(0x10, &body)).await).await
}

pub async fn reserved_connect_flag(t: &Target) -> Result<(), String> {
    let mut body = mstr(b"MQTT");
    body.extend([4, 0x03, 0, 30]);
    body.extend(mstr(uid("rsv").as_bytes()));
    then_fresh(t, closes(t, None, &packet(0x10, &body)).await).await
}

pub async fn second_connect(t: &Target) -> Result<(), String> {
    let mut body = mstr(b"MQTT");
    body.extend([4, 2, 0, 30]);
    body.extend(mstr(uid("again").as_bytes()));
    then_fresh(t, closes(t, Some(4), &packet(0x10, &body)).await).await
}

pub async fn remaining_length_over_four_bytes(t: &Target) -> Result<(), String> {
    then_fresh(
        t,
        closes(t, Some(4), &[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]).await,
    )
    .await
}

pub async fn subscribe_with_wrong_flags(t: &Target) -> Result<(), String> {
    let mut body = vec![0, 1];
    body.extend(mstr(b"a/b"));
    body.push(0);
    then_fresh(t, closes(t, Some(4), &packet(0x80, &body)).await).await
}

pub async fn publish_qos_3(t: &Target) -> Result<(), String> {
    let mut body = mstr(b"a/b");
    body.extend([0, 1]);
    body.extend(b"x");
    then_fresh(t, closes(t, Some(4), &packet(0x36, &body)).await).await
}

pub async fn publish_to_a_wildcard_topic(t: &Target) -> Result<(), String> {
    let mut body = mstr(b"a/+/b");
    body.extend(b"x");
    then_fresh(t, closes(t, Some(4), &packet(0x30, &body)).await).await
}

pub async fn publish_topic_not_utf8(t: &Target) -> Result<(), String> {
    let mut body = mstr(&[b'a', 0xFF, 0xFE, b'b']);
    body.extend(b"x");
    then_fresh(t, closes(t, Some(4), &packet(0x30, &body)).await).await
}

pub async fn qos1_with_packet_id_zero(t: &Target) -> Result<(), String> {
    let mut body = mstr(b"a/b");
    body.extend([0, 0]);
    body.extend(b"x");
    then_fresh(t, closes(t, Some(4), &packet(0x32, &body)).await).await
}

pub async fn subscribe_without_filters(t: &Target) -> Result<(), String> {
    then_fresh(t, closes(t, Some(4), &packet(0x82, &[0, 1])).await).await
}

pub async fn unsubscribe_without_filters(t: &Target) -> Result<(), String> {
    then_fresh(t, closes(t, Some(4), &packet(0xA2, &[0, 1])).await).await
}

/// Half a CONNECT, then the client vanishes.
pub async fn truncated_connect_then_gone(t: &Target) -> Result<(), String> {
    let mut c = Raw::tcp(t.tcp, false).await;
    c.bytes(&[0x10, 40, 0, 4, b'M', b'Q']).await?;
    drop(c);
    fresh_round_trip(t).await
}

/// MQTT 5: a PUBLISH with an unknown property is malformed; DISCONNECT ≥ 0x80 then close.
pub async fn v5_unknown_property_gets_a_reason(t: &Target) -> Result<(), String> {
    let mut body = mstr(b"a/b");
    body.extend([0, 1]); // packet id
    body.extend([2, 0x7F, 0]); // properties: id 0x7F does not exist
    body.extend(b"x");
    let seen = closes(t, Some(5), &packet(0x32, &body)).await?;
    match reason(&seen) {
        Some(r) if r >= 0x80 => fresh_round_trip(t).await,
        other => Err(format!("closed with DISCONNECT reason {other:?}")),
    }
}

/// MQTT 5: publishing to a wildcard topic gets DISCONNECT with a reason, then close.
pub async fn v5_wildcard_topic_gets_a_reason(t: &Target) -> Result<(), String> {
    let mut body = mstr(b"a/#");
    body.push(0); // no properties
    body.extend(b"x");
    let seen = closes(t, Some(5), &packet(0x30, &body)).await?;
    match reason(&seen) {
        Some(r) if r >= 0x80 => fresh_round_trip(t).await,
        other => Err(format!("closed with DISCONNECT reason {other:?}")),
    }
}

/// A subscriber that never reads while a publisher floods its topic: the others are served
/// all along (each round trip within 2 s).
pub async fn slow_reader_hurts_nobody(t: &Target) -> Result<(), String> {
    let topic = format!("flood/{}", uid("t"));
    let sock = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
    sock.set_recv_buffer_size(4096).ok();
    let stream = sock.connect(t.tcp).await.map_err(|e| e.to_string())?;
    let mut slow = Raw::from_stream(stream, false);
    slow.connect4(connect4(&uid("slow"), true, 0)).await?;
    slow.subscribe4(1, &[(&topic, QoS::AtMostOnce)]).await?;
    // From here on `slow` reads nothing.
    let flood_topic = topic.clone();
    let target = t.tcp;
    let flood = tokio::spawn(async move {
        let mut p = Raw::tcp(target, false).await;
        if p.connect4(connect4(&uid("flood"), true, 30)).await.is_err() {
            return;
        }
        let payload = vec![b'f'; 1024];
        let until = tokio::time::Instant::now() + Duration::from_secs(4);
        while tokio::time::Instant::now() < until {
            let m = v4::Publish::new(&flood_topic, QoS::AtMostOnce, payload.clone());
            if p.send4(v4::Packet::Publish(m)).await.is_err() {
                return;
            }
        }
    });
    let mut worst = 0.0f64;
    for _ in 0..6 {
        let start = std::time::Instant::now();
        tokio::time::timeout(s(2.0), fresh_round_trip(t))
            .await
            .map_err(|_| "a round trip took over 2 s during the flood".to_owned())??;
        worst = worst.max(start.elapsed().as_secs_f64());
        tokio::time::sleep(s(0.5)).await;
    }
    flood.abort();
    drop(slow);
    fresh_round_trip(t)
        .await
        .map_err(|e| format!("after the flood (worst {worst:.2} s): {e}"))
}

/// Connections that open and say nothing, and connections that send noise after a valid
/// CONNECT: the broker serves a fresh client meanwhile.
pub async fn silent_and_noisy_connections(t: &Target) -> Result<(), String> {
    let mut silent = Vec::new();
    for _ in 0..100 {
        silent.push(
            tokio::net::TcpStream::connect(t.tcp)
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut noisy = Vec::new();
    for i in 0..30 {
        let v5 = i % 2 == 1;
        let mut c = Raw::tcp(t.tcp, v5).await;
        if v5 {
            c.connect5(connect5(&uid("noise5"), true, 30, None), None)
                .await?;
        } else {
            c.connect4(connect4(&uid("noise"), true, 30)).await?;
        }
        let noise: Vec<u8> = (0..300)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        let _ = c.bytes(&noise).await;
        noisy.push(c);
    }
    fresh_round_trip(t).await?;
    drop(silent);
    drop(noisy);
    fresh_round_trip(t).await
}

/// A v5 client disconnected for a protocol error is told why, and its will is published.
pub async fn v5_protocol_error_publishes_the_will(t: &Target) -> Result<(), String> {
    let topic = format!("perr/{}", uid("t"));
    let mut watcher = Raw::tcp(t.tcp, true).await;
    watcher
        .connect5(connect5(&uid("pw"), true, 30, None), None)
        .await?;
    watcher
        .subscribe5(
            1,
            vec![super::raw::filter5(&topic, super::raw::QoS5::AtLeastOnce)],
            None,
        )
        .await?;
    let mut c = Raw::tcp(t.tcp, true).await;
    let will = v5::LastWill::new(&topic, "broken", super::raw::QoS5::AtLeastOnce, false, None);
    c.connect5(connect5(&uid("perr"), true, 30, None), Some(will))
        .await?;
    let mut body = mstr(b"x/#");
    body.push(0);
    let _ = c.bytes(&packet(0x30, &body)).await;
    c.until_closed(s(5.0)).await?;
    let w = watcher.next_publish5(s(3.0)).await?;
    (w.payload.as_ref() == b"broken")
        .then_some(())
        .ok_or("wrong will".into())
}

/// MQTT 5: a second CONNECT is a protocol error (0x82); the reason string is one short
/// sentence, never the packet (a CONNECT carries a password).
pub async fn v5_second_connect_gets_a_short_reason(t: &Target) -> Result<(), String> {
    let mut c = Raw::tcp(t.tcp, true).await;
    c.connect5(connect5(&uid("twice"), true, 30, None), None)
        .await?;
    let _ = c
        .send5(v5::Packet::Connect(
            connect5(&uid("twice"), true, 30, None),
            None,
            Some(v5::Login::new("user", super::PASSWORD)),
        ))
        .await;
    let seen = c.until_closed(Duration::from_secs(5)).await?;
    let d = seen.iter().find_map(|p| match p {
        In::V5(v5::Packet::Disconnect(d)) => Some(d.clone()),
        _ => None,
    });
    let Some(d) = d else {
        return Err("closed without a DISCONNECT".into());
    };
    let why = d
        .properties
        .and_then(|p| p.reason_string)
        .unwrap_or_default();
    if why.contains(super::PASSWORD) || why.len() > 120 {
        return Err(format!("reason string of {} bytes: {why}", why.len()));
    }
    (d.reason_code as u8 == 0x82)
        .then_some(())
        .ok_or(format!("reason {:#04x}", d.reason_code as u8))
        .and(Ok(()))?;
    fresh_round_trip(t).await
}
