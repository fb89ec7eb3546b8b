//! The Devices panel: the roster with availability, reconnects and telemetry, discovery
//! proposals, per-device plots, command templates sent to one device or a selection with
//! their acknowledgements, the Mini Program demo flow, and the device simulator.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use egui::{Color32, RichText};
use egui_plot::{Line, Plot, PlotPoints};

use super::i18n::{Tr, fill};
use super::picker::waker;
use super::tokens;
use crate::backend::{DeviceCmd, Requested};
use crate::devices::commands::{self, Outcome};
use crate::devices::config::DeviceDef;
use crate::devices::flow::FlowStep;
use crate::devices::roster::Roster;
use crate::i18n::Language;
use crate::model::{Action, LiveModel, RosterEdit};

/// Commands kept in the log.
const LOG_KEEP: usize = 200;

struct LogEntry {
    device: String,
    at: chrono::DateTime<chrono::Local>,
    what: String,
    outcome: Requested<Outcome, crate::i18n::L10n>,
}

pub struct DevicesPanel {
    pub selected: Option<String>,
    /// Devices ticked for "send to selection".
    pub ticked: BTreeSet<String>,
    pub template: usize,
    pub values: BTreeMap<String, String>,
    /// Warnings were shown for this exact command; the next click sends it.
    confirmed: Option<String>,
    log: VecDeque<LogEntry>,
    flow: Option<Requested<Vec<FlowStep>, crate::i18n::L10n>>,
    pub sim_count: usize,
    sim: Option<Requested<Vec<String>, crate::i18n::L10n>>,
    pattern: Option<String>,
    /// The device being edited (a working copy) and its plot list as text.
    edit: Option<(DeviceDef, String)>,
    pub new_id: String,
}

impl Default for DevicesPanel {
    fn default() -> Self {
        DevicesPanel {
            selected: None,
            ticked: BTreeSet::new(),
            template: 0,
            values: BTreeMap::new(),
            confirmed: None,
            log: VecDeque::new(),
            flow: None,
            sim_count: 10,
            sim: None,
            pattern: None,
            edit: None,
            new_id: String::new(),
        }
    }
}

fn ago(t: &Tr, now: i64, then: Option<i64>) -> String {
    match then {
        None => "-".into(),
        Some(s) => {
            let d = (now - s).max(0);
            if d < 60 {
                fill(t.devices_secs_ago, &[("n", &d)])
            } else if d < 3600 {
                fill(t.devices_mins_ago, &[("n", &(d / 60))])
            } else {
                fill(t.devices_hours_ago, &[("n", &(d / 3600))])
            }
        }
    }
}

