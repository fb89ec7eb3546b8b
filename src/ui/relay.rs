//! Relay: edit the configuration (listen, certificate, routes, limits), start / stop /
//! reload, watch every connection (sortable, filterable, close one), the rejected
//! handshakes, the throughput; export the equivalent nginx config.

use std::path::PathBuf;

use egui::RichText;
use egui_extras::{Column, TableBuilder};
use egui_plot::{Legend, Line, Plot};

use super::i18n::{Tr, fill};
use super::picker::waker;
use super::settings::human_bytes;
use super::tokens;
use crate::backend::{CertCmd, RelayCmd, Requested};
use crate::model::{Action, LiveModel};
use crate::relay::config::Route;
use crate::relay::stats::ConnRecord;
use crate::relay::tls::CertBrief;
use crate::relay::{RelayPhase, RelaySettings, Upstream};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum View {
    #[default]
    Connections,
    Closed,
    Rejected,
    Throughput,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    #[default]
    Id,
    Peer,
    MiniProgram,
    ClientId,
    BytesIn,
    BytesOut,
}

/// The Relay form: the typed [`RelaySettings`] it edits, with text for what is typed as text
/// (the listen address, the file paths, each route's upstream list) until it parses. What the
/// form does not show (SNI certificates, allowlists, drain and upstream timeouts, the
/// endpoints) is kept from the settings it was loaded from.
#[derive(Debug, Clone, PartialEq)]
pub struct RelayForm {
    base: RelaySettings,
    pub listen: String,
    pub cert: String,
    pub key: String,
    pub routes: Vec<RouteForm>,
    pub max_connections: u64,
    pub max_connections_per_ip: u64,
    pub handshake_timeout_secs: u64,
    pub idle_timeout_secs: u64,
    pub max_message_bytes: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteForm {
    /// The route as loaded (allowlists kept); `None` for a route added in the form.
    base: Option<Route>,
    pub path: String,
    /// One `ws://…` or `tcp://…` per line.
    pub upstreams: String,
    pub require_subprotocol: bool,
}

impl RelayForm {
    pub fn from_settings(s: &RelaySettings) -> Self {
        let l = &s.limits;
        Self {
            listen: s.listen.to_string(),
            cert: s.certs.cert.display().to_string(),
            key: s.certs.key.display().to_string(),
            routes: s
                .routes
                .iter()
                .map(|r| RouteForm {
                    base: Some(r.clone()),
                    path: r.path.clone(),
                    upstreams: r
                        .upstreams
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("\n"),
                    require_subprotocol: r.require_subprotocol,
                })
                .collect(),
            max_connections: l.max_connections as u64,
            max_connections_per_ip: l.max_connections_per_ip as u64,
            handshake_timeout_secs: l.handshake_timeout.as_secs(),
            idle_timeout_secs: l.idle_timeout.as_secs(),
            max_message_bytes: l.max_message_bytes as u64,
            base: s.clone(),
        }
    }

    /// The settings the form says, or the first field that does not parse.
    pub fn settings(&self) -> Result<RelaySettings, crate::i18n::L10n> {
        use crate::i18n::l;
        let mut s = self.base.clone();
        s.listen = self.listen.trim().parse().map_err(|_| {
            let v = self.listen.trim();
            l(
                format!(
                    "listen address \"{v}\": expected an IP address and port such as 0.0.0.0:443"
                ),
                format!("监听地址“{v}”：应为 IP 地址和端口，例如 0.0.0.0:443"),
            )
        })?;
        s.certs.cert = self.cert.trim().into();
        s.certs.key = self.key.trim().into();
        let mut routes = Vec::new();
        for r in &self.routes {
            let mut upstreams = Vec::new();
            for line in r.upstreams.lines().map(str::trim).filter(|x| !x.is_empty()) {
                upstreams.push(Upstream::parse(line).map_err(|e| {
                    l(
                        format!("upstream \"{line}\": {e}"),
                        format!("上游“{line}”有误（“{e}”）"),
                    )
                })?);
            }
            let mut route = r.base.clone().unwrap_or(Route {
                path: String::new(),
                upstreams: Vec::new(),
                require_subprotocol: true,
                allowed_origins: Vec::new(),
                allowed_appids: Vec::new(),
            });
            route.path = r.path.trim().to_owned();
            route.upstreams = upstreams;
            route.require_subprotocol = r.require_subprotocol;
            routes.push(route);
        }
        s.routes = routes;
        let secs = std::time::Duration::from_secs;
        let size = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        s.limits.max_connections = size(self.max_connections);
        s.limits.max_connections_per_ip = size(self.max_connections_per_ip);
        s.limits.handshake_timeout = secs(self.handshake_timeout_secs);
        s.limits.idle_timeout = secs(self.idle_timeout_secs);
        s.limits.max_message_bytes = size(self.max_message_bytes);
        Ok(s)
    }

