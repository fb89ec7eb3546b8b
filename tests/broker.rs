//! Broker profiles: MQTTX import, the file's round trip and recovery, and connecting over
//! tcp, tls, ws and wss to a real mosquitto (TLS with a CA file), with refusals in plain words.
#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

mod common;

use std::time::Duration;

use common::Mosquitto;
use common::corpus::{Corpus, LeafSpec};
use mpbridge::config::Secret;
use mpbridge::config::store::{self, ConfigFile};
use mpbridge::mqtt::profile::{self, MqttVersion, Profile, Profiles, TrustChoice, from_mqttx};
use mpbridge::relay::Relay;
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
    // Subscription QoS is kept (one per profile: the highest), and the mix is said.
    assert_eq!(a.subscribe_qos, 1);
    assert!(
        notes
            .iter()
            .any(|n| n.en.contains("all are made with QoS 1")),
        "{notes:?}"
    );
    let b = &profiles[1];
    assert_eq!(b.url, "wss://broker.example.com:8084/mqtt");
    assert!(b.insecure);
    assert!(!b.clean_session);
    assert!(
        b.random_suffix,
        "an empty MQTTX client id gets a generated one"
    );
    assert_eq!(b.version, MqttVersion::V5);
    assert_eq!(b.session_expiry_secs, Some(3600));
    assert!(notes.iter().any(|n| n.en.contains("No host")), "{notes:?}");
    assert!(
        notes.iter().any(|n| n.en.contains("verification is off")),
        "{notes:?}"
    );
    assert!(from_mqttx("not json").unwrap_err().en.contains("not JSON"));
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

