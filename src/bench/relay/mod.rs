//! `mpbridge bench relay`: mosquitto behind the mpbridge relay, behind nginx (the seed's
//! reverse proxy config) and mosquitto's own WSS listener (direct), driven with the same
//! load in one run; prints a table with the relay / nginx ratios.
//!
//! Parts: `crowd` (a reconnect storm: connections per second, connect p50/p99, CPU and memory
//! per connection at 1 000, 5 000 and 9 000 connections, each in freshly started proxies),
//! `handshakes` (TLS alone, TLS + WebSocket upgrade, per second) and `throughput` (each client
//! subscribes to its own topic and keeps `DEPTH` publishes in flight to it, so every message
//! crosses the proxy twice and latency is the publish → delivery time). Every part runs
//! `rounds` rounds with the targets taking turns; medians are shown. `--matrix` adds nginx at
//! one worker and the relay at two, so the comparison at equal cores is on the same page; the
//! ratio columns always compare defaults to defaults (the relay's default against nginx's
//! packaged `worker_processes auto`).

mod load;
mod targets;

use std::sync::Arc;

use anyhow::{Context, bail};

use load::{Crowd, DEPTH, IN_FLIGHT, Run};
use targets::{Proxy, Route, Starter, Target};

use super::procs::{Proc, require_mosquitto};

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub secs: f64,
    /// Connection counts of the crowd part.
    pub crowd: Vec<usize>,
    pub with_nginx: bool,
    /// Parts to run (`crowd`, `handshakes`, `throughput`); empty: all.
    pub only: Vec<String>,
    /// Rounds of every measurement; the targets take turns and the medians are shown.
    pub rounds: usize,
    /// Relay worker processes (`relay --workers`) that count as its default.
    pub workers: u16,
    /// Also nginx at one worker and the relay at two worker processes.
    pub matrix: bool,
    /// The relay's `--setup-threads` (its default, 0, when `None`).
    pub setup_threads: Option<u16>,
    /// Another mpbridge build whose relay to measure instead of this one's.
    pub relay_bin: Option<std::path::PathBuf>,
    /// Targets to run (`relay-ws`, `relay-tcp`, `nginx`, `direct`, and with `--matrix`
    /// `relay-ws-2`, `relay-tcp-2`, `nginx-1`); empty: all.
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

    /// The proxies to measure, in column order.
    fn proxies(&self, nginx: bool) -> Vec<Proxy> {
        let w = self.workers.max(1);
        let mut all = vec![
            Proxy::Relay {
                route: Route::Ws,
                workers: w,
            },
            Proxy::Relay {
                route: Route::Tcp,
                workers: w,
            },
        ];
        if self.matrix && w != 2 {
            for route in [Route::Ws, Route::Tcp] {
                all.push(Proxy::Relay { route, workers: 2 });
            }
        }
        if nginx {
            all.push(Proxy::Nginx { workers: None });
            if self.matrix {
                all.push(Proxy::Nginx { workers: Some(1) });
            }
        }
        all.into_iter()
            .filter(|p| self.wants(&p.key_and_name(w).0))
            .collect()
    }
}

/// The ratio columns: each relay target against nginx at its default.
struct Versus {
    nginx: Option<usize>,
    relays: Vec<(usize, String)>,
}

impl Versus {
    fn new(targets: &[Target]) -> Self {
        Versus {
            nginx: targets.iter().position(|t| t.key == "nginx"),
            relays: targets
                .iter()
                .enumerate()
                .filter(|(_, t)| t.key.starts_with("relay-"))
                .map(|(i, t)| (i, t.key.trim_start_matches("relay-").to_owned()))
                .collect(),
        }
    }

    /// "<route>/nginx a b …", one ratio per measure.
    fn line(&self, measures: &[&dyn Fn(usize) -> f64]) -> String {
        let Some(n) = self.nginx else {
            return "—".into();
        };
        self.relays
            .iter()
            .map(|(r, key)| {
                let ratios: Vec<String> = measures.iter().map(|m| ratio(m(*r), m(n))).collect();
                format!("{key}/nginx {}", ratios.join(" "))
            })
            .collect::<Vec<_>>()
            .join(" · ")
    }
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a.is_finite() && b.is_finite() {
        format!("{:.2}×", a / b)
    } else {
        "—".to_owned()
    }
}