impl DevicesPanel {
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        t: &Tr,
        lang: Language,
        live: &LiveModel,
        actions: &mut Vec<Action>,
    ) {
        let roster = &live.roster;
        let now = chrono::Local::now().timestamp();
        ui.heading(t.nav_devices);
        ui.label(RichText::new(t.devices_intro).color(tokens::MUTED));
        ui.add_space(4.0);
        self.toolbar_ui(ui, t, roster, actions);
        self.proposals_ui(ui, t, roster, actions);
        ui.separator();

        let selected = self
            .selected
            .clone()
            .filter(|id| roster.config.device(id).is_some())
            .or_else(|| roster.config.devices.first().map(|d| d.id.clone()));
        self.selected = selected.clone();

        egui::Panel::right("device-detail")
            .resizable(true)
            .default_size(440.0)
            .min_size(340.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical()
                    .id_salt("device-detail-scroll")
                    .show(ui, |ui| {
                        if let Some(def) = selected.as_ref().and_then(|id| roster.config.device(id))
                        {
                            self.detail_ui(ui, t, lang, roster, def, now, actions);
                        }
                    });
            });
        egui::ScrollArea::vertical()
            .id_salt("roster-scroll")
            .auto_shrink([false, false])
            .show(ui, |ui| self.roster_ui(ui, t, roster, now, actions));
    }

    fn toolbar_ui(
        &mut self,
        ui: &mut egui::Ui,
        t: &Tr,
        roster: &Roster,
        actions: &mut Vec<Action>,
    ) {
        ui.horizontal_wrapped(|ui| {
            ui.label(fill(
                t.devices_count,
                &[
                    ("online", &roster.online_count()),
                    ("total", &roster.config.devices.len()),
                ],
            ));
            ui.separator();
            let l = ui.label(t.devices_simulate);
            ui.add(egui::DragValue::new(&mut self.sim_count).range(1..=1000))
                .labelled_by(l.id);
            let running = matches!(self.sim.as_mut().map(|r| r.poll()), Some(Some(Ok(_))));
            if ui.button(t.devices_sim_start).clicked() {
                let (req, reply) = Requested::new(waker(ui));
                self.sim = Some(req);
                actions.push(Action::Backend(
                    DeviceCmd::SimulateStart {
                        count: self.sim_count,
                        reply,
                    }
                    .into(),
                ));
            }
            if running && ui.button(t.devices_sim_stop).clicked() {
                self.sim = None;
                actions.push(Action::Backend(DeviceCmd::SimulateStop.into()));
            }
            match self.sim.as_mut().map(|r| r.poll()) {
                Some(Some(Ok(ids))) => {
                    ui.label(
                        RichText::new(fill(t.devices_sim_running, &[("n", &ids.len())]))
                            .color(tokens::OK),
                    );
                }
                Some(Some(Err(e))) => {
                    ui.colored_label(tokens::BAD, e.get(t.lang()));
                }
                _ => {}
            }
            ui.separator();
            let pattern = self
                .pattern
                .get_or_insert_with(|| roster.config.discovery.pattern.clone());
            let l = ui.label(t.devices_discovery);
            ui.add(egui::TextEdit::singleline(pattern).desired_width(160.0))
                .labelled_by(l.id);
            if *pattern != roster.config.discovery.pattern && ui.button(t.devices_apply).clicked() {
                actions.push(Action::Roster(RosterEdit::SetDiscovery(pattern.clone())));
            }
            ui.separator();
            ui.add(
                egui::TextEdit::singleline(&mut self.new_id)
                    .hint_text(t.devices_new_id)
                    .desired_width(120.0),
            );
            let id = self.new_id.trim().to_owned();
            let valid = !id.is_empty()
                && !id.contains(['/', '+', '#'])
                && roster.config.device(&id).is_none();
            if ui
                .add_enabled(valid, egui::Button::new(t.devices_add_device))
                .clicked()
            {
                actions.push(Action::Roster(RosterEdit::Add(Box::new(
                    DeviceDef::esp8266(&id, "devices"),
                ))));
                self.selected = Some(id);
                self.new_id.clear();
            }
        });
    }

    fn proposals_ui(
        &mut self,
        ui: &mut egui::Ui,
        t: &Tr,
        roster: &Roster,
        actions: &mut Vec<Action>,
    ) {
        if roster.proposals.is_empty() {
            return;
        }
        ui.horizontal_wrapped(|ui| {
            ui.label(
                RichText::new(fill(
                    t.devices_discovered,
                    &[("n", &roster.proposals.len())],
                ))
                .color(tokens::ACCENT),
            );
            for p in roster.proposals.values().take(12) {
                if ui
                    .button(fill(t.devices_add, &[("n", &p.id)]))
                    .on_hover_text(&p.topic)
                    .clicked()
                {
                    actions.push(Action::Roster(RosterEdit::Add(Box::new(
                        DeviceDef::esp8266(&p.id, &p.prefix),
                    ))));
                }
            }
            if roster.proposals.len() > 1 && ui.button(t.devices_add_all).clicked() {
                let all = roster
                    .proposals
                    .values()
                    .map(|p| DeviceDef::esp8266(&p.id, &p.prefix))
                    .collect();
                actions.push(Action::Roster(RosterEdit::AddMany(all)));
            }
        });
    }

    fn roster_ui(
        &mut self,
        ui: &mut egui::Ui,
        t: &Tr,
        roster: &Roster,
        now: i64,
        actions: &mut Vec<Action>,
    ) {
        if roster.config.devices.is_empty() {
            ui.label(RichText::new(t.devices_none).color(tokens::MUTED));
            return;
        }
        egui::Grid::new("roster")
            .num_columns(6)
            .striped(true)
            .spacing([10.0, 4.0])
            .show(ui, |ui| {
                ui.label("");
                for h in [
                    t.devices_col_device,
                    t.devices_col_state,
                    t.devices_col_seen,
                    t.devices_col_reconnects,
                    "",
                ] {
                    ui.label(RichText::new(h).strong());
                }
                ui.end_row();
                let empty = crate::devices::roster::DeviceLive::default();
                for d in &roster.config.devices {
                    let l = roster.live.get(&d.id).unwrap_or(&empty);
                    let mut ticked = self.ticked.contains(&d.id);
                    if ui
                        .checkbox(&mut ticked, "")
                        .on_hover_text(t.devices_tick)
                        .changed()
                    {
                        if ticked {
                            self.ticked.insert(d.id.clone());
                        } else {
                            self.ticked.remove(&d.id);
                        }
                    }
                    let offline = l.online != Some(true);
                    let name = RichText::new(d.label()).strong().color(if offline {
                        tokens::BAD
                    } else {
                        Color32::PLACEHOLDER
                    });
                    let mut fields: Vec<String> = Vec::new();
                    for k in ["rssi", "free_heap", "temperature", "led"] {
                        if let Some(v) = l.telemetry.get(k) {
                            fields.push(format!("{k} {}", v.to_string().trim_matches('"')));
                        }
                    }
                    ui.vertical(|ui| {
                        ui.set_min_width(200.0);
                        if ui
                            .selectable_label(self.selected.as_deref() == Some(d.id.as_str()), name)
                            .clicked()
                        {
                            self.selected = Some(d.id.clone());
                        }
                        if !fields.is_empty() {
                            ui.add(
                                egui::Label::new(
                                    RichText::new(fields.join(" · "))
                                        .monospace()
                                        .small()
                                        .color(tokens::MUTED),
                                )
                                .extend(),
                            );
                        }
                    });
                    let (state, color) = match l.online {
                        Some(true) => (t.devices_state_online, tokens::OK),
                        Some(false) => (t.devices_offline, tokens::BAD),
                        None => (t.devices_unknown, tokens::MUTED),
                    };
                    ui.colored_label(color, format!("● {state} · {}", ago(t, now, l.since)));
                    ui.label(ago(t, now, l.last_seen));
                    ui.horizontal(|ui| {
                        ui.label(l.reconnects.to_string());
                        if l.flapping(now) {
                            ui.colored_label(tokens::WARN, t.devices_flapping);
                        }
                    });
                    if ui.small_button(t.devices_remove).clicked() {
                        actions.push(Action::Roster(RosterEdit::Remove(d.id.clone())));
                    }
                    ui.end_row();
                }
            });
    }

    #[allow(clippy::too_many_arguments)]
    fn detail_ui(
        &mut self,
        ui: &mut egui::Ui,
        t: &Tr,
        lang: Language,
        roster: &Roster,
        def: &DeviceDef,
        now: i64,
        actions: &mut Vec<Action>,
    ) {
        let empty = crate::devices::roster::DeviceLive::default();
        let l = roster.live.get(&def.id).unwrap_or(&empty);
        ui.label(RichText::new(def.label()).heading());
        ui.label(
            RichText::new(fill(
                t.devices_limits,
                &[
                    ("bytes", &def.max_packet),
                    ("qos", &def.max_qos),
                    ("version", &if def.mqtt5 { "5" } else { "3.1.1" }),
                ],
            ))
            .color(tokens::MUTED),
        );
        ui.monospace(format!(
            "{}\n{}\n{}\n{}",
            def.availability_topic(),
            def.telemetry_topic(),
            def.state_topic(),
            def.command_topic()
        ));
        self.edit_ui(ui, t, def, actions);
        plots_ui(ui, def, l, now);
        ui.separator();
        self.command_ui(ui, t, lang, roster, def, actions);
        ui.separator();
        self.flow_ui(ui, t, lang, def, actions);
        ui.separator();
        self.log_ui(ui, t, def);
    }

    /// Edit the device's definition in place (saved to devices.toml on Save).
    fn edit_ui(&mut self, ui: &mut egui::Ui, t: &Tr, def: &DeviceDef, actions: &mut Vec<Action>) {
        let editing = self.edit.as_ref().is_some_and(|(d, _)| d.id == def.id);
        if !editing {
            if ui.small_button(t.devices_edit).clicked() {
                self.edit = Some((def.clone(), def.plot.join(", ")));
            }
        } else if let Some((d, plot)) = self.edit.as_mut() {
            egui::Grid::new(("device-edit", &def.id))
                .num_columns(2)
                .spacing([8.0, 4.0])
                .show(ui, |ui| {
                    let text_row = |ui: &mut egui::Ui, label: &str, v: &mut String| {
                        let l = ui.label(label);
                        ui.add(egui::TextEdit::singleline(v).desired_width(240.0))
                            .labelled_by(l.id);
                        ui.end_row();
                    };
                    text_row(ui, t.devices_f_name, &mut d.name);
                    text_row(ui, t.devices_f_prefix, &mut d.prefix);
                    let opt_row = |ui: &mut egui::Ui,
                                   label: &str,
                                   v: &mut Option<String>,
                                   default: String| {
                        let mut text = v.clone().unwrap_or_default();
                        let l = ui.label(label);
                        ui.add(
                            egui::TextEdit::singleline(&mut text)
                                .hint_text(default)
                                .desired_width(240.0),
                        )
                        .labelled_by(l.id);
                        *v = Some(text).filter(|x| !x.trim().is_empty());
                        ui.end_row();
                    };
                    let base = DeviceDef {
                        availability: None,
                        telemetry: None,
                        state: None,
                        command: None,
                        ..d.clone()
                    };
                    opt_row(
                        ui,
                        t.devices_f_availability,
                        &mut d.availability,
                        base.availability_topic(),
                    );
                    opt_row(
                        ui,
                        t.devices_f_telemetry,
                        &mut d.telemetry,
                        base.telemetry_topic(),
                    );
                    opt_row(ui, t.devices_f_state, &mut d.state, base.state_topic());
                    opt_row(
                        ui,
                        t.devices_f_command,
                        &mut d.command,
                        base.command_topic(),
                    );
                    text_row(ui, t.devices_f_online, &mut d.online_payload);
                    text_row(ui, t.devices_f_offline, &mut d.offline_payload);
                    ui.label(t.devices_f_max_packet);
                    ui.add(egui::DragValue::new(&mut d.max_packet).range(16..=268_435_455));
                    ui.end_row();
                    ui.label(t.devices_f_max_qos);
                    ui.horizontal(|ui| {
                        for q in 0..=2u8 {
                            ui.selectable_value(&mut d.max_qos, q, q.to_string());
                        }
                        ui.checkbox(&mut d.mqtt5, "MQTT 5");
                    });
                    ui.end_row();
                    text_row(ui, t.devices_f_plot, plot);
                });
            let mut close = false;
            ui.horizontal(|ui| {
                if ui.button(t.devices_save).clicked() {
                    let mut updated = d.clone();
                    updated.plot = plot
                        .split(',')
                        .map(|f| f.trim().to_owned())
                        .filter(|f| !f.is_empty())
                        .collect();
                    actions.push(Action::Roster(RosterEdit::Update(Box::new(updated))));
                    close = true;
                } else if ui.button(t.checks_cancel).clicked() {
                    close = true;
                }
            });
            if close {
                self.edit = None;
            }
        }
    }

    /// The device's last commands and how each went.
    fn log_ui(&mut self, ui: &mut egui::Ui, t: &Tr, def: &DeviceDef) {
        ui.label(RichText::new(t.devices_log).strong());
        let mut shown = 0;
        for e in self.log.iter_mut().rev() {
            if e.device != def.id {
                continue;
            }
            shown += 1;
            if shown > 30 {
                break;
            }
            ui.horizontal_wrapped(|ui| {
                ui.label(
                    RichText::new(e.at.format("%H:%M:%S").to_string())
                        .monospace()
                        .color(tokens::MUTED),
                );
                ui.label(RichText::new(&e.what).monospace());
                outcome_ui(ui, t, &mut e.outcome);
            });
        }
        if shown == 0 {
            ui.label(RichText::new(t.devices_no_commands).color(tokens::MUTED));
        }
    }

    fn command_ui(
        &mut self,
        ui: &mut egui::Ui,
        t: &Tr,
        lang: Language,
        roster: &Roster,
        def: &DeviceDef,
        actions: &mut Vec<Action>,
    ) {
        ui.label(RichText::new(t.devices_commands).strong());
        let templates: Vec<_> = roster.config.templates_for(&def.kind).cloned().collect();
        if templates.is_empty() {
            ui.label(RichText::new(t.devices_no_templates).color(tokens::MUTED));
            return;
        }
        self.template = self.template.min(templates.len() - 1);
        ui.horizontal_wrapped(|ui| {
            for (i, tpl) in templates.iter().enumerate() {
                if ui.selectable_label(self.template == i, &tpl.name).clicked() {
                    self.template = i;
                    self.confirmed = None;
                }
            }
        });
        let tpl = &templates[self.template];
        for p in &tpl.params {
            let v = self
                .values
                .entry(p.name.clone())
                .or_insert_with(|| p.initial());
            if p.validate(v).is_err() && !p.choices.is_empty() {
                *v = p.initial();
            }
            ui.horizontal(|ui| {
                ui.label(&p.name);
                if p.choices.is_empty() {
                    ui.add(egui::TextEdit::singleline(v).desired_width(120.0));
                } else {
                    for c in &p.choices {
                        ui.selectable_value(v, c.clone(), c);
                    }
                }
            });
        }
        let prepared = commands::prepare(tpl, def, &self.values);
        let targets: Vec<&DeviceDef> = if self.ticked.is_empty() {
            vec![def]
        } else {
            roster
                .config
                .devices
                .iter()
                .filter(|d| self.ticked.contains(&d.id))
                .collect()
        };
        match &prepared {
            Err(e) => {
                ui.colored_label(tokens::BAD, e.get(t.lang()));
            }
            Ok(p) => {
                ui.monospace(format!("{} ← {}", p.topic, p.payload));
                let warnings = commands::warnings(p, tpl, def);
                for w in &warnings {
                    ui.colored_label(tokens::WARN, format!("⚠ {}", w.get(lang)));
                }
                let key = format!("{}|{}|{}", p.topic, p.payload, targets.len());
                let confirmed = self.confirmed.as_deref() == Some(key.as_str());
                let label = if !warnings.is_empty() && !confirmed {
                    t.devices_review
                } else if targets.len() > 1 {
                    t.devices_send_selection
                } else {
                    t.devices_send
                };
                let label = fill(label, &[("n", &targets.len())]);
                if ui.button(label).clicked() {
                    if !warnings.is_empty() && !confirmed {
                        self.confirmed = Some(key);
                    } else {
                        self.confirmed = None;
                        for d in targets {
                            let Ok(cmd) = commands::prepare(tpl, d, &self.values) else {
                                continue;
                            };
                            let (req, reply) = Requested::new(waker(ui));
                            self.log.push_back(LogEntry {
                                device: d.id.clone(),
                                at: chrono::Local::now(),
                                what: format!("{} {}", tpl.name, cmd.payload),
                                outcome: req,
                            });
                            if self.log.len() > LOG_KEEP {
                                self.log.pop_front();
                            }
                            actions.push(Action::Backend(
                                DeviceCmd::Send {
                                    cmd: Box::new(cmd),
                                    reply,
                                }
                                .into(),
                            ));
                        }
                    }
                }
                if !warnings.is_empty() && confirmed {
                    ui.label(RichText::new(t.devices_confirm).color(tokens::WARN));
                }
            }
        }
    }

    fn flow_ui(
        &mut self,
        ui: &mut egui::Ui,
        t: &Tr,
        lang: Language,
        def: &DeviceDef,
        actions: &mut Vec<Action>,
    ) {
        ui.horizontal(|ui| {
            ui.label(RichText::new(t.devices_flow).strong());
            let busy = matches!(self.flow, Some(Requested::Pending(_)));
            if ui
                .add_enabled(!busy, egui::Button::new(t.devices_flow_run))
                .clicked()
            {
                let (req, reply) = Requested::new(waker(ui));
                self.flow = Some(req);
                actions.push(Action::Backend(
                    DeviceCmd::RunFlow {
                        device: Box::new(def.clone()),
                        reply,
                    }
                    .into(),
                ));
            }
        });
        ui.label(
            RichText::new(t.devices_flow_intro)
                .small()
                .color(tokens::MUTED),
        );
        match self.flow.as_mut().map(|f| f.poll()) {
            Some(None) => {
                ui.spinner();
            }
            Some(Some(Ok(steps))) => {
                for s in steps {
                    ui.horizontal_wrapped(|ui| {
                        let (mark, color) = if s.ok {
                            (t.devices_step_ok, tokens::OK)
                        } else {
                            (t.devices_step_failed, tokens::BAD)
                        };
                        ui.colored_label(color, mark);
                        ui.label(s.name.get(lang));
                        ui.label(
                            RichText::new(format!("{} · {} ms", s.detail.get(lang), s.elapsed_ms))
                                .small()
                                .color(tokens::MUTED),
                        );
                    });
                }
            }
            Some(Some(Err(e))) => {
                ui.colored_label(tokens::BAD, e.get(t.lang()));
            }
            None => {}
        }
    }
}

