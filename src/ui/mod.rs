//! Panels and the shell around them. Only this module and `app/` use egui.

pub mod broker;
pub mod certs;
pub mod checks;
pub mod devices;
pub mod fonts;
pub mod i18n;
pub mod log;
pub mod overview;
pub mod picker;
pub mod publish;
pub mod relay;
pub mod settings;
pub mod tokens;
pub mod topics;

use egui::RichText;

use crate::backend::SandboxState;
use crate::model::{Action, AppEnv, LiveModel, Notices};
use crate::mqtt::ConnState;
use i18n::{Tr, fill, tr};

/// What the console keeps across frames besides the live model: the open tab, the saved
/// preferences, panel view state.
pub struct AppState {
    pub tab: Tab,
    pub config: crate::config::ConsoleConfig,
    /// Language forced for this run (`--lang`), not saved.
    pub lang_override: Option<crate::config::Language>,
    pub panels: Panels,
    /// Saved broker profiles (profiles.json), as the keeper last saved them.
    pub profiles: std::sync::Arc<crate::mqtt::profile::Profiles>,
    /// Saved payloads for the publish form (payloads.json).
    pub saved_payloads: crate::topics::saved::SavedPayloads,
    /// Where the profiles' passwords are kept (the Broker panel says), once known.
    pub vault: Option<crate::config::secrets::VaultKind>,
}

impl AppState {
    pub fn lang(&self) -> crate::config::Language {
        self.lang_override
            .unwrap_or_else(|| self.config.effective_language())
    }
}

/// The panels in the left navigation. A panel appears here only once it works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Overview,
    Relay,
    Broker,
    Topics,
    Devices,
    Certs,
    Checks,
    Log,
    Settings,
}

impl Tab {
    pub const ALL: [Tab; 9] = [
        Tab::Overview,
        Tab::Relay,
        Tab::Broker,
        Tab::Topics,
        Tab::Devices,
        Tab::Certs,
        Tab::Checks,
        Tab::Log,
        Tab::Settings,
    ];

    /// The name used on the command line (`--panel`).
    pub fn code(self) -> &'static str {
        match self {
            Tab::Overview => "overview",
            Tab::Relay => "relay",
            Tab::Certs => "certs",
            Tab::Devices => "devices",
            Tab::Topics => "topics",
            Tab::Broker => "broker",
            Tab::Checks => "checks",
            Tab::Log => "log",
            Tab::Settings => "settings",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.code() == code)
    }

    pub fn label(self, t: &Tr) -> &'static str {
        match self {
            Tab::Overview => t.nav_overview,
            Tab::Relay => t.nav_relay,
            Tab::Certs => t.nav_certs,
            Tab::Devices => t.nav_devices,
            Tab::Topics => t.nav_topics,
            Tab::Broker => t.nav_broker,
            Tab::Checks => t.nav_checks,
            Tab::Log => t.nav_log,
            Tab::Settings => t.nav_settings,
        }
    }
}

/// View state of every panel.
#[derive(Default)]
pub struct Panels {
    pub overview: overview::OverviewPanel,
    pub relay: relay::RelayPanel,
    pub certs: certs::CertsPanel,
    pub checks: checks::ChecksPanel,
    pub devices: devices::DevicesPanel,
    pub topics: topics::TopicsPanel,
    pub broker: broker::BrokerPanel,
    pub log: log::LogPanel,
    pub settings: settings::SettingsPanel,
}

