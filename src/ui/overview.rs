//! Overview: the sandbox at a glance: broker, devices, message rate, last messages.

use egui::RichText;
use egui_plot::{Line, Plot};

use super::i18n::{Tr, fill};
use super::tokens;
use crate::backend::{DeviceCmd, Requested, SandboxState};
use crate::devices::commands::Outcome;
use crate::devices::roster::DeviceLive;
use crate::model::live::DEVICE_PREFIX;
use crate::model::{Action, LiveModel};

#[derive(Default)]
pub struct OverviewPanel {
    /// Per device: the last command its card sent and how it went.
    last: std::collections::BTreeMap<String, (&'static str, Requested<Outcome, crate::i18n::L10n>)>,
}

impl OverviewPanel {
    pub fn ui(&mut self, ui: &mut egui::Ui, t: &Tr, live: &LiveModel, actions: &mut Vec<Action>) {
        ui.heading(t.nav_overview);
        ui.label(RichText::new(t.overview_intro).color(tokens::MUTED));
        ui.add_space(6.0);

        match &live.status.sandbox {
            SandboxState::Off => {
                ui.label(t.sandbox_disabled);
            }
            SandboxState::Starting => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label(t.sandbox_waiting);
                });
            }
            SandboxState::Failed(e) => {
                ui.colored_label(tokens::BAD, fill(t.sandbox_failed, &[("error", e)]));
            }
            SandboxState::Running(info) => {
                egui::Grid::new("sandbox-facts")
                    .num_columns(2)
                    .show(ui, |ui| {
                        ui.label(t.local_broker);
                        ui.monospace(&info.broker);
                        ui.end_row();
                        ui.label(t.local_broker_ws);
                        ui.monospace(&info.broker_ws);
                        ui.end_row();
                        if let Some(h) = &live.status.broker_health {
                            use crate::sandbox::broker::StoreState;
                            ui.label(t.broker_store);
                            match &h.store {
                                StoreState::Persistent { path }
                                | StoreState::SetAside { path, .. } => {
                                    ui.monospace(path.display().to_string())
                                }
                                StoreState::Memory { .. } => ui.label(t.broker_store_memory),
                            };
                            ui.end_row();
                            if h.restarts > 0 {
                                ui.label(t.broker_restarts);
                                ui.colored_label(tokens::WARN, h.restarts.to_string());
                                ui.end_row();
                            }
                        }
                        ui.label(t.relay_url);
                        ui.monospace(info.relay.replace("wss://", "wxs://"));
                        ui.end_row();
                        ui.label(t.dev_ca);
                        ui.monospace(info.ca.display().to_string());
                        ui.end_row();
                    });
            }
        }
        ui.add_space(6.0);

        ui.horizontal(|ui| {
            stat_ui(ui, t.devices_online, &live.devices_online().to_string());
            stat_ui(ui, t.messages_total, &live.total_messages.to_string());
            let now = chrono::Local::now().timestamp();
            stat_ui(ui, t.msgs_per_sec, &live.rate.per_second(now).to_string());
        });
        ui.add_space(6.0);

        ui.horizontal_wrapped(|ui| {
            for (id, dev) in &live.roster.live {
                let last = self.last.get_mut(id);
                if let Some(sent) = device_card_ui(ui, t, id, dev, live, last, actions) {
                    self.last.insert(id.clone(), sent);
                }
            }
        });
        ui.add_space(6.0);

        ui.label(RichText::new(t.message_rate).strong());
        let now = chrono::Local::now().timestamp();
        Plot::new("overview-rate")
            .height(110.0)
            .allow_drag(false)
            .allow_zoom(false)
            .allow_scroll(false)
            .include_y(0.0)
            .include_y(2.0)
            .show(ui, |plot| {
                // The current second is still filling; plot up to the last complete one.
                plot.line(Line::new(t.rate_axis, live.rate.points(now - 1)).color(tokens::ACCENT));
            });
        ui.add_space(6.0);

        ui.label(RichText::new(t.last_messages).strong());
        if live.recent.is_empty() {
            ui.label(RichText::new(t.no_messages_yet).color(tokens::MUTED));
            return;
        }
        recent_ui(ui, t, live);
    }
}

fn stat_ui(ui: &mut egui::Ui, label: &str, value: &str) {
    egui::Frame::group(ui.style()).show(ui, |ui| {
        ui.set_min_width(110.0);
        ui.vertical(|ui| {
            ui.label(RichText::new(label).color(tokens::MUTED));
            ui.label(RichText::new(value).size(20.0).strong());
        });
    });
}

