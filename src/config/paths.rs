//! Platform folders (`directories`), overridable for tests and portable installs.

use std::path::{Path, PathBuf};

/// Where mpbridge keeps its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// Configuration: `console.toml` and later profiles and relay configs.
    pub config_dir: PathBuf,
    /// Data: the dev CA, logs, history.
    pub data_dir: PathBuf,
}

/// Environment variables that override the platform folders (used by tests and CI).
pub const CONFIG_DIR_ENV: &str = "MPBRIDGE_CONFIG_DIR";
pub const DATA_DIR_ENV: &str = "MPBRIDGE_DATA_DIR";

impl Paths {
    /// Resolves the folders: explicit arguments first, then the environment, then the
    /// platform defaults (`~/.config/mpbridge`, `~/.local/share/mpbridge` on Linux).
    pub fn resolve(config_dir: Option<&Path>, data_dir: Option<&Path>) -> Self {
        let project = directories::ProjectDirs::from("", "", "mpbridge");
        let pick = |arg: Option<&Path>, env: &str, default: Option<PathBuf>, leaf: &str| {
            arg.map(Path::to_path_buf)
                .or_else(|| std::env::var_os(env).map(PathBuf::from))
                .or(default)
                .unwrap_or_else(|| std::env::temp_dir().join("mpbridge").join(leaf))
        };
        Self {
            config_dir: pick(
                config_dir,
                CONFIG_DIR_ENV,
                project.as_ref().map(|p| p.config_dir().to_path_buf()),
                "config",
            ),
            data_dir: pick(
                data_dir,
                DATA_DIR_ENV,
                project.as_ref().map(|p| p.data_dir().to_path_buf()),
                "data",
            ),
        }
    }

    /// Both folders under one root (tests, portable mode).
    pub fn under(root: &Path) -> Self {
        Self {
            config_dir: root.join("config"),
            data_dir: root.join("data"),
        }
    }

    pub fn console_file(&self) -> PathBuf {
        self.config_dir.join("console.toml")
    }

    pub fn log_dir(&self) -> PathBuf {
        self.data_dir.join("logs")
    }

    pub fn dev_ca_dir(&self) -> PathBuf {
        self.data_dir.join("dev-ca")
    }

    /// The embedded broker's store: retained messages and persistent sessions.
    pub fn broker_dir(&self) -> PathBuf {
        self.data_dir.join("broker")
    }
}
