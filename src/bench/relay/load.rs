//! The loads of `bench relay`: message throughput, handshakes per second, and the crowd (a
//! reconnect storm: many connections opened with a fixed number in flight, then held idle).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use super::super::client;
use super::super::procs::{cpu_secs, quantile_ms, record_latency, rss_kib};
use super::targets::Target;

/// Publishes in flight per client.
pub(super) const DEPTH: usize = 8;

#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Run {
    pub msgs_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// CPU time the measured process (the proxy; mosquitto for direct) spent per delivered
    /// message, in microseconds.
    pub cpu_us: f64,
    /// CPU time mosquitto spent per delivered message behind this proxy, in microseconds.
    pub broker_us: f64,
}

/// The median of the finite values; NaN when there is none.
pub(super) fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The median of each measure over rounds (each taken on its own).
pub(super) fn median_run(runs: &[Run]) -> Run {
    let m = |f: fn(&Run) -> f64| median(runs.iter().map(f));
    Run {
        msgs_per_s: m(|r| r.msgs_per_s),
        p50_ms: m(|r| r.p50_ms),
        p99_ms: m(|r| r.p99_ms),
        cpu_us: m(|r| r.cpu_us),
        broker_us: m(|r| r.broker_us),
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn throughput(
    addr: SocketAddr,
    path: &'static str,
    (pid, broker): (u32, u32),
    tls: Arc<rustls::ClientConfig>,
    clients: usize,
    qos: u8,
    size: usize,
    secs: f64,
) -> anyhow::Result<Run> {
    let epoch = Instant::now();
    let deadline = epoch + Duration::from_secs_f64(secs) + Duration::from_secs(2);
    let measure_from = epoch + Duration::from_secs(2); // warm-up: connections and first messages
    let cpu = tokio::spawn(async move {
        tokio::time::sleep_until(measure_from.into()).await;
        let both = move || (cpu_secs(pid), cpu_secs(broker));
        let a = tokio::task::spawn_blocking(both)
            .await
            .unwrap_or((0.0, 0.0));
        tokio::time::sleep_until(deadline.into()).await;
        let b = tokio::task::spawn_blocking(both)
            .await
            .unwrap_or((0.0, 0.0));
        (b.0 - a.0, b.1 - a.1)
    });
    let mut tasks = Vec::new();
    for i in 0..clients {
        let tls = tls.clone();
        tasks.push(tokio::spawn(async move {
            let id = format!("bench-{i}-{}", rand::random::<u32>());
            let (ws, mut rd) = client::open_mqtt_on(addr, tls, &id, path).await?;
            let topic = format!("bench/{id}");
            let (mut tx, mut rx) = ws.split();
            tx.send(Message::Binary(client::subscribe(1, &topic, qos).into()))
                .await
                .map_err(|e| e.to_string())?;
            // SUBACK
            loop {
                if let Some((first, _)) = rd.next_packet() {
                    if first >> 4 == 9 {
                        break;
                    }
                    continue;
                }
                match rx.next().await {
                    Some(Ok(Message::Binary(b))) => rd.push(&b),
                    Some(Ok(_)) => {}
                    _ => return Err("closed before SUBACK".to_owned()),
                }
            }
            let mut lat = Vec::with_capacity(65_536);
            let mut received = 0u64;
            let mut outstanding = 0usize;
            let mut next_id: u16 = 1;
            let mut payload = vec![0u8; size.max(8)];
            while Instant::now() < deadline {
                while outstanding < DEPTH {
                    let now = epoch.elapsed().as_nanos() as u64;
                    payload[..8].copy_from_slice(&now.to_be_bytes());
                    next_id = next_id.wrapping_add(1).max(1);
                    tx.send(Message::Binary(
                        client::publish(&topic, qos, next_id, &payload).into(),
                    ))
                    .await
                    .map_err(|e| e.to_string())?;
                    outstanding += 1;
                }
                let msg = match tokio::time::timeout_at(deadline.into(), rx.next()).await {
                    Ok(Some(Ok(Message::Binary(b)))) => b,
                    Ok(Some(Ok(_))) => continue,
                    Ok(_) => return Err("connection closed".to_owned()),
                    Err(_) => break,
                };
                rd.push(&msg);
                while let Some((first, body)) = rd.next_packet() {
                    if first >> 4 != 3 {
                        continue; // PUBACK for our own publish
                    }
                    let tl = usize::from(u16::from_be_bytes([body[0], body[1]]));
                    let mut off = 2 + tl;
                    let pq = (first >> 1) & 3;
                    if pq > 0 {
                        let pid = u16::from_be_bytes([body[off], body[off + 1]]);
                        off += 2;
                        tx.send(Message::Binary(client::puback(pid).into()))
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                    outstanding = outstanding.saturating_sub(1);
                    if Instant::now() >= measure_from {
                        received += 1;
                        record_latency(&body[off..], epoch, &mut lat);
                    }
                }
            }
            tx.send(Message::Close(None)).await.ok();
            Ok::<_, String>((received, lat))
        }));
    }
    let mut total = 0u64;
    let mut lat: Vec<u32> = Vec::new();
    for t in tasks {
        let (n, l) = t
            .await
            .context("client task")?
            .map_err(|e| anyhow::anyhow!(e))?;
        total += n;
        lat.extend(l);
    }
    lat.sort_unstable();
    let pct = |p: f64| quantile_ms(&lat, p);
    let (cpu, broker_cpu) = cpu.await.unwrap_or((f64::NAN, f64::NAN));
    let per_message = |secs: f64| {
        if total > 0 {
            secs * 1e6 / total as f64
        } else {
            f64::NAN
        }
    };
    Ok(Run {
        msgs_per_s: total as f64 / secs,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        cpu_us: per_message(cpu),
        // Direct: the proxy is mosquitto, its cost is already the cpu column.
        broker_us: if pid == broker {
            f64::NAN
        } else {
            per_message(broker_cpu)
        },
    })
}

/// Runs `attempt` from 16 concurrent loops for `secs`; returns successes per second.
async fn per_second<F, Fut>(secs: f64, attempt: F) -> f64
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let attempt = attempt.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                if attempt().await {
                    n += 1;
                }
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap_or(0);
    }
    total as f64 / secs
}

/// TLS handshakes only: connect, handshake, close (what the proxies' TLS stacks cost).
pub(super) async fn tls_handshakes(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    secs: f64,
) -> f64 {
    per_second(secs, move || {
        let tls = tls.clone();
        async move {
            let Ok(tcp) = tokio::net::TcpStream::connect(addr).await else {
                return false;
            };
            let Ok(name) = rustls_pki_types::ServerName::try_from("localhost") else {
                return false;
            };
            match tokio_rustls::TlsConnector::from(tls)
                .connect(name, tcp)
                .await
            {
                Ok(mut s) => {
                    tokio::io::AsyncWriteExt::shutdown(&mut s).await.ok();
                    true
                }
                Err(_) => false,
            }
        }
    })
    .await
}

/// TLS + the WebSocket upgrade, which includes the proxy's upstream handshake with the broker.
pub(super) async fn handshakes_on(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    secs: f64,
    path: &'static str,
) -> f64 {
    per_second(secs, move || {
        let tls = tls.clone();
        async move {
            match client::open_path(addr, tls, path).await {
                Ok(mut ws) => {
                    ws.close(None).await.ok();
                    true
                }
                Err(_) => false,
            }
        }
    })
    .await
}

/// Connections opening at once in the crowd: a broker restart or a morning peak, when every
/// Mini Program reconnects.
pub(super) const IN_FLIGHT: usize = 200;

/// One crowd: `n` connections (TCP, TLS, WebSocket upgrade, MQTT CONNECT/CONNACK), at most
/// [`IN_FLIGHT`] opening at a time, then held idle.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Crowd {
    /// Connections completed per second, from the first attempt to the last CONNACK.
    pub per_s: f64,
    /// One connection's time from its TCP connect to its CONNACK.
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// The proxy's resident memory growth per held connection.
    pub kib: f64,
    /// CPU time per connection set up: the proxy's and mosquitto's.
    pub cpu_us: f64,
    pub broker_us: f64,
    pub failed: usize,
    /// Median and 99th percentile time of each step: TCP connect, TLS, WebSocket upgrade,
    /// MQTT CONNECT/CONNACK.
    pub steps_ms: [f64; 4],
    pub steps_p99_ms: [f64; 4],
}