    /// Each route: its path, whether it requires `mqtt`, its upstreams; add and remove.
    fn routes_ui(&mut self, ui: &mut egui::Ui, t: &Tr) {
        ui.add_space(4.0);
        let mut remove = None;
        for (i, r) in self.routes.iter_mut().enumerate() {
            egui::Frame::group(ui.style()).show(ui, |ui| {
                ui.horizontal(|ui| {
                    let l = ui.label(t.relay_route_path);
                    ui.add(egui::TextEdit::singleline(&mut r.path).desired_width(120.0))
                        .labelled_by(l.id);
                    ui.checkbox(&mut r.require_subprotocol, t.relay_require_subprotocol);
                    if ui.small_button(t.relay_remove_route).clicked() {
                        remove = Some(i);
                    }
                });
                let l = ui.label(t.relay_upstreams);
                ui.add(
                    egui::TextEdit::multiline(&mut r.upstreams)
                        .desired_rows(2)
                        .desired_width(f32::INFINITY)
                        .code_editor(),
                )
                .labelled_by(l.id);
            });
        }
        if let Some(i) = remove {
            self.routes.remove(i);
        }
        if ui.button(t.relay_add_route).clicked() {
            self.routes.push(RouteForm {
                base: None,
                path: "/mqtt".into(),
                upstreams: "tcp://127.0.0.1:1883".into(),
                require_subprotocol: true,
            });
        }
    }

