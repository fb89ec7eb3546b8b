//! Broker profiles: saved connections (`profiles.json` in the config folder), with MQTTX's
//! connection export importable as is. A profile turns into rumqttc options: tcp, tls, ws or
//! wss, credentials, keepalive, clean session, last will, which roots to trust (this computer,
//! the public list, or a CA file), a client certificate, ALPN, and — loudly — no verification.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{LastWill, MqttOptions, Transport};
use serde::{Deserialize, Serialize};

use crate::config::Secret;
use crate::config::secrets::Vault;
use crate::config::store::{ConfigFile, ParseError};
use crate::i18n::{L10n, l};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrustChoice {
    /// This computer's certificate store.
    #[default]
    System,
    /// Mozilla's public roots (webpki-roots), as WeChat and browsers.
    Public,
    /// Only the CA in `ca_file`.
    File,
}

/// The MQTT protocol version a profile connects with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum MqttVersion {
    #[default]
    #[serde(rename = "3.1.1")]
    V311,
    #[serde(rename = "5")]
    V5,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Will {
    pub topic: String,
    #[serde(default)]
    pub payload: String,
    #[serde(default)]
    pub qos: u8,
    #[serde(default)]
    pub retain: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    /// `mqtt://host:1883`, `mqtts://host:8883`, `ws://host:8083/mqtt`, `wss://host/mqtt`.
    pub url: String,
    /// MQTT 3.1.1 (the default, as ESP8266 and Mini Program clients) or 5.
    #[serde(default)]
    pub version: MqttVersion,
    #[serde(default = "default_client_id")]
    pub client_id: String,
    /// Append `-xxxxxxxx` to the client id on every connect (two consoles, no takeover).
    #[serde(default = "yes")]
    pub random_suffix: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Read from older files only: the password now lives in the credential store (or
    /// secrets.json) under `password_ref`; see [`Profiles::seal`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// Where the password is filed in the [`Vault`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_ref: Option<String>,
    /// What is filed under `password_ref` now, so a save files only a changed password (each
    /// write may raise the store's unlock prompt). In memory only.
    #[serde(skip)]
    pub password_filed: Option<Secret>,
    /// The vault did not give the password back at load (locked, away, deleted): the
    /// reference is kept untouched until a new password is typed. In memory only.
    #[serde(skip)]
    pub password_unread: bool,
    #[serde(default = "default_keepalive")]
    pub keepalive_secs: u16,
    /// Clean session (3.1.1) or clean start (5).
    #[serde(default = "yes")]
    pub clean_session: bool,
    /// MQTT 5: how long the broker keeps the session after the connection ends (none: it
    /// ends with the connection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_expiry_secs: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub will: Option<Will>,
    #[serde(default)]
    pub trust: TrustChoice,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alpn: Vec<String>,
    /// TLS server name (SNI) to present and check instead of the URL's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// Accept any certificate. For a broken test server only: the connection is not private.
    #[serde(default)]
    pub insecure: bool,
    /// Subscribed after every connect.
    #[serde(default = "default_subscriptions")]
    pub subscriptions: Vec<String>,
    /// The QoS those subscriptions ask for (0–2).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub subscribe_qos: u8,
}

fn is_zero(q: &u8) -> bool {
    *q == 0
}

fn yes() -> bool {
    true
}
fn default_client_id() -> String {
    "mpbridge".into()
}
fn default_keepalive() -> u16 {
    60
}
fn default_subscriptions() -> Vec<String> {
    vec!["#".into()]
}

impl Profile {
    pub fn new(name: &str, url: &str) -> Self {
        Profile {
            name: name.to_owned(),
            url: url.to_owned(),
            version: MqttVersion::V311,
            client_id: default_client_id(),
            random_suffix: true,
            username: None,
            password: None,
            password_ref: None,
            password_filed: None,
            password_unread: false,
            keepalive_secs: 60,
            clean_session: true,
            session_expiry_secs: None,
            will: None,
            trust: TrustChoice::System,
            ca_file: None,
            client_cert: None,
            client_key: None,
            alpn: Vec::new(),
            sni: None,
            insecure: false,
            subscriptions: default_subscriptions(),
            subscribe_qos: 0,
        }
    }

    /// The problems that keep it from connecting, in one sentence each.
    pub fn validate(&self) -> Result<(), L10n> {
        if self.name.trim().is_empty() {
            return Err(l("a profile needs a name", "配置需要一个名称"));
        }
        let (scheme, _, _) = split_url(&self.url)?;
        if let Some(name) = self.sni_override() {
            if !matches!(scheme, Scheme::Tls | Scheme::Wss) {
                return Err(l(
                    "a server name (SNI) override needs mqtts:// or wss://",
                    "指定服务器名称（SNI）需要 mqtts:// 或 wss://",
                ));
            }
            if rustls::pki_types::ServerName::try_from(name).is_err() {
                return Err(l(
                    format!("\"{name}\" is not a valid server name"),
                    format!("“{name}”不是有效的服务器名称"),
                ));
            }
        }
        if self.client_id.len() > 65_535 {
            return Err(l("the client id is too long", "客户端 ID 太长"));
        }
        if self.password.is_some() && self.username.is_none() && self.version == MqttVersion::V311 {
            return Err(l(
                "MQTT 3.1.1 sends a password only with a user name",
                "MQTT 3.1.1 只能在有用户名时发送密码",
            ));
        }
        if self.session_expiry_secs.is_some() && self.version == MqttVersion::V311 {
            return Err(l(
                "session expiry is an MQTT 5 setting: switch to MQTT 5 or clear it",
                "会话过期时间是 MQTT 5 的设置：请切换到 MQTT 5 或清空它",
            ));
        }
        if self.trust == TrustChoice::File && self.ca_file.is_none() {
            return Err(needs_ca_file());
        }
        if self.client_cert.is_some() != self.client_key.is_some() {
            return Err(l(
                "a client certificate needs its key, and the other way round",
                "客户端证书需要对应的私钥，反之亦然",
            ));
        }
        if self.subscribe_qos > 2 {
            return Err(l(
                "the subscriptions' QoS must be 0, 1 or 2",
                "订阅的 QoS 必须是 0、1 或 2",
            ));
        }
        for f in &self.subscriptions {
            if !super::topic::valid_filter(f) {
                return Err(l(
                    format!("\"{f}\" is not a valid topic filter"),
                    format!("“{f}”不是有效的主题过滤器"),
                ));
            }
        }
        if let Some(w) = &self.will
            && (w.topic.is_empty() || w.topic.contains(['+', '#']) || w.qos > 2)
        {
            return Err(l(
                "the last will needs a topic without wildcards and a QoS of 0–2",
                "遗嘱需要一个不含通配符的主题，QoS 为 0–2",
            ));
        }
        Ok(())
    }

    /// The client id for one connection.
    pub fn effective_client_id(&self) -> String {
        if self.random_suffix {
            format!("{}-{:08x}", self.client_id, rand::random::<u32>())
        } else {
            self.client_id.clone()
        }
    }

    /// Options in the profile's protocol version; reading certificate files happens here.
    /// With a server-name override the loopback forwarder is bound here and started with the
    /// connection ([`super::client::BrokerOptions::start_forward`]).
    pub fn options(&self) -> Result<super::client::BrokerOptions, L10n> {
        use super::client::{BrokerOptions, Mqtt};
        self.validate()?;
        let (_, host, port) = split_url(&self.url)?;
        let forward = match self.sni_override() {
            Some(name) => Some(super::sni::Forward::bind(
                authority(&host, port),
                name,
                self.tls_config()?,
            )?),
            None => None,
        };
        let mqtt = match self.version {
            MqttVersion::V311 => Mqtt::V4(Box::new(self.v4_via(forward.as_deref())?)),
            MqttVersion::V5 => Mqtt::V5(Box::new(self.v5_via(forward.as_deref())?)),
        };
        let display = self.sni_override().map(|name| {
            format!(
                "{} (SNI {name})",
                crate::config::secret::redact_url(self.url.trim())
            )
        });
        Ok(BrokerOptions {
            mqtt,
            forward,
            display,
            probe: self.tls_probe(),
        })
    }

    /// How to judge the broker's certificate chain as this profile trusts it, for a TLS
    /// profile that verifies (`None` otherwise).
    pub fn tls_probe(&self) -> Option<super::diagnose::TlsProbe> {
        let (scheme, host, port) = split_url(&self.url).ok()?;
        if !matches!(scheme, Scheme::Tls | Scheme::Wss) || self.insecure {
            return None;
        }
        let trust = match self.trust {
            TrustChoice::System => crate::certs::Trust::default(),
            TrustChoice::Public => crate::certs::Trust {
                extra: Vec::new(),
                os_store: false,
                ..Default::default()
            },
            TrustChoice::File => {
                let mut o = crate::certs::Opened::default();
                crate::certs::open::open_path(self.ca_file.as_ref()?, None, &mut o);
                crate::certs::Trust {
                    public: Vec::new(),
                    extra: o.certs.into_iter().map(|c| c.der).collect(),
                    os_store: false,
                }
            }
        };
        let name = self.sni_override().unwrap_or(&host).to_owned();
        Some(super::diagnose::TlsProbe {
            addr: authority(&host, port),
            sni: Some(name.clone()),
            domain: name,
            trust,
        })
    }

    /// The server name to present and check instead of the URL's host.
    pub fn sni_override(&self) -> Option<&str> {
        self.sni.as_deref().map(str::trim).filter(|s| !s.is_empty())
    }

    /// Where rumqttc dials: the broker, or the loopback end of a server-name forwarder.
    fn dial(&self, fwd: Option<&super::sni::Forward>) -> Result<Dial, L10n> {
        let (scheme, host, port) = split_url(&self.url)?;
        let url = self.url.trim();
        Ok(match (fwd, scheme) {
            (None, Scheme::Ws | Scheme::Wss) => Dial {
                addr: url.to_owned(),
                port,
                transport: self.transport(scheme)?,
                host_header: None,
            },
            (None, _) => Dial {
                addr: host,
                port,
                transport: self.transport(scheme)?,
                host_header: None,
            },
            (Some(f), Scheme::Wss) => {
                let rest = url.split_once("://").map_or(url, |(_, r)| r);
                let (authority, path) = match rest.find('/') {
                    Some(i) => (&rest[..i], &rest[i..]),
                    None => (rest, "/"),
                };
                Dial {
                    addr: format!("ws://127.0.0.1:{}{path}", f.local_port),
                    port: f.local_port,
                    transport: Some(Transport::Ws),
                    host_header: Some(authority.to_owned()),
                }
            }
            (Some(f), _) => Dial {
                addr: "127.0.0.1".into(),
                port: f.local_port,
                transport: None,
                host_header: None,
            },
        })
    }

    /// MQTT 5 options: clean start, session expiry, and the same transport and credentials.
    fn v5_via(&self, fwd: Option<&super::sni::Forward>) -> Result<rumqttc::v5::MqttOptions, L10n> {
        use rumqttc::v5::mqttbytes::QoS as Q;
        let d = self.dial(fwd)?;
        let id = self.effective_client_id();
        let mut o = rumqttc::v5::MqttOptions::new(id, d.addr, d.port);
        if let Some(host) = d.host_header {
            o.set_request_modifier(move |mut req| {
                if let Ok(v) = host.parse() {
                    req.headers_mut().insert("host", v);
                }
                async move { req }
            });
        }
        o.set_keep_alive(Duration::from_secs(u64::from(self.keepalive_secs.max(5))));
        o.set_clean_start(self.clean_session);
        o.set_max_packet_size(Some(super::MAX_PACKET_BYTES as u32));
        o.set_session_expiry_interval(self.session_expiry_secs);
        if let Some(u) = &self.username {
            o.set_credentials(
                u.clone(),
                self.password
                    .as_ref()
                    .map(|p| p.expose().to_owned())
                    .unwrap_or_default(),
            );
        }
        if let Some(w) = &self.will {
            let qos = match w.qos {
                0 => Q::AtMostOnce,
                1 => Q::AtLeastOnce,
                _ => Q::ExactlyOnce,
            };
            o.set_last_will(rumqttc::v5::mqttbytes::v5::LastWill::new(
                &w.topic,
                w.payload.clone(),
                qos,
                w.retain,
                None,
            ));
        }
        if let Some(t) = d.transport {
            o.set_transport(t);
        }
        Ok(o)
    }

    fn transport(&self, scheme: Scheme) -> Result<Option<Transport>, L10n> {
        Ok(match scheme {
            Scheme::Tcp => None,
            Scheme::Ws => Some(Transport::Ws),
            Scheme::Tls => Some(Transport::tls_with_config(self.tls_config()?.into())),
            Scheme::Wss => Some(Transport::wss_with_config(self.tls_config()?.into())),
        })
    }

    /// MQTT 3.1.1 options for this profile, for a plain rumqttc client. A profile with a
    /// server-name override needs its forwarder: use [`Profile::options`].
    pub fn mqtt_options(&self) -> Result<MqttOptions, L10n> {
        self.validate()?;
        if self.sni_override().is_some() {
            return Err(L10n::same(
                "this profile overrides the server name: connect it through options()",
            ));
        }
        self.v4_via(None)
    }

    fn v4_via(&self, fwd: Option<&super::sni::Forward>) -> Result<MqttOptions, L10n> {
        let d = self.dial(fwd)?;
        let id = self.effective_client_id();
        let mut o = MqttOptions::new(id, d.addr, d.port);
        if let Some(host) = d.host_header {
            o.set_request_modifier(move |mut req| {
                if let Ok(v) = host.parse() {
                    req.headers_mut().insert("host", v);
                }
                async move { req }
            });
        }
        o.set_keep_alive(Duration::from_secs(u64::from(self.keepalive_secs.max(5))));
        o.set_clean_session(self.clean_session);
        o.set_max_packet_size(super::MAX_PACKET_BYTES, super::MAX_PACKET_BYTES);
        if let Some(u) = &self.username {
            o.set_credentials(
                u.clone(),
                self.password
                    .as_ref()
                    .map(|p| p.expose().to_owned())
                    .unwrap_or_default(),
            );
        }
        if let Some(w) = &self.will {
            o.set_last_will(LastWill::new(
                &w.topic,
                w.payload.clone(),
                super::qos(w.qos),
                w.retain,
            ));
        }
        if let Some(t) = d.transport {
            o.set_transport(t);
        }
        Ok(o)
    }

    fn tls_config(&self) -> Result<rustls::ClientConfig, L10n> {
        let provider = crate::crypto::provider();
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| crate::certs::tls_words::describe(&e))?;
        let builder = if self.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(crate::certs::fetch::RecordOnly::new(
                    provider,
                )))
        } else {
            match self.trust {
                TrustChoice::System => {
                    let v = rustls_platform_verifier::Verifier::new(provider).map_err(|e| {
                        l(
                            format!("cannot load this computer's certificate store: {e}"),
                            format!("无法加载本机的证书库（“{e}”）"),
                        )
                    })?;
                    builder
                        .dangerous()
                        .with_custom_certificate_verifier(Arc::new(v))
                }
                TrustChoice::Public => {
                    let roots = rustls::RootCertStore {
                        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                    };
                    builder.with_root_certificates(roots)
                }
                TrustChoice::File => {
                    let path = self.ca_file.as_ref().ok_or_else(needs_ca_file)?;
                    let mut o = crate::certs::Opened::default();
                    crate::certs::open::open_path(path, None, &mut o);
                    if let Some(e) = o.errors.first() {
                        let e = e.l10n();
                        return Err(e.after("CA file: ", "CA 文件："));
                    }
                    let mut roots = rustls::RootCertStore::empty();
                    for c in o.certs {
                        roots.add(c.der).map_err(|e| {
                            let e = crate::certs::tls_words::describe(&e);
                            l(
                                format!("CA file {}: {}", path.display(), e.en),
                                format!("CA 文件 {}：{}", path.display(), e.zh),
                            )
                        })?;
                    }
                    if roots.is_empty() {
                        return Err(l(
                            format!("{} holds no certificate", path.display()),
                            format!("{} 中没有证书", path.display()),
                        ));
                    }
                    builder.with_root_certificates(roots)
                }
            }
        };
        let mut cfg = match (&self.client_cert, &self.client_key) {
            (Some(c), Some(k)) => {
                let mut o = crate::certs::Opened::default();
                crate::certs::open::open_path(c, None, &mut o);
                crate::certs::open::open_path(k, None, &mut o);
                let client_cert = |e: L10n| e.after("client certificate: ", "客户端证书：");
                if let Some(e) = o.errors.first() {
                    return Err(client_cert(e.l10n()));
                }
                let key = o.keys.into_iter().next().ok_or_else(|| {
                    l(
                        format!("{} holds no private key", k.display()),
                        format!("{} 中没有私钥", k.display()),
                    )
                })?;
                builder
                    .with_client_auth_cert(o.certs.into_iter().map(|c| c.der).collect(), key.der)
                    .map_err(|e| client_cert(crate::certs::tls_words::describe(&e)))?
            }
            _ => builder.with_no_client_auth(),
        };
        cfg.alpn_protocols = self.alpn.iter().map(|a| a.as_bytes().to_vec()).collect();
        Ok(cfg)
    }
}

