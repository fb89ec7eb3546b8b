//! The Topics panel: subscriptions with colours and rates, the topic tree, the message list
//! (only visible rows are laid out), the payload in several views with a diff against the
//! previous message on the topic, search, pause, publish, clear retained, export.

use egui::{Color32, RichText};
use egui_plot::{Line, Plot, PlotPoints};

use super::i18n::{Tr, fill};
use super::picker::waker;
use super::tokens;
use crate::backend::{ConnCmd, FileCmd, Requested};
use crate::model::{Action, LiveModel, TopicsEdit};
use crate::topics::view::{self, DiffLine, Format};
use crate::topics::{Topics, Tree};

/// Shown at most, per payload view.
const VIEW_BYTES: usize = 64 * 1024;

/// Time a frame spends searching, at most.
const SEARCH_BUDGET: std::time::Duration = std::time::Duration::from_millis(6);

pub use crate::topics::publish::{PayloadKind, Props5Form};

/// The selected message's payload view, rendered for `key` (sequence number, format, diff).
struct Rendered {
    key: (u64, Format, bool),
    picked: Format,
    text: String,
    diff: DiffView,
}

/// What the payload view shows below the properties.
enum DiffView {
    /// The payload itself (diff off).
    Off,
    /// Diff on, but the topic has no earlier message in the store.
    NoPrevious,
    /// Diff on, the two payloads too large to compare line by line.
    TooBig,
    Lines(Vec<DiffLine>),
}

/// What a search result was computed for: topic, text, regex.
type SearchKey = (String, String, bool);

pub struct TopicsPanel {
    pub new_filter: String,
    new_qos: u8,
    pub search_topic: String,
    pub search_text: String,
    pub regex: bool,
    /// Newest sequence number shown while paused.
    pub paused_at: Option<u64>,
    /// The oldest message shown while paused (the store's front when the view was paused).
    paused_first: Option<u64>,
    /// Sequence numbers passing the search, kept up to date incrementally: only messages
    /// newer than `scanned_upto` are tested each frame; a new query rescans once.
    filtered: Vec<u64>,
    search_key: Option<SearchKey>,
    scanned_upto: Option<u64>,
    search_error: Option<String>,
    /// A search still scanning: the share done.
    search_pending: Option<f32>,
    pub selected: Option<u64>,
    pub format: Format,
    pub diff: bool,
    rendered: Option<Rendered>,
    /// Open tree nodes, a flag per node, and a count of changes (for the row cache).
    expanded: Vec<bool>,
    expanded_changes: u64,
    pub tree_filter: String,
    /// Cached tree rows: (generation, expanded changes, filter) they were built for.
    rows: Option<(u64, u64, String, Vec<usize>)>,
    /// The Publish form, saved payloads and history.
    pub publish: super::publish::PublishForm,
    /// Clearing retained messages under a prefix.
    pub clear: super::publish::ClearRetained,
    export: Option<Requested<std::path::PathBuf, crate::i18n::L10n>>,
    /// The connection whose store the caches above were built from.
    shown_conn: Option<crate::backend::ConnId>,
}

impl Default for TopicsPanel {
    fn default() -> Self {
        TopicsPanel {
            new_filter: String::new(),
            new_qos: 0,
            search_topic: String::new(),
            search_text: String::new(),
            regex: false,
            paused_at: None,
            paused_first: None,
            filtered: Vec::new(),
            search_key: None,
            scanned_upto: None,
            search_error: None,
            search_pending: None,
            selected: None,
            format: Format::Auto,
            diff: false,
            rendered: None,
            expanded: Vec::new(),
            expanded_changes: 0,
            tree_filter: String::new(),
            rows: None,
            publish: Default::default(),
            clear: Default::default(),
            export: None,
            shown_conn: None,
        }
    }
}

fn color(c: [u8; 3]) -> Color32 {
    Color32::from_rgb(c[0], c[1], c[2])
}

fn human(n: usize) -> String {
    if n >= 1 << 20 {
        format!("{:.1} MiB", n as f64 / (1 << 20) as f64)
    } else if n >= 1 << 10 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{n} B")
    }
}