    /// The limits the form shows (the rest are kept from the settings).
    fn limits_ui(&mut self, ui: &mut egui::Ui, t: &Tr) {
        ui.add_space(4.0);
        ui.label(RichText::new(t.relay_limits).strong());
        egui::Grid::new("relay-limits")
            .num_columns(4)
            .spacing([12.0, 6.0])
            .show(ui, |ui| {
                // (label, value, min, max); the per-IP cap may be 0: none.
                let fields: [(&str, &mut u64, u64, u64); 5] = [
                    (t.relay_max_conn, &mut self.max_connections, 1, 10_000_000),
                    (
                        t.relay_max_conn_ip,
                        &mut self.max_connections_per_ip,
                        0,
                        10_000_000,
                    ),
                    (
                        t.relay_handshake_timeout,
                        &mut self.handshake_timeout_secs,
                        1,
                        300,
                    ),
                    (t.relay_idle_timeout, &mut self.idle_timeout_secs, 1, 86_400),
                    (
                        t.relay_max_message,
                        &mut self.max_message_bytes,
                        128,
                        256 * 1024 * 1024,
                    ),
                ];
                for (i, (label, v, min, max)) in fields.into_iter().enumerate() {
                    let l = ui.label(label);
                    ui.add(egui::DragValue::new(v).range(min..=max))
                        .labelled_by(l.id);
                    if i % 2 == 1 {
                        ui.end_row();
                    }
                }
            });
    }
}

#[derive(Default)]
pub struct RelayPanel {
    form: Option<RelayForm>,
    /// The running configuration the form was loaded from, and the form as loaded (the
    /// user has edited the form when they differ).
    loaded_from: Option<RelaySettings>,
    loaded_form: Option<RelayForm>,
    apply: Option<Requested<crate::i18n::L10n, crate::i18n::L10n>>,
    nginx: Option<Requested<String, crate::i18n::L10n>>,
    nginx_open: bool,
    cert_check: Option<(String, Requested<CertBrief, crate::i18n::L10n>)>,
    /// File dialogs for the certificate and the key fields.
    cert_picker: super::picker::Picker,
    key_picker: super::picker::Picker,
    pub view: View,
    pub filter: String,
    sort: SortKey,
    ascending: bool,
}

impl RelayPanel {
    pub fn ui(&mut self, ui: &mut egui::Ui, t: &Tr, live: &LiveModel, actions: &mut Vec<Action>) {
        let status = &live.status.relay;
        // Load the form from the running configuration until the user edits it.
        if let Some(settings) = &status.config
            && self.loaded_from.as_ref() != Some(settings)
            && self.form == self.loaded_form
        {
            self.form = Some(RelayForm::from_settings(settings));
            self.loaded_form = self.form.clone();
            self.loaded_from = Some(settings.clone());
        }

        ui.heading(t.nav_relay);
        ui.label(RichText::new(t.relay_intro).color(tokens::MUTED));
        ui.add_space(4.0);
        self.header_ui(ui, t, live, actions);
        ui.add_space(4.0);
        egui::CollapsingHeader::new(t.relay_config)
            .id_salt("relay-config")
            .default_open(false)
            .show(ui, |ui| self.form_ui(ui, t, actions));
        ui.separator();
        ui.horizontal(|ui| {
            let snap = &live.relay.snapshot;
            for (v, label) in [
                (
                    View::Connections,
                    format!("{} ({})", t.relay_connections, snap.live.len()),
                ),
                (
                    View::Closed,
                    format!("{} ({})", t.relay_closed, snap.totals.closed),
                ),
                (
                    View::Rejected,
                    format!("{} ({})", t.relay_rejected, snap.totals.rejected),
                ),
                (View::Throughput, t.relay_throughput.to_owned()),
            ] {
                ui.selectable_value(&mut self.view, v, label);
            }
            ui.separator();
            let l = ui.label(t.relay_filter);
            ui.add(egui::TextEdit::singleline(&mut self.filter).desired_width(180.0))
                .labelled_by(l.id);
        });
        match self.view {
            View::Connections => {
                self.connections_ui(ui, t, &live.relay.snapshot.live, true, actions)
            }
            View::Closed => self.connections_ui(ui, t, &live.relay.snapshot.closed, false, actions),
            View::Rejected => self.rejected_ui(ui, t, live),
            View::Throughput => throughput_ui(ui, t, live),
        }
        self.nginx_window(ui, t);
    }

    fn header_ui(
        &mut self,
        ui: &mut egui::Ui,
        t: &Tr,
        live: &LiveModel,
        actions: &mut Vec<Action>,
    ) {
        let status = &live.status.relay;
        ui.horizontal_wrapped(|ui| {
            let (text, color) = match &status.phase {
                RelayPhase::Starting => (t.state_starting.to_owned(), tokens::WARN),
                RelayPhase::Running { addr } => {
                    (format!("{} · {addr}", t.relay_running), tokens::OK)
                }
                RelayPhase::Draining => (t.relay_draining.to_owned(), tokens::WARN),
                RelayPhase::Stopped => (t.relay_stopped.to_owned(), tokens::MUTED),
                RelayPhase::Failed(e) => (format!("{} · {e}", t.state_failed), tokens::BAD),
            };
            ui.label(format!("{}:", t.relay));
            ui.colored_label(color, text);
            let running = matches!(status.phase, RelayPhase::Running { .. });
            if running {
                if ui.button(t.relay_stop).clicked() {
                    actions.push(Action::Backend(RelayCmd::Stop.into()));
                }
            } else if ui
                .add_enabled(status.config.is_some(), egui::Button::new(t.relay_start))
                .clicked()
            {
                actions.push(Action::Backend(RelayCmd::Start.into()));
            }
            if ui.button(t.relay_export_nginx).clicked()
                && let Some(form) = &self.form
            {
                self.nginx_open = true;
                self.nginx = Some(match form.settings() {
                    Ok(settings) => {
                        let (req, reply) = Requested::new(waker(ui));
                        let settings = Box::new(settings);
                        actions.push(Action::Backend(
                            RelayCmd::NginxExport { settings, reply }.into(),
                        ));
                        req
                    }
                    Err(e) => Requested::Done(Err(e)),
                });
            }
        });
        if let Some(url) = &status.url {
            ui.horizontal(|ui| {
                ui.label(format!("{}:", t.relay_url));
                // In the Mini Program the same address is written wxs:// (mqtt.js).
                let mp_url = url.replace("wss://", "wxs://");
                ui.monospace(&mp_url);
                if ui.small_button(t.copy).clicked() {
                    ui.ctx().copy_text(mp_url);
                }
            });
        }
        if let Some(c) = &status.cert {
            cert_line_ui(ui, t, c);
        }
        if let Some(e) = &status.error {
            ui.colored_label(
                tokens::BAD,
                fill(t.relay_apply_failed, &[("error", &e.get(t.lang()))]),
            );
        }
        let tot = &live.relay.snapshot.totals;
        ui.label(
            RichText::new(fill(
                t.totals,
                &[
                    ("live", &live.relay.snapshot.live.len()),
                    ("upgraded", &tot.upgraded),
                    ("rejected", &tot.rejected),
                    ("bytes_in", &human_bytes(tot.bytes_in)),
                    ("bytes_out", &human_bytes(tot.bytes_out)),
                ],
            ))
            .color(tokens::MUTED),
        );
    }

