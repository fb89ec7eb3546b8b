//! The Certificates panel: open files (dialog, drop, path), or fetch a server's chain; the
//! verdicts with their fixes in the UI language; every certificate's fields; repair.

use std::path::PathBuf;
use std::sync::Arc;

use egui::RichText;

use super::i18n::{Tr, fill};
use super::picker::waker;
use super::tokens;
use crate::backend::{CertCmd, CertJob, RepairDone, Requested};
use crate::certs::{ChainEntry, IssuerFound, RepairPlan, Report, Role};
use crate::config::Secret;
use crate::i18n::Language;
use crate::model::{Action, LiveModel};
use crate::verdict::Status;

#[derive(Default)]
pub struct CertsPanel {
    /// Files opened, in order (certificates, keys, .pfx, zips: the loader sorts them out).
    pub files: Vec<PathBuf>,
    pub path_input: String,
    password: String,
    pub domain: String,
    pub target: String,
    sni: String,
    report: Option<Requested<Arc<Report>, crate::i18n::L10n>>,
    picker: super::picker::Picker,
    repair: Option<Requested<RepairDone, crate::i18n::L10n>>,
    /// The panel fetched the console's own relay once on first display.
    fetched_relay: bool,
}

pub fn status_chip(t: &Tr, s: Status) -> RichText {
    let (text, bg) = match s {
        Status::Pass => (t.certs_st_pass, tokens::OK),
        Status::Warn => (t.certs_st_warn, tokens::WARN),
        Status::Fail => (t.certs_st_fail, tokens::BAD),
        Status::Skip => (t.certs_st_skip, tokens::MUTED),
    };
    tokens::chip(text, bg)
}

/// `localhost:PORT` for the console's relay, from its `wss://host:port/path` address.
fn relay_target(live: &LiveModel) -> Option<String> {
    let url = live.status.relay.url.as_deref()?;
    let rest = url.strip_prefix("wss://")?;
    Some(rest.split('/').next()?.to_owned())
}

impl CertsPanel {
    fn job(&self) -> CertJob {
        CertJob {
            files: self.files.clone(),
            password: (!self.password.is_empty()).then(|| Secret::new(self.password.clone())),
            domain: Some(self.domain.trim().to_owned()).filter(|d| !d.is_empty()),
        }
    }

    fn check(&mut self, ui: &egui::Ui, actions: &mut Vec<Action>) {
        if self.files.is_empty() {
            return;
        }
        let (req, reply) = Requested::new(waker(ui));
        self.report = Some(req);
        self.repair = None;
        actions.push(Action::Backend(
            CertCmd::Inspect {
                job: self.job(),
                reply,
            }
            .into(),
        ));
    }

    fn fetch(&mut self, ui: &egui::Ui, actions: &mut Vec<Action>) {
        let target = self.target.trim().to_owned();
        if target.is_empty() {
            return;
        }
        let (req, reply) = Requested::new(waker(ui));
        self.report = Some(req);
        self.repair = None;
        actions.push(Action::Backend(
            CertCmd::Fetch {
                target,
                sni: Some(self.sni.trim().to_owned()).filter(|s| !s.is_empty()),
                reply,
            }
            .into(),
        ));
    }

