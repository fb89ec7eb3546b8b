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

use super::frames::Frames;
use crate::model::LiveModel;
use crate::ui::topics::TopicsPanel;

/// Frames a search over the filled store may take before the bench calls it stuck.
const MAX_SEARCH_FRAMES: usize = 10_000;

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

    let mut frames = Frames::new(&ctx);
    let started = Instant::now();
    let run_for = Duration::from_secs_f64(opts.secs.max(2.0));
    let ingest = ingest_frames(&mut frames, started, run_for, &mut rx, t, &saved);
    stop.store(true, Ordering::Relaxed);
    let big = fill_and_search(&mut frames, started, &opts, t, &saved)?;
    let tree = big_tree(&mut frames, started, t, &saved);
    report(
        &opts,
        &source,
        &ingest,
        dropped.load(Ordering::Relaxed),
        &big,
        &tree,
    );
    Ok(())
}

/// What the panel showed while messages arrived.
struct Ingested {
    messages: u64,
    wall: f64,
    backlog: usize,
    /// The first frames, which build the font atlas (reported apart).
    warmup: Vec<f64>,
    /// Frame times, sorted: as the panel opened, busy, and both.
    plain_ms: Vec<f64>,
    busy_ms: Vec<f64>,
    frame_ms: Vec<f64>,
}

/// Frames at 60 Hz for `run_for`, each draining up to 8 ms of messages like
/// `ConsoleApp::pump`. The first half with the panel as it opens; the second half busy: a
/// message selected in hex with its diff, a regex search over the payloads, part of the tree
/// open.
fn ingest_frames(
    frames: &mut Frames,
    started: Instant,
    run_for: Duration,
    rx: &mut mpsc::Receiver<Msg>,
    t: &'static crate::ui::i18n::Tr,
    saved: &crate::topics::saved::SavedPayloads,
) -> Ingested {
    let mut live = LiveModel::default();
    live.topics.subscribe("#", 0);
    let mut panel = TopicsPanel::default();
    let mut plain_ms = Vec::new();
    let mut busy_ms = Vec::new();
    let mut messages = 0u64;
    let mut busy = false;
    while started.elapsed() < run_for {
        if !busy && started.elapsed() >= run_for / 2 {
            busy = true;
            panel.selected = live.topics.store.iter().next_back().map(|m| m.seq);
            panel.format = crate::topics::view::Format::Hex;
            panel.diff = true;
            panel.search_text = "x{8}".into();
            panel.regex = true;
            let tree = &live.topics.tree;
            let open: Vec<usize> = tree
                .rows(&Default::default(), "")
                .into_iter()
                .take(5)
                .collect();
            panel.open_nodes(&open);
        }
        let t0 = Instant::now();
        let budget = Duration::from_millis(8);
        while t0.elapsed() < budget {
            match rx.try_recv() {
                Ok(m) => {
                    let ms = chrono::Utc::now().timestamp_millis();
                    live.topics
                        .on_message(ms, &m.topic, &m.payload, 0, false, None);
                    messages += 1;
                }
                Err(_) => break,
            }
        }
        frames.draw(started, |ui| {
            let mut actions = Vec::new();
            panel.ui(ui, t, &live, saved, &mut actions);
        });
        let took = t0.elapsed();
        if busy { &mut busy_ms } else { &mut plain_ms }.push(took.as_secs_f64() * 1000.0);
        frames.pace(took);
    }
    let wall = started.elapsed().as_secs_f64();
    let backlog = rx.len();
    let warmup: Vec<f64> = plain_ms.drain(..plain_ms.len().min(3)).collect();
    let mut frame_ms: Vec<f64> = plain_ms.iter().chain(&busy_ms).copied().collect();
    frame_ms.sort_by(f64::total_cmp);
    plain_ms.sort_by(f64::total_cmp);
    busy_ms.sort_by(f64::total_cmp);
    Ingested {
        messages,
        wall,
        backlog,
        warmup,
        plain_ms,
        busy_ms,
        frame_ms,
    }
}

/// The big tree's frames.
struct TreeRun {
    expand_ms: f64,
    expanded_steady: f64,
    filter_ms: f64,
    rows: usize,
}

/// A 100 000-topic tree in the real panel: every node open, then filtered.
fn big_tree(
    frames: &mut Frames,
    started: Instant,
    t: &'static crate::ui::i18n::Tr,
    saved: &crate::topics::saved::SavedPayloads,
) -> TreeRun {
    let payload = Bytes::from(vec![b'x'; 64]);
    let mut tree_live = LiveModel::default();
    for i in 0..100_000 {
        tree_live.topics.on_message(
            i,
            &format!("site/{:03}/dev{:05}/temp", i % 100, i),
            &payload,
            0,
            false,
            None,
        );
    }
    let mut panel = TopicsPanel::default();
    let mut frame_of = |panel: &mut TopicsPanel| {
        let t0 = Instant::now();
        frames.draw(started, |ui| {
            let mut actions = Vec::new();
            panel.ui(ui, t, &tree_live, saved, &mut actions);
        });
        t0.elapsed().as_secs_f64() * 1000.0
    };
    frame_of(&mut panel);
    panel.expand_all(&tree_live.topics.tree);
    let expand_ms = frame_of(&mut panel);
    let expanded_steady = (0..10).map(|_| frame_of(&mut panel)).fold(0.0, f64::max);
    panel.tree_filter = "dev04242".into();
    let filter_ms = frame_of(&mut panel);
    let rows = tree_live
        .topics
        .tree
        .rows(&Default::default(), "dev04242")
        .len();
    TreeRun {
        expand_ms,
        expanded_steady,
        filter_ms,
        rows,
    }
}

