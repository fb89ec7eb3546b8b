//! Connecting to a route's upstreams: round-robin over the list, failing over to the next
//! when one refuses or times out, and trying an upstream that just failed only after the
//! others (passive health, as nginx's `max_fails=1 fail_timeout=10s`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use super::config::Upstream;

/// A connected upstream.
pub enum UpstreamConn {
    /// A broker's WebSocket listener after its 101; `leftover` holds bytes it sent right
    /// after the response head (frames already on their way to the client).
    Ws {
        tcp: TcpStream,
        leftover: Vec<u8>,
    },
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
) -> Result<UpstreamConn, String> {
    let fut = async {
        let tcp = tcp_connect(&up.authority())
            .await
            .map_err(|e| format!("{up}: {e}"))?;
        tcp.set_nodelay(true).ok();
        match up {
            Upstream::Tcp { .. } => Ok(UpstreamConn::Tcp(tcp)),
            Upstream::Ws { path, .. } => ws_handshake(tcp, up, path, fwd).await,
        }
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(format!("{up}: no answer within {} s", timeout.as_secs())),
    }
}

/// When to send another SYN while the earlier ones are unanswered, counted from the first.
/// A broker whose listen queue overflows in a crowd of reconnects drops SYNs (mosquitto's queue
/// holds 100), and the kernel would retry only after a second; the first attempt that
/// completes wins, the others are dropped. Refusals end the attempt at once.
const RETRY_SYN_AT: [Duration; 2] = [Duration::from_millis(200), Duration::from_millis(600)];

/// A TCP connection to `authority`, with [`RETRY_SYN_AT`].
pub async fn tcp_connect(authority: &str) -> std::io::Result<TcpStream> {
    use futures_util::stream::{FuturesUnordered, StreamExt};
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(authority).await?.collect();
    let attempt = || {
        let addrs = addrs.clone();
        async move { TcpStream::connect(addrs.as_slice()).await }
    };
    let started = tokio::time::Instant::now();
    let mut attempts = FuturesUnordered::new();
    attempts.push(attempt());
    let mut retries = RETRY_SYN_AT.iter();
    let mut next = retries.next();
    loop {
        let retry = async {
            match next {
                Some(at) => tokio::time::sleep_until(started + *at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            done = attempts.next() => match done {
                Some(Ok(tcp)) => return Ok(tcp),
                Some(Err(e)) if attempts.is_empty() => return Err(e),
                Some(Err(_)) => {}
                None => return Err(std::io::Error::other("no connect attempt left")),
            },
            () = retry => {
                attempts.push(attempt());
                next = retries.next();
            }
        }
    }
}

/// The client side of RFC 6455 towards a broker, by hand: the relay then copies frames as
/// bytes (no re-framing), so it must not negotiate anything the client did not get.
async fn ws_handshake(
    mut tcp: TcpStream,
    up: &Upstream,
    path: &str,
    fwd: &Forwarded<'_>,
) -> Result<UpstreamConn, String> {
    use base64::Engine as _;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 16]>());
    let ip = fwd.peer.ip().to_string();
    let xff = match fwd.prior_xff {
        Some(prior) if !prior.trim().is_empty() => format!("{}, {ip}", prior.trim()),
        _ => ip.clone(),
    };
    let clean = |v: &str| v.replace(['\r', '\n'], "");
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {}\r\nX-Forwarded-For: {}\r\nX-Real-IP: {ip}\r\nX-Forwarded-Proto: https\r\n",
        up.authority(),
        clean(fwd.subprotocol.unwrap_or("mqtt")),
        clean(&xff)
    );
    if let Some(h) = fwd.host {
        req.push_str(&format!("X-Forwarded-Host: {}\r\n", clean(h)));
    }
    req.push_str("\r\n");
    tcp.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("{up}: {e}"))?;
    let mut buf = Vec::with_capacity(1024);
    loop {
        let mut chunk = [0u8; 1024];
        let n = tcp
            .read(&mut chunk)
            .await
            .map_err(|e| format!("{up}: {e}"))?;
        if n == 0 {
            return Err(format!("{up}: closed during the WebSocket handshake"));
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(&buf) {
            Ok(httparse::Status::Partial) if buf.len() < super::handshake::MAX_HEAD_BYTES => {
                continue;
            }
            Ok(httparse::Status::Partial) => return Err(format!("{up}: response head too large")),
            Err(e) => return Err(format!("{up}: not an HTTP response ({e})")),
            Ok(httparse::Status::Complete(n)) => {
                let code = resp.code.unwrap_or(0);
                if code != 101 {
                    return Err(format!(
                        "{up}: answered {code} {} instead of 101 (check the broker's WebSocket path)",
                        resp.reason.unwrap_or("")
                    ));
                }
                let accept = resp
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("Sec-WebSocket-Accept"))
                    .map(|h| String::from_utf8_lossy(h.value).trim().to_owned());
                if accept.as_deref() != Some(super::handshake::accept_key(&key).as_str()) {
                    return Err(format!("{up}: wrong Sec-WebSocket-Accept"));
                }
                let extensions = resp
                    .headers
                    .iter()
                    .any(|h| h.name.eq_ignore_ascii_case("Sec-WebSocket-Extensions"));
                if extensions {
                    return Err(format!(
                        "{up}: negotiated an extension that was not offered"
                    ));
                }
                let leftover = buf.split_off(n);
                return Ok(UpstreamConn::Ws { tcp, leftover });
            }
        }
    }
}

