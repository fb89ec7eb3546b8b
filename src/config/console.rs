//! `console.toml`: the console's own preferences (language, theme, log level, data folder).
//!
//! ```toml
//! language = "zh-CN"      # or "en"; absent: from the OS locale
//! theme = "system"        # "light" | "dark" | "system"
//! log_level = "info"      # "error" | "warn" | "info" | "debug" | "trace"
//! data_dir = "/srv/mpbridge"   # optional; takes effect at the next start
//! ```

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::store::{ConfigFile, ParseError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Language {
    #[default]
    En,
    ZhCn,
}

impl Language {
    pub const ALL: [Language; 2] = [Language::En, Language::ZhCn];

    pub fn code(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::ZhCn => "zh-CN",
        }
    }

    /// The name of the language in itself, for the picker.
    pub fn native_name(self) -> &'static str {
        match self {
            Language::En => "English",
            Language::ZhCn => "简体中文",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        let c = code.trim().to_ascii_lowercase().replace('_', "-");
        if c == "en" || c.starts_with("en-") {
            Some(Language::En)
        } else if c == "zh" || c.starts_with("zh-") {
            Some(Language::ZhCn)
        } else {
            None
        }
    }

    /// The OS locale's language, English when it is neither English nor Chinese.
    pub fn from_os() -> Self {
        sys_locale::get_locale()
            .and_then(|l| Self::from_code(&l))
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Theme {
    #[default]
    System,
    Light,
    Dark,
}

impl Theme {
    pub const ALL: [Theme; 3] = [Theme::System, Theme::Light, Theme::Dark];

    pub fn code(self) -> &'static str {
        match self {
            Theme::System => "system",
            Theme::Light => "light",
            Theme::Dark => "dark",
        }
    }

    fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.code() == code)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub const ALL: [LogLevel; 5] = [
        LogLevel::Error,
        LogLevel::Warn,
        LogLevel::Info,
        LogLevel::Debug,
        LogLevel::Trace,
    ];

    pub fn code(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.code() == code)
    }

    pub fn as_tracing(self) -> tracing::Level {
        match self {
            LogLevel::Error => tracing::Level::ERROR,
            LogLevel::Warn => tracing::Level::WARN,
            LogLevel::Info => tracing::Level::INFO,
            LogLevel::Debug => tracing::Level::DEBUG,
            LogLevel::Trace => tracing::Level::TRACE,
        }
    }
}

/// The Topics message store's bounds (per active connection; background connections get a
/// quarter each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreBounds {
    pub max_messages: usize,
    pub max_mb: usize,
    /// Payloads larger than this are kept truncated, with their real size shown.
    pub keep_payload_kb: usize,
}

impl Default for StoreBounds {
    /// One million small messages within 300 MB resident (the bench's target).
    fn default() -> Self {
        StoreBounds {
            max_messages: 1_000_000,
            max_mb: 192,
            keep_payload_kb: 4 * 1024,
        }
    }
}

impl StoreBounds {
    pub const MESSAGES: std::ops::RangeInclusive<usize> = 1_000..=10_000_000;
    pub const MB: std::ops::RangeInclusive<usize> = 16..=16_384;
    pub const PAYLOAD_KB: std::ops::RangeInclusive<usize> = 1..=65_536;
}

/// Validated console preferences.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsoleConfig {
    /// `None`: follow the OS locale.
    pub language: Option<Language>,
    pub theme: Theme,
    pub log_level: LogLevel,
    /// `None`: the platform data folder.
    pub data_dir: Option<PathBuf>,
    pub store: StoreBounds,
}

