//! MQTT 3.1.1 cases, raw packets. Each case names its own topics and client ids, so cases run
//! side by side on one broker.

use std::time::Instant;

use rumqttc::mqttbytes::v4;

use super::harness::Target;
use super::raw::{In, QoS, Raw, connect4};
use super::{s, uid};

/// A subscriber on `filter` at `qos` (clean session).
async fn subscriber(t: &Target, filter: &str, qos: QoS) -> Result<Raw, String> {
    let mut c = Raw::tcp(t.tcp, false).await;
    let (_, code) = c.connect4(connect4(&uid("sub"), true, 30)).await?;
    if code != 0 {
        return Err(format!("CONNACK {code}"));
    }
    let codes = c.subscribe4(1, &[(filter, qos)]).await?;
    if codes.first().is_none_or(|c| *c >= 0x80) {
        return Err(format!("SUBACK {codes:?}"));
    }
    Ok(c)
}

async fn publisher(t: &Target) -> Result<Raw, String> {
    let mut c = Raw::tcp(t.tcp, false).await;
    let (_, code) = c.connect4(connect4(&uid("pub"), true, 30)).await?;
    if code != 0 {
        return Err(format!("CONNACK {code}"));
    }
    Ok(c)
}

fn text(p: &v4::Publish) -> String {
    String::from_utf8_lossy(&p.payload).into_owned()
}

/// MQTT 3.1.1 §3.1.2.10: keep alive 0 turns the mechanism off; the client stays connected.
pub async fn keepalive_zero_is_accepted(t: &Target) -> Result<(), String> {
    let topic = format!("ka0/{}", uid("t"));
    let mut c = Raw::tcp(t.tcp, false).await;
    let (_, code) = c.connect4(connect4(&uid("ka0"), true, 0)).await?;
    if code != 0 {
        return Err(format!("CONNACK {code} for keep alive 0"));
    }
    tokio::time::sleep(s(3.0)).await;
    c.send4(v4::Packet::PingReq).await?;
    c.wait_for(s(3.0), "PINGRESP after 3 s idle", |p| {
        matches!(p, In::V4(v4::Packet::PingResp)).then_some(())
    })
    .await?;
    c.subscribe4(1, &[(&topic, QoS::AtLeastOnce)]).await?;
    c.publish4(&topic, QoS::AtLeastOnce, false, 2, "hello")
        .await?;
    let p = c.next_publish4(s(3.0)).await?;
    (text(&p) == "hello")
        .then_some(())
        .ok_or("wrong payload".into())
}

/// §3.1.2.10: no packet for 1.5 × keep alive and the server disconnects (and sends the will).
pub async fn keepalive_is_enforced_at_one_and_a_half(t: &Target) -> Result<(), String> {
    let will_topic = format!("ka/{}/will", uid("t"));
    let mut watcher = subscriber(t, &will_topic, QoS::AtLeastOnce).await?;
    let mut c = Raw::tcp(t.tcp, false).await;
    let mut connect = connect4(&uid("ka2"), true, 2);
    connect.last_will = Some(v4::LastWill::new(
        &will_topic,
        "silent",
        QoS::AtLeastOnce,
        false,
    ));
    c.connect4(connect).await?;
    let start = Instant::now();
    c.until_closed(s(8.0)).await?;
    let after = start.elapsed().as_secs_f64();
    // 1.5 × 2 s = 3 s; brokers check on a timer (mosquitto 2.0 takes up to about 6 s).
    if !(2.5..7.0).contains(&after) {
        return Err(format!(
            "closed after {after:.1} s, expected 3 s (+ the broker's timer)"
        ));
    }
    let w = watcher.next_publish4(s(3.0)).await?;
    (text(&w) == "silent")
        .then_some(())
        .ok_or("wrong will".into())
}

