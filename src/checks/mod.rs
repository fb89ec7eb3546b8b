//! Mini Program compliance checks: probe an endpoint as WeChat would, in the order of
//! wechat-constraints.md §1, and scan a Mini Program project. Every rule (`MP-*`) is one
//! [`Check`] with its status, the facts observed, and a fix in Chinese and English.
//!
//! - `url`: parsing `wxs://` / `wss://` / `ws://` URLs, the URL rules;
//! - `probe`: DNS, TCP, TLS (raw ClientHellos in `tls_probe`, rustls for the rest), the served
//!   chain (judged by `certs`), ALPN, the WebSocket upgrade, MQTT, keepalive;
//! - `project`: mqtt.js version, connect URLs, client count, keepalive in the project's code;
//! - `report`: Markdown and text renderings.

pub mod probe;
pub mod project;
pub mod report;
pub mod tls_probe;
pub mod url;

use std::path::PathBuf;
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};

use crate::config::Secret;
use crate::verdict::L10n;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Pass,
    Warn,
    Fail,
    /// Only a person can confirm it (the whitelist, the ICP filing).
    Manual,
    /// Not tried, and the detail says why (an earlier step failed, opt-in, cancelled).
    Skipped,
}

impl CheckStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Pass => "pass",
            CheckStatus::Warn => "warn",
            CheckStatus::Fail => "fail",
            CheckStatus::Manual => "manual",
            CheckStatus::Skipped => "skipped",
        }
    }
}

impl From<crate::verdict::Status> for CheckStatus {
    fn from(s: crate::verdict::Status) -> Self {
        use crate::verdict::Status;
        match s {
            Status::Pass => CheckStatus::Pass,
            Status::Warn => CheckStatus::Warn,
            Status::Fail => CheckStatus::Fail,
            Status::Skip => CheckStatus::Skipped,
        }
    }
}

/// One rule's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub id: &'static str,
    pub status: CheckStatus,
    pub title: L10n,
    /// What was observed: status codes, header values, versions, timings.
    pub detail: L10n,
    /// What to change; empty when nothing needs to.
    pub remedy: L10n,
    pub elapsed_ms: u64,
    /// Project findings: `file:line`.
    pub source: Option<String>,
}

impl Check {
    /// A decided check with its catalogue title.
    pub fn new(id: &'static str, status: CheckStatus, detail: L10n, remedy: L10n) -> Self {
        Check {
            id,
            status,
            title: title(id),
            detail,
            remedy,
            elapsed_ms: 0,
            source: None,
        }
    }

    pub fn took(mut self, elapsed: Duration) -> Self {
        self.elapsed_ms = elapsed.as_millis() as u64;
        self
    }

    pub fn at(mut self, source: Option<String>) -> Self {
        self.source = source;
        self
    }
}

impl Serialize for Check {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Check", 10)?;
        st.serialize_field("id", self.id)?;
        st.serialize_field("status", &self.status)?;
        st.serialize_field("title", &self.title.en)?;
        st.serialize_field("detail", &self.detail.en)?;
        st.serialize_field("remedy", &self.remedy.en)?;
        st.serialize_field("elapsed_ms", &self.elapsed_ms)?;
        st.serialize_field("title_zh", &self.title.zh)?;
        st.serialize_field("detail_zh", &self.detail.zh)?;
        st.serialize_field("remedy_zh", &self.remedy.zh)?;
        st.serialize_field("source", &self.source)?;
        st.end()
    }
}

/// The JSON form of a [`Check`] (as written by `Serialize`), read back from the history.
#[derive(Deserialize)]
struct CheckJson {
    id: String,
    status: CheckStatus,
    title: String,
    detail: String,
    remedy: String,
    elapsed_ms: u64,
    #[serde(default)]
    title_zh: String,
    #[serde(default)]
    detail_zh: String,
    #[serde(default)]
    remedy_zh: String,
    #[serde(default)]
    source: Option<String>,
}

