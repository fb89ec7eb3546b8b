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
use crate::relay::RelayPhase;
use crate::relay::stats::ConnRecord;
use crate::relay::tls::CertBrief;

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

/// The editable form of `relay.toml`. Keys the form does not show (SNI certificates,
/// allowlists) are kept from the loaded text.
#[derive(Debug, Clone, PartialEq)]
pub struct RelayForm {
    table: toml::Table,
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
    table: toml::Table,
    pub path: String,
    pub upstreams: String,
    pub require_subprotocol: bool,
}

fn get_str(t: &toml::Table, k: &str) -> String {
    t.get(k)
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned()
}

fn get_u64(t: Option<&toml::Table>, k: &str, default: u64) -> u64 {
    t.and_then(|t| t.get(k))
        .and_then(|v| v.as_integer())
        .and_then(|v| u64::try_from(v).ok())
        .unwrap_or(default)
}

impl RelayForm {
    pub fn from_toml(text: &str) -> Option<Self> {
        let table: toml::Table = text.parse().ok()?;
        let listen = table
            .get("listen")
            .and_then(|v| v.as_table())
            .cloned()
            .unwrap_or_default();
        let limits = table.get("limits").and_then(|v| v.as_table());
        let routes = table
            .get("route")
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|r| r.as_table())
                    .map(|r| RouteForm {
                        table: r.clone(),
                        path: get_str(r, "path"),
                        upstreams: r
                            .get("upstream")
                            .and_then(|v| v.as_array())
                            .map(|a| {
                                a.iter()
                                    .filter_map(|u| u.as_str())
                                    .collect::<Vec<_>>()
                                    .join("\n")
                            })
                            .unwrap_or_default(),
                        require_subprotocol: r
                            .get("require_subprotocol")
                            .and_then(|v| v.as_bool())
                            .unwrap_or(true),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(Self {
            listen: get_str(&listen, "addr"),
            cert: get_str(&listen, "cert"),
            key: get_str(&listen, "key"),
            routes,
            max_connections: get_u64(limits, "max_connections", 50_000),
            max_connections_per_ip: get_u64(limits, "max_connections_per_ip", 200),
            handshake_timeout_secs: get_u64(limits, "handshake_timeout_secs", 10),
            idle_timeout_secs: get_u64(limits, "idle_timeout_secs", 300),
            max_message_bytes: get_u64(limits, "max_message_bytes", 1024 * 1024),
            table,
        })
    }

    pub fn to_toml(&self) -> String {
        use toml::Value;
        let mut t = self.table.clone();
        let mut listen = t
            .get("listen")
            .and_then(|v| v.as_table())
            .cloned()
            .unwrap_or_default();
        listen.insert("addr".into(), Value::String(self.listen.trim().to_owned()));
        listen.insert("cert".into(), Value::String(self.cert.trim().to_owned()));
        listen.insert("key".into(), Value::String(self.key.trim().to_owned()));
        t.insert("listen".into(), Value::Table(listen));
        let routes: Vec<Value> = self
            .routes
            .iter()
            .map(|r| {
                let mut rt = r.table.clone();
                rt.insert("path".into(), Value::String(r.path.trim().to_owned()));
                rt.insert(
                    "upstream".into(),
                    Value::Array(
                        r.upstreams
                            .lines()
                            .map(str::trim)
                            .filter(|l| !l.is_empty())
                            .map(|l| Value::String(l.to_owned()))
                            .collect(),
                    ),
                );
                rt.insert(
                    "require_subprotocol".into(),
                    Value::Boolean(r.require_subprotocol),
                );
                Value::Table(rt)
            })
            .collect();
        t.insert("route".into(), Value::Array(routes));
        let mut limits = t
            .get("limits")
            .and_then(|v| v.as_table())
            .cloned()
            .unwrap_or_default();
        for (k, v) in [
            ("max_connections", self.max_connections),
            ("max_connections_per_ip", self.max_connections_per_ip),
            ("handshake_timeout_secs", self.handshake_timeout_secs),
            ("idle_timeout_secs", self.idle_timeout_secs),
            ("max_message_bytes", self.max_message_bytes),
        ] {
            limits.insert(
                k.into(),
                Value::Integer(i64::try_from(v).unwrap_or(i64::MAX)),
            );
        }
        t.insert("limits".into(), Value::Table(limits));
        toml::to_string(&t).unwrap_or_default()
    }
}

#[derive(Default)]
pub struct RelayPanel {
    form: Option<RelayForm>,
    /// The running configuration the form was loaded from, and the form as loaded (the
    /// user has edited the form when they differ).
    loaded_from: Option<String>,
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
        if let Some(text) = &status.config_toml
            && self.loaded_from.as_ref() != Some(text)
            && self.form == self.loaded_form
        {
            self.form = RelayForm::from_toml(text);
            self.loaded_form = self.form.clone();
            self.loaded_from = Some(text.clone());
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
                .add_enabled(
                    status.config_toml.is_some(),
                    egui::Button::new(t.relay_start),
                )
                .clicked()
            {
                actions.push(Action::Backend(RelayCmd::Start.into()));
            }
            if ui.button(t.relay_export_nginx).clicked()
                && let Some(form) = &self.form
            {
                {
                    let (req, reply) = Requested::new(waker(ui));
                    self.nginx = Some(req);
                    self.nginx_open = true;
                    actions.push(Action::Backend(
                        RelayCmd::NginxExport {
                            toml: form.to_toml(),
                            reply,
                        }
                        .into(),
                    ));
                }
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
        ui.add_space(4.0);
        let mut remove = None;
        for (i, r) in form.routes.iter_mut().enumerate() {
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
            form.routes.remove(i);
        }
        if ui.button(t.relay_add_route).clicked() {
            form.routes.push(RouteForm {
                table: toml::Table::new(),
                path: "/mqtt".into(),
                upstreams: "tcp://127.0.0.1:1883".into(),
                require_subprotocol: true,
            });
        }
        ui.add_space(4.0);
        ui.label(RichText::new(t.relay_limits).strong());
        egui::Grid::new("relay-limits")
            .num_columns(4)
            .spacing([12.0, 6.0])
            .show(ui, |ui| {
                let fields: [(&str, &mut u64, u64); 5] = [
                    (t.relay_max_conn, &mut form.max_connections, 10_000_000),
                    (
                        t.relay_max_conn_ip,
                        &mut form.max_connections_per_ip,
                        10_000_000,
                    ),
                    (
                        t.relay_handshake_timeout,
                        &mut form.handshake_timeout_secs,
                        300,
                    ),
                    (t.relay_idle_timeout, &mut form.idle_timeout_secs, 86_400),
                    (
                        t.relay_max_message,
                        &mut form.max_message_bytes,
                        256 * 1024 * 1024,
                    ),
                ];
                for (i, (label, v, max)) in fields.into_iter().enumerate() {
                    let l = ui.label(label);
                    ui.add(egui::DragValue::new(v).range(1..=max))
                        .labelled_by(l.id);
                    if i % 2 == 1 {
                        ui.end_row();
                    }
                }
            });
        ui.add_space(6.0);
        ui.horizontal(|ui| {
            let busy = matches!(self.apply, Some(Requested::Pending(_)));
            if ui
                .add_enabled(!busy, egui::Button::new(t.relay_apply))
                .clicked()
            {
                let (req, reply) = Requested::new(waker(ui));
                self.apply = Some(req);
                actions.push(Action::Backend(
                    RelayCmd::Apply {
                        toml: form.to_toml(),
                        reply,
                    }
                    .into(),
                ));
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

    fn connections_ui(
        &mut self,
        ui: &mut egui::Ui,
        t: &Tr,
        rows: &[ConnRecord],
        closable: bool,
        actions: &mut Vec<Action>,
    ) {
        let needle = self.filter.to_lowercase();
        let mut rows: Vec<&ConnRecord> = rows
            .iter()
            .filter(|r| needle.is_empty() || matches_filter(r, &needle))
            .collect();
        if rows.is_empty() {
            ui.label(RichText::new(t.relay_no_connections).color(tokens::MUTED));
            return;
        }
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
    fn form_round_trip_keeps_unshown_keys() {
        let text = "[listen]\naddr = \"127.0.0.1:8443\"\ncert = \"a.pem\"\nkey = \"a.key\"\n\n[[listen.sni]]\nname = \"x.example.com\"\ncert = \"x.pem\"\nkey = \"x.key\"\n\n[[route]]\npath = \"/mqtt\"\nupstream = [\"tcp://127.0.0.1:1883\", \"tcp://127.0.0.1:1884\"]\nallowed_appids = [\"wx1\"]\n";
        let mut f = RelayForm::from_toml(text).unwrap();
        assert_eq!(
            f.routes[0].upstreams,
            "tcp://127.0.0.1:1883\ntcp://127.0.0.1:1884"
        );
        f.idle_timeout_secs = 77;
        f.routes[0]
            .upstreams
            .push_str("\n\nws://10.0.0.1:8083/mqtt\n");
        let out: toml::Table = f.to_toml().parse().unwrap();
        assert_eq!(out["limits"]["idle_timeout_secs"].as_integer(), Some(77));
        assert_eq!(out["route"][0]["upstream"].as_array().unwrap().len(), 3);
        assert_eq!(out["route"][0]["allowed_appids"][0].as_str(), Some("wx1"));
        assert_eq!(
            out["listen"]["sni"][0]["name"].as_str(),
            Some("x.example.com")
        );
    }
}
