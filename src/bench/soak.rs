//! `mpbridge bench soak`: a working day compressed, with faults, and the figures that say
//! nothing leaked and nothing was lost.
//!
//! The relay part runs the relay (its default limits, the `ws://` route) in front of a real
//! mosquitto and, for the whole run: holds `connections` live MQTT sessions (each reconnects
//! when dropped, pings every 100 s), connects and disconnects `churn` sessions a second, sends
//! QoS 1 traffic with sequence numbers over persistent sessions, rewrites the certificate every
//! `reload_every` seconds (the relay notices the files and reloads; the next handshake must
//! serve the new leaf) and stops and restarts mosquitto every `restart_every` seconds (SIGTERM,
//! as a service manager does; mosquitto keeps sessions on disk). Clients come from 50 loopback
//! addresses, so the default per-address limit applies as it would behind real networks.
//!
//! The console part ([`super::soak_console`]) runs the console headless on its sandbox with a
//! fleet of simulated devices.
//!
//! Invariants (what `cargo test` asserts on a short run): relay memory and descriptors flat
//! within 10 % between start and end; no TLS handshake fails; no session is refused except
//! while the upstream is down; every reload is served; no QoS 1 message is lost.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::Message;

use super::client::{self, Step};
use super::procs::{Proc, fds, free_port, program, require_mosquitto, rss_kib, wait_listening};

#[derive(Debug, Clone)]
pub struct SoakOptions {
    pub secs: f64,
    /// `relay`, `console`; empty: both.
    pub parts: Vec<String>,
    pub connections: usize,
    pub churn: f64,
    pub reload_every: f64,
    pub restart_every: f64,
    /// QoS 1 clients and the messages each sends a second.
    pub traffic: usize,
    pub rate: f64,
    /// Simulated devices for the console part, and its store bounds.
    pub devices: usize,
    pub store: crate::config::StoreBounds,
    /// Print one JSON object instead of the tables.
    pub json: bool,
}

impl SoakOptions {
    fn part(&self, name: &str) -> bool {
        self.parts.is_empty() || self.parts.iter().any(|p| p == name)
    }
}

/// What the relay part measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RelaySoak {
    pub secs: f64,
    pub connections: usize,
    pub live_start: usize,
    pub live_end: usize,
    pub rss_start_kib: u64,
    pub rss_end_kib: u64,
    pub rss_max_kib: u64,
    pub fds_start: u64,
    pub fds_end: u64,
    pub churn_attempted: u64,
    pub churn_done: u64,
    /// Opens left out because too many were already under way.
    pub churn_skipped: u64,
    pub tls_failed: u64,
    /// WebSocket upgrades or CONNECTs refused while mosquitto was down (expected).
    pub refused_upstream_down: u64,
    /// Refused while mosquitto was up: a fault.
    pub refused_otherwise: u64,
    pub first_refusal: Option<String>,
    pub reloads_made: u64,
    pub reloads_served: u64,
    pub restarts: u64,
    pub published: u64,
    pub delivered: u64,
    pub duplicates: u64,
    pub sessions_lost: u64,
    pub lost_near_restart: u64,
    pub lost_otherwise: u64,
    pub broker: String,
}