/// A device's card; its buttons send the roster's templates (the built-in ESP8266 ones for
/// a device not in the roster) through the same path as the Devices panel, acknowledgement
/// awaited. Returns the command just sent, to remember.
fn device_card_ui(
    ui: &mut egui::Ui,
    t: &Tr,
    id: &str,
    dev: &DeviceLive,
    live: &LiveModel,
    last: Option<&mut (&'static str, Requested<Outcome, crate::i18n::L10n>)>,
    actions: &mut Vec<Action>,
) -> Option<(&'static str, Requested<Outcome, crate::i18n::L10n>)> {
    let mut sent = None;
    egui::Frame::group(ui.style()).show(ui, |ui| {
        ui.set_width(tokens::CARD_WIDTH * 1.6);
        ui.vertical(|ui| {
            ui.horizontal(|ui| {
                let (text, color) = match dev.online {
                    Some(true) => (t.device_online, tokens::OK),
                    Some(false) => (t.device_offline, tokens::BAD),
                    None => (t.device_unknown, tokens::MUTED),
                };
                ui.label(RichText::new(id).strong().monospace());
                ui.colored_label(color, format!("● {text}"));
                if let Some(seen) = dev.last_seen {
                    let ago = (chrono::Local::now().timestamp() - seen).max(0);
                    ui.label(
                        RichText::new(fill(t.last_seen_secs, &[("secs", &ago)]))
                            .color(tokens::MUTED),
                    );
                }
            });
            let field = |k: &str| {
                dev.telemetry
                    .get(k)
                    .map(|v| v.to_string().trim_matches('"').to_owned())
            };
            egui::Grid::new(("telemetry", id))
                .num_columns(4)
                .show(ui, |ui| {
                    let rows = [
                        (
                            t.temperature,
                            field("temperature").map(|v| format!("{v} °C")),
                        ),
                        (t.humidity, field("humidity").map(|v| format!("{v} %"))),
                        (t.rssi, field("rssi").map(|v| format!("{v} dBm"))),
                        (t.free_heap, field("free_heap").map(|v| format!("{v} B"))),
                        (t.uptime, field("uptime").map(|v| format!("{v} s"))),
                        (t.led, field("led")),
                    ];
                    for (i, (label, value)) in rows.into_iter().enumerate() {
                        ui.label(RichText::new(label).color(tokens::MUTED));
                        ui.monospace(value.unwrap_or_else(|| "—".to_owned()));
                        if i % 2 == 1 {
                            ui.end_row();
                        }
                    }
                });
            if let Some(state) = &dev.last_state {
                ui.horizontal(|ui| {
                    ui.label(RichText::new(t.last_answer).color(tokens::MUTED));
                    ui.monospace(state);
                });
            }
            ui.horizontal(|ui| {
                let online = dev.online == Some(true);
                let mut clicked = None;
                if ui
                    .add_enabled(online, egui::Button::new(t.led_toggle))
                    .clicked()
                {
                    clicked = Some((t.led_toggle, "LED", vec![("state", "toggle")]));
                }
                if ui
                    .add_enabled(online, egui::Button::new(t.reboot))
                    .clicked()
                {
                    clicked = Some((t.reboot, "Reboot", Vec::new()));
                }
                if let Some((label, template, values)) = clicked {
                    let values = values
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .collect();
                    sent = Some(match device_command(live, id, template, &values) {
                        Ok(cmd) => {
                            let (req, reply) = Requested::new(super::picker::waker(ui));
                            actions.push(Action::Backend(
                                DeviceCmd::Send {
                                    cmd: Box::new(cmd),
                                    reply,
                                }
                                .into(),
                            ));
                            (label, req)
                        }
                        Err(e) => (label, Requested::Done(Err(e))),
                    });
                }
                if let Some((label, outcome)) = last {
                    ui.label(RichText::new(*label).color(tokens::MUTED));
                    super::devices::outcome_ui(ui, t, outcome);
                }
            });
        });
    });
    sent
}

/// The roster's template `name` for this device (the built-in ESP8266 one when the device or
/// the template is not in the roster), filled.
fn device_command(
    live: &LiveModel,
    id: &str,
    name: &str,
    values: &std::collections::BTreeMap<String, String>,
) -> Result<crate::devices::commands::Prepared, crate::i18n::L10n> {
    use crate::devices::config::{DeviceDef, esp8266_templates};
    let config = &live.roster.config;
    let def = config
        .device(id)
        .cloned()
        .unwrap_or_else(|| DeviceDef::esp8266(id, DEVICE_PREFIX));
    let builtin = esp8266_templates();
    let template = config
        .templates_for(&def.kind)
        .find(|t| t.name == name)
        .or_else(|| builtin.iter().find(|t| t.name == name))
        .ok_or_else(|| {
            crate::i18n::l(
                format!("no \"{name}\" command for {id}"),
                format!("{id} 没有“{name}”命令"),
            )
        })?;
    crate::devices::commands::prepare(template, &def, values)
}

fn recent_ui(ui: &mut egui::Ui, t: &Tr, live: &LiveModel) {
    use egui_extras::{Column, TableBuilder};
    TableBuilder::new(ui)
        .striped(true)
        .column(Column::exact(70.0))
        .column(Column::initial(230.0).resizable(true))
        .column(Column::remainder().clip(true))
        .header(tokens::ROW_HEIGHT, |mut h| {
            h.col(|ui| {
                ui.strong(t.col_time);
            });
            h.col(|ui| {
                ui.strong(t.col_topic);
            });
            h.col(|ui| {
                ui.strong(t.col_payload);
            });
        })
        .body(|body| {
            let n = live.recent.len();
            body.rows(tokens::ROW_HEIGHT, n, |mut row| {
                // Newest first.
                let Some(m) = live.recent.get(n - 1 - row.index()) else {
                    return;
                };
                row.col(|ui| {
                    ui.monospace(m.time.format("%H:%M:%S").to_string());
                });
                row.col(|ui| {
                    ui.add(egui::Label::new(RichText::new(&m.topic).monospace()).truncate());
                });
                row.col(|ui| {
                    let text = crate::topics::view::preview(&m.payload, 200);
                    ui.add(egui::Label::new(RichText::new(text).monospace()).truncate());
                });
            });
        });
}
