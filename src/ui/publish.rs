//! The Topics panel's Publish form (payload kinds, MQTT 5 properties, saved payloads, history)
//! and its Clear retained tool: each a sub-struct with its own state and `ui()`.

use egui::RichText;

use super::i18n::{Tr, fill};
use super::picker::waker;
use super::tokens;
use crate::backend::{ConnCmd, Requested};
use crate::model::{Action, SavedEdit};
use crate::topics::publish::{PayloadKind, Props5Form};

/// The Publish form.
#[derive(Default)]
pub struct PublishForm {
    pub topic: String,
    pub payload: String,
    pub kind: PayloadKind,
    pub qos: u8,
    pub retain: bool,
    /// MQTT 5 properties for the next publish (shown on an MQTT 5 connection).
    pub props5: Props5Form,
    /// Name under which *Save payload* keeps the form.
    pub save_name: String,
    history: Vec<(String, String, PayloadKind, u8, bool)>,
    /// The backend's refusal count at the last Publish click.
    refusals_seen: u64,
}

/// A clear of retained messages under way: its answer and the acknowledged count (done, total).
type Clearing = (
    Requested<crate::backend::Cleared, crate::i18n::L10n>,
    tokio::sync::watch::Receiver<(usize, usize)>,
);

/// Clearing the retained messages under a prefix: preview, then clear with progress.
#[derive(Default)]
pub struct ClearRetained {
    pub prefix: String,
    preview: Option<Requested<Vec<String>, crate::i18n::L10n>>,
    clearing: Option<Clearing>,
}