/// Where rumqttc dials, with the transport and (through a forwarder) the `Host` header.
struct Dial {
    addr: String,
    port: u16,
    transport: Option<Transport>,
    host_header: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Tcp,
    Tls,
    Ws,
    Wss,
}

/// `host:port`, with an IPv6 address in brackets.
fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn needs_ca_file() -> L10n {
    l(
        "trust = file needs a CA file",
        "信任方式为“文件”时需要 CA 文件",
    )
}

fn split_url(url: &str) -> Result<(Scheme, String, u16), L10n> {
    let url = url.trim();
    let (scheme, rest) = url.split_once("://").ok_or_else(|| {
        l(
            format!("{url}: expected mqtt://, mqtts://, ws:// or wss://"),
            format!("{url}：应以 mqtt://、mqtts://、ws:// 或 wss:// 开头"),
        )
    })?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "mqtt" | "tcp" => Scheme::Tcp,
        "mqtts" | "ssl" | "tls" => Scheme::Tls,
        "ws" => Scheme::Ws,
        "wss" => Scheme::Wss,
        other => {
            return Err(l(
                format!(
                    "{url}: {other}:// is not a broker address (mqtt://, mqtts://, ws://, wss://)"
                ),
                format!("{url}：{other}:// 不是代理地址（mqtt://、mqtts://、ws://、wss://）"),
            ));
        }
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    if authority.contains('@') {
        // Never echo it: the part before the @ is a user name and password.
        let shown = crate::config::secret::redact_url(url);
        return Err(l(
            format!(
                "{shown}: put the user name and password in the profile's fields, not in the address"
            ),
            format!("{shown}：请把用户名和密码填在配置的字段里，而不是写在地址中"),
        ));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
            h.trim_start_matches('[').trim_end_matches(']').to_owned(),
            Some(p.parse::<u16>().map_err(|_| {
                l(
                    format!("{url}: bad port \"{p}\""),
                    format!("{url}：端口“{p}”有误"),
                )
            })?),
        ),
        _ => (authority.to_owned(), None),
    };
    if host.is_empty() {
        return Err(l(format!("{url}: no host"), format!("{url}：没有主机名")));
    }
    let port = port.unwrap_or(match scheme {
        Scheme::Tcp => 1883,
        Scheme::Tls => 8883,
        Scheme::Ws => 80,
        Scheme::Wss => 443,
    });
    Ok((scheme, host, port))
}