impl RelaySoak {
    /// The broken invariants, one sentence each.
    pub fn violations(&self) -> Vec<String> {
        let mut v = Vec::new();
        let grew = |a: u64, b: u64| b as f64 > a as f64 * 1.10;
        if grew(self.rss_start_kib, self.rss_end_kib) {
            v.push(format!(
                "relay memory grew from {} KiB to {} KiB (more than 10 %)",
                self.rss_start_kib, self.rss_end_kib
            ));
        }
        if grew(self.fds_start, self.fds_end) {
            v.push(format!(
                "relay descriptors grew from {} to {} (more than 10 %)",
                self.fds_start, self.fds_end
            ));
        }
        if self.live_end < self.connections {
            v.push(format!(
                "{} of {} live sessions were up at the end",
                self.live_end, self.connections
            ));
        }
        if self.tls_failed > 0 {
            v.push(format!("{} TLS handshakes failed", self.tls_failed));
        }
        if self.refused_otherwise > 0 {
            v.push(format!(
                "{} sessions were refused while the upstream was up (first: {})",
                self.refused_otherwise,
                self.first_refusal.as_deref().unwrap_or("?")
            ));
        }
        if self.reloads_served < self.reloads_made {
            v.push(format!(
                "{} of {} certificate reloads were served",
                self.reloads_served, self.reloads_made
            ));
        }
        if self.lost_near_restart + self.lost_otherwise > 0 {
            v.push(format!(
                "{} QoS 1 messages lost ({} around upstream restarts)",
                self.lost_near_restart + self.lost_otherwise,
                self.lost_near_restart
            ));
        }
        if self.sessions_lost > 0 {
            v.push(format!(
                "{} persistent sessions were lost across restarts",
                self.sessions_lost
            ));
        }
        if self.published == 0 || self.churn_done == 0 {
            v.push("no traffic or no churn got through".into());
        }
        v
    }
}

/// The whole report, as `--json` prints it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SoakReport {
    pub relay: Option<RelaySoak>,
    pub console: Option<super::soak_console::ConsoleSoak>,
    pub violations: Vec<String>,
}

/// Runs the parts asked for; fails (after printing) when an invariant broke.
pub fn run(opts: SoakOptions, rt: &tokio::runtime::Runtime) -> anyhow::Result<bool> {
    let mut report = SoakReport::default();
    if opts.part("relay") {
        let r = rt.block_on(relay(&opts))?;
        report.violations.extend(r.violations());
        if !opts.json {
            print_relay(&r);
        }
        report.relay = Some(r);
    }
    if opts.part("console") {
        let c = super::soak_console::run(&opts, rt)?;
        report.violations.extend(c.violations());
        if !opts.json {
            super::soak_console::print(&c);
        }
        report.console = Some(c);
    }
    if opts.json {
        println!("{}", serde_json::to_string(&report)?);
    } else if report.violations.is_empty() {
        println!("\nsoak: every invariant held");
    } else {
        println!("\nsoak: {} invariants broken:", report.violations.len());
        for v in &report.violations {
            println!("  - {v}");
        }
    }
    Ok(report.violations.is_empty())
}

fn print_relay(r: &RelaySoak) {
    let pct = |a: u64, b: u64| {
        if a == 0 {
            "—".to_owned()
        } else {
            format!("{:+.1} %", (b as f64 / a as f64 - 1.0) * 100.0)
        }
    };
    println!(
        "relay soak: {:.0} s, {} live sessions through the relay (ws:// route, default limits) to {}",
        r.secs, r.connections, r.broker
    );
    println!("{:<28}{:>12}{:>12}{:>10}", "", "start", "end", "change");
    println!(
        "{:<28}{:>12}{:>12}{:>10}",
        "relay RSS (MiB)",
        format!("{:.1}", r.rss_start_kib as f64 / 1024.0),
        format!("{:.1}", r.rss_end_kib as f64 / 1024.0),
        pct(r.rss_start_kib, r.rss_end_kib)
    );
    println!(
        "{:<28}{:>12}{:>12}{:>10}",
        "relay open descriptors",
        r.fds_start,
        r.fds_end,
        pct(r.fds_start, r.fds_end)
    );
    println!(
        "{:<28}{:>12}{:>12}",
        "live sessions", r.live_start, r.live_end
    );
    println!(
        "relay RSS at most: {:.1} MiB",
        r.rss_max_kib as f64 / 1024.0
    );
    println!(
        "connect + disconnect: {} of {} done ({:.0}/s), {} skipped (too many under way); TLS handshakes failed: {}",
        r.churn_done,
        r.churn_attempted,
        r.churn_done as f64 / r.secs.max(1.0),
        r.churn_skipped,
        r.tls_failed
    );
    println!(
        "sessions refused: {} while mosquitto was down (expected), {} while it was up",
        r.refused_upstream_down, r.refused_otherwise
    );
    println!(
        "certificate reloads: {} made, {} served by the next handshake",
        r.reloads_made, r.reloads_served
    );
    println!(
        "upstream restarts: {} (SIGTERM, mosquitto persistence on)",
        r.restarts
    );
    println!(
        "QoS 1 (persistent sessions): {} published, {} delivered, {} duplicates, {} sessions lost; lost across restarts {}, lost otherwise (reloads, churn) {}",
        r.published,
        r.delivered,
        r.duplicates,
        r.sessions_lost,
        r.lost_near_restart,
        r.lost_otherwise
    );
}

