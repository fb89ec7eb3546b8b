//! The embedded broker against a real mosquitto, case by case, MQTT 3.1.1 and 5: the embedded
//! broker must pass every case mosquitto passes. Raw packets (rumqttc's codecs) here; Python's
//! paho-mqtt and mqtt.js drive the same brokers in `conformance_clients.rs`.
//!
//! `cargo test --test conformance -- --nocapture` prints the tables; they are also written to
//! `target/tmp/conformance-*.md`.
#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

mod common;
mod conformance {
    pub mod client;
    pub mod harness;
    pub mod misbehaving;
    pub mod raw;
    pub mod v311;
    pub mod v5;

    use std::time::Duration;

    use raw::{QoS, Raw, connect4};

    /// A password that must never appear in a log.
    pub const PASSWORD: &str = "pw-4f7c1e9a-never-logged";

    pub fn s(secs: f64) -> Duration {
        Duration::from_secs_f64(secs)
    }

    /// A unique name: client ids and topics of concurrent cases never meet.
    pub fn uid(prefix: &str) -> String {
        format!("{prefix}-{:08x}", rand::random::<u32>())
    }

    /// A new client connects, subscribes, publishes QoS 1 to itself and gets the message.
    pub async fn fresh_round_trip(t: &harness::Target) -> Result<(), String> {
        let topic = format!("fresh/{}", uid("t"));
        let mut c = Raw::tcp(t.tcp, false).await;
        let (_, code) = c.connect4(connect4(&uid("fresh"), true, 30)).await?;
        if code != 0 {
            return Err(format!("fresh client: CONNACK {code}"));
        }
        c.subscribe4(1, &[(&topic, QoS::AtLeastOnce)]).await?;
        c.publish4(&topic, QoS::AtLeastOnce, false, 2, "alive")
            .await?;
        let m = c
            .next_publish4(s(3.0))
            .await
            .map_err(|e| format!("fresh client: {e}"))?;
        (m.payload.as_ref() == b"alive")
            .then_some(())
            .ok_or("fresh client: wrong payload".into())
    }
}

use conformance::client::*;
use conformance::harness::{Brokers, assert_embedded_covers_reference, run};
use conformance::misbehaving::*;
use conformance::v5::*;
use conformance::v311::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_311_side_by_side() {
    let brokers = Brokers::start().await;
    let rows = run(
        "MQTT 3.1.1",
        cases![
            keepalive_zero_is_accepted,
            keepalive_is_enforced_at_one_and_a_half,
            zero_length_client_id,
            clean_session_starts_afresh,
            persistent_session_queues_while_offline,
            unacknowledged_message_is_redelivered,
            session_take_over,
            persistent_will_client_comes_and_goes,
            will_on_abrupt_close,
            no_will_after_disconnect,
            retained_will,
            retained_set_replace_clear,
            retained_under_a_wildcard,
            qos_both_directions,
            qos2_is_exactly_once,
            order_is_kept,
            wildcards_match,
            dollar_topics_are_apart,
            overlapping_subscriptions: "one copy, at the lower QoS",
            unsubscribe_stops_delivery,
            large_payload,
            fan_out,
            credentials_accepted,
        ],
        &brokers.targets(),
        8,
    )
    .await;
    assert_embedded_covers_reference(&rows);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_5_side_by_side() {
    let brokers = Brokers::start().await;
    let rows = run(
        "MQTT 5",
        cases![
            v5_keepalive_zero_is_accepted,
            v5_assigned_client_id,
            v5_session_expiry,
            v5_persistent_session_queues_while_offline,
            v5_will_delay,
            v5_will_delay_cancelled_by_reconnect,
            v5_disconnect_with_will,
            v5_properties_carried_through,
            v5_message_expiry,
            v5_subscription_identifiers,
            v5_client_topic_alias,
            v5_topic_alias_zero_gets_a_disconnect: "closes without a DISCONNECT",
            v5_maximum_packet_size,
            v5_no_local,
            v5_retain_options,
            v5_receive_maximum,
            v5_take_over_says_why: "closes without a DISCONNECT",
            v5_shared_subscription,
            v5_invalid_filter_refused_with_a_reason,
        ],
        &brokers.targets(),
        8,
    )
    .await;
    assert_embedded_covers_reference(&rows);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_clients_side_by_side() {
    let brokers = Brokers::start().await;
    let rows = run(
        "Misbehaving clients",
        cases![
            garbage_instead_of_connect,
            subscribe_before_connect,
            wrong_protocol_name,
            unknown_protocol_level,
            reserved_connect_flag,
            second_connect,
            remaining_length_over_four_bytes,
            subscribe_with_wrong_flags,
            publish_qos_3,
            publish_to_a_wildcard_topic,
            publish_topic_not_utf8,
            qos1_with_packet_id_zero,
            subscribe_without_filters,
            unsubscribe_without_filters,
            truncated_connect_then_gone,
            v5_unknown_property_gets_a_reason: "closes without a DISCONNECT",
            v5_wildcard_topic_gets_a_reason: "closes without a DISCONNECT",
            v5_protocol_error_publishes_the_will,
            v5_second_connect_gets_a_short_reason: "closes without a DISCONNECT",
            slow_reader_hurts_nobody,
            silent_and_noisy_connections,
        ],
        &brokers.targets(),
        6,
    )
    .await;
    assert_embedded_covers_reference(&rows);
}

// ---- other client libraries, same brokers ----------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rumqttc_client_side_by_side() {
    let brokers = Brokers::start().await;
    let rows = run(
        "rumqttc (the console's client), MQTT 3.1.1 and 5",
        cases![
            rumqttc_qos_round_trips,
            rumqttc_persistent_session,
            rumqttc_retained_and_will,
            rumqttc_v5_properties_and_session,
        ],
        &brokers.targets(),
        4,
    )
    .await;
    assert_embedded_covers_reference(&rows);
}

/// amqtt (asyncio): the kind of client that crashed the broker before (persistent session,
/// a will, keep alive 9, processes that die without DISCONNECT and come back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqtt_side_by_side() {
    let brokers = Brokers::start().await;
    let rows = conformance::harness::run_script(
        "amqtt (Python asyncio)",
        &common::python(),
        &script("amqtt_cases.py"),
        |t| vec![t.tcp.ip().to_string(), t.tcp.port().to_string()],
        &brokers.targets(),
    )
    .await;
    assert_eq!(rows.len(), 3, "amqtt ran {} cases", rows.len());
    assert_embedded_covers_reference(&rows);
}

