//! `mpbridge bench broker`: the embedded broker (its own `mpbridge broker` process, as the
//! sandbox runs it) against mosquitto on the same machine, same load, in one run:
//! round-trip throughput and latency over plain MQTT/TCP, then a fleet of simulated ESP8266
//! devices on each broker with the broker's memory and CPU.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::procs::{
    cpu_secs, free_port, quantile_ms, record_latency, require_mosquitto, rss_kib, spawn_mosquitto,
    wait_listening,
};
use crate::mqtt::wire::{Reader, connect, puback, publish, subscribe};
use crate::sandbox::broker::{BrokerOptions, EmbeddedBroker};

/// Messages in flight per client (closed loop).
const DEPTH: usize = 8;

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub secs: f64,
    pub rounds: usize,
    pub qos: Vec<u8>,
    pub sizes: Vec<usize>,
    pub clients: Vec<usize>,
    /// Simulated devices for the fleet part (0: skip it).
    pub devices: usize,
    /// How long the fleet is measured once connected.
    pub device_secs: f64,
}

struct Target {
    name: &'static str,
    addr: SocketAddr,
    pid: u32,
}

#[derive(Debug, Clone, Copy)]
struct Run {
    msgs_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    cpu_us: f64,
}

pub async fn run(opts: BenchOptions) -> anyhow::Result<()> {
    require_mosquitto()?;
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let conf = dir.path().join("mosquitto.conf");
    // mosquitto's defaults, with Nagle off as the embedded broker has it.
    std::fs::write(
        &conf,
        format!(
            "per_listener_settings false\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\nlog_dest none\nlistener {port} 127.0.0.1\n"
        ),
    )?;
    let mosq = spawn_mosquitto(&conf)?;
    wait_listening(port, "mosquitto")?;
    // The embedded broker as the sandbox runs it: its own process, with a store on disk.
    let embedded = EmbeddedBroker::start(BrokerOptions {
        store: Some(dir.path().join("broker")),
        ws: false,
        program: None,
    })
    .await
    .context("the embedded broker")?;
    let targets = [
        Target {
            name: "embedded",
            addr: embedded.tcp_addr(),
            pid: embedded.health().borrow().pid.unwrap_or(0),
        },
        Target {
            name: mosq.name,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            pid: mosq.child.id(),
        },
    ];
    let version = super::procs::mosquitto_version();
    println!(
        "embedded = mpbridge broker (rmqtt, pid {}) · reference = {version} (pid {})",
        targets[0].pid, targets[1].pid
    );
    println!(
        "rss at start: embedded {:.1} MiB, mosquitto {:.1} MiB",
        rss_kib(targets[0].pid) as f64 / 1024.0,
        rss_kib(targets[1].pid) as f64 / 1024.0
    );

    println!(
        "\n## round trips over MQTT/TCP: each client publishes to its own topic and receives it back, {DEPTH} in flight, {:.0} s × {} rounds, medians\n",
        opts.secs, opts.rounds
    );
    println!(
        "| clients | QoS | bytes | embedded msg/s | mosquitto msg/s | ratio | embedded p50/p99 ms | mosquitto p50/p99 ms | p99 ratio | cpu µs/msg e/m |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut ratios = Vec::new();
    let mut p99_ratios = Vec::new();
    for &clients in &opts.clients {
        for &qos in &opts.qos {
            for &size in &opts.sizes {
                let mut runs: [Vec<Run>; 2] = [Vec::new(), Vec::new()];
                for round in 0..opts.rounds {
                    // Take turns, starting with a different target each round.
                    for k in 0..2 {
                        let i = (k + round) % 2;
                        let t = &targets[i];
                        runs[i].push(
                            round_trips(t.addr, t.pid, clients, qos, size, opts.secs)
                                .await
                                .with_context(|| format!("{} {clients}×QoS{qos}×{size}", t.name))?,
                        );
                    }
                }
                let e = median(&runs[0]);
                let m = median(&runs[1]);
                ratios.push(e.msgs_per_s / m.msgs_per_s);
                p99_ratios.push(e.p99_ms / m.p99_ms);
                println!(
                    "| {clients} | {qos} | {size} | {:.0} | {:.0} | {:.2}× | {:.2} / {:.2} | {:.2} / {:.2} | {:.2}× | {:.1} / {:.1} |",
                    e.msgs_per_s,
                    m.msgs_per_s,
                    e.msgs_per_s / m.msgs_per_s,
                    e.p50_ms,
                    e.p99_ms,
                    m.p50_ms,
                    m.p99_ms,
                    e.p99_ms / m.p99_ms,
                    e.cpu_us,
                    m.cpu_us
                );
            }
        }
    }

    let mut fleet_lines = Vec::new();
    if opts.devices > 0 {
        println!(
            "\n## {} simulated ESP8266 devices (telemetry every second, QoS 0; a subscriber to all of them), measured for {:.0} s once all are online\n",
            opts.devices, opts.device_secs
        );
        println!(
            "| broker | devices online | telemetry received/s | RSS MiB | CPU % of one core |"
        );
        println!("|---|---|---|---|---|");
        for t in &targets {
            let f = fleet(t, opts.devices, opts.device_secs).await?;
            println!(
                "| {} | {} | {:.0} | {:.1} | {:.1} |",
                t.name, f.online, f.received_per_s, f.rss_mib, f.cpu_percent
            );
            fleet_lines.push(f);
        }
    }

    println!(
        "\nbench: embedded/mosquitto throughput geomean {:.2}× (min {:.2}×), p99 geomean {:.2}× (lower is better){}",
        geomean(&ratios),
        ratios.iter().copied().fold(f64::INFINITY, f64::min),
        geomean(&p99_ratios),
        match fleet_lines.as_slice() {
            [e, m] => format!(
                "; {} devices: RSS {:.1} vs {:.1} MiB, CPU {:.1} % vs {:.1} %",
                opts.devices, e.rss_mib, m.rss_mib, e.cpu_percent, m.cpu_percent
            ),
            _ => String::new(),
        }
    );
    embedded.stop().await;
    drop(mosq);
    Ok(())
}

fn median(runs: &[Run]) -> Run {
    let pick = |f: fn(&Run) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    Run {
        msgs_per_s: pick(|r| r.msgs_per_s),
        p50_ms: pick(|r| r.p50_ms),
        p99_ms: pick(|r| r.p99_ms),
        cpu_us: pick(|r| r.cpu_us),
    }
}

fn geomean(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    (v.iter().map(|x| x.ln()).sum::<f64>() / v.len() as f64).exp()
}

/// Reads packets until one of type `kind` (high nibble) arrives.
async fn until(s: &mut TcpStream, rd: &mut Reader, kind: u8) -> anyhow::Result<()> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        while let Some((first, _)) = rd.next_packet() {
            if first >> 4 == kind {
                return Ok(());
            }
        }
        let n = s.read(&mut buf).await?;
        if n == 0 {
            bail!("closed while waiting for packet type {kind}");
        }
        rd.push(&buf[..n]);
    }
}