    fn form_ui(&mut self, ui: &mut egui::Ui, t: &Tr, actions: &mut Vec<Action>) {
        let Some(form) = self.form.as_mut() else {
            ui.label(RichText::new(t.relay_stopped).color(tokens::MUTED));
            return;
        };
        // Files dropped on the window fill the certificate or key field (by their name).
        let dropped: Vec<PathBuf> = ui.ctx().input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .collect()
        });
        for path in dropped {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().to_lowercase())
                .unwrap_or_default();
            let text = path.display().to_string();
            if name.contains("key") {
                form.key = text;
            } else {
                form.cert = text;
                self.cert_check = None;
            }
        }
        if let Some(p) = self.cert_picker.take().and_then(|f| f.into_iter().next()) {
            form.cert = p.display().to_string();
            self.cert_check = None;
        }
        if let Some(p) = self.key_picker.take().and_then(|f| f.into_iter().next()) {
            form.key = p.display().to_string();
        }
        if let Some(e) = self.cert_picker.error().or(self.key_picker.error()) {
            ui.colored_label(tokens::WARN, e.get(t.lang()));
        }
        ui.label(RichText::new(t.relay_drop_hint).color(tokens::MUTED));
        egui::Grid::new("relay-form")
            .num_columns(2)
            .spacing([12.0, 6.0])
            .show(ui, |ui| {
                let l = ui.label(t.relay_listen);
                ui.add(egui::TextEdit::singleline(&mut form.listen).desired_width(220.0))
                    .labelled_by(l.id);
                ui.end_row();
                for (label, value, is_cert) in [
                    (t.relay_cert, &mut form.cert, true),
                    (t.relay_key, &mut form.key, false),
                ] {
                    let l = ui.label(label);
                    ui.vertical(|ui| {
                        let resp = ui
                            .horizontal(|ui| {
                                let resp = ui
                                    .add(egui::TextEdit::singleline(value).desired_width(420.0))
                                    .labelled_by(l.id);
                                let picker = if is_cert {
                                    &mut self.cert_picker
                                } else {
                                    &mut self.key_picker
                                };
                                picker.button(ui, t.relay_browse, false, actions);
                                resp
                            })
                            .inner;
                        if is_cert {
                            let path = value.trim().to_owned();
                            let checked = self.cert_check.as_ref().is_some_and(|(p, _)| *p == path);
                            if (resp.lost_focus() || self.cert_check.is_none())
                                && !checked
                                && !path.is_empty()
                            {
                                let (req, reply) = Requested::new(waker(ui));
                                self.cert_check = Some((path.clone(), req));
                                actions.push(Action::Backend(
                                    CertCmd::Brief {
                                        path: PathBuf::from(path),
                                        reply,
                                    }
                                    .into(),
                                ));
                            }
                            match self.cert_check.as_mut().map(|(_, r)| r.poll()) {
                                Some(Some(Ok(c))) => cert_line_ui(ui, t, c),
                                Some(Some(Err(e))) => {
                                    ui.colored_label(tokens::BAD, e.get(t.lang()));
                                }
                                _ => {}
                            }
                        }
                    });
                    ui.end_row();
                }
            });
        form.routes_ui(ui, t);
        form.limits_ui(ui, t);
        ui.add_space(6.0);
        ui.horizontal(|ui| {
            let busy = matches!(self.apply, Some(Requested::Pending(_)));
            if ui
                .add_enabled(!busy, egui::Button::new(t.relay_apply))
                .clicked()
            {
                self.apply = Some(match form.settings() {
                    Ok(settings) => {
                        let (req, reply) = Requested::new(waker(ui));
                        let settings = Box::new(settings);
                        actions.push(Action::Backend(RelayCmd::Apply { settings, reply }.into()));
                        req
                    }
                    Err(e) => Requested::Done(Err(e)),
                });
            }
            match self.apply.as_mut().map(|r| r.poll()) {
                Some(None) => {
                    ui.spinner();
                }
                Some(Some(Ok(m))) => {
                    ui.colored_label(
                        tokens::OK,
                        fill(t.relay_applied, &[("message", &m.get(t.lang()))]),
                    );
                }
                Some(Some(Err(e))) => {
                    ui.colored_label(
                        tokens::BAD,
                        fill(t.relay_apply_failed, &[("error", &e.get(t.lang()))]),
                    );
                }
                None => {}
            }
        });
    }

    /// The rows that pass the filter, in the chosen order.
    fn sorted<'a>(&self, rows: &'a [ConnRecord]) -> Vec<&'a ConnRecord> {
        let needle = self.filter.to_lowercase();
        let mut rows: Vec<&ConnRecord> = rows
            .iter()
            .filter(|r| needle.is_empty() || matches_filter(r, &needle))
            .collect();
        let key = |r: &ConnRecord| -> (String, u64) {
            match self.sort {
                SortKey::Id => (String::new(), r.id),
                SortKey::Peer => (r.peer.to_string(), 0),
                SortKey::MiniProgram => (
                    r.mini_program
                        .as_ref()
                        .map(|m| m.appid.clone())
                        .unwrap_or_default(),
                    0,
                ),
                SortKey::ClientId => (
                    r.connect
                        .as_ref()
                        .map(|c| c.client_id.clone())
                        .unwrap_or_default(),
                    0,
                ),
                SortKey::BytesIn => (String::new(), r.bytes_in),
                SortKey::BytesOut => (String::new(), r.bytes_out),
            }
        };
        rows.sort_by_key(|r| key(r));
        if !self.ascending {
            rows.reverse();
        }
        rows
    }

    fn connections_ui(
        &mut self,
        ui: &mut egui::Ui,
        t: &Tr,
        rows: &[ConnRecord],
        closable: bool,
        actions: &mut Vec<Action>,
    ) {
        let rows = self.sorted(rows);
        if rows.is_empty() {
            ui.label(RichText::new(t.relay_no_connections).color(tokens::MUTED));
            return;
        }
        let mut table = TableBuilder::new(ui)
            .id_salt(("relay-conns", closable))
            .striped(true)
            .resizable(true)
            .column(Column::exact(40.0))
            .column(Column::initial(120.0).clip(true))
            .column(Column::initial(170.0).clip(true))
            .column(Column::initial(150.0).clip(true))
            .column(Column::initial(70.0).clip(true))
            .column(Column::initial(150.0).clip(true))
            .column(Column::exact(64.0))
            .column(Column::exact(64.0))
            .column(Column::exact(56.0));
        table = if closable {
            table.column(Column::exact(56.0))
        } else {
            table.column(Column::remainder().clip(true))
        };
        let headers: [(&str, Option<SortKey>); 9] = [
            (t.col_id, Some(SortKey::Id)),
            (t.col_peer, Some(SortKey::Peer)),
            (t.col_mini_program, Some(SortKey::MiniProgram)),
            (t.col_client_id, Some(SortKey::ClientId)),
            (t.col_user, None),
            (t.col_upstream, None),
            (t.col_in, Some(SortKey::BytesIn)),
            (t.col_out, Some(SortKey::BytesOut)),
            (t.col_packets, None),
        ];
        table
            .header(tokens::ROW_HEIGHT + 2.0, |mut h| {
                for (label, key) in headers {
                    h.col(|ui| match key {
                        Some(k) => {
                            let arrow = if self.sort == k {
                                if self.ascending { " ▲" } else { " ▼" }
                            } else {
                                ""
                            };
                            let text = RichText::new(format!("{label}{arrow}")).strong();
                            if ui.add(egui::Button::new(text).frame(false)).clicked() {
                                if self.sort == k {
                                    self.ascending = !self.ascending;
                                } else {
                                    self.sort = k;
                                    self.ascending = true;
                                }
                            }
                        }
                        None => {
                            ui.strong(label);
                        }
                    });
                }
                h.col(|ui| {
                    if !closable {
                        ui.strong(t.col_close);
                    }
                });
            })
            .body(|body| {
                body.rows(tokens::ROW_HEIGHT + 2.0, rows.len(), |mut row| {
                    let Some(r) = rows.get(row.index()) else {
                        return;
                    };
                    let cell = |row: &mut egui_extras::TableRow<'_, '_>, text: String| {
                        row.col(|ui| {
                            ui.add(egui::Label::new(RichText::new(text).monospace()).truncate());
                        });
                    };
                    cell(&mut row, r.id.to_string());
                    row.col(|ui| {
                        ui.add(
                            egui::Label::new(RichText::new(r.peer.to_string()).monospace())
                                .truncate(),
                        )
                        .on_hover_ui(|ui| details_ui(ui, r));
                    });
                    cell(
                        &mut row,
                        r.mini_program
                            .as_ref()
                            .map(|m| format!("{} v{}", m.appid, m.version))
                            .unwrap_or_else(|| "—".into()),
                    );
                    cell(
                        &mut row,
                        r.connect
                            .as_ref()
                            .map(|c| c.client_id.clone())
                            .unwrap_or_else(|| "—".into()),
                    );
                    cell(
                        &mut row,
                        r.connect
                            .as_ref()
                            .and_then(|c| c.username.clone())
                            .unwrap_or_else(|| "—".into()),
                    );
                    cell(&mut row, r.upstream.clone().unwrap_or_else(|| "—".into()));
                    cell(&mut row, human_bytes(r.bytes_in));
                    cell(&mut row, human_bytes(r.bytes_out));
                    cell(&mut row, format!("{}/{}", r.packets_in, r.packets_out));
                    if closable {
                        row.col(|ui| {
                            if ui.small_button(t.close).clicked() {
                                actions.push(Action::Backend(RelayCmd::Close { id: r.id }.into()));
                            }
                        });
                    } else {
                        let text = r
                            .close
                            .as_ref()
                            .map(|c| {
                                format!(
                                    "{} {} {}",
                                    c.side,
                                    c.code.map(|c| c.to_string()).unwrap_or_default(),
                                    c.reason
                                )
                            })
                            .unwrap_or_default();
                        cell(&mut row, text);
                    }
                });
            });
    }

    fn rejected_ui(&mut self, ui: &mut egui::Ui, t: &Tr, live: &LiveModel) {
        let needle = self.filter.to_lowercase();
        let rows: Vec<_> = live
            .relay
            .snapshot
            .rejected
            .iter()
            .filter(|r| {
                needle.is_empty()
                    || r.reason.to_lowercase().contains(&needle)
                    || r.peer.to_string().contains(&needle)
                    || r.path.as_deref().is_some_and(|p| p.contains(&needle))
            })
            .collect();
        if rows.is_empty() {
            ui.label(RichText::new(t.relay_no_rejections).color(tokens::MUTED));
            return;
        }
        TableBuilder::new(ui)
            .id_salt("relay-rejected")
            .striped(true)
            .resizable(true)
            .column(Column::exact(70.0))
            .column(Column::initial(130.0))
            .column(Column::initial(90.0))
            .column(Column::exact(56.0))
            .column(Column::remainder())
            .header(tokens::ROW_HEIGHT, |mut h| {
                for label in [
                    t.col_time,
                    t.col_peer,
                    t.relay_route_path,
                    t.col_status,
                    t.col_reason,
                ] {
                    h.col(|ui| {
                        ui.strong(label);
                    });
                }
            })
            .body(|body| {
                body.rows(tokens::ROW_HEIGHT, rows.len(), |mut row| {
                    let Some(r) = rows.get(row.index()) else {
                        return;
                    };
                    row.col(|ui| {
                        ui.monospace(r.time.format("%H:%M:%S").to_string());
                    });
                    row.col(|ui| {
                        ui.monospace(r.peer.to_string());
                    });
                    row.col(|ui| {
                        ui.monospace(r.path.as_deref().unwrap_or("—"));
                    });
                    row.col(|ui| {
                        let s = r
                            .status
                            .map(|s| s.to_string())
                            .unwrap_or_else(|| "—".into());
                        ui.colored_label(tokens::BAD, RichText::new(s).monospace());
                    });
                    row.col(|ui| {
                        ui.add(egui::Label::new(r.reason.as_str()).truncate());
                    });
                });
            });
    }

    fn nginx_window(&mut self, ui: &mut egui::Ui, t: &Tr) {
        if !self.nginx_open {
            return;
        }
        let mut open = true;
        egui::Window::new(t.relay_nginx_title)
            .open(&mut open)
            .default_size([640.0, 480.0])
            .show(ui.ctx(), |ui| match self.nginx.as_mut().map(|r| r.poll()) {
                Some(Some(Ok(text))) => {
                    if ui.button(t.copy).clicked() {
                        ui.ctx().copy_text(text.clone());
                    }
                    egui::ScrollArea::both().show(ui, |ui| {
                        ui.add(
                            egui::Label::new(RichText::new(text.as_str()).monospace())
                                .selectable(true),
                        );
                    });
                }
                Some(Some(Err(e))) => {
                    ui.colored_label(tokens::BAD, e.get(t.lang()));
                }
                _ => {
                    ui.spinner();
                }
            });
        self.nginx_open = open;
    }
}