const COLUMN: usize = 40;

fn columns(cells: impl IntoIterator<Item = String>) -> String {
    cells
        .into_iter()
        .map(|c| format!("{c:>COLUMN$}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn number(v: f64, digits: usize) -> String {
    if v.is_finite() {
        format!("{v:.digits$}")
    } else {
        "—".into()
    }
}

pub async fn run(opts: BenchOptions) -> anyhow::Result<()> {
    require_mosquitto()?;
    let dir = tempfile::tempdir()?;
    let pki = targets::make_pki(dir.path())?;
    let tls = Arc::new(crate::relay::tls::client_config_with_roots(&[&pki.ca])?);
    let (ports, mosquitto) = targets::start_mosquitto(dir.path(), &pki)?;
    let mosq_pid = mosquitto.child.id();
    let has_nginx = opts.with_nginx && targets::nginx_installed();
    let starter = Starter {
        dir: dir.path(),
        pki: &pki,
        ports,
        default_workers: opts.workers.max(1),
        setup_threads: opts.setup_threads,
        relay_bin: opts.relay_bin.clone(),
    };
    let proxies = opts.proxies(has_nginx);
    let mut procs: Vec<Proc> = vec![mosquitto];
    let mut targets = Vec::new();
    for p in &proxies {
        let (t, proc) = starter.start(*p, 1)?;
        targets.push(t);
        procs.push(proc);
    }
    if opts.wants("direct") {
        targets.push(Target {
            name: "direct".into(),
            key: "direct".into(),
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], ports.wss)),
            path: "/mqtt",
            pid: mosq_pid,
        });
    }
    if targets.is_empty() {
        bail!("no target left to measure (--targets relay-ws,relay-tcp,nginx,direct)");
    }
    print_header(&opts, has_nginx);
    println!(
        "{:<28} {}",
        "",
        columns(targets.iter().map(|t| t.name.clone()))
    );
    let versus = Versus::new(&targets);
    let rounds = opts.rounds.max(1);

    // The crowd first, while mosquitto has carried no load either.
    if opts.part("crowd") {
        crowd_part(&opts, &starter, &proxies, &targets, &tls, &versus).await?;
    }
    if opts.part("handshakes") {
        // The same device telemetry as the crowd's: an idle mosquitto serves its WebSocket
        // listener once per 100 ms pass, which the upgrade row would measure instead.
        let _telemetry = load::Telemetry::start(ports.tcp).await?;
        handshake_part(&targets, &tls, opts.secs, rounds, &versus).await;
    }
    if opts.part("throughput") {
        throughput_part(&opts, &targets, mosq_pid, &tls, &versus).await?;
    }
    println!(
        "\n(ratios are relay route/nginx, defaults against defaults: msg/s, connections/s and handshakes above 1.00× are better; p99, cpu and memory below 1.00× are better;\n cpu = CPU time of the proxy's processes per delivered message or per connection set up, mosquitto's own for direct;\n broker = mosquitto's CPU time behind that proxy, — for direct)"
    );
    drop(procs);
    Ok(())
}

fn print_header(opts: &BenchOptions, has_nginx: bool) {
    println!(
        "mpbridge bench relay — {} cores · {} · nginx {} · {:.0} s per measurement · {} rounds",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        super::procs::mosquitto_version().trim(),
        if has_nginx {
            "with the seed's config (worker_processes auto unless marked ×N)"
        } else {
            "not installed"
        },
        opts.secs,
        opts.rounds.max(1),
    );
    println!(
        "targets: mpbridge relay ({} worker process{} by default; ×N: --workers N) with a ws:// upstream (mosquitto's WebSocket listener) and with a tcp:// upstream (its MQTT port) · nginx · direct = mosquitto's own WSS listener",
        opts.workers.max(1),
        if opts.workers.max(1) == 1 { "" } else { "es" }
    );
    println!(
        "load: crowd = connections opened {IN_FLIGHT} at a time (TLS + upgrade + MQTT CONNECT) and held, fresh proxy and mosquitto each time, 200 msg/s of device telemetry into mosquitto meanwhile (and during the handshake rows); throughput = {DEPTH} publishes in flight per client to its own subscription (every message crosses the proxy twice)\n"
    );
}

