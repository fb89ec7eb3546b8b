//! Broker profiles: MQTTX import, the file's round trip and recovery, and connecting over
//! tcp, tls, ws and wss to a real mosquitto (TLS with a CA file), with refusals in plain words.
#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

mod common;

use std::time::Duration;

use common::Mosquitto;
use common::corpus::{Corpus, LeafSpec};
use mpbridge::config::Secret;
use mpbridge::config::store::{self, ConfigFile};
use mpbridge::mqtt::profile::{Profile, Profiles, TrustChoice, from_mqttx};
use rumqttc::{AsyncClient, Event, Packet, QoS};

#[test]
fn mqttx_export_is_imported() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/mqttx/connections.json"
    ))
    .unwrap();
    let (profiles, notes) = from_mqttx(&text).unwrap();
    assert_eq!(profiles.len(), 2, "{notes:?}");
    let a = &profiles[0];
    assert_eq!(a.name, "Factory TCP");
    assert_eq!(a.url, "mqtt://127.0.0.1:1883");
    assert_eq!(a.client_id, "mqttx_5f3b2a1c");
    assert!(!a.random_suffix);
    assert_eq!(a.username.as_deref(), Some("device"));
    assert_eq!(a.password.as_ref().unwrap().expose(), "right-password");
    assert_eq!(a.keepalive_secs, 30);
    let will = a.will.as_ref().unwrap();
    assert_eq!(
        (will.topic.as_str(), will.qos, will.retain),
        ("factory/console/status", 1, true)
    );
    assert_eq!(a.subscriptions, vec!["factory/#", "$SYS/#"]);
    let b = &profiles[1];
    assert_eq!(b.url, "wss://broker.example.com:8084/mqtt");
    assert!(b.insecure);
    assert!(!b.clean_session);
    assert!(
        b.random_suffix,
        "an empty MQTTX client id gets a generated one"
    );
    assert!(notes.iter().any(|n| n.contains("No host")), "{notes:?}");
    assert!(notes.iter().any(|n| n.contains("MQTT 5")), "{notes:?}");
    assert!(
        notes.iter().any(|n| n.contains("verification is off")),
        "{notes:?}"
    );
    assert!(from_mqttx("not json").unwrap_err().contains("not JSON"));
}

#[test]
fn profiles_file_round_trip_and_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("profiles.json");
    let mut p = Profile::new("lab", "mqtts://broker.lab:8883");
    p.username = Some("u".into());
    p.password = Some(Secret::new("pw"));
    let file = Profiles { profiles: vec![p] };
    store::save(&path, &file).unwrap();
    let loaded = store::load::<Profiles>(&path);
    assert!(loaded.problem.is_none());
    assert_eq!(loaded.value, file);
    std::fs::write(&path, "{ \"profiles\": [ { \"name\": \"x\" ").unwrap();
    let loaded = store::load::<Profiles>(&path);
    let problem = loaded.problem.unwrap();
    assert!(
        problem.kept_as.as_ref().unwrap().exists(),
        "the broken file is kept"
    );
    assert!(loaded.value.profiles.is_empty());
    assert!(
        Profiles::parse("{\"profiles\":[{\"name\":\"x\",\"url\":\"http://a\"}]}")
            .unwrap_err()
            .message
            .contains("not a broker address")
    );
}

/// Connects with the profile, subscribes, publishes, and gets the message back.
async fn round_trip(p: &Profile) -> Result<(), String> {
    let (c, mut ev) = AsyncClient::new(p.mqtt_options()?, 10);
    let topic = format!("profile/{}", rand::random::<u32>());
    let work = async {
        loop {
            match ev.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    c.subscribe(&topic, QoS::AtLeastOnce).await.ok();
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    c.publish(&topic, QoS::AtLeastOnce, false, "hi").await.ok();
                }
                Ok(Event::Incoming(Packet::Publish(m))) if m.topic == topic => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(mpbridge::mqtt::describe_error(&p.url, &e)),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), work)
        .await
        .map_err(|_| "timed out".to_owned())?
}

#[test]
fn profiles_connect_over_tcp_tls_ws_and_wss() {
    let rt = common::runtime();
    let c = Corpus::new();
    let leaf = c.leaf(LeafSpec::default());
    let chain = c.write("server.pem", &format!("{}{}", leaf.pem, c.inter_pem));
    let key = c.write("server.key", &leaf.key_pem);
    let (tls_port, wss_port) = (common::free_port(), common::free_port());
    let m = Mosquitto::start_with(&format!(
        "listener {tls_port} 127.0.0.1\ncertfile {}\nkeyfile {}\nlistener {wss_port} 127.0.0.1\nprotocol websockets\ncertfile {}\nkeyfile {}\n",
        chain.display(),
        key.display(),
        chain.display(),
        key.display()
    ));
    common::wait_listening(tls_port, 10);
    common::wait_listening(wss_port, 10);
    let with_ca = |url: String| {
        let mut p = Profile::new("t", &url);
        p.trust = TrustChoice::File;
        p.ca_file = Some(c.path("root.pem"));
        p
    };
    for p in [
        Profile::new("tcp", &format!("mqtt://127.0.0.1:{}", m.tcp_port)),
        Profile::new("ws", &format!("ws://127.0.0.1:{}/mqtt", m.ws_port)),
        with_ca(format!("mqtts://127.0.0.1:{tls_port}")),
        with_ca(format!("wss://127.0.0.1:{wss_port}/mqtt")),
    ] {
        rt.block_on(round_trip(&p))
            .unwrap_or_else(|e| panic!("{}: {e}", p.url));
    }
    // Trusting the public roots: the private test CA is refused, and the error says TLS.
    let mut p = Profile::new("tls-public", &format!("mqtts://127.0.0.1:{tls_port}"));
    p.trust = TrustChoice::Public;
    let err = rt.block_on(round_trip(&p)).unwrap_err();
    assert!(err.contains("TLS handshake failed"), "{err}");
    // Nothing listening: named plainly.
    let p = Profile::new("none", &format!("mqtt://127.0.0.1:{}", common::free_port()));
    let err = rt.block_on(round_trip(&p)).unwrap_err();
    assert!(err.contains("nothing accepts connections at"), "{err}");
}

#[test]
fn refused_credentials_are_decoded() {
    let rt = common::runtime();
    let c = Corpus::new();
    let pw = c.path("passwd");
    let out = std::process::Command::new("mosquitto_passwd")
        .args(["-b", "-c"])
        .arg(&pw)
        .args(["device", "right"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let m = Mosquitto::start_with(&format!(
        "allow_anonymous false\npassword_file {}",
        pw.display()
    ));
    let mut p = Profile::new("auth", &format!("mqtt://127.0.0.1:{}", m.tcp_port));
    p.username = Some("device".into());
    p.password = Some(Secret::new("wrong"));
    let err = rt.block_on(round_trip(&p)).unwrap_err();
    assert!(
        err.contains("not authorized (CONNACK 5)")
            || err.contains("bad user name or password (CONNACK 4)"),
        "{err}"
    );
    assert!(!err.contains("wrong"));
    p.password = Some(Secret::new("right"));
    rt.block_on(round_trip(&p)).unwrap();
}