/// Everything recorded about one connection, for the hover card.
fn details_ui(ui: &mut egui::Ui, r: &ConnRecord) {
    egui::Grid::new(("conn-details", r.id))
        .num_columns(2)
        .show(ui, |ui| {
            let mut row = |k: &str, v: String| {
                ui.label(RichText::new(k).color(tokens::MUTED));
                ui.monospace(v);
                ui.end_row();
            };
            row("peer", r.peer.to_string());
            row("opened", r.opened.format("%Y-%m-%d %H:%M:%S").to_string());
            row("sni", r.sni.clone().unwrap_or_else(|| "—".into()));
            row("tls", format!("{} {}", r.tls_version, r.cipher));
            row("path", r.path.clone());
            row(
                "subprotocol",
                r.subprotocol.clone().unwrap_or_else(|| "—".into()),
            );
            row(
                "user-agent",
                r.user_agent.clone().unwrap_or_else(|| "—".into()),
            );
            row("origin", r.origin.clone().unwrap_or_else(|| "—".into()));
            if !r.upstream_failures.is_empty() {
                // Failover: which upstreams were tried first, and why they failed.
                row("failed over", r.upstream_failures.join("\n"));
            }
            if let Some(c) = &r.connect {
                row(
                    "mqtt",
                    format!(
                        "level {} · keepalive {} s · clean {}",
                        c.protocol_level, c.keep_alive_secs, c.clean_session
                    ),
                );
            }
            row(
                "connack",
                r.connack
                    .map(|c| format!("{c} ({})", crate::relay::inspect::connack_text(c)))
                    .unwrap_or_else(|| "—".into()),
            );
            if let Some(c) = &r.close {
                row(
                    "close",
                    format!(
                        "{} {} {}",
                        c.side,
                        c.code.map(|c| c.to_string()).unwrap_or_default(),
                        c.reason
                    ),
                );
            }
        });
}