/// `profiles.json`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profiles {
    #[serde(default)]
    pub profiles: Vec<Profile>,
}

impl ConfigFile for Profiles {
    fn parse(text: &str) -> Result<Self, ParseError> {
        let p: Profiles = serde_json::from_str(text).map_err(|e| ParseError {
            line: Some(e.line()),
            message: e.to_string(),
        })?;
        for x in &p.profiles {
            x.validate().map_err(|e| ParseError {
                line: None,
                message: format!("profile \"{}\": {}", x.name, e.en),
            })?;
        }
        Ok(p)
    }

    fn render(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

impl Profiles {
    /// The text *Export* writes: every profile without its password or where it is filed
    /// (the file may travel).
    pub fn export_text(&self) -> String {
        let mut copy = self.clone();
        for p in &mut copy.profiles {
            p.password = None;
            p.password_ref = None;
        }
        copy.render()
    }

    /// After loading: each profile's password from the vault. Plain-text passwords an older
    /// version left in the file stay in memory and move to the vault at the next
    /// [`Profiles::seal`]. Returns the count of those, and the names of profiles whose
    /// password the vault did not give back (gone, or unreadable now), with why; those keep
    /// their reference (`password_unread`) so a later save cannot lose the entry.
    pub fn unseal(&mut self, vault: &Vault) -> Unsealed {
        let mut out = Unsealed::default();
        for p in &mut self.profiles {
            if p.password.as_ref().is_some_and(|s| !s.is_empty()) {
                out.plain_text += 1;
                continue;
            }
            let Some(id) = &p.password_ref else { continue };
            match vault.get(id) {
                Ok(Some(s)) => {
                    p.password_filed = Some(s.clone());
                    p.password = Some(s);
                }
                Ok(None) => {
                    p.password_unread = true;
                    out.missing.push((p.name.clone(), None));
                }
                Err(e) => {
                    p.password_unread = true;
                    out.missing.push((p.name.clone(), Some(e)));
                }
            }
        }
        out
    }

    /// Before saving: new and changed passwords into the vault, and the copy the file gets,
    /// with only `password_ref`s. A duplicated profile gets its own entry; a password cleared
    /// is forgotten (unless another profile still uses the entry); a profile whose password
    /// could not be read keeps its reference as it was. A profile's fields change only after
    /// the vault took the write, so a failure loses nothing.
    pub fn seal(&mut self, vault: &mut Vault) -> Result<Profiles, String> {
        let has = |p: &Profile| p.password.as_ref().is_some_and(|s| !s.is_empty());
        let still_used: std::collections::HashSet<String> = self
            .profiles
            .iter()
            .filter(|p| has(p) || p.password_unread)
            .filter_map(|p| p.password_ref.clone())
            .collect();
        let mut seen = std::collections::HashSet::new();
        for p in &mut self.profiles {
            if !has(p) {
                if p.password_unread {
                    seen.extend(p.password_ref.clone());
                    continue;
                }
                if let Some(id) = &p.password_ref
                    && !still_used.contains(id)
                {
                    vault.delete(id)?;
                }
                p.password_ref = None;
                p.password_filed = None;
                continue;
            }
            let (id, fresh) = match &p.password_ref {
                Some(id) if !seen.contains(id) => (id.clone(), false),
                _ => (crate::config::secrets::new_id(), true),
            };
            if let Some(secret) = &p.password
                && (fresh || p.password_filed.as_ref() != Some(secret))
            {
                vault.set(&id, &format!("mpbridge: {}", p.name), secret)?;
            }
            seen.insert(id.clone());
            p.password_ref = Some(id);
            p.password_filed = p.password.clone();
            p.password_unread = false;
        }
        let mut file = self.clone();
        for p in &mut file.profiles {
            p.password = None;
        }
        Ok(file)
    }

    /// Profiles read from a file (an import): a reference this vault knows brings its
    /// password along (restoring a profiles.json backup); any other is foreign and dropped.
    pub fn adopt(list: &mut [Profile], vault: &Vault) {
        for p in list {
            p.password_filed = None;
            p.password_unread = false;
            if p.password.as_ref().is_some_and(|s| !s.is_empty()) {
                p.password_ref = None;
                continue;
            }
            match p.password_ref.as_deref().map(|id| vault.get(id)) {
                Some(Ok(Some(s))) => p.password = Some(s),
                _ => p.password_ref = None,
            }
        }
    }

    /// After loading `file`: [`Profiles::unseal`], then plain-text passwords an older version
    /// left there move into the vault and the file is rewritten without them (twice, so the
    /// backup it keeps is clean too). What moved and what is missing.
    pub fn secure(&mut self, vault: &mut Vault, file: &std::path::Path) -> Secured {
        let found = self.unseal(vault);
        let mut out = Secured {
            missing: found.missing,
            ..Secured::default()
        };
        if found.plain_text > 0 {
            let sealed = self.seal(vault).and_then(|sealed| {
                let save = |_| crate::config::store::save(file, &sealed);
                save(()).and_then(save).map_err(|e| e.to_string())
            });
            match sealed {
                Ok(()) => out.moved = found.plain_text,
                Err(e) => {
                    tracing::error!("could not move passwords out of {}: {e}", file.display());
                    out.error = Some(e);
                }
            }
        }
        for (name, why) in &out.missing {
            tracing::warn!(
                "the password of profile {name} is not where it was filed{}",
                why.as_deref().map(|w| format!(": {w}")).unwrap_or_default()
            );
        }
        out
    }

    /// A profile removed: its password goes too (unless another profile shares the id).
    pub fn forget(&self, removed: &Profile, vault: &Vault) -> Result<(), String> {
        match &removed.password_ref {
            Some(id)
                if !self
                    .profiles
                    .iter()
                    .any(|p| p.password_ref.as_ref() == Some(id)) =>
            {
                vault.delete(id)
            }
            _ => Ok(()),
        }
    }
}

/// What [`Profiles::secure`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Secured {
    /// Plain-text passwords moved from the file into the vault.
    pub moved: usize,
    /// Why plain-text passwords could not be moved (they stay in the file, 0600).
    pub error: Option<String>,
    /// Profiles whose password the vault does not have, and the error if reading failed.
    pub missing: Vec<(String, Option<String>)>,
}

/// What [`Profiles::unseal`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Unsealed {
    /// Passwords still in plain text in the file (an older version's), to move.
    pub plain_text: usize,
    /// Profiles whose password the vault does not have, and the error if reading failed.
    pub missing: Vec<(String, Option<String>)>,
}