fn script(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("conformance")
        .join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paho_python_side_by_side() {
    let brokers = Brokers::start().await;
    let rows = conformance::harness::run_script(
        "paho-mqtt (Python)",
        &common::python(),
        &script("paho_cases.py"),
        |t| vec![t.tcp.ip().to_string(), t.tcp.port().to_string()],
        &brokers.targets(),
    )
    .await;
    assert!(rows.len() >= 20, "paho ran {} cases", rows.len());
    assert_embedded_covers_reference(&rows);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqttjs_side_by_side() {
    let brokers = Brokers::start().await;
    let rows = conformance::harness::run_script(
        "mqtt.js 5 (Node), WebSocket and TCP",
        "node",
        &script("mqttjs_cases.js"),
        |t| {
            vec![
                t.tcp.ip().to_string(),
                t.tcp.port().to_string(),
                t.ws.port().to_string(),
            ]
        },
        &brokers.targets(),
    )
    .await;
    assert!(rows.len() >= 8, "mqtt.js ran {} cases", rows.len());
    assert_embedded_covers_reference(&rows);
}

/// The plain WebSocket listener answers each `Sec-WebSocket-Protocol` offer as mosquitto's
/// does: `mqtt` or `mqttv3.1` echoed, the first of a list, none without the header, and a
/// refusal for an offer with neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_subprotocols_as_mosquitto() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    async fn offer(addr: std::net::SocketAddr, proto: Option<&str>) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut req = format!(
            "GET /mqtt HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        );
        if let Some(p) = proto {
            req.push_str(&format!("Sec-WebSocket-Protocol: {p}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 2048];
        let n = tokio::time::timeout(std::time::Duration::from_secs(3), s.read(&mut buf))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(0);
        let head = String::from_utf8_lossy(&buf[..n]).to_lowercase();
        if !head.starts_with("http/1.1 101") {
            return "refused".into();
        }
        let proto = head
            .lines()
            .find_map(|l| l.strip_prefix("sec-websocket-protocol:"))
            .map(|p| p.trim().to_owned())
            .unwrap_or_else(|| "-".into());
        format!("101 {proto}")
    }
    let brokers = Brokers::start().await;
    let [embedded, mosquitto] = brokers.targets();
    let offers = [
        None,
        Some("mqtt"),
        Some("mqttv3.1"),
        Some("mqtt, mqttv3.1"),
        Some("mqttv3.1, mqtt"),
        Some("chat"),
    ];
    let mut table = Vec::new();
    for o in offers {
        let e = offer(embedded.ws, o).await;
        let m = offer(mosquitto.ws, o).await;
        table.push((o.unwrap_or("(none)"), e, m));
    }
    println!("{table:#?}");
    for (o, e, m) in &table {
        assert_eq!(e, m, "offer {o}: embedded {e}, mosquitto {m}");
    }
    assert_eq!(table[3].1, "101 mqtt");
    assert_eq!(table[5].1, "refused");
}

// ---- the store, restarts, failures -----------------------------------------------------------

use mpbridge::sandbox::broker::{BrokerOptions, BrokerState, EmbeddedBroker, StoreState};
use std::time::Duration;

async fn embedded(store: Option<&std::path::Path>) -> EmbeddedBroker {
    common::within(
        30,
        "embedded broker start",
        EmbeddedBroker::start(BrokerOptions {
            store: store.map(|p| p.to_owned()),
            ws: true,
            program: Some(env!("CARGO_BIN_EXE_mpbridge").into()),
        }),
    )
    .await
    .expect("the embedded broker starts")
}

fn target(b: &EmbeddedBroker) -> conformance::harness::Target {
    conformance::harness::Target {
        name: "embedded",
        tcp: b.tcp_addr(),
        ws: b.ws_addr().unwrap(),
    }
}

/// Publishes retained `r` on `topic` and leaves a persistent session (3.1.1 and 5) with one
/// queued QoS 1 message each.
async fn leave_state(t: &conformance::harness::Target, tag: &str) {
    use conformance::raw::{QoS, QoS5, Raw, connect4, connect5, filter5};
    let mut a = Raw::tcp(t.tcp, false).await;
    a.connect4(connect4(&format!("keep4-{tag}"), false, 30))
        .await
        .unwrap();
    a.subscribe4(1, &[(&format!("queue/{tag}"), QoS::AtLeastOnce)])
        .await
        .unwrap();
    a.send4(rumqttc::mqttbytes::v4::Packet::Disconnect)
        .await
        .unwrap();
    let mut b = Raw::tcp(t.tcp, true).await;
    b.connect5(
        connect5(&format!("keep5-{tag}"), true, 30, Some(3600)),
        None,
    )
    .await
    .unwrap();
    b.subscribe5(
        1,
        vec![filter5(&format!("queue/{tag}"), QoS5::AtLeastOnce)],
        None,
    )
    .await
    .unwrap();
    drop(b);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut p = Raw::tcp(t.tcp, false).await;
    p.connect4(connect4(&format!("pub-{tag}"), true, 30))
        .await
        .unwrap();
    p.publish4(
        &format!("retained/{tag}"),
        QoS::AtLeastOnce,
        true,
        1,
        "kept",
    )
    .await
    .unwrap();
    p.publish4(
        &format!("queue/{tag}"),
        QoS::AtLeastOnce,
        false,
        2,
        "waiting",
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// ...and finds it all again.
async fn find_state(t: &conformance::harness::Target, tag: &str) -> Result<(), String> {
    use conformance::raw::{QoS, Raw, connect4, connect5};
    let mut a = Raw::tcp(t.tcp, false).await;
    let (present, _) = a
        .connect4(connect4(&format!("keep4-{tag}"), false, 30))
        .await?;
    let m = a
        .next_publish4(Duration::from_secs(3))
        .await
        .map_err(|e| format!("3.1.1 session (present {present}): {e}"))?;
    if !present || m.payload.as_ref() != b"waiting" {
        return Err(format!("3.1.1 session: present {present}, got {m:?}"));
    }
    let mut b = Raw::tcp(t.tcp, true).await;
    let ack = b
        .connect5(
            connect5(&format!("keep5-{tag}"), false, 30, Some(3600)),
            None,
        )
        .await?;
    let m = b
        .next_publish5(Duration::from_secs(3))
        .await
        .map_err(|e| format!("MQTT 5 session (present {}): {e}", ack.session_present))?;
    if !ack.session_present || m.payload.as_ref() != b"waiting" {
        return Err(format!(
            "MQTT 5 session: present {}, got {m:?}",
            ack.session_present
        ));
    }
    let mut s = Raw::tcp(t.tcp, false).await;
    s.connect4(connect4(&format!("look-{tag}"), true, 30))
        .await?;
    s.subscribe4(1, &[(&format!("retained/{tag}"), QoS::AtLeastOnce)])
        .await?;
    let r = s
        .next_publish4(Duration::from_secs(3))
        .await
        .map_err(|e| format!("retained: {e}"))?;
    (r.payload.as_ref() == b"kept" && r.retain)
        .then_some(())
        .ok_or(format!("retained: {r:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_and_persistent_sessions_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("broker");
    let first = embedded(Some(&store)).await;
    assert_eq!(
        first.health().borrow().store,
        StoreState::Persistent {
            path: store.clone()
        }
    );
    leave_state(&target(&first), "restart").await;
    first.stop().await;
    drop(first);
    let second = embedded(Some(&store)).await;
    find_state(&target(&second), "restart").await.unwrap();
    conformance::fresh_round_trip(&target(&second))
        .await
        .unwrap();
    second.stop().await;
}

/// A broker process that dies (killed as a crash would) is replaced on the same ports within
/// seconds, with its retained messages and sessions, and the console is told in one sentence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_broker_comes_back_with_its_state() {
    let dir = tempfile::tempdir().unwrap();
    let broker = embedded(Some(&dir.path().join("broker"))).await;
    let t = target(&broker);
    leave_state(&t, "crash").await;
    // What the broker has written survives a crash; sled writes its log every 500 ms.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mut health = broker.health();
    let before = health.borrow().pid;
    let killed_at = std::time::Instant::now();
    broker.kill_for_test().await;
    let h = common::within(20, "the broker to come back", async {
        loop {
            health.changed().await.unwrap();
            let h = health.borrow().clone();
            if h.state == BrokerState::Running && h.restarts == 1 {
                return h;
            }
        }
    })
    .await;
    let took = killed_at.elapsed();
    println!("back after {took:?}: {}", h.notice.as_ref().unwrap().en);
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert_ne!(h.pid, before);
    let notice = h.notice.unwrap();
    assert!(
        notice.en.contains("restarted") && notice.en.contains("retained messages"),
        "{}",
        notice.en
    );
    assert!(notice.zh.contains("重启"), "{}", notice.zh);
    assert_eq!(broker.tcp_addr(), t.tcp, "same port");
    find_state(&t, "crash").await.unwrap();
}

/// A broker that stops answering (frozen with SIGSTOP) is found by the probe and replaced.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_broker_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let broker = embedded(Some(&dir.path().join("broker"))).await;
    let t = target(&broker);
    let mut health = broker.health();
    let pid = health.borrow().pid.unwrap();
    let ok = std::process::Command::new("kill")
        .args(["-STOP", &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let h = common::within(30, "the frozen broker to be replaced", async {
        loop {
            health.changed().await.unwrap();
            let h = health.borrow().clone();
            if h.state == BrokerState::Running && h.restarts == 1 {
                return h;
            }
        }
    })
    .await;
    assert!(h.notice.unwrap().en.contains("stopped answering MQTT"));
    conformance::fresh_round_trip(&t).await.unwrap();
    // The frozen process was killed, not left behind.
    let alive = std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ");
    assert!(!alive, "the frozen broker {pid} is still there");
}

/// A store that cannot be read is set aside under a name the console shows; the broker
/// starts empty and works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_store_is_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("broker");
    std::fs::create_dir_all(store.join("retained")).unwrap();
    std::fs::write(store.join("retained").join("conf"), b"\xff garbage").unwrap();
    std::fs::write(store.join("retained").join("db"), vec![0x5Au8; 8192]).unwrap();
    let broker = embedded(Some(&store)).await;
    let h = broker.health().borrow().clone();
    let StoreState::SetAside { moved_to, .. } = &h.store else {
        panic!("store not set aside: {:?}", h.store)
    };
    assert!(moved_to.join("retained").join("db").is_file());
    let notice = h.notice.unwrap();
    assert!(
        notice.en.contains(&moved_to.display().to_string()) && notice.en.contains("started empty"),
        "{}",
        notice.en
    );
    conformance::fresh_round_trip(&target(&broker))
        .await
        .unwrap();
}

/// Two brokers on one store (two consoles on one data folder): the second keeps its state in
/// memory and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_in_use_leaves_the_second_broker_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("broker");
    let first = embedded(Some(&store)).await;
    let second = embedded(Some(&store)).await;
    let h = second.health().borrow().clone();
    assert_eq!(
        h.store,
        StoreState::Memory {
            in_use: Some(store.clone())
        }
    );
    assert!(h.notice.unwrap().en.contains("Another mpbridge"));
    // Retained messages still work in memory.
    let t = target(&second);
    leave_state(&t, "memory").await;
    find_state(&t, "memory").await.unwrap();
    drop(first);
}

/// Whatever a client sends, its password never reaches the broker's log, even asked to trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_never_reach_the_broker_log() {
    use conformance::PASSWORD;
    use conformance::raw::{Raw, connect4, connect5, mstr, packet};
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mpbridge"))
        .args(["broker", "--tcp", "127.0.0.1:0"])
        .env("MPBRIDGE_LOG", "trace")
        .env("RUST_LOG", "trace")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let ready: mpbridge::sandbox::broker::Ready =
        serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
    let addr = ready.tcp;
    // A good 3.1.1 and MQTT 5 login, a CONNECT with a bad level and one cut short.
    let mut a = Raw::tcp(addr, false).await;
    let mut c = connect4("pw-a", true, 30);
    c.set_login("user", PASSWORD);
    a.connect4(c).await.unwrap();
    let mut b = Raw::tcp(addr, true).await;
    b.send5(rumqttc::v5::mqttbytes::v5::Packet::Connect(
        connect5("pw-b", true, 30, None),
        None,
        Some(rumqttc::v5::mqttbytes::v5::Login::new("user", PASSWORD)),
    ))
    .await
    .unwrap();
    let _ = b.recv(Duration::from_secs(2)).await;
    for level in [9u8, 4] {
        let mut body = mstr(b"MQTT");
        body.extend([level, 0xC2, 0, 30]);
        body.extend(mstr(b"pw-c"));
        body.extend(mstr(b"user"));
        body.extend(mstr(PASSWORD.as_bytes()));
        let mut p = packet(0x10, &body);
        if level == 4 {
            p.truncate(p.len() - 3);
        }
        let mut c = Raw::tcp(addr, false).await;
        c.bytes(&p).await.unwrap();
        let _ = c.until_closed(Duration::from_secs(2)).await;
    }
    drop((a, b));
    drop(child.stdin.take());
    let mut log = String::new();
    let mut err = child.stderr.take().unwrap();
    common::within(10, "the broker to stop", err.read_to_string(&mut log))
        .await
        .unwrap();
    assert!(
        !log.contains(PASSWORD),
        "password in the broker log:\n{log}"
    );
}

/// Two thousand mutated packet sequences (after a valid CONNECT, MQTT 3.1.1 and 5), each on
/// its own connection: the broker process never panics, not even inside one connection's
/// task, and still routes messages. The coverage-guided version is `fuzz/broker_session`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzzed_packets_never_panic_the_broker() {
    use mpbridge::sandbox::broker::fuzz::{Rng, feed, seeds};
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mpbridge"))
        .args(["broker", "--tcp", "127.0.0.1:0"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let ready: mpbridge::sandbox::broker::Ready =
        serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
    let addr = ready.tcp;
    let fed = tokio::task::spawn_blocking(move || {
        let seeds = seeds();
        let mut rng = Rng(0x5EED_0FB4_0CE2);
        for _ in 0..2000 {
            feed(addr, &rng.input(&seeds), Duration::from_millis(2));
        }
    });
    common::within(120, "2000 inputs", fed).await.unwrap();
    let t = conformance::harness::Target {
        name: "embedded",
        tcp: addr,
        ws: addr,
    };
    conformance::fresh_round_trip(&t).await.unwrap();
    assert!(
        child.try_wait().unwrap().is_none(),
        "the broker process ended"
    );
    drop(child.stdin.take());
    let mut log = String::new();
    let mut err = child.stderr.take().unwrap();
    common::within(10, "the broker to stop", err.read_to_string(&mut log))
        .await
        .unwrap();
    assert!(!log.contains("panicked"), "the broker panicked:\n{log}");
}
