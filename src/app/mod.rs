//! `ConsoleApp`: the eframe application. It owns the backend handle and the live model,
//! drains backend events in `logic()` on a time budget, and lets panels draw in `ui()`.
//! Panels never touch the backend: they push [`Action`]s, applied once per frame.

pub mod screenshot;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backend::keeper::ProfilesDone;
use crate::backend::{BackendHandle, Requested};
use crate::config::store::ConfigFile as _;
use crate::config::{ConsoleConfig, Language, Paths, Problem, Theme};
use crate::ui::{self, Tab};

pub use crate::model::{Action, AppEnv, LiveModel, Notices, RosterEdit};
pub use crate::ui::AppState;
pub use screenshot::ScreenshotPlan;

/// Time the UI spends draining backend events per frame.
pub const DRAIN_BUDGET: Duration = Duration::from_millis(8);

pub struct ConsoleApp {
    pub state: AppState,
    pub live: LiveModel,
    backend: BackendHandle,
    env: AppEnv,
    pub notices: Notices,
    screenshot: Option<ScreenshotPlan>,
    frames: u64,
    /// Owns the profiles and their vault, writes every settings file.
    keeper: crate::backend::keeper::Keeper,
    /// Saves and profile edits the keeper has not answered yet; each becomes a toast.
    pending: Vec<Pending>,
}

/// A keeper job whose answer becomes a toast.
enum Pending {
    Save(Requested<std::path::PathBuf, crate::i18n::L10n>),
    Profiles(Requested<ProfilesDone, crate::i18n::L10n>),
}

/// After the keeper loaded the profiles: a sentence for the user when passwords moved into the
/// vault, could not be moved, or are missing from it.
fn secured_notice(
    t: &ui::i18n::Tr,
    found: &crate::mqtt::profile::Secured,
    vault: &crate::config::secrets::VaultKind,
) -> Option<String> {
    let mut said = Vec::new();
    if let Some(e) = &found.error {
        said.push(ui::i18n::fill(t.save_failed, &[("error", e)]));
    }
    if found.moved > 0 {
        said.push(ui::i18n::fill(
            t.passwords_moved,
            &[
                ("n", &found.moved),
                ("store", &ui::broker::vault_name(t, vault)),
            ],
        ));
    }
    if !found.missing.is_empty() {
        let names: Vec<&str> = found.missing.iter().map(|(n, _)| n.as_str()).collect();
        said.push(ui::i18n::fill(
            t.passwords_missing,
            &[
                ("names", &names.join(", ")),
                ("store", &ui::broker::vault_name(t, vault)),
            ],
        ));
    }
    (!said.is_empty()).then(|| said.join(" "))
}

fn profiles_notice(t: &ui::i18n::Tr, r: &Result<ProfilesDone, crate::i18n::L10n>) -> String {
    let lang = t.lang();
    match r {
        Ok(ProfilesDone::Saved {
            not_forgotten: Some(e),
            ..
        }) => ui::i18n::fill(t.save_failed, &[("error", &e.get(lang))]),
        Ok(ProfilesDone::Saved { file, .. }) => {
            ui::i18n::fill(t.saved, &[("path", &file.display())])
        }
        Ok(ProfilesDone::Imported { count, from, notes }) => {
            let mut msg = ui::i18n::fill(
                t.broker_imported,
                &[("n", count), ("path", &from.display())],
            );
            for x in notes {
                msg.push_str(crate::i18n::pick(lang, "; ", "；"));
                msg.push_str(x.get(lang));
            }
            msg
        }
        Err(e) => ui::i18n::fill(t.save_failed, &[("error", &e.get(lang))]),
    }
}

impl ConsoleApp {
    pub fn new(
        backend: BackendHandle,
        env: AppEnv,
        config: ConsoleConfig,
        banner: Option<Problem>,
    ) -> Self {
        // The roster: devices.toml in the config folder (absent: the sandbox's demo device).
        let devices = crate::config::store::load::<crate::devices::config::DevicesConfig>(
            &env.paths.config_dir.join("devices.toml"),
        );
        let keeper =
            crate::backend::keeper::Keeper::spawn(&env.paths, env.secrets_in_file, backend.waker())
                .expect("the keeper thread starts");
        let saved = crate::config::store::load::<crate::topics::saved::SavedPayloads>(
            &env.paths.config_dir.join("payloads.json"),
        );
        let banner = banner.or(devices.problem).or(saved.problem);
        let limits = crate::topics::Limits::from(config.store);
        let mut live = LiveModel {
            roster: crate::devices::roster::Roster::new(devices.value),
            topics: crate::topics::Topics::new(limits),
            limits,
            ..LiveModel::default()
        };
        // The console's connection subscribes to everything; the Topics panel shows that.
        live.topics.subscribe("#", 0);
        Self {
            state: AppState {
                tab: Tab::Overview,
                config,
                lang_override: None,
                panels: ui::Panels::default(),
                profiles: Arc::default(),
                saved_payloads: saved.value,
                vault: None,
            },
            live,
            backend,
            env,
            notices: Notices {
                banner,
                toast: None,
                broker_notice_dismissed: None,
            },
            screenshot: None,
            frames: 0,
            keeper,
            pending: Vec::new(),
        }
    }