    fn add_files(&mut self, paths: impl IntoIterator<Item = PathBuf>) -> bool {
        let mut added = false;
        for p in paths {
            if !self.files.contains(&p) {
                self.files.push(p);
                added = true;
            }
        }
        added
    }

    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        t: &Tr,
        lang: Language,
        live: &LiveModel,
        actions: &mut Vec<Action>,
    ) {
        // Files dropped anywhere on the window while this panel is open.
        let dropped: Vec<PathBuf> = ui.ctx().input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        });
        if self.add_files(dropped) {
            self.check(ui, actions);
        }
        if let Some(picked) = self.picker.take()
            && self.add_files(picked)
        {
            self.check(ui, actions);
        }
        // On first display, show what the console's own relay serves.
        if !self.fetched_relay
            && self.report.is_none()
            && self.files.is_empty()
            && let Some(target) = relay_target(live)
        {
            self.fetched_relay = true;
            self.target = target;
            self.fetch(ui, actions);
        }

        ui.heading(t.nav_certs);
        ui.label(RichText::new(t.certs_intro).color(tokens::MUTED));
        ui.add_space(4.0);
        ui.columns(2, |cols| {
            self.files_ui(&mut cols[0], t, actions);
            self.fetch_ui(&mut cols[1], t, live, actions);
        });
        ui.separator();
        let report = match self.report.as_mut() {
            None => {
                ui.label(RichText::new(t.certs_nothing).color(tokens::MUTED));
                return;
            }
            Some(r) => match r.poll() {
                None => {
                    ui.horizontal(|ui| {
                        ui.spinner();
                        ui.label(t.certs_working);
                    });
                    return;
                }
                Some(Err(e)) => {
                    ui.colored_label(tokens::BAD, e.get(t.lang()));
                    return;
                }
                Some(Ok(r)) => r.clone(),
            },
        };
        egui::ScrollArea::vertical()
            .id_salt("certs-report")
            .auto_shrink([false, false])
            .show(ui, |ui| {
                self.report_ui(ui, t, lang, &report, actions);
            });
    }

    fn files_ui(&mut self, ui: &mut egui::Ui, t: &Tr, actions: &mut Vec<Action>) {
        ui.group(|ui| {
            ui.label(RichText::new(t.certs_files_title).strong());
            ui.horizontal(|ui| {
                self.picker.button(ui, t.certs_open, false, actions);
                let edit = ui.add(
                    egui::TextEdit::singleline(&mut self.path_input)
                        .hint_text(t.certs_path_hint)
                        .desired_width(220.0),
                );
                let enter = edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
                if (ui.button(t.certs_add).clicked() || enter) && !self.path_input.trim().is_empty()
                {
                    let p = PathBuf::from(self.path_input.trim());
                    self.path_input.clear();
                    if self.add_files([p]) {
                        self.check(ui, actions);
                    }
                }
            });
            let mut remove = None;
            for (i, f) in self.files.iter().enumerate() {
                ui.horizontal(|ui| {
                    if ui.small_button("✕").on_hover_text(t.certs_remove).clicked() {
                        remove = Some(i);
                    }
                    ui.monospace(f.display().to_string());
                });
            }
            if let Some(i) = remove {
                self.files.remove(i);
                if self.files.is_empty() {
                    self.report = None;
                } else {
                    self.check(ui, actions);
                }
            }
            ui.horizontal(|ui| {
                let l = ui.label(t.certs_password);
                ui.add(
                    egui::TextEdit::singleline(&mut self.password)
                        .password(true)
                        .desired_width(110.0),
                )
                .labelled_by(l.id);
                let l = ui.label(t.certs_domain);
                ui.add(
                    egui::TextEdit::singleline(&mut self.domain)
                        .hint_text("a.example.com")
                        .desired_width(140.0),
                )
                .labelled_by(l.id);
            });
            ui.horizontal(|ui| {
                if ui
                    .add_enabled(!self.files.is_empty(), egui::Button::new(t.certs_check))
                    .clicked()
                {
                    self.check(ui, actions);
                }
                if ui
                    .add_enabled(!self.files.is_empty(), egui::Button::new(t.certs_clear))
                    .clicked()
                {
                    self.files.clear();
                    self.report = None;
                    self.repair = None;
                }
            });
            ui.label(
                RichText::new(t.certs_drop_hint)
                    .small()
                    .color(tokens::MUTED),
            );
        });
    }

    fn fetch_ui(&mut self, ui: &mut egui::Ui, t: &Tr, live: &LiveModel, actions: &mut Vec<Action>) {
        ui.group(|ui| {
            ui.label(RichText::new(t.certs_fetch_title).strong());
            egui::Grid::new("certs-fetch")
                .num_columns(2)
                .show(ui, |ui| {
                    let l = ui.label(t.certs_target);
                    ui.add(
                        egui::TextEdit::singleline(&mut self.target)
                            .hint_text("example.com:443")
                            .desired_width(200.0),
                    )
                    .labelled_by(l.id);
                    ui.end_row();
                    let l = ui.label(t.certs_sni);
                    ui.add(egui::TextEdit::singleline(&mut self.sni).desired_width(200.0))
                        .labelled_by(l.id);
                    ui.end_row();
                });
            ui.horizontal(|ui| {
                if ui
                    .add_enabled(
                        !self.target.trim().is_empty(),
                        egui::Button::new(t.certs_fetch),
                    )
                    .clicked()
                {
                    self.fetch(ui, actions);
                }
                if let Some(target) = relay_target(live)
                    && ui.button(t.certs_my_relay).clicked()
                {
                    self.target = target;
                    self.sni.clear();
                    self.fetch(ui, actions);
                }
            });
        });
    }

    fn report_ui(
        &mut self,
        ui: &mut egui::Ui,
        t: &Tr,
        lang: Language,
        r: &Report,
        actions: &mut Vec<Action>,
    ) {
        if let Some(s) = &r.served {
            ui.label(fill(
                t.certs_served,
                &[
                    ("host", &s.target),
                    ("version", &s.tls_version),
                    ("cipher", &s.cipher),
                    ("alpn", &s.alpn.as_deref().unwrap_or("-")),
                ],
            ));
        }
        let count = |st: Status| r.findings.iter().filter(|f| f.status == st).count();
        ui.horizontal(|ui| {
            ui.label(status_chip(t, r.worst()));
            ui.label(fill(
                t.certs_summary,
                &[
                    ("pass", &count(Status::Pass)),
                    ("warn", &count(Status::Warn)),
                    ("fail", &count(Status::Fail)),
                    ("skipped", &count(Status::Skip)),
                ],
            ));
        });
        ui.add_space(4.0);
        ui.label(RichText::new(t.certs_findings).strong());
        egui::Grid::new("certs-findings")
            .num_columns(3)
            .striped(true)
            .spacing([10.0, 4.0])
            .show(ui, |ui| {
                ui.label(RichText::new(t.col_status).strong());
                ui.label(RichText::new(t.certs_col_rule).strong());
                ui.label(RichText::new(t.certs_col_detail).strong());
                ui.end_row();
                for f in &r.findings {
                    ui.label(status_chip(t, f.status));
                    ui.monospace(f.id);
                    ui.vertical(|ui| {
                        ui.set_max_width(ui.available_width().max(400.0));
                        ui.add(egui::Label::new(f.detail.get(lang)).wrap());
                        if !f.remedy.is_empty() {
                            ui.add(
                                egui::Label::new(
                                    RichText::new(format!("→ {}", f.remedy.get(lang)))
                                        .color(tokens::ACCENT),
                                )
                                .wrap(),
                            );
                        }
                    });
                    ui.end_row();
                }
            });
        // The fix comes right after the verdicts, before the details.
        if r.served.is_none() && !r.chain.is_empty() {
            ui.add_space(6.0);
            self.repair_ui(ui, t, lang, r, actions);
        }
        if !r.notes.is_empty() {
            ui.add_space(4.0);
            ui.label(RichText::new(t.certs_notes).strong());
            for n in &r.notes {
                ui.label(RichText::new(n.get(lang)).color(tokens::MUTED));
            }
        }
        if !r.chain.is_empty() {
            ui.add_space(6.0);
            ui.label(RichText::new(t.certs_chain).strong());
            for e in &r.chain {
                chain_entry_ui(ui, t, e);
            }
        }
    }

    fn repair_ui(
        &mut self,
        ui: &mut egui::Ui,
        t: &Tr,
        lang: Language,
        r: &Report,
        actions: &mut Vec<Action>,
    ) {
        ui.label(RichText::new(t.certs_repair_title).strong());
        match &r.repair {
            RepairPlan::Impossible { reason } => {
                ui.colored_label(tokens::BAD, reason.get(lang));
            }
            RepairPlan::Ready { changes, key, .. } => {
                if changes.is_empty() {
                    ui.label(t.certs_repair_fine);
                } else {
                    let list: Vec<&str> = changes.iter().map(|c| c.get(lang)).collect();
                    ui.label(fill(
                        t.certs_repair_ready,
                        &[("changes", &list.join(crate::i18n::pick(lang, "; ", "；")))],
                    ));
                }
                let busy = matches!(self.repair, Some(Requested::Pending(_)));
                ui.horizontal(|ui| {
                    for (label, use_for_relay, enabled) in [
                        (t.certs_save_fullchain, false, true),
                        (t.certs_use_relay, true, key.is_some()),
                    ] {
                        if ui
                            .add_enabled(!busy && enabled, egui::Button::new(label))
                            .clicked()
                        {
                            let (req, reply) = Requested::new(waker(ui));
                            self.repair = Some(req);
                            actions.push(Action::Backend(
                                CertCmd::Repair {
                                    job: self.job(),
                                    use_for_relay,
                                    reply,
                                }
                                .into(),
                            ));
                        }
                    }
                });
            }
        }
        if let Some(req) = self.repair.as_mut() {
            match req.poll() {
                None => {
                    ui.spinner();
                }
                Some(Ok(done)) => {
                    let mut files = done.fullchain.display().to_string();
                    if let Some(k) = &done.key {
                        files.push_str(&format!(", {}", k.display()));
                    }
                    ui.colored_label(tokens::OK, fill(t.certs_written, &[("path", &files)]));
                    if let Some(msg) = &done.relay {
                        ui.colored_label(
                            tokens::OK,
                            fill(t.certs_relay_done, &[("message", &msg.get(t.lang()))]),
                        );
                    }
                }
                Some(Err(e)) => {
                    ui.colored_label(tokens::BAD, e.get(t.lang()));
                }
            }
        }
    }
}