impl<'de> Deserialize<'de> for Check {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Check::try_from(CheckJson::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl TryFrom<CheckJson> for Check {
    type Error = String;

    fn try_from(j: CheckJson) -> Result<Self, String> {
        let id = CATALOGUE
            .iter()
            .find(|(i, ..)| *i == j.id)
            .map(|(i, ..)| *i)
            .ok_or_else(|| format!("unknown check id {}", j.id))?;
        Ok(Check {
            id,
            status: j.status,
            title: L10n::new(j.title, j.title_zh),
            detail: L10n::new(j.detail, j.detail_zh),
            remedy: L10n::new(j.remedy, j.remedy_zh),
            elapsed_ms: j.elapsed_ms,
            source: j.source,
        })
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub pass: usize,
    pub warn: usize,
    pub fail: usize,
    pub manual: usize,
    pub skipped: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub target: String,
    /// RFC 3339, when the run started.
    pub started: String,
    pub checks: Vec<Check>,
    pub summary: Summary,
    /// The line for 开发设置 → 服务器域名 → socket合法域名.
    pub whitelist: Option<String>,
    /// A ready `mqtt.connect` for the Mini Program, once MQTT CONNECT worked (the other
    /// failures still need fixing for phones).
    pub snippet: Option<String>,
    #[serde(default)]
    pub cancelled: bool,
}

impl Report {
    pub fn summarize(checks: &[Check]) -> Summary {
        let mut s = Summary::default();
        for c in checks {
            match c.status {
                CheckStatus::Pass => s.pass += 1,
                CheckStatus::Warn => s.warn += 1,
                CheckStatus::Fail => s.fail += 1,
                CheckStatus::Manual => s.manual += 1,
                CheckStatus::Skipped => s.skipped += 1,
            }
        }
        s
    }

    pub fn get(&self, id: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.id == id)
    }

    /// 0 nothing fails, 1 a check fails.
    pub fn exit_code(&self) -> u8 {
        if self.summary.fail > 0 { 1 } else { 0 }
    }
}

/// How to run the checks.
#[derive(Debug, Clone)]
pub struct Options {
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// Private CAs that may verify the chain for the other checks (MP-CERT-TRUST still fails).
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// Names of the extra roots' origin, for the report ("--extra-root", "the sandbox dev CA").
    pub extra_roots_origin: L10n,
    /// Run MP-KEEPALIVE (stays idle `keepalive_idle`).
    pub keepalive_test: bool,
    pub keepalive_idle: Duration,
    /// Resolve these names to these addresses instead of asking DNS (like curl's --resolve).
    pub resolve: Vec<(String, std::net::IpAddr)>,
    /// The appid put in the WeChat Referer.
    pub appid: String,
    /// Each network step's limit.
    pub step_timeout: Duration,
    pub project: Option<PathBuf>,
    /// The relay's idle timeout, when known, for the project's keepalive rule.
    pub relay_idle_secs: Option<u64>,
    /// Send the user name and password even to a server whose certificate did not verify for
    /// the host (a lab). Off: they go only where the chain verifies (public roots or
    /// `extra_roots`), and the report says when they were withheld.
    pub send_credentials_anyway: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            username: None,
            password: None,
            extra_roots: Vec::new(),
            extra_roots_origin: L10n::same("--extra-root"),
            keepalive_test: false,
            keepalive_idle: Duration::from_secs(75),
            resolve: Vec::new(),
            appid: "touristappid".into(),
            step_timeout: Duration::from_secs(5),
            project: None,
            relay_idle_secs: None,
            send_credentials_anyway: false,
        }
    }
}

