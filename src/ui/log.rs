//! The in-app log: what `tracing` recorded, filtered by level and text.

use egui::RichText;

use super::i18n::{Tr, fill};
use super::tokens;
use crate::config::LogLevel;
use crate::model::AppEnv;

pub struct LogPanel {
    pub min_level: LogLevel,
    pub search: String,
    pub follow: bool,
    cache: Vec<crate::logging::LogLine>,
    cache_key: Option<(u64, LogLevel, String)>,
}

impl Default for LogPanel {
    fn default() -> Self {
        Self {
            min_level: LogLevel::Info,
            search: String::new(),
            follow: true,
            cache: Vec::new(),
            cache_key: None,
        }
    }
}

impl LogPanel {
    pub fn ui(&mut self, ui: &mut egui::Ui, t: &Tr, env: &AppEnv) {
        ui.heading(t.nav_log);
        ui.horizontal(|ui| {
            ui.label(t.log_level_filter);
            for l in LogLevel::ALL {
                ui.selectable_value(&mut self.min_level, l, l.code());
            }
            ui.separator();
            let label = ui.label(t.log_search);
            ui.add(egui::TextEdit::singleline(&mut self.search).desired_width(200.0))
                .labelled_by(label.id);
            ui.checkbox(&mut self.follow, t.log_follow);
        });
        ui.label(
            RichText::new(fill(
                t.log_file_in,
                &[("path", &env.paths.log_dir().display())],
            ))
            .color(tokens::MUTED),
        );
        ui.separator();

        let Some(log) = &env.log else { return };
        // Copy and filter the ring only when something changed, not every frame.
        let key = (log.ring.total(), self.min_level, self.search.clone());
        if self.cache_key.as_ref() != Some(&key) {
            let needle = self.search.to_lowercase();
            self.cache = log
                .ring
                .snapshot(self.min_level.as_tracing())
                .into_iter()
                .filter(|l| {
                    needle.is_empty()
                        || l.message.to_lowercase().contains(&needle)
                        || l.target.to_lowercase().contains(&needle)
                })
                .collect();
            self.cache_key = Some(key);
        }
        let lines = &self.cache;
        if lines.is_empty() {
            ui.label(RichText::new(t.log_empty).color(tokens::MUTED));
            return;
        }
        egui::ScrollArea::vertical()
            .auto_shrink([false, false])
            .stick_to_bottom(self.follow)
            .show_rows(ui, tokens::ROW_HEIGHT, lines.len(), |ui, range| {
                for line in lines.get(range).unwrap_or_default() {
                    let color = match line.level {
                        tracing::Level::ERROR => tokens::BAD,
                        tracing::Level::WARN => tokens::WARN,
                        _ => ui.visuals().text_color(),
                    };
                    ui.horizontal(|ui| {
                        ui.monospace(line.time.format("%H:%M:%S%.3f").to_string());
                        ui.colored_label(
                            color,
                            RichText::new(format!("{:5}", line.level)).monospace(),
                        );
                        ui.label(RichText::new(&line.target).color(tokens::MUTED).monospace());
                        ui.add(
                            egui::Label::new(RichText::new(&line.message).monospace()).truncate(),
                        );
                    });
                }
            });
    }
}