/// *Export* leaves passwords out and *Import* reads it back whole; an export of ours with a
/// wrong profile or field is refused with its own error, never mistaken for an MQTTX file.
#[test]
fn profiles_export_and_import_round_trip() {
    let mut a = Profile::new("lab", "wss://broker.lab:8084/mqtt");
    a.username = Some("operator".into());
    a.password = Some(Secret::new("s3cret-pw"));
    a.version = MqttVersion::V5;
    a.session_expiry_secs = Some(600);
    a.subscriptions = vec!["lab/#".into()];
    a.subscribe_qos = 2;
    a.sni = Some("edge.lab".into());
    let b = Profile::new("plain", "mqtt://127.0.0.1:1883");
    let file = Profiles {
        profiles: vec![a.clone(), b.clone()],
    };
    let text = file.export_text();
    assert!(!text.contains("s3cret-pw"), "{text}");
    let (back, notes) = profile::import(&text).unwrap();
    assert!(notes.is_empty(), "{notes:?}");
    let mut want = a;
    want.password = None;
    assert_eq!(back, vec![want, b]);
    // Ours, but a profile in it is wrong: our words for it, with the profile's name.
    let err = profile::import(r#"{"profiles":[{"name":"x","url":"http://a"}]}"#).unwrap_err();
    assert!(
        err.en.contains("profile \"x\"") && err.en.contains("not a broker address"),
        "{err:?}"
    );
    let err = profile::import("{\"profiles\": [ {\"name\": 5} ]}").unwrap_err();
    assert!(err.en.starts_with("line 1:"), "{err:?}");
    // A damaged export of ours (cut short): still our words, with the line.
    let cut = &text[..text.len() / 2];
    let err = profile::import(cut).unwrap_err();
    assert!(
        err.en.starts_with("line ") && !err.en.contains("MQTTX"),
        "{err:?}"
    );
    // MQTTX's export still goes to the MQTTX reader.
    let (mqttx, _) = profile::import(r#"[{"name":"m","host":"10.0.0.1","port":1883}]"#).unwrap();
    assert_eq!(mqttx[0].url, "mqtt://10.0.0.1:1883");
}

/// Connects with the profile, subscribes, publishes, and gets the message back.
async fn round_trip(p: &Profile) -> Result<(), String> {
    let (c, mut ev) = AsyncClient::new(p.mqtt_options().map_err(|e| e.en)?, 10);
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
                Err(e) => return Err(mpbridge::mqtt::describe_error(&p.url, &e).en),
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
    assert!(
        err.contains("TLS handshake failed") && err.contains("(CERT-TRUST)"),
        "{err}"
    );
    // The right CA, but the certificate is for another name: CERT-NAME, naming both.
    let mut p = with_ca(format!("mqtts://localhost:{tls_port}"));
    p.name = "tls-name".into();
    let err = rt.block_on(round_trip(&p)).unwrap_err();
    assert!(
        err.contains("(CERT-NAME)") && err.contains("not localhost"),
        "{err}"
    );
    // MQTT 5 says the same.
    let mut p = Profile::new("tls-public-5", &format!("mqtts://127.0.0.1:{tls_port}"));
    p.trust = TrustChoice::Public;
    p.version = MqttVersion::V5;
    let mut conn = LiveConn::start(&rt, &p, &[]);
    let err = rt.block_on(conn.connected()).unwrap_err().en;
    assert!(err.contains("(CERT-TRUST)"), "{err}");
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
    let out = std::process::Command::new(mpbridge::bench::program("mosquitto_passwd"))
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

/// A console worker (the real one) on a profile, with what it reports.
struct LiveConn {
    worker: mpbridge::mqtt::worker::Worker,
    messages: tokio::sync::mpsc::Receiver<mpbridge::mqtt::MqttMessage>,
    state: tokio::sync::watch::Receiver<mpbridge::mqtt::ConnState>,
    /// Every SUBACK: the filter it answers and, when refused, why.
    subacks: tokio::sync::mpsc::Receiver<(Option<String>, Option<mpbridge::verdict::L10n>)>,
    _cancel: tokio_util::sync::CancellationToken,
}

impl LiveConn {
    fn start(rt: &tokio::runtime::Runtime, p: &Profile, subs: &[&str]) -> Self {
        // Bounded: a test that stops reading loses messages, never memory.
        let (tx, messages) = tokio::sync::mpsc::channel(1024);
        let (state_tx, state) = tokio::sync::watch::channel(mpbridge::mqtt::ConnState::Idle);
        let (suback_tx, subacks) = tokio::sync::mpsc::channel(64);
        let cancel = tokio_util::sync::CancellationToken::new();
        let worker = mpbridge::mqtt::worker::Worker::spawn_with(
            rt.handle(),
            p.options().unwrap(),
            subs.iter()
                .map(|s| (s.to_string(), QoS::ExactlyOnce))
                .collect(),
            mpbridge::mqtt::worker::WorkerSinks {
                state: state_tx,
                on_message: Box::new(move |m| {
                    let _ = tx.try_send(m);
                }),
                on_suback: Box::new(move |f, refused| {
                    let _ = suback_tx.try_send((f, refused));
                }),
            },
            &cancel,
        );
        LiveConn {
            worker,
            messages,
            state,
            subacks,
            _cancel: cancel,
        }
    }

    /// Connected, or the first failure in words (both languages).
    async fn connected(&mut self) -> Result<(), mpbridge::verdict::L10n> {
        common::within(10, "connection state", async {
            loop {
                match &*self.state.borrow_and_update() {
                    mpbridge::mqtt::ConnState::Connected { .. } => return Ok(()),
                    mpbridge::mqtt::ConnState::Disconnected { error, .. } => {
                        return Err(error.clone());
                    }
                    _ => {}
                }
                self.state.changed().await.unwrap();
            }
        })
        .await
    }

    /// The next `n` SUBACKs, by the filter each was matched to.
    fn subacks(
        &mut self,
        rt: &tokio::runtime::Runtime,
        n: usize,
    ) -> std::collections::HashMap<String, Option<mpbridge::verdict::L10n>> {
        rt.block_on(common::within(10, "SUBACKs", async {
            let mut out = std::collections::HashMap::new();
            for _ in 0..n {
                let (f, refused) = self.subacks.recv().await.unwrap();
                out.insert(f.expect("a SUBACK matched to its filter"), refused);
            }
            out
        }))
    }

    async fn next_on(&mut self, topic: &str) -> mpbridge::mqtt::MqttMessage {
        common::within(10, topic, async {
            loop {
                let m = self.messages.recv().await.unwrap();
                if m.topic == topic {
                    return m;
                }
            }
        })
        .await
    }
}

#[test]
fn mqtt5_profiles_send_and_show_publish_properties_over_tcp_ws_and_wss() {
    let rt = common::runtime();
    let c = Corpus::new();
    let leaf = c.leaf(LeafSpec::default());
    let chain = c.write("server.pem", &format!("{}{}", leaf.pem, c.inter_pem));
    let key = c.write("server.key", &leaf.key_pem);
    let wss_port = common::free_port();
    let m = Mosquitto::start_with(&format!(
        "listener {wss_port} 127.0.0.1\nprotocol websockets\ncertfile {}\nkeyfile {}\n",
        chain.display(),
        key.display()
    ));
    common::wait_listening(wss_port, 10);
    let mut wss = Profile::new("wss5", &format!("wss://127.0.0.1:{wss_port}/mqtt"));
    wss.trust = TrustChoice::File;
    wss.ca_file = Some(c.path("root.pem"));
    for mut p in [
        Profile::new("tcp5", &format!("mqtt://127.0.0.1:{}", m.tcp_port)),
        Profile::new("ws5", &format!("ws://127.0.0.1:{}/mqtt", m.ws_port)),
        wss,
    ] {
        p.version = MqttVersion::V5;
        let topic = format!("v5/{}", p.name);
        let mut conn = LiveConn::start(&rt, &p, &["v5/#"]);
        rt.block_on(conn.connected())
            .unwrap_or_else(|e| panic!("{}: {}", p.url, e.en));
        assert_eq!(conn.worker.client.protocol(), 5);
        let props = mpbridge::mqtt::Props {
            payload_utf8: Some(true),
            message_expiry_secs: Some(120),
            content_type: Some("application/json".into()),
            response_topic: Some("replies/console".into()),
            correlation_data: Some(bytes::Bytes::from_static(&[0xff, 0x00, 0x2a])),
            user: vec![
                ("source".into(), "console".into()),
                ("source".into(), "twice".into()),
            ],
            ..Default::default()
        };
        // The SUBACK may still be on its way: publish until the first copy comes back.
        let got = rt.block_on(async {
            common::within(10, "the MQTT 5 message back", async {
                loop {
                    conn.worker
                        .client
                        .try_publish(
                            &topic,
                            QoS::AtLeastOnce,
                            false,
                            &b"{\"on\":1}"[..],
                            Some(&props),
                        )
                        .unwrap();
                    if let Ok(m) =
                        tokio::time::timeout(Duration::from_millis(500), conn.next_on(&topic)).await
                    {
                        break m;
                    }
                }
            })
            .await
        });
        let back = got.props.as_deref().expect("properties received");
        assert_eq!(
            back.content_type.as_deref(),
            Some("application/json"),
            "{}",
            p.url
        );
        assert_eq!(back.response_topic.as_deref(), Some("replies/console"));
        assert_eq!(
            back.correlation_data.as_deref(),
            Some(&[0xff, 0x00, 0x2a][..])
        );
        assert_eq!(
            back.user, props.user,
            "user properties in order, duplicates kept"
        );
        assert_eq!(back.payload_utf8, Some(true));
        // The broker forwards the remaining lifetime: at most what was sent.
        assert!(
            back.message_expiry_secs
                .is_some_and(|e| e > 100 && e <= 120),
            "{back:?}"
        );
        conn.worker.stop();
    }
    // Properties on a 3.1.1 connection are refused in words, not dropped silently.
    let mut p311 = LiveConn::start(
        &rt,
        &Profile::new("tcp311", &format!("mqtt://127.0.0.1:{}", m.tcp_port)),
        &[],
    );
    rt.block_on(p311.connected()).unwrap();
    let props = mpbridge::mqtt::Props {
        content_type: Some("text/plain".into()),
        ..Default::default()
    };
    let err = p311
        .worker
        .client
        .try_publish("x", QoS::AtMostOnce, false, &b"x"[..], Some(&props))
        .unwrap_err();
    assert!(err.contains("MQTT 5 connection"), "{err}");
}

#[test]
fn mqtt5_session_expiry_keeps_messages_for_an_offline_console() {
    let rt = common::runtime();
    let m = Mosquitto::start_with("");
    let url = format!("mqtt://127.0.0.1:{}", m.tcp_port);
    // The same client id each time; clean start off; the session outlives the connection
    // only when session expiry says so.
    let profile = |name: &str, expiry: Option<u32>| {
        let mut p = Profile::new(name, &url);
        p.version = MqttVersion::V5;
        p.client_id = format!("console-{name}");
        p.random_suffix = false;
        p.clean_session = false;
        p.session_expiry_secs = expiry;
        p
    };
    for (name, expiry, kept) in [("kept", Some(300), true), ("ended", None, false)] {
        let p = profile(name, expiry);
        let topic = format!("queue5/{name}");
        let mut conn = LiveConn::start(&rt, &p, &[topic.as_str()]);
        rt.block_on(conn.connected()).unwrap();
        // Subscribed once the broker echoes a retained-free probe back.
        rt.block_on(async {
            common::within(10, "subscription in place", async {
                loop {
                    conn.worker
                        .client
                        .try_publish(&topic, QoS::AtLeastOnce, false, &b"probe"[..], None)
                        .unwrap();
                    if tokio::time::timeout(Duration::from_millis(500), conn.next_on(&topic))
                        .await
                        .is_ok()
                    {
                        break;
                    }
                }
            })
            .await
        });
        conn.worker.stop();
        std::thread::sleep(Duration::from_millis(700));
        publish_v311(&rt, m.tcp_port, &topic, "while away");
        let mut again = LiveConn::start(&rt, &p, &[]);
        rt.block_on(again.connected()).unwrap();
        let got = rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(3), async {
                loop {
                    let m = again.next_on(&topic).await;
                    if &m.payload[..] == b"while away" {
                        break m;
                    }
                }
            })
            .await
        });
        assert_eq!(got.is_ok(), kept, "{name}: session expiry {expiry:?}");
        again.worker.stop();
    }
}