/// The catalogue, in the order checks are reported: id, title in English and Chinese.
pub const CATALOGUE: &[(&str, &str, &str)] = &[
    (
        "MP-URL-SCHEME",
        "Secure scheme (wss:// / wxs://)",
        "安全协议（wss:// / wxs://）",
    ),
    (
        "MP-URL-HOST",
        "A domain name, not an IP or localhost",
        "使用域名，而非 IP 或 localhost",
    ),
    ("MP-URL-PORT", "Port 443", "443 端口"),
    ("MP-DNS", "The name resolves", "域名解析"),
    ("MP-TCP", "TCP connection", "TCP 连接"),
    ("MP-TLS12", "TLS 1.2 accepted", "支持 TLS 1.2"),
    (
        "MP-TLS-CIPHER",
        "ECDHE + AES-GCM suites (iOS ATS)",
        "ECDHE + AES-GCM 加密套件（iOS ATS）",
    ),
    (
        "MP-CERT-TRUST",
        "Trusted by public roots",
        "受公共根证书信任",
    ),
    (
        "MP-CERT-CHAIN",
        "Full chain served, in order",
        "服务器发送完整且有序的证书链",
    ),
    (
        "MP-CERT-NAME",
        "Certificate covers the host",
        "证书覆盖该域名",
    ),
    ("MP-CERT-DATES", "Certificate valid now", "证书在有效期内"),
    (
        "MP-CERT-STRENGTH",
        "Key and signature strength",
        "密钥与签名强度",
    ),
    ("MP-ALPN", "HTTP/1.1 via ALPN", "ALPN 协商 HTTP/1.1"),
    (
        "MP-WS-UPGRADE",
        "WebSocket upgrade (101)",
        "WebSocket 升级（101）",
    ),
    ("MP-WS-PATH", "The path is served", "路径可用"),
    (
        "MP-WS-SUBPROTOCOL",
        "Subprotocol mqtt echoed",
        "回显子协议 mqtt",
    ),
    (
        "MP-MQTT-CONNECT",
        "MQTT 3.1.1 CONNECT accepted",
        "MQTT 3.1.1 连接被接受",
    ),
    (
        "MP-MQTT-PIGGYBACK",
        "Several MQTT packets in one message",
        "一条消息内多个 MQTT 报文",
    ),
    (
        "MP-KEEPALIVE",
        "An idle connection survives 75 s",
        "空闲连接保持 75 秒",
    ),
    ("MP-LATENCY", "Time to CONNACK", "到 CONNACK 的耗时"),
    ("MP-WHITELIST", "socket合法域名 entry", "socket合法域名配置"),
    ("MP-ICP", "ICP filing (备案)", "ICP 备案"),
    ("MP-PROJECT-MQTTJS", "mqtt.js version", "mqtt.js 版本"),
    (
        "MP-PROJECT-URL",
        "Connect URL in the code",
        "代码中的连接地址",
    ),
    (
        "MP-PROJECT-CLIENTS",
        "One MQTT client",
        "只用一个 MQTT 客户端",
    ),
    (
        "MP-PROJECT-KEEPALIVE",
        "Keepalive below idle timeouts",
        "心跳间隔低于空闲超时",
    ),
];

/// The title of a catalogue id.
pub fn title(id: &str) -> L10n {
    CATALOGUE
        .iter()
        .find(|(i, ..)| *i == id)
        .map(|(_, en, zh)| L10n::new(*en, *zh))
        .unwrap_or_else(|| L10n::same(id))
}

/// The console keeps this many runs in `<data>/checks/history.jsonl`.
pub const HISTORY_KEEP: usize = 50;

/// Appends a report to the history file (one JSON object per line), keeping the newest
/// [`HISTORY_KEEP`].
pub fn save_history(path: &std::path::Path, report: &Report) -> Result<(), String> {
    let mut runs = load_history(path);
    runs.push(report.clone());
    let skip = runs.len().saturating_sub(HISTORY_KEEP);
    let mut text = String::new();
    for r in runs.iter().skip(skip) {
        text.push_str(&serde_json::to_string(r).map_err(|e| e.to_string())?);
        text.push('\n');
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    crate::config::store::save_atomic(path, &text).map_err(|e| e.to_string())
}

/// The saved runs, oldest first; unreadable lines are skipped.
pub fn load_history(path: &std::path::Path) -> Vec<Report> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Runs everything: the endpoint probe, then the project scan when asked. `progress` sees
/// each check as it is decided; `cancel` stops the run (what is left is `skipped`).
pub async fn run(
    target: &str,
    opts: &Options,
    progress: impl FnMut(&Check) + Send,
    cancel: tokio_util::sync::CancellationToken,
) -> Report {
    probe::run(target, opts, progress, cancel).await
}
