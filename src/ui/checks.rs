//! The Checks panel: run the Mini Program compliance checks against a URL (the sandbox relay
//! by default), watch each check arrive, expand it for the facts and the fix, copy the
//! whitelist line and the `mqtt.connect` snippet, export, and look back at earlier runs.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use egui::RichText;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::i18n::{Tr, fill};
use super::picker::waker;
use super::tokens;
use crate::backend::{ChecksCmd, ChecksJob, Requested};
use crate::checks::{Check, CheckStatus, Report};
use crate::config::Secret;
use crate::i18n::Language;
use crate::model::{Action, LiveModel};

/// A run in progress.
struct Running {
    progress: watch::Receiver<Vec<Check>>,
    cancel: CancellationToken,
    done: Requested<Arc<Report>, crate::i18n::L10n>,
}

#[derive(Default)]
pub struct ChecksPanel {
    pub url: String,
    username: String,
    password: String,
    pub keepalive_test: bool,
    pub project: String,
    running: Option<Running>,
    /// The report shown (the last run, or one picked from the history).
    shown: Option<Arc<Report>>,
    error: Option<crate::i18n::L10n>,
    expanded: HashSet<&'static str>,
    history: Option<Requested<Vec<Arc<Report>>, crate::i18n::L10n>>,
    picker: super::picker::Picker,
    saved: Option<Requested<PathBuf, crate::i18n::L10n>>,
    /// The URL was filled from the sandbox relay once.
    prefilled: bool,
}

fn chip(t: &Tr, s: CheckStatus) -> RichText {
    let (text, bg) = match s {
        CheckStatus::Pass => (t.certs_st_pass, tokens::OK),
        CheckStatus::Warn => (t.certs_st_warn, tokens::WARN),
        CheckStatus::Fail => (t.certs_st_fail, tokens::BAD),
        CheckStatus::Manual => (t.checks_st_manual, tokens::ACCENT),
        CheckStatus::Skipped => (t.certs_st_skip, tokens::MUTED),
    };
    tokens::chip(text, bg)
}

impl ChecksPanel {
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Runs listed in the history pane (once loaded and drawn).
    pub fn history_len(&self) -> usize {
        match &self.history {
            Some(Requested::Done(Ok(runs))) => runs.len(),
            _ => 0,
        }
    }

    fn start(&mut self, ui: &egui::Ui, actions: &mut Vec<Action>) {
        let (tx, rx) = watch::channel(Vec::new());
        let cancel = CancellationToken::new();
        let (req, reply) = Requested::new(waker(ui));
        self.running = Some(Running {
            progress: rx,
            cancel: cancel.clone(),
            done: req,
        });
        self.shown = None;
        self.error = None;
        self.saved = None;
        self.expanded.clear();
        actions.push(Action::Backend(
            ChecksCmd::Run {
                job: ChecksJob {
                    url: self.url.trim().to_owned(),
                    username: Some(self.username.trim().to_owned()).filter(|u| !u.is_empty()),
                    password: (!self.password.is_empty())
                        .then(|| Secret::new(self.password.clone())),
                    keepalive_test: self.keepalive_test,
                    project: Some(PathBuf::from(self.project.trim()))
                        .filter(|p| !p.as_os_str().is_empty()),
                },
                progress: tx,
                cancel,
                reply,
            }
            .into(),
        ));
    }

