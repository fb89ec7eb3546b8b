//! A real Mini Program client: mqtt.js's own `wx` transport (4.2.1 dist as native Mini
//! Programs ship it, and 5.x with `forceNativeWebSocket`), driven in Node through a
//! `wx.connectSocket` shim with a WeChat Referer, connecting `wxs://localhost:PORT/mqtt`
//! through the relay to a real mosquitto, over both upstream modes.
#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{Mosquitto, TestPki, within};
use mpbridge::relay::{Relay, RelayConfig};

fn harness_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/miniprogram")
}

/// Whether the Node harness can run; outside CI a missing install is a skip with the reason.
fn harness_ready() -> bool {
    let ready = harness_dir()
        .join("node_modules/mqtt4/dist/mqtt.min.js")
        .is_file();
    if !ready {
        assert!(
            std::env::var_os("CI").is_none(),
            "tests/miniprogram/node_modules is missing in CI: .ci/install-deps must run npm ci"
        );
        common::missing("tests/miniprogram/node_modules missing; run .ci/install-deps (npm ci)");
    }
    ready
}

async fn mini_program(url: &str, ca: &Path, envs: &[(&str, &str)]) -> serde_json::Value {
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(harness_dir().join("client.js"))
        .env("MP_URL", url)
        .env("MP_CA", ca)
        .env("MP_TIMEOUT_MS", "10000")
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = within(20, "mqtt.js client", cmd.output()).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or("");
    serde_json::from_str(line).unwrap_or_else(|e| {
        panic!(
            "{e}: stdout {stdout:?} stderr {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqttjs_wx_transport_through_the_relay() {
    if !harness_ready() {
        return;
    }
    rustls::crypto::ring::default_provider()
        .install_default()
        .ok();
    let m = Mosquitto::start();
    let pki = TestPki::new();
    for up in [
        format!("ws://127.0.0.1:{}/mqtt", m.ws_port),
        format!("tcp://127.0.0.1:{}", m.tcp_port),
    ] {
        let text = format!(
            "[listen]\naddr = \"127.0.0.1:0\"\ncert = \"{}\"\nkey = \"{}\"\n[[route]]\npath = \"/mqtt\"\nupstream = [\"{up}\"]\n",
            pki.chain.display(),
            pki.key.display()
        );
        let relay = Relay::start(
            RelayConfig::parse(&text, pki.dir.path()).unwrap(),
            &tokio::runtime::Handle::current(),
        )
        .await
        .unwrap();
        let url = format!("wxs://localhost:{}/mqtt", relay.addr().port());
        for (what, envs) in [
            ("mqtt.js 4.2.1 dist", vec![("MP_FLAVOUR", "4")]),
            (
                "mqtt.js 5.x forceNativeWebSocket",
                vec![("MP_FLAVOUR", "5")],
            ),
            (
                "SUBSCRIBE+PUBLISH in one frame",
                vec![("MP_MODE", "piggyback")],
            ),
            (
                "CONNECT+SUBSCRIBE+PUBLISH in one frame",
                vec![("MP_MODE", "pipeline")],
            ),
        ] {
            let v = mini_program(&url, &pki.ca, &envs).await;
            assert_eq!(v["ok"], true, "{what} via {up}: {v}");
            assert_eq!(v["subprotocol"], "mqtt", "{what}: {v}");
            assert!(!v["received"].as_array().unwrap().is_empty(), "{what}: {v}");
        }
        // Every Mini Program connection was seen with its appid and MQTT identity.
        let snap = within(5, "records", async {
            loop {
                let s = relay.snapshot(20);
                if s.closed.len() >= 4 && s.live.is_empty() {
                    return s;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        for r in &snap.closed {
            assert_eq!(
                r.mini_program.as_ref().map(|m| m.appid.as_str()),
                Some("wx1234567890abcdef"),
                "{r:?}"
            );
            assert!(
                r.user_agent
                    .as_deref()
                    .is_some_and(|u| u.contains("MicroMessenger")),
                "{r:?}"
            );
            assert_eq!(r.connack, Some(0), "{r:?}");
            assert!(r.connect.is_some(), "{r:?}");
        }
        relay.stop().await;
    }
}

/// Python paho-mqtt with `transport="websockets"` over TLS through the relay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paho_python_websockets_over_tls() {
    let has_paho = std::process::Command::new(common::python())
        .args(["-c", "import paho.mqtt.client"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_paho {
        assert!(
            std::env::var_os("CI").is_none(),
            "paho-mqtt missing in CI: .ci/install-deps installs it"
        );
        common::missing("python3 paho-mqtt missing (pip install paho-mqtt)");
        return;
    }
    rustls::crypto::ring::default_provider()
        .install_default()
        .ok();
    let m = Mosquitto::start();
    let pki = TestPki::new();
    let text = format!(
        "[listen]\naddr = \"127.0.0.1:0\"\ncert = \"{}\"\nkey = \"{}\"\n[[route]]\npath = \"/mqtt\"\nupstream = [\"ws://127.0.0.1:{}/mqtt\"]\n",
        pki.chain.display(),
        pki.key.display(),
        m.ws_port
    );
    let relay = Relay::start(
        RelayConfig::parse(&text, pki.dir.path()).unwrap(),
        &tokio::runtime::Handle::current(),
    )
    .await
    .unwrap();
    let script = r#"
import ssl, sys, threading
import paho.mqtt.client as mqtt
port, ca = int(sys.argv[1]), sys.argv[2]
got = threading.Event()
def on_connect(c, u, f, rc, props=None):
    c.subscribe("paho/t", qos=1)
def on_subscribe(c, u, mid, *a):
    c.publish("paho/t", "from paho", qos=1)
def on_message(c, u, m):
    if m.payload == b"from paho":
        got.set()
try:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="paho-ws", transport="websockets")
except AttributeError:
    c = mqtt.Client(client_id="paho-ws", transport="websockets")
c.ws_set_options(path="/mqtt")
c.tls_set(ca_certs=ca)
c.on_connect, c.on_subscribe, c.on_message = on_connect, on_subscribe, on_message
c.connect("localhost", port, keepalive=30)
c.loop_start()
ok = got.wait(10)
c.disconnect(); c.loop_stop()
print("ok" if ok else "timeout")
sys.exit(0 if ok else 1)
"#;
    let out = within(
        20,
        "paho client",
        tokio::process::Command::new(common::python())
            .args(["-c", script, &relay.addr().port().to_string()])
            .arg(&pki.ca)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "paho: {} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    relay.stop().await;
}
