//! Command line: `mpbridge` opens the console; subcommands run headless.

mod bench;
pub mod cert;
pub mod check;
pub mod profiles;
pub mod relay;
pub mod simulate;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::app::{AppEnv, ConsoleApp, ScreenshotPlan};
use crate::backend::{Backend, BackendOptions};
use crate::config::{ConsoleConfig, Language, Paths, store};
use crate::sandbox::Sandbox;

#[derive(Debug, Parser)]
#[command(
    name = "mpbridge",
    version,
    about = "Console and WSS relay for WeChat Mini Programs, ESP8266 devices and MQTT brokers"
)]
pub struct Cli {
    /// Open the console, wait until live sandbox data is drawn, save a PNG of the window here
    /// and exit (0: live data shown; 1: deadline passed without it).
    #[arg(long, value_name = "PATH", global = false)]
    pub screenshot: Option<PathBuf>,

    /// With --screenshot: the longest wait for live data. Without: close the console after SECS.
    #[arg(long, value_name = "SECS")]
    pub quit_after: Option<f64>,

    /// With --screenshot: once live data is drawn, let it accumulate SECS before the picture.
    #[arg(long, value_name = "SECS", default_value_t = 0.0)]
    pub settle: f64,

    /// Open on this panel: overview, relay, certs, checks, log or settings.
    #[arg(long, value_name = "NAME")]
    pub panel: Option<String>,

    /// Connect the console to this broker (mqtt://, mqtts://, ws://, wss://) instead of the
    /// sandbox's, for a quick look from a terminal.
    #[arg(long, value_name = "URL")]
    pub connect: Option<String>,

    /// With --connect: subscribe to FILTER (repeatable; default `#`).
    #[arg(long, value_name = "FILTER")]
    pub subscribe: Vec<String>,

    /// Language for this run (`en` or `zh-CN`), not saved.
    #[arg(long, value_name = "LANG", global = true)]
    pub lang: Option<String>,

    /// Configuration folder (default: the platform's, or $MPBRIDGE_CONFIG_DIR).
    #[arg(long, value_name = "DIR", global = true)]
    pub config_dir: Option<PathBuf>,