/// The whole window: banner, navigation, status bar, the open panel.
pub fn shell_ui(
    ui: &mut egui::Ui,
    state: &mut AppState,
    live: &LiveModel,
    notices: &Notices,
    env: &AppEnv,
    actions: &mut Vec<Action>,
) {
    let lang = state.lang();
    let t = tr(lang);

    egui::Panel::bottom("status-bar").show(ui, |ui| status_bar_ui(ui, t, live, notices));

    if let Some(problem) = &notices.banner {
        egui::Panel::top("config-banner").show(ui, |ui| {
            ui.horizontal_wrapped(|ui| {
                ui.colored_label(tokens::WARN, "⚠");
                ui.label(fill(t.config_problem, &[("problem", problem)]));
                if ui.button(t.dismiss).clicked() {
                    actions.push(Action::DismissBanner);
                }
            });
        });
    }

    // What happened to the embedded broker (restarted, store set aside, kept in memory), in
    // one sentence, until dismissed.
    if let Some(h) = &live.status.broker_health
        && let Some(notice) = &h.notice
        && notices.broker_notice_dismissed.as_deref() != Some(notice.en.as_str())
    {
        let color = if h.state == crate::sandbox::broker::BrokerState::Failed {
            tokens::BAD
        } else {
            tokens::WARN
        };
        egui::Panel::top("broker-banner").show(ui, |ui| {
            ui.horizontal_wrapped(|ui| {
                ui.colored_label(color, "⚠");
                ui.label(notice.get(t.lang()));
                if ui.button(t.dismiss).clicked() {
                    actions.push(Action::DismissBrokerNotice(notice.en.clone()));
                }
            });
        });
    }

    egui::Panel::left("nav")
        .resizable(false)
        .exact_size(tokens::NAV_WIDTH)
        .show(ui, |ui| {
            ui.add_space(8.0);
            ui.heading(RichText::new(t.app_title).strong());
            ui.add_space(8.0);
            for tab in Tab::ALL {
                let selected = state.tab == tab;
                let resp = ui.add_sized(
                    [ui.available_width(), 26.0],
                    egui::Button::selectable(selected, tab.label(t)),
                );
                if resp.clicked() {
                    state.tab = tab;
                }
            }
        });

    egui::CentralPanel::default().show(ui, |ui| match state.tab {
        Tab::Overview => state.panels.overview.ui(ui, t, live, actions),
        Tab::Relay => state.panels.relay.ui(ui, t, live, actions),
        Tab::Topics => state
            .panels
            .topics
            .ui(ui, t, live, &state.saved_payloads, actions),
        Tab::Broker => {
            state
                .panels
                .broker
                .ui(ui, t, &state.profiles, state.vault.as_ref(), live, actions)
        }
        Tab::Certs => state.panels.certs.ui(ui, t, lang, live, actions),
        Tab::Checks => state.panels.checks.ui(ui, t, lang, live, actions),
        Tab::Devices => state.panels.devices.ui(ui, t, lang, live, actions),
        Tab::Log => state.panels.log.ui(ui, t, env),
        Tab::Settings => {
            egui::ScrollArea::vertical()
                .auto_shrink(false)
                .show(ui, |ui| {
                    state.panels.settings.ui(ui, t, &state.config, env, actions)
                });
        }
    });
}

fn status_bar_ui(ui: &mut egui::Ui, t: &Tr, live: &LiveModel, notices: &Notices) {
    ui.horizontal(|ui| {
        let (text, color) = sandbox_state(t, &live.status);
        ui.label(format!("{}:", t.sandbox));
        ui.colored_label(color, text);
        ui.separator();
        let (text, color) = relay_state(t, &live.status.relay.phase);
        ui.label(format!("{}:", t.relay));
        ui.colored_label(color, text);
        ui.separator();
        let (text, color) = conn_state(t, &live.status.broker);
        ui.label(format!("{}:", t.broker));
        ui.colored_label(color, text);
        ui.separator();
        let now = chrono::Local::now().timestamp();
        ui.label(format!("{} {}", live.rate.per_second(now), t.msgs_per_sec));
        if live.dropped > 0 {
            ui.separator();
            ui.colored_label(tokens::WARN, fill(t.dropped_n, &[("n", &live.dropped)]));
        }
        if let Some((toast, _)) = &notices.toast {
            ui.separator();
            ui.label(toast);
        }
    });
}

pub fn sandbox_state(t: &Tr, s: &crate::backend::BackendStatus) -> (String, egui::Color32) {
    use crate::sandbox::broker::BrokerState;
    let broker = s.broker_health.as_ref().map(|h| h.state);
    match &s.sandbox {
        SandboxState::Off => (t.state_off.to_owned(), tokens::MUTED),
        SandboxState::Starting => (t.state_starting.to_owned(), tokens::WARN),
        SandboxState::Running(_) if broker == Some(BrokerState::Restarting) => {
            (t.state_restarting.to_owned(), tokens::WARN)
        }
        SandboxState::Running(_) if broker == Some(BrokerState::Failed) => {
            (t.state_failed.to_owned(), tokens::BAD)
        }
        SandboxState::Running(_) => (t.state_running.to_owned(), tokens::OK),
        SandboxState::Failed(_) => (t.state_failed.to_owned(), tokens::BAD),
    }
}

pub fn relay_state(t: &Tr, p: &crate::relay::RelayPhase) -> (String, egui::Color32) {
    use crate::relay::RelayPhase;
    match p {
        RelayPhase::Starting => (t.state_starting.to_owned(), tokens::WARN),
        RelayPhase::Running { addr } => {
            (format!("{} :{}", t.relay_running, addr.port()), tokens::OK)
        }
        RelayPhase::Draining => (t.relay_draining.to_owned(), tokens::WARN),
        RelayPhase::Stopped => (t.relay_stopped.to_owned(), tokens::MUTED),
        RelayPhase::Failed(_) => (t.state_failed.to_owned(), tokens::BAD),
    }
}

pub fn conn_state(t: &Tr, s: &ConnState) -> (String, egui::Color32) {
    match s {
        ConnState::Idle => (t.conn_idle.to_owned(), tokens::MUTED),
        ConnState::Connecting { .. } => (t.conn_connecting.to_owned(), tokens::WARN),
        ConnState::Connected { .. } => (t.conn_connected.to_owned(), tokens::OK),
        ConnState::Disconnected { .. } => (t.conn_disconnected.to_owned(), tokens::BAD),
    }
}
