//! The model both the application and the panels read: the live model fed by the backend
//! ([`live`]), the actions panels push and the app applies ([`Action`] and the edits it
//! carries), and what does not change while the console runs. Neither egui nor a socket here:
//! `app` and `ui` both depend on this module, and it on neither.

pub mod live;

use std::time::Instant;

use crate::backend::Command;
use crate::config::{Language, LogLevel, Paths, Problem, Theme};
use crate::logging::LogControl;

pub use live::LiveModel;

/// Something a panel wants done; applied by `ConsoleApp` after the panels have drawn.
pub enum Action {
    Backend(Command),
    SetLanguage(Option<Language>),
    SetTheme(Theme),
    SetLogLevel(LogLevel),
    /// New bounds for the Topics message stores (applied at once, saved).
    SetStoreBounds(crate::config::StoreBounds),
    SetDataDir(Option<std::path::PathBuf>),
    DismissBanner,
    /// Hide the embedded broker's notice (its English text) until another one comes.
    DismissBrokerNotice(String),
    /// Change the roster; it is saved to devices.toml at once.
    Roster(RosterEdit),
    /// Change the Topics panel's subscriptions (the backend is told separately).
    Topics(TopicsEdit),
    /// Change the saved broker profiles; saved to profiles.json at once.
    Profiles(ProfilesEdit),
    /// Change the saved payloads; saved to payloads.json at once.
    SavedPayloads(SavedEdit),
}

#[derive(Debug, Clone)]
pub enum RosterEdit {
    Add(Box<crate::devices::config::DeviceDef>),
    /// Several at once: one sync, one save.
    AddMany(Vec<crate::devices::config::DeviceDef>),
    Remove(String),
    /// Replace the device with the same id.
    Update(Box<crate::devices::config::DeviceDef>),
    SetDiscovery(String),
}

/// Things that do not change while the console runs.
pub struct AppEnv {
    pub paths: Paths,
    pub log: Option<LogControl>,
    pub started: Instant,
    /// Keep broker passwords in secrets.json even where a credential store answers (tests,
    /// so they never write into a developer's keyring; `MPBRIDGE_SECRETS=file` for a run).
    pub secrets_in_file: bool,
}

/// Messages for the user: the config banner, the last transient notice.
#[derive(Default)]
pub struct Notices {
    pub banner: Option<Problem>,
    pub toast: Option<(String, Instant)>,
    /// The embedded broker's notice the user dismissed (its English text).
    pub broker_notice_dismissed: Option<String>,
}

/// Changes to the Topics model's subscriptions, applied by the app.
#[derive(Debug, Clone)]
pub enum TopicsEdit {
    Subscribe(String, u8),
    /// A connection was opened: these are its subscriptions.
    Replace(crate::backend::ConnId, Vec<String>, u8),
    Enable(String, bool),
    /// A colour picked for a subscription.
    Color(String, [u8; 3]),
    Remove(String),
}

/// Changes to the saved payloads, applied (and saved) by the app.
#[derive(Debug, Clone)]
pub enum SavedEdit {
    Add(crate::topics::saved::SavedPayload),
    Remove(usize),
}

pub use crate::backend::keeper::ProfilesEdit;