    /// Data folder: dev CA, logs (default: console.toml's `data_dir`, $MPBRIDGE_DATA_DIR or the platform's).
    #[arg(long, value_name = "DIR", global = true)]
    pub data_dir: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Cmd>,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run the embedded sandbox headless: a broker on loopback and a simulated ESP8266.
    Sandbox {
        /// Stop after SECS (default: until Ctrl-C).
        #[arg(long = "for", value_name = "SECS")]
        for_secs: Option<f64>,
        /// Print one JSON line describing the sandbox once it is ready.
        #[arg(long)]
        json: bool,
    },
    /// Run the WSS relay headless (the nginx role). SIGHUP or a change of the file reloads it;
    /// SIGTERM or Ctrl-C drains and stops it.
    Relay {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Relay processes sharing the listen address (SO_REUSEPORT), like nginx's
        /// `worker_processes`; each relays on one event-loop thread. More cores for data (a
        /// broker cluster upstream), and more file descriptors than one process may hold.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
        workers: u16,
        /// Threads per process that set connections up (TLS, the upgrades, the upstream
        /// connect) before handing them to the event loop. 0 (the default): the event loop
        /// sets them up too, which measured best beside a broker on the same host.
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=256))]
        setup_threads: u16,
        /// Run as a worker of another `mpbridge relay` on this bound address (internal).
        #[arg(long, hide = true, value_name = "ADDR")]
        worker_on: Option<std::net::SocketAddr>,
    },
    /// Benchmarks that print ratios against a reference run side by side.
    #[command(subcommand)]
    Bench(BenchCmd),
    /// Simulated ESP8266 devices (PubSubClient behaviour) against a broker.
    Simulate(simulate::SimulateArgs),
    /// Mini Program compliance checks: probe an endpoint as WeChat would.
    Check(check::CheckArgs),
    /// Certificates: inspect files, fetch a server's chain, repair a fullchain.
    #[command(subcommand)]
    Cert(cert::CertCmd),
    /// The saved broker profiles and where their passwords are kept; moves plain-text
    /// passwords an older version left in profiles.json into the credential store.
    Profiles {
        /// One JSON object instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Print the nginx `server {}` block equivalent to a relay configuration.
    NginxConfig {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// The embedded broker's own process, run by the console and `sandbox` (internal).
    #[command(hide = true)]
    Broker(crate::sandbox::broker::child::BrokerArgs),
}

#[derive(Debug, Subcommand)]
pub enum BenchCmd {
    /// The Topics panel under load, headless: ingest at a target rate with real frames, then
    /// one million messages held, then a 100 000-topic tree.
    Topics {
        /// Seconds of ingest.
        #[arg(long, default_value_t = 10.0)]
        secs: f64,
        /// Messages per second offered.
        #[arg(long, default_value_t = 50_000)]
        rate: u64,
        /// Distinct topics.
        #[arg(long, default_value_t = 1000)]
        topics: usize,
        /// Messages for the memory measurement.
        #[arg(long, default_value_t = 1_000_000)]
        fill: usize,
        /// End to end through this broker (mqtt://HOST:PORT) instead of an in-process producer.
        #[arg(long, value_name = "URL")]
        broker: Option<String>,
    },
    /// The embedded broker vs mosquitto, same load, one run: round-trip msg/s, p50/p99 latency
    /// and CPU per message, then a fleet of simulated ESP8266 devices: RSS and CPU.
    Broker {
        /// Seconds per measurement.
        #[arg(long, default_value_t = 5.0)]
        secs: f64,
        /// Rounds of each scenario (the brokers take turns; medians are shown).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=20))]
        rounds: u16,
        /// These QoS levels.
        #[arg(long, value_delimiter = ',', default_value = "0,1", value_parser = clap::value_parser!(u8).range(0..=2))]
        qos: Vec<u8>,
        /// These payload sizes in bytes.
        #[arg(long, value_delimiter = ',', default_value = "64,4096", value_parser = clap::value_parser!(u32).range(8..=1_000_000))]
        sizes: Vec<u32>,
        /// These numbers of clients.
        #[arg(long, value_delimiter = ',', default_value = "10,100", value_parser = clap::value_parser!(u32).range(1..=5000))]
        clients: Vec<u32>,
        /// Simulated ESP8266 devices on each broker (0: skip that part).
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(0..=5000))]
        devices: u32,
        /// Seconds the fleet is measured once online.
        #[arg(long, default_value_t = 20.0)]
        device_secs: f64,
    },
    /// Hours in minutes, with faults: the relay in front of mosquitto (live sessions, churn,
    /// QoS 1 traffic, certificate reloads, upstream restarts), then the console headless on its
    /// sandbox with a fleet of devices. Prints the figures; exits 1 if an invariant broke.
    Soak {
        /// Seconds each part runs.
        #[arg(long, default_value_t = 1800.0)]
        secs: f64,
        /// Run only these parts: relay, console.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Live sessions held through the relay.
        #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..=8000))]
        connections: u32,
        /// Sessions opened and closed a second.
        #[arg(long, default_value_t = 200.0)]
        churn: f64,
        /// Seconds between certificate rewrites.
        #[arg(long, default_value_t = 60.0)]
        reload_every: f64,
        /// Seconds between upstream restarts.
        #[arg(long, default_value_t = 300.0)]
        restart_every: f64,
        /// QoS 1 clients with persistent sessions, and messages each sends a second.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
        traffic: u32,
        #[arg(long, default_value_t = 20.0)]
        rate: f64,
        /// Simulated devices for the console part.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10000))]
        devices: u32,
        /// The console's message store bound (default: the console's default).
        #[arg(long)]
        store_messages: Option<usize>,
        #[arg(long)]
        store_mb: Option<usize>,
        /// One JSON object with every figure instead of the tables.
        #[arg(long)]
        json: bool,
    },
    /// The relay vs nginx (seed config) vs mosquitto's own WSS listener: connection setup
    /// of a crowd (conn/s, connect p99, CPU and memory per connection), handshakes/s, msg/s
    /// and p50/p99 latency with CPU per message.
    Relay {
        /// Seconds per measurement.
        #[arg(long, default_value_t = 5.0)]
        secs: f64,
        /// Connection counts of the crowd part (opened 200 at a time, then held idle).
        #[arg(long, value_delimiter = ',', default_value = "1000,5000,9000", value_parser = clap::value_parser!(u32).range(1..=100_000))]
        crowd: Vec<u32>,
        /// Leave nginx out even when it is installed.
        #[arg(long)]
        no_nginx: bool,
        /// Run only these parts: crowd, handshakes, throughput.
        #[arg(long, value_delimiter = ',', value_parser = ["crowd", "handshakes", "throughput"])]
        only: Vec<String>,
        /// Rounds of every measurement (the targets take turns; medians are shown).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=20))]
        rounds: u16,
        /// Relay worker processes per route (`relay --workers`) that count as its default;
        /// the crowd part adds processes when one cannot hold the descriptors.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
        workers: u16,
        /// Also measure nginx at one worker and the relay at two worker processes (the ratio
        /// columns still compare defaults to defaults).
        #[arg(long)]
        matrix: bool,
        /// The relay's `--setup-threads` (default: its own default, 0: set up on the event
        /// loop).
        #[arg(long, value_parser = clap::value_parser!(u16).range(0..=256))]
        relay_setup_threads: Option<u16>,
        /// Measure the relay of this mpbridge binary instead (an older build, for a
        /// before/after table).
        #[arg(long, value_name = "FILE")]
        relay_bin: Option<PathBuf>,
        /// Measure only these: relay-ws, relay-tcp, nginx, direct (with --matrix also
        /// relay-ws-2, relay-tcp-2, nginx-1).
        #[arg(long, value_delimiter = ',')]
        targets: Vec<String>,
        /// Throughput scenarios: these QoS levels.
        #[arg(long, value_delimiter = ',', default_value = "0,1", value_parser = clap::value_parser!(u8).range(0..=1))]
        qos: Vec<u8>,
        /// Throughput scenarios: these payload sizes in bytes.
        #[arg(long, value_delimiter = ',', default_value = "64,4096", value_parser = clap::value_parser!(u32).range(8..=1_000_000))]
        sizes: Vec<u32>,
        /// Throughput scenarios: these numbers of clients.
        #[arg(long, value_delimiter = ',', default_value = "10,100", value_parser = clap::value_parser!(u32).range(1..=5000))]
        clients: Vec<u32>,
    },
}

