//! The Broker panel: saved connection profiles (create, edit, duplicate, delete, import our
//! JSON or MQTTX's export, export), connect the console to one, or back to the sandbox.

use egui::RichText;

use super::i18n::{Tr, fill};
use super::picker::waker;
use super::tokens;
use crate::backend::{ConnCmd, FileCmd, Requested};
use crate::config::Secret;
use crate::config::secrets::{FileWhy, OsStore, VaultKind};
use crate::model::{Action, LiveModel, ProfilesEdit};
use crate::mqtt::ConnState;
use crate::mqtt::profile::{MqttVersion, Profile, Profiles, TrustChoice, Will};

/// The form's text fields for a profile being edited.
#[derive(Default)]
struct Form {
    index: Option<usize>,
    p: Option<Profile>,
    password: String,
    will_topic: String,
    will_payload: String,
    will_qos: u8,
    will_retain: bool,
    ca: String,
    cert: String,
    key: String,
    alpn: String,
    sni: String,
    subs: String,
    session_expiry: String,
}

impl Form {
    fn load(index: Option<usize>, p: &Profile) -> Self {
        let path = |x: &Option<std::path::PathBuf>| {
            x.as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        };
        Form {
            index,
            password: p
                .password
                .as_ref()
                .map(|s| s.expose().to_owned())
                .unwrap_or_default(),
            will_topic: p.will.as_ref().map(|w| w.topic.clone()).unwrap_or_default(),
            will_payload: p
                .will
                .as_ref()
                .map(|w| w.payload.clone())
                .unwrap_or_default(),
            will_qos: p.will.as_ref().map(|w| w.qos).unwrap_or(0),
            will_retain: p.will.as_ref().is_some_and(|w| w.retain),
            ca: path(&p.ca_file),
            cert: path(&p.client_cert),
            key: path(&p.client_key),
            alpn: p.alpn.join(", "),
            sni: p.sni.clone().unwrap_or_default(),
            subs: p.subscriptions.join(", "),
            session_expiry: p
                .session_expiry_secs
                .map(|s| s.to_string())
                .unwrap_or_default(),
            p: Some(p.clone()),
        }
    }

    /// The profile as the form says (an unreadable session expiry is said by `validate`).
    fn profile(&self) -> Option<Profile> {
        let mut p = self.p.clone()?;
        p.session_expiry_secs = self.session_expiry.trim().parse().ok();
        let opt = |s: &str| Some(s.trim().to_owned()).filter(|x| !x.is_empty());
        // Passwords are taken as typed: spaces are characters too.
        p.password = Some(self.password.clone())
            .filter(|x| !x.is_empty())
            .map(Secret::new);
        p.username = p.username.filter(|u| !u.trim().is_empty());
        p.will = opt(&self.will_topic).map(|topic| Will {
            topic,
            payload: self.will_payload.clone(),
            qos: self.will_qos.min(2),
            retain: self.will_retain,
        });
        p.ca_file = opt(&self.ca).map(Into::into);
        p.client_cert = opt(&self.cert).map(Into::into);
        p.client_key = opt(&self.key).map(Into::into);
        let list = |s: &str| -> Vec<String> {
            s.split(',')
                .map(|x| x.trim().to_owned())
                .filter(|x| !x.is_empty())
                .collect()
        };
        p.alpn = list(&self.alpn);
        p.sni = opt(&self.sni);
        p.subscriptions = list(&self.subs);
        Some(p)
    }
}

#[derive(Default)]
pub struct BrokerPanel {
    form: Form,
    pub import_path: String,
    connecting: Option<Requested<(crate::backend::ConnId, String), crate::i18n::L10n>>,
    /// The subscriptions the Topics panel takes once the connection attempt is accepted.
    pending_subs: Option<(Vec<String>, u8)>,
    export: Option<Requested<std::path::PathBuf, crate::i18n::L10n>>,
    /// The built-in sandbox entry is shown instead of a saved profile.
    sandbox_shown: bool,
    /// The protocol the sandbox entry connects with: MQTT 3.1.1 (false) or 5.
    sandbox_v5: bool,
}

