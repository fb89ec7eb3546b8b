//! The embedded sandbox, seen by a real MQTT client (rumqttc) from outside.
#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

mod common;

use std::time::{Duration, Instant};

use common::within;
use mpbridge::config::Paths;
use mpbridge::sandbox::{DEMO_DEVICE, Sandbox};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// Polls until a publish on `topic` satisfies `pred`; returns its payload.
async fn wait_for(ev: &mut EventLoop, topic: &str, pred: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    loop {
        match ev.poll().await {
            Ok(Event::Incoming(Packet::Publish(p))) if p.topic == topic && pred(&p.payload) => {
                return p.payload.to_vec();
            }
            Ok(_) => {}
            Err(e) => panic!("MQTT client error: {e}"),
        }
    }
}

fn json(payload: &[u8]) -> Value {
    serde_json::from_slice(payload).expect("JSON payload")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_device_publishes_obeys_and_reboots() {
    let dir = tempfile::tempdir().unwrap();
    let cancel = CancellationToken::new();
    let sb = within(
        20,
        "sandbox start",
        Sandbox::start(&Paths::under(dir.path()), &cancel),
    )
    .await
    .expect("sandbox starts");
    assert!(
        sb.info.broker.starts_with("mqtt://127.0.0.1:"),
        "{}",
        sb.info.broker
    );
    assert_eq!(sb.info.devices, vec![DEMO_DEVICE.to_owned()]);
    assert!(
        sb.info.ca.is_file(),
        "dev CA written: {}",
        sb.info.ca.display()
    );

    let addr = sb.info.broker_addr;
    let mut opts = MqttOptions::new("sandbox-test", addr.ip().to_string(), addr.port());
    opts.set_keep_alive(Duration::from_secs(10));
    let (client, mut ev) = AsyncClient::new(opts, 16);
    let base = format!("devices/{DEMO_DEVICE}");
    client
        .subscribe(format!("{base}/#"), QoS::AtLeastOnce)
        .await
        .unwrap();

    // Telemetry within 3 s, with every field the Overview shows.
    let started = Instant::now();
    let t = json(
        &within(
            3,
            "first telemetry",
            wait_for(&mut ev, &format!("{base}/telemetry"), |_| true),
        )
        .await,
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    for key in [
        "temperature",
        "humidity",
        "rssi",
        "free_heap",
        "uptime",
        "led",
    ] {
        assert!(t.get(key).is_some(), "telemetry lacks {key}: {t}");
    }

    // Each command is answered with the matching state.
    let cmd = format!("{base}/cmd");
    let state = format!("{base}/state");
    for (command, key, expected) in [
        (r#"{"led":"on"}"#, "led", Value::from("on")),
        (r#"{"led":"toggle"}"#, "led", Value::from("off")),
        (r#"{"led":"off"}"#, "led", Value::from("off")),
        (r#"{"interval_ms":500}"#, "interval_ms", Value::from(500)),
    ] {
        client
            .publish(&cmd, QoS::AtLeastOnce, false, command)
            .await
            .unwrap();
        let s = json(&within(5, command, wait_for(&mut ev, &state, |_| true)).await);
        assert_eq!(s[key], expected, "after {command}: {s}");
    }
    // A bad command gets an error answer, not silence.
    client
        .publish(&cmd, QoS::AtLeastOnce, false, r#"{"led":"blink"}"#)
        .await
        .unwrap();
    let s = json(&within(5, "error answer", wait_for(&mut ev, &state, |_| true)).await);
    assert!(
        s["error"].as_str().is_some_and(|e| e.contains("led")),
        "{s}"
    );

    // Reboot: status goes offline (last will), then online again.
    let status = format!("{base}/status");
    client
        .publish(&cmd, QoS::AtLeastOnce, false, r#"{"reboot":true}"#)
        .await
        .unwrap();
    within(
        10,
        "status offline after reboot",
        wait_for(&mut ev, &status, |p| p == b"offline"),
    )
    .await;
    within(
        10,
        "status online after boot",
        wait_for(&mut ev, &status, |p| p == b"online"),
    )
    .await;
    let t = json(
        &within(
            5,
            "telemetry after boot",
            wait_for(&mut ev, &format!("{base}/telemetry"), |_| true),
        )
        .await,
    );
    assert!(
        t["uptime"].as_u64().is_some_and(|u| u < 5),
        "uptime restarted: {t}"
    );
    drop(sb);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_is_retained_for_late_subscribers() {
    let dir = tempfile::tempdir().unwrap();
    let cancel = CancellationToken::new();
    let sb = within(
        20,
        "sandbox start",
        Sandbox::start(&Paths::under(dir.path()), &cancel),
    )
    .await
    .expect("sandbox starts");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let addr = sb.info.broker_addr;
    let (client, mut ev) = AsyncClient::new(
        MqttOptions::new("late-subscriber", addr.ip().to_string(), addr.port()),
        16,
    );
    client
        .subscribe(format!("devices/{DEMO_DEVICE}/status"), QoS::AtLeastOnce)
        .await
        .unwrap();
    let p = within(5, "retained status", async {
        loop {
            if let Ok(Event::Incoming(Packet::Publish(p))) = ev.poll().await {
                return p;
            }
        }
    })
    .await;
    assert_eq!(&p.payload[..], b"online");
    assert!(p.retain, "status must be retained");
}

/// The broker's plain WebSocket listener (EMQX's 8083 role) behind the relay's ws:// route:
/// a wss:// client through the relay talks to the embedded broker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_ws_route_reaches_the_broker_websocket_listener() {
    let dir = tempfile::tempdir().unwrap();
    let cancel = CancellationToken::new();
    let sb = within(
        20,
        "sandbox start",
        Sandbox::start(&Paths::under(dir.path()), &cancel),
    )
    .await
    .expect("sandbox starts");
    let ws = sb.broker.ws_addr().expect("a WebSocket listener");
    assert_eq!(sb.info.broker_ws, format!("ws://{ws}/mqtt"));
    let ca = mpbridge::sandbox::devca::ensure(&Paths::under(dir.path()).dev_ca_dir()).unwrap();
    let cfg = mpbridge::relay::RelayConfig::simple(
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        &ca.leaf_chain,
        &ca.leaf_key,
        "/mqtt",
        mpbridge::relay::Upstream::Ws {
            host: ws.ip().to_string(),
            port: ws.port(),
            path: "/mqtt".into(),
        },
    )
    .unwrap();
    let relay = mpbridge::relay::Relay::start(cfg, &tokio::runtime::Handle::current())
        .await
        .unwrap();
    rustls::crypto::ring::default_provider()
        .install_default()
        .ok();
    let tls = mpbridge::relay::tls::client_config_with_roots(&[&ca.ca_cert]).unwrap();
    let url = format!("wss://localhost:{}/mqtt", relay.addr().port());
    let mut opts = MqttOptions::new("via-ws-route", url, relay.addr().port());
    opts.set_transport(rumqttc::Transport::wss_with_config(tls.into()));
    let (client, mut ev) = AsyncClient::new(opts, 16);
    client
        .subscribe(format!("devices/{DEMO_DEVICE}/telemetry"), QoS::AtMostOnce)
        .await
        .unwrap();
    let t = within(
        5,
        "telemetry through relay ws:// → broker ws listener",
        wait_for(&mut ev, &format!("devices/{DEMO_DEVICE}/telemetry"), |_| {
            true
        }),
    )
    .await;
    assert!(json(&t)["temperature"].is_number());
    relay.stop().await;
    sb.stop().await;
}
