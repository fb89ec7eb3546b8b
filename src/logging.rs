//! Logging: `tracing` to stderr, to a daily rolling file in the data folder, and to a bounded
//! in-memory ring that the console's log view reads. The level can be changed at run time.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry, reload};

use crate::config::LogLevel;

/// One line of the in-app log.
#[derive(Debug, Clone)]
pub struct LogLine {
    pub time: chrono::DateTime<chrono::Local>,
    pub level: tracing::Level,
    pub target: String,
    pub message: String,
}

/// How many lines the in-app log keeps.
pub const LOG_RING_CAPACITY: usize = 2_000;

/// The in-app log: a bounded ring shared with the UI.
#[derive(Clone, Default)]
pub struct LogRing {
    inner: Arc<Mutex<Ring>>,
}

#[derive(Default)]
struct Ring {
    lines: VecDeque<LogLine>,
    /// Counts every line ever pushed, so readers can tell when something is new.
    total: u64,
    waker: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl LogRing {
    fn push(&self, line: LogLine) {
        let waker = {
            let Ok(mut ring) = self.inner.lock() else {
                return;
            };
            if ring.lines.len() >= LOG_RING_CAPACITY {
                ring.lines.pop_front();
            }
            ring.lines.push_back(line);
            ring.total += 1;
            ring.waker.clone()
        };
        if let Some(w) = waker {
            w();
        }
    }

    /// Called after each new line (the console asks for a repaint).
    pub fn set_waker(&self, waker: Arc<dyn Fn() + Send + Sync>) {
        if let Ok(mut ring) = self.inner.lock() {
            ring.waker = Some(waker);
        }
    }

    /// Number of lines pushed so far (monotonic).
    pub fn total(&self) -> u64 {
        self.inner.lock().map(|r| r.total).unwrap_or(0)
    }

    /// A copy of the lines at or above `min`, oldest first.
    pub fn snapshot(&self, min: tracing::Level) -> Vec<LogLine> {
        self.inner
            .lock()
            .map(|r| r.lines.iter().filter(|l| l.level <= min).cloned().collect())
            .unwrap_or_default()
    }
}

struct RingLayer {
    ring: LogRing,
}

#[derive(Default)]
struct MessageVisitor {
    message: String,
    fields: String,
}

impl Visit for MessageVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            use std::fmt::Write;
            write!(self.fields, " {}={value:?}", field.name()).ok();
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            use std::fmt::Write;
            write!(self.fields, " {}={value}", field.name()).ok();
        }
    }
}

impl<S: Subscriber> Layer<S> for RingLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut v = MessageVisitor::default();
        event.record(&mut v);
        let meta = event.metadata();
        self.ring.push(LogLine {
            time: chrono::Local::now(),
            level: *meta.level(),
            target: meta.target().to_owned(),
            message: format!("{}{}", v.message, v.fields),
        });
    }
}

/// Changes the log level at run time.
#[derive(Clone)]
pub struct LogControl {
    handle: reload::Handle<EnvFilter, Registry>,
    pub ring: LogRing,
}

impl LogControl {
    pub fn set_level(&self, level: LogLevel) {
        if let Err(e) = self.handle.reload(filter_for(level)) {
            tracing::warn!("could not change the log level: {e}");
        }
    }
}

/// The filter for a level; chatty dependencies are held at `warn` unless tracing.
fn filter_for(level: LogLevel) -> EnvFilter {
    if let Ok(f) = std::env::var("MPBRIDGE_LOG").map(EnvFilter::try_new) {
        match f {
            Ok(f) => return f,
            Err(e) => eprintln!("mpbridge: MPBRIDGE_LOG ignored: {e}"),
        }
    }
    let lf = LevelFilter::from_level(level.as_tracing());
    let mut f = EnvFilter::default().add_directive(lf.into());
    // Dependencies speak only when asked for detail: winit and the font provider warn about
    // every headless X server. (The embedded broker runs in its own process with its own
    // filter; its lines arrive here under `mpbridge::broker`.)
    let quiet: &[(&str, &str)] = match level {
        LogLevel::Trace => &[],
        LogLevel::Debug => &[("rumqttc", "info")],
        _ => &[
            ("rumqttc", "warn"),
            ("winit", "error"),
            ("eframe", "warn"),
            ("egui_glow", "warn"),
            ("egui_system_font_provider", "error"),
            ("log", "error"),
            ("calloop", "warn"),
            ("sctk", "warn"),
        ],
    };
    for (target, lvl) in quiet {
        if let Ok(d) = format!("{target}={lvl}").parse() {
            f = f.add_directive(d);
        }
    }
    f
}

/// Installs the global subscriber. With `log_dir`, lines also go to `mpbridge.log.<date>`
/// there (daily files, the last 7 kept). Returns the control handle; the second call in a
/// process (tests) returns a handle whose ring is not fed.
pub fn init(level: LogLevel, log_dir: Option<&Path>, to_stderr: bool) -> LogControl {
    let ring = LogRing::default();
    let (filter, handle) = reload::Layer::new(filter_for(level));
    let file = log_dir.and_then(|dir| {
        std::fs::create_dir_all(dir).ok()?;
        tracing_appender::rolling::Builder::new()
            .rotation(tracing_appender::rolling::Rotation::DAILY)
            .filename_prefix("mpbridge.log")
            .max_log_files(7)
            .build(dir)
            .ok()
    });
    let file_layer = file.map(|appender| {
        tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(Mutex::new(appender))
    });
    let stderr_layer = to_stderr.then(|| {
        use std::io::IsTerminal;
        tracing_subscriber::fmt::layer()
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
    });
    let result = tracing_subscriber::registry()
        .with(filter)
        .with(RingLayer { ring: ring.clone() })
        .with(file_layer)
        .with(stderr_layer)
        .try_init();
    if result.is_err() {
        tracing::debug!("a global tracing subscriber was already installed");
    }
    LogControl { handle, ring }
}