/// What *Import* reads: our own export (an object with `"profiles"`), judged as our own
/// format, its errors named; anything else as MQTTX's connection export.
pub fn import(text: &str) -> Result<(Vec<Profile>, Vec<L10n>), L10n> {
    let ours = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(o)) => o.contains_key("profiles"),
        Ok(_) => false,
        // Not JSON at all: ours if it reads like ours (a damaged export), so the error names
        // the line of our file rather than MQTTX's format.
        Err(_) => text.trim_start().starts_with('{') && text.contains("\"profiles\""),
    };
    if ours {
        return Profiles::parse(text)
            // `password_ref`s stay: [`Profiles::adopt`] keeps those this vault knows.
            .map(|p| (p.profiles, Vec::new()))
            .map_err(|e| match e.line {
                Some(line) => l(
                    format!("line {line}: {}", e.message),
                    format!("第 {line} 行：“{}”", e.message),
                ),
                None => l(e.message.clone(), format!("“{}”", e.message)),
            });
    }
    from_mqttx(text)
}

/// MQTTX's connection export (a JSON array, or `{"connections": [...]}`), as profiles.
/// Unknown fields are ignored; what cannot be carried over is said in the notes.
pub fn from_mqttx(text: &str) -> Result<(Vec<Profile>, Vec<L10n>), L10n> {
    let v: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| l(format!("not JSON: {e}"), format!("不是 JSON（“{e}”）")))?;
    let list = match &v {
        serde_json::Value::Array(a) => a.clone(),
        serde_json::Value::Object(o) => match o.get("connections").or_else(|| o.get("data")) {
            Some(serde_json::Value::Array(a)) => a.clone(),
            _ => vec![v.clone()],
        },
        _ => {
            return Err(l(
                "expected a list of MQTTX connections",
                "应为 MQTTX 连接列表",
            ));
        }
    };
    let mut out = Vec::new();
    let mut notes = Vec::new();
    for c in list {
        let Some(p) = mqttx_connection(&c, &mut notes) else {
            continue;
        };
        match p.validate() {
            Ok(()) => out.push(p),
            Err(e) => notes.push(l(
                format!("{}: {}; skipped", p.name, e.en),
                format!("{}：{}；已跳过", p.name, e.zh),
            )),
        }
    }
    Ok((out, notes))
}

