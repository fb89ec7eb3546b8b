//! `mpbridge --screenshot PATH`: wait until live data is on screen, save the window as PNG,
//! close. Used by the Xvfb smoke test and for the README images.

use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct ScreenshotPlan {
    /// Where to write the PNG; `None`: only quit after the deadline.
    pub path: Option<PathBuf>,
    pub deadline: Instant,
    settle: Duration,
    /// The process exit code: 0 when the picture shows live data, 1 otherwise.
    pub exit_code: Arc<AtomicI32>,
    phase: Phase,
    slot: Arc<Mutex<Option<Arc<egui::ColorImage>>>>,
}

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    Waiting,
    /// Live data arrived; keep drawing until `until`, then `n` more frames.
    Settling {
        until: Instant,
        frames: u8,
    },
    Requested {
        live: bool,
    },
    Done,
}

impl ScreenshotPlan {
    /// `wait`: the longest wait for live data; `settle`: how long to let live data
    /// accumulate (plots, lists) before the picture.
    pub fn new(
        path: Option<PathBuf>,
        wait: Duration,
        settle: Duration,
        exit_code: Arc<AtomicI32>,
    ) -> Self {
        Self {
            path,
            deadline: Instant::now() + wait,
            settle,
            exit_code,
            phase: Phase::Waiting,
            slot: Arc::default(),
        }
    }

    pub fn logic(&mut self, ctx: &egui::Context, live: bool) {
        let timed_out = Instant::now() >= self.deadline;
        // The screenshot callback fills the slot after a later frame is painted.
        let shot = self.slot.lock().ok().and_then(|mut s| s.take());
        match self.phase {
            Phase::Waiting if self.path.is_none() => {
                if timed_out {
                    self.exit_code.store(0, Ordering::Relaxed);
                    self.close(ctx);
                } else {
                    ctx.request_repaint_after(self.deadline - Instant::now());
                }
            }
            Phase::Waiting if live => {
                self.phase = Phase::Settling {
                    until: Instant::now() + self.settle,
                    frames: 3,
                };
                ctx.request_repaint();
            }
            Phase::Waiting if timed_out => self.request(ctx, false),
            Phase::Waiting => ctx.request_repaint_after(Duration::from_millis(250)),
            Phase::Settling { until, .. } if Instant::now() < until => {
                ctx.request_repaint_after(until - Instant::now());
            }
            Phase::Settling { frames: 0, .. } => self.request(ctx, true),
            Phase::Settling { until, frames } => {
                self.phase = Phase::Settling {
                    until,
                    frames: frames - 1,
                };
                ctx.request_repaint();
            }
            Phase::Requested { live } => {
                if let (Some(image), Some(path)) = (shot, &self.path) {
                    match save_png(path, &image) {
                        Ok(()) => {
                            tracing::info!("screenshot written to {}", path.display());
                            self.exit_code
                                .store(if live { 0 } else { 1 }, Ordering::Relaxed);
                            if !live {
                                tracing::error!(
                                    "no live data was drawn before the deadline; the screenshot shows the console without it"
                                );
                            }
                        }
                        Err(e) => {
                            tracing::error!("cannot write the screenshot {}: {e}", path.display());
                            self.exit_code.store(2, Ordering::Relaxed);
                        }
                    }
                    self.close(ctx);
                } else if timed_out && Instant::now() > self.deadline + Duration::from_secs(10) {
                    tracing::error!("the window system never delivered the screenshot");
                    self.exit_code.store(2, Ordering::Relaxed);
                    self.close(ctx);
                } else {
                    ctx.request_repaint_after(Duration::from_millis(50));
                }
            }
            Phase::Done => {}
        }
    }

    fn request(&mut self, ctx: &egui::Context, live: bool) {
        let slot = self.slot.clone();
        let repaint = ctx.clone();
        ctx.request_screenshot(move |image| {
            if let Ok(mut s) = slot.lock() {
                *s = Some(image);
            }
            repaint.request_repaint();
        });
        self.phase = Phase::Requested { live };
        ctx.request_repaint();
    }

    fn close(&mut self, ctx: &egui::Context) {
        self.phase = Phase::Done;
        ctx.send_viewport_cmd(egui::ViewportCommand::Close);
    }
}

/// Writes an egui image as an RGBA PNG.
pub fn save_png(path: &std::path::Path, image: &egui::ColorImage) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let [w, h] = image.size;
    let mut enc = png::Encoder::new(file, w as u32, h as u32);
    enc.set_color(png::ColorType::Rgba);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().map_err(std::io::Error::other)?;
    let bytes: Vec<u8> = image.pixels.iter().flat_map(|c| c.to_array()).collect();
    writer
        .write_image_data(&bytes)
        .map_err(std::io::Error::other)?;
    writer.finish().map_err(std::io::Error::other)
}