/// One labelled text row of the profile form's grid.
fn row(ui: &mut egui::Ui, label: &str, v: &mut String, hint: &str) {
    let l = ui.label(label);
    ui.add(
        egui::TextEdit::singleline(v)
            .hint_text(hint)
            .desired_width(360.0),
    )
    .labelled_by(l.id);
    ui.end_row();
}

impl Form {
    /// Where and who: name, address, client id, version, credentials, keepalive, session.
    fn connection_rows(&mut self, ui: &mut egui::Ui, t: &Tr) {
        let Some(p) = self.p.as_mut() else { return };
        row(ui, t.broker_name, &mut p.name, "");
        row(
            ui,
            t.broker_url,
            &mut p.url,
            "mqtts://broker.example.com:8883",
        );
        let l = ui.label(t.broker_client_id);
        ui.horizontal(|ui| {
            ui.add(egui::TextEdit::singleline(&mut p.client_id).desired_width(200.0))
                .labelled_by(l.id);
            ui.checkbox(&mut p.random_suffix, t.broker_random_suffix);
        });
        ui.end_row();
        ui.label(t.broker_version);
        ui.horizontal(|ui| {
            ui.selectable_value(&mut p.version, MqttVersion::V311, "3.1.1");
            ui.selectable_value(&mut p.version, MqttVersion::V5, "5");
        });
        ui.end_row();
        let mut user = p.username.clone().unwrap_or_default();
        row(ui, t.broker_username, &mut user, "");
        p.username = Some(user).filter(|u| !u.is_empty());
        let l = ui.label(t.certs_password);
        ui.add(
            egui::TextEdit::singleline(&mut self.password)
                .password(true)
                .desired_width(200.0),
        )
        .labelled_by(l.id);
        ui.end_row();
        ui.label(t.broker_keepalive);
        ui.horizontal(|ui| {
            ui.add(
                egui::DragValue::new(&mut p.keepalive_secs)
                    .range(5..=65_535)
                    .suffix(" s"),
            );
            ui.checkbox(&mut p.clean_session, t.broker_clean);
        });
        ui.end_row();
        let v5 = p.version == MqttVersion::V5;
        let l = ui.label(t.broker_session_expiry);
        ui.add_enabled(
            v5,
            egui::TextEdit::singleline(&mut self.session_expiry)
                .hint_text(t.broker_session_expiry_hint)
                .desired_width(360.0),
        )
        .labelled_by(l.id);
        ui.end_row();
    }

    /// The last will, trust and TLS files, subscriptions, verification.
    fn will_and_tls_rows(&mut self, ui: &mut egui::Ui, t: &Tr) {
        let Some(p) = self.p.as_mut() else { return };
        row(
            ui,
            t.broker_will_topic,
            &mut self.will_topic,
            "devices/console/status",
        );
        row(ui, t.broker_will_payload, &mut self.will_payload, "offline");
        ui.label("");
        ui.horizontal(|ui| {
            for q in 0..=2u8 {
                ui.selectable_value(&mut self.will_qos, q, format!("QoS {q}"));
            }
            ui.checkbox(&mut self.will_retain, t.broker_will_retain);
        });
        ui.end_row();
        ui.label(t.broker_trust);
        ui.horizontal(|ui| {
            for (choice, label) in [
                (TrustChoice::System, t.broker_trust_system),
                (TrustChoice::Public, t.broker_trust_public),
                (TrustChoice::File, t.broker_trust_file),
            ] {
                ui.selectable_value(&mut p.trust, choice, label);
            }
        });
        ui.end_row();
        row(ui, t.broker_ca_file, &mut self.ca, "/path/ca.pem");
        row(ui, t.broker_client_cert, &mut self.cert, "");
        row(ui, t.broker_client_key, &mut self.key, "");
        row(ui, "ALPN", &mut self.alpn, "mqtt");
        row(ui, t.broker_sni, &mut self.sni, "broker.example.com");
        row(ui, t.broker_subscriptions, &mut self.subs, "#");
        ui.label(t.broker_subscribe_qos);
        ui.horizontal(|ui| {
            for q in 0..=2u8 {
                ui.selectable_value(&mut p.subscribe_qos, q, format!("QoS {q}"));
            }
        });
        ui.end_row();
        ui.label("");
        ui.checkbox(&mut p.insecure, t.broker_insecure);
        ui.end_row();
    }
}