fn matches_filter(r: &ConnRecord, needle: &str) -> bool {
    let hay = [
        r.peer.to_string(),
        r.path.clone(),
        r.upstream.clone().unwrap_or_default(),
        r.mini_program
            .as_ref()
            .map(|m| m.appid.clone())
            .unwrap_or_default(),
        r.connect
            .as_ref()
            .map(|c| c.client_id.clone())
            .unwrap_or_default(),
        r.connect
            .as_ref()
            .and_then(|c| c.username.clone())
            .unwrap_or_default(),
        r.user_agent.clone().unwrap_or_default(),
    ];
    hay.iter().any(|h| h.to_lowercase().contains(needle))
}

fn cert_line_ui(ui: &mut egui::Ui, t: &Tr, c: &CertBrief) {
    let who = if c.names.is_empty() {
        c.subject.clone()
    } else {
        c.names.join(", ")
    };
    let (text, color) = if c.days_left < 0 {
        (
            fill(
                t.relay_cert_expired,
                &[("subject", &who), ("days", &-c.days_left)],
            ),
            tokens::BAD,
        )
    } else {
        let color = if c.days_left < 30 {
            tokens::WARN
        } else {
            tokens::OK
        };
        (
            fill(
                t.relay_cert_info,
                &[
                    ("subject", &who),
                    ("days", &c.days_left),
                    ("n", &c.chain_len),
                ],
            ),
            color,
        )
    };
    ui.colored_label(color, text);
}

