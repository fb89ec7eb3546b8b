//! The health probe: a real MQTT 3.1.1 round trip through the broker. A broker that accepts
//! TCP but no longer routes messages (a dead internal task) fails it as surely as a dead
//! process.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::mqtt::wire;

/// CONNECT (clean session, keep alive 10 s), SUBSCRIBE to a `$`-topic of its own, PUBLISH to
/// it, read the message back, DISCONNECT. `$`-topics are never matched by `#` or `+`
/// (MQTT 3.1.1 §4.7.2), so subscribers to everything never see the probe.
pub async fn round_trip(addr: SocketAddr, within: Duration) -> Result<(), String> {
    match tokio::time::timeout(within, exchange(addr)).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {} s", within.as_secs())),
    }
}

async fn exchange(addr: SocketAddr) -> Result<(), String> {
    let mut s = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    s.set_nodelay(true).ok();
    let nonce: u32 = rand::random();
    let client_id = format!("mpbridge-health-{nonce:08x}");
    let topic = format!("$mpbridge/health/{nonce:08x}");

    write(&mut s, &wire::connect(&client_id, 10)).await?;
    let (kind, body) = read_packet(&mut s).await?;
    if kind != 0x20 || body.get(1) != Some(&0) {
        return Err(format!("CONNACK expected, got {kind:#04x} {body:?}"));
    }

    write(&mut s, &wire::subscribe(1, &topic, 0)).await?;
    let (kind, body) = read_packet(&mut s).await?;
    if kind != 0x90 || body.get(2).is_some_and(|c| *c >= 0x80) {
        return Err(format!("SUBACK expected, got {kind:#04x} {body:?}"));
    }

    write(&mut s, &wire::publish(&topic, 0, 0, b"ok")).await?;
    let (kind, body) = read_packet(&mut s).await?;
    if kind & 0xF0 != 0x30 || !body.ends_with(b"ok") {
        return Err(format!(
            "the probe's message did not come back ({kind:#04x})"
        ));
    }
    s.write_all(&[0xE0, 0]).await.ok();
    Ok(())
}

async fn write(s: &mut TcpStream, packet: &[u8]) -> Result<(), String> {
    s.write_all(packet).await.map_err(|e| format!("write: {e}"))
}

async fn read_packet(s: &mut TcpStream) -> Result<(u8, Vec<u8>), String> {
    let io = |e: std::io::Error| format!("read: {e}");
    let first = s.read_u8().await.map_err(io)?;
    let mut len = 0usize;
    for shift in 0..4 {
        let b = s.read_u8().await.map_err(io)?;
        len |= usize::from(b & 0x7F) << (7 * shift);
        if b & 0x80 == 0 {
            break;
        }
    }
    if len > 64 * 1024 {
        return Err(format!("unexpected {len}-byte packet"));
    }
    let mut body = vec![0; len];
    s.read_exact(&mut body).await.map_err(io)?;
    Ok((first, body))
}
