//! Headless egui frames for the benches: the real panels laid out and tessellated, no GPU.

use std::time::{Duration, Instant};

/// Headless frames of one egui context: lay out, tessellate, drop the texture uploads.
pub(super) struct Frames {
    ctx: egui::Context,
    input: egui::RawInput,
}

impl Frames {
    pub(super) fn new(ctx: &egui::Context) -> Self {
        Frames {
            ctx: ctx.clone(),
            input: egui::RawInput {
                screen_rect: Some(egui::Rect::from_min_size(
                    egui::Pos2::ZERO,
                    egui::vec2(1280.0, 800.0),
                )),
                ..Default::default()
            },
        }
    }

    pub(super) fn draw(&mut self, started: Instant, f: impl FnMut(&mut egui::Ui)) {
        self.input.time = Some(started.elapsed().as_secs_f64());
        let out = self.ctx.run_ui(self.input.clone(), f);
        let egui::FullOutput {
            shapes,
            pixels_per_point,
            mut textures_delta,
            ..
        } = out;
        // No GPU here: the font atlas updates are dropped, the triangles are still made.
        textures_delta.clear();
        let _prims = self.ctx.tessellate(shapes, pixels_per_point);
    }

    /// Sleeps out the rest of a 60 Hz frame.
    pub(super) fn pace(&self, took: Duration) {
        if let Some(rest) = Duration::from_micros(16_667).checked_sub(took) {
            std::thread::sleep(rest);
        }
    }
}