/// §3.1.3-7/8: an empty client id is accepted with clean session and refused (0x02) without.
pub async fn zero_length_client_id(t: &Target) -> Result<(), String> {
    let mut a = Raw::tcp(t.tcp, false).await;
    let (_, code) = a.connect4(connect4("", true, 30)).await?;
    if code != 0 {
        return Err(format!("clean session: CONNACK {code}, expected 0"));
    }
    let mut b = Raw::tcp(t.tcp, false).await;
    let (_, code) = b.connect4(connect4("", false, 30)).await?;
    if code != 2 {
        return Err(format!("persistent session: CONNACK {code}, expected 2"));
    }
    b.until_closed(s(3.0)).await.map(|_| ())
}

/// A clean session forgets the old one: no session present, no queued messages.
pub async fn clean_session_starts_afresh(t: &Target) -> Result<(), String> {
    let id = uid("clean");
    let topic = format!("clean/{}", uid("t"));
    let mut a = Raw::tcp(t.tcp, false).await;
    a.connect4(connect4(&id, false, 30)).await?;
    a.subscribe4(1, &[(&topic, QoS::AtLeastOnce)]).await?;
    a.send4(v4::Packet::Disconnect).await?;
    let mut a = Raw::tcp(t.tcp, false).await;
    let (present, _) = a.connect4(connect4(&id, true, 30)).await?;
    if present {
        return Err("session present with clean session".into());
    }
    let mut p = publisher(t).await?;
    p.publish4(&topic, QoS::AtLeastOnce, false, 1, "x").await?;
    let got = a.drain4(s(1.0)).await;
    if !got.is_empty() {
        return Err(format!("a clean session received {} message(s)", got.len()));
    }
    Ok(())
}

/// QoS 1 and 2 published while a persistent session is offline arrive when it returns.
pub async fn persistent_session_queues_while_offline(t: &Target) -> Result<(), String> {
    let id = uid("persist");
    let topic = format!("persist/{}", uid("t"));
    let mut a = Raw::tcp(t.tcp, false).await;
    let (present, _) = a.connect4(connect4(&id, false, 30)).await?;
    if present {
        return Err("session present on a new id".into());
    }
    a.subscribe4(1, &[(&topic, QoS::ExactlyOnce)]).await?;
    a.send4(v4::Packet::Disconnect).await?;
    drop(a);
    let mut p = publisher(t).await?;
    p.publish4(&topic, QoS::AtMostOnce, false, 0, "m0").await?;
    p.publish4(&topic, QoS::AtLeastOnce, false, 1, "m1").await?;
    p.publish4(&topic, QoS::ExactlyOnce, false, 2, "m2").await?;
    tokio::time::sleep(s(0.3)).await;
    let mut a = Raw::tcp(t.tcp, false).await;
    let (present, _) = a.connect4(connect4(&id, false, 30)).await?;
    if !present {
        return Err("session not present on return".into());
    }
    let got: Vec<String> = a.drain4(s(2.0)).await.iter().map(text).collect();
    for want in ["m1", "m2"] {
        if !got.iter().any(|g| g == want) {
            return Err(format!("{want} not delivered on return (got {got:?})"));
        }
    }
    a.send4(v4::Packet::Disconnect).await?;
    // Leave nothing behind.
    let mut a = Raw::tcp(t.tcp, false).await;
    a.connect4(connect4(&id, true, 30)).await?;
    Ok(())
}

/// An unacknowledged QoS 1 message is sent again on reconnect, with DUP set (§4.4, §3.3.1.1).
pub async fn unacknowledged_message_is_redelivered(t: &Target) -> Result<(), String> {
    let id = uid("redeliver");
    let topic = format!("redeliver/{}", uid("t"));
    let mut a = Raw::tcp(t.tcp, false).await;
    a.connect4(connect4(&id, false, 30)).await?;
    a.subscribe4(1, &[(&topic, QoS::AtLeastOnce)]).await?;
    let mut p = publisher(t).await?;
    p.publish4(&topic, QoS::AtLeastOnce, false, 1, "again")
        .await?;
    // Read it but never acknowledge, then vanish.
    a.wait_for(s(3.0), "first delivery", |x| match x {
        In::V4(v4::Packet::Publish(_)) => Some(()),
        _ => None,
    })
    .await?;
    drop(a);
    tokio::time::sleep(s(0.3)).await;
    let mut a = Raw::tcp(t.tcp, false).await;
    a.connect4(connect4(&id, false, 30)).await?;
    let again = a.next_publish4(s(3.0)).await?;
    if text(&again) != "again" || !again.dup {
        return Err(format!(
            "redelivered {again:?}, expected DUP and the same payload"
        ));
    }
    let mut a = Raw::tcp(t.tcp, false).await;
    a.connect4(connect4(&id, true, 30)).await?;
    Ok(())
}