impl PublishForm {
    fn props5_ui(&mut self, ui: &mut egui::Ui, t: &Tr) {
        egui::CollapsingHeader::new(t.topics_props5)
            .id_salt("topics-props5")
            .default_open(false)
            .show(ui, |ui| {
                let f = &mut self.props5;
                egui::Grid::new("topics-props5-grid")
                    .num_columns(2)
                    .spacing([8.0, 4.0])
                    .show(ui, |ui| {
                        for (label, v, hint) in [
                            (
                                t.topics_content_type,
                                &mut f.content_type,
                                "application/json",
                            ),
                            (
                                t.topics_response_topic,
                                &mut f.response_topic,
                                "replies/console",
                            ),
                            (t.topics_correlation, &mut f.correlation, "req-42"),
                            (t.topics_expiry, &mut f.expiry_secs, "60"),
                        ] {
                            let l = ui.label(label);
                            ui.add(
                                egui::TextEdit::singleline(v)
                                    .hint_text(hint)
                                    .desired_width(260.0),
                            )
                            .labelled_by(l.id);
                            ui.end_row();
                        }
                    });
                ui.checkbox(&mut f.utf8, t.topics_payload_utf8);
                let l = ui.label(t.topics_user_props);
                ui.add(
                    egui::TextEdit::multiline(&mut f.user)
                        .hint_text("source=console")
                        .desired_rows(2)
                        .desired_width(f32::INFINITY)
                        .code_editor(),
                )
                .labelled_by(l.id);
            });
    }

    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        t: &Tr,
        saved: &crate::topics::saved::SavedPayloads,
        v5: bool,
        (refusals, refused): (u64, Option<&(String, crate::verdict::L10n)>),
        actions: &mut Vec<Action>,
    ) {
        egui::CollapsingHeader::new(t.topics_publish_title)
            .id_salt("topics-publish-section")
            .default_open(false)
            .show(ui, |ui| {
                ui.horizontal_wrapped(|ui| {
                    let l = ui.label(t.topics_pub_topic);
                    ui.add(egui::TextEdit::singleline(&mut self.topic).desired_width(220.0))
                        .labelled_by(l.id);
                    for k in PayloadKind::ALL {
                        ui.selectable_value(&mut self.kind, k, k.name());
                    }
                    for q in 0..=2u8 {
                        ui.selectable_value(&mut self.qos, q, format!("QoS {q}"));
                    }
                    ui.checkbox(&mut self.retain, t.topics_retain);
                });
                let l = ui.label(t.topics_pub_payload);
                ui.add(
                    egui::TextEdit::multiline(&mut self.payload)
                        .desired_rows(2)
                        .desired_width(f32::INFINITY)
                        .code_editor(),
                )
                .labelled_by(l.id);
                let props = if v5 {
                    self.props5_ui(ui, t);
                    self.props5.build()
                } else {
                    ui.label(
                        RichText::new(t.topics_props5_off)
                            .small()
                            .color(tokens::MUTED),
                    );
                    Ok(None)
                };
                let bytes = self.kind.encode(&self.payload);
                let topic = self.topic.trim().to_owned();
                let topic_ok = !topic.is_empty() && !topic.contains(['+', '#']);
                ui.horizontal(|ui| {
                    if ui
                        .add_enabled(
                            topic_ok && bytes.is_ok() && props.is_ok(),
                            egui::Button::new(t.topics_publish),
                        )
                        .clicked()
                        && let (Ok(payload), Ok(props)) = (&bytes, &props)
                    {
                        actions.push(Action::Backend(
                            ConnCmd::Publish {
                                topic: topic.clone(),
                                payload: payload.clone(),
                                qos: crate::mqtt::qos(self.qos),
                                retain: self.retain,
                                props: props.clone().map(Box::new),
                            }
                            .into(),
                        ));
                        let entry = (
                            topic.clone(),
                            self.payload.clone(),
                            self.kind,
                            self.qos,
                            self.retain,
                        );
                        self.history.retain(|h| *h != entry);
                        self.history.insert(0, entry);
                        self.history.truncate(20);
                        // What the backend refuses from now on is about this publish.
                        self.refusals_seen = refusals;
                    }
                    if refusals > self.refusals_seen
                        && let Some((topic, why)) = refused
                    {
                        ui.colored_label(
                            tokens::BAD,
                            fill(
                                t.topics_publish_refused,
                                &[("topic", topic), ("why", &why.get(t.lang()))],
                            ),
                        );
                    }
                    if let Err(e) = &bytes
                        && !self.payload.is_empty()
                    {
                        ui.colored_label(tokens::BAD, e.get(t.lang()));
                    }
                    if let Err(e) = &props {
                        ui.colored_label(tokens::BAD, e.get(t.lang()));
                    }
                });
                self.saved_ui(ui, t, saved, actions);
                self.history_ui(ui, t);
            });
    }

    /// Saved payloads: reuse one with a click, save the form under a name.
    fn saved_ui(
        &mut self,
        ui: &mut egui::Ui,
        t: &Tr,
        saved: &crate::topics::saved::SavedPayloads,
        actions: &mut Vec<Action>,
    ) {
        ui.horizontal_wrapped(|ui| {
            ui.label(RichText::new(t.topics_saved).small().color(tokens::MUTED));
            let mut reuse = None;
            let mut remove = None;
            for (i, item) in saved.items.iter().enumerate() {
                if ui
                    .small_button(&item.name)
                    .on_hover_text(&item.topic)
                    .clicked()
                {
                    reuse = Some(item.clone());
                }
                if ui.small_button("✕").on_hover_text(t.certs_remove).clicked() {
                    remove = Some(i);
                }
            }
            if let Some(item) = reuse {
                self.topic = item.topic;
                self.payload = item.payload;
                self.kind = PayloadKind::from_code(&item.kind);
                self.qos = item.qos.min(2);
                self.retain = item.retain;
            }
            if let Some(i) = remove {
                actions.push(Action::SavedPayloads(SavedEdit::Remove(i)));
            }
            ui.add(
                egui::TextEdit::singleline(&mut self.save_name)
                    .hint_text(t.topics_save_name)
                    .desired_width(120.0),
            );
            if ui
                .add_enabled(
                    !self.save_name.trim().is_empty() && !self.topic.trim().is_empty(),
                    egui::Button::new(t.topics_save_payload),
                )
                .clicked()
            {
                actions.push(Action::SavedPayloads(SavedEdit::Add(
                    crate::topics::saved::SavedPayload {
                        name: self.save_name.trim().to_owned(),
                        topic: self.topic.trim().to_owned(),
                        payload: self.payload.clone(),
                        kind: self.kind.code().to_owned(),
                        qos: self.qos,
                        retain: self.retain,
                    },
                )));
                self.save_name.clear();
            }
        });
    }

    /// The last publishes, to send again with a click.
    fn history_ui(&mut self, ui: &mut egui::Ui, t: &Tr) {
        if !self.history.is_empty() {
            ui.horizontal_wrapped(|ui| {
                ui.label(RichText::new(t.topics_history).small().color(tokens::MUTED));
                let mut reuse = None;
                for (i, h) in self.history.iter().enumerate().take(8) {
                    let label: String = format!("{} {}", h.0, h.1).chars().take(40).collect();
                    if ui.small_button(label).clicked() {
                        reuse = Some(i);
                    }
                }
                if let Some(i) = reuse {
                    let h = self.history[i].clone();
                    self.topic = h.0;
                    self.payload = h.1;
                    self.kind = h.2;
                    self.qos = h.3;
                    self.retain = h.4;
                }
            });
        }
    }
}

