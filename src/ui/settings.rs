//! Settings: language, theme, log level, folders. Every change is saved at once.

use egui::RichText;

use super::i18n::{Tr, fill};
use super::tokens;
use crate::backend::{FileCmd, FolderReport, Requested};
use crate::config::{ConsoleConfig, Language, LogLevel, Theme};
use crate::model::{Action, AppEnv};

#[derive(Default)]
pub struct SettingsPanel {
    data_dir_edit: Option<String>,
    /// The store bounds being edited (applied with a button).
    store_edit: Option<crate::config::StoreBounds>,
    folder_check: Option<Requested<FolderReport, crate::i18n::L10n>>,
}

impl SettingsPanel {
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        t: &Tr,
        config: &ConsoleConfig,
        env: &AppEnv,
        actions: &mut Vec<Action>,
    ) {
        ui.heading(t.nav_settings);
        ui.add_space(6.0);
        egui::Grid::new("settings")
            .num_columns(2)
            .spacing([16.0, 10.0])
            .show(ui, |ui| {
                ui.label(t.language);
                ui.horizontal(|ui| {
                    for l in Language::ALL {
                        if ui
                            .selectable_label(config.language == Some(l), l.native_name())
                            .clicked()
                        {
                            actions.push(Action::SetLanguage(Some(l)));
                        }
                    }
                    if ui
                        .selectable_label(config.language.is_none(), t.language_follow_os)
                        .clicked()
                    {
                        actions.push(Action::SetLanguage(None));
                    }
                });
                ui.end_row();

                ui.label(t.theme);
                ui.horizontal(|ui| {
                    for (th, label) in
                        Theme::ALL
                            .into_iter()
                            .zip([t.theme_system, t.theme_light, t.theme_dark])
                    {
                        if ui.selectable_label(config.theme == th, label).clicked() {
                            actions.push(Action::SetTheme(th));
                        }
                    }
                });
                ui.end_row();

                ui.label(t.log_level);
                ui.horizontal(|ui| {
                    for l in LogLevel::ALL {
                        if ui
                            .selectable_label(config.log_level == l, l.code())
                            .clicked()
                        {
                            actions.push(Action::SetLogLevel(l));
                        }
                    }
                });
                ui.end_row();

                ui.label(t.settings_store);
                ui.vertical(|ui| {
                    let b = self.store_edit.get_or_insert(config.store);
                    ui.horizontal(|ui| {
                        ui.add(
                            egui::DragValue::new(&mut b.max_messages)
                                .range(crate::config::StoreBounds::MESSAGES)
                                .speed(1000.0)
                                .suffix(t.settings_store_messages),
                        );
                        ui.add(
                            egui::DragValue::new(&mut b.max_mb)
                                .range(crate::config::StoreBounds::MB)
                                .suffix(" MB"),
                        );
                        ui.add(
                            egui::DragValue::new(&mut b.keep_payload_kb)
                                .range(crate::config::StoreBounds::PAYLOAD_KB)
                                .prefix(t.settings_store_keep)
                                .suffix(" KiB"),
                        );
                        if ui
                            .add_enabled(*b != config.store, egui::Button::new(t.settings_apply))
                            .clicked()
                        {
                            actions.push(Action::SetStoreBounds(*b));
                        }
                    });
                    ui.label(
                        RichText::new(t.settings_store_hint)
                            .small()
                            .color(tokens::MUTED),
                    );
                });
                ui.end_row();

                ui.label(t.config_folder);
                ui.monospace(env.paths.config_dir.display().to_string());
                ui.end_row();

                ui.label(t.data_folder);
                ui.vertical(|ui| {
                    ui.monospace(env.paths.data_dir.display().to_string());
                    self.data_dir_ui(ui, t, config, env, actions);
                });
                ui.end_row();
            });
        ui.add_space(14.0);
        about_ui(ui, t);
    }

    fn data_dir_ui(
        &mut self,
        ui: &mut egui::Ui,
        t: &Tr,
        config: &ConsoleConfig,
        env: &AppEnv,
        actions: &mut Vec<Action>,
    ) {
        let edit = self.data_dir_edit.get_or_insert_with(|| {
            config
                .data_dir
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        });
        ui.horizontal(|ui| {
            let label = ui.label(t.data_folder_custom);
            let resp = ui
                .add(egui::TextEdit::singleline(edit).desired_width(260.0))
                .labelled_by(label.id);
            let path = std::path::PathBuf::from(edit.trim());
            if resp.lost_focus() && path.is_absolute() && config.data_dir.as_ref() != Some(&path) {
                actions.push(Action::SetDataDir(Some(path)));
            }
            if config.data_dir.is_some() && ui.button(t.use_default).clicked() {
                edit.clear();
                actions.push(Action::SetDataDir(None));
            }
        });
        if config
            .data_dir
            .as_ref()
            .is_some_and(|d| *d != env.paths.data_dir)
        {
            ui.label(RichText::new(t.apply_next_start).color(tokens::WARN));
        }
        ui.horizontal(|ui| {
            let busy = matches!(self.folder_check, Some(Requested::Pending(_)));
            if ui
                .add_enabled(!busy, egui::Button::new(t.check_folder))
                .clicked()
            {
                let (req, reply) = Requested::new(Some(std::sync::Arc::new({
                    let ctx = ui.ctx().clone();
                    move || ctx.request_repaint()
                })));
                self.folder_check = Some(req);
                actions.push(Action::Backend(
                    FileCmd::InspectFolder {
                        path: env.paths.data_dir.clone(),
                        reply,
                    }
                    .into(),
                ));
            }
            match self.folder_check.as_mut().map(|r| r.poll()) {
                Some(None) => {
                    ui.spinner();
                    ui.label(t.checking);
                }
                Some(Some(Ok(r))) => {
                    ui.colored_label(
                        tokens::OK,
                        fill(
                            t.folder_report,
                            &[("files", &r.files), ("size", &human_bytes(r.bytes))],
                        ),
                    );
                }
                Some(Some(Err(e))) => {
                    ui.colored_label(
                        tokens::BAD,
                        fill(t.folder_not_writable, &[("error", &e.get(t.lang()))]),
                    );
                }
                None => {}
            }
        });
    }
}