/// A second connection with the same client id takes over: the first is closed, the session
/// (its subscription) carries on.
pub async fn session_take_over(t: &Target) -> Result<(), String> {
    let id = uid("takeover");
    let topic = format!("takeover/{}", uid("t"));
    let mut a = Raw::tcp(t.tcp, false).await;
    a.connect4(connect4(&id, false, 30)).await?;
    a.subscribe4(1, &[(&topic, QoS::AtLeastOnce)]).await?;
    let mut b = Raw::tcp(t.tcp, false).await;
    let (present, code) = b.connect4(connect4(&id, false, 30)).await?;
    if code != 0 || !present {
        return Err(format!(
            "take-over CONNACK {code}, session present {present}"
        ));
    }
    a.until_closed(s(3.0)).await?;
    let mut p = publisher(t).await?;
    p.publish4(&topic, QoS::AtLeastOnce, false, 1, "to-b")
        .await?;
    let m = b.next_publish4(s(3.0)).await?;
    if text(&m) != "to-b" {
        return Err("wrong message".into());
    }
    b.send4(v4::Packet::Disconnect).await?;
    let mut c = Raw::tcp(t.tcp, false).await;
    c.connect4(connect4(&id, true, 30)).await?;
    Ok(())
}

/// A client with a persistent session and a will that keeps vanishing and coming back under
/// the same id (an asyncio client with keep alive 9), then a storm of simultaneous connects:
/// the broker keeps serving it and everyone else.
pub async fn persistent_will_client_comes_and_goes(t: &Target) -> Result<(), String> {
    let id = uid("flaky");
    let topic = format!("flaky/{}", uid("t"));
    for round in 0..4 {
        let mut c = Raw::tcp(t.tcp, false).await;
        let mut connect = connect4(&id, false, 9);
        connect.last_will = Some(v4::LastWill::new(
            format!("{topic}/will"),
            "gone",
            QoS::AtLeastOnce,
            false,
        ));
        let (_, code) = c.connect4(connect).await?;
        if code != 0 {
            return Err(format!("round {round}: CONNACK {code}"));
        }
        c.subscribe4(1, &[(&topic, QoS::AtLeastOnce)]).await?;
        drop(c);
        if round % 2 == 1 {
            tokio::time::sleep(s(0.2)).await;
        }
    }
    let mut storm = Vec::new();
    for _ in 0..8 {
        let mut c = Raw::tcp(t.tcp, false).await;
        let mut connect = connect4(&id, false, 9);
        connect.last_will = Some(v4::LastWill::new(
            format!("{topic}/will"),
            "gone",
            QoS::AtLeastOnce,
            false,
        ));
        c.send4(v4::Packet::Connect(connect)).await?;
        storm.push(c);
    }
    tokio::time::sleep(s(1.0)).await;
    drop(storm);
    tokio::time::sleep(s(0.5)).await;
    let mut c = Raw::tcp(t.tcp, false).await;
    let (_, code) = c.connect4(connect4(&id, true, 9)).await?;
    if code != 0 {
        return Err(format!("the client's id after the storm: CONNACK {code}"));
    }
    super::fresh_round_trip(t).await
}

