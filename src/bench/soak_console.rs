//! The console part of `bench soak`: the console headless (its real backend, sandbox and
//! panels, frames laid out and tessellated at 30 Hz on the Topics panel, no window) with a
//! fleet of simulated devices (`mpbridge simulate`, its own process) publishing to the sandbox
//! broker, the console subscribed to `#`. Memory must stay within the message store's bound
//! plus the fixed overhead measured once the fleet is up.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde::Serialize;

use super::frames::Frames;
use super::procs::{Proc, rss_alone_kib};
use super::soak::SoakOptions;
use crate::app::{AppEnv, ConsoleApp};
use crate::backend::{Backend, BackendOptions, SandboxState};
use crate::config::ConsoleConfig;

#[derive(Debug, Clone, Default, Serialize)]
pub struct ConsoleSoak {
    pub secs: f64,
    pub devices: usize,
    pub devices_online_end: usize,
    pub store_max_messages: usize,
    pub store_max_mb: usize,
    /// The console process once the fleet is up (the fixed overhead, store nearly empty).
    pub rss_start_kib: u64,
    pub rss_end_kib: u64,
    pub rss_max_kib: u64,
    /// What the store counted it held at the end.
    pub store_messages_end: usize,
    pub store_bytes_end: usize,
    pub ingested: u64,
    /// Messages the store let go of to stay within its bound.
    pub evicted: u64,
    /// Messages the backend's queue had no room for (the UI fell behind).
    pub dropped: u64,
    pub frames: u64,
    pub frame_p99_ms: f64,
    pub broker_rss_end_kib: u64,
}

impl ConsoleSoak {
    /// The memory allowed: the overhead at start plus the store's bound.
    pub fn rss_allowed_kib(&self) -> u64 {
        self.rss_start_kib + self.store_max_mb as u64 * 1024
    }

    pub fn violations(&self) -> Vec<String> {
        let mut v = Vec::new();
        if self.rss_max_kib > self.rss_allowed_kib() {
            v.push(format!(
                "the console reached {} KiB, over its start ({} KiB) plus the store's bound ({} MiB)",
                self.rss_max_kib, self.rss_start_kib, self.store_max_mb
            ));
        }
        if self.store_messages_end > self.store_max_messages
            || self.store_bytes_end > self.store_max_mb * 1024 * 1024
        {
            v.push(format!(
                "the store holds {} messages / {} bytes, over its bound",
                self.store_messages_end, self.store_bytes_end
            ));
        }
        if self.devices_online_end < self.devices {
            v.push(format!(
                "{} of {} devices were online at the end",
                self.devices_online_end, self.devices
            ));
        }
        if self.dropped > 0 {
            v.push(format!(
                "{} messages were dropped by a full queue (the console fell behind)",
                self.dropped
            ));
        }
        if self.ingested == 0 {
            v.push("the console received no messages".into());
        }
        v
    }
}

pub(super) fn print(c: &ConsoleSoak) {
    println!(
        "\nconsole soak: {:.0} s headless on the sandbox, {} simulated devices, Topics on `#`, store bound {} messages / {} MiB",
        c.secs, c.devices, c.store_max_messages, c.store_max_mb
    );
    println!(
        "console RSS: {:.1} MiB once the fleet was up, {:.1} MiB at the end, {:.1} MiB at most; allowed {:.1} MiB (start + store bound)",
        c.rss_start_kib as f64 / 1024.0,
        c.rss_end_kib as f64 / 1024.0,
        c.rss_max_kib as f64 / 1024.0,
        c.rss_allowed_kib() as f64 / 1024.0
    );
    println!(
        "messages: {} received, {} in the store at the end ({:.1} MiB counted), {} let go to stay within the bound, {} dropped by a full queue",
        c.ingested,
        c.store_messages_end,
        c.store_bytes_end as f64 / 1_048_576.0,
        c.evicted,
        c.dropped
    );
    println!(
        "frames: {} drawn, p99 {:.1} ms; devices online at the end: {} of {}; sandbox broker RSS {:.1} MiB",
        c.frames,
        c.frame_p99_ms,
        c.devices_online_end,
        c.devices,
        c.broker_rss_end_kib as f64 / 1024.0
    );
}

fn own_rss_kib() -> u64 {
    rss_alone_kib(std::process::id())
}