pub fn main() -> ExitCode {
    let started = Instant::now();
    crate::sandbox::broker::this_program_is_mpbridge();
    let cli = Cli::parse();
    match run(cli, started) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mpbridge: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli, started: Instant) -> anyhow::Result<ExitCode> {
    // The broker process owns its runtime and logging, and reads no configuration.
    if let Some(Cmd::Broker(args)) = cli.command {
        return Ok(crate::sandbox::broker::child::main(args));
    }
    // Install one crypto provider for the whole process (ring; see stack-notes).
    rustls::crypto::ring::default_provider()
        .install_default()
        .ok();

    let base = Paths::resolve(cli.config_dir.as_deref(), None);
    let loaded = store::load::<ConsoleConfig>(&base.console_file());
    let config = loaded.value;
    let data_dir = cli.data_dir.clone().or_else(|| config.data_dir.clone());
    let paths = Paths::resolve(cli.config_dir.as_deref(), data_dir.as_deref());

    let lang = match &cli.lang {
        Some(code) => Some(
            Language::from_code(code)
                .with_context(|| format!("--lang {code}: expected `en` or `zh-CN`"))?,
        ),
        None => None,
    };

    let tab = match &cli.panel {
        Some(name) => Some(crate::ui::Tab::from_code(name).with_context(|| {
            let names: Vec<_> = crate::ui::Tab::ALL.iter().map(|t| t.code()).collect();
            format!("--panel {name}: expected one of {}", names.join(", "))
        })?),
        None => None,
    };

    let rt = runtime(matches!(&cli.command, Some(Cmd::Relay { .. })))?;

    match cli.command {
        Some(Cmd::Sandbox { for_secs, json }) => {
            let log = crate::logging::init(config.log_level, Some(&paths.log_dir()), true);
            drop(log);
            if let Some(p) = &loaded.problem {
                eprintln!("mpbridge: {p}; using defaults");
            }
            let code = rt.block_on(sandbox_cmd(&paths, for_secs, json))?;
            rt.shutdown_timeout(Duration::from_secs(2));
            Ok(code)
        }
        Some(Cmd::Relay {
            config: file,
            workers,
            worker_on,
            setup_threads,
        }) => {
            let _log = crate::logging::init(config.log_level, Some(&paths.log_dir()), true);
            let pool = relay::setup_pool(setup_threads)?;
            let runtimes = crate::relay::handoff::Runtimes {
                data: rt.handle().clone(),
                setup: pool.as_ref().map(|p| p.handle().clone()),
            };
            let code = rt.block_on(relay::run(&file, workers, worker_on, runtimes))?;
            rt.shutdown_timeout(Duration::from_secs(2));
            if let Some(pool) = pool {
                pool.shutdown_timeout(Duration::from_secs(2));
            }
            Ok(code)
        }
        Some(Cmd::Bench(cmd)) => {
            let code = bench::run(cmd, &rt)?;
            rt.shutdown_timeout(Duration::from_secs(2));
            Ok(code)
        }
        Some(Cmd::Simulate(args)) => {
            let _log = crate::logging::init(crate::config::LogLevel::Warn, None, true);
            let code = simulate::run(args, &rt);
            rt.shutdown_timeout(Duration::from_secs(2));
            Ok(code)
        }
        Some(Cmd::Check(args)) => {
            let lang = lang.unwrap_or(config.language.unwrap_or_else(Language::from_os));
            let code = check::run(args, lang, &rt);
            rt.shutdown_timeout(Duration::from_secs(2));
            Ok(code)
        }
        Some(Cmd::Cert(cmd)) => {
            // No logging: every problem is in the report, and the OS verifier's own error
            // lines would only repeat CERT-TRUST.
            let lang = lang.unwrap_or(config.language.unwrap_or_else(Language::from_os));
            let code = cert::run(cmd, lang, &rt);
            rt.shutdown_timeout(Duration::from_secs(2));
            Ok(code)
        }
        Some(Cmd::Broker(_)) => Ok(ExitCode::from(2)),
        Some(Cmd::Profiles { json }) => Ok(profiles::run(&paths, json)),
        Some(Cmd::NginxConfig { config: file }) => {
            let cfg = crate::relay::RelayConfig::load(&file).map_err(|e| anyhow::anyhow!("{e}"))?;
            print!("{}", crate::relay::nginx::render(&cfg));
            Ok(ExitCode::SUCCESS)
        }
        None => {
            let log = crate::logging::init(config.log_level, Some(&paths.log_dir()), true);
            let code = gui(
                &rt,
                GuiArgs {
                    paths,
                    connect: connect_to(cli.connect, cli.subscribe)?,
                    config,
                    banner: loaded.problem,
                    log,
                    lang,
                    screenshot: cli.screenshot,
                    quit_after: cli.quit_after,
                    settle: cli.settle,
                    tab,
                    started,
                },
            )?;
            rt.shutdown_timeout(Duration::from_secs(2));
            Ok(code)
        }
    }
}

