//! `mpbridge bench topics`: the Topics panel under load, headless. A producer thread offers
//! messages at the target rate into the same bounded queue the backend uses; each frame drains
//! it into the real store and tree (8 ms budget, as the console does), then lays out and
//! tessellates the real Topics panel. Then one million messages are filled and the resident
//! memory read, and a 100 000-topic tree is expanded and searched.
//!
//! With `--broker mqtt://HOST:PORT` the messages come end to end: a load publisher through
//! the broker to a subscriber, instead of the producer thread.

use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::app::LiveModel;
use crate::ui::topics::TopicsPanel;

pub struct BenchOptions {
    pub secs: f64,
    pub rate: u64,
    pub topics: usize,
    pub fill: usize,
    pub broker: Option<String>,
}

pub(super) struct Msg {
    pub(super) topic: String,
    pub(super) payload: Bytes,
}

/// The i-th of the bench's topics: 50 groups, like a fleet under sites.
pub(super) fn bench_topic(i: usize) -> String {
    format!("bench/{:02}/{:04}/telemetry", i % 50, i)
}

fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map(|pages| pages * 4096.0 / 1_048_576.0)
        .unwrap_or(0.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A producer at `rate` messages/s over `topics` topics, until `stop`.
fn spawn_producer(
    tx: mpsc::Sender<Msg>,
    rate: u64,
    topics: usize,
    dropped: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<u64>> {
    crate::spawn_named("bench-producer", move || {
        let names: Vec<String> = (0..topics.max(1)).map(bench_topic).collect();
        let payload = Bytes::from(vec![b'x'; 64]);
        let start = Instant::now();
        let mut sent = 0u64;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
            while sent < due {
                let m = Msg {
                    topic: names[(sent as usize) % names.len()].clone(),
                    payload: payload.clone(),
                };
                if tx.try_send(m).is_err() {
                    dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                sent += 1;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        sent
    })
}

pub fn run(opts: BenchOptions, rt: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    let ctx = egui::Context::default();
    crate::ui::fonts::install(&ctx);
    let t = crate::ui::i18n::tr(crate::config::Language::En);
    let mut live = LiveModel::default();
    live.topics.subscribe("#", 0);
    let mut panel = TopicsPanel::default();
    let saved = crate::topics::saved::SavedPayloads::default();

    let (tx, mut rx) = mpsc::channel::<Msg>(crate::backend::EVENT_CAPACITY);
    let dropped = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut _producer = None;
    let source = match &opts.broker {
        None => {
            _producer = Some(spawn_producer(
                tx,
                opts.rate,
                opts.topics,
                dropped.clone(),
                stop.clone(),
            )?);
            format!("in-process producer at {} msg/s", opts.rate)
        }
        Some(url) => {
            rt.block_on(super::topics_broker::start(
                url,
                opts.rate,
                opts.topics,
                tx,
                dropped.clone(),
                stop.clone(),
            ))?;
            format!(
                "{url}: load publisher → broker → subscriber at {} msg/s",
                opts.rate
            )
        }
    };

    // Frames at 60 Hz for `secs`, each draining up to 8 ms like ConsoleApp::pump.
    let mut frame_ms = Vec::new();
    let started = Instant::now();
    let mut ingested = 0u64;
    let frame = Duration::from_micros(16_667);
    let mut input = egui::RawInput {
        screen_rect: Some(egui::Rect::from_min_size(
            egui::Pos2::ZERO,
            egui::vec2(1280.0, 800.0),
        )),
        ..Default::default()
    };
    let run_for = Duration::from_secs_f64(opts.secs.max(1.0));
    while started.elapsed() < run_for {
        let t0 = Instant::now();
        let budget = Duration::from_millis(8);
        while t0.elapsed() < budget {
            match rx.try_recv() {
                Ok(m) => {
                    let ms = chrono::Utc::now().timestamp_millis();
                    live.topics
                        .on_message(ms, &m.topic, &m.payload, 0, false, None);
                    ingested += 1;
                }
                Err(_) => break,
            }
        }
        input.time = Some(started.elapsed().as_secs_f64());
        let mut actions = Vec::new();
        let out = ctx.run_ui(input.clone(), |ui| {
            panel.ui(ui, t, &live, &saved, &mut actions);
        });
        let egui::FullOutput {
            shapes,
            pixels_per_point,
            mut textures_delta,
            ..
        } = out;
        // No GPU here: the font atlas updates are dropped, the triangles are still made.
        textures_delta.clear();
        let _prims = ctx.tessellate(shapes, pixels_per_point);
        let took = t0.elapsed();
        frame_ms.push(took.as_secs_f64() * 1000.0);
        if let Some(rest) = frame.checked_sub(took) {
            std::thread::sleep(rest);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let wall = started.elapsed().as_secs_f64();
    let backlog = rx.len();
    // The first frames build the font atlas; they are reported apart.
    let warmup: Vec<f64> = frame_ms.drain(..frame_ms.len().min(3)).collect();
    frame_ms.sort_by(f64::total_cmp);

    // One million messages in the store.
    let mut big = crate::topics::Topics::default();
    let payload = Bytes::from(vec![b'x'; 64]);
    let names: Vec<String> = (0..opts.topics.max(1)).map(bench_topic).collect();
    let rss_before = rss_mb();
    let fill_start = Instant::now();
    for i in 0..opts.fill {
        // Each message its own payload allocation, as messages from a broker have.
        let own = Bytes::copy_from_slice(&payload);
        big.on_message(i as i64, &names[i % names.len()], &own, 0, false, None);
    }
    let fill_rate = opts.fill as f64 / fill_start.elapsed().as_secs_f64().max(1e-9);
    let rss_1m = rss_mb();
    drop(live);

    // A 100 000-topic tree: expand everything, then search.
    let mut tree = crate::topics::Tree::default();
    for i in 0..100_000 {
        tree.on_message(
            &format!("site/{:03}/dev{:05}/temp", i % 100, i),
            &payload,
            false,
            0,
        );
    }
    let all: std::collections::HashSet<usize> = (0..=tree.len()).collect();
    let t_expand = Instant::now();
    let rows = tree.rows(&all, "");
    let expand_ms = t_expand.elapsed().as_secs_f64() * 1000.0;
    let t_search = Instant::now();
    let found = tree.rows(&std::collections::HashSet::new(), "dev04242");
    let search_ms = t_search.elapsed().as_secs_f64() * 1000.0;

    println!(
        "mpbridge bench topics — {source}, {} topics, {:.0} s",
        opts.topics, wall
    );
    println!(
        "  ingest: {} messages in {:.1} s, queue backlog at the end {backlog}, dropped at the queue {}",
        ingested,
        wall,
        dropped.load(Ordering::Relaxed)
    );
    println!(
        "  frames: {} · p50 {:.2} ms · p99 {:.2} ms · max {:.2} ms (budget 33 ms); first {} frames (font atlas) {:?} ms",
        frame_ms.len(),
        percentile(&frame_ms, 0.5),
        percentile(&frame_ms, 0.99),
        frame_ms.last().copied().unwrap_or(0.0),
        warmup.len(),
        warmup
            .iter()
            .map(|x| (x * 10.0).round() / 10.0)
            .collect::<Vec<_>>()
    );
    println!(
        "  store: {} messages filled at {:.0}/s, {} held, RSS {:.0} MB before → {:.0} MB after",
        opts.fill,
        fill_rate,
        big.store.len(),
        rss_before,
        rss_1m
    );
    println!(
        "  tree: 100000 topics, {} rows expanded in {:.1} ms, search \"dev04242\" → {} rows in {:.1} ms",
        rows.len(),
        expand_ms,
        found.len(),
        search_ms
    );
    println!(
        "ingest_msgs_per_s={:.0} frame_p50_ms={:.2} frame_p99_ms={:.2} frame_max_ms={:.2} rss_mb_1m={:.0}",
        ingested as f64 / wall,
        percentile(&frame_ms, 0.5),
        percentile(&frame_ms, 0.99),
        frame_ms.last().copied().unwrap_or(0.0),
        rss_1m
    );
    Ok(())
}