impl ClearRetained {
    pub fn ui(&mut self, ui: &mut egui::Ui, t: &Tr, actions: &mut Vec<Action>) {
        ui.separator();
        // Clear retained messages of a topic or subtree.
        ui.horizontal_wrapped(|ui| {
            let l = ui.label(t.topics_clear_retained);
            ui.add(
                egui::TextEdit::singleline(&mut self.prefix)
                    .hint_text("devices/esp8266-demo")
                    .desired_width(200.0),
            )
            .labelled_by(l.id);
            if ui.button(t.topics_preview).clicked() {
                let (req, reply) = Requested::new(waker(ui));
                self.preview = Some(req);
                self.clearing = None;
                actions.push(Action::Backend(
                    ConnCmd::FindRetained {
                        prefix: self.prefix.trim().to_owned(),
                        reply,
                    }
                    .into(),
                ));
            }
            let mut send = None;
            match self.preview.as_mut().map(|r| r.poll()) {
                Some(None) => {
                    ui.spinner();
                }
                Some(Some(Ok(list))) => {
                    ui.label(fill(t.topics_retained_found, &[("n", &list.len())]));
                    if !list.is_empty()
                        && ui
                            .button(fill(t.topics_clear_n, &[("n", &list.len())]))
                            .clicked()
                    {
                        send = Some(list.clone());
                    }
                }
                Some(Some(Err(e))) => {
                    ui.colored_label(tokens::BAD, e.get(t.lang()));
                }
                None => {}
            }
            if let Some(list) = send {
                let (req, reply) = Requested::new(waker(ui));
                let (progress, seen) = tokio::sync::watch::channel((0, list.len()));
                self.clearing = Some((req, seen));
                actions.push(Action::Backend(
                    ConnCmd::ClearRetained {
                        prefix: self.prefix.trim().to_owned(),
                        topics: list,
                        progress,
                        reply,
                    }
                    .into(),
                ));
                self.preview = None;
            }
            if let Some((req, seen)) = self.clearing.as_mut() {
                match req.poll() {
                    None => {
                        let (done, total) = *seen.borrow();
                        ui.add(
                            egui::ProgressBar::new(done as f32 / total.max(1) as f32)
                                .desired_width(160.0)
                                .text(fill(
                                    t.topics_clearing,
                                    &[("done", &done), ("total", &total)],
                                )),
                        );
                        // The counts move without a message arriving: keep drawing.
                        ui.ctx()
                            .request_repaint_after(std::time::Duration::from_millis(100));
                    }
                    Some(Ok(c)) => {
                        let color = if c.left == 0 {
                            tokens::OK
                        } else {
                            tokens::WARN
                        };
                        ui.colored_label(
                            color,
                            fill(
                                t.topics_cleared,
                                &[("n", &c.acknowledged), ("left", &c.left)],
                            ),
                        );
                    }
                    Some(Err(e)) => {
                        ui.colored_label(tokens::BAD, e.get(t.lang()));
                    }
                }
            }
        });
    }
}
