//! `mpbridge bench relay`: mosquitto behind the mpbridge relay, behind nginx (the seed's
//! reverse proxy config) and mosquitto's own WSS listener (direct), driven with the same
//! load in one run; prints a table with the relay / nginx ratios.
//!
//! Load model: each client subscribes to its own topic and keeps `DEPTH` publishes in
//! flight to it, so every message crosses the proxy twice (in and out) and latency is the
//! publish → delivery time. Nothing is dropped, so msg/s is comparable across targets.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use super::client;
use super::procs::{
    Proc, cpu_secs, free_port, program, require_mosquitto, rss_kib, wait_listening,
};

/// Publishes in flight per client.
const DEPTH: usize = 8;

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub secs: f64,
    pub idle: Vec<usize>,
    pub with_nginx: bool,
    /// Parts to run (`throughput`, `handshakes`, `idle`); empty: all.
    pub only: Vec<String>,
    /// Rounds of each throughput scenario; the targets take turns and the medians are shown.
    pub rounds: usize,
    /// Relay worker processes (`relay --workers`), per route.
    pub workers: u16,
    /// Targets to run (`relay-ws`, `relay-tcp`, `nginx`, `direct`); empty: all.
    pub targets: Vec<String>,
    /// Throughput scenarios: QoS levels, payload sizes, client counts.
    pub qos: Vec<u8>,
    pub sizes: Vec<usize>,
    pub clients: Vec<usize>,
}

impl BenchOptions {
    fn part(&self, name: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| o == name)
    }

    fn wants(&self, target: &str) -> bool {
        self.targets.is_empty() || self.targets.iter().any(|t| t == target)
    }
}

struct Pki {
    ca: PathBuf,
    chain: PathBuf,
    key: PathBuf,
}

fn make_pki(dir: &Path) -> anyhow::Result<Pki> {
    use rcgen::{CertificateParams, KeyPair};
    let (ca, issuer) = super::procs::test_ca(dir, "mpbridge bench CA")?;
    let key = KeyPair::generate()?;
    let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?
        .signed_by(&key, &issuer)?;
    let p = Pki {
        ca,
        chain: dir.join("chain.pem"),
        key: dir.join("key.pem"),
    };
    std::fs::write(&p.chain, leaf.pem())?;
    std::fs::write(&p.key, key.serialize_pem())?;
    Ok(p)
}

struct Target {
    name: &'static str,
    /// Its name for `--targets`.
    key: &'static str,
    addr: SocketAddr,
    /// The WebSocket path (the relay has one route per upstream kind).
    path: &'static str,
    /// The process whose memory counts for this target.
    pid: u32,
}

#[derive(Debug, Clone, Copy, Default)]
struct Run {
    msgs_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// CPU time the measured process (the proxy; mosquitto for direct) spent per delivered
    /// message, in microseconds.
    cpu_us: f64,
    /// CPU time mosquitto spent per delivered message behind this proxy, in microseconds.
    broker_us: f64,
}

/// The median of each measure over rounds (each taken on its own).
fn median_run(runs: &[Run]) -> Run {
    let median = |f: fn(&Run) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(f).filter(|x| x.is_finite()).collect();
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    };
    Run {
        msgs_per_s: median(|r| r.msgs_per_s),
        p50_ms: median(|r| r.p50_ms),
        p99_ms: median(|r| r.p99_ms),
        cpu_us: median(|r| r.cpu_us),
        broker_us: median(|r| r.broker_us),
    }
}