/// One MQTTX connection as a profile; what cannot be carried over goes to `notes`. `None`
/// when it has no host.
fn mqttx_connection(c: &serde_json::Value, notes: &mut Vec<L10n>) -> Option<Profile> {
    let s = |k: &str| c.get(k).and_then(|x| x.as_str()).map(str::to_owned);
    let name = s("name").unwrap_or_else(|| "imported".into());
    let Some(host) = s("host") else {
        notes.push(l(
            format!("{name}: no host, skipped"),
            format!("{name}：没有主机，已跳过"),
        ));
        return None;
    };
    let proto = s("protocol").unwrap_or_else(|| "mqtt".into());
    let ssl = c.get("ssl").and_then(|x| x.as_bool()).unwrap_or(false);
    let scheme = match (proto.as_str(), ssl) {
        ("ws", false) => "ws",
        ("ws" | "wss", _) => "wss",
        ("mqtts", _) | (_, true) => "mqtts",
        _ => "mqtt",
    };
    let port = c
        .get("port")
        .and_then(|x| {
            x.as_u64()
                .or_else(|| x.as_str().and_then(|s| s.parse().ok()))
        })
        .unwrap_or(match scheme {
            "mqtts" => 8883,
            "ws" => 8083,
            "wss" => 8084,
            _ => 1883,
        });
    let path = if scheme.starts_with("ws") {
        s("path").unwrap_or_else(|| "/mqtt".into())
    } else {
        String::new()
    };
    let mut p = Profile::new(&name, &format!("{scheme}://{host}:{port}{path}"));
    if let Some(id) = s("clientId").filter(|x| !x.is_empty()) {
        p.client_id = id;
        p.random_suffix = false;
    }
    p.username = s("username").filter(|x| !x.is_empty());
    p.password = s("password")
        .filter(|x| !x.is_empty() && p.username.is_some())
        .map(Secret::new);
    if let Some(k) = c.get("keepalive").and_then(|x| x.as_u64()) {
        p.keepalive_secs = k.clamp(0, 65_535) as u16;
    }
    if let Some(clean) = c.get("clean").and_then(|x| x.as_bool()) {
        p.clean_session = clean;
    }
    if c.get("rejectUnauthorized").and_then(|x| x.as_bool()) == Some(false) {
        p.insecure = true;
        notes.push(l(
            format!("{name}: certificate verification is off, as in MQTTX"),
            format!("{name}：证书验证已关闭，与 MQTTX 中一致"),
        ));
    }
    // MQTTX may hold certificates inline (PEM text) instead of file paths; a profile here
    // names files, so those are left out — and said.
    for k in ["ca", "cert", "key"] {
        if s(k).is_some_and(|x| x.contains("-----BEGIN")) {
            notes.push(l(
                format!(
                    "{name}: the {k} is PEM text inside the export; save it to a file and pick it in the profile"
                ),
                format!("{name}：导出文件中的 {k} 是 PEM 文本；请保存为文件，再在配置中选择它"),
            ));
        }
    }
    if let Some(ca) = s("ca").filter(|x| !x.is_empty() && !x.contains("-----BEGIN")) {
        p.trust = TrustChoice::File;
        p.ca_file = Some(PathBuf::from(ca));
    }
    if let (Some(cert), Some(key)) = (
        s("cert").filter(|x| !x.is_empty() && !x.contains("-----BEGIN")),
        s("key").filter(|x| !x.is_empty() && !x.contains("-----BEGIN")),
    ) {
        p.client_cert = Some(PathBuf::from(cert));
        p.client_key = Some(PathBuf::from(key));
    }
    if let Some(w) = c.get("will")
        && let Some(topic) = w
            .get("lastWillTopic")
            .and_then(|x| x.as_str())
            .filter(|t| !t.is_empty())
    {
        p.will = Some(Will {
            topic: topic.to_owned(),
            payload: w
                .get("lastWillPayload")
                .and_then(|x| x.as_str())
                .unwrap_or("")
                .to_owned(),
            qos: w
                .get("lastWillQos")
                .and_then(|x| x.as_u64())
                .unwrap_or(0)
                .min(2) as u8,
            retain: w
                .get("lastWillRetain")
                .and_then(|x| x.as_bool())
                .unwrap_or(false),
        });
    }
    if let Some(subs) = c.get("subscriptions").and_then(|x| x.as_array()) {
        let topics: Vec<(String, u8)> = subs
            .iter()
            .filter_map(|s| {
                let topic = s.get("topic").and_then(|t| t.as_str())?;
                let q = s.get("qos").and_then(|q| q.as_u64()).unwrap_or(0).min(2) as u8;
                Some((topic.to_owned(), q))
            })
            .filter(|(t, _)| super::topic::valid_filter(t))
            .collect();
        if !topics.is_empty() {
            // One QoS per profile: the highest asked for, said when they differ.
            let max = topics.iter().map(|(_, q)| *q).max().unwrap_or(0);
            if topics.iter().any(|(_, q)| *q != max) {
                notes.push(l(
                    format!(
                        "{name}: its subscriptions use different QoS levels; all are made with QoS {max}"
                    ),
                    format!("{name}：各订阅的 QoS 不同；全部按 QoS {max} 订阅"),
                ));
            }
            p.subscribe_qos = max;
            p.subscriptions = topics.into_iter().map(|(t, _)| t).collect();
        }
    }
    if c.get("mqttVersion").and_then(|x| x.as_str()) == Some("5.0") {
        p.version = MqttVersion::V5;
        let props = c.get("properties");
        p.session_expiry_secs = props
            .and_then(|x| x.get("sessionExpiryInterval"))
            .and_then(|x| x.as_u64())
            .map(|x| x.min(u64::from(u32::MAX)) as u32);
        if props
            .and_then(|x| x.get("userProperties"))
            .is_some_and(|x| x.as_object().is_some_and(|o| !o.is_empty()))
        {
            notes.push(l(
                format!("{name}: CONNECT user properties are not carried over"),
                format!("{name}：CONNECT 用户属性没有带过来"),
            ));
        }
    }
    Some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_validation() {
        assert_eq!(
            split_url("mqtt://a:1").unwrap(),
            (Scheme::Tcp, "a".into(), 1)
        );
        assert_eq!(split_url("mqtts://a").unwrap().2, 8883);
        assert_eq!(
            split_url("wss://a/mqtt").unwrap(),
            (Scheme::Wss, "a".into(), 443)
        );
        assert_eq!(
            split_url("ws://[::1]:9/x").unwrap(),
            (Scheme::Ws, "::1".into(), 9)
        );
        assert!(split_url("http://a").is_err());
        let e = split_url("mqtt://ops:hunter2@a:1").unwrap_err();
        assert!(
            e.en.contains("profile's fields")
                && !e.en.contains("hunter2")
                && !e.zh.contains("hunter2"),
            "{e:?}"
        );
        let mut p = Profile::new("x", "mqtt://a:1");
        assert!(p.validate().is_ok());
        p.password = Some(Secret::new("s"));
        assert!(p.validate().unwrap_err().en.contains("user name"));
        p.username = Some("u".into());
        p.subscriptions = vec!["a/#/b".into()];
        assert!(p.validate().unwrap_err().en.contains("topic filter"));
    }

    #[test]
    fn mqttx_inline_certificates_are_named_not_dropped_silently() {
        let (profiles, notes) = from_mqttx(
            r#"[{"name":"inline","host":"h.example","port":8883,"protocol":"mqtts","ca":"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"}]"#,
        )
        .unwrap();
        assert_eq!(profiles.len(), 1);
        assert!(profiles[0].ca_file.is_none());
        assert!(
            notes.iter().any(|n| n.en.contains("the ca is PEM text")),
            "{notes:?}"
        );
    }

    #[test]
    fn round_trip_keeps_the_password_masked_in_debug() {
        let mut p = Profile::new("x", "mqtt://a:1");
        p.username = Some("u".into());
        p.password = Some(Secret::new("hunter2"));
        let file = Profiles { profiles: vec![p] };
        let text = file.render();
        assert_eq!(Profiles::parse(&text).unwrap(), file);
        assert!(!format!("{file:?}").contains("hunter2"));
        let e = Profiles::parse("{\"profiles\": [ {\"name\": 1} ]}").unwrap_err();
        assert_eq!(e.line, Some(1));
    }

    /// Passwords go to the vault, the file gets references; a duplicated profile gets its own
    /// entry; a cleared password and a removed profile are forgotten; exports and imports
    /// carry no reference.
    #[test]
    fn sealing_files_passwords_apart_and_forgets_them() {
        use crate::config::secrets::{FileWhy, Vault};
        let dir = tempfile::tempdir().unwrap();
        let mut vault = Vault::file_only(dir.path().join("secrets.json"), FileWhy::Asked);
        let with = |name: &str, pw: &str| {
            let mut p = Profile::new(name, "mqtt://a:1");
            p.username = Some("u".into());
            p.password = Some(Secret::new(pw));
            p
        };
        let mut all = Profiles {
            profiles: vec![with("a", "one"), with("b", "two")],
        };
        let file = all.seal(&mut vault).unwrap();
        let text = file.render();
        assert!(!text.contains("one") && !text.contains("two"), "{text}");
        let ids: Vec<_> = all
            .profiles
            .iter()
            .map(|p| p.password_ref.clone().unwrap())
            .collect();
        assert_ne!(ids[0], ids[1]);

        // Read back from the file's text: the passwords come from the vault.
        let mut back = Profiles::parse(&text).unwrap();
        assert_eq!(back.unseal(&vault), Unsealed::default());
        assert_eq!(back.profiles[1].password.as_ref().unwrap().expose(), "two");

        // A duplicate shares the id until sealed, then has its own; editing it leaves "a".
        let mut copy = back.profiles[0].clone();
        copy.name = "a (2)".into();
        copy.password = Some(Secret::new("three"));
        back.profiles.push(copy);
        back.seal(&mut vault).unwrap();
        assert_ne!(back.profiles[2].password_ref, back.profiles[0].password_ref);
        assert_eq!(vault.get(&ids[0]).unwrap().unwrap().expose(), "one");

        // Cleared: forgotten. Removed: forgotten.
        back.profiles[1].password = None;
        back.seal(&mut vault).unwrap();
        assert_eq!(vault.get(&ids[1]).unwrap(), None);
        assert_eq!(back.profiles[1].password_ref, None);
        let gone = back.profiles.remove(0);
        back.forget(&gone, &vault).unwrap();
        assert_eq!(vault.get(&ids[0]).unwrap(), None);

        // Exports carry neither passwords nor references. An imported profiles.json keeps the
        // references this vault knows (a restored backup) and drops the others.
        let exported = back.export_text();
        assert!(!exported.contains("password"), "{exported}");
        let (mut imported, _) = import(&file.render()).unwrap();
        Profiles::adopt(&mut imported, &vault);
        assert!(imported.iter().all(|p| p.password_ref.is_none()));
        let current = back.seal(&mut vault).unwrap().render();
        let (mut restored, _) = import(&current).unwrap();
        Profiles::adopt(&mut restored, &vault);
        let copy = restored.iter().find(|p| p.name == "a (2)").unwrap();
        assert_eq!(copy.password.as_ref().unwrap().expose(), "three");

        // A reference whose password is gone is named.
        let mut stale = Profiles::parse(&file.render()).unwrap();
        let found = stale.unseal(&vault);
        assert_eq!(found.missing.len(), 2, "{found:?}");
        assert_eq!(found.missing[0].0, "a");
    }

    /// A password the vault does not give back at load (locked, or the store away this run)
    /// keeps its reference through any later save: nothing is deleted or orphaned, and it is
    /// found again once the store answers.
    #[test]
    fn an_unreadable_password_survives_saves() {
        use crate::config::secrets::{FileWhy, Vault};
        let dir = tempfile::tempdir().unwrap();
        let mut vault = Vault::file_only(dir.path().join("secrets.json"), FileWhy::Asked);
        let mut p = Profile::new("prod", "mqtt://a:1");
        p.username = Some("u".into());
        p.password = Some(Secret::new("hunter2"));
        let mut all = Profiles {
            profiles: vec![p, Profile::new("lab", "mqtt://b:1")],
        };
        let text = all.seal(&mut vault).unwrap().render();
        let id = all.profiles[0].password_ref.clone().unwrap();

        // This run the password's store is away: an empty vault elsewhere.
        let mut away = Vault::file_only(dir.path().join("elsewhere.json"), FileWhy::Asked);
        let mut loaded = Profiles::parse(&text).unwrap();
        let found = loaded.unseal(&away);
        assert_eq!(found.missing.len(), 1);
        assert!(loaded.profiles[0].password_unread);
        // Another profile is edited and everything saved, twice.
        loaded.profiles[1].client_id = "edited".into();
        let saved = loaded.seal(&mut away).unwrap();
        loaded.seal(&mut away).unwrap();
        assert_eq!(saved.profiles[0].password_ref.as_deref(), Some(id.as_str()));
        // The store is back: the password is there, under the same reference.
        let mut again = Profiles::parse(&saved.render()).unwrap();
        assert_eq!(again.unseal(&vault), Unsealed::default());
        assert_eq!(
            again.profiles[0].password.as_ref().unwrap().expose(),
            "hunter2"
        );
    }
}
