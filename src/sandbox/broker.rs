//! The sandbox's embedded MQTT broker (rumqttd) on a free loopback port.
//!
//! rumqttd runs on its own named threads and has no stop; the sandbox starts it once per
//! process and keeps it for the life of the process.

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("no free loopback port for the embedded broker: {0}")]
    NoPort(#[source] std::io::Error),
    #[error("the embedded broker did not start on {addr} within {secs} s")]
    NotReady { addr: SocketAddr, secs: u64 },
    #[error("the embedded broker failed to start: {0}")]
    Start(String),
    #[error("this build has no embedded broker (cargo feature `embedded-broker` is off)")]
    Disabled,
}

/// Largest payload the embedded broker accepts.
pub const MAX_PAYLOAD_BYTES: usize = 1024 * 1024;

/// Starts rumqttd on `127.0.0.1:<free port>` (MQTT 3.1.1) and waits until it accepts TCP.
pub fn start() -> Result<SocketAddr, BrokerError> {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(BrokerError::NoPort)?
        .port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    run(addr)?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if speaks_mqtt(addr) {
            tracing::info!("embedded broker listening on mqtt://{addr}");
            return Ok(addr);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    Err(BrokerError::NotReady { addr, secs: 5 })
}

/// A real MQTT 3.1.1 round trip: CONNECT, expect CONNACK accepted, DISCONNECT.
fn speaks_mqtt(addr: SocketAddr) -> bool {
    use std::io::{Read, Write};
    const CLIENT_ID: &[u8] = b"mpbridge-probe";
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    s.set_read_timeout(Some(Duration::from_millis(500))).ok();
    // Variable header: "MQTT", level 4, clean session, keepalive 5 s; payload: client id.
    let mut body = vec![
        0,
        4,
        b'M',
        b'Q',
        b'T',
        b'T',
        4,
        0x02,
        0,
        5,
        0,
        CLIENT_ID.len() as u8,
    ];
    body.extend_from_slice(CLIENT_ID);
    let mut packet = vec![0x10, body.len() as u8];
    packet.extend_from_slice(&body);
    let mut ack = [0u8; 4];
    let ok = s.write_all(&packet).is_ok()
        && s.read_exact(&mut ack).is_ok()
        && ack == [0x20, 0x02, 0x00, 0x00];
    s.write_all(&[0xe0, 0x00]).ok();
    ok
}

#[cfg(feature = "embedded-broker")]
fn run(addr: SocketAddr) -> Result<(), BrokerError> {
    let text = format!(
        r#"
id = 0
[router]
id = 0
max_connections = 10010
max_outgoing_packet_count = 200
max_segment_size = 1048576
max_segment_count = 4

[v4.1]
name = "sandbox-v4"
listen = "{addr}"
next_connection_delay_ms = 0
[v4.1.connections]
connection_timeout_ms = 10000
max_payload_size = {MAX_PAYLOAD_BYTES}
max_inflight_count = 100
dynamic_filters = true
"#
    );
    let config: rumqttd::Config =
        toml::from_str(&text).map_err(|e| BrokerError::Start(e.message().to_owned()))?;
    crate::spawn_named("sandbox-broker", move || {
        let mut broker = rumqttd::Broker::new(config);
        if let Err(e) = broker.start() {
            tracing::error!("embedded broker stopped: {e}");
        }
    })
    .map_err(|e| BrokerError::Start(e.to_string()))?;
    Ok(())
}

#[cfg(not(feature = "embedded-broker"))]
fn run(_addr: SocketAddr) -> Result<(), BrokerError> {
    Err(BrokerError::Disabled)
}