/// A will is published when the connection ends without DISCONNECT.
pub async fn will_on_abrupt_close(t: &Target) -> Result<(), String> {
    let topic = format!("will/{}", uid("t"));
    let mut watcher = subscriber(t, &topic, QoS::AtLeastOnce).await?;
    let mut c = Raw::tcp(t.tcp, false).await;
    let mut connect = connect4(&uid("dying"), true, 30);
    connect.last_will = Some(v4::LastWill::new(&topic, "gone", QoS::AtLeastOnce, false));
    c.connect4(connect).await?;
    drop(c);
    let w = watcher.next_publish4(s(3.0)).await?;
    (text(&w) == "gone" && w.topic == topic)
        .then_some(())
        .ok_or(format!("wrong will {w:?}"))
}

/// ... and not after a DISCONNECT (§3.14.4).
pub async fn no_will_after_disconnect(t: &Target) -> Result<(), String> {
    let topic = format!("nowill/{}", uid("t"));
    let mut watcher = subscriber(t, &topic, QoS::AtLeastOnce).await?;
    let mut c = Raw::tcp(t.tcp, false).await;
    let mut connect = connect4(&uid("polite"), true, 30);
    connect.last_will = Some(v4::LastWill::new(&topic, "gone", QoS::AtLeastOnce, false));
    c.connect4(connect).await?;
    c.send4(v4::Packet::Disconnect).await?;
    let got = watcher.drain4(s(1.5)).await;
    got.is_empty()
        .then_some(())
        .ok_or(format!("will published after DISCONNECT: {got:?}"))
}

/// A retained will is kept for later subscribers.
pub async fn retained_will(t: &Target) -> Result<(), String> {
    let topic = format!("rwill/{}", uid("t"));
    let mut c = Raw::tcp(t.tcp, false).await;
    let mut connect = connect4(&uid("rwill"), true, 30);
    connect.last_will = Some(v4::LastWill::new(&topic, "offline", QoS::AtLeastOnce, true));
    c.connect4(connect).await?;
    drop(c);
    tokio::time::sleep(s(0.5)).await;
    let mut later = subscriber(t, &topic, QoS::AtLeastOnce).await?;
    let w = later.next_publish4(s(3.0)).await?;
    if text(&w) != "offline" || !w.retain {
        return Err(format!("expected the retained will, got {w:?}"));
    }
    let mut p = publisher(t).await?;
    p.publish4(&topic, QoS::AtLeastOnce, true, 1, "").await
}

/// Retained messages: set, replace, clear with an empty payload (§3.3.1.3).
pub async fn retained_set_replace_clear(t: &Target) -> Result<(), String> {
    let topic = format!("retain/{}", uid("t"));
    let mut live = subscriber(t, &topic, QoS::AtLeastOnce).await?;
    let mut p = publisher(t).await?;
    p.publish4(&topic, QoS::AtLeastOnce, true, 1, "r1").await?;
    let l = live.next_publish4(s(3.0)).await?;
    if l.retain {
        return Err("a live subscriber got the retain flag set".into());
    }
    let mut first = subscriber(t, &topic, QoS::AtLeastOnce).await?;
    let m = first.next_publish4(s(3.0)).await?;
    if text(&m) != "r1" || !m.retain {
        return Err(format!("new subscriber got {m:?}, expected retained r1"));
    }
    p.publish4(&topic, QoS::AtLeastOnce, true, 2, "r2").await?;
    let mut second = subscriber(t, &topic, QoS::AtLeastOnce).await?;
    let got = second.drain4(s(1.0)).await;
    if got.len() != 1 || text(&got[0]) != "r2" {
        return Err(format!("after replacing: {got:?}"));
    }
    p.publish4(&topic, QoS::AtLeastOnce, true, 3, "").await?;
    let mut third = subscriber(t, &topic, QoS::AtLeastOnce).await?;
    let got = third.drain4(s(1.0)).await;
    got.is_empty()
        .then_some(())
        .ok_or(format!("after clearing: {got:?}"))
}

