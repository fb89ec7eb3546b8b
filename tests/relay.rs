//! The relay against real peers: mosquitto (Debian) upstream over WebSocket and TCP,
//! rumqttc over wss, raw TLS clients for every rejection path.
#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{Mosquitto, TestPki, within};
use futures_util::{SinkExt, StreamExt};
use mpbridge::relay::{Relay, RelayConfig, RelayPhase};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn ensure_provider() {
    rustls::crypto::ring::default_provider()
        .install_default()
        .ok();
}

fn relay_toml(pki: &TestPki, upstreams: &[String], extra_route: &str, limits: &str) -> String {
    let ups: Vec<String> = upstreams.iter().map(|u| format!("\"{u}\"")).collect();
    format!(
        "[listen]\naddr = \"127.0.0.1:0\"\ncert = \"{}\"\nkey = \"{}\"\nmetrics = true\n\n[[route]]\npath = \"/mqtt\"\nupstream = [{}]\n{extra_route}\n\n[limits]\n{limits}\n",
        pki.chain.display(),
        pki.key.display(),
        ups.join(", ")
    )
}

async fn start(pki: &TestPki, upstreams: &[String], extra_route: &str, limits: &str) -> Relay {
    ensure_provider();
    let cfg = RelayConfig::parse(
        &relay_toml(pki, upstreams, extra_route, limits),
        pki.dir.path(),
    )
    .unwrap();
    Relay::start(cfg, &tokio::runtime::Handle::current())
        .await
        .unwrap()
}

fn client_tls(pki: &TestPki) -> Arc<rustls::ClientConfig> {
    Arc::new(mpbridge::relay::tls::client_config_with_roots(&[&pki.ca]).unwrap())
}