#[test]
fn mqtt5_refusals_are_decoded() {
    let rt = common::runtime();
    let c = Corpus::new();
    let pw = c.path("passwd");
    let out = std::process::Command::new(mpbridge::bench::program("mosquitto_passwd"))
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
    let mut p = Profile::new("auth5", &format!("mqtt://127.0.0.1:{}", m.tcp_port));
    p.version = MqttVersion::V5;
    p.username = Some("device".into());
    p.password = Some(Secret::new("wrong-pass"));
    let mut conn = LiveConn::start(&rt, &p, &[]);
    let both = rt.block_on(conn.connected()).unwrap_err();
    let err = &both.en;
    assert!(
        err.contains("bad user name or password (CONNACK reason 0x86)")
            || err.contains("not authorized (CONNACK reason 0x87)"),
        "{err}"
    );
    // The same in Chinese, for the console in Chinese.
    assert!(
        both.zh.contains("用户名或密码错误（CONNACK reason 0x86）")
            || both.zh.contains("未授权（CONNACK reason 0x87）"),
        "{}",
        both.zh
    );
    assert!(!err.contains("wrong-pass") && !both.zh.contains("wrong-pass"));
    conn.worker.stop();
    p.password = Some(Secret::new("right"));
    let mut ok = LiveConn::start(&rt, &p, &[]);
    rt.block_on(ok.connected()).unwrap();
}