/// Relay worker processes are single-threaded, like nginx's: one event loop per process, no
/// wakeups across threads. Measured on both routes a relay process spends 25-45 % less CPU per
/// message than on a multi-threaded runtime and carries more (docs/DECISIONS.md); `--workers N`
/// runs N such processes. Everything else gets the multi-thread runtime.
fn runtime(single: bool) -> anyhow::Result<tokio::runtime::Runtime> {
    if single {
        let mut b = tokio::runtime::Builder::new_current_thread();
        crate::relay::handoff::yield_before_sleep(&mut b);
        b.enable_all().thread_name("mpbridge-rt").build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("mpbridge-rt")
            .build()
    }
    .context("cannot start the async runtime")
}

/// `--connect URL --subscribe FILTER…`, the filters checked before a window opens.
fn connect_to(
    url: Option<String>,
    subscribe: Vec<String>,
) -> anyhow::Result<Option<crate::backend::ConnectTo>> {
    let Some(url) = url else { return Ok(None) };
    for f in &subscribe {
        if !crate::mqtt::topic::valid_filter(f) {
            anyhow::bail!("--subscribe {f}: not a valid topic filter");
        }
    }
    Ok(Some(crate::backend::ConnectTo { url, subscribe }))
}

async fn sandbox_cmd(paths: &Paths, for_secs: Option<f64>, json: bool) -> anyhow::Result<ExitCode> {
    let cancel = CancellationToken::new();
    let sandbox = Sandbox::start(paths, &cancel)
        .await
        .context("the sandbox could not start")?;
    if json {
        let line = serde_json::to_string(&sandbox.info)?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
    } else {
        eprintln!(
            "mpbridge sandbox: broker {} · relay {} · devices {} · dev CA {}",
            sandbox.info.broker,
            sandbox.info.relay,
            sandbox.info.devices.join(", "),
            sandbox.info.ca.display()
        );
    }
    let until = async {
        match for_secs {
            Some(s) => tokio::time::sleep(Duration::from_secs_f64(s.max(0.0))).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = until => {}
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; stopping the sandbox"),
        _ = terminated() => tracing::info!("terminated; stopping the sandbox"),
    }
    sandbox.stop().await;
    // Let the simulated device publish its clean `offline`.
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(ExitCode::SUCCESS)
}

/// SIGTERM (service managers, `kill`): stop as cleanly as on Ctrl-C.
async fn terminated() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut s) = signal(SignalKind::terminate()) {
            s.recv().await;
            return;
        }
    }
    std::future::pending::<()>().await
}