/// A wildcard subscription gets every retained message under it.
pub async fn retained_under_a_wildcard(t: &Target) -> Result<(), String> {
    let base = format!("rwild/{}", uid("t"));
    let mut p = publisher(t).await?;
    let topics = [format!("{base}/a"), format!("{base}/b/c"), base.clone()];
    for (i, topic) in topics.iter().enumerate() {
        p.publish4(topic, QoS::AtLeastOnce, true, i as u16 + 1, "kept")
            .await?;
    }
    let mut sub = subscriber(t, &format!("{base}/#"), QoS::AtLeastOnce).await?;
    let got = sub.drain4(s(1.5)).await;
    let mut seen: Vec<String> = got.iter().map(|p| p.topic.clone()).collect();
    seen.sort();
    let mut want: Vec<String> = topics.to_vec();
    want.sort();
    for (i, topic) in topics.iter().enumerate() {
        p.publish4(topic, QoS::AtLeastOnce, true, i as u16 + 10, "")
            .await?;
    }
    (seen == want)
        .then_some(())
        .ok_or(format!("retained under {base}/#: {seen:?}"))
}

/// Delivered QoS is the lower of the publish's and the subscription's, for all nine pairs.
pub async fn qos_both_directions(t: &Target) -> Result<(), String> {
    let base = format!("qos/{}", uid("t"));
    let mut sub = Raw::tcp(t.tcp, false).await;
    sub.connect4(connect4(&uid("qsub"), true, 30)).await?;
    let subs = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce];
    for (i, q) in subs.iter().enumerate() {
        sub.subscribe4(i as u16 + 1, &[(&format!("{base}/s{i}"), *q)])
            .await?;
    }
    let mut p = publisher(t).await?;
    let mut id = 1;
    for (si, _) in subs.iter().enumerate() {
        for (pi, pq) in subs.iter().enumerate() {
            p.publish4(&format!("{base}/s{si}"), *pq, false, id, format!("p{pi}"))
                .await?;
            id += 1;
        }
    }
    let got = sub.drain4(s(2.0)).await;
    let mut problems = Vec::new();
    for (si, _) in subs.iter().enumerate() {
        for pi in 0..3 {
            let m = got
                .iter()
                .find(|m| m.topic == format!("{base}/s{si}") && text(m) == format!("p{pi}"));
            match m {
                Some(m) if m.qos as usize == si.min(pi) => {}
                Some(m) => problems.push(format!("sub {si} pub {pi}: QoS {}", m.qos as u8)),
                None => problems.push(format!("sub {si} pub {pi}: not delivered")),
            }
        }
    }
    problems.is_empty().then_some(()).ok_or(problems.join("; "))
}

/// A QoS 2 PUBLISH sent twice (DUP) before PUBREL is delivered once.
pub async fn qos2_is_exactly_once(t: &Target) -> Result<(), String> {
    let topic = format!("once/{}", uid("t"));
    let mut sub = subscriber(t, &topic, QoS::ExactlyOnce).await?;
    let mut p = publisher(t).await?;
    let mut m = v4::Publish::new(&topic, QoS::ExactlyOnce, "once");
    m.pkid = 7;
    p.send4(v4::Packet::Publish(m.clone())).await?;
    p.wait_for(s(3.0), "PUBREC", |x| {
        matches!(x, In::V4(v4::Packet::PubRec(r)) if r.pkid == 7).then_some(())
    })
    .await?;
    m.dup = true;
    p.send4(v4::Packet::Publish(m)).await?;
    p.wait_for(s(3.0), "second PUBREC", |x| {
        matches!(x, In::V4(v4::Packet::PubRec(r)) if r.pkid == 7).then_some(())
    })
    .await?;
    p.send4(v4::Packet::PubRel(v4::PubRel::new(7))).await?;
    p.wait_for(s(3.0), "PUBCOMP", |x| {
        matches!(x, In::V4(v4::Packet::PubComp(r)) if r.pkid == 7).then_some(())
    })
    .await?;
    let got = sub.drain4(s(1.5)).await;
    (got.len() == 1)
        .then_some(())
        .ok_or(format!("delivered {} times", got.len()))
}