fn role_text(t: &Tr, role: Role) -> &'static str {
    match role {
        Role::Leaf => t.certs_role_leaf,
        Role::Intermediate => t.certs_role_intermediate,
        Role::Root => t.certs_role_root,
        Role::Unrelated => t.certs_role_unrelated,
    }
}

fn chain_entry_ui(ui: &mut egui::Ui, t: &Tr, e: &ChainEntry) {
    let c = &e.info;
    let days = fill(t.certs_days_left, &[("days", &c.days_left)]);
    let color = if c.days_left < 0 {
        tokens::BAD
    } else if c.days_left < 30 {
        tokens::WARN
    } else {
        tokens::MUTED
    };
    let title = RichText::new(format!(
        "#{} [{}] {}",
        e.index + 1,
        role_text(t, e.role),
        c.common_name
    ));
    egui::CollapsingHeader::new(title)
        .id_salt(("cert", e.index, &c.sha256))
        .default_open(e.role == Role::Leaf)
        .show(ui, |ui| {
            let signed_by = match (&e.signed_by, &e.issuer_found) {
                (Some(i), _) => format!("#{}", i + 1),
                (None, IssuerFound::Itself) => t.certs_signed_itself.to_owned(),
                (None, IssuerFound::PublicRoot(n)) => fill(t.certs_signed_public, &[("name", n)]),
                (None, IssuerFound::SuppliedCa(n)) => fill(t.certs_signed_supplied, &[("name", n)]),
                (None, _) => t.certs_signed_missing.to_owned(),
            };
            let dash = |v: &[String]| {
                if v.is_empty() {
                    "-".to_owned()
                } else {
                    v.join(", ")
                }
            };
            egui::Grid::new(("cert-fields", e.index))
                .num_columns(2)
                .striped(true)
                .show(ui, |ui| {
                    let mut row = |k: &str, v: String| {
                        ui.label(RichText::new(k).color(tokens::MUTED));
                        ui.add(egui::Label::new(RichText::new(v).monospace()).wrap());
                        ui.end_row();
                    };
                    row(t.certs_f_subject, c.subject.clone());
                    row(t.certs_f_issuer, c.issuer.clone());
                    row(t.certs_f_signed_by, signed_by);
                    row(t.certs_f_names, dash(&c.sans));
                    row(t.certs_f_serial, c.serial.clone());
                    row(
                        t.certs_f_validity,
                        format!("{} → {}", c.not_before, c.not_after),
                    );
                    row(t.certs_f_key, c.key.to_string());
                    row(t.certs_f_signature, c.signature_algorithm.clone());
                    row("SHA-256", c.sha256.clone());
                    row("SHA-1", c.sha1.clone());
                    row(
                        t.certs_f_ca,
                        match (c.is_ca, c.path_len) {
                            (true, Some(p)) => format!("{} (pathlen {p})", t.certs_yes),
                            (true, None) => t.certs_yes.to_owned(),
                            (false, _) => t.certs_no.to_owned(),
                        },
                    );
                    row(t.certs_f_key_usage, dash(&c.key_usage));
                    row(t.certs_f_eku, dash(&c.extended_key_usage));
                    row(t.certs_f_ca_issuers, dash(&c.ca_issuers));
                    row("OCSP", dash(&c.ocsp));
                    row("CRL", dash(&c.crl));
                    row(t.certs_f_source, c.source.clone());
                });
            ui.colored_label(color, days);
        });
}