async fn round_trips(
    addr: SocketAddr,
    pid: u32,
    clients: usize,
    qos: u8,
    size: usize,
    secs: f64,
) -> anyhow::Result<Run> {
    let epoch = Instant::now();
    let measure_from = epoch + Duration::from_secs(1);
    let deadline = measure_from + Duration::from_secs_f64(secs);
    let cpu = tokio::spawn(async move {
        tokio::time::sleep_until(measure_from.into()).await;
        let a = tokio::task::spawn_blocking(move || cpu_secs(pid))
            .await
            .unwrap_or(0.0);
        tokio::time::sleep_until(deadline.into()).await;
        let b = tokio::task::spawn_blocking(move || cpu_secs(pid))
            .await
            .unwrap_or(0.0);
        b - a
    });
    let mut tasks = Vec::new();
    for i in 0..clients {
        tasks.push(tokio::spawn(async move {
            let id = format!("bench-{i}-{:08x}", rand::random::<u32>());
            let topic = format!("bench/{id}");
            let mut s = TcpStream::connect(addr).await?;
            s.set_nodelay(true)?;
            let mut rd = Reader::default();
            s.write_all(&connect(&id, 60)).await?;
            until(&mut s, &mut rd, 2).await?;
            s.write_all(&subscribe(1, &topic, qos)).await?;
            until(&mut s, &mut rd, 9).await?;
            let (mut rx, mut tx) = s.into_split();
            let mut lat: Vec<u32> = Vec::with_capacity(65_536);
            let mut received = 0u64;
            let mut outstanding = 0usize;
            let mut next_id: u16 = 1;
            let mut payload = vec![0u8; size.max(8)];
            let mut buf = vec![0u8; 64 * 1024];
            let mut out = Vec::with_capacity(64 * 1024);
            while Instant::now() < deadline {
                out.clear();
                while outstanding < DEPTH {
                    let now = epoch.elapsed().as_nanos() as u64;
                    payload[..8].copy_from_slice(&now.to_be_bytes());
                    next_id = next_id.wrapping_add(1).max(1);
                    out.extend(publish(&topic, qos, next_id, &payload));
                    outstanding += 1;
                }
                if !out.is_empty() {
                    tx.write_all(&out).await?;
                }
                let n = match tokio::time::timeout_at(deadline.into(), rx.read(&mut buf)).await {
                    Ok(Ok(0)) => bail!("connection closed"),
                    Ok(r) => r?,
                    Err(_) => break,
                };
                rd.push(&buf[..n]);
                out.clear();
                while let Some((first, body)) = rd.next_packet() {
                    if first >> 4 != 3 {
                        continue; // PUBACK for our own publish
                    }
                    let tl = usize::from(u16::from_be_bytes([body[0], body[1]]));
                    let mut off = 2 + tl;
                    if (first >> 1) & 3 > 0 {
                        let pkid = u16::from_be_bytes([body[off], body[off + 1]]);
                        off += 2;
                        out.extend(puback(pkid));
                    }
                    outstanding = outstanding.saturating_sub(1);
                    if Instant::now() >= measure_from {
                        received += 1;
                        record_latency(&body[off..], epoch, &mut lat);
                    }
                }
                if !out.is_empty() {
                    tx.write_all(&out).await?;
                }
            }
            tx.write_all(&[0xe0, 0]).await.ok();
            Ok::<_, anyhow::Error>((received, lat))
        }));
    }
    let mut total = 0u64;
    let mut lat: Vec<u32> = Vec::new();
    for t in tasks {
        let (n, l) = t.await.context("client task")??;
        total += n;
        lat.extend(l);
    }
    lat.sort_unstable();
    let pct = |p: f64| quantile_ms(&lat, p);
    let cpu = cpu.await.unwrap_or(f64::NAN);
    Ok(Run {
        msgs_per_s: total as f64 / secs,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        cpu_us: if total > 0 {
            cpu * 1e6 / total as f64
        } else {
            f64::NAN
        },
    })
}