impl TopicsPanel {
    /// Whether a search is still scanning the store (it scans a share of it per frame).
    pub fn search_in_progress(&self) -> bool {
        self.search_pending.is_some()
    }

    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        t: &Tr,
        live: &LiveModel,
        saved: &crate::topics::saved::SavedPayloads,
        actions: &mut Vec<Action>,
    ) {
        let topics = &live.topics;
        if self.shown_conn != live.active_conn {
            // Another connection's store: sequence numbers and caches mean nothing there.
            self.shown_conn = live.active_conn;
            self.selected = None;
            self.paused_at = None;
            self.paused_first = None;
            self.filtered.clear();
            self.search_key = None;
            self.scanned_upto = None;
            self.rows = None;
            self.expanded.clear();
            self.expanded_changes += 1;
        }
        ui.heading(t.nav_topics);
        if live.status.connections.len() > 1 {
            ui.horizontal_wrapped(|ui| {
                ui.label(RichText::new(t.topics_connection).color(tokens::MUTED));
                for c in &live.status.connections {
                    let active = live.status.active == Some(c.id);
                    let (_, color) = super::conn_state(t, &c.state);
                    ui.label(RichText::new("●").color(color));
                    if ui.selectable_label(active, &c.label).clicked() && !active {
                        actions.push(Action::Backend(ConnCmd::Activate { id: c.id }.into()));
                    }
                }
            });
        }
        self.subscriptions_ui(ui, t, topics, actions);
        self.toolbar_ui(ui, t, topics, actions);
        ui.separator();
        egui::Panel::bottom("topics-publish")
            .resizable(false)
            .show(ui, |ui| {
                let v5 = live.status.broker_protocol == 5;
                let refused = (live.publish_refusals, live.publish_refused.as_ref());
                self.publish.ui(ui, t, saved, v5, refused, actions);
                self.clear.ui(ui, t, actions)
            });
        egui::Panel::left("topics-tree")
            .resizable(true)
            .default_size(300.0)
            .show(ui, |ui| self.tree_ui(ui, t, topics));
        egui::Panel::right("topics-payload")
            .resizable(true)
            .default_size(380.0)
            .show(ui, |ui| self.payload_ui(ui, t, topics));
        self.list_ui(ui, t, topics);
    }

    /// Opens every node of the tree (the benchmark's worst case).
    pub fn expand_all(&mut self, tree: &Tree) {
        self.expanded = vec![true; tree.len() + 1];
        self.expanded_changes += 1;
    }

    fn is_open(&self, i: usize) -> bool {
        self.expanded.get(i).copied().unwrap_or(false)
    }

    fn set_open(&mut self, i: usize, open: bool) {
        if self.expanded.len() <= i {
            self.expanded.resize(i + 1, false);
        }
        self.expanded[i] = open;
        self.expanded_changes += 1;
    }

    /// Opens these tree nodes.
    pub fn open_nodes(&mut self, nodes: &[usize]) {
        for &i in nodes {
            self.set_open(i, true);
        }
    }

    fn subscriptions_ui(
        &mut self,
        ui: &mut egui::Ui,
        t: &Tr,
        topics: &Topics,
        actions: &mut Vec<Action>,
    ) {
        let now = chrono::Local::now().timestamp();
        ui.horizontal_wrapped(|ui| {
            for s in &topics.subs {
                let mut rgb = s.color;
                let changed = ui
                    .scope(|ui| {
                        // A small swatch, not a button-sized bar.
                        ui.spacing_mut().interact_size = egui::vec2(14.0, 14.0);
                        ui.color_edit_button_srgb(&mut rgb)
                            .on_hover_text(t.topics_pick_color)
                            .changed()
                    })
                    .inner;
                if changed {
                    actions.push(Action::Topics(TopicsEdit::Color(s.filter.clone(), rgb)));
                }
                let text = RichText::new(fill(
                    t.topics_sub_chip,
                    &[
                        ("filter", &s.filter),
                        ("qos", &s.qos),
                        ("n", &s.count),
                        ("rate", &s.rate.per_second(now)),
                    ],
                ))
                .color(if s.enabled {
                    color(s.color)
                } else {
                    tokens::MUTED
                });
                ui.label(text);
                if let Some(why) = topics.refused.get(&s.filter) {
                    ui.colored_label(tokens::BAD, t.topics_sub_refused)
                        .on_hover_text(why.get(t.lang()));
                }
                let (label, enable) = if s.enabled {
                    (t.topics_pause_sub, false)
                } else {
                    (t.topics_resume_sub, true)
                };
                if ui.small_button(label).clicked() {
                    actions.push(Action::Topics(TopicsEdit::Enable(s.filter.clone(), enable)));
                    actions.push(Action::Backend(if enable {
                        ConnCmd::Subscribe {
                            filter: s.filter.clone(),
                            qos: crate::mqtt::qos(s.qos),
                        }
                        .into()
                    } else {
                        ConnCmd::Unsubscribe {
                            filter: s.filter.clone(),
                        }
                        .into()
                    }));
                }
                if ui.small_button(t.topics_remove_sub).clicked() {
                    actions.push(Action::Topics(TopicsEdit::Remove(s.filter.clone())));
                    actions.push(Action::Backend(
                        ConnCmd::Unsubscribe {
                            filter: s.filter.clone(),
                        }
                        .into(),
                    ));
                }
                ui.separator();
            }
            ui.add(
                egui::TextEdit::singleline(&mut self.new_filter)
                    .hint_text(t.topics_filter_hint)
                    .desired_width(160.0),
            );
            for q in 0..=2u8 {
                ui.selectable_value(&mut self.new_qos, q, format!("QoS {q}"));
            }
            let f = self.new_filter.trim().to_owned();
            let valid = crate::mqtt::topic::valid_filter(&f);
            if ui
                .add_enabled(valid, egui::Button::new(t.topics_subscribe))
                .clicked()
            {
                actions.push(Action::Topics(TopicsEdit::Subscribe(
                    f.clone(),
                    self.new_qos,
                )));
                actions.push(Action::Backend(
                    ConnCmd::Subscribe {
                        filter: f,
                        qos: crate::mqtt::qos(self.new_qos),
                    }
                    .into(),
                ));
                self.new_filter.clear();
            }
        });
    }

    fn toolbar_ui(
        &mut self,
        ui: &mut egui::Ui,
        t: &Tr,
        topics: &Topics,
        actions: &mut Vec<Action>,
    ) {
        ui.horizontal_wrapped(|ui| {
            let l = ui.label(t.topics_search);
            ui.add(
                egui::TextEdit::singleline(&mut self.search_topic)
                    .hint_text(t.topics_search_topic)
                    .desired_width(150.0),
            )
            .labelled_by(l.id);
            ui.add(
                egui::TextEdit::singleline(&mut self.search_text)
                    .hint_text(t.topics_search_text)
                    .desired_width(150.0),
            );
            ui.checkbox(&mut self.regex, t.topics_regex);
            if let Some(e) = &self.search_error {
                ui.colored_label(tokens::BAD, e);
            }
            if let Some(done) = self.search_pending {
                ui.spinner();
                ui.label(
                    RichText::new(fill(
                        t.topics_searching,
                        &[("percent", &format!("{:.0}", done * 100.0))],
                    ))
                    .color(tokens::MUTED),
                );
                ui.ctx().request_repaint();
            }
            ui.separator();
            let paused = self.paused_at.is_some();
            if ui
                .button(if paused {
                    t.topics_resume
                } else {
                    t.topics_pause
                })
                .clicked()
            {
                if paused {
                    self.paused_at = None;
                    self.paused_first = None;
                } else {
                    self.paused_at = topics.store.iter().next_back().map(|m| m.seq);
                    self.paused_first = topics.store.iter().next().map(|m| m.seq);
                }
            }
            ui.label(
                RichText::new(fill(
                    t.topics_counts,
                    &[
                        ("messages", &topics.store.len()),
                        ("topics", &topics.tree.len()),
                        ("size", &human(topics.store.bytes())),
                        ("dropped", &topics.store.dropped),
                    ],
                ))
                .color(if topics.store.dropped > 0 {
                    tokens::WARN
                } else {
                    tokens::MUTED
                }),
            );
            ui.separator();
            for (label, csv) in [(t.topics_export_jsonl, false), (t.topics_export_csv, true)] {
                // Only a finished search is exported.
                let ready = self.search_pending.is_none();
                if ui.add_enabled(ready, egui::Button::new(label)).clicked() {
                    // Cheap clones (an Arc and a Bytes each); the backend writes the file.
                    let messages = self.shown(topics);
                    let (req, reply) = Requested::new(waker(ui));
                    self.export = Some(req);
                    actions.push(Action::Backend(
                        FileCmd::ExportMessages {
                            messages,
                            csv,
                            reply,
                        }
                        .into(),
                    ));
                }
            }
            match self.export.as_mut().map(|r| r.poll()) {
                Some(Some(Ok(p))) => {
                    ui.colored_label(tokens::OK, fill(t.certs_written, &[("path", &p.display())]));
                }
                Some(Some(Err(e))) => {
                    ui.colored_label(tokens::BAD, e.get(t.lang()));
                }
                Some(None) => {
                    ui.spinner();
                }
                None => {}
            }
        });
        // Per-subscription rates.
        if topics.subs.iter().any(|s| s.count > 0) {
            let now = chrono::Local::now().timestamp();
            Plot::new("topics-rates")
                .height(60.0)
                .allow_drag(false)
                .allow_zoom(false)
                .allow_scroll(false)
                .show(ui, |p| {
                    for s in &topics.subs {
                        p.line(
                            Line::new(s.filter.clone(), PlotPoints::from(s.rate.points(now)))
                                .color(color(s.color)),
                        );
                    }
                });
        }
    }

    fn searching(&self) -> bool {
        !self.search_topic.trim().is_empty() || !self.search_text.is_empty()
    }

    /// Brings the search result up to date: a new query rescans the store once; otherwise
    /// only messages that arrived since the last frame are tested. Dropped messages fall off.
    fn update_search(&mut self, topics: &Topics) {
        if !self.searching() {
            self.filtered.clear();
            self.search_key = None;
            self.scanned_upto = None;
            self.search_error = None;
            return;
        }
        let key = (
            self.search_topic.clone(),
            self.search_text.clone(),
            self.regex,
        );
        if self.search_key.as_ref() != Some(&key) {
            self.search_key = Some(key);
            self.filtered.clear();
            self.scanned_upto = None;
        }
        let query =
            match crate::topics::Query::new(&self.search_topic, &self.search_text, self.regex) {
                Ok(q) => q,
                Err(e) => {
                    self.search_error = Some(e);
                    return;
                }
            };
        self.search_error = None;
        let first = topics.store.iter().next().map(|m| m.seq).unwrap_or(0);
        let skip = match self.scanned_upto {
            Some(upto) => usize::try_from((upto + 1).saturating_sub(first)).unwrap_or(usize::MAX),
            None => 0,
        };
        // A new query over a million messages takes several frames: at most SEARCH_BUDGET
        // of scanning per frame, the rest on the next ones (the list fills as it goes).
        let started = std::time::Instant::now();
        let mut left = false;
        for (n, m) in topics.store.iter_from(skip).enumerate() {
            if n % 1024 == 1023 && started.elapsed() >= SEARCH_BUDGET {
                left = true;
                break;
            }
            if query.matches(m) {
                self.filtered.push(m.seq);
            }
            self.scanned_upto = Some(m.seq);
        }
        self.search_pending = left.then(|| {
            let done = self
                .scanned_upto
                .map(|u| (u + 1).saturating_sub(first))
                .unwrap_or(0);
            done as f32 / topics.store.len().max(1) as f32
        });
        let dropped = self.filtered.partition_point(|s| *s < first);
        self.filtered.drain(..dropped);
    }

    /// The messages the list shows, for export.
    fn shown(&mut self, topics: &Topics) -> Vec<crate::topics::Stored> {
        self.update_search(topics);
        let limit = self.paused_at.unwrap_or(u64::MAX);
        if self.searching() {
            self.filtered
                .iter()
                .filter(|s| **s <= limit)
                .filter_map(|s| topics.store.by_seq(*s).cloned())
                .collect()
        } else {
            topics
                .store
                .iter()
                .filter(|m| m.seq <= limit)
                .cloned()
                .collect()
        }
    }

    fn list_ui(&mut self, ui: &mut egui::Ui, t: &Tr, topics: &Topics) {
        self.update_search(topics);
        let row_h = tokens::ROW_HEIGHT;
        let newest = topics.store.iter().next_back().map(|m| m.seq);
        let front = topics.store.iter().next().map(|m| m.seq).unwrap_or(0);
        let searching = self.searching();
        // Rows are sequence numbers: a range of the store (held still while paused, even as
        // the store drops its oldest), or the search result. Nothing is built per frame.
        let (first, count) = if searching {
            let limit = self.paused_at.unwrap_or(u64::MAX);
            (0, self.filtered.partition_point(|s| *s <= limit))
        } else {
            match (self.paused_first, self.paused_at, newest) {
                (Some(f), Some(l), _) => (f, (l.saturating_sub(f) + 1) as usize),
                (_, _, Some(n)) => (front, (n.saturating_sub(front) + 1) as usize),
                _ => (0, 0),
            }
        };
        if count == 0 || topics.store.is_empty() {
            ui.label(RichText::new(t.topics_empty).color(tokens::MUTED));
            return;
        }
        egui::ScrollArea::vertical()
            .id_salt("topics-list")
            .auto_shrink([false, false])
            .stick_to_bottom(self.paused_at.is_none())
            .show_rows(ui, row_h, count, |ui, range| {
                for row in range {
                    let seq = if searching {
                        self.filtered[row]
                    } else {
                        first + row as u64
                    };
                    let Some(m) = topics.store.by_seq(seq) else {
                        // Paused long enough for the store to drop it.
                        ui.label(RichText::new(t.topics_dropped_row).color(tokens::MUTED));
                        continue;
                    };
                    let c = topics
                        .sub_of(&m.topic)
                        .map(|i| color(topics.subs[i].color))
                        .unwrap_or(tokens::MUTED);
                    let time = chrono::DateTime::from_timestamp_millis(m.time_ms)
                        .map(|d| {
                            d.with_timezone(&chrono::Local)
                                .format("%H:%M:%S%.3f")
                                .to_string()
                        })
                        .unwrap_or_default();
                    let preview = view::preview(&m.payload, 80);
                    let text = format!(
                        "{time}  {}  q{}{}  {}  {preview}",
                        m.topic,
                        m.qos,
                        if m.retain { " R" } else { "" },
                        human(m.size)
                    );
                    let selected = self.selected == Some(seq);
                    let resp = ui.add(
                        egui::Button::selectable(
                            selected,
                            RichText::new(text).monospace().color(c),
                        )
                        .truncate(),
                    );
                    if resp.clicked() {
                        self.selected = Some(seq);
                    }
                }
            });
    }

    fn tree_ui(&mut self, ui: &mut egui::Ui, t: &Tr, topics: &Topics) {
        let tree = &topics.tree;
        ui.horizontal(|ui| {
            ui.label(RichText::new(t.topics_tree).strong());
            ui.add(
                egui::TextEdit::singleline(&mut self.tree_filter)
                    .hint_text(t.topics_tree_filter)
                    .desired_width(140.0),
            );
        });
        let key = (
            tree.generation,
            self.expanded_changes,
            self.tree_filter.clone(),
        );
        let stale = match &self.rows {
            Some((g, e, f, _)) => (*g, *e, f.clone()) != key,
            None => true,
        };
        if stale {
            let rows = tree.rows_with(|i| self.is_open(i), &self.tree_filter);
            self.rows = Some((key.0, key.1, key.2, rows));
        }
        // Borrowed out of the cache for the frame (100 000 rows are not copied per frame).
        let rows = self
            .rows
            .as_mut()
            .map(|r| std::mem::take(&mut r.3))
            .unwrap_or_default();
        let now_ms = chrono::Utc::now().timestamp_millis();
        let mut toggle = None;
        let mut pick = None;
        egui::ScrollArea::vertical()
            .id_salt("topics-tree-rows")
            .auto_shrink([false, false])
            .show_rows(ui, tokens::ROW_HEIGHT, rows.len(), |ui, range| {
                for &i in &rows[range] {
                    let n = tree.node(i);
                    ui.horizontal(|ui| {
                        ui.add_space(f32::from(n.depth.saturating_sub(1)) * 12.0);
                        if !n.children.is_empty() {
                            let open = self.is_open(i) || !self.tree_filter.is_empty();
                            let mark = if open {
                                t.checks_mark_open
                            } else {
                                t.checks_mark_closed
                            };
                            if ui.small_button(mark).clicked() {
                                toggle = Some(i);
                            }
                        }
                        // Recently active topics stand out.
                        let active = now_ms - n.last_ms < 1000 && n.count > 0;
                        let name = RichText::new(&*n.name).color(if active {
                            tokens::ACCENT
                        } else {
                            Color32::PLACEHOLDER
                        });
                        if ui.selectable_label(false, name).clicked() {
                            pick = Some(i);
                        }
                        let rate = n.rate(now_ms);
                        let mut info = format!("{}", n.total);
                        if n.retained {
                            info.push_str(" R");
                        }
                        if rate >= 0.05 {
                            info.push_str(&format!(" {rate:.1}/s"));
                        }
                        ui.label(RichText::new(info).small().color(tokens::MUTED));
                        if let Some(p) = &n.last_payload {
                            let preview = view::preview(p, 40);
                            ui.add(
                                egui::Label::new(RichText::new(preview).small().monospace())
                                    .truncate(),
                            );
                        }
                    });
                }
            });
        if let Some(r) = self.rows.as_mut() {
            r.3 = rows;
        }
        if let Some(i) = toggle {
            let open = self.is_open(i);
            self.set_open(i, !open);
        }
        if let Some(i) = pick {
            // Filter the list to this topic (and below, for inner nodes).
            let topic = tree.topic(i);
            self.search_topic = if tree.node(i).children.is_empty() {
                topic
            } else {
                format!("{topic}/#")
            };
        }
        let _ = Tree::ROOT;
    }

    fn payload_ui(&mut self, ui: &mut egui::Ui, t: &Tr, topics: &Topics) {
        let Some(m) = self.selected.and_then(|s| topics.store.by_seq(s)) else {
            ui.label(RichText::new(t.topics_pick).color(tokens::MUTED));
            return;
        };
        ui.label(RichText::new(&*m.topic).strong().monospace());
        ui.label(
            RichText::new(fill(
                t.topics_meta,
                &[
                    ("qos", &m.qos),
                    ("retained", &m.retain),
                    ("size", &human(m.size)),
                ],
            ))
            .color(tokens::MUTED),
        );
        if m.truncated() {
            ui.colored_label(
                tokens::WARN,
                fill(
                    t.topics_truncated,
                    &[("kept", &human(m.payload.len())), ("size", &human(m.size))],
                ),
            );
        }
        ui.horizontal(|ui| {
            for f in Format::ALL {
                ui.selectable_value(&mut self.format, f, f.name());
            }
            ui.checkbox(&mut self.diff, t.topics_diff);
        });
        let shown = &m.payload[..m.payload.len().min(VIEW_BYTES)];
        if shown.len() < m.payload.len() {
            ui.colored_label(
                tokens::WARN,
                fill(
                    t.topics_view_limit,
                    &[("shown", &human(shown.len())), ("total", &human(m.size))],
                ),
            );
        }
        // Rendered once per message, format and diff setting, not every frame (a 64 KiB hex
        // dump or an LCS diff is real work).
        let key = (m.seq, self.format, self.diff);
        if self.rendered.as_ref().is_none_or(|r| r.key != key) {
            let (picked, text) = view::render(shown, self.format);
            let diff = if !self.diff {
                DiffView::Off
            } else {
                match topics.store.previous_on_topic(m.seq) {
                    None => DiffView::NoPrevious,
                    Some(prev) => {
                        let p = &prev.payload[..prev.payload.len().min(VIEW_BYTES)];
                        let (_, old) = view::render(p, picked);
                        view::diff(&old, &text).map_or(DiffView::TooBig, DiffView::Lines)
                    }
                }
            };
            self.rendered = Some(Rendered {
                key,
                picked,
                text,
                diff,
            });
        }
        let Some(r) = self.rendered.as_ref() else {
            return;
        };
        let picked = r.picked;
        if self.format == Format::Auto {
            ui.label(
                RichText::new(fill(t.topics_shown_as, &[("format", &picked.name())]))
                    .small()
                    .color(tokens::MUTED),
            );
        }
        egui::ScrollArea::both()
            .id_salt("topics-payload-view")
            .auto_shrink([false, false])
            .show(ui, |ui| {
                // Properties scroll with the payload: a small panel never overflows.
                if let Some(p) = &m.props {
                    egui::CollapsingHeader::new(t.topics_props5)
                        .id_salt("topics-payload-props5")
                        .default_open(true)
                        .show(ui, |ui| {
                            egui::Grid::new("topics-payload-props5-grid")
                                .num_columns(2)
                                .striped(true)
                                .show(ui, |ui| {
                                    for (k, v) in p.rows() {
                                        use crate::mqtt::props::PropName as N;
                                        let name = match k {
                                            N::PayloadFormat => t.topics_prop_format.to_owned(),
                                            N::MessageExpiry => t.topics_expiry.to_owned(),
                                            N::ContentType => t.topics_content_type.to_owned(),
                                            N::ResponseTopic => t.topics_response_topic.to_owned(),
                                            N::CorrelationData => t.topics_correlation.to_owned(),
                                            N::User(key) => {
                                                fill(t.topics_prop_user, &[("name", &key)])
                                            }
                                            N::SubscriptionIds => t.topics_prop_subids.to_owned(),
                                            N::TopicAlias => t.topics_prop_alias.to_owned(),
                                        };
                                        ui.label(RichText::new(name).color(tokens::MUTED));
                                        ui.add(
                                            egui::Label::new(RichText::new(v).monospace())
                                                .selectable(true),
                                        );
                                        ui.end_row();
                                    }
                                });
                        });
                }
                match &r.diff {
                    DiffView::Off => {
                        ui.add(
                            egui::Label::new(RichText::new(r.text.as_str()).monospace())
                                .selectable(true),
                        );
                    }
                    DiffView::NoPrevious => {
                        ui.label(RichText::new(t.topics_no_previous).color(tokens::MUTED));
                    }
                    DiffView::TooBig => {
                        ui.label(t.topics_diff_too_big);
                    }
                    DiffView::Lines(lines) => {
                        for l in lines {
                            let (mark, s, c) = match l {
                                DiffLine::Same(s) => ("  ", s, tokens::MUTED),
                                DiffLine::Added(s) => ("+ ", s, tokens::OK),
                                DiffLine::Removed(s) => ("- ", s, tokens::BAD),
                            };
                            ui.label(RichText::new(format!("{mark}{s}")).monospace().color(c));
                        }
                    }
                }
            });
    }
}

#[cfg(test)]
mod tests {
    use super::PayloadKind;

    #[test]
    fn hex_input_never_panics() {
        assert_eq!(PayloadKind::Hex.encode("7b 22").unwrap(), vec![0x7b, 0x22]);
        for bad in ["中文", "a中", "０１", "+f+f", "abc"] {
            assert!(PayloadKind::Hex.encode(bad).is_err(), "{bad}");
        }
        assert!(PayloadKind::Json.encode("{").is_err());
        assert_eq!(PayloadKind::Base64.encode("aGk=").unwrap(), b"hi");
    }
}