    /// Once, before the first frame: fonts, theme, log repaints.
    fn setup(&self, ctx: &egui::Context) {
        ui::fonts::install(ctx);
        apply_theme(ctx, self.state.config.theme);
        if let Some(log) = &self.env.log {
            let ctx = ctx.clone();
            log.ring.set_waker(Arc::new(move || {
                ctx.request_repaint_after(Duration::from_millis(100))
            }));
        }
    }

    pub fn with_screenshot(mut self, plan: ScreenshotPlan) -> Self {
        self.screenshot = Some(plan);
        self
    }

    /// The Topics panel shows these subscriptions (the console's connection made them).
    pub fn with_subscriptions(mut self, filters: Vec<String>) -> Self {
        self.live.topics.subs.clear();
        for f in filters {
            self.live.topics.subscribe(&f, 0);
        }
        self
    }

    pub fn with_tab(mut self, tab: Tab) -> Self {
        self.state.tab = tab;
        self
    }

    pub fn with_language(mut self, lang: Option<Language>) -> Self {
        self.state.lang_override = lang;
        self
    }

    /// The keeper has read the profiles and answered every save and edit asked so far.
    pub fn keeper_idle(&self) -> bool {
        self.state.vault.is_some() && self.pending.is_empty()
    }

    pub fn paths(&self) -> &Paths {
        &self.env.paths
    }

    /// Pulls everything new from the backend into the live model. Only place that drains.
    pub fn backend(&self) -> &BackendHandle {
        &self.backend
    }

    pub fn pump(&mut self, ctx: &egui::Context) {
        let live = &mut self.live;
        let more = self.backend.drain(DRAIN_BUDGET, |ev| live.apply(ev));
        live.status = self.backend.status();
        live.sync_active();
        live.set_relay_view(self.backend.relay_view());
        live.dropped = self.backend.dropped();
        self.take_keeper_news();
        if more {
            ctx.request_repaint();
        }
    }

    /// The profiles the keeper last saved, and the answers it gave, as toasts.
    fn take_keeper_news(&mut self) {
        let t = ui::i18n::tr(self.state.lang());
        let first = self.state.vault.is_none();
        {
            let view = self.keeper.view();
            if view.loaded && !Arc::ptr_eq(&view.profiles, &self.state.profiles) {
                self.state.profiles = view.profiles.clone();
                self.state.vault = view.vault.clone();
                if first {
                    if self.notices.banner.is_none() {
                        self.notices.banner = view.problem.clone();
                    }
                    if let Some(vault) = &view.vault
                        && let Some(n) = secured_notice(t, &view.secured, vault)
                    {
                        self.notices.toast = Some((n, Instant::now()));
                    }
                }
            }
        }
        let mut said = None;
        self.pending.retain_mut(|p| {
            let text = match p {
                Pending::Save(r) => r.poll().map(|r| match r {
                    Ok(path) => ui::i18n::fill(t.saved, &[("path", &path.display())]),
                    Err(e) => ui::i18n::fill(t.save_failed, &[("error", &e.get(t.lang()))]),
                }),
                Pending::Profiles(r) => r.poll().map(|r| profiles_notice(t, r)),
            };
            let done = text.is_some();
            said = text.or(said.take());
            !done
        });
        if let Some(text) = said {
            self.notices.toast = Some((text, Instant::now()));
        }
    }