struct Fleet {
    online: usize,
    received_per_s: f64,
    rss_mib: f64,
    cpu_percent: f64,
}

/// `devices` simulated ESP8266s (the console's simulator, PubSubClient behaviour) on one
/// broker, and one subscriber to all their topics.
async fn fleet(t: &Target, devices: usize, secs: f64) -> anyhow::Result<Fleet> {
    use crate::devices::sim::{self, SimOptions};
    let cancel = CancellationToken::new();
    let received = Arc::new(AtomicU64::new(0));
    let online = Arc::new(AtomicU64::new(0));
    // The subscriber counts telemetry and `online` announcements.
    let sub = {
        let (received, online, addr, cancel) =
            (received.clone(), online.clone(), t.addr, cancel.clone());
        tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await?;
            let mut rd = Reader::default();
            s.write_all(&connect("bench-fleet-watch", 60)).await?;
            until(&mut s, &mut rd, 2).await?;
            s.write_all(&subscribe(1, "bench-fleet/#", 0)).await?;
            until(&mut s, &mut rd, 9).await?;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = tokio::select! {
                    () = cancel.cancelled() => return Ok::<_, anyhow::Error>(()),
                    n = s.read(&mut buf) => n?,
                };
                if n == 0 {
                    bail!("the broker closed the fleet subscriber");
                }
                rd.push(&buf[..n]);
                while let Some((first, body)) = rd.next_packet() {
                    if first >> 4 != 3 || body.len() < 2 {
                        continue;
                    }
                    let tl = usize::from(u16::from_be_bytes([body[0], body[1]]));
                    let topic = body.get(2..2 + tl).unwrap_or_default();
                    if topic.ends_with(b"/telemetry") {
                        received.fetch_add(1, Ordering::Relaxed);
                    } else if topic.ends_with(b"/status")
                        && body.get(2 + tl..).is_some_and(|p| p.starts_with(b"online"))
                    {
                        online.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut base = SimOptions::demo("", t.addr);
    base.prefix = "bench-fleet".into();
    base.start_jitter = Duration::from_millis((devices as u64 * 5).min(5_000));
    sim::spawn_fleet(
        &tokio::runtime::Handle::current(),
        &base,
        &format!("fleet-{}", t.name),
        devices,
        &cancel,
    );
    let ramp = Instant::now();
    while (online.load(Ordering::Relaxed) as usize) < devices
        && ramp.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pid = t.pid;
    let cpu0 = tokio::task::spawn_blocking(move || cpu_secs(pid)).await?;
    let got0 = received.load(Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    let cpu1 = tokio::task::spawn_blocking(move || cpu_secs(pid)).await?;
    let got1 = received.load(Ordering::Relaxed);
    let wall = start.elapsed().as_secs_f64();
    let rss = tokio::task::spawn_blocking(move || rss_kib(pid)).await?;
    cancel.cancel();
    tokio::time::sleep(Duration::from_millis(800)).await;
    if sub.is_finished() {
        sub.await??;
    } else {
        sub.abort();
    }
    Ok(Fleet {
        online: online.load(Ordering::Relaxed) as usize,
        received_per_s: (got1 - got0) as f64 / wall,
        rss_mib: rss as f64 / 1024.0,
        cpu_percent: (cpu1 - cpu0) / wall * 100.0,
    })
}