/// The window's icon (the packages install the same picture for the desktop).
fn window_icon() -> egui::IconData {
    eframe::icon_data::from_png_bytes(include_bytes!("../../assets/icons/mpbridge-128.png"))
        .unwrap_or_default()
}

struct GuiArgs {
    paths: Paths,
    connect: Option<crate::backend::ConnectTo>,
    config: ConsoleConfig,
    banner: Option<crate::config::Problem>,
    log: crate::logging::LogControl,
    lang: Option<Language>,
    screenshot: Option<PathBuf>,
    quit_after: Option<f64>,
    settle: f64,
    tab: Option<crate::ui::Tab>,
    started: Instant,
}

fn gui(rt: &tokio::runtime::Runtime, args: GuiArgs) -> anyhow::Result<ExitCode> {
    let exit_code = Arc::new(AtomicI32::new(0));
    let plan = match (&args.screenshot, args.quit_after) {
        (None, None) => None,
        (path, secs) => Some(ScreenshotPlan::new(
            path.clone(),
            Duration::from_secs_f64(secs.unwrap_or(20.0).max(0.0)),
            Duration::from_secs_f64(args.settle.max(0.0)),
            exit_code.clone(),
        )),
    };
    let options = eframe::NativeOptions {
        renderer: eframe::Renderer::Glow,
        viewport: egui::ViewportBuilder::default()
            .with_title("mpbridge")
            .with_app_id("mpbridge")
            .with_icon(window_icon())
            .with_inner_size([1180.0, 760.0])
            .with_min_inner_size([720.0, 480.0]),
        ..Default::default()
    };
    let handle = rt.handle().clone();
    let paths = args.paths.clone();
    eframe::run_native(
        "mpbridge",
        options,
        Box::new(move |cc| {
            let ctx = cc.egui_ctx.clone();
            let waker: crate::backend::Waker =
                Arc::new(move || ctx.request_repaint_after(Duration::from_millis(16)));
            let backend = Backend::spawn(
                &handle,
                BackendOptions {
                    paths: paths.clone(),
                    sandbox: true,
                    connect: args.connect.clone(),
                },
                waker,
            );
            let env = AppEnv {
                paths,
                log: Some(args.log),
                started: args.started,
                secrets_in_file: false,
            };
            let mut app =
                ConsoleApp::new(backend, env, args.config, args.banner).with_language(args.lang);
            if let Some(c) = &args.connect {
                app = app
                    .with_subscriptions(c.filters())
                    .with_tab(crate::ui::Tab::Topics);
            }
            if let Some(tab) = args.tab {
                app = app.with_tab(tab);
            }
            if let Some(plan) = plan {
                app = app.with_screenshot(plan);
            }
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))?;
    let code = exit_code.load(Ordering::Relaxed);
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(2)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_window_icon_is_the_packaged_picture() {
        let icon = super::window_icon();
        assert_eq!((icon.width, icon.height), (128, 128));
        assert_eq!(icon.rgba.len(), 128 * 128 * 4);
        // Not blank: the corners are transparent, the middle is drawn.
        assert_eq!(icon.rgba[3], 0, "transparent corner");
        let mid = (64 * 128 + 64) * 4;
        assert_eq!(icon.rgba[mid + 3], 255, "opaque middle");
    }
}