/// QoS 1 messages on one topic arrive in the order sent.
pub async fn order_is_kept(t: &Target) -> Result<(), String> {
    let topic = format!("order/{}", uid("t"));
    let mut sub = subscriber(t, &topic, QoS::AtLeastOnce).await?;
    let mut p = publisher(t).await?;
    for i in 0..200u16 {
        let mut m = v4::Publish::new(&topic, QoS::AtLeastOnce, i.to_string());
        m.pkid = i + 1;
        p.send4(v4::Packet::Publish(m)).await?;
    }
    let mut got = Vec::new();
    while got.len() < 200 {
        let m = sub.next_publish4(s(5.0)).await?;
        got.push(text(&m).parse::<u16>().map_err(|e| e.to_string())?);
    }
    (got == (0..200).collect::<Vec<_>>())
        .then_some(())
        .ok_or("out of order".into())
}

/// `+` and `#` match as §4.7 says (`a/#` matches `a` too).
pub async fn wildcards_match(t: &Target) -> Result<(), String> {
    let b = format!("wild/{}", uid("t"));
    let filters = [
        format!("{b}/+"),
        format!("{b}/#"),
        format!("{b}/+/c"),
        format!("+/{}/x", &b[5..]),
    ];
    let topics = [
        b.clone(),
        format!("{b}/a"),
        format!("{b}/a/c"),
        format!("{b}/a/d"),
        format!("{b}/x"),
    ];
    // filter index → topics it must match
    let expect: [&[usize]; 4] = [&[1, 4], &[0, 1, 2, 3, 4], &[2], &[4]];
    let mut problems = Vec::new();
    for (fi, f) in filters.iter().enumerate() {
        let mut sub = subscriber(t, f, QoS::AtLeastOnce).await?;
        let mut p = publisher(t).await?;
        for (ti, topic) in topics.iter().enumerate() {
            p.publish4(topic, QoS::AtLeastOnce, false, ti as u16 + 1, "w")
                .await?;
        }
        let mut got: Vec<String> = sub
            .drain4(s(1.0))
            .await
            .iter()
            .map(|m| m.topic.clone())
            .collect();
        got.sort();
        let mut want: Vec<String> = expect[fi].iter().map(|i| topics[*i].clone()).collect();
        want.sort();
        if got != want {
            problems.push(format!("{f}: got {got:?}, want {want:?}"));
        }
    }
    problems.is_empty().then_some(()).ok_or(problems.join("; "))
}

/// `#` and `+` never match a topic starting with `$` (§4.7.2); a `$` filter does.
pub async fn dollar_topics_are_apart(t: &Target) -> Result<(), String> {
    let id = uid("d");
    let topic = format!("$conformance/{id}");
    let mut all = subscriber(t, "#", QoS::AtMostOnce).await?;
    let mut plus = subscriber(t, "+/+", QoS::AtMostOnce).await?;
    let mut dollar = subscriber(t, "$conformance/#", QoS::AtMostOnce).await?;
    let mut p = publisher(t).await?;
    p.publish4(&topic, QoS::AtMostOnce, false, 0, "d").await?;
    let mine = dollar.drain4(s(1.0)).await;
    if !mine.iter().any(|m| m.topic == topic) {
        return Err("the $-filter did not receive the $-topic".into());
    }
    for (name, c) in [("#", &mut all), ("+/+", &mut plus)] {
        let got = c.drain4(s(0.3)).await;
        if let Some(m) = got.iter().find(|m| m.topic.starts_with('$')) {
            return Err(format!("{name} matched {}", m.topic));
        }
    }
    Ok(())
}