/// The crates linked into this build, one line each: name, version, licence. Written by
/// `dist/licenses.py --list` for each target; `tests/dist.rs` keeps the lists current.
const CRATES: &str = if cfg!(windows) {
    include_str!("../../assets/licenses/crates-windows.txt")
} else if cfg!(target_os = "macos") {
    include_str!("../../assets/licenses/crates-macos.txt")
} else {
    include_str!("../../assets/licenses/crates-linux.txt")
};

/// Version, licence and every open-source component, as DESIGN.md asks of Settings.
fn about_ui(ui: &mut egui::Ui, t: &Tr) {
    ui.heading(t.about);
    egui::Grid::new("about")
        .num_columns(2)
        .spacing([16.0, 6.0])
        .show(ui, |ui| {
            ui.label(t.about_version);
            ui.monospace(concat!("mpbridge ", env!("CARGO_PKG_VERSION")));
            ui.end_row();
            ui.label(t.about_licence);
            ui.label(t.about_licence_text);
            ui.end_row();
        });
    let count = CRATES.lines().count();
    egui::CollapsingHeader::new(fill(t.about_third_party, &[("n", &count)]))
        .id_salt("about-crates")
        .show(ui, |ui| {
            ui.label(
                RichText::new(t.about_third_party_hint)
                    .small()
                    .color(tokens::MUTED),
            );
            egui::ScrollArea::vertical()
                .max_height(220.0)
                .show(ui, |ui| {
                    for line in CRATES.lines() {
                        ui.monospace(line);
                    }
                });
        });
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn human_bytes() {
        assert_eq!(super::human_bytes(12), "12 B");
        assert_eq!(super::human_bytes(1536), "1.5 KB");
        assert_eq!(super::human_bytes(5 * 1024 * 1024), "5.0 MB");
    }
}