/// How long an upstream that failed is tried only after the others.
pub const FAIL_TIMEOUT: Duration = Duration::from_secs(10);

/// A route's upstream state: where the round robin stands and which upstreams failed lately.
/// A stalled broker of a cluster then costs one connection its connect timeout, not every
/// n-th connection.
pub struct Balancer {
    next: AtomicUsize,
    /// Per upstream: until when (milliseconds since `epoch`) it counts as failed; 0: healthy.
    down_until: Vec<AtomicU64>,
    epoch: Instant,
}

impl Balancer {
    pub fn new(upstreams: usize) -> Self {
        Balancer {
            next: AtomicUsize::new(0),
            down_until: (0..upstreams).map(|_| AtomicU64::new(0)).collect(),
            epoch: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The order to try: round robin, upstreams that failed lately moved to the end.
    fn order(&self, n: usize) -> Vec<usize> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let now = self.now_ms();
        let (mut up, down): (Vec<usize>, Vec<usize>) =
            (0..n).map(|i| (start + i) % n).partition(|&i| {
                self.down_until
                    .get(i)
                    .is_none_or(|d| d.load(Ordering::Relaxed) <= now)
            });
        up.extend(down);
        up
    }

    fn mark(&self, i: usize, ok: bool) {
        if let Some(d) = self.down_until.get(i) {
            let until = if ok {
                0
            } else {
                self.now_ms() + FAIL_TIMEOUT.as_millis() as u64
            };
            d.store(until, Ordering::Relaxed);
        }
    }
}

/// An upstream connected: the connection, its label, and why the ones tried before failed.
pub struct Connected {
    pub conn: UpstreamConn,
    pub label: String,
    pub failed: Vec<String>,
}

/// Tries the route's upstreams in the balancer's order; returns the first that connects, or
/// every failure in one sentence.
pub async fn connect_any(
    ups: &[Upstream],
    balancer: &Balancer,
    fwd: &Forwarded<'_>,
    timeout: Duration,
) -> Result<Connected, String> {
    if ups.is_empty() {
        return Err("the route has no upstream".to_owned());
    }
    let mut errors = Vec::new();
    for i in balancer.order(ups.len()) {
        let up = &ups[i];
        match connect(up, fwd, timeout).await {
            Ok(conn) => {
                balancer.mark(i, true);
                if !errors.is_empty() {
                    tracing::warn!("failed over to {up} after: {}", errors.join("; "));
                }
                return Ok(Connected {
                    conn,
                    label: up.to_string(),
                    failed: errors,
                });
            }
            Err(e) => {
                balancer.mark(i, false);
                errors.push(e);
            }
        }
    }
    Err(format!("no upstream reachable: {}", errors.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A broker's listen queue full (SYNs dropped) and emptied 100 ms later: the connection
    /// is made by the retry at 200 ms, not after the kernel's one-second SYN retransmit.
    #[tokio::test]
    async fn a_dropped_syn_is_sent_again_before_the_kernel_would() {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(1).unwrap();
        let addr = listener.local_addr().unwrap();
        // Fill the accept queue (backlog + 1 on Linux), and one more to be sure.
        let mut fillers = Vec::new();
        for _ in 0..3 {
            if let Ok(Ok(s)) =
                tokio::time::timeout(Duration::from_millis(100), TcpStream::connect(addr)).await
            {
                fillers.push(s);
            }
        }
        let drain = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let mut held = Vec::new();
            while let Ok(Ok((s, _))) =
                tokio::time::timeout(Duration::from_secs(3), listener.accept()).await
            {
                held.push(s);
            }
            held.len()
        });
        let t = std::time::Instant::now();
        let got = tokio::time::timeout(Duration::from_secs(5), tcp_connect(&addr.to_string()))
            .await
            .expect("connected within 5 s");
        assert!(got.is_ok(), "{got:?}");
        assert!(
            t.elapsed() < Duration::from_millis(900),
            "took {:?}: waited for the kernel's retransmit",
            t.elapsed()
        );
        drop(fillers);
        drain.abort();
    }

    #[tokio::test]
    async fn a_refusal_ends_the_attempt_at_once() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let t = std::time::Instant::now();
        let r = tcp_connect(&format!("127.0.0.1:{port}")).await;
        assert_eq!(
            r.err().map(|e| e.kind()),
            Some(std::io::ErrorKind::ConnectionRefused)
        );
        assert!(
            t.elapsed() < Duration::from_millis(150),
            "{:?}",
            t.elapsed()
        );
    }

    #[test]
    fn failed_upstreams_are_tried_last_until_their_timeout() {
        let b = Balancer::new(3);
        assert_eq!(b.order(3), vec![0, 1, 2]);
        assert_eq!(b.order(3), vec![1, 2, 0]);
        b.mark(2, false);
        assert_eq!(b.order(3), vec![0, 1, 2], "2 goes last");
        assert_eq!(b.order(3), vec![0, 1, 2]);
        b.mark(2, true);
        assert_eq!(b.order(3), vec![1, 2, 0], "healthy again");
        // Past the timeout a failed upstream is back in turn.
        b.down_until[0].store(1, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(b.order(3), vec![2, 0, 1]);
    }
}