/// A broker that serves its certificate without the intermediate: the console's error is the
/// CERT-CHAIN-COMPLETE verdict on the chain it serves (naming the missing issuer), not a guess
/// between "untrusted" and "incomplete"; an untrusted but complete chain is CERT-TRUST.
#[test]
fn refused_certificates_are_explained_by_the_verdict_on_the_served_chain() {
    let rt = common::runtime();
    let c = Corpus::new();
    let leaf = c.leaf(LeafSpec::default());
    let leaf_only = c.write("leaf.pem", &leaf.pem);
    let full = c.write("full.pem", &format!("{}{}", leaf.pem, c.inter_pem));
    let key = c.write("server.key", &leaf.key_pem);
    let (short_port, full_port) = (common::free_port(), common::free_port());
    let _m = Mosquitto::start_with(&format!(
        "listener {short_port} 127.0.0.1\ncertfile {}\nkeyfile {}\nlistener {full_port} 127.0.0.1\ncertfile {}\nkeyfile {}\n",
        leaf_only.display(),
        key.display(),
        full.display(),
        key.display()
    ));
    common::wait_listening(short_port, 10);
    common::wait_listening(full_port, 10);
    for version in [MqttVersion::V311, MqttVersion::V5] {
        let mut p = Profile::new("short", &format!("mqtts://127.0.0.1:{short_port}"));
        p.version = version;
        p.trust = TrustChoice::File;
        p.ca_file = Some(c.path("root.pem"));
        let mut conn = LiveConn::start(&rt, &p, &[]);
        let err = rt.block_on(conn.connected()).unwrap_err();
        assert!(
            err.en.contains("(CERT-CHAIN-COMPLETE)") && err.en.contains("is missing"),
            "{}",
            err.en
        );
        assert!(
            !err.en.contains("when the server leaves out"),
            "a verdict, not a guess: {}",
            err.en
        );
        assert!(err.zh.contains("CERT-CHAIN-COMPLETE"), "{}", err.zh);
        conn.worker.stop();
        // The complete chain from a CA the profile does not trust: CERT-TRUST.
        let mut p = Profile::new("untrusted", &format!("mqtts://127.0.0.1:{full_port}"));
        p.version = version;
        p.trust = TrustChoice::Public;
        let mut conn = LiveConn::start(&rt, &p, &[]);
        let err = rt.block_on(conn.connected()).unwrap_err();
        assert!(err.en.contains("(CERT-TRUST)"), "{}", err.en);
        conn.worker.stop();
    }
}