impl BrokerPanel {
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        t: &Tr,
        profiles: &Profiles,
        vault: Option<&VaultKind>,
        live: &LiveModel,
        actions: &mut Vec<Action>,
    ) {
        if self.form.p.is_none()
            && let Some(first) = profiles.profiles.first()
        {
            self.form = Form::load(Some(0), first);
        }
        ui.heading(t.nav_broker);
        ui.label(RichText::new(t.broker_intro).color(tokens::MUTED));
        if let Some(vault) = vault {
            vault_ui(ui, t, vault);
        }
        // The connection now.
        ui.horizontal_wrapped(|ui| {
            let (text, color) = super::conn_state(t, &live.status.broker);
            ui.label(format!("{}:", t.broker));
            ui.colored_label(color, text);
            if let Some(c) = live
                .status
                .connections
                .iter()
                .find(|c| Some(c.id) == live.status.active)
            {
                ui.label(RichText::new(&c.label).strong());
            }
            if let ConnState::Disconnected { error, .. } = &live.status.broker {
                ui.colored_label(tokens::BAD, error.get(t.lang()));
            }
            if ui.button(t.broker_disconnect).clicked() {
                actions.push(Action::Backend(ConnCmd::Disconnect.into()));
            }
            let sandbox = matches!(
                live.status.sandbox,
                crate::backend::SandboxState::Running(_)
            );
            if ui
                .add_enabled(sandbox, egui::Button::new(t.broker_sandbox))
                .clicked()
            {
                actions.push(Action::Backend(ConnCmd::ConnectSandbox.into()));
            }
            match self.connecting.as_mut().map(|r| r.poll()) {
                Some(Some(Ok((conn, id)))) => {
                    // Accepted: that connection's store lists this profile's subscriptions.
                    if let Some((subs, qos)) = self.pending_subs.take() {
                        actions.push(Action::Topics(crate::model::TopicsEdit::Replace(
                            *conn, subs, qos,
                        )));
                    }
                    ui.label(
                        RichText::new(fill(t.broker_client_id_used, &[("client_id", id)]))
                            .color(tokens::MUTED),
                    );
                }
                Some(Some(Err(e))) => {
                    ui.colored_label(tokens::BAD, e.get(t.lang()));
                }
                _ => {}
            }
        });
        connections_ui(ui, t, live, actions);
        ui.separator();
        egui::Panel::left("broker-profiles")
            .resizable(true)
            .default_size(240.0)
            .show(ui, |ui| {
                ui.horizontal(|ui| {
                    if ui.button(t.broker_new).clicked() {
                        self.form =
                            Form::load(None, &Profile::new("new broker", "mqtt://127.0.0.1:1883"));
                        self.sandbox_shown = false;
                    }
                });
                // The sandbox: a built-in entry, always first.
                if let crate::backend::SandboxState::Running(info) = &live.status.sandbox
                    && ui
                        .selectable_label(
                            self.showing_sandbox(),
                            format!("{}\n{}", t.broker_sandbox_entry, info.relay),
                        )
                        .clicked()
                {
                    self.sandbox_shown = true;
                }
                for (i, p) in profiles.profiles.iter().enumerate() {
                    let selected = !self.sandbox_shown && self.form.index == Some(i);
                    if ui
                        .selectable_label(selected, format!("{}\n{}", p.name, p.url))
                        .clicked()
                    {
                        self.form = Form::load(Some(i), p);
                        self.sandbox_shown = false;
                    }
                }
                ui.separator();
                ui.add(
                    egui::TextEdit::singleline(&mut self.import_path)
                        .hint_text(t.broker_import_hint)
                        .desired_width(200.0),
                );
                ui.horizontal(|ui| {
                    if ui
                        .add_enabled(
                            !self.import_path.trim().is_empty(),
                            egui::Button::new(t.broker_import),
                        )
                        .clicked()
                    {
                        actions.push(Action::Profiles(ProfilesEdit::Import(
                            self.import_path.trim().into(),
                        )));
                    }
                    if ui.button(t.broker_export).clicked() {
                        let (req, reply) = Requested::new(waker(ui));
                        self.export = Some(req);
                        actions.push(Action::Backend(
                            FileCmd::ExportText {
                                file_name: "profiles.json".into(),
                                text: profiles.export_text(),
                                reply,
                            }
                            .into(),
                        ));
                    }
                });
                match self.export.as_mut().map(|r| r.poll()) {
                    Some(Some(Ok(p))) => {
                        ui.colored_label(
                            tokens::OK,
                            fill(t.certs_written, &[("path", &p.display())]),
                        );
                    }
                    Some(Some(Err(e))) => {
                        ui.colored_label(tokens::BAD, e.get(t.lang()));
                    }
                    _ => {}
                }
            });
        egui::ScrollArea::vertical()
            .id_salt("broker-form")
            .auto_shrink([false, false])
            .show(ui, |ui| match &live.status.sandbox {
                // With nothing else picked (no saved profile yet), the sandbox is shown.
                crate::backend::SandboxState::Running(info) if self.showing_sandbox() => {
                    self.sandbox_ui(ui, t, info, actions)
                }
                _ => self.form_ui(ui, t, actions),
            });
    }

    /// The sandbox entry is the one shown: picked, or nothing else is (no saved profile yet).
    fn showing_sandbox(&self) -> bool {
        self.sandbox_shown || self.form.p.is_none()
    }

    /// The built-in sandbox profile: what it is, connect to it with MQTT 3.1.1 or 5, or start a
    /// profile from it.
    fn sandbox_ui(
        &mut self,
        ui: &mut egui::Ui,
        t: &Tr,
        info: &crate::sandbox::SandboxInfo,
        actions: &mut Vec<Action>,
    ) {
        ui.label(RichText::new(t.broker_sandbox_entry).strong());
        ui.label(RichText::new(t.broker_sandbox_about).color(tokens::MUTED));
        egui::Grid::new("broker-sandbox-grid")
            .num_columns(2)
            .spacing([10.0, 6.0])
            .show(ui, |ui| {
                for (k, v) in [
                    (t.broker_url, info.relay.clone()),
                    (t.broker_sandbox_direct, info.broker.clone()),
                    (t.broker_sandbox_ws, info.broker_ws.clone()),
                ] {
                    ui.label(k);
                    ui.add(egui::Label::new(RichText::new(v).monospace()).selectable(true));
                    ui.end_row();
                }
                ui.label(t.broker_version);
                ui.horizontal(|ui| {
                    ui.selectable_value(&mut self.sandbox_v5, false, "3.1.1");
                    ui.selectable_value(&mut self.sandbox_v5, true, "5");
                });
                ui.end_row();
                ui.label(t.broker_ca_file);
                ui.add(
                    egui::Label::new(RichText::new(info.ca.display().to_string()).monospace())
                        .selectable(true),
                );
                ui.end_row();
            });
        if self.sandbox_v5 {
            ui.label(RichText::new(t.broker_sandbox_v5_about).color(tokens::MUTED));
        }
        ui.horizontal(|ui| {
            if ui.button(t.broker_connect).clicked() {
                if self.sandbox_v5 {
                    // MQTT 5 goes the way of any profile (the sandbox's 3.1.1 connection is
                    // the console's own, watched by the Overview and Devices panels).
                    let p = sandbox_profile(info, true);
                    let (req, reply) = Requested::new(waker(ui));
                    self.connecting = Some(req);
                    self.pending_subs = Some((p.subscriptions.clone(), p.subscribe_qos));
                    actions.push(Action::Backend(
                        ConnCmd::ConnectProfile {
                            profile: Box::new(p),
                            reply,
                        }
                        .into(),
                    ));
                } else {
                    actions.push(Action::Backend(ConnCmd::ConnectSandbox.into()));
                }
            }
            if ui.button(t.broker_sandbox_copy).clicked() {
                let mut p = sandbox_profile(info, self.sandbox_v5);
                p.name = "sandbox (copy)".into();
                self.form = Form::load(None, &p);
                self.sandbox_shown = false;
            }
        });
    }

    fn form_ui(&mut self, ui: &mut egui::Ui, t: &Tr, actions: &mut Vec<Action>) {
        if self.form.p.is_none() {
            ui.label(RichText::new(t.broker_pick).color(tokens::MUTED));
            return;
        };
        egui::Grid::new("broker-form-grid")
            .num_columns(2)
            .spacing([10.0, 6.0])
            .show(ui, |ui| {
                self.form.connection_rows(ui, t);
                self.form.will_and_tls_rows(ui, t);
            });
        if self.form.p.as_ref().is_some_and(|p| p.insecure) {
            ui.colored_label(tokens::BAD, t.broker_insecure_warning);
        }
        let built = self.form.profile();
        let expiry = self.form.session_expiry.trim();
        let valid = built.as_ref().map(|p| {
            if !expiry.is_empty() && expiry.parse::<u32>().is_err() {
                return Err(crate::i18n::l(
                    format!("session expiry: \"{expiry}\" is not a number of seconds"),
                    format!("会话过期时间：“{expiry}”不是秒数"),
                ));
            }
            p.validate()
        });
        if let Some(Err(e)) = &valid {
            ui.colored_label(tokens::WARN, e.get(t.lang()));
        }
        let ok = matches!(valid, Some(Ok(())));
        ui.horizontal(|ui| {
            if ui
                .add_enabled(ok, egui::Button::new(t.devices_save))
                .clicked()
                && let Some(p) = built.clone()
            {
                actions.push(Action::Profiles(ProfilesEdit::Put(
                    self.form.index,
                    Box::new(p),
                )));
                // A new profile is appended: the form leaves "new" mode.
                self.form.p = None;
            }
            if ui
                .add_enabled(ok, egui::Button::new(t.broker_connect))
                .clicked()
                && let Some(p) = built.clone()
            {
                let (req, reply) = Requested::new(waker(ui));
                self.connecting = Some(req);
                self.pending_subs = Some((p.subscriptions.clone(), p.subscribe_qos));
                actions.push(Action::Backend(
                    ConnCmd::ConnectProfile {
                        profile: Box::new(p),
                        reply,
                    }
                    .into(),
                ));
            }
            if let Some(i) = self.form.index {
                if ui.button(t.broker_duplicate).clicked()
                    && let Some(mut p) = built.clone()
                {
                    p.name = format!("{} (2)", p.name);
                    actions.push(Action::Profiles(ProfilesEdit::Put(None, Box::new(p))));
                }
                if ui.button(t.devices_remove).clicked() {
                    actions.push(Action::Profiles(ProfilesEdit::Delete(i)));
                    self.form = Form::default();
                }
            }
        });
    }
}