fn report(
    opts: &BenchOptions,
    source: &str,
    ingest: &Ingested,
    dropped: u64,
    big: &Filled,
    tree: &TreeRun,
) {
    let wall = ingest.wall;
    println!(
        "mpbridge bench topics — {source}, {} topics, {:.0} s",
        opts.topics, wall
    );
    println!(
        "  ingest: {} messages in {:.1} s, queue backlog at the end {}, dropped at the queue {dropped}",
        ingest.messages, wall, ingest.backlog
    );
    let stats = |v: &[f64]| {
        format!(
            "{} · p50 {:.2} ms · p99 {:.2} ms · max {:.2} ms",
            v.len(),
            percentile(v, 0.5),
            percentile(v, 0.99),
            v.last().copied().unwrap_or(0.0)
        )
    };
    println!(
        "  frames as opened: {} (budget 33 ms); first {} frames (font atlas) {:?} ms",
        stats(&ingest.plain_ms),
        ingest.warmup.len(),
        ingest
            .warmup
            .iter()
            .map(|x| (x * 10.0).round() / 10.0)
            .collect::<Vec<_>>()
    );
    println!(
        "  frames busy (hex view + diff, regex search, tree open): {}",
        stats(&ingest.busy_ms)
    );
    println!(
        "  store: {} messages filled at {:.0}/s, RSS {:.0} MB before → {:.0} MB after; a search over all of them finished in {search_frames} frames ({search_secs:.2} s), max {full_max:.1} ms a frame",
        opts.fill,
        big.fill_rate,
        big.rss_before,
        big.rss_1m,
        search_frames = big.search_frames,
        search_secs = big.search_secs,
        full_max = big.full_max
    );
    println!(
        "  tree: 100000 topics; the frame opening every node {:.1} ms, then max {:.1} ms per frame; filter \"dev04242\" ({} rows) {:.1} ms",
        tree.expand_ms, tree.expanded_steady, tree.rows, tree.filter_ms
    );
    let frame_ms = &ingest.frame_ms;
    println!(
        "ingest_msgs_per_s={:.0} frame_p50_ms={:.2} frame_p99_ms={:.2} frame_max_ms={:.2} rss_mb_1m={:.0} search_frames={search_frames}",
        ingest.messages as f64 / wall,
        percentile(frame_ms, 0.5),
        percentile(frame_ms, 0.99),
        frame_ms.last().copied().unwrap_or(0.0),
        big.rss_1m,
        search_frames = big.search_frames
    );
}

/// What filling one million messages and searching all of them showed.
struct Filled {
    fill_rate: f64,
    rss_before: f64,
    rss_1m: f64,
    search_frames: usize,
    search_secs: f64,
    full_max: f64,
}

/// One million messages in a fresh store (the ingest phase's store gone), then the panel drawn
/// over it, searching all of it: the search scans a share of the store per frame, so what
/// counts is how many frames it takes to finish (and that it does).
fn fill_and_search(
    frames: &mut Frames,
    started: Instant,
    opts: &BenchOptions,
    t: &'static crate::ui::i18n::Tr,
    saved: &crate::topics::saved::SavedPayloads,
) -> anyhow::Result<Filled> {
    let payload = Bytes::from(vec![b'x'; 64]);
    let names: Vec<String> = (0..opts.topics.max(1)).map(bench_topic).collect();
    let rss_before = rss_mb();
    let mut big = LiveModel::default();
    let fill_start = Instant::now();
    for i in 0..opts.fill {
        // Each message its own payload allocation, as messages from a broker have.
        let own = Bytes::copy_from_slice(&payload);
        big.topics
            .on_message(i as i64, &names[i % names.len()], &own, 0, false, None);
    }
    let fill_rate = opts.fill as f64 / fill_start.elapsed().as_secs_f64().max(1e-9);
    let rss_1m = rss_mb();
    let mut panel = TopicsPanel::default();
    let mut full_ms = Vec::new();
    panel.search_text = "no such text".into();
    let search_started = Instant::now();
    loop {
        let t0 = Instant::now();
        frames.draw(started, |ui| {
            let mut actions = Vec::new();
            panel.ui(ui, t, &big, saved, &mut actions);
        });
        full_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
        if !panel.search_in_progress() {
            break;
        }
        if full_ms.len() >= MAX_SEARCH_FRAMES {
            anyhow::bail!(
                "a search over {} messages had not finished after {MAX_SEARCH_FRAMES} frames",
                opts.fill
            );
        }
    }
    Ok(Filled {
        fill_rate,
        rss_before,
        rss_1m,
        search_frames: full_ms.len(),
        search_secs: search_started.elapsed().as_secs_f64(),
        full_max: full_ms.iter().copied().fold(0.0, f64::max),
    })
}