/// A subscription the broker's access rules deny (its dynamic security plugin) comes back
/// refused, named by its own filter among granted ones, in words (3.1.1: SUBACK 0x80; 5:
/// reason 0x87 decoded), while the allowed one flows; after the broker restarts, the
/// subscriptions made again are answered and named the same way.
#[test]
fn refused_subscriptions_are_named_and_said_in_words() {
    let rt = common::runtime();
    let dir = tempfile::tempdir().unwrap();
    let mut m = Mosquitto::start_with(&common::only_subscribe_under(dir.path(), "open/#"));
    let subs = ["secret/#", "open/#", "secret/a", "open/b"];
    for version in [MqttVersion::V311, MqttVersion::V5] {
        let mut p = Profile::new("acl", &format!("mqtt://127.0.0.1:{}", m.tcp_port));
        p.version = version;
        let mut conn = LiveConn::start(&rt, &p, &subs);
        rt.block_on(conn.connected()).unwrap();
        for round in ["first connection", "after the broker restarted"] {
            let answers = conn.subacks(&rt, subs.len());
            for f in subs {
                let refused = answers
                    .get(f)
                    .unwrap_or_else(|| panic!("{round}: no SUBACK named {f}: {answers:?}"));
                assert_eq!(refused.is_some(), f.starts_with("secret/"), "{round}: {f}");
            }
            let why = answers["secret/#"].as_ref().unwrap();
            if version == MqttVersion::V5 {
                assert!(
                    why.en.contains("not authorized (SUBACK reason 0x87)"),
                    "{}",
                    why.en
                );
                assert!(why.zh.contains("未授权"), "{}", why.zh);
            } else {
                assert!(why.en.contains("SUBACK 0x80"), "{}", why.en);
                assert!(why.zh.contains("代理拒绝了该订阅"), "{}", why.zh);
            }
            publish_v311(&rt, m.tcp_port, "open/a", round);
            assert_eq!(
                &rt.block_on(conn.next_on("open/a")).payload[..],
                round.as_bytes()
            );
            if round == "first connection" {
                m.restart();
            }
        }
        // A later subscription is matched to its own SUBACK.
        conn.worker.subscribe("secret/deeper", QoS::AtLeastOnce);
        conn.worker.subscribe("open/deeper", QoS::AtLeastOnce);
        let answers = conn.subacks(&rt, 2);
        assert!(answers["secret/deeper"].is_some() && answers["open/deeper"].is_none());
        conn.worker.stop();
    }
}

/// One QoS 1 message from a plain 3.1.1 client, waiting for its PUBACK.
fn publish_v311(rt: &tokio::runtime::Runtime, port: u16, topic: &str, payload: &str) {
    let (topic, payload) = (topic.to_owned(), payload.to_owned());
    rt.block_on(async move {
        let (c, mut ev) =
            AsyncClient::new(rumqttc::MqttOptions::new("writer5", "127.0.0.1", port), 10);
        c.publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
        common::within(5, "PUBACK", async {
            loop {
                if let Ok(Event::Incoming(Packet::PubAck(_))) = ev.poll().await {
                    break;
                }
            }
        })
        .await;
    });
}

#[test]
fn server_name_override_connects_by_address_to_a_named_certificate() {
    let rt = common::runtime();
    let c = Corpus::new();
    // A certificate for the domain only: dialling the address needs the override.
    let leaf = c.leaf(LeafSpec {
        names: &[common::corpus::DOMAIN],
        ..LeafSpec::default()
    });
    let chain = c.write("server.pem", &format!("{}{}", leaf.pem, c.inter_pem));
    let key = c.write("server.key", &leaf.key_pem);
    let (tls_port, wss_port) = (common::free_port(), common::free_port());
    let _m = Mosquitto::start_with(&format!(
        "listener {tls_port} 127.0.0.1\ncertfile {}\nkeyfile {}\nlistener {wss_port} 127.0.0.1\nprotocol websockets\ncertfile {}\nkeyfile {}\n",
        chain.display(),
        key.display(),
        chain.display(),
        key.display()
    ));
    common::wait_listening(tls_port, 10);
    common::wait_listening(wss_port, 10);
    let profile = |url: String, sni: Option<&str>, version: MqttVersion| {
        let mut p = Profile::new("sni", &url);
        p.trust = TrustChoice::File;
        p.ca_file = Some(c.path("root.pem"));
        p.sni = sni.map(str::to_owned);
        p.version = version;
        p
    };
    // Without the override: refused, the name named.
    let p = profile(
        format!("mqtts://127.0.0.1:{tls_port}"),
        None,
        MqttVersion::V311,
    );
    let err = rt.block_on(round_trip(&p)).unwrap_err();
    assert!(err.contains("(CERT-NAME)"), "{err}");
    // With it, over TLS and WSS, in both protocol versions: messages flow.
    for url in [
        format!("mqtts://127.0.0.1:{tls_port}"),
        format!("wss://127.0.0.1:{wss_port}/mqtt"),
    ] {
        for version in [MqttVersion::V311, MqttVersion::V5] {
            let p = profile(url.clone(), Some(common::corpus::DOMAIN), version);
            assert!(p.mqtt_options().is_err(), "a plain client cannot honour it");
            let topic = format!("sni/{}", rand::random::<u32>());
            let mut conn = LiveConn::start(&rt, &p, &[topic.as_str()]);
            rt.block_on(conn.connected())
                .unwrap_or_else(|e| panic!("{url} {version:?}: {}", e.en));
            let got = rt.block_on(async {
                common::within(10, "a message through the override", async {
                    loop {
                        conn.worker
                            .client
                            .try_publish(&topic, QoS::AtMostOnce, false, &b"via sni"[..], None)
                            .unwrap();
                        if let Ok(m) =
                            tokio::time::timeout(Duration::from_millis(300), conn.next_on(&topic))
                                .await
                        {
                            break m;
                        }
                    }
                })
                .await
            });
            assert_eq!(&got.payload[..], b"via sni");
            conn.worker.stop();
        }
    }
    // A wrong override is refused by name, through the forwarder.
    let p = profile(
        format!("mqtts://127.0.0.1:{tls_port}"),
        Some("wrong.example.net"),
        MqttVersion::V311,
    );
    let mut conn = LiveConn::start(&rt, &p, &[]);
    let err = rt.block_on(conn.connected()).unwrap_err().en;
    assert!(
        err.contains("(CERT-NAME)") && err.contains("(SNI wrong.example.net)"),
        "{err}"
    );
    // And an override on a plain transport is a profile error.
    let p = profile(
        "mqtt://127.0.0.1:1883".into(),
        Some(common::corpus::DOMAIN),
        MqttVersion::V311,
    );
    assert!(p.validate().unwrap_err().en.contains("mqtts:// or wss://"));
}

