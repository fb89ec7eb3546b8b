//! A slow reader never makes the relay's memory grow without bound: a Mini Program that
//! stops reading while a publisher floods its subscription. Its own test binary, so the
//! process memory measured is the relay's and this test's alone.
#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

mod common;

use std::time::Duration;

use common::{Mosquitto, TestPki, within};
use futures_util::{SinkExt, StreamExt};
use mpbridge::relay::{Relay, RelayConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_keeps_relay_memory_bounded() {
    rustls::crypto::ring::default_provider()
        .install_default()
        .ok();
    let m = Mosquitto::start_with("max_queued_bytes 1048576");
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

    // The slow Mini Program: connects, subscribes, then never reads again.
    let tls =
        std::sync::Arc::new(mpbridge::relay::tls::client_config_with_roots(&[&pki.ca]).unwrap());
    let tcp = tokio::net::TcpStream::connect(relay.addr()).await.unwrap();
    let tls_stream = tokio_rustls::TlsConnector::from(tls)
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let mut req = format!("wss://localhost:{}/mqtt", relay.addr().port())
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "mqtt".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::client_async(req, tls_stream)
        .await
        .unwrap();
    let connect = [
        0x10u8, 0x10, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 4, b's', b'l', b'o', b'w',
    ];
    ws.send(Message::Binary(connect.to_vec().into()))
        .await
        .unwrap();
    let subscribe = [
        0x82u8, 0x0c, 0, 1, 0, 7, b'f', b'l', b'o', b'o', b'd', b'/', b'#', 0,
    ];
    ws.send(Message::Binary(subscribe.to_vec().into()))
        .await
        .unwrap();
    // CONNACK and SUBACK, then silence on our side.
    within(5, "CONNACK and SUBACK", async {
        let mut got = 0;
        while got < 6 {
            if let Some(Ok(Message::Binary(b))) = ws.next().await {
                got += b.len();
            }
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_kib();

    // 32 MB of QoS 0 publishes towards it, straight into mosquitto.
    let mut opts = rumqttc::MqttOptions::new("flooder", "127.0.0.1", m.tcp_port);
    opts.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut ev) = rumqttc::AsyncClient::new(opts, 64);
    let payload = vec![0x5au8; 16 * 1024];
    let flood = tokio::spawn(async move {
        let mut sent = 0;
        while sent < 2000 {
            if client
                .try_publish("flood/x", rumqttc::QoS::AtMostOnce, false, payload.clone())
                .is_ok()
            {
                sent += 1;
            } else {
                tokio::task::yield_now().await;
            }
        }
        client
    });
    let polling = tokio::spawn(async move { while ev.poll().await.is_ok() {} });
    within(60, "flood sent", flood).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib();
    let grew = after.saturating_sub(before);
    println!(
        "RSS before {before} KiB, after {after} KiB, grew {grew} KiB while 32 MB were published"
    );
    assert!(
        grew < 16 * 1024,
        "relay memory grew {grew} KiB for a reader that never reads"
    );

    // The flood did reach the relay, which pushed until the reader's buffers were full and
    // then stopped reading from the broker (rather than buffering the rest itself).
    let snap = relay.snapshot(1);
    assert_eq!(snap.live.len(), 1);
    let out = snap.live[0].bytes_out;
    println!("relay forwarded {out} bytes to the reader that does not read");
    assert!(
        out >= 1024 * 1024,
        "the flood did not reach the relay ({out} bytes)"
    );
    assert!(
        out < 32 * 1024 * 1024,
        "everything was forwarded: no backpressure was exercised"
    );
    polling.abort();
    drop(ws);
    relay.stop().await;
}
