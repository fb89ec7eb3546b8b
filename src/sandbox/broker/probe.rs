//! The health probe: a real MQTT 3.1.1 round trip through the broker. A broker that accepts
//! TCP but no longer routes messages (a dead internal task) fails it as surely as a dead
//! process.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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

    let mut connect = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 10];
    put_str(&mut connect, &client_id);
    write_packet(&mut s, 0x10, &connect).await?;
    let (kind, body) = read_packet(&mut s).await?;
    if kind != 0x20 || body.get(1) != Some(&0) {
        return Err(format!("CONNACK expected, got {kind:#04x} {body:?}"));
    }

    let mut subscribe = vec![0, 1];
    put_str(&mut subscribe, &topic);
    subscribe.push(0);
    write_packet(&mut s, 0x82, &subscribe).await?;
    let (kind, body) = read_packet(&mut s).await?;
    if kind != 0x90 || body.get(2).is_some_and(|c| *c >= 0x80) {
        return Err(format!("SUBACK expected, got {kind:#04x} {body:?}"));
    }

    let mut publish = Vec::new();
    put_str(&mut publish, &topic);
    publish.extend_from_slice(b"ok");
    write_packet(&mut s, 0x30, &publish).await?;
    let (kind, body) = read_packet(&mut s).await?;
    if kind & 0xF0 != 0x30 || !body.ends_with(b"ok") {
        return Err(format!(
            "the probe's message did not come back ({kind:#04x})"
        ));
    }
    s.write_all(&[0xE0, 0]).await.ok();
    Ok(())
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u16).to_be_bytes());
    buf.extend_from_slice(s.as_bytes());
}

async fn write_packet(s: &mut TcpStream, first: u8, body: &[u8]) -> Result<(), String> {
    let mut packet = vec![first];
    let mut len = body.len();
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        packet.push(byte);
        if len == 0 {
            break;
        }
    }
    packet.extend_from_slice(body);
    s.write_all(&packet)
        .await
        .map_err(|e| format!("write: {e}"))
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