    fn load_history(&mut self, ui: &egui::Ui, actions: &mut Vec<Action>) {
        let (req, reply) = Requested::new(waker(ui));
        self.history = Some(req);
        actions.push(Action::Backend(ChecksCmd::History { reply }.into()));
    }

    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        t: &Tr,
        lang: Language,
        live: &LiveModel,
        actions: &mut Vec<Action>,
    ) {
        if !self.prefilled
            && let Some(url) = &live.status.relay.url
        {
            // mqtt.js in a Mini Program writes the relay's address as wxs://. The console's
            // own relay is checked at once: it is local, takes milliseconds, and shows a
            // newcomer what a loopback setup breaks.
            self.url = url.replace("wss://", "wxs://");
            self.prefilled = true;
            if self.running.is_none() && self.shown.is_none() {
                self.start(ui, actions);
            }
        }
        if self.history.is_none() {
            self.load_history(ui, actions);
        }
        // A finished run becomes the shown report.
        if let Some(run) = self.running.as_mut()
            && let Some(result) = run.done.poll()
        {
            match result {
                Ok(r) => {
                    for c in &r.checks {
                        if matches!(c.status, CheckStatus::Fail | CheckStatus::Warn) {
                            self.expanded.insert(c.id);
                        }
                    }
                    self.shown = Some(r.clone());
                }
                Err(e) => self.error = Some(e.clone()),
            }
            self.running = None;
            self.load_history(ui, actions);
        }
        if let Some(f) = self.picker.take().and_then(|f| f.into_iter().next()) {
            self.project = f.display().to_string();
        }

        ui.heading(t.nav_checks);
        ui.label(RichText::new(t.checks_intro).color(tokens::MUTED));
        ui.add_space(4.0);
        self.form_ui(ui, t, actions);
        ui.separator();

        egui::Panel::right("checks-history")
            .resizable(true)
            .default_size(260.0)
            .min_size(200.0)
            .show(ui, |ui| self.history_ui(ui, t));

        egui::ScrollArea::vertical()
            .id_salt("checks-rows")
            .auto_shrink([false, false])
            .show(ui, |ui| {
                if let Some(e) = &self.error {
                    ui.colored_label(tokens::BAD, e.get(t.lang()));
                }
                if let Some(run) = &self.running {
                    let rows = run.progress.borrow().clone();
                    ui.horizontal(|ui| {
                        ui.spinner();
                        ui.label(fill(
                            t.checks_progress,
                            &[
                                ("done", &rows.len()),
                                ("total", &crate::checks::CATALOGUE.len()),
                            ],
                        ));
                    });
                    self.rows_ui(ui, t, lang, &rows);
                } else if let Some(r) = self.shown.clone() {
                    self.report_ui(ui, t, lang, &r, actions);
                } else {
                    ui.label(RichText::new(t.checks_nothing).color(tokens::MUTED));
                }
            });
    }

    fn form_ui(&mut self, ui: &mut egui::Ui, t: &Tr, actions: &mut Vec<Action>) {
        egui::Grid::new("checks-form")
            .num_columns(2)
            .spacing([10.0, 6.0])
            .show(ui, |ui| {
                let l = ui.label(t.checks_url);
                ui.horizontal(|ui| {
                    ui.add(
                        egui::TextEdit::singleline(&mut self.url)
                            .hint_text("wxs://mqtt.example.com/mqtt")
                            .desired_width(380.0),
                    )
                    .labelled_by(l.id);
                    let running = self.running.is_some();
                    if running {
                        if ui.button(t.checks_cancel).clicked()
                            && let Some(r) = &self.running
                        {
                            r.cancel.cancel();
                        }
                    } else if ui
                        .add_enabled(!self.url.trim().is_empty(), egui::Button::new(t.checks_run))
                        .clicked()
                    {
                        self.start(ui, actions);
                    }
                });
                ui.end_row();
                let l = ui.label(t.checks_credentials);
                ui.horizontal(|ui| {
                    ui.add(
                        egui::TextEdit::singleline(&mut self.username)
                            .hint_text(t.checks_username)
                            .desired_width(140.0),
                    )
                    .labelled_by(l.id);
                    ui.add(
                        egui::TextEdit::singleline(&mut self.password)
                            .hint_text(t.certs_password)
                            .password(true)
                            .desired_width(140.0),
                    );
                    ui.checkbox(&mut self.keepalive_test, t.checks_keepalive);
                });
                ui.end_row();
                let l = ui.label(t.checks_project);
                ui.horizontal(|ui| {
                    ui.add(
                        egui::TextEdit::singleline(&mut self.project)
                            .hint_text(t.checks_project_hint)
                            .desired_width(380.0),
                    )
                    .labelled_by(l.id);
                    self.picker.button(ui, t.relay_browse, true, actions);
                    if let Some(e) = self.picker.error() {
                        ui.colored_label(tokens::WARN, e.get(t.lang()));
                    }
                });
                ui.end_row();
            });
    }

    fn rows_ui(&mut self, ui: &mut egui::Ui, t: &Tr, lang: Language, rows: &[Check]) {
        // Chip, id and time take about 300 points; the text gets the rest.
        let text_width = (ui.available_width() - 310.0).clamp(260.0, 640.0);
        egui::Grid::new("checks-table")
            .num_columns(4)
            .striped(true)
            .spacing([10.0, 4.0])
            .show(ui, |ui| {
                for c in rows {
                    ui.label(chip(t, c.status));
                    ui.monospace(c.id);
                    let open = self.expanded.contains(c.id);
                    ui.vertical(|ui| {
                        let mark = if open {
                            t.checks_mark_open
                        } else {
                            t.checks_mark_closed
                        };
                        let title = format!("{mark} {}", c.title.get(lang));
                        if ui
                            .add(egui::Label::new(title).sense(egui::Sense::click()))
                            .on_hover_text(t.checks_expand)
                            .clicked()
                        {
                            if open {
                                self.expanded.remove(c.id);
                            } else {
                                self.expanded.insert(c.id);
                            }
                        }
                        if open {
                            ui.set_max_width(text_width);
                            ui.add(
                                egui::Label::new(
                                    RichText::new(c.detail.get(lang)).color(tokens::MUTED),
                                )
                                .wrap(),
                            );
                            if let Some(s) = &c.source {
                                ui.monospace(s);
                            }
                            if !c.remedy.is_empty() && c.status != CheckStatus::Pass {
                                ui.add(
                                    egui::Label::new(
                                        RichText::new(format!("→ {}", c.remedy.get(lang)))
                                            .color(tokens::ACCENT),
                                    )
                                    .wrap(),
                                );
                            }
                        }
                    });
                    ui.label(RichText::new(format!("{} ms", c.elapsed_ms)).color(tokens::MUTED));
                    ui.end_row();
                }
            });
    }

    fn report_ui(
        &mut self,
        ui: &mut egui::Ui,
        t: &Tr,
        lang: Language,
        r: &Arc<Report>,
        actions: &mut Vec<Action>,
    ) {
        let s = &r.summary;
        ui.horizontal_wrapped(|ui| {
            ui.label(RichText::new(&r.target).strong());
            ui.label(
                RichText::new(fill(
                    t.checks_summary,
                    &[
                        ("pass", &s.pass),
                        ("warn", &s.warn),
                        ("fail", &s.fail),
                        ("manual", &s.manual),
                        ("skipped", &s.skipped),
                    ],
                ))
                .color(tokens::MUTED),
            );
            if r.cancelled {
                ui.colored_label(tokens::WARN, t.checks_cancelled);
            }
        });
        ui.horizontal(|ui| {
            if ui.button(t.checks_copy_md).clicked() {
                ui.ctx().copy_text(crate::checks::report::markdown(r, lang));
            }
            if ui.button(t.checks_copy_json).clicked() {
                ui.ctx()
                    .copy_text(serde_json::to_string_pretty(&**r).unwrap_or_default());
            }
            for (label, markdown) in [(t.checks_save_md, true), (t.checks_save_json, false)] {
                if ui.button(label).clicked() {
                    let (req, reply) = Requested::new(waker(ui));
                    self.saved = Some(req);
                    actions.push(Action::Backend(
                        ChecksCmd::SaveReport {
                            report: r.clone(),
                            markdown,
                            lang,
                            reply,
                        }
                        .into(),
                    ));
                }
            }
            if let Some(req) = self.saved.as_mut() {
                match req.poll() {
                    Some(Ok(p)) => {
                        ui.colored_label(
                            tokens::OK,
                            fill(t.certs_written, &[("path", &p.display())]),
                        );
                    }
                    Some(Err(e)) => {
                        ui.colored_label(tokens::BAD, e.get(t.lang()));
                    }
                    None => {
                        ui.spinner();
                    }
                }
            }
        });
        if let Some(line) = &r.whitelist {
            ui.horizontal(|ui| {
                ui.label(t.checks_whitelist);
                ui.monospace(line);
                if ui.small_button(t.copy).clicked() {
                    ui.ctx().copy_text(line.clone());
                }
            });
        }
        ui.add_space(4.0);
        self.rows_ui(ui, t, lang, &r.checks);
        if let Some(sn) = &r.snippet {
            ui.add_space(6.0);
            ui.horizontal(|ui| {
                ui.label(RichText::new(t.checks_snippet).strong());
                if ui.small_button(t.copy).clicked() {
                    ui.ctx().copy_text(sn.clone());
                }
            });
            if s.fail > 0 {
                ui.label(RichText::new(t.checks_snippet_note).color(tokens::WARN));
            }
            let mut text = sn.clone();
            ui.add(
                egui::TextEdit::multiline(&mut text)
                    .code_editor()
                    .desired_width(f32::INFINITY)
                    .interactive(false),
            );
        }
    }

    fn history_ui(&mut self, ui: &mut egui::Ui, t: &Tr) {
        ui.label(RichText::new(t.checks_history).strong());
        let runs = match self.history.as_mut().map(|h| h.poll()) {
            Some(Some(Ok(runs))) => runs.clone(),
            _ => Vec::new(),
        };
        if runs.is_empty() {
            ui.label(RichText::new(t.checks_no_history).color(tokens::MUTED));
            return;
        }
        egui::ScrollArea::vertical()
            .id_salt("checks-history-list")
            .show(ui, |ui| {
                for r in runs {
                    let s = r.summary;
                    let color = if s.fail > 0 {
                        tokens::BAD
                    } else if s.warn > 0 {
                        tokens::WARN
                    } else {
                        tokens::OK
                    };
                    let selected = self.shown.as_ref().is_some_and(|x| Arc::ptr_eq(x, &r));
                    let text = RichText::new(format!(
                        "{}\n{}\n{}",
                        r.target,
                        r.started.replace('T', " ").trim_end_matches('Z'),
                        fill(
                            t.checks_history_row,
                            &[("pass", &s.pass), ("warn", &s.warn), ("fail", &s.fail)]
                        )
                    ))
                    .color(color);
                    if ui.selectable_label(selected, text).clicked() && self.running.is_none() {
                        self.expanded.clear();
                        self.shown = Some(r.clone());
                    }
                }
            });
    }
}