#[allow(clippy::too_many_arguments)]
async fn throughput(
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
                        let mut ts = [0u8; 8];
                        ts.copy_from_slice(&body[off..off + 8]);
                        let sent = u64::from_be_bytes(ts);
                        let now = epoch.elapsed().as_nanos() as u64;
                        received += 1;
                        if lat.len() < 200_000 {
                            lat.push(((now.saturating_sub(sent)) / 1000) as u32);
                        }
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
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        let i = ((lat.len() as f64 - 1.0) * p).round() as usize;
        f64::from(lat[i.min(lat.len() - 1)]) / 1000.0
    };
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
async fn tls_handshakes(addr: SocketAddr, tls: Arc<rustls::ClientConfig>, secs: f64) -> f64 {
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
async fn handshakes_on(
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

/// Opens `n` idle MQTT connections and returns the target's memory growth per connection (KiB).
async fn idle_memory(t: &Target, tls: Arc<rustls::ClientConfig>, n: usize) -> anyhow::Result<f64> {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib(t.pid);
    let sem = Arc::new(tokio::sync::Semaphore::new(64));
    let mut tasks = Vec::new();
    for i in 0..n {
        let tls = tls.clone();
        let sem = sem.clone();
        let (addr, path) = (t.addr, t.path);
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await.map_err(|e| e.to_string())?;
            client::open_mqtt_on(addr, tls, &format!("idle-{i}"), path)
                .await
                .map(|(ws, _)| ws)
        }));
    }
    let mut held = Vec::with_capacity(n);
    for task in tasks {
        held.push(
            task.await
                .context("open task")?
                .map_err(|e| anyhow::anyhow!("{}: idle connection failed: {e}", t.name))?,
        );
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_kib(t.pid);
    for mut ws in held {
        ws.close(None).await.ok();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok((after.saturating_sub(before)) as f64 / n as f64)
}

/// How to start one relay route for the bench (again, with more workers, for the idle part).
struct RelaySpawn {
    dir: PathBuf,
    chain: PathBuf,
    key: PathBuf,
    name: &'static str,
    target_key: &'static str,
    path: &'static str,
    upstream: String,
}

impl RelaySpawn {
    fn start(&self, workers: u16) -> anyhow::Result<(Target, Proc)> {
        let port = free_port()?;
        let conf = self.dir.join(format!("{}-{port}.toml", self.target_key));
        std::fs::write(
            &conf,
            format!(
                "[listen]\naddr = \"127.0.0.1:{port}\"\ncert = \"{}\"\nkey = \"{}\"\n[[route]]\npath = \"{}\"\nupstream = [\"{}\"]\n[limits]\nmax_connections_per_ip = 100000\nmax_connections = 100000\n",
                self.chain.display(),
                self.key.display(),
                self.path,
                self.upstream
            ),
        )?;
        let child = Command::new(std::env::current_exe()?)
            .args(["relay", "--workers", &workers.to_string(), "--config"])
            .arg(&conf)
            .env("MPBRIDGE_LOG", "warn")
            .env("MPBRIDGE_DATA_DIR", self.dir.join("data"))
            .env("MPBRIDGE_CONFIG_DIR", self.dir.join("config"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let target = Target {
            name: self.name,
            key: self.target_key,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            path: self.path,
            pid: child.id(),
        };
        let proc = Proc {
            name: self.name,
            child,
            stop: None,
        };
        wait_listening(port, self.name)?;
        Ok((target, proc))
    }
}

/// This process's hard limit on open descriptors (children inherit it).
fn descriptor_limit() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(4))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(1024)
}

/// Worker processes a relay needs to hold `n` connections: two descriptors each (client and
/// broker) plus some headroom, under the per-process limit.
fn workers_for(n: usize, limit: u64) -> u16 {
    let per_process = limit.saturating_sub(256).max(256);
    let need = (2 * n as u64).div_ceil(per_process);
    u16::try_from(need.max(1)).unwrap_or(u16::MAX)
}

pub async fn run(opts: BenchOptions) -> anyhow::Result<()> {
    require_mosquitto()?;
    let dir = tempfile::tempdir()?;
    let pki = make_pki(dir.path())?;
    let tls = Arc::new(crate::relay::tls::client_config_with_roots(&[&pki.ca])?);
    let mut procs: Vec<Proc> = Vec::new();
    let mut targets = Vec::new();

    // mosquitto: TCP (unused by the load), plain WebSockets for the proxies, WSS direct.
    let (tcp, ws, wss) = (free_port()?, free_port()?, free_port()?);
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "per_listener_settings false\nallow_anonymous true\npersistence false\nmax_queued_messages 100000\nset_tcp_nodelay true\nlog_dest none\nlistener {tcp} 127.0.0.1\nlistener {ws} 127.0.0.1\nprotocol websockets\nsocket_domain ipv4\nlistener {wss} 127.0.0.1\nprotocol websockets\nsocket_domain ipv4\ncertfile {}\nkeyfile {}\n",
            pki.chain.display(),
            pki.key.display()
        ),
    )?;
    let mosq = Command::new(program("mosquitto"))
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let mosq_pid = mosq.id();
    procs.push(Proc {
        name: "mosquitto",
        child: mosq,
        stop: None,
    });
    for p in [tcp, ws, wss] {
        wait_listening(p, "mosquitto")?;
    }

    // The relay, one set of processes per route so each route's memory is measured alone:
    // `--workers` processes (one by default, one event-loop thread each; the idle-memory
    // part starts more when one process cannot hold the descriptors). The tcp:// route turns WebSocket frames into mosquitto's
    // native MQTT stream, a translation nginx cannot do (its stream module has no WebSocket,
    // its http module no raw upstream).
    let routes = [
        (
            "mpbridge ws",
            "relay-ws",
            "/mqtt",
            format!("ws://127.0.0.1:{ws}/mqtt"),
        ),
        (
            "mpbridge tcp",
            "relay-tcp",
            "/mqtt-tcp",
            format!("tcp://127.0.0.1:{tcp}"),
        ),
    ];
    let mut spawns = Vec::new();
    for (name, key, path, upstream) in &routes {
        if !opts.wants(key) {
            continue;
        }
        let spawn = RelaySpawn {
            dir: dir.path().to_owned(),
            chain: pki.chain.clone(),
            key: pki.key.clone(),
            name,
            target_key: key,
            path,
            upstream: upstream.clone(),
        };
        let (target, proc) = spawn.start(opts.workers.max(1))?;
        targets.push(target);
        procs.push(proc);
        spawns.push(spawn);
    }

    // nginx with the seed's reverse-proxy configuration.
    let has_nginx = opts.with_nginx
        && opts.wants("nginx")
        && Command::new(program("nginx"))
            .arg("-v")
            .stderr(Stdio::null())
            .status()
            .is_ok();
    if has_nginx {
        let port = free_port()?;
        let nconf = dir.path().join("nginx.conf");
        std::fs::create_dir_all(dir.path().join("logs"))?;
        std::fs::write(
            &nconf,
            format!(
                "daemon off;\nuser root;\nworker_processes auto;\nworker_rlimit_nofile 20000;\npid {d}/nginx.pid;\nerror_log {d}/logs/error.log;\nevents {{ worker_connections 20000; }}\nhttp {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  server {{\n    listen 127.0.0.1:{port} ssl;\n    ssl_certificate {c};\n    ssl_certificate_key {k};\n    ssl_protocols TLSv1.2 TLSv1.3;\n    location /mqtt {{\n      proxy_pass http://127.0.0.1:{ws}/mqtt;\n      proxy_http_version 1.1;\n      proxy_set_header Upgrade $http_upgrade;\n      proxy_set_header Connection \"upgrade\";\n      proxy_set_header Host $host;\n      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n      proxy_read_timeout 300s;\n      proxy_send_timeout 300s;\n    }}\n  }}\n}}\n",
                d = dir.path().display(),
                c = pki.chain.display(),
                k = pki.key.display()
            ),
        )?;
        let child = Command::new(program("nginx"))
            .args(["-c"])
            .arg(&nconf)
            .arg("-p")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        targets.push(Target {
            name: "nginx",
            key: "nginx",
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            path: "/mqtt",
            pid: child.id(),
        });
        let mut stop = Command::new(program("nginx"));
        stop.arg("-c")
            .arg(&nconf)
            .arg("-p")
            .arg(dir.path())
            .args(["-s", "stop"]);
        procs.push(Proc {
            name: "nginx",
            child,
            stop: Some(stop),
        });
        wait_listening(port, "nginx")?;
    }
    if opts.wants("direct") {
        targets.push(Target {
            name: "direct",
            key: "direct",
            addr: SocketAddr::from(([127, 0, 0, 1], wss)),
            path: "/mqtt",
            pid: mosq_pid,
        });
    }
    if targets.is_empty() {
        bail!("no target left to measure (--targets relay-ws,relay-tcp,nginx,direct)");
    }

    let mosq_version = super::procs::mosquitto_version();
    println!(
        "mpbridge bench relay — {} cores · {} · nginx {} · {:.0} s per measurement",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        mosq_version.trim(),
        if has_nginx {
            "worker_processes auto"
        } else {
            "not installed"
        },
        opts.secs
    );
    println!(
        "targets: mpbridge relay ({} worker processes per route) with a ws:// upstream (mosquitto's WebSocket listener) and with a tcp:// upstream (its MQTT port) · nginx (seed config) · direct = mosquitto's own WSS listener",
        opts.workers
    );
    println!(
        "load: each client keeps {DEPTH} publishes in flight to its own subscription (every message crosses the proxy twice)\n"
    );

    let ratio = |a: f64, b: f64| {
        if b > 0.0 && a.is_finite() && b.is_finite() {
            format!("{:.2}×", a / b)
        } else {
            "—".to_owned()
        }
    };
    let nginx = targets.iter().position(|t| t.key == "nginx");
    let relays: Vec<usize> = (0..targets.len())
        .filter(|&i| targets[i].key.starts_with("relay-"))
        .collect();
    // Each relay route against nginx: "<route>/nginx a b …", one ratio per measure.
    let versus = |measures: &[&dyn Fn(usize) -> f64]| -> String {
        match nginx {
            Some(n) if !relays.is_empty() => relays
                .iter()
                .map(|&r| {
                    let ratios: Vec<String> = measures.iter().map(|m| ratio(m(r), m(n))).collect();
                    format!(
                        "{}/nginx {}",
                        targets[r].key.trim_start_matches("relay-"),
                        ratios.join(" ")
                    )
                })
                .collect::<Vec<_>>()
                .join(" · "),
            _ => "—".into(),
        }
    };

    // Memory first, in processes that have carried no load yet (allocators keep what a
    // heavy run freed, which would flatter whoever is measured later).
    let mut idle_rows = Vec::new();
    let limit = descriptor_limit();
    for &n in opts.idle.iter().filter(|_| opts.part("idle")) {
        let mut kib = Vec::new();
        for t in &targets {
            // A relay route with too few processes for n connections' descriptors is
            // measured in a fresh set with enough of them (nginx runs one per core here).
            let need = workers_for(n, limit);
            let spawn = spawns.iter().find(|r| r.target_key == t.key);
            match spawn {
                Some(spawn) if need > opts.workers => {
                    let (extra, _proc) = spawn.start(need)?;
                    kib.push(idle_memory(&extra, tls.clone(), n).await?);
                }
                _ => kib.push(idle_memory(t, tls.clone(), n).await?),
            }
        }
        idle_rows.push((n, kib));
    }
    let mut hs_rows = Vec::new();
    if opts.part("handshakes") {
        let mut tls_hs = Vec::new();
        let mut upgrades = Vec::new();
        for t in &targets {
            tls_hs.push(tls_handshakes(t.addr, tls.clone(), opts.secs).await);
            upgrades.push(handshakes_on(t.addr, tls.clone(), opts.secs, t.path).await);
        }
        hs_rows.push(("TLS handshakes/s", tls_hs));
        hs_rows.push(("TLS+WS upgrade/s", upgrades));
    }

    let rounds = opts.rounds.max(1);
    let header: Vec<String> = targets
        .iter()
        .map(|t| format!("{} msg/s p50/p99 cpu+broker", t.name))
        .collect();
    println!(
        "{:<24} {}   relay route/nginx: msg/s p99 cpu (median of {rounds} rounds, targets taking turns)",
        "scenario",
        header
            .iter()
            .map(|h| format!("{h:>40}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    for &qos in opts.qos.iter().filter(|_| opts.part("throughput")) {
        for &size in &opts.sizes {
            for &clients in &opts.clients {
                let mut all: Vec<Vec<Run>> = vec![Vec::new(); targets.len()];
                for round in 0..rounds {
                    // A different target goes first each round.
                    for k in 0..targets.len() {
                        let i = (k + round) % targets.len();
                        let t = &targets[i];
                        let r = throughput(
                            t.addr,
                            t.path,
                            (t.pid, mosq_pid),
                            tls.clone(),
                            clients,
                            qos,
                            size,
                            opts.secs,
                        )
                        .await
                        .with_context(|| {
                            format!("{} qos{qos} {size}B {clients} clients", t.name)
                        })?;
                        all[i].push(r);
                    }
                }
                let runs: Vec<Run> = all.iter().map(|v| median_run(v)).collect();
                let cell = |r: &Run| {
                    format!(
                        "{:>10.0} {:>7.2}/{:<7.2} {:>4.1}+{:<4.1}µs",
                        r.msgs_per_s, r.p50_ms, r.p99_ms, r.cpu_us, r.broker_us
                    )
                };
                let label = format!("qos{qos} {size}B {clients} clients");
                let rel = versus(&[&|i| runs[i].msgs_per_s, &|i| runs[i].p99_ms, &|i| {
                    runs[i].cpu_us
                }]);
                println!(
                    "{:<24} {}   {rel}",
                    label,
                    runs.iter()
                        .map(|r| format!("{:>40}", cell(r)))
                        .collect::<Vec<_>>()
                        .join(" ")
                );
            }
        }
    }
    let row = |label: &str, values: &[f64], digits: usize| {
        let rel = versus(&[&|i| values[i]]);
        println!(
            "{:<24} {}   {}",
            label,
            values
                .iter()
                .map(|v| format!("{:>40}", format!("{v:.digits$}")))
                .collect::<Vec<_>>()
                .join(" "),
            rel
        );
    };
    if !hs_rows.is_empty() {
        println!();
    }
    for (label, v) in &hs_rows {
        row(label, v, 0);
    }
    for (n, kib) in &idle_rows {
        row(&format!("RSS KiB/idle conn @{n}"), kib, 1);
    }
    println!(
        "\n(ratios are relay route/nginx: msg/s and handshakes above 1.00× are better; p99, cpu and memory below 1.00× are better;\n cpu = CPU time of the proxy's processes per delivered message, mosquitto's own for direct;\n broker = mosquitto's CPU time per delivered message behind that proxy, — for direct)"
    );
    for p in &procs {
        tracing::debug!("stopping {}", p.name);
    }
    Ok(())
}