pub(super) fn run(opts: &SoakOptions, rt: &tokio::runtime::Runtime) -> anyhow::Result<ConsoleSoak> {
    let dir = tempfile::tempdir()?;
    let paths = crate::config::Paths::under(dir.path());
    let config = ConsoleConfig {
        language: Some(crate::config::Language::En),
        store: opts.store,
        ..Default::default()
    };
    let backend = Backend::spawn(
        rt.handle(),
        BackendOptions {
            paths: paths.clone(),
            sandbox: true,
            connect: None,
        },
        Arc::new(|| {}),
    );
    let env = AppEnv {
        paths,
        log: None,
        started: Instant::now(),
        secrets_in_file: true,
    };
    let mut app = ConsoleApp::new(backend, env, config, None).with_tab(crate::ui::Tab::Topics);
    let ctx = egui::Context::default();
    let mut frames = Frames::new(&ctx);
    let started = Instant::now();
    let frame = |app: &mut ConsoleApp, frames: &mut Frames| {
        frames.draw(started, |ui| {
            app.pump(ui.ctx());
            app.frame_ui(ui);
        });
    };

    // The sandbox up, then the fleet on its broker.
    let deadline = Instant::now() + Duration::from_secs(60);
    let info = loop {
        frame(&mut app, &mut frames);
        match &app.live.status.sandbox {
            SandboxState::Running(info) => break info.clone(),
            SandboxState::Failed(e) => bail!("the sandbox did not start: {e}"),
            _ if Instant::now() > deadline => bail!("the sandbox did not start within 60 s"),
            _ => std::thread::sleep(Duration::from_millis(30)),
        }
    };
    let sim = Command::new(std::env::current_exe()?)
        .args(["simulate", "--broker", &info.broker, "--id-prefix", "soak"])
        .args(["--devices", &opts.devices.to_string()])
        .env("MPBRIDGE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let _sim = Proc {
        name: "simulate",
        child: sim,
        stop: None,
    };
    let fleet_up = Instant::now() + Duration::from_secs(120);
    while app.live.devices_online() < opts.devices && Instant::now() < fleet_up {
        frame(&mut app, &mut frames);
        std::thread::sleep(Duration::from_millis(30));
    }
    // Let the first burst settle before the overhead is read.
    let settle = Instant::now() + Duration::from_secs(3);
    while Instant::now() < settle {
        frame(&mut app, &mut frames);
        std::thread::sleep(Duration::from_millis(30));
    }
    let rss_start = own_rss_kib();
    let mut rss_max = rss_start;
    let mut frame_ms = Vec::new();
    let soak_for = Duration::from_secs_f64(opts.secs.max(5.0));
    let soak_start = Instant::now();
    let mut last_sample = Instant::now();
    let mut last_print = Instant::now();
    while soak_start.elapsed() < soak_for {
        let t0 = Instant::now();
        frame(&mut app, &mut frames);
        let took = t0.elapsed();
        frame_ms.push(took.as_secs_f64() * 1000.0);
        if last_sample.elapsed() >= Duration::from_secs(1) {
            last_sample = Instant::now();
            rss_max = rss_max.max(own_rss_kib());
        }
        if !opts.json && last_print.elapsed() >= Duration::from_secs(60) {
            last_print = Instant::now();
            eprintln!(
                "  {:>5.0} s: console {:.1} MiB, {} messages in the store, {} devices online",
                soak_start.elapsed().as_secs_f64(),
                own_rss_kib() as f64 / 1024.0,
                app.live.topics.store.len(),
                app.live.devices_online()
            );
        }
        // 30 Hz, as a window that is open and busy.
        if let Some(rest) = Duration::from_millis(33).checked_sub(took) {
            std::thread::sleep(rest);
        }
    }
    let rss_end = own_rss_kib();
    frame_ms.sort_by(f64::total_cmp);
    let broker_pid = super::procs::family(std::process::id())
        .into_iter()
        .skip(1)
        .find(|&p| {
            std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| c.split('\0').any(|a| a == "broker"))
        });
    let c = ConsoleSoak {
        secs: soak_start.elapsed().as_secs_f64(),
        devices: opts.devices,
        devices_online_end: app.live.devices_online(),
        store_max_messages: opts.store.max_messages,
        store_max_mb: opts.store.max_mb,
        rss_start_kib: rss_start,
        rss_end_kib: rss_end,
        rss_max_kib: rss_max.max(rss_end),
        store_messages_end: app.live.topics.store.len(),
        store_bytes_end: app.live.topics.store.bytes(),
        ingested: app.live.topics.ingested,
        evicted: app
            .live
            .topics
            .ingested
            .saturating_sub(app.live.topics.store.len() as u64),
        dropped: app.live.dropped,
        frames: frame_ms.len() as u64,
        frame_p99_ms: frame_ms
            .get(frame_ms.len().saturating_sub(1) * 99 / 100)
            .copied()
            .unwrap_or(0.0),
        broker_rss_end_kib: broker_pid.map(rss_alone_kib).unwrap_or(0),
    };
    app.backend().shutdown();
    drop(app);
    std::thread::sleep(Duration::from_millis(500));
    Ok(c)
}
