//! The real binary, headless.
#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use common::{KillOnDrop, mpbridge, within};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

/// `mpbridge sandbox --json` prints one JSON line once ready; a real client then sees the
/// demo device's telemetry through the advertised broker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_json_line_and_live_broker() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = KillOnDrop(
        mpbridge(dir.path())
            .args(["sandbox", "--json", "--for", "30"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let line = json_line(&mut child).await;
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    let broker = v["broker"].as_str().unwrap();
    assert!(broker.starts_with("mqtt://127.0.0.1:"), "{v}");
    let ws = v["broker_ws"].as_str().unwrap();
    assert!(
        ws.starts_with("ws://127.0.0.1:") && ws.ends_with("/mqtt"),
        "{v}"
    );
    assert_eq!(v["devices"], serde_json::json!(["esp8266-demo"]));
    let ca = std::path::PathBuf::from(v["ca"].as_str().unwrap());
    assert!(
        ca.starts_with(dir.path()),
        "dev CA in the data folder: {}",
        ca.display()
    );
    assert!(
        std::fs::read_to_string(&ca)
            .unwrap()
            .contains("BEGIN CERTIFICATE")
    );

    // The relay: wss://localhost:PORT/mqtt with the dev certificate, in front of the broker.
    let relay = v["relay"].as_str().unwrap();
    assert!(
        relay.starts_with("wss://localhost:") && relay.ends_with("/mqtt"),
        "{v}"
    );
    rustls::crypto::ring::default_provider()
        .install_default()
        .ok();
    let tls = mpbridge::relay::tls::client_config_with_roots(&[&ca]).unwrap();
    let relay_port: u16 = relay
        .trim_end_matches("/mqtt")
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let mut opts = MqttOptions::new("cli-wss-test", relay, relay_port);
    opts.set_transport(rumqttc::Transport::wss_with_config(tls.into()));
    let (wss_client, mut wss_ev) = AsyncClient::new(opts, 16);
    wss_client
        .subscribe("devices/esp8266-demo/status", QoS::AtMostOnce)
        .await
        .unwrap();
    let status = within(10, "retained status through the sandbox relay", async {
        loop {
            match wss_ev.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => return p.payload,
                Ok(_) => {}
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await;
    assert_eq!(&status[..], b"online");

    let port: u16 = broker.rsplit(':').next().unwrap().parse().unwrap();
    let (client, mut ev) = AsyncClient::new(MqttOptions::new("cli-test", "127.0.0.1", port), 16);
    client
        .subscribe("devices/+/telemetry", QoS::AtMostOnce)
        .await
        .unwrap();
    let topic = within(5, "telemetry through the sandbox broker", async {
        loop {
            match ev.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => return p.topic,
                Ok(_) => {}
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await;
    assert_eq!(topic, "devices/esp8266-demo/telemetry");
}

#[test]
fn sandbox_for_ends_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = KillOnDrop(
        mpbridge(dir.path())
            .args(["sandbox", "--for", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "sandbox --for 1 still running"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
}

/// A hand-broken console.toml: the command says which file and line, keeps the file aside,
/// and still runs.
#[test]
fn corrupt_config_is_reported_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(
        cfg.join("console.toml"),
        "theme = \"dark\"\nfont_size = 3\n",
    )
    .unwrap();
    let out = mpbridge(dir.path())
        .args(["sandbox", "--for", "0.2"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("console.toml line 2") && stderr.contains("font_size"),
        "{stderr}"
    );
    let kept: Vec<_> = std::fs::read_dir(&cfg)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("console.toml.corrupt-"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(
        std::fs::read_to_string(cfg.join(&kept[0])).unwrap(),
        "theme = \"dark\"\nfont_size = 3\n"
    );
}

#[test]
fn usage_errors_exit_2_with_one_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let out = mpbridge(dir.path())
        .args(["--lang", "klingon"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--lang klingon: expected `en` or `zh-CN`"),
        "{stderr}"
    );

    let out = mpbridge(dir.path())
        .args(["sandbox", "--bogus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = mpbridge(dir.path()).args(["relay"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "only working subcommands exist");
}

#[test]
fn connect_refuses_a_bad_filter_before_opening_a_window() {
    let root = tempfile::tempdir().unwrap();
    let out = common::mpbridge(root.path())
        .args(["--connect", "mqtt://127.0.0.1:1", "--subscribe", "a/#/b"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--subscribe a/#/b: not a valid topic filter"),
        "{err}"
    );
}

/// `mpbridge bench relay`'s crowd, small: a fresh relay per route and a fresh mosquitto, every
/// connection through (no failures), and every row a number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_relay_crowd_connects_everyone_through_both_routes() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = mpbridge(dir.path());
    cmd.args([
        "bench",
        "relay",
        "--only",
        "crowd",
        "--crowd",
        "60",
        "--rounds",
        "1",
        "--no-nginx",
        "--targets",
        "relay-ws,relay-tcp",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    let out = within(120, "bench relay crowd", cmd.output())
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}{err}");
    assert!(
        !text.contains("failed") && !err.contains("failed"),
        "{text}{err}"
    );
    let row = |label: &str| -> Vec<f64> {
        let line = text
            .lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("no {label} row in {text}"));
        line[label.len()..]
            .split_whitespace()
            .take(2)
            .map(|v| v.parse::<f64>().unwrap_or(f64::NAN))
            .collect()
    };
    let per_s = row("crowd @60: conn/s");
    assert!(
        per_s.len() == 2 && per_s.iter().all(|x| x.is_finite() && *x > 0.0),
        "{per_s:?}\n{text}"
    );
    // Memory growth of 60 connections may round to nothing; it must still be a number.
    let kib = row("crowd @60: RSS KiB/idle conn");
    assert!(
        kib.len() == 2 && kib.iter().all(|x| x.is_finite() && *x >= 0.0),
        "{kib:?}\n{text}"
    );
}

/// `mpbridge bench topics`, small: the in-process run and the run through a real mosquitto
/// both end with the one summary line, every field a number that says the panel kept up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_topics_ends_with_its_summary_line() {
    let dir = tempfile::tempdir().unwrap();
    let m = common::Mosquitto::start();
    let broker = format!("mqtt://127.0.0.1:{}", m.tcp_port);
    for extra in [vec![], vec!["--broker", broker.as_str()]] {
        let mut cmd = mpbridge(dir.path());
        cmd.args([
            "bench", "topics", "--secs", "2", "--rate", "2000", "--topics", "50", "--fill", "20000",
        ])
        .args(&extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.kill_on_drop(true);
        let out = within(240, "bench topics", cmd.output()).await.unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let last = text.lines().last().unwrap_or_default();
        let fields: std::collections::HashMap<&str, f64> = last
            .split(' ')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k, v.parse::<f64>().unwrap_or(f64::NAN)))
            .collect();
        let keys = [
            "ingest_msgs_per_s",
            "frame_p50_ms",
            "frame_p99_ms",
            "frame_max_ms",
            "rss_mb_1m",
            "search_frames",
        ];
        for k in keys {
            let v = fields.get(k).copied().unwrap_or(f64::NAN);
            assert!(v.is_finite() && v > 0.0, "{k} in {last:?}");
        }
        assert_eq!(fields.len(), keys.len(), "{last:?}");
        // 2 000 offered per second: what arrived was taken in, through the broker too.
        assert!(fields["ingest_msgs_per_s"] > 1000.0, "{extra:?}: {text}");
        assert!(fields["frame_p50_ms"] <= fields["frame_max_ms"], "{last:?}");
        assert!(text.contains("tree: 100000 topics"), "{text}");
    }
}

/// Starts `mpbridge sandbox --json` on the data folder in `dir` and returns it with its line.
async fn sandbox_json(dir: &std::path::Path) -> (KillOnDrop, serde_json::Value) {
    let mut child = KillOnDrop(
        mpbridge(dir)
            .args(["sandbox", "--json", "--for", "60"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let line = json_line(&mut child).await;
    (child, serde_json::from_str(&line).unwrap())
}

/// Broker processes still running with a store inside `dir`.
fn brokers_on(dir: &std::path::Path) -> usize {
    let needle = dir.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(" broker ") && c.contains(&needle))
        .count()
}

/// Retained messages and a persistent session's queued QoS 1 message survive a restart of
/// `mpbridge sandbox` (SIGTERM, as a service manager stops it), and no broker process is left
/// behind.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_broker_keeps_retained_and_sessions_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let (mut first, v) = sandbox_json(dir.path()).await;
    let port: u16 = v["broker"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // A device that subscribes with a persistent session, then goes away.
    let mut o = MqttOptions::new("keeper", "127.0.0.1", port);
    o.set_clean_session(false);
    let (c, mut ev) = AsyncClient::new(o, 16);
    c.subscribe("kept/queue", QoS::AtLeastOnce).await.unwrap();
    within(5, "SUBACK", async {
        while !matches!(ev.poll().await, Ok(Event::Incoming(Packet::SubAck(_)))) {}
    })
    .await;
    c.disconnect().await.unwrap();
    within(5, "disconnected", async {
        while ev.poll().await.is_ok() {}
    })
    .await;
    let (p, mut pev) = AsyncClient::new(MqttOptions::new("writer", "127.0.0.1", port), 16);
    p.publish("kept/retained", QoS::AtLeastOnce, true, "still here")
        .await
        .unwrap();
    p.publish("kept/queue", QoS::AtLeastOnce, false, "waiting")
        .await
        .unwrap();
    within(5, "two PUBACKs", async {
        let mut acks = 0;
        while acks < 2 {
            if let Ok(Event::Incoming(Packet::PubAck(_))) = pev.poll().await {
                acks += 1;
            }
        }
    })
    .await;
    assert_eq!(brokers_on(dir.path()), 1);
    let pid = first.0.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    within(10, "the sandbox to stop on SIGTERM", async {
        while first.0.try_wait().unwrap().is_none() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    within(5, "its broker process to end", async {
        while brokers_on(dir.path()) > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;

    let (_second, v) = sandbox_json(dir.path()).await;
    let port: u16 = v["broker"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let mut o = MqttOptions::new("keeper", "127.0.0.1", port);
    o.set_clean_session(false);
    let (c, mut ev) = AsyncClient::new(o, 16);
    c.subscribe("kept/retained", QoS::AtLeastOnce)
        .await
        .unwrap();
    let mut got = Vec::new();
    within(10, "the queued message and the retained one", async {
        while got.len() < 2 {
            match ev.poll().await {
                Ok(Event::Incoming(Packet::Publish(m))) => got.push((
                    m.topic.clone(),
                    String::from_utf8_lossy(&m.payload).into_owned(),
                )),
                Ok(_) => {}
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await;
    got.sort();
    assert_eq!(
        got,
        [
            ("kept/queue".to_owned(), "waiting".to_owned()),
            ("kept/retained".to_owned(), "still here".to_owned())
        ]
    );
}

/// A downloaded binary is rarely called `mpbridge` (`mpbridge-0.1.0-windows-x86_64.exe`,
/// `mpbridge (1).exe`): alone in a folder under another name, it still runs its own embedded
/// broker, because it is the program that runs `mpbridge broker`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_binary_alone_in_a_folder_runs_its_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let lone = dir.path().join("bin");
    std::fs::create_dir_all(&lone).unwrap();
    let exe = lone.join(format!(
        "mpbridge-{}-renamed{}",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::EXE_SUFFIX
    ));
    std::fs::copy(env!("CARGO_BIN_EXE_mpbridge"), &exe).unwrap();
    let mut child = KillOnDrop(
        std::process::Command::new(&exe)
            .env("MPBRIDGE_CONFIG_DIR", dir.path().join("config"))
            .env("MPBRIDGE_DATA_DIR", dir.path().join("data"))
            .env_remove("MPBRIDGE_EXE")
            .env_remove("MPBRIDGE_LOG")
            .stdin(Stdio::null())
            .args(["sandbox", "--json", "--for", "20"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let line = json_line(&mut child).await;
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("no sandbox: {e}: {line:?}"));
    assert!(
        v["broker"]
            .as_str()
            .unwrap()
            .starts_with("mqtt://127.0.0.1:"),
        "{v}"
    );
}

/// The one line `mpbridge sandbox --json` prints once everything is up.
async fn json_line(child: &mut KillOnDrop) -> String {
    let stdout = child.0.stdout.take().unwrap();
    within(30, "sandbox --json line", async {
        tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).unwrap();
            line
        })
        .await
        .unwrap()
    })
    .await
}