/// The test CA and the relay's certificate files; [`Pki::rotate`] writes a new leaf.
struct Pki {
    ca: PathBuf,
    chain: PathBuf,
    key: PathBuf,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    serial: u64,
}

impl Pki {
    fn new(dir: &Path) -> anyhow::Result<Self> {
        let (ca, issuer) = super::procs::test_ca(dir, "mpbridge soak CA")?;
        let mut pki = Pki {
            ca,
            chain: dir.join("chain.pem"),
            key: dir.join("key.pem"),
            issuer,
            serial: 0,
        };
        pki.rotate()?;
        Ok(pki)
    }

    /// A new leaf and key, each file replaced by rename; returns the leaf's DER.
    fn rotate(&mut self) -> anyhow::Result<Vec<u8>> {
        self.serial += 1;
        let key = rcgen::KeyPair::generate()?;
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
        params.serial_number = Some(self.serial.into());
        let leaf = params.signed_by(&key, &self.issuer)?;
        for (path, text) in [(&self.key, key.serialize_pem()), (&self.chain, leaf.pem())] {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, text)?;
            std::fs::rename(&tmp, path)?;
        }
        Ok(leaf.der().to_vec())
    }
}

/// Counters shared by the load tasks.
#[derive(Default)]
struct Stats {
    live: AtomicUsize,
    churn_attempted: AtomicU64,
    churn_done: AtomicU64,
    churn_skipped: AtomicU64,
    tls_failed: AtomicU64,
    refused_down: AtomicU64,
    refused_up: AtomicU64,
    first_refusal: std::sync::Mutex<Option<String>>,
    /// Set from before mosquitto is stopped until some seconds after it listens again (a
    /// count: the grace of one restart may overlap the next).
    upstream_down: AtomicUsize,
    /// When each outage began and ended.
    outages: std::sync::Mutex<Vec<(Instant, Option<Instant>)>>,
    stop_load: AtomicBool,
    stop_all: AtomicBool,
}

impl Stats {
    fn failed(&self, began_down: bool, e: &client::OpenError) {
        self.record(began_down, e.step == Step::Tls, e.to_string());
    }

    fn record(&self, began_down: bool, tls: bool, message: String) {
        if tls {
            self.tls_failed.fetch_add(1, Ordering::Relaxed);
            let mut first = self.first_refusal.lock().unwrap_or_else(|p| p.into_inner());
            first.get_or_insert(message);
        } else if began_down || self.upstream_down.load(Ordering::Relaxed) > 0 {
            self.refused_down.fetch_add(1, Ordering::Relaxed);
        } else {
            self.refused_up.fetch_add(1, Ordering::Relaxed);
            let mut first = self.first_refusal.lock().unwrap_or_else(|p| p.into_inner());
            first.get_or_insert(message);
        }
    }

    /// Whether `t` falls in an outage, widened by `before` and `after`.
    fn near_outage(&self, t: Instant, before: Duration, after: Duration) -> bool {
        let outages = self.outages.lock().unwrap_or_else(|p| p.into_inner());
        outages.iter().any(|(from, to)| {
            let to = to.unwrap_or_else(Instant::now);
            t + before >= *from && t <= to + after
        })
    }
}