/// The relay on a free port with `pki`'s certificate, `/mqtt` → mosquitto's TCP port.
fn relay_to(rt: &tokio::runtime::Runtime, pki: &common::TestPki, tcp_port: u16) -> Relay {
    rustls::crypto::ring::default_provider()
        .install_default()
        .ok();
    let text = format!(
        "[listen]\naddr = \"127.0.0.1:0\"\ncert = \"{}\"\nkey = \"{}\"\n[[route]]\npath = \"/mqtt\"\nupstream = [\"tcp://127.0.0.1:{tcp_port}\"]\n",
        pki.chain.display(),
        pki.key.display(),
    );
    let cfg = mpbridge::relay::RelayConfig::parse(&text, pki.dir.path()).unwrap();
    rt.block_on(Relay::start(cfg, rt.handle())).unwrap()
}

/// A reader with a persistent session on `filter`, then offline: what the broker queues for it
/// is what reached the broker.
fn persistent_reader(rt: &tokio::runtime::Runtime, port: u16, id: &str, filter: &str) {
    let mut o = rumqttc::MqttOptions::new(id, "127.0.0.1", port);
    o.set_clean_session(false);
    rt.block_on(async {
        let (c, mut ev) = AsyncClient::new(o, 10);
        c.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
        common::within(10, "reader SUBACK", async {
            while !matches!(ev.poll().await, Ok(Event::Incoming(Packet::SubAck(_)))) {}
        })
        .await;
        c.disconnect().await.ok();
        let _ = tokio::time::timeout(Duration::from_millis(300), ev.poll()).await;
    });
}

/// What the reader's session holds, as payload strings: up to `want`, or what came in 10 s.
fn read_queued(rt: &tokio::runtime::Runtime, port: u16, id: &str, want: usize) -> Vec<String> {
    let mut o = rumqttc::MqttOptions::new(id, "127.0.0.1", port);
    o.set_clean_session(false);
    rt.block_on(async {
        let (_c, mut ev) = AsyncClient::new(o, 10);
        let mut got = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), async {
            while got.len() < want {
                if let Ok(Event::Incoming(Packet::Publish(p))) = ev.poll().await {
                    got.push(String::from_utf8_lossy(&p.payload).into_owned());
                }
            }
        })
        .await;
        got
    })
}