/// The open connections: which one the panels show, its state, show another, close one.
fn connections_ui(ui: &mut egui::Ui, t: &Tr, live: &LiveModel, actions: &mut Vec<Action>) {
    let conns = &live.status.connections;
    if conns.is_empty() {
        return;
    }
    ui.label(
        RichText::new(format!(
            "{} ({}/{}) · {}",
            t.broker_open,
            conns.len(),
            crate::backend::MAX_CONNECTIONS,
            t.broker_alongside
        ))
        .color(tokens::MUTED),
    );
    egui::Grid::new("broker-connections")
        .num_columns(5)
        .spacing([10.0, 4.0])
        .striped(true)
        .show(ui, |ui| {
            for c in conns {
                let active = live.status.active == Some(c.id);
                let (state, color) = super::conn_state(t, &c.state);
                ui.label(tokens::chip(&state, color));
                let name = RichText::new(&c.label);
                ui.horizontal(|ui| {
                    ui.label(if active { name.strong() } else { name });
                    if c.insecure {
                        ui.label(tokens::chip(t.broker_unverified, tokens::BAD))
                            .on_hover_text(t.broker_insecure_warning);
                    }
                });
                ui.label(
                    RichText::new(format!(
                        "{} · MQTT {}",
                        c.url,
                        if c.protocol == 5 { "5" } else { "3.1.1" }
                    ))
                    .monospace()
                    .color(tokens::MUTED),
                );
                if active {
                    ui.label(RichText::new("●").color(tokens::OK));
                } else if ui.button(t.broker_show).on_hover_text(&c.label).clicked() {
                    actions.push(Action::Backend(ConnCmd::Activate { id: c.id }.into()));
                }
                if ui.button(t.broker_close).on_hover_text(&c.label).clicked() {
                    actions.push(Action::Backend(ConnCmd::Close { id: c.id }.into()));
                }
                ui.end_row();
                if let ConnState::Disconnected { error, .. } = &c.state
                    && !active
                {
                    ui.label("");
                    ui.colored_label(tokens::BAD, error.get(t.lang()));
                    ui.end_row();
                }
            }
        });
}

