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

pub use crate::mqtt::wire::{Reader, connect, puback, publish, subscribe};

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
    open_over(tcp, tls, path, addr.port())
        .await
        .map_err(|e| e.to_string())
}

/// Which step of opening a connection failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Tls,
    Upgrade,
}

/// Why opening failed, and at which step.
#[derive(Debug, Clone)]
pub struct OpenError {
    pub step: Step,
    pub message: String,
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let step = match self.step {
            Step::Tls => "TLS handshake",
            Step::Upgrade => "WebSocket upgrade",
        };
        write!(f, "{step}: {}", self.message)
    }
}

/// TLS (server name `localhost`) and the WebSocket upgrade over a connected socket.
pub async fn open_over(
    tcp: TcpStream,
    tls: Arc<rustls::ClientConfig>,
    path: &str,
    port: u16,
) -> Result<Wss, OpenError> {
    let tls = tls_over(tcp, tls).await?;
    upgrade(tls, path, port).await
}

/// The TLS handshake (server name `localhost`) over a connected socket.
pub async fn tls_over(
    tcp: TcpStream,
    tls: Arc<rustls::ClientConfig>,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, OpenError> {
    let fail = |e: &dyn std::fmt::Display| OpenError {
        step: Step::Tls,
        message: e.to_string(),
    };
    tcp.set_nodelay(true).ok();
    let name = rustls_pki_types::ServerName::try_from("localhost").map_err(|e| fail(&e))?;
    tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .map_err(|e| fail(&e))
}

/// The WebSocket upgrade (subprotocol `mqtt`) to `wss://localhost:PORT/PATH`.
pub async fn upgrade(
    tls: tokio_rustls::client::TlsStream<TcpStream>,
    path: &str,
    port: u16,
) -> Result<Wss, OpenError> {
    let fail = |e: &dyn std::fmt::Display| OpenError {
        step: Step::Upgrade,
        message: e.to_string(),
    };
    let mut req = format!("wss://localhost:{port}{path}")
        .into_client_request()
        .map_err(|e| fail(&e))?;
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        http::HeaderValue::from_static("mqtt"),
    );
    let (ws, _) = tokio_tungstenite::client_async(req, tls)
        .await
        .map_err(|e| fail(&e))?;
    Ok(ws)
}

/// Opens and completes MQTT CONNECT/CONNACK.
pub async fn open_mqtt(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    id: &str,
) -> Result<(Wss, Reader), String> {
    open_mqtt_on(addr, tls, id, "/mqtt").await
}

/// The same on another path.
pub async fn open_mqtt_on(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    id: &str,
    path: &str,
) -> Result<(Wss, Reader), String> {
    let mut ws = open_path(addr, tls, path).await?;
    let rd = mqtt_connect(&mut ws, id).await?;
    Ok((ws, rd))
}

/// CONNECT (clean session, keepalive 300 s) and its CONNACK, accepted, within 10 s.
pub async fn mqtt_connect(ws: &mut Wss, id: &str) -> Result<Reader, String> {
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
    Ok(rd)
}