impl ConsoleConfig {
    pub fn effective_language(&self) -> Language {
        self.language.unwrap_or_else(Language::from_os)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConsoleConfig {
    language: Option<Spanned<String>>,
    theme: Option<Spanned<String>>,
    log_level: Option<Spanned<String>>,
    data_dir: Option<Spanned<String>>,
    store_max_messages: Option<Spanned<i64>>,
    store_max_mb: Option<Spanned<i64>>,
    store_keep_payload_kb: Option<Spanned<i64>>,
}

#[derive(Serialize)]
struct OutConsoleConfig<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    language: Option<&'a str>,
    theme: &'a str,
    log_level: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_dir: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    store_max_messages: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    store_max_mb: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    store_keep_payload_kb: Option<usize>,
}

/// A number key within `range`, or the key, line and range in one sentence.
fn bounded(
    text: &str,
    raw: Option<Spanned<i64>>,
    key: &str,
    range: std::ops::RangeInclusive<usize>,
    default: usize,
) -> Result<usize, ParseError> {
    let Some(raw) = raw else { return Ok(default) };
    match usize::try_from(*raw.get_ref()) {
        Ok(v) if range.contains(&v) => Ok(v),
        _ => Err(ParseError::at(
            text,
            Some(raw.span()),
            format!(
                "`{key}` is {}; expected {} to {}",
                raw.get_ref(),
                range.start(),
                range.end()
            ),
        )),
    }
}

fn pick<T>(
    text: &str,
    raw: Option<Spanned<String>>,
    key: &str,
    allowed: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Option<T>, ParseError> {
    let Some(raw) = raw else { return Ok(None) };
    match parse(raw.get_ref()) {
        Some(v) => Ok(Some(v)),
        None => Err(ParseError::at(
            text,
            Some(raw.span()),
            format!("`{key}` is \"{}\"; expected {allowed}", raw.get_ref()),
        )),
    }
}

impl ConfigFile for ConsoleConfig {
    fn parse(text: &str) -> Result<Self, ParseError> {
        let raw: RawConsoleConfig =
            toml::from_str(text).map_err(|e| ParseError::from_toml(text, &e))?;
        let language = pick(text, raw.language, "language", "\"en\" or \"zh-CN\"", |s| {
            Language::ALL.into_iter().find(|l| l.code() == s)
        })?;
        let theme = pick(
            text,
            raw.theme,
            "theme",
            "\"system\", \"light\" or \"dark\"",
            Theme::from_code,
        )?
        .unwrap_or_default();
        let log_level = pick(
            text,
            raw.log_level,
            "log_level",
            "\"error\", \"warn\", \"info\", \"debug\" or \"trace\"",
            LogLevel::from_code,
        )?
        .unwrap_or_default();
        let data_dir = match raw.data_dir {
            None => None,
            Some(d) if d.get_ref().trim().is_empty() => {
                return Err(ParseError::at(
                    text,
                    Some(d.span()),
                    "`data_dir` is empty; remove the key to use the default folder",
                ));
            }
            Some(d) => {
                let p = PathBuf::from(d.get_ref());
                if !p.is_absolute() {
                    return Err(ParseError::at(
                        text,
                        Some(d.span()),
                        format!(
                            "`data_dir` must be an absolute path, not \"{}\"",
                            d.get_ref()
                        ),
                    ));
                }
                Some(p)
            }
        };
        let d = StoreBounds::default();
        let store = StoreBounds {
            max_messages: bounded(
                text,
                raw.store_max_messages,
                "store_max_messages",
                StoreBounds::MESSAGES,
                d.max_messages,
            )?,
            max_mb: bounded(
                text,
                raw.store_max_mb,
                "store_max_mb",
                StoreBounds::MB,
                d.max_mb,
            )?,
            keep_payload_kb: bounded(
                text,
                raw.store_keep_payload_kb,
                "store_keep_payload_kb",
                StoreBounds::PAYLOAD_KB,
                d.keep_payload_kb,
            )?,
        };
        Ok(Self {
            language,
            theme,
            log_level,
            data_dir,
            store,
        })
    }

    fn render(&self) -> String {
        let out = OutConsoleConfig {
            language: self.language.map(Language::code),
            theme: self.theme.code(),
            log_level: self.log_level.code(),
            data_dir: self.data_dir.as_ref().map(|p| p.display().to_string()),
            store_max_messages: Some(self.store.max_messages)
                .filter(|v| *v != StoreBounds::default().max_messages),
            store_max_mb: Some(self.store.max_mb).filter(|v| *v != StoreBounds::default().max_mb),
            store_keep_payload_kb: Some(self.store.keep_payload_kb)
                .filter(|v| *v != StoreBounds::default().keep_payload_kb),
        };
        let body = toml::to_string(&out).unwrap_or_default();
        format!("# mpbridge console preferences (written by the console; safe to edit)\n{body}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let c = ConsoleConfig {
            language: Some(Language::ZhCn),
            theme: Theme::Dark,
            log_level: LogLevel::Debug,
            data_dir: Some(PathBuf::from("/tmp/x")),
            store: StoreBounds {
                max_messages: 50_000,
                max_mb: 64,
                keep_payload_kb: 16,
            },
        };
        assert_eq!(ConsoleConfig::parse(&c.render()).unwrap(), c);
        let e = ConsoleConfig::parse("theme = \"dark\"\nstore_max_mb = 2\n").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(
            e.message
                .contains("`store_max_mb` is 2; expected 16 to 16384"),
            "{e}"
        );
        let d = ConsoleConfig::default();
        assert_eq!(ConsoleConfig::parse(&d.render()).unwrap(), d);
    }

    #[test]
    fn bad_value_names_key_and_line() {
        let e = ConsoleConfig::parse("theme = \"dark\"\nlanguage = \"fr\"\n").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("`language`"), "{e}");
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let e = ConsoleConfig::parse("theme = \"dark\"\n\ncolour = \"red\"\n").unwrap_err();
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("colour"), "{e}");
    }

    #[test]
    fn locale_codes() {
        assert_eq!(Language::from_code("zh_CN.UTF-8"), Some(Language::ZhCn));
        assert_eq!(Language::from_code("en-US"), Some(Language::En));
        assert_eq!(Language::from_code("de-DE"), None);
    }
}