/// A source address among 127.0.0.2 … 127.0.0.51, so no one address carries every session.
fn source(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % 50) as u8))
}

/// TCP from `src`, TLS, the upgrade and an MQTT session; every step under one timeout.
async fn session(
    addr: SocketAddr,
    src: IpAddr,
    tls: Arc<rustls::ClientConfig>,
    id: &str,
) -> Result<client::Wss, client::OpenError> {
    let fail = |step, message: String| client::OpenError { step, message };
    let open = async {
        let sock = TcpSocket::new_v4().map_err(|e| fail(Step::Tls, e.to_string()))?;
        sock.bind(SocketAddr::new(src, 0))
            .map_err(|e| fail(Step::Tls, format!("bind {src}: {e}")))?;
        let tcp = sock
            .connect(addr)
            .await
            .map_err(|e| fail(Step::Tls, format!("connect: {e}")))?;
        let mut ws = client::open_over(tcp, tls, "/mqtt", addr.port()).await?;
        client::mqtt_connect(&mut ws, id)
            .await
            .map_err(|e| fail(Step::Upgrade, format!("MQTT: {e}")))?;
        Ok(ws)
    };
    tokio::time::timeout(Duration::from_secs(20), open)
        .await
        .map_err(|_| fail(Step::Upgrade, "no session within 20 s".into()))?
}

/// One live session, held and reopened until the end.
async fn live(i: usize, addr: SocketAddr, tls: Arc<rustls::ClientConfig>, stats: Arc<Stats>) {
    let id = format!("soak-live-{i}");
    while !stats.stop_all.load(Ordering::Relaxed) {
        let began_down = stats.upstream_down.load(Ordering::Relaxed) > 0;
        match session(addr, source(i), tls.clone(), &id).await {
            Ok(mut ws) => {
                stats.live.fetch_add(1, Ordering::Relaxed);
                let mut ping = tokio::time::interval(Duration::from_secs(100));
                ping.tick().await;
                loop {
                    tokio::select! {
                        m = ws.next() => match m {
                            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                            Some(Ok(_)) => {}
                        },
                        _ = ping.tick() => {
                            if ws.send(Message::Binary(crate::mqtt::wire::pingreq().into())).await.is_err() {
                                break;
                            }
                        }
                        _ = tokio::time::sleep(Duration::from_millis(250)) => {
                            if stats.stop_all.load(Ordering::Relaxed) {
                                ws.send(Message::Binary(vec![0xe0, 0].into())).await.ok();
                                ws.close(None).await.ok();
                                break;
                            }
                        }
                    }
                }
                stats.live.fetch_sub(1, Ordering::Relaxed);
            }
            Err(e) => stats.failed(began_down, &e),
        }
        let back_off = 200 + rand::random::<u64>() % 1000;
        tokio::time::sleep(Duration::from_millis(back_off)).await;
    }
}