/// The median of each measure over rounds.
pub(super) fn median_crowd(runs: &[Crowd]) -> Crowd {
    let m = |f: fn(&Crowd) -> f64| median(runs.iter().map(f));
    Crowd {
        per_s: m(|r| r.per_s),
        p50_ms: m(|r| r.p50_ms),
        p99_ms: m(|r| r.p99_ms),
        kib: m(|r| r.kib),
        cpu_us: m(|r| r.cpu_us),
        broker_us: m(|r| r.broker_us),
        failed: runs.iter().map(|r| r.failed).max().unwrap_or(0),
        steps_ms: std::array::from_fn(|k| median(runs.iter().map(|r| r.steps_ms[k]))),
        steps_p99_ms: std::array::from_fn(|k| median(runs.iter().map(|r| r.steps_p99_ms[k]))),
    }
}

/// Opens a crowd of `n` against `t` (in front of the mosquitto `broker`), measures it, and
/// closes it again.
pub(super) async fn crowd(
    t: &Target,
    broker: u32,
    tls: Arc<rustls::ClientConfig>,
    n: usize,
) -> anyhow::Result<Crowd> {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_before = rss_kib(t.pid);
    let cpu_before = (cpu_secs(t.pid), cpu_secs(broker));
    let sem = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        let (tls, sem, addr, path) = (tls.clone(), sem.clone(), t.addr, t.path);
        set.spawn(async move {
            let _permit = sem.acquire_owned().await.map_err(|e| e.to_string())?;
            let id = format!("crowd-{i}");
            tokio::time::timeout(Duration::from_secs(30), open_timed(addr, tls, &id, path))
                .await
                .unwrap_or_else(|_| Err("not connected within 30 s".to_owned()))
        });
    }
    let mut held = Vec::with_capacity(n);
    let mut lat = Vec::with_capacity(n);
    let mut steps: [Vec<f64>; 4] = Default::default();
    let mut first_error = None;
    while let Some(r) = set.join_next().await {
        match r.context("crowd task")? {
            Ok((ws, d)) => {
                held.push(ws);
                lat.push(d.iter().sum::<f64>());
                for (v, x) in steps.iter_mut().zip(d) {
                    v.push(x);
                }
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu_after = (cpu_secs(t.pid), cpu_secs(broker));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_after = rss_kib(t.pid);
    let failed = n - held.len();
    if let Some(e) = &first_error {
        eprintln!(
            "{}: {failed} of {n} connections failed, the first: {e}",
            t.name
        );
    }
    let opened = held.len();
    drop(held);
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    let per_conn = |s: f64| {
        if opened > 0 {
            s * 1e6 / opened as f64
        } else {
            f64::NAN
        }
    };
    let p99 = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(((v.len() as f64 - 1.0) * 0.99).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    Ok(Crowd {
        steps_p99_ms: steps.clone().map(p99),
        steps_ms: steps.map(median),
        per_s: opened as f64 / secs,
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
        kib: rss_after.saturating_sub(rss_before) as f64 / opened.max(1) as f64,
        cpu_us: per_conn(cpu_after.0 - cpu_before.0),
        broker_us: if t.pid == broker {
            f64::NAN
        } else {
            per_conn(cpu_after.1 - cpu_before.1)
        },
        failed,
    })
}

/// Opens one connection step by step; the milliseconds of each step (TCP connect, TLS,
/// WebSocket upgrade, MQTT CONNECT/CONNACK).
async fn open_timed(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    id: &str,
    path: &str,
) -> Result<(client::Wss, [f64; 4]), String> {
    let mut t = Instant::now();
    let mut lap = move || {
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        t = Instant::now();
        ms
    };
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let connected = lap();
    let tls = client::tls_over(tcp, tls)
        .await
        .map_err(|e| e.to_string())?;
    let handshaken = lap();
    let mut ws = client::upgrade(tls, path, addr.port())
        .await
        .map_err(|e| e.to_string())?;
    let upgraded = lap();
    client::mqtt_connect(&mut ws, id).await?;
    Ok((ws, [connected, handshaken, upgraded, lap()]))
}

/// Telemetry into mosquitto's MQTT port while a crowd connects: 200 small QoS 0 messages a
/// second from one device, as a live deployment has. mosquitto 2.0.11 serves its WebSocket
/// listener once per pass of its main loop, which an idle broker makes only every 100 ms; without
/// traffic the crowd's `ws://` numbers measure that tick and whatever else wakes the loop, not
/// the proxies (docs/DECISIONS.md). Ends when dropped.
pub(super) struct Telemetry(tokio::task::JoinHandle<()>);

impl Telemetry {
    pub async fn start(port: u16) -> anyhow::Result<Self> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        tcp.set_nodelay(true).ok();
        tcp.write_all(&client::connect("bench-telemetry", 60))
            .await?;
        let mut connack = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(5), tcp.read_exact(&mut connack))
            .await
            .context("no CONNACK from mosquitto within 5 s")??;
        let task = tokio::spawn(async move {
            let (mut rd, mut wr) = tcp.into_split();
            // Nothing comes back at QoS 0 with no subscription; read so the socket drains.
            let drain = tokio::spawn(async move {
                let mut sink = [0u8; 256];
                while matches!(rd.read(&mut sink).await, Ok(n) if n > 0) {}
            });
            let mut tick = tokio::time::interval(Duration::from_millis(5));
            let packet = client::publish("bench/telemetry", 0, 0, b"{\"t\":21.5}");
            loop {
                tick.tick().await;
                if wr.write_all(&packet).await.is_err() {
                    break;
                }
            }
            drain.abort();
        });
        Ok(Telemetry(task))
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.0.abort();
    }
}