/// Waits until the relay has at least `n` closed connection records; returns the snapshot.
async fn closed_records(relay: &Relay, n: usize) -> mpbridge::relay::RelaySnapshot {
    within(5, "closed connection records", async {
        loop {
            let s = relay.snapshot(n.max(20));
            if s.closed.len() >= n {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

/// rumqttc over wss through the relay: subscribe, publish, receive.
async fn rumqttc_round_trip(relay: SocketAddr, pki: &TestPki, id: &str) {
    let url = format!("wss://localhost:{}/mqtt", relay.port());
    let mut opts = MqttOptions::new(id, url, relay.port());
    opts.set_transport(Transport::wss_with_config(
        (*client_tls(pki)).clone().into(),
    ));
    opts.set_keep_alive(Duration::from_secs(10));
    let (client, mut ev) = AsyncClient::new(opts, 16);
    let topic = format!("relay/test/{id}");
    client.subscribe(&topic, QoS::AtLeastOnce).await.unwrap();
    let payload = format!("hello from {id} · 你好");
    within(15, "publish round trip through the relay", async {
        let mut published = false;
        loop {
            match ev.poll().await.unwrap() {
                Event::Incoming(Packet::SubAck(_)) if !published => {
                    client
                        .publish(&topic, QoS::AtLeastOnce, false, payload.clone())
                        .await
                        .unwrap();
                    published = true;
                }
                Event::Incoming(Packet::Publish(p)) => {
                    assert_eq!(p.topic, topic);
                    assert_eq!(String::from_utf8_lossy(&p.payload), payload);
                    break;
                }
                _ => {}
            }
        }
    })
    .await;
    client.disconnect().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rumqttc_through_relay_to_mosquitto_ws_and_tcp() {
    let m = Mosquitto::start();
    let pki = TestPki::new();
    for (mode, up) in [
        ("ws", format!("ws://127.0.0.1:{}/mqtt", m.ws_port)),
        ("tcp", format!("tcp://127.0.0.1:{}", m.tcp_port)),
    ] {
        let relay = start(&pki, std::slice::from_ref(&up), "", "").await;
        rumqttc_round_trip(relay.addr(), &pki, &format!("rumqttc-{mode}")).await;
        // The connection was recorded with its MQTT identity and upstream.
        let snap = closed_records(&relay, 1).await;
        let r = &snap.closed[0];
        assert_eq!(r.upstream.as_deref(), Some(up.as_str()), "{mode}");
        assert_eq!(r.subprotocol.as_deref(), Some("mqtt"));
        assert_eq!(
            r.connect.as_ref().unwrap().client_id,
            format!("rumqttc-{mode}")
        );
        assert_eq!(r.connack, Some(0));
        assert!(
            r.bytes_in > 0 && r.bytes_out > 0 && r.packets_in >= 3 && r.packets_out >= 3,
            "{r:?}"
        );
        assert_eq!(r.sni.as_deref(), Some("localhost"));
        assert!(r.tls_version.starts_with("TLS 1."), "{}", r.tls_version);
        relay.stop().await;
    }
}

/// `mpbridge relay --setup-threads N`: connections set up on a pool and relayed on a
/// single-threaded data loop carry MQTT both ways on both upstream kinds, and end recorded.
#[test]
fn connections_set_up_on_a_pool_are_relayed_on_the_data_loop() {
    let data = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pool = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let m = Mosquitto::start();
    let pki = TestPki::new();
    ensure_provider();
    data.block_on(async {
        for (mode, up) in [
            ("ws", format!("ws://127.0.0.1:{}/mqtt", m.ws_port)),
            ("tcp", format!("tcp://127.0.0.1:{}", m.tcp_port)),
        ] {
            let cfg = RelayConfig::parse(
                &relay_toml(&pki, std::slice::from_ref(&up), "", ""),
                pki.dir.path(),
            )
            .unwrap();
            let runtimes = mpbridge::relay::handoff::Runtimes {
                data: tokio::runtime::Handle::current(),
                setup: Some(pool.handle().clone()),
            };
            let relay = Relay::start_shared(cfg, runtimes, false).await.unwrap();
            for i in 0..3 {
                rumqttc_round_trip(relay.addr(), &pki, &format!("pooled-{mode}-{i}")).await;
            }
            let snap = closed_records(&relay, 3).await;
            assert!(
                snap.closed.iter().all(|r| r.connack == Some(0)
                    && r.upstream.as_deref() == Some(up.as_str())
                    && r.packets_in >= 3
                    && r.packets_out >= 3),
                "{mode}: {:?}",
                snap.closed
            );
            relay.stop().await;
        }
    });
    pool.shutdown_background();
}

/// A raw TLS connection to the relay.
async fn tls_connect(
    addr: SocketAddr,
    pki: &TestPki,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(client_tls(pki));
    connector
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap()
}

/// Sends a raw request head; returns the whole response text.
async fn raw(addr: SocketAddr, pki: &TestPki, head: &str) -> String {
    let mut s = tls_connect(addr, pki).await;
    s.write_all(head.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    within(10, "response", async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    out.extend_from_slice(&buf[..n]);
                    if response_complete(&out) {
                        break;
                    }
                }
            }
        }
    })
    .await;
    String::from_utf8_lossy(&out).into_owned()
}

/// A 101's head, or any other response's head and its Content-Length body (a server that
/// keeps the connection alive, like nginx, never sends EOF).
fn response_complete(out: &[u8]) -> bool {
    let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&out[..end]).to_ascii_lowercase();
    if head.starts_with("http/1.1 101") {
        return true;
    }
    head.lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .is_some_and(|len| out.len() >= end + 4 + len)
}

fn upgrade_head(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rejection_path_has_its_status_and_sentence() {
    let m = Mosquitto::start();
    let pki = TestPki::new();
    let up = format!("tcp://127.0.0.1:{}", m.tcp_port);
    let relay = start(&pki, &[up], "allowed_appids = [\"wx1111111111111111\"]", "").await;
    let a = relay.addr();
    let referer = "Referer: https://servicewechat.com/wx1111111111111111/3/page-frame.html\r\n";

    let r = raw(
        a,
        &pki,
        &upgrade_head(
            "/nope",
            &format!("Sec-WebSocket-Protocol: mqtt\r\n{referer}"),
        ),
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 404"), "{r}");
    // An anonymous client is not told which paths exist; the records are.
    assert!(r.contains("no WebSocket endpoint at this path"), "{r}");
    assert!(!r.contains("/mqtt"), "the served paths stay inside: {r}");
    let snap = relay.snapshot(10);
    assert!(
        snap.rejected.iter().any(|x| x
            .reason
            .contains("no route for /nope; this relay serves /mqtt")),
        "{:?}",
        snap.rejected
    );

    let r = raw(a, &pki, "GET /mqtt HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert!(r.starts_with("HTTP/1.1 426"), "{r}");
    assert!(r.contains("WebSocket endpoint"), "{r}");

    let r = raw(a, &pki, &upgrade_head("/mqtt", referer)).await;
    assert!(r.starts_with("HTTP/1.1 400"), "no subprotocol: {r}");
    assert!(r.contains("no Sec-WebSocket-Protocol offered"), "{r}");

    let r = raw(
        a,
        &pki,
        &upgrade_head(
            "/mqtt",
            &format!("Sec-WebSocket-Protocol: chat\r\n{referer}"),
        ),
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 400") && r.contains("chat"), "{r}");

    let r = raw(a, &pki, &upgrade_head("/mqtt", "Sec-WebSocket-Protocol: mqtt\r\nReferer: https://servicewechat.com/wx2222222222222222/1/page-frame.html\r\n")).await;
    assert!(
        r.starts_with("HTTP/1.1 403") && r.contains("wx2222222222222222"),
        "{r}"
    );

    let r = raw(a, &pki, "GET /mqtt HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").await;
    assert!(r.starts_with("HTTP/1.1 400") && r.contains("13"), "{r}");

    let r = raw(a, &pki, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(r.starts_with("HTTP/1.1 200") && r.ends_with("ok\n"), "{r}");

    let r = raw(a, &pki, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
    // Each refusal is counted under its reason; every reason is listed, zeros included.
    for (reason, n) in [
        ("no_route", 1),
        ("not_websocket", 2),
        ("subprotocol", 2),
        ("not_allowed", 1),
        ("tls_failed", 0),
        ("per_ip_limit", 0),
    ] {
        let line = format!("mpbridge_relay_rejected_total{{reason=\"{reason}\"}} {n}\n");
        assert!(r.contains(&line), "{line} in {r}");
    }

    let r = raw(a, &pki, "\u{1}\u{2}garbage that is not http\r\n\r\n").await;
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");

    // And the accepted form: 101 with the exact accept key and the echoed subprotocol.
    let r = raw(
        a,
        &pki,
        &upgrade_head(
            "/mqtt",
            &format!("Sec-WebSocket-Protocol: mqtt\r\n{referer}"),
        ),
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 101"), "{r}");
    assert!(
        r.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
        "{r}"
    );
    assert!(r.contains("Sec-WebSocket-Protocol: mqtt\r\n"), "{r}");

    let snap = relay.snapshot(100);
    let statuses: Vec<_> = snap.rejected.iter().filter_map(|r| r.status).collect();
    for s in [404, 426, 400, 403] {
        assert!(statuses.contains(&s), "{s} recorded: {statuses:?}");
    }
    use mpbridge::relay::RejectKind;
    let kinds: Vec<_> = snap.rejected.iter().map(|r| r.kind).collect();
    for k in [
        RejectKind::NoRoute,
        RejectKind::NotWebSocket,
        RejectKind::Subprotocol,
        RejectKind::NotAllowed,
        RejectKind::BadRequest,
    ] {
        assert!(kinds.contains(&k), "{k:?} recorded: {kinds:?}");
    }
    relay.stop().await;
}

/// A WebSocket client over TLS (tokio-tungstenite), with headers like a Mini Program.
async fn ws_client(
    addr: SocketAddr,
    pki: &TestPki,
    max: Option<usize>,
) -> tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>> {
    let tls = tls_connect(addr, pki).await;
    let mut req = format!("wss://localhost:{}/mqtt", addr.port())
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "mqtt".parse().unwrap());
    req.headers_mut().insert(
        "Referer",
        "https://servicewechat.com/wx1234567890abcdef/0/page-frame.html"
            .parse()
            .unwrap(),
    );
    let mut cfg = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default();
    cfg.max_message_size = max;
    let (ws, resp) = tokio_tungstenite::client_async_with_config(req, tls, Some(cfg))
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    ws
}

fn connect_packet(client_id: &str, user: Option<(&str, &str)>) -> Vec<u8> {
    let mut flags = 0x02u8;
    if user.is_some() {
        flags |= 0xc0;
    }
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, flags, 0, 60];
    let push_str = |b: &mut Vec<u8>, s: &str| {
        b.extend_from_slice(&(s.len() as u16).to_be_bytes());
        b.extend_from_slice(s.as_bytes());
    };
    push_str(&mut body, client_id);
    if let Some((u, p)) = user {
        push_str(&mut body, u);
        push_str(&mut body, p);
    }
    let mut p = vec![0x10, body.len() as u8];
    p.extend(body);
    p
}

async fn next_binary<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> Vec<u8>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        match ws.next().await.unwrap().unwrap() {
            Message::Binary(b) => return b.to_vec(),
            Message::Close(f) => panic!("closed: {f:?}"),
            _ => {}
        }
    }
}

async fn next_close<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> (u16, String)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        match ws.next().await {
            Some(Ok(Message::Close(Some(f)))) => return (u16::from(f.code), f.reason.to_string()),
            Some(Ok(Message::Close(None))) => return (0, String::new()),
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("error instead of a close frame: {e}"),
            None => panic!("ended without a close frame"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn piggybacked_packets_oversize_and_records() {
    let m = Mosquitto::start();
    let pki = TestPki::new();
    for up in [
        format!("tcp://127.0.0.1:{}", m.tcp_port),
        format!("ws://127.0.0.1:{}/mqtt", m.ws_port),
    ] {
        let relay = start(
            &pki,
            std::slice::from_ref(&up),
            "",
            "max_message_bytes = 4096",
        )
        .await;
        let mut ws = ws_client(relay.addr(), &pki, None).await;
        ws.send(Message::Binary(
            connect_packet("piggy", Some(("alice", "s3cret-pw"))).into(),
        ))
        .await
        .unwrap();
        let ack = within(5, "CONNACK", next_binary(&mut ws)).await;
        assert_eq!(ack, [0x20, 2, 0, 0]);
        // SUBSCRIBE (id 1, "pig/t", qos 0) and PUBLISH ("pig/t", "oink") in one WebSocket message.
        let mut frame = vec![0x82, 10, 0, 1, 0, 5, b'p', b'i', b'g', b'/', b't', 0];
        frame.extend_from_slice(&[
            0x30, 11, 0, 5, b'p', b'i', b'g', b'/', b't', b'o', b'i', b'n', b'k',
        ]);
        ws.send(Message::Binary(frame.into())).await.unwrap();
        let mut got_suback = false;
        let mut got_publish = false;
        within(5, "SUBACK and PUBLISH back", async {
            while !(got_suback && got_publish) {
                let b = next_binary(&mut ws).await;
                // The broker may coalesce packets too: scan them all.
                let mut i = 0;
                while i + 1 < b.len() {
                    let len = b[i + 1] as usize;
                    match b[i] >> 4 {
                        9 => got_suback = true,
                        3 => {
                            assert!(b[i..i + 2 + len].ends_with(b"oink"));
                            got_publish = true;
                        }
                        _ => {}
                    }
                    i += 2 + len;
                }
            }
        })
        .await;
        // The record: who connected, never the password.
        let snap = relay.snapshot(10);
        let live = snap
            .live
            .iter()
            .find(|r| r.connect.as_ref().is_some_and(|c| c.client_id == "piggy"))
            .unwrap();
        let c = live.connect.as_ref().unwrap();
        assert_eq!(
            (c.client_id.as_str(), c.username.as_deref()),
            ("piggy", Some("alice"))
        );
        assert_eq!(
            live.mini_program.as_ref().unwrap().appid,
            "wx1234567890abcdef"
        );
        assert_eq!(live.mini_program.as_ref().unwrap().version, "0");
        assert!(live.packets_in >= 3, "{live:?}");
        assert!(!serde_json::to_string(&snap).unwrap().contains("s3cret-pw"));

        // A message over the limit: close 1009, and the relay keeps serving.
        ws.send(Message::Binary(vec![0x30; 8000].into())).await.ok();
        let (code, reason) = within(5, "close 1009", next_close(&mut ws)).await;
        assert_eq!(code, 1009, "{up}: {reason}");
        assert!(reason.contains("4096"), "{reason}");
        rumqttc_round_trip(relay.addr(), &pki, "after-oversize").await;
        relay.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_unreachable_then_failover() {
    let m = Mosquitto::start();
    let pki = TestPki::new();
    let dead = format!("tcp://127.0.0.1:{}", common::free_port());
    // Only a dead upstream: 101, then close 1013 with the reason.
    let relay = start(
        &pki,
        std::slice::from_ref(&dead),
        "",
        "upstream_connect_timeout_secs = 2",
    )
    .await;
    let mut ws = ws_client(relay.addr(), &pki, None).await;
    let (code, reason) = within(10, "close 1013", next_close(&mut ws)).await;
    assert_eq!(code, 1013);
    // The client hears "try again later", never the upstream's address; the records do.
    assert_eq!(reason, "the broker is unavailable; try again later");
    let dead_port = dead.rsplit(':').next().unwrap();
    assert!(!reason.contains(dead_port), "{reason}");
    let closed = closed_records(&relay, 1).await.closed[0].clone();
    let close = closed.close.as_ref().unwrap();
    assert_eq!(close.code, Some(1013));
    assert!(
        close.reason.contains("no upstream reachable") && close.reason.contains(dead_port),
        "{close:?}"
    );
    relay.stop().await;

    // verbose_errors (on in the sandbox): the client is told everything.
    ensure_provider();
    let mut cfg = RelayConfig::parse(
        &relay_toml(
            &pki,
            std::slice::from_ref(&dead),
            "",
            "upstream_connect_timeout_secs = 2",
        ),
        pki.dir.path(),
    )
    .unwrap();
    cfg.verbose_errors = true;
    let relay = Relay::start(cfg, &tokio::runtime::Handle::current())
        .await
        .unwrap();
    let mut ws = ws_client(relay.addr(), &pki, None).await;
    let (code, reason) = within(10, "close 1013", next_close(&mut ws)).await;
    assert_eq!(code, 1013);
    assert!(reason.contains("no upstream reachable"), "{reason}");
    relay.stop().await;

    // Dead first, mosquitto second: every connection lands on mosquitto.
    let good = format!("ws://127.0.0.1:{}/mqtt", m.ws_port);
    let relay = start(
        &pki,
        &[dead, good.clone()],
        "",
        "upstream_connect_timeout_secs = 2",
    )
    .await;
    for i in 0..3 {
        rumqttc_round_trip(relay.addr(), &pki, &format!("failover-{i}")).await;
    }
    let snap = closed_records(&relay, 3).await;
    assert!(
        snap.closed
            .iter()
            .all(|r| r.upstream.as_deref() == Some(good.as_str()))
    );
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_killed_mid_stream_and_restarted() {
    let mut m = Mosquitto::start();
    let pki = TestPki::new();
    let relay = start(
        &pki,
        &[format!("ws://127.0.0.1:{}/mqtt", m.ws_port)],
        "",
        "",
    )
    .await;
    let mut ws = ws_client(relay.addr(), &pki, None).await;
    ws.send(Message::Binary(connect_packet("victim", None).into()))
        .await
        .unwrap();
    within(5, "CONNACK", next_binary(&mut ws)).await;
    m.stop();
    let (code, reason) = within(10, "close after the broker died", next_close(&mut ws)).await;
    assert!(
        code == 1011 || code == 1000 || code == 1006,
        "{code} {reason}"
    );
    let r = closed_records(&relay, 1).await.closed[0].clone();
    assert_eq!(
        r.close.as_ref().unwrap().side,
        mpbridge::relay::stats::Side::Upstream,
        "{r:?}"
    );
    m.restart();
    rumqttc_round_trip(relay.addr(), &pki, "after-restart").await;
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_half_open_handshakes_never_block_new_clients() {
    let m = Mosquitto::start();
    let pki = TestPki::new();
    let relay = start(
        &pki,
        &[format!("tcp://127.0.0.1:{}", m.tcp_port)],
        "",
        "handshake_timeout_secs = 1\nmax_connections_per_ip = 1000",
    )
    .await;
    let a = relay.addr();
    // Garbage on the TLS port.
    for junk in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        &[0u8; 3000],
        b"\x16\x03\x01\xff\xff",
    ] {
        let mut s = TcpStream::connect(a).await.unwrap();
        s.write_all(junk).await.ok();
        let mut buf = [0u8; 64];
        let _ = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf)).await;
    }
    // 300 half-open connections that never send a byte.
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(TcpStream::connect(a).await.unwrap());
    }
    // A real client is served while they hang.
    rumqttc_round_trip(a, &pki, "while-half-open").await;
    // They are cut at the handshake timeout and recorded.
    let n = within(10, "half-open connections timed out", async {
        loop {
            let s = relay.snapshot(1000);
            let n = s
                .rejected
                .iter()
                .filter(|r| {
                    r.reason.contains("within 1 s")
                        && r.kind == mpbridge::relay::RejectKind::TlsTimeout
                })
                .count();
            if n >= 300 {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(n >= 300);
    let tls_failures = relay
        .snapshot(1000)
        .rejected
        .iter()
        .filter(|r| r.reason.contains("TLS handshake failed"))
        .count();
    assert!(
        tls_failures >= 3,
        "garbage recorded as TLS failures: {tls_failures}"
    );
    drop(idle);
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_per_ip_and_idle_timeout() {
    let m = Mosquitto::start();
    let pki = TestPki::new();
    let relay = start(
        &pki,
        &[format!("tcp://127.0.0.1:{}", m.tcp_port)],
        "",
        "max_connections_per_ip = 2\nidle_timeout_secs = 1",
    )
    .await;
    let mut a = ws_client(relay.addr(), &pki, None).await;
    let _b = ws_client(relay.addr(), &pki, None).await;
    // The third from the same IP is refused with a 503 the client can read, and told when
    // to come back; a WebSocket client reports the status rather than a bare EOF.
    let answer = raw(
        relay.addr(),
        &pki,
        "GET /mqtt HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    assert!(answer.contains("Retry-After: 5\r\n"), "{answer}");
    assert!(
        answer.contains("too many connections from your address"),
        "{answer}"
    );
    assert!(relay.snapshot(10).rejected.iter().any(|r| {
        r.reason.contains("max_connections_per_ip (2)")
            && r.kind == mpbridge::relay::RejectKind::PerIpLimit
            && r.status == Some(503)
    }));
    // Idle for more than a second: the relay closes with 1001.
    let (code, reason) = within(5, "idle close", next_close(&mut a)).await;
    assert_eq!(code, 1001);
    assert!(reason.contains("idle"), "{reason}");
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_keeps_live_connections_and_refuses_invalid_configs() {
    let m = Mosquitto::start();
    let pki = TestPki::new();
    let up = format!("tcp://127.0.0.1:{}", m.tcp_port);
    let relay = start(&pki, std::slice::from_ref(&up), "", "").await;
    let mut live = ws_client(relay.addr(), &pki, None).await;
    live.send(Message::Binary(connect_packet("survivor", None).into()))
        .await
        .unwrap();
    within(5, "CONNACK", next_binary(&mut live)).await;

    // A new certificate from a new CA and a new route path.
    let pki2 = TestPki::new();
    let text = relay_toml(&pki2, std::slice::from_ref(&up), "", "")
        .replace("path = \"/mqtt\"", "path = \"/mqtt2\"");
    relay
        .reload(RelayConfig::parse(&text, pki2.dir.path()).unwrap())
        .unwrap();
    // The live connection still works (PINGREQ → PINGRESP).
    live.send(Message::Binary(vec![0xc0, 0].into()))
        .await
        .unwrap();
    assert_eq!(
        within(5, "PINGRESP after reload", next_binary(&mut live)).await,
        [0xd0, 0]
    );
    // New connections get the new certificate: the old CA no longer verifies it.
    let tcp = TcpStream::connect(relay.addr()).await.unwrap();
    let old = tokio_rustls::TlsConnector::from(client_tls(&pki));
    assert!(
        old.connect(
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            tcp
        )
        .await
        .is_err()
    );
    let r = raw(
        relay.addr(),
        &pki2,
        &upgrade_head("/mqtt2", "Sec-WebSocket-Protocol: mqtt\r\n"),
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 101"), "{r}");

    // An invalid config never reaches the relay: parse fails with key and line.
    let bad = relay_toml(&pki2, &[up], "", "idle_timeout_secs = -5");
    let err = RelayConfig::parse(&bad, pki2.dir.path()).unwrap_err();
    assert!(err.to_string().contains("idle_timeout_secs"), "{err}");
    assert!(err.line.is_some());
    // Moving the listener is refused; the old config stays.
    let mut moved = RelayConfig::parse(&text, pki2.dir.path()).unwrap();
    moved.listen = "127.0.0.1:1".parse().unwrap();
    assert!(
        relay
            .reload(moved)
            .unwrap_err()
            .to_string()
            .contains("restart")
    );
    live.send(Message::Binary(vec![0xc0, 0].into()))
        .await
        .unwrap();
    assert_eq!(
        within(5, "still alive", next_binary(&mut live)).await,
        [0xd0, 0]
    );
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_sends_1001_and_publishes_phases() {
    let m = Mosquitto::start();
    let pki = TestPki::new();
    let relay = start(
        &pki,
        &[format!("tcp://127.0.0.1:{}", m.tcp_port)],
        "",
        "drain_secs = 5",
    )
    .await;
    let mut phases = relay.phase();
    assert!(matches!(
        *phases.borrow_and_update(),
        RelayPhase::Running { .. }
    ));
    // Record every phase change from here on.
    let watcher = tokio::spawn(async move {
        let mut seen = Vec::new();
        while phases.changed().await.is_ok() {
            let p = phases.borrow_and_update().clone();
            let done = p == RelayPhase::Stopped;
            seen.push(p);
            if done {
                break;
            }
        }
        seen
    });
    let mut ws = ws_client(relay.addr(), &pki, None).await;
    let stopper = {
        let r = relay.clone();
        tokio::spawn(async move { r.stop().await })
    };
    let (code, reason) = within(5, "close 1001 on stop", next_close(&mut ws)).await;
    assert_eq!((code, reason.as_str()), (1001, "relay shutting down"));
    within(10, "stop finished", stopper).await.unwrap();
    let seen = within(5, "phases", watcher).await.unwrap();
    assert_eq!(seen, vec![RelayPhase::Draining, RelayPhase::Stopped]);
    assert!(
        TcpStream::connect(relay.addr()).await.is_err(),
        "no longer accepting"
    );
}

/// A client that closes politely (close frame, then waits for the answer) gets the broker's
/// close reply through the passthrough, promptly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_handshake_passes_through_both_ways() {
    let m = Mosquitto::start();
    let pki = TestPki::new();
    let relay = start(
        &pki,
        &[format!("ws://127.0.0.1:{}/mqtt", m.ws_port)],
        "",
        "",
    )
    .await;
    for code in [None, Some(1000u16)] {
        let mut ws = ws_client(relay.addr(), &pki, None).await;
        let frame = code.map(|c| tokio_tungstenite::tungstenite::protocol::CloseFrame {
            code: c.into(),
            reason: "bye".into(),
        });
        let started = std::time::Instant::now();
        ws.close(frame).await.unwrap();
        let reply = within(3, "the close reply", async {
            loop {
                match ws.next().await {
                    Some(Ok(Message::Close(f))) => return Some(f),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => panic!("{e}"),
                    None => return None,
                }
            }
        })
        .await;
        assert!(reply.is_some(), "close reply for {code:?}");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "took {:?}",
            started.elapsed()
        );
    }
    relay.stop().await;
}

/// Upgrades a raw TLS stream on `/mqtt` (subprotocol mqtt, `extra` headers) and checks the 101.
async fn upgraded(
    addr: SocketAddr,
    pki: &TestPki,
    extra: &str,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut s = tls_connect(addr, pki).await;
    s.write_all(
        upgrade_head("/mqtt", &format!("Sec-WebSocket-Protocol: mqtt\r\n{extra}")).as_bytes(),
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    within(10, "101", async {
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(
                s.read(&mut b).await.unwrap(),
                1,
                "closed during the upgrade"
            );
            head.push(b[0]);
        }
    })
    .await;
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s
}

/// A masked binary frame, as a client sends it.
fn client_frame(payload: &[u8]) -> Vec<u8> {
    let key = [0x11, 0x22, 0x33, 0x44];
    let mut f = vec![0x82];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    f.extend_from_slice(&key);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_spreads_and_a_stalled_broker_is_passed_over() {
    let m1 = Mosquitto::start();
    let m2 = Mosquitto::start();
    let pki = TestPki::new();
    let (u1, u2) = (
        format!("ws://127.0.0.1:{}/mqtt", m1.ws_port),
        format!("ws://127.0.0.1:{}/mqtt", m2.ws_port),
    );
    // Two live brokers: connections alternate.
    let relay = start(&pki, &[u1.clone(), u2.clone()], "", "").await;
    for i in 0..4 {
        rumqttc_round_trip(relay.addr(), &pki, &format!("rr-{i}")).await;
    }
    let snap = closed_records(&relay, 4).await;
    let on = |u: &str| {
        snap.closed
            .iter()
            .filter(|r| r.upstream.as_deref() == Some(u))
            .count()
    };
    assert_eq!((on(&u1), on(&u2)), (2, 2), "{:?}", snap.closed);
    relay.stop().await;

    // The second broker frozen (TCP still accepted, nothing answered, as a hung EMQX node):
    // the first connection that meets it waits out the timeout and fails over; after that
    // it is tried last, so the next connections go straight to the live one.
    m2.freeze();
    let relay = start(
        &pki,
        &[u2.clone(), u1.clone()],
        "",
        "upstream_connect_timeout_secs = 1",
    )
    .await;
    for i in 0..3 {
        rumqttc_round_trip(relay.addr(), &pki, &format!("stalled-{i}")).await;
    }
    let snap = closed_records(&relay, 3).await;
    let mut closed = snap.closed.clone();
    closed.sort_by_key(|r| r.id);
    assert!(
        closed
            .iter()
            .all(|r| r.upstream.as_deref() == Some(u1.as_str()))
    );
    assert_eq!(closed[0].upstream_failures.len(), 1, "{:?}", closed[0]);
    assert!(
        closed[0].upstream_failures[0].contains("no answer within 1 s"),
        "{:?}",
        closed[0].upstream_failures
    );
    for r in &closed[1..] {
        assert!(r.upstream_failures.is_empty(), "passed over: {r:?}");
    }
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ws_upstream_gets_the_client_address_and_the_subprotocol() {
    if !common::Nginx::available() {
        common::missing("nginx is not installed (apt-get install nginx)");
        return;
    }
    // nginx logs what the relay sent it, then passes the connection on to mosquitto.
    let m = Mosquitto::start();
    let ws_port = m.ws_port;
    let n = common::Nginx::start_http(|port, dir| {
        format!(
            "  log_format relay 'xff=\"$http_x_forwarded_for\" real=\"$http_x_real_ip\" proto=\"$http_x_forwarded_proto\" sub=\"$http_sec_websocket_protocol\"';\n  \
             access_log {}/logs/access.log relay;\n  server {{\n    listen 127.0.0.1:{port};\n    location /mqtt {{\n      \
             proxy_pass http://127.0.0.1:{ws_port};\n      proxy_http_version 1.1;\n      \
             proxy_set_header Upgrade $http_upgrade;\n      proxy_set_header Connection \"upgrade\";\n    }}\n  }}\n",
            dir.display()
        )
    });
    let pki = TestPki::new();
    let relay = start(&pki, &[format!("ws://127.0.0.1:{}/mqtt", n.port)], "", "").await;
    rumqttc_round_trip(relay.addr(), &pki, "through-nginx").await;
    // A client behind another proxy: the chain is extended, not replaced.
    let mut s = upgraded(relay.addr(), &pki, "X-Forwarded-For: 203.0.113.7\r\n").await;
    s.write_all(&client_frame(&connect_packet("behind-proxy", None)))
        .await
        .unwrap();
    let mut b = [0u8; 16];
    within(5, "CONNACK through nginx", s.read(&mut b))
        .await
        .unwrap();
    drop(s);
    relay.stop().await;
    let log = within(5, "nginx access log", async {
        loop {
            let t =
                std::fs::read_to_string(n.dir.path().join("logs/access.log")).unwrap_or_default();
            if t.lines().count() >= 2 {
                return t;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        log.contains(r#"xff="127.0.0.1" real="127.0.0.1" proto="https" sub="mqtt""#),
        "{log}"
    );
    assert!(log.contains(r#"xff="203.0.113.7, 127.0.0.1""#), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_per_server_name_and_the_default() {
    let m = Mosquitto::start();
    let pki = TestPki::new();
    let other = TestPki::with_names(&["other.test"]);
    let text = relay_toml(&pki, &[format!("tcp://127.0.0.1:{}", m.tcp_port)], "", "").replace(
        "metrics = true\n",
        &format!(
            "metrics = true\n\n[[listen.sni]]\nname = \"other.test\"\ncert = \"{}\"\nkey = \"{}\"\n",
            other.chain.display(),
            other.key.display()
        ),
    );
    ensure_provider();
    let relay = Relay::start(
        RelayConfig::parse(&text, pki.dir.path()).unwrap(),
        &tokio::runtime::Handle::current(),
    )
    .await
    .unwrap();
    let leaf_names = |tls: &tokio_rustls::client::TlsStream<TcpStream>| {
        let der = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        cert.subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
    };
    // SNI other.test: its own certificate (verified against its own CA).
    let tcp = TcpStream::connect(relay.addr()).await.unwrap();
    let c = tokio_rustls::TlsConnector::from(client_tls(&other));
    let tls = c
        .connect(
            rustls_pki_types::ServerName::try_from("other.test").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    assert_eq!(leaf_names(&tls), vec!["DNSName(other.test)"]);
    // Another name, or none (an IP address sends no SNI): the default certificate.
    let tls = tls_connect(relay.addr(), &pki).await;
    assert!(leaf_names(&tls).contains(&"DNSName(localhost)".to_owned()));
    let tcp = TcpStream::connect(relay.addr()).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(client_tls(&pki))
        .connect(
            rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    assert!(leaf_names(&tls).contains(&"DNSName(localhost)".to_owned()));
    drop(tls);
    rumqttc_round_trip(relay.addr(), &pki, "default-cert").await;
    let snap = closed_records(&relay, 1).await;
    assert_eq!(snap.closed[0].sni.as_deref(), Some("localhost"));
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn total_connection_limit_origin_allowlist_and_optional_subprotocol() {
    let m = Mosquitto::start();
    let pki = TestPki::new();
    let relay = start(
        &pki,
        &[format!("tcp://127.0.0.1:{}", m.tcp_port)],
        "require_subprotocol = false\nallowed_origins = [\"https://ok.example\"]",
        "max_connections = 2",
    )
    .await;
    let a = relay.addr();
    // Origin: a browser page from elsewhere is refused; a listed one and none (Mini
    // Programs send no Origin) are served. No subprotocol is fine on this route.
    let r = raw(
        a,
        &pki,
        &upgrade_head("/mqtt", "Origin: https://evil.example\r\n"),
    )
    .await;
    assert!(
        r.starts_with("HTTP/1.1 403") && r.contains("evil.example"),
        "{r}"
    );
    let r = raw(
        a,
        &pki,
        &upgrade_head("/mqtt", "Origin: https://ok.example\r\n"),
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 101"), "{r}");
    assert!(
        !r.contains("Sec-WebSocket-Protocol"),
        "nothing to echo: {r}"
    );
    // The total limit: two held, the third refused with a 503 it can read.
    let _one = upgraded(a, &pki, "").await;
    let _two = upgraded(a, &pki, "").await;
    let r = raw(a, &pki, &upgrade_head("/mqtt", "")).await;
    assert!(
        r.starts_with("HTTP/1.1 503") && r.contains("at its connection limit"),
        "{r}"
    );
    let snap = relay.snapshot(20);
    assert!(
        snap.rejected
            .iter()
            .any(|r| r.reason.contains("max_connections (2) reached")),
        "{:?}",
        snap.rejected
    );
    assert!(
        snap.rejected
            .iter()
            .any(|r| r.status == Some(403) && r.reason.contains("Origin https://evil.example")),
        "{:?}",
        snap.rejected
    );
    // A slot frees when a connection ends.
    drop(_one);
    within(5, "a free slot", async {
        while relay.snapshot(1).live.len() > 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let _three = upgraded(a, &pki, "").await;
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_upstream_modes_idle_out_drain_lose_the_broker_and_survive_vanishing_clients() {
    for mode in ["ws", "tcp"] {
        let mut m = Mosquitto::start();
        let pki = TestPki::new();
        let up = match mode {
            "ws" => format!("ws://127.0.0.1:{}/mqtt", m.ws_port),
            _ => format!("tcp://127.0.0.1:{}", m.tcp_port),
        };
        let relay = start(
            &pki,
            std::slice::from_ref(&up),
            "",
            "idle_timeout_secs = 1\ndrain_secs = 5",
        )
        .await;
        // Idle: 1001 after a second of silence.
        let mut ws = ws_client(relay.addr(), &pki, None).await;
        let (code, reason) = within(5, "idle close", next_close(&mut ws)).await;
        assert_eq!(code, 1001, "{mode}: {reason}");
        assert!(reason.contains("idle"), "{mode}: {reason}");

        // Clients that vanish mid-stream (no close frame, no DISCONNECT) while the broker
        // is sending to them: recorded as gone, and the relay serves the next ones.
        for i in 0..20 {
            let mut s = upgraded(relay.addr(), &pki, "").await;
            let id = format!("vanish-{mode}-{i}");
            s.write_all(&client_frame(&connect_packet(&id, None)))
                .await
                .unwrap();
            // SUBSCRIBE to its own topic and PUBLISH a burst to it, then leave at once.
            let topic = format!("vanish/{id}");
            let mut sub = vec![0x82, 0, 0, 1];
            sub.extend_from_slice(&(topic.len() as u16).to_be_bytes());
            sub.extend_from_slice(topic.as_bytes());
            sub.push(0);
            sub[1] = (sub.len() - 2) as u8;
            let mut burst = sub;
            for _ in 0..20 {
                let mut p = vec![0x30, 0];
                p.extend_from_slice(&(topic.len() as u16).to_be_bytes());
                p.extend_from_slice(topic.as_bytes());
                p.extend_from_slice(&[b'x'; 64]);
                p[1] = (p.len() - 2) as u8;
                burst.extend(p);
            }
            s.write_all(&client_frame(&burst)).await.unwrap();
            if i % 2 == 0 {
                // Half of them leave without even a TLS close_notify.
                let (tcp, _) = s.into_inner();
                drop(tcp);
            } else {
                drop(s);
            }
        }
        let snap = closed_records(&relay, 21).await;
        assert!(
            snap.closed
                .iter()
                .filter(|r| r
                    .close
                    .as_ref()
                    .is_some_and(|c| c.side == mpbridge::relay::stats::Side::Client))
                .count()
                >= 15,
            "{mode}: {:?}",
            snap.closed.iter().map(|r| &r.close).collect::<Vec<_>>()
        );
        rumqttc_round_trip(relay.addr(), &pki, &format!("after-vanishing-{mode}")).await;

        // The broker killed under a live connection: close 1011 naming it.
        let mut ws = ws_client(relay.addr(), &pki, None).await;
        ws.send(Message::Binary(
            connect_packet(&format!("victim-{mode}"), None).into(),
        ))
        .await
        .unwrap();
        within(5, "CONNACK", next_binary(&mut ws)).await;
        m.stop();
        let (code, reason) = within(10, "close after the broker died", next_close(&mut ws)).await;
        assert_eq!(code, 1011, "{mode}: {reason}");
        assert!(reason.contains("broker"), "{mode}: {reason}");
        m.restart();
        rumqttc_round_trip(relay.addr(), &pki, &format!("after-restart-{mode}")).await;

        // Drain: 1001 to a live connection, then the relay is gone.
        let mut ws = ws_client(relay.addr(), &pki, None).await;
        ws.send(Message::Binary(
            connect_packet(&format!("drained-{mode}"), None).into(),
        ))
        .await
        .unwrap();
        within(5, "CONNACK", next_binary(&mut ws)).await;
        let stopper = {
            let r = relay.clone();
            tokio::spawn(async move { r.stop().await })
        };
        let (code, reason) = within(5, "close 1001 on stop", next_close(&mut ws)).await;
        assert_eq!(
            (code, reason.as_str()),
            (1001, "relay shutting down"),
            "{mode}"
        );
        within(10, "stop finished", stopper).await.unwrap();
    }
}

/// `nginx-config` carries the allowlists and the connection limit: run in a real nginx, the
/// exported block refuses a Mini Program that is not listed and an Origin that is not listed,
/// and lets the listed ones through to the broker, as the relay does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_export_keeps_the_allowlists_in_a_real_nginx() {
    if !common::Nginx::available() {
        common::missing("nginx");
        return;
    }
    let m = Mosquitto::start();
    let pki = TestPki::new();
    let up = format!("ws://127.0.0.1:{}/mqtt", m.ws_port);
    ensure_provider();
    let cfg = RelayConfig::parse(
        &relay_toml(
            &pki,
            &[up],
            "allowed_appids = [\"wx1111111111111111\"]\nallowed_origins = [\"https://ok.example\"]",
            "max_connections = 7",
        ),
        pki.dir.path(),
    )
    .unwrap();
    let block = mpbridge::relay::nginx::render(&cfg);
    assert!(block.contains("limit_conn mpbridge_total 7;"), "{block}");
    // No cap per address unless one is set, as the relay; refusals are 503, as the relay's.
    assert!(!block.contains("limit_conn mpbridge_per_ip"), "{block}");
    assert!(block.contains("limit_conn_status 503;"), "{block}");
    let listen = format!("listen {} ssl;", cfg.listen);
    let nginx = common::Nginx::start_http(|port, _| {
        format!(
            "  access_log off;\n{}",
            block.replace(&listen, &format!("listen 127.0.0.1:{port} ssl;"))
        )
    });
    let addr: SocketAddr = format!("127.0.0.1:{}", nginx.port).parse().unwrap();
    let mp = |appid: &str| {
        format!(
            "Sec-WebSocket-Protocol: mqtt\r\nReferer: https://servicewechat.com/{appid}/3/page-frame.html\r\n"
        )
    };

    let r = raw(
        addr,
        &pki,
        &upgrade_head("/mqtt", &mp("wx2222222222222222")),
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 403"), "an unlisted appid: {r}");
    let r = raw(
        addr,
        &pki,
        &upgrade_head("/mqtt", "Sec-WebSocket-Protocol: mqtt\r\n"),
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 403"), "no Mini Program at all: {r}");
    let r = raw(
        addr,
        &pki,
        &upgrade_head(
            "/mqtt",
            &format!(
                "{}Origin: https://evil.example\r\n",
                mp("wx1111111111111111")
            ),
        ),
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 403"), "an unlisted Origin: {r}");
    let r = raw(
        addr,
        &pki,
        &upgrade_head("/mqtt", &mp("wx1111111111111111")),
    )
    .await;
    assert!(
        r.starts_with("HTTP/1.1 101"),
        "the listed appid reaches the broker: {r}"
    );
    let r = raw(
        addr,
        &pki,
        &upgrade_head(
            "/mqtt",
            &format!("{}Origin: https://ok.example\r\n", mp("wx1111111111111111")),
        ),
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 101"), "a listed Origin: {r}");
}