/// `churn` opens and closes a second, at most 256 under way.
async fn churn(per_s: f64, addr: SocketAddr, tls: Arc<rustls::ClientConfig>, stats: Arc<Stats>) {
    let sem = Arc::new(tokio::sync::Semaphore::new(256));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_s.max(0.1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut n = 0usize;
    while !stats.stop_load.load(Ordering::Relaxed) {
        tick.tick().await;
        stats.churn_attempted.fetch_add(1, Ordering::Relaxed);
        let Ok(permit) = sem.clone().try_acquire_owned() else {
            stats.churn_skipped.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        n += 1;
        let (tls, stats) = (tls.clone(), stats.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let began_down = stats.upstream_down.load(Ordering::Relaxed) > 0;
            match session(addr, source(n), tls, &format!("soak-churn-{n}")).await {
                Ok(mut ws) => {
                    ws.send(Message::Binary(vec![0xe0, 0].into())).await.ok();
                    ws.close(None).await.ok();
                    stats.churn_done.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => stats.failed(began_down, &e),
            }
        });
    }
    // Let the last ones finish.
    let _ = tokio::time::timeout(Duration::from_secs(30), sem.acquire_many(256)).await;
}

/// One QoS 1 client on a persistent session: publishes numbered messages to its own topic,
/// subscribed to it, and records every number that comes back.
struct Traffic {
    client: rumqttc::AsyncClient,
    /// The broker granted the subscription: publishing may start.
    subscribed: AtomicBool,
    sent_at: std::sync::Mutex<Vec<Instant>>,
    seen: std::sync::Mutex<Vec<u32>>,
    sessions_lost: AtomicU64,
}

impl Traffic {
    fn delivered_all(&self) -> bool {
        let n = self.sent_at.lock().map(|s| s.len()).unwrap_or(0);
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.len() >= n && seen[..n].iter().all(|&c| c > 0)
    }
}

fn start_traffic(
    i: usize,
    url: &str,
    ca: &Path,
    rate: f64,
    stats: Arc<Stats>,
) -> anyhow::Result<Arc<Traffic>> {
    use rumqttc::{Event, Packet, QoS};
    let mut p = crate::mqtt::profile::Profile::new("soak", url);
    p.client_id = format!("soak-qos1-{i}");
    p.random_suffix = false;
    p.clean_session = false;
    p.keepalive_secs = 30;
    p.trust = crate::mqtt::profile::TrustChoice::File;
    p.ca_file = Some(ca.to_owned());
    p.subscriptions.clear();
    let opts = p.mqtt_options().map_err(|e| anyhow::anyhow!(e.en))?;
    let (client, mut events) = rumqttc::AsyncClient::new(opts, 1000);
    let t = Arc::new(Traffic {
        client,
        subscribed: AtomicBool::new(false),
        sent_at: Default::default(),
        seen: Default::default(),
        sessions_lost: AtomicU64::new(0),
    });
    let topic = format!("soak/qos1/{i}");
    {
        let (t, stats, topic) = (t.clone(), stats.clone(), topic.clone());
        tokio::spawn(async move {
            let mut connected_once = false;
            while !stats.stop_all.load(Ordering::Relaxed) {
                match tokio::time::timeout(Duration::from_millis(500), events.poll()).await {
                    Err(_) => {}
                    Ok(Ok(Event::Incoming(Packet::ConnAck(ack)))) => {
                        if !ack.session_present {
                            if connected_once {
                                t.sessions_lost.fetch_add(1, Ordering::Relaxed);
                            }
                            t.client.try_subscribe(&topic, QoS::AtLeastOnce).ok();
                        }
                        connected_once = true;
                    }
                    Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => {
                        t.subscribed.store(true, Ordering::Relaxed);
                    }
                    Ok(Ok(Event::Incoming(Packet::Publish(m)))) => {
                        if let Some(b) = m.payload.get(..8) {
                            let seq = u64::from_be_bytes(b.try_into().unwrap_or([0; 8])) as usize;
                            let mut seen = t.seen.lock().unwrap_or_else(|p| p.into_inner());
                            if seen.len() <= seq {
                                seen.resize(seq + 1, 0);
                            }
                            seen[seq] = seen[seq].saturating_add(1);
                        }
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(_)) => {
                        let back_off = 300 + rand::random::<u64>() % 700;
                        tokio::time::sleep(Duration::from_millis(back_off)).await;
                    }
                }
            }
        });
    }
    {
        let (t, stats) = (t.clone(), stats.clone());
        tokio::spawn(async move {
            // Publishing starts once the broker granted the subscription.
            while !t.subscribed.load(Ordering::Relaxed) {
                if stats.stop_load.load(Ordering::Relaxed) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(0.1)));
            let mut seq = 0u64;
            while !stats.stop_load.load(Ordering::Relaxed) {
                tick.tick().await;
                let mut payload = seq.to_be_bytes().to_vec();
                payload.resize(64, b'.');
                // Waits while rumqttc's queue is full (the upstream is down): that is the
                // back-pressure a device would feel, not a loss.
                if t.client
                    .publish(&topic, QoS::AtLeastOnce, false, payload)
                    .await
                    .is_err()
                {
                    break;
                }
                t.sent_at
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(Instant::now());
                seq += 1;
            }
        });
    }
    Ok(t)
}

fn mosquitto(conf: &Path) -> anyhow::Result<Proc> {
    let child = Command::new(program("mosquitto"))
        .arg("-c")
        .arg(conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start mosquitto")?;
    Ok(Proc {
        name: "mosquitto",
        child,
        stop: None,
    })
}

/// SIGTERM (mosquitto writes its persistence file), wait, start again on the same port.
fn restart(mosq: &mut Proc, conf: &Path, port: u16) -> anyhow::Result<()> {
    Command::new("kill")
        .args(["-TERM", &mosq.child.id().to_string()])
        .status()
        .context("cannot run kill")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while mosq.child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            mosq.child.kill().ok();
            mosq.child.wait().ok();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    *mosq = mosquitto(conf)?;
    wait_listening(port, "mosquitto")
}

/// The leaf the relay serves now.
async fn served_leaf(addr: SocketAddr, tls: Arc<rustls::ClientConfig>) -> Option<Vec<u8>> {
    let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
    let name = rustls_pki_types::ServerName::try_from("localhost").ok()?;
    let s = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_rustls::TlsConnector::from(tls).connect(name, tcp),
    )
    .await
    .ok()?
    .ok()?;
    let der = s.get_ref().1.peer_certificates()?.first()?.to_vec();
    Some(der)
}

async fn wait_live(stats: &Stats, n: usize, within: Duration) -> usize {
    let deadline = Instant::now() + within;
    while stats.live.load(Ordering::Relaxed) < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stats.live.load(Ordering::Relaxed)
}

/// What the relay part runs: mosquitto (sessions on disk), the relay in front of it with its
/// default limits, and the certificate files it serves.
struct Rig {
    pki: Pki,
    tls: Arc<rustls::ClientConfig>,
    conf: PathBuf,
    ws_port: u16,
    /// `None` only while it restarts.
    mosq: Option<Proc>,
    _relay: Proc,
    relay_pid: u32,
    addr: SocketAddr,
    /// Last, so the processes are gone before their folder is.
    _dir: tempfile::TempDir,
}

impl Rig {
    fn start() -> anyhow::Result<Rig> {
        require_mosquitto()?;
        let dir = tempfile::tempdir()?;
        let pki = Pki::new(dir.path())?;
        let tls = Arc::new(crate::relay::tls::client_config_with_roots(&[&pki.ca])?);

        // mosquitto: plain WebSockets for the relay, sessions kept on disk across restarts
        // (`user root` keeps a root run from dropping to a user who cannot write the folder;
        // it means nothing otherwise). mosquitto 2.0 will not start a WebSocket listener
        // alone, so a TCP one comes first.
        let (tcp_port, ws_port) = (free_port()?, free_port()?);
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "user root\nper_listener_settings false\nallow_anonymous true\npersistence true\npersistence_location {}/\nmax_queued_messages 100000\nset_tcp_nodelay true\nlog_dest none\nlistener {tcp_port} 127.0.0.1\nlistener {ws_port} 127.0.0.1\nprotocol websockets\nsocket_domain ipv4\n",
                dir.path().display()
            ),
        )?;
        let mosq = mosquitto(&conf)?;
        wait_listening(ws_port, "mosquitto")?;

        // The relay with its default limits; only addresses, files and the route are set.
        let port = free_port()?;
        let relay_conf = dir.path().join("relay.toml");
        std::fs::write(
            &relay_conf,
            format!(
                "[listen]\naddr = \"127.0.0.1:{port}\"\ncert = \"{}\"\nkey = \"{}\"\n[[route]]\npath = \"/mqtt\"\nupstream = [\"ws://127.0.0.1:{ws_port}/mqtt\"]\n",
                pki.chain.display(),
                pki.key.display()
            ),
        )?;
        let child = Command::new(std::env::current_exe()?)
            .args(["relay", "--config"])
            .arg(&relay_conf)
            .env("MPBRIDGE_LOG", "warn")
            .env("MPBRIDGE_DATA_DIR", dir.path().join("data"))
            .env("MPBRIDGE_CONFIG_DIR", dir.path().join("config"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let relay_pid = child.id();
        let relay = Proc {
            name: "relay",
            child,
            stop: None,
        };
        wait_listening(port, "the relay")?;
        Ok(Rig {
            pki,
            tls,
            conf,
            ws_port,
            mosq: Some(mosq),
            _relay: relay,
            relay_pid,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            _dir: dir,
        })
    }

    /// A new certificate on disk; whether the next handshakes serve it within 10 s (the relay
    /// looks at its files every 2 s).
    async fn reload(&mut self) -> anyhow::Result<bool> {
        let leaf = self.pki.rotate()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if served_leaf(self.addr, self.tls.clone()).await.as_deref() == Some(&leaf[..]) {
                return Ok(true);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(false)
    }

    /// mosquitto stopped and started again, the outage recorded; refusals in the 10 s after it
    /// listens again still belong to it (every session reconnects at once).
    async fn restart_upstream(&mut self, stats: &Arc<Stats>) -> anyhow::Result<()> {
        stats.upstream_down.fetch_add(1, Ordering::Relaxed);
        let index = {
            let mut outages = stats.outages.lock().unwrap_or_else(|p| p.into_inner());
            outages.push((Instant::now(), None));
            outages.len() - 1
        };
        let (conf, port) = (self.conf.clone(), self.ws_port);
        let Some(mut mosq) = self.mosq.take() else {
            bail!("mosquitto is already restarting");
        };
        self.mosq = Some(
            tokio::task::spawn_blocking(move || restart(&mut mosq, &conf, port).map(|()| mosq))
                .await??,
        );
        let stats = stats.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(10)).await;
            if let Some(this) = stats
                .outages
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_mut(index)
            {
                this.1 = Some(Instant::now());
            }
            stats.upstream_down.fetch_sub(1, Ordering::Relaxed);
        });
        Ok(())
    }
}