#[test]
fn publishes_in_flight_when_the_broker_dies_are_sent_again_after_the_reconnect() {
    // rumqttc drops unacknowledged QoS 1/2 publishes when the broker starts a new session
    // (clean session, the default); the worker keeps them. The broker is frozen, so the
    // publishes reach its socket and are never acknowledged, then killed: they are lost
    // unless the console sends them again.
    let rt = common::runtime();
    let pdir = tempfile::tempdir().unwrap();
    let mut m = Mosquitto::start_with(&format!(
        "user root\npersistence true\npersistence_location {}/\nautosave_interval 1\nautosave_on_changes true",
        pdir.path().display()
    ));
    let port = m.tcp_port;
    for version in [MqttVersion::V311, MqttVersion::V5] {
        let tag = format!("{version:?}").to_lowercase();
        let reader = format!("inflight-reader-{tag}");
        let filter = format!("inflight/{tag}/#");
        persistent_reader(&rt, port, &reader, &filter);
        // Let mosquitto write the session down before it is killed.
        std::thread::sleep(Duration::from_millis(1500));
        let mut p = Profile::new("console", &format!("mqtt://127.0.0.1:{port}"));
        p.version = version;
        let mut conn = LiveConn::start(&rt, &p, &[]);
        rt.block_on(conn.connected()).unwrap();
        m.freeze();
        let sent: Vec<String> = (0..10).map(|i| format!("{tag} in flight {i}")).collect();
        for (i, s) in sent.iter().enumerate() {
            let qos = if i % 2 == 0 {
                QoS::AtLeastOnce
            } else {
                QoS::ExactlyOnce
            };
            conn.worker
                .client
                .try_publish(&format!("inflight/{tag}/{i}"), qos, false, s.clone(), None)
                .unwrap();
        }
        // Out of the console and into the frozen broker's socket.
        std::thread::sleep(Duration::from_millis(400));
        m.stop();
        rt.block_on(common::within(
            10,
            "the console sees the broker gone",
            async {
                while conn.state.borrow_and_update().is_connected() {
                    conn.state.changed().await.unwrap();
                }
            },
        ));
        m.restart();
        rt.block_on(common::within(30, "the console back", async {
            while !conn.state.borrow_and_update().is_connected() {
                conn.state.changed().await.unwrap();
            }
        }));
        let got = read_queued(&rt, port, &reader, sent.len());
        for s in &sent {
            assert!(got.contains(s), "{tag}: {s:?} lost; the reader got {got:?}");
        }
        conn.worker.stop();
    }
}

#[test]
fn client_certificates_mqtt5_over_tls_and_alpn() {
    let rt = common::runtime();
    let c = Corpus::new();
    let leaf = c.leaf(LeafSpec::default());
    let chain = c.write("server.pem", &format!("{}{}", leaf.pem, c.inter_pem));
    let key = c.write("server.key", &leaf.key_pem);
    let client = c.leaf(LeafSpec {
        names: &["console.example"],
        eku: vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth],
        ..LeafSpec::default()
    });
    let client_chain = c.write("client.pem", &format!("{}{}", client.pem, c.inter_pem));
    let client_key = c.write("client.key", &client.key_pem);
    // mosquitto asks every client for a certificate signed under the test root.
    let tls_port = common::free_port();
    let _m = Mosquitto::start_with(&format!(
        "listener {tls_port} 127.0.0.1\ncertfile {}\nkeyfile {}\ncafile {}\nrequire_certificate true\n",
        chain.display(),
        key.display(),
        c.path("root.pem").display()
    ));
    common::wait_listening(tls_port, 10);
    let profile = |version: MqttVersion, with_cert: bool| {
        let mut p = Profile::new("mtls", &format!("mqtts://127.0.0.1:{tls_port}"));
        p.version = version;
        p.trust = TrustChoice::File;
        p.ca_file = Some(c.path("root.pem"));
        if with_cert {
            p.client_cert = Some(client_chain.clone());
            p.client_key = Some(client_key.clone());
        }
        p
    };
    // Without a certificate the broker ends the handshake; with one, both protocols work.
    let err = rt
        .block_on(round_trip(&profile(MqttVersion::V311, false)))
        .unwrap_err();
    assert!(
        err.contains("127.0.0.1") && err.contains("requires a client certificate"),
        "{err}"
    );
    rt.block_on(round_trip(&profile(MqttVersion::V311, true)))
        .unwrap();
    let mut conn = LiveConn::start(&rt, &profile(MqttVersion::V5, true), &["mtls/#"]);
    rt.block_on(conn.connected()).unwrap();
    rt.block_on(async {
        common::within(10, "MQTT 5 over TLS with a client certificate", async {
            loop {
                conn.worker
                    .client
                    .try_publish("mtls/x", QoS::AtLeastOnce, false, &b"v5"[..], None)
                    .unwrap();
                if tokio::time::timeout(Duration::from_millis(500), conn.next_on("mtls/x"))
                    .await
                    .is_ok()
                {
                    break;
                }
            }
        })
        .await
    });
    conn.worker.stop();

    // ALPN against the relay, which speaks only http/1.1: offered and accepted, or refused.
    let m = Mosquitto::start();
    let pki = common::TestPki::new();
    let relay = relay_to(&rt, &pki, m.tcp_port);
    let wss = |alpn: &[&str]| {
        let mut p = Profile::new(
            "alpn",
            &format!("wss://localhost:{}/mqtt", relay.addr().port()),
        );
        p.trust = TrustChoice::File;
        p.ca_file = Some(pki.ca.clone());
        p.alpn = alpn.iter().map(|s| s.to_string()).collect();
        p
    };
    rt.block_on(round_trip(&wss(&["http/1.1"]))).unwrap();
    let err = rt.block_on(round_trip(&wss(&["mqtt"]))).unwrap_err();
    assert!(err.contains("TLS handshake failed"), "{err}");
    rt.block_on(relay.stop());
}