/// How a device command went: waiting, acknowledged (how fast), timed out, sent, refused.
pub(super) fn outcome_ui(
    ui: &mut egui::Ui,
    t: &Tr,
    outcome: &mut Requested<Outcome, crate::i18n::L10n>,
) {
    match outcome.poll() {
        None => {
            ui.spinner();
            ui.label(t.devices_pending);
        }
        Some(Ok(Outcome::Acknowledged { latency, payload })) => {
            ui.colored_label(
                tokens::OK,
                fill(t.devices_acked, &[("ms", &latency.as_millis())]),
            )
            .on_hover_text(payload.as_str());
        }
        Some(Ok(Outcome::TimedOut { after })) => {
            ui.colored_label(
                tokens::BAD,
                fill(t.devices_timed_out, &[("secs", &after.as_secs())]),
            );
        }
        Some(Ok(Outcome::Sent)) => {
            ui.label(t.devices_sent);
        }
        Some(Err(err)) => {
            ui.colored_label(tokens::BAD, err.get(t.lang()));
        }
    }
}

/// Plots of the fields the device's definition names.
fn plots_ui(ui: &mut egui::Ui, def: &DeviceDef, l: &crate::devices::roster::DeviceLive, now: i64) {
    for field in &def.plot {
        let Some(series) = l.series.get(field) else {
            continue;
        };
        let pts: Vec<[f64; 2]> = series.iter().map(|p| [p[0] - now as f64, p[1]]).collect();
        ui.label(RichText::new(field).strong());
        Plot::new(("device-plot", &def.id, field))
            .height(70.0)
            .allow_scroll(false)
            .allow_drag(false)
            .allow_zoom(false)
            .show(ui, |p| {
                p.line(Line::new(field.clone(), PlotPoints::from(pts)))
            });
    }
}