/// Every QoS 1 number published, found back or lost (and where), and the counters.
fn tally(r: &mut RelaySoak, traffic: &[Arc<Traffic>], stats: &Stats) {
    for t in traffic {
        let sent = t.sent_at.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let seen = t.seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
        r.published += sent.len() as u64;
        r.sessions_lost += t.sessions_lost.load(Ordering::Relaxed);
        for (seq, at) in sent.iter().enumerate() {
            match seen.get(seq).copied().unwrap_or(0) {
                0 if stats.near_outage(*at, Duration::from_secs(5), Duration::from_secs(20)) => {
                    r.lost_near_restart += 1
                }
                0 => r.lost_otherwise += 1,
                n => {
                    r.delivered += 1;
                    r.duplicates += u64::from(n - 1);
                }
            }
        }
    }
    r.churn_attempted = stats.churn_attempted.load(Ordering::Relaxed);
    r.churn_done = stats.churn_done.load(Ordering::Relaxed);
    r.churn_skipped = stats.churn_skipped.load(Ordering::Relaxed);
    r.tls_failed = stats.tls_failed.load(Ordering::Relaxed);
    r.refused_upstream_down = stats.refused_down.load(Ordering::Relaxed);
    r.refused_otherwise = stats.refused_up.load(Ordering::Relaxed);
    r.first_refusal = stats
        .first_refusal
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
}

