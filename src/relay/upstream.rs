//! Connecting to a route's upstreams: round-robin over the list, failing over to the next
//! when one refuses or times out.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::config::Upstream;

/// A connected upstream.
pub enum UpstreamConn {
    Ws(Box<WebSocketStream<TcpStream>>),
    Tcp(TcpStream),
}

/// Headers the relay adds towards a WebSocket upstream.
pub struct Forwarded<'a> {
    pub peer: SocketAddr,
    /// `X-Forwarded-For` the client sent (a chain of proxies before us).
    pub prior_xff: Option<&'a str>,
    pub subprotocol: Option<&'a str>,
    pub host: Option<&'a str>,
}

/// Connects one upstream, under `timeout` for TCP connect plus the WebSocket handshake.
pub async fn connect(
    up: &Upstream,
    fwd: &Forwarded<'_>,
    timeout: Duration,
    ws_config: WebSocketConfig,
) -> Result<UpstreamConn, String> {
    let fut = async {
        let tcp = TcpStream::connect(up.authority())
            .await
            .map_err(|e| format!("{up}: {e}"))?;
        tcp.set_nodelay(true).ok();
        match up {
            Upstream::Tcp { .. } => Ok(UpstreamConn::Tcp(tcp)),
            Upstream::Ws { .. } => {
                let mut req = up
                    .to_string()
                    .into_client_request()
                    .map_err(|e| format!("{up}: {e}"))?;
                let h = req.headers_mut();
                let ip = fwd.peer.ip().to_string();
                let xff = match fwd.prior_xff {
                    Some(prior) if !prior.trim().is_empty() => format!("{}, {ip}", prior.trim()),
                    _ => ip.clone(),
                };
                let pairs = [
                    (
                        "Sec-WebSocket-Protocol",
                        fwd.subprotocol.unwrap_or("mqtt").to_owned(),
                    ),
                    ("X-Forwarded-For", xff),
                    ("X-Real-IP", ip),
                    ("X-Forwarded-Proto", "https".to_owned()),
                ];
                for (k, v) in pairs {
                    if let Ok(v) = HeaderValue::from_str(&v) {
                        h.insert(k, v);
                    }
                }
                if let Some(host) = fwd.host.and_then(|v| HeaderValue::from_str(v).ok()) {
                    h.insert("X-Forwarded-Host", host);
                }
                let (ws, resp) =
                    tokio_tungstenite::client_async_with_config(req, tcp, Some(ws_config))
                        .await
                        .map_err(|e| format!("{up}: WebSocket handshake failed: {e}"))?;
                tracing::debug!("upstream {up} answered {}", resp.status());
                Ok(UpstreamConn::Ws(Box::new(ws)))
            }
        }
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(format!("{up}: no answer within {} s", timeout.as_secs())),
    }
}

/// Tries the route's upstreams in round-robin order; returns the first that connects and
/// its label, or every failure in one sentence.
pub async fn connect_any(
    ups: &[Upstream],
    next: &AtomicUsize,
    fwd: &Forwarded<'_>,
    timeout: Duration,
    ws_config: WebSocketConfig,
) -> Result<(UpstreamConn, String), String> {
    if ups.is_empty() {
        return Err("the route has no upstream".to_owned());
    }
    let start = next.fetch_add(1, Ordering::Relaxed);
    let mut errors = Vec::new();
    for i in 0..ups.len() {
        let up = &ups[(start + i) % ups.len()];
        match connect(up, fwd, timeout, ws_config).await {
            Ok(c) => {
                if !errors.is_empty() {
                    tracing::warn!("failed over to {up} after: {}", errors.join("; "));
                }
                return Ok((c, up.to_string()));
            }
            Err(e) => errors.push(e),
        }
    }
    Err(format!("no upstream reachable: {}", errors.join("; ")))
}