/// Overlapping subscriptions deliver the message at the highest of their QoS (§3.3.5).
pub async fn overlapping_subscriptions(t: &Target) -> Result<(), String> {
    let base = format!("overlap/{}", uid("t"));
    let mut sub = Raw::tcp(t.tcp, false).await;
    sub.connect4(connect4(&uid("ov"), true, 30)).await?;
    sub.subscribe4(
        1,
        &[
            (&format!("{base}/#"), QoS::ExactlyOnce),
            (&format!("{base}/+"), QoS::AtLeastOnce),
        ],
    )
    .await?;
    let mut p = publisher(t).await?;
    p.publish4(&format!("{base}/a"), QoS::ExactlyOnce, false, 1, "o")
        .await?;
    let got = sub.drain4(s(1.5)).await;
    if got.is_empty() {
        return Err("not delivered".into());
    }
    let best = got.iter().map(|m| m.qos as u8).max().unwrap_or(0);
    (best == 2)
        .then_some(())
        .ok_or(format!("{} copies, best QoS {best}", got.len()))
}

/// After UNSUBSCRIBE (acknowledged) nothing more arrives.
pub async fn unsubscribe_stops_delivery(t: &Target) -> Result<(), String> {
    let topic = format!("unsub/{}", uid("t"));
    let mut sub = subscriber(t, &topic, QoS::AtLeastOnce).await?;
    let mut unsub = v4::Unsubscribe::new(&topic);
    unsub.pkid = 2;
    sub.send4(v4::Packet::Unsubscribe(unsub)).await?;
    sub.wait_for(s(3.0), "UNSUBACK", |p| {
        matches!(p, In::V4(v4::Packet::UnsubAck(_))).then_some(())
    })
    .await?;
    let mut p = publisher(t).await?;
    p.publish4(&topic, QoS::AtLeastOnce, false, 1, "late")
        .await?;
    let got = sub.drain4(s(1.0)).await;
    got.is_empty()
        .then_some(())
        .ok_or("delivered after UNSUBSCRIBE".into())
}

/// A 2 MiB payload goes through whole (mosquitto's default has no size limit).
pub async fn large_payload(t: &Target) -> Result<(), String> {
    let topic = format!("big/{}", uid("t"));
    let mut sub = subscriber(t, &topic, QoS::AtLeastOnce).await?;
    let mut p = publisher(t).await?;
    let payload: Vec<u8> = (0..2 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    p.publish4(&topic, QoS::AtLeastOnce, false, 1, payload.clone())
        .await?;
    let m = sub.next_publish4(s(10.0)).await?;
    (m.payload[..] == payload[..])
        .then_some(())
        .ok_or(format!("payload of {} bytes differs", m.payload.len()))
}

/// Twenty subscribers each get one copy.
pub async fn fan_out(t: &Target) -> Result<(), String> {
    let topic = format!("fan/{}", uid("t"));
    let mut subs = Vec::new();
    for _ in 0..20 {
        subs.push(subscriber(t, &topic, QoS::AtLeastOnce).await?);
    }
    let mut p = publisher(t).await?;
    p.publish4(&topic, QoS::AtLeastOnce, false, 1, "all")
        .await?;
    for (i, sub) in subs.iter_mut().enumerate() {
        sub.next_publish4(s(3.0))
            .await
            .map_err(|e| format!("subscriber {i}: {e}"))?;
    }
    for (i, sub) in subs.iter_mut().enumerate() {
        let more = sub.drain4(s(0.05)).await;
        if !more.is_empty() {
            return Err(format!("subscriber {i} got {} extra copies", more.len()));
        }
    }
    Ok(())
}

/// A user name and password are accepted by an anonymous broker (as mosquitto with
/// `allow_anonymous true`), for clients that always send them.
pub async fn credentials_accepted(t: &Target) -> Result<(), String> {
    let mut c = Raw::tcp(t.tcp, false).await;
    let mut connect = connect4(&uid("login"), true, 30);
    connect.set_login("device", super::PASSWORD);
    let (_, code) = c.connect4(connect).await?;
    (code == 0).then_some(()).ok_or(format!("CONNACK {code}"))
}