pub async fn relay(opts: &SoakOptions) -> anyhow::Result<RelaySoak> {
    let mut rig = Rig::start()?;
    let (addr, tls, relay_pid) = (rig.addr, rig.tls.clone(), rig.relay_pid);
    let stats = Arc::new(Stats::default());
    let mut tasks = Vec::new();
    for i in 0..opts.connections {
        tasks.push(tokio::spawn(live(i, addr, tls.clone(), stats.clone())));
        if i % 100 == 99 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let live_start = wait_live(&stats, opts.connections, Duration::from_secs(120)).await;
    if live_start < opts.connections {
        stats.stop_all.store(true, Ordering::Relaxed);
        bail!(
            "only {live_start} of {} live sessions opened within 120 s",
            opts.connections
        );
    }
    let url = format!("wss://127.0.0.1:{}/mqtt", addr.port());
    let traffic = (0..opts.traffic)
        .map(|i| start_traffic(i, &url, &rig.pki.ca, opts.rate, stats.clone()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let churner = tokio::spawn(churn(opts.churn, addr, tls.clone(), stats.clone()));
    // The first sample under the full load (live sessions, churn, traffic), as the last one is.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut r = RelaySoak {
        connections: opts.connections,
        live_start,
        rss_start_kib: rss_kib(relay_pid),
        fds_start: fds(relay_pid),
        ..Default::default()
    };
    r.rss_max_kib = r.rss_start_kib;

    // The schedule counts from here, once everything runs: reloads, restarts, samples.
    let started = Instant::now();
    let soak_for = Duration::from_secs_f64(opts.secs.max(10.0));
    let reload_every = Duration::from_secs_f64(opts.reload_every.max(1.0));
    let restart_every = Duration::from_secs_f64(opts.restart_every.max(5.0));
    let (mut next_reload, mut next_restart) = (started + reload_every, started + restart_every);
    let mut last_print = Instant::now();
    while started.elapsed() < soak_for {
        let now = Instant::now();
        if now >= next_reload {
            next_reload += reload_every;
            r.reloads_made += 1;
            r.reloads_served += u64::from(rig.reload().await?);
        } else if now >= next_restart {
            next_restart += restart_every;
            r.restarts += 1;
            rig.restart_upstream(&stats).await?;
        } else {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        r.rss_max_kib = r.rss_max_kib.max(rss_kib(relay_pid));
        if !opts.json && last_print.elapsed() >= Duration::from_secs(60) {
            last_print = Instant::now();
            eprintln!(
                "  {:>5.0} s: {} live, relay {:.1} MiB, {} descriptors, {} churned, {} reloads, {} restarts",
                started.elapsed().as_secs_f64(),
                stats.live.load(Ordering::Relaxed),
                rss_kib(relay_pid) as f64 / 1024.0,
                fds(relay_pid),
                stats.churn_done.load(Ordering::Relaxed),
                r.reloads_made,
                r.restarts
            );
        }
    }

    // The end: the last outage over and every live session back, the last sample under the
    // same load as the first, then the load stops.
    while stats.upstream_down.load(Ordering::Relaxed) > 0 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    r.live_end = wait_live(&stats, opts.connections, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    r.rss_end_kib = rss_kib(relay_pid);
    r.fds_end = fds(relay_pid);
    r.rss_max_kib = r.rss_max_kib.max(r.rss_end_kib);
    r.secs = started.elapsed().as_secs_f64();
    stats.stop_load.store(true, Ordering::Relaxed);
    churner.await.ok();

    // Every QoS 1 message published must come back (30 s to drain).
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && !traffic.iter().all(|t| t.delivered_all()) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tally(&mut r, &traffic, &stats);
    for t in &traffic {
        t.client.try_disconnect().ok();
    }
    stats.stop_all.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    r.broker = super::procs::mosquitto_version();
    Ok(r)
}