/// The sandbox as a profile: its relay's address with the dev CA as trust, everything
/// subscribed.
fn sandbox_profile(info: &crate::sandbox::SandboxInfo, mqtt5: bool) -> Profile {
    let name = if mqtt5 {
        "sandbox · MQTT 5"
    } else {
        "sandbox"
    };
    let mut p = Profile::new(name, &info.relay);
    p.trust = TrustChoice::File;
    p.ca_file = Some(info.ca.clone());
    p.subscriptions = vec!["#".into()];
    if mqtt5 {
        p.version = crate::mqtt::profile::MqttVersion::V5;
    }
    p
}

/// The store's name as a sentence needs it: the OS store's name, or the file's path.
pub fn vault_name(t: &Tr, kind: &VaultKind) -> String {
    match kind {
        VaultKind::Os(OsStore::SecretService) => t.vault_secret_service.to_owned(),
        VaultKind::Os(OsStore::CredentialManager) => t.vault_credential_manager.to_owned(),
        VaultKind::Os(OsStore::Keychain) => t.vault_keychain.to_owned(),
        VaultKind::File { path, .. } => path.display().to_string(),
    }
}

/// One line under the intro: where passwords are kept, and why when it is the file.
fn vault_ui(ui: &mut egui::Ui, t: &Tr, kind: &VaultKind) {
    let name = vault_name(t, kind);
    match kind {
        VaultKind::Os(_) => {
            ui.label(RichText::new(fill(t.broker_vault_os, &[("store", &name)])).color(tokens::OK));
        }
        VaultKind::File { why, .. } => {
            let (reason, detail) = match why {
                FileWhy::Asked => (t.broker_vault_asked, None),
                FileWhy::Unreachable(e) => (t.broker_vault_unreachable, Some(e)),
                FileWhy::Refused(e) => (t.broker_vault_refused, Some(e)),
                FileWhy::Unsupported => (t.broker_vault_unsupported, None),
            };
            let r = ui.label(
                RichText::new(fill(
                    t.broker_vault_file,
                    &[("store", &name), ("reason", &reason)],
                ))
                .color(tokens::WARN),
            );
            if let Some(d) = detail {
                r.on_hover_text(d.as_str());
            }
        }
    }
}
