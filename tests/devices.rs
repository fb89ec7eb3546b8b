//! Devices against a real mosquitto: the simulator (the real binary) with 200 devices, the
//! roster seeing them, reboots, commands acknowledged or timed out, PubSubClient's handling of
//! oversize packets, discovery, and the Mini Program demo flow.
#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{KillOnDrop, Mosquitto, mpbridge};
use mpbridge::devices::commands::{self, AckTracker, Outcome};
use mpbridge::devices::config::{DeviceDef, DevicesConfig, esp8266_templates};
use mpbridge::devices::roster::Roster;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

/// A console-like observer: subscribes to `devices/#`, feeds a roster and an ack tracker.
struct Watcher {
    roster: Arc<Mutex<Roster>>,
    acks: AckTracker,
    client: AsyncClient,
}

impl Watcher {
    fn start(rt: &tokio::runtime::Runtime, m: &Mosquitto, config: DevicesConfig) -> Self {
        let mut o = MqttOptions::new(
            format!("watcher-{}", rand::random::<u32>()),
            "127.0.0.1",
            m.tcp_port,
        );
        o.set_keep_alive(Duration::from_secs(30));
        let (client, mut ev) = AsyncClient::new(o, 1024);
        let roster = Arc::new(Mutex::new(Roster::new(config)));
        let acks = AckTracker::default();
        let (r, a, c) = (roster.clone(), acks.clone(), client.clone());
        rt.spawn(async move {
            loop {
                match ev.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        c.subscribe("devices/#", QoS::AtMostOnce).await.ok();
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        a.observe(&p.topic, &p.payload);
                        let now = chrono::Utc::now().timestamp_millis();
                        r.lock().unwrap().on_message(&p.topic, &p.payload, now);
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        });
        Watcher {
            roster,
            acks,
            client,
        }
    }

    fn wait(&self, secs: u64, what: &str, ok: impl Fn(&Roster) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !ok(&self.roster.lock().unwrap()) {
            assert!(
                Instant::now() < deadline,
                "timed out after {secs} s: {what}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends a prepared command the way the console does: expect, publish, wait.
    fn send(&self, rt: &tokio::runtime::Runtime, p: &commands::Prepared) -> Outcome {
        let rx = p.ack.clone().map(|a| self.acks.expect(a));
        let sent = Instant::now();
        rt.block_on(self.client.publish(
            p.topic.clone(),
            QoS::AtMostOnce,
            p.retain,
            p.payload.clone(),
        ))
        .unwrap();
        match rx {
            Some(rx) => rt.block_on(commands::wait(rx, sent, p.timeout)),
            None => Outcome::Sent,
        }
    }
}

fn config_for(ids: &[String]) -> DevicesConfig {
    DevicesConfig {
        devices: ids
            .iter()
            .map(|id| DeviceDef::esp8266(id, "devices"))
            .collect(),
        ..DevicesConfig::default()
    }
}

#[test]
fn two_hundred_simulated_devices_reboots_commands_and_oversize() {
    let rt = common::runtime();
    let m = Mosquitto::start();
    let root = tempfile::tempdir().unwrap();
    // The simulator, through the real binary.
    let mut child = mpbridge(root.path())
        .args(["simulate", "--broker"])
        .arg(format!("mqtt://127.0.0.1:{}", m.tcp_port))
        .args(["--devices", "200", "--json", "--for", "120"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _sim = KillOnDrop(child);
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let ids: Vec<String> = v["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 200);
    assert_eq!(ids[0], "esp8266-0001");

    let w = Watcher::start(&rt, &m, config_for(&ids));
    w.wait(30, "all 200 online", |r| r.online_count() == 200);
    w.wait(10, "telemetry from every device", |r| {
        r.live.values().all(|l| l.telemetry.contains_key("rssi"))
    });

    let templates = esp8266_templates();
    let dev = DeviceDef::esp8266(&ids[7], "devices");

    // A command acknowledged, with its latency.
    let mut values = BTreeMap::new();
    values.insert("state".to_owned(), "on".to_owned());
    let led = commands::prepare(&templates[0], &dev, &values).unwrap();
    assert!(commands::warnings(&led, &templates[0], &dev).is_empty());
    match w.send(&rt, &led) {
        Outcome::Acknowledged { latency, payload } => {
            assert!(latency < Duration::from_secs(5));
            assert!(payload.contains(r#""led":"on""#), "{payload}");
        }
        other => panic!("{other:?}"),
    }

    // Reboot: offline, then online again; the roster counts the reconnect.
    let reboot = commands::prepare(&templates[2], &dev, &BTreeMap::new()).unwrap();
    let id = dev.id.clone();
    match w.send(&rt, &reboot) {
        Outcome::Acknowledged { .. } => {}
        other => panic!("reboot: {other:?}"),
    }
    w.wait(5, "the reconnect counted", |r| {
        r.live[&id].reconnects == 1 && r.live[&id].online == Some(true)
    });

    // Oversize: the console warns; forced, the device ignores it like PubSubClient (no
    // answer, still online).
    let mut big = templates[0].clone();
    big.payload = format!(r#"{{"led":"{{state}}","note":"{}"}}"#, "x".repeat(300));
    big.timeout_secs = 2;
    let p = commands::prepare(&big, &dev, &values).unwrap();
    let warn = commands::warnings(&p, &big, &dev);
    assert!(
        warn.iter().any(|w| w.en.contains("accepts at most 256")),
        "{warn:?}"
    );
    assert!(matches!(w.send(&rt, &p), Outcome::TimedOut { .. }));
    assert_eq!(w.roster.lock().unwrap().live[&id].online, Some(true));
    assert_eq!(
        w.roster.lock().unwrap().live[&id].reconnects,
        1,
        "not dropped"
    );
    // And it still obeys a normal command afterwards.
    assert!(matches!(w.send(&rt, &led), Outcome::Acknowledged { .. }));
}

#[test]
fn a_stopped_device_times_out_and_discovery_proposes_ids() {
    let rt = common::runtime();
    let m = Mosquitto::start();
    let cancel = tokio_util::sync::CancellationToken::new();
    let addr = format!("127.0.0.1:{}", m.tcp_port).parse().unwrap();
    let base = mpbridge::devices::sim::SimOptions::demo("", addr);
    let ids = mpbridge::devices::sim::spawn_fleet(rt.handle(), &base, "found", 3, &cancel);
    // The roster knows none of them: discovery proposes all three.
    let w = Watcher::start(&rt, &m, DevicesConfig::default());
    w.wait(15, "three proposals", |r| r.proposals.len() == 3);
    let proposed: Vec<String> = w.roster.lock().unwrap().proposals.keys().cloned().collect();
    assert_eq!(proposed, ids);
    assert_eq!(
        w.roster.lock().unwrap().proposals["found-0002"].prefix,
        "devices"
    );
    {
        let mut r = w.roster.lock().unwrap();
        r.add(DeviceDef::esp8266("found-0002", "devices"));
        assert_eq!(r.proposals.len(), 2);
    }
    // Stop the devices; a command to one of them times out.
    cancel.cancel();
    w.wait(10, "found-0002 offline", |r| {
        r.live["found-0002"].online == Some(false)
    });
    let dev = DeviceDef::esp8266("found-0002", "devices");
    let mut values = BTreeMap::new();
    values.insert("state".to_owned(), "toggle".to_owned());
    let mut led = commands::prepare(&esp8266_templates()[0], &dev, &values).unwrap();
    led.timeout = Duration::from_secs(1);
    match w.send(&rt, &led) {
        Outcome::TimedOut { after } => assert!(after >= Duration::from_secs(1)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_demo_flow_runs_end_to_end() {
    let rt = common::runtime();
    let m = Mosquitto::start();
    let cancel = tokio_util::sync::CancellationToken::new();
    let addr = format!("127.0.0.1:{}", m.tcp_port).parse().unwrap();
    let ids = mpbridge::devices::sim::spawn_fleet(
        rt.handle(),
        &mpbridge::devices::sim::SimOptions::demo("", addr),
        "flow",
        1,
        &cancel,
    );
    let dev = DeviceDef::esp8266(&ids[0], "devices");
    let o = MqttOptions::new("flow-test", "127.0.0.1", m.tcp_port);
    // Give the device a moment to publish its retained status.
    std::thread::sleep(Duration::from_millis(500));
    let steps = rt.block_on(common::within(
        60,
        "the demo flow",
        mpbridge::devices::flow::run(o, &dev, Duration::from_secs(10)),
    ));
    assert_eq!(steps.len(), 6, "{steps:#?}");
    for s in &steps {
        assert!(s.ok, "{s:#?}");
    }
    assert!(
        steps[2].detail.en.contains("retained status \"online\""),
        "{:?}",
        steps[2]
    );
    assert!(
        steps[3].detail.en.contains("\"led\":\"on\""),
        "{:?}",
        steps[3]
    );
    cancel.cancel();
}

#[test]
fn simulate_refuses_what_it_cannot_do() {
    let root = tempfile::tempdir().unwrap();
    let out = mpbridge(root.path())
        .args(["simulate", "--broker", "wss://example.com/mqtt"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("plain MQTT over TCP"));
    let port = common::free_port();
    let out = mpbridge(root.path())
        .args(["simulate", "--broker"])
        .arg(format!("mqtt://127.0.0.1:{port}"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot connect to the broker"), "{err}");
    assert_eq!(err.trim().lines().count(), 1);
}
