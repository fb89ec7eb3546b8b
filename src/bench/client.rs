//! A lean MQTT-over-WSS load client: hand-encoded MQTT 3.1.1 packets over tokio-tungstenite
//! over tokio-rustls, so the measurement is dominated by the proxy, not the client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

pub type Wss = WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>;

fn remaining_length(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
}

fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut p = vec![first];
    remaining_length(body.len(), &mut p);
    p.extend_from_slice(body);
    p
}

fn mqtt_str(s: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

pub fn connect(client_id: &str, keep_alive: u16) -> Vec<u8> {
    let mut b = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0x02];
    b.extend_from_slice(&keep_alive.to_be_bytes());
    mqtt_str(client_id, &mut b);
    packet(0x10, &b)
}

pub fn subscribe(id: u16, filter: &str, qos: u8) -> Vec<u8> {
    let mut b = id.to_be_bytes().to_vec();
    mqtt_str(filter, &mut b);
    b.push(qos);
    packet(0x82, &b)
}

pub fn publish(topic: &str, qos: u8, id: u16, payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(topic.len() + payload.len() + 4);
    mqtt_str(topic, &mut b);
    if qos > 0 {
        b.extend_from_slice(&id.to_be_bytes());
    }
    b.extend_from_slice(payload);
    packet(0x30 | (qos << 1), &b)
}

pub fn puback(id: u16) -> Vec<u8> {
    packet(0x40, &id.to_be_bytes())
}

/// Splits a byte stream into MQTT packets (first byte, body).
#[derive(Default)]
pub struct Reader {
    buf: Vec<u8>,
}

impl Reader {
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    pub fn next_packet(&mut self) -> Option<(u8, Vec<u8>)> {
        let mut len = 0usize;
        let mut i = 1;
        loop {
            let b = *self.buf.get(i)?;
            len |= usize::from(b & 0x7f) << (7 * (i - 1));
            i += 1;
            if b & 0x80 == 0 {
                break;
            }
            if i > 4 {
                self.buf.clear();
                return None;
            }
        }
        if self.buf.len() < i + len {
            return None;
        }
        let first = self.buf[0];
        let body = self.buf[i..i + len].to_vec();
        self.buf.drain(..i + len);
        Some((first, body))
    }
}

/// Opens TLS + the WebSocket upgrade (subprotocol `mqtt`) to `wss://localhost:PORT/mqtt`.
pub async fn open(addr: SocketAddr, tls: Arc<rustls::ClientConfig>) -> Result<Wss, String> {
    open_path(addr, tls, "/mqtt").await
}

/// The same on another path.
pub async fn open_path(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    path: &str,
) -> Result<Wss, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    tcp.set_nodelay(true).ok();
    let name = rustls_pki_types::ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let mut req = format!("wss://localhost:{}{path}", addr.port())
        .into_client_request()
        .map_err(|e| e.to_string())?;
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        http::HeaderValue::from_static("mqtt"),
    );
    let (ws, _) = tokio_tungstenite::client_async(req, tls)
        .await
        .map_err(|e| e.to_string())?;
    Ok(ws)
}

/// Opens and completes MQTT CONNECT/CONNACK.
pub async fn open_mqtt(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    id: &str,
) -> Result<(Wss, Reader), String> {
    let mut ws = open(addr, tls).await?;
    ws.send(Message::Binary(connect(id, 300).into()))
        .await
        .map_err(|e| e.to_string())?;
    let mut rd = Reader::default();
    let ack = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Binary(b))) => {
                    rd.push(&b);
                    if let Some(p) = rd.next_packet() {
                        return Ok(p);
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("closed before CONNACK".to_owned()),
            }
        }
    })
    .await
    .map_err(|_| "no CONNACK within 10 s".to_owned())??;
    if ack.0 >> 4 != 2 || ack.1.get(1) != Some(&0) {
        return Err(format!("CONNACK refused: {:?}", ack.1));
    }
    Ok((ws, rd))
}