#[test]
fn random_suffixes_and_unreachable_brokers_in_words() {
    let rt = common::runtime();
    let m = Mosquitto::start();
    // A random suffix: every connection its own client id, so two consoles on one profile
    // do not take each other's session over.
    let mut p = Profile::new("twice", &format!("mqtt://127.0.0.1:{}", m.tcp_port));
    p.client_id = "field-laptop".into();
    p.random_suffix = true;
    let (a, b) = (
        p.options().unwrap().client_id(),
        p.options().unwrap().client_id(),
    );
    assert!(a.starts_with("field-laptop") && b.starts_with("field-laptop"));
    assert_ne!(a, b);
    let mut one = LiveConn::start(&rt, &p, &[]);
    let mut two = LiveConn::start(&rt, &p, &[]);
    rt.block_on(one.connected()).unwrap();
    rt.block_on(two.connected()).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(one.state.borrow().is_connected() && two.state.borrow().is_connected());
    one.worker.stop();
    two.worker.stop();

    // A name that does not resolve: said, with the host.
    let p = Profile::new("nowhere", "mqtt://no-such-broker.invalid:1883");
    let mut conn = LiveConn::start(&rt, &p, &[]);
    let err = rt.block_on(conn.connected()).unwrap_err();
    assert!(
        err.en
            .contains("cannot resolve the host of no-such-broker.invalid:1883"),
        "{}",
        err.en
    );
    assert!(err.zh.contains("无法解析"), "{}", err.zh);
    conn.worker.stop();

    // A broker that takes the connection and never answers (frozen): a timeout naming it.
    m.freeze();
    let p = Profile::new("frozen", &format!("mqtt://127.0.0.1:{}", m.tcp_port));
    let mut conn = LiveConn::start(&rt, &p, &[]);
    let err = rt.block_on(async {
        common::within(30, "the timeout", async {
            loop {
                if let mpbridge::mqtt::ConnState::Disconnected { error, .. } =
                    &*conn.state.borrow_and_update()
                {
                    return error.clone();
                }
                conn.state.changed().await.unwrap();
            }
        })
        .await
    });
    assert!(
        err.en
            .contains(&format!("127.0.0.1:{} did not answer in time", m.tcp_port)),
        "{}",
        err.en
    );
    conn.worker.stop();
}

#[test]
fn the_last_will_goes_out_when_the_console_vanishes() {
    // The console's connection runs through the relay (tcp:// upstream); the relay cuts it,
    // so mosquitto sees it gone without a DISCONNECT and publishes the will, retained.
    let rt = common::runtime();
    let m = Mosquitto::start();
    let pki = common::TestPki::new();
    let relay = relay_to(&rt, &pki, m.tcp_port);
    let mut watcher = Profile::new("watcher", &format!("mqtt://127.0.0.1:{}", m.tcp_port));
    watcher.client_id = "will-watcher".into();
    let mut watch = LiveConn::start(&rt, &watcher, &["consoles/+/status"]);
    rt.block_on(watch.connected()).unwrap();
    let mut p = Profile::new(
        "with-will",
        &format!("wss://localhost:{}/mqtt", relay.addr().port()),
    );
    p.trust = TrustChoice::File;
    p.ca_file = Some(pki.ca.clone());
    p.will = Some(mpbridge::mqtt::profile::Will {
        topic: "consoles/laptop/status".into(),
        payload: "gone".into(),
        qos: 1,
        retain: true,
    });
    let mut conn = LiveConn::start(&rt, &p, &[]);
    rt.block_on(conn.connected()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let live = relay.snapshot(10).live;
    assert_eq!(live.len(), 1, "{live:?}");
    // The relay's Close button: no DISCONNECT reaches the broker.
    assert!(relay.close_connection(live[0].id));
    let will = rt.block_on(watch.next_on("consoles/laptop/status"));
    assert_eq!(&will.payload[..], b"gone");
    assert_eq!(will.qos, 1);
    conn.worker.stop();
    // Retained: a newcomer gets it from the broker's store.
    let mut late = Profile::new("late", &format!("mqtt://127.0.0.1:{}", m.tcp_port));
    late.client_id = "late-reader".into();
    let mut late = LiveConn::start(&rt, &late, &["consoles/laptop/status"]);
    let again = rt.block_on(late.next_on("consoles/laptop/status"));
    assert!(again.retain && &again.payload[..] == b"gone");
    watch.worker.stop();
    late.worker.stop();
    rt.block_on(relay.stop());
}