fn throughput_ui(ui: &mut egui::Ui, t: &Tr, live: &LiveModel) {
    let pts = &live.throughput.points;
    let inbound: Vec<[f64; 2]> = pts.iter().map(|p| [p[0], p[1]]).collect();
    let outbound: Vec<[f64; 2]> = pts.iter().map(|p| [p[0], p[2]]).collect();
    Plot::new("relay-throughput")
        .height(220.0)
        .legend(Legend::default())
        .include_y(0.0)
        .allow_drag(false)
        .allow_scroll(false)
        .show(ui, |plot| {
            plot.line(Line::new(t.relay_bytes_in, inbound).color(tokens::ACCENT));
            plot.line(Line::new(t.relay_bytes_out, outbound).color(tokens::OK));
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_edits_typed_settings_and_keeps_what_it_does_not_show() {
        let dir = tempfile::tempdir().unwrap();
        let text = "[listen]\naddr = \"127.0.0.1:8443\"\ncert = \"a.pem\"\nkey = \"a.key\"\n\n[[listen.sni]]\nname = \"x.example.com\"\ncert = \"x.pem\"\nkey = \"x.key\"\n\n[[route]]\npath = \"/mqtt\"\nupstream = [\"tcp://127.0.0.1:1883\", \"tcp://127.0.0.1:1884\"]\nallowed_appids = [\"wx1\"]\n\n[limits]\ndrain_secs = 3\n";
        // The settings as a parsed file would give them (no certificates needed for the form).
        let ca = crate::sandbox::devca::ensure(dir.path()).unwrap();
        let mut loaded = crate::relay::RelayConfig::simple(
            "127.0.0.1:8443".parse().unwrap(),
            &ca.leaf_chain,
            &ca.leaf_key,
            "/mqtt",
            Upstream::parse("tcp://127.0.0.1:1883").unwrap(),
        )
        .unwrap()
        .settings;
        loaded.routes[0]
            .upstreams
            .push(Upstream::parse("tcp://127.0.0.1:1884").unwrap());
        loaded.routes[0].allowed_appids = vec!["wx1".into()];
        loaded.certs.sni = vec![("x.example.com".into(), "x.pem".into(), "x.key".into())];
        loaded.limits.drain = std::time::Duration::from_secs(3);
        let _ = text;
        let mut f = RelayForm::from_settings(&loaded);
        assert_eq!(
            f.routes[0].upstreams,
            "tcp://127.0.0.1:1883\ntcp://127.0.0.1:1884"
        );
        assert_eq!(
            f.settings().unwrap(),
            loaded,
            "unchanged form, same settings"
        );
        f.idle_timeout_secs = 77;
        f.routes[0]
            .upstreams
            .push_str("\n\nws://10.0.0.1:8083/mqtt\n");
        let out = f.settings().unwrap();
        assert_eq!(out.limits.idle_timeout.as_secs(), 77);
        assert_eq!(out.limits.drain.as_secs(), 3, "not shown, kept");
        assert_eq!(out.routes[0].upstreams.len(), 3);
        assert_eq!(out.routes[0].allowed_appids, ["wx1"]);
        assert_eq!(out.certs.sni[0].0, "x.example.com");
        f.listen = "localhost:x".into();
        let e = f.settings().unwrap_err();
        assert!(
            e.en.contains("listen address") && e.zh.contains("监听地址"),
            "{e:?}"
        );
    }
}