/// Connection setup at each crowd size: every target in a fresh process per round, the
/// targets taking turns.
async fn crowd_part(
    opts: &BenchOptions,
    starter: &Starter<'_>,
    proxies: &[Proxy],
    targets: &[Target],
    tls: &Arc<rustls::ClientConfig>,
    versus: &Versus,
) -> anyhow::Result<()> {
    let limit = targets::descriptor_limit();
    let rounds = opts.rounds.max(1);
    for &n in &opts.crowd {
        let mut all: Vec<Vec<Crowd>> = vec![Vec::new(); targets.len()];
        for round in 0..rounds {
            for k in 0..proxies.len() {
                let i = (k + round) % proxies.len();
                // mosquitto fresh as well, with device telemetry flowing: how soon its
                // WebSocket listener serves a new connection depends on what else it is doing
                // (load::Telemetry, docs/DECISIONS.md).
                let (ports, mosquitto) = targets::start_mosquitto(starter.dir, starter.pki)?;
                let broker = mosquitto.child.id();
                let telemetry = load::Telemetry::start(ports.tcp).await?;
                let (fresh, proc) =
                    starter.start_before(proxies[i], targets::workers_for(n, limit), ports)?;
                let c = load::crowd(&fresh, broker, tls.clone(), n)
                    .await
                    .with_context(|| format!("{} crowd of {n}", fresh.name))?;
                drop(telemetry);
                drop(proc);
                drop(mosquitto);
                all[i].push(c);
            }
        }
        let c: Vec<Crowd> = all
            .iter()
            .map(|v| {
                if v.is_empty() {
                    Crowd {
                        per_s: f64::NAN,
                        p50_ms: f64::NAN,
                        p99_ms: f64::NAN,
                        kib: f64::NAN,
                        cpu_us: f64::NAN,
                        broker_us: f64::NAN,
                        failed: 0,
                        steps_ms: [f64::NAN; 4],
                        steps_p99_ms: [f64::NAN; 4],
                    }
                } else {
                    load::median_crowd(v)
                }
            })
            .collect();
        let row = |label: String, cell: &dyn Fn(&Crowd) -> String, rel: String| {
            println!("{label:<28} {}   {rel}", columns(c.iter().map(cell)));
        };
        row(
            format!("crowd @{n}: conn/s"),
            &|r| {
                if r.failed > 0 {
                    format!("{} ({} failed)", number(r.per_s, 0), r.failed)
                } else {
                    number(r.per_s, 0)
                }
            },
            versus.line(&[&|i| c[i].per_s]),
        );
        row(
            format!("crowd @{n}: connect p50/p99 ms"),
            &|r| format!("{}/{}", number(r.p50_ms, 1), number(r.p99_ms, 1)),
            versus.line(&[&|i| c[i].p99_ms]),
        );
        let steps = |v: &[f64; 4]| {
            v.iter()
                .map(|x| number(*x, 1))
                .collect::<Vec<_>>()
                .join("/")
        };
        row(
            format!("crowd @{n}: tcp/tls/ws/mqtt p50"),
            &|r| steps(&r.steps_ms),
            String::new(),
        );
        row(
            format!("crowd @{n}: tcp/tls/ws/mqtt p99"),
            &|r| steps(&r.steps_p99_ms),
            String::new(),
        );
        row(
            format!("crowd @{n}: cpu+broker µs/conn"),
            &|r| format!("{}+{}", number(r.cpu_us, 0), number(r.broker_us, 0)),
            versus.line(&[&|i| c[i].cpu_us]),
        );
        row(
            format!("crowd @{n}: RSS KiB/idle conn"),
            &|r| number(r.kib, 1),
            versus.line(&[&|i| c[i].kib]),
        );
    }
    Ok(())
}