    fn apply(&mut self, ctx: &egui::Context, actions: Vec<Action>) {
        let mut save = false;
        for action in actions {
            match action {
                Action::Backend(cmd) => {
                    if self.backend.send(cmd).is_err() {
                        let t = ui::i18n::tr(self.state.lang());
                        self.notices.toast = Some((t.backend_busy.to_owned(), Instant::now()));
                    }
                }
                Action::SetLanguage(l) => {
                    self.state.config.language = l;
                    self.state.lang_override = None;
                    save = true;
                }
                Action::SetTheme(t) => {
                    self.state.config.theme = t;
                    apply_theme(ctx, t);
                    save = true;
                }
                Action::SetStoreBounds(b) => {
                    self.state.config.store = b;
                    self.live.set_limits(b.into());
                    save = true;
                }
                Action::SetLogLevel(l) => {
                    self.state.config.log_level = l;
                    if let Some(log) = &self.env.log {
                        log.set_level(l);
                    }
                    save = true;
                }
                Action::SetDataDir(d) => {
                    self.state.config.data_dir = d;
                    save = true;
                }
                Action::DismissBanner => self.notices.banner = None,
                Action::DismissBrokerNotice(en) => self.notices.broker_notice_dismissed = Some(en),
                Action::Roster(edit) => self.edit_roster(edit),
                Action::Profiles(edit) => self.edit_profiles(edit),
                Action::SavedPayloads(edit) => {
                    use crate::model::SavedEdit;
                    let items = &mut self.state.saved_payloads.items;
                    match edit {
                        SavedEdit::Add(p) => {
                            items.retain(|x| x.name != p.name);
                            items.push(p);
                        }
                        SavedEdit::Remove(i) => {
                            if i < items.len() {
                                items.remove(i);
                            }
                        }
                    }
                    let file = self.env.paths.config_dir.join("payloads.json");
                    let job = self.keeper.save(file, self.state.saved_payloads.render());
                    self.pending.push(Pending::Save(job));
                }
                Action::Topics(edit) => {
                    use crate::model::TopicsEdit;
                    let topics = match &edit {
                        TopicsEdit::Replace(id, _, _) => self.live.store_of(*id),
                        _ => &mut self.live.topics,
                    };
                    match edit {
                        TopicsEdit::Subscribe(f, q) => {
                            topics.subscribe(&f, q);
                        }
                        TopicsEdit::Enable(f, on) => {
                            if let Some(s) = topics.subs.iter_mut().find(|s| s.filter == f) {
                                s.enabled = on;
                            }
                        }
                        TopicsEdit::Color(f, rgb) => {
                            if let Some(s) = topics.subs.iter_mut().find(|s| s.filter == f) {
                                s.color = rgb;
                            }
                        }
                        TopicsEdit::Remove(f) => topics.subs.retain(|s| s.filter != f),
                        TopicsEdit::Replace(_, filters, qos) => {
                            // A connection accepted: its store (one per connection, so two
                            // brokers' messages are never mixed) lists its subscriptions.
                            topics.subs.clear();
                            for f in filters {
                                topics.subscribe(&f, qos);
                            }
                        }
                    }
                }
            }
        }
        if save {
            self.save_config();
        }
    }

    /// The keeper applies it, keeps the passwords and writes profiles.json; the panel shows
    /// the list it answers with.
    fn edit_profiles(&mut self, edit: crate::model::ProfilesEdit) {
        let job = self.keeper.edit_profiles(edit);
        self.pending.push(Pending::Profiles(job));
    }

    fn edit_roster(&mut self, edit: RosterEdit) {
        let roster = &mut self.live.roster;
        match edit {
            RosterEdit::Add(d) => roster.add(*d),
            RosterEdit::AddMany(all) => roster.add_many(all),
            RosterEdit::Remove(id) => roster.remove(&id),
            RosterEdit::Update(d) => {
                if let Some(slot) = roster.config.devices.iter_mut().find(|x| x.id == d.id) {
                    *slot = *d;
                }
                roster.sync();
            }
            RosterEdit::SetDiscovery(p) => {
                if !crate::mqtt::topic::valid_filter(&p) || !p.contains('+') {
                    let t = ui::i18n::tr(self.state.lang());
                    self.notices.toast = Some((
                        ui::i18n::fill(t.devices_bad_pattern, &[("pattern", &p)]),
                        Instant::now(),
                    ));
                    return;
                }
                roster.config.discovery.pattern = p;
                roster.proposals.clear();
            }
        }
        let path = self.env.paths.config_dir.join("devices.toml");
        let job = self.keeper.save(path, self.live.roster.config.render());
        self.pending.push(Pending::Save(job));
    }

    fn save_config(&mut self) {
        let job = self
            .keeper
            .save(self.env.paths.console_file(), self.state.config.render());
        self.pending.push(Pending::Save(job));
    }

    /// Draws one frame. Split from `eframe::App` so tests can drive it with kittest.
    pub fn frame_ui(&mut self, ui: &mut egui::Ui) {
        let mut actions = Vec::new();
        let ctx = ui.ctx().clone();
        if self.frames == 0 {
            self.setup(&ctx);
        }
        ui::shell_ui(
            ui,
            &mut self.state,
            &self.live,
            &self.notices,
            &self.env,
            &mut actions,
        );
        self.apply(&ctx, actions);
        self.frames += 1;
        if self.frames == 1 {
            tracing::info!(
                "first frame drawn {} ms after start",
                self.env.started.elapsed().as_millis()
            );
        }
        if let Some((_, at)) = &self.notices.toast {
            let left = Duration::from_secs(4).saturating_sub(at.elapsed());
            if left.is_zero() {
                self.notices.toast = None;
            } else {
                ctx.request_repaint_after(left);
            }
        }
    }
}

fn apply_theme(ctx: &egui::Context, theme: Theme) {
    ctx.set_theme(match theme {
        Theme::System => egui::ThemePreference::System,
        Theme::Light => egui::ThemePreference::Light,
        Theme::Dark => egui::ThemePreference::Dark,
    });
}

impl eframe::App for ConsoleApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.pump(ctx);
        if let Some(plan) = &mut self.screenshot {
            plan.logic(ctx, self.live.has_live_data());
        }
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.frame_ui(ui);
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        self.backend.shutdown();
    }
}