/// TLS handshakes alone and with the WebSocket upgrade, per second, medians of `rounds`.
async fn handshake_part(
    targets: &[Target],
    tls: &Arc<rustls::ClientConfig>,
    secs: f64,
    rounds: usize,
    versus: &Versus,
) {
    let mut tls_hs: Vec<Vec<f64>> = vec![Vec::new(); targets.len()];
    let mut upgrades: Vec<Vec<f64>> = vec![Vec::new(); targets.len()];
    for round in 0..rounds {
        for k in 0..targets.len() {
            let i = (k + round) % targets.len();
            let t = &targets[i];
            tls_hs[i].push(load::tls_handshakes(t.addr, tls.clone(), secs).await);
            upgrades[i].push(load::handshakes_on(t.addr, tls.clone(), secs, t.path).await);
        }
    }
    for (label, values) in [("TLS handshakes/s", tls_hs), ("TLS+WS upgrade/s", upgrades)] {
        let v: Vec<f64> = values.into_iter().map(load::median).collect();
        println!(
            "{label:<28} {}   {}",
            columns(v.iter().map(|x| number(*x, 0))),
            versus.line(&[&|i| v[i]])
        );
    }
}

/// Message throughput and latency per scenario, with the geometric mean of the msg/s and CPU
/// ratios over the scenarios.
async fn throughput_part(
    opts: &BenchOptions,
    targets: &[Target],
    mosq_pid: u32,
    tls: &Arc<rustls::ClientConfig>,
    versus: &Versus,
) -> anyhow::Result<()> {
    let rounds = opts.rounds.max(1);
    println!(
        "\n{:<28} {}   relay route/nginx: msg/s p99 cpu",
        "throughput",
        columns(
            targets
                .iter()
                .map(|_| "msg/s p50/p99 ms cpu+broker".to_owned())
        )
    );
    let mut cells: Vec<Vec<Run>> = vec![Vec::new(); targets.len()];
    for &qos in &opts.qos {
        for &size in &opts.sizes {
            for &clients in &opts.clients {
                let mut all: Vec<Vec<Run>> = vec![Vec::new(); targets.len()];
                for round in 0..rounds {
                    for k in 0..targets.len() {
                        let i = (k + round) % targets.len();
                        let t = &targets[i];
                        let r = load::throughput(
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
                let runs: Vec<Run> = all.iter().map(|v| load::median_run(v)).collect();
                let cell = |r: &Run| {
                    format!(
                        "{:.0} {:.2}/{:.2} {:.1}+{:.1}µs",
                        r.msgs_per_s, r.p50_ms, r.p99_ms, r.cpu_us, r.broker_us
                    )
                };
                println!(
                    "{:<28} {}   {}",
                    format!("qos{qos} {size}B {clients} clients"),
                    columns(runs.iter().map(cell)),
                    versus.line(&[&|i| runs[i].msgs_per_s, &|i| runs[i].p99_ms, &|i| {
                        runs[i].cpu_us
                    }])
                );
                for (i, r) in runs.into_iter().enumerate() {
                    cells[i].push(r);
                }
            }
        }
    }
    // Geometric means over the scenarios.
    let geomean = |i: usize, f: fn(&Run) -> f64| {
        let v: Vec<f64> = cells[i].iter().map(f).filter(|x| *x > 0.0).collect();
        if v.is_empty() {
            f64::NAN
        } else {
            (v.iter().map(|x| x.ln()).sum::<f64>() / v.len() as f64).exp()
        }
    };
    println!(
        "{:<28} {}   {}",
        "geomean msg/s · cpu µs/msg",
        columns((0..targets.len()).map(|i| format!(
            "{} · {}",
            number(geomean(i, |r| r.msgs_per_s), 0),
            number(geomean(i, |r| r.cpu_us), 1)
        ))),
        versus.line(&[&|i| geomean(i, |r| r.msgs_per_s), &|i| {
            geomean(i, |r| r.cpu_us)
        }])
    );
    Ok(())
}
