//! `relay.toml`: raw (serde, unknown keys refused) → validated [`RelayConfig`], with every
//! error naming the key and the line. Certificates are loaded during validation, so a config
//! that validates can be served.
//!
//! ```toml
//! [listen]
//! addr = "0.0.0.0:443"
//! cert = "/etc/mpbridge/fullchain.pem"   # leaf followed by intermediates
//! key  = "/etc/mpbridge/privkey.pem"
//! healthz = true                         # GET /healthz → 200 ok (default true)
//! metrics = false                        # GET /metrics → Prometheus text (default false)
//! verbose_errors = false                 # tell refused clients the details (default false)
//!
//! [[listen.sni]]                         # more certificates, chosen by SNI name
//! name = "mqtt2.example.com"
//! cert = "/etc/mpbridge/mqtt2.pem"
//! key  = "/etc/mpbridge/mqtt2.key"
//!
//! [[route]]
//! path = "/mqtt"
//! upstream = ["ws://10.0.0.11:8083/mqtt", "ws://10.0.0.12:8083/mqtt"]  # or "tcp://127.0.0.1:1883"
//! require_subprotocol = true
//! allowed_origins = []                   # optional: only these Origin values (absent Origin allowed)
//! allowed_appids = []                    # optional: only Mini Programs with these appids (Referer)
//!
//! [limits]
//! max_connections = 50000
//! max_connections_per_ip = 0            # 0: no cap per client address (the default)
//! handshake_timeout_secs = 10
//! idle_timeout_secs = 300
//! max_message_bytes = 1048576
//! upstream_connect_timeout_secs = 5
//! drain_secs = 10
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::tls::{self, TlsError};
use crate::config::store::ParseError;
use crate::i18n::L10n;

/// Where a route sends its connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    /// A broker's WebSocket listener: frames are forwarded as they are.
    Ws {
        host: String,
        port: u16,
        path: String,
    },
    /// A broker's MQTT TCP listener: binary frames ⇄ byte stream.
    Tcp { host: String, port: u16 },
}

impl Upstream {
    pub fn parse(s: &str) -> Result<Self, String> {
        let (scheme, rest) = s.split_once("://").ok_or_else(|| {
            format!("\"{s}\" needs a scheme: ws://host:port/path or tcp://host:port")
        })?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (host, port) = authority
            .rsplit_once(':')
            .filter(|(h, _)| !h.is_empty())
            .ok_or_else(|| format!("\"{s}\" needs host:port"))?;
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("\"{s}\": port must be 1–65535"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        match scheme {
            "ws" => Ok(Upstream::Ws {
                host,
                port,
                path: if path.is_empty() {
                    "/".to_owned()
                } else {
                    path.to_owned()
                },
            }),
            "tcp" | "mqtt" if path.is_empty() || path == "/" => Ok(Upstream::Tcp { host, port }),
            "tcp" | "mqtt" => Err(format!("\"{s}\": a tcp:// upstream has no path")),
            "wss" | "mqtts" | "ssl" | "tls" => Err(format!(
                "\"{s}\": upstreams are plain (ws:// or tcp://) on a trusted network; TLS is terminated by the relay"
            )),
            other => Err(format!(
                "\"{s}\": unknown scheme `{other}`; use ws:// or tcp://"
            )),
        }
    }

    pub fn authority(&self) -> String {
        match self {
            Upstream::Ws { host, port, .. } | Upstream::Tcp { host, port } => {
                if host.contains(':') {
                    format!("[{host}]:{port}")
                } else {
                    format!("{host}:{port}")
                }
            }
        }
    }
}

impl std::fmt::Display for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Upstream::Ws { path, .. } => write!(f, "ws://{}{path}", self.authority()),
            Upstream::Tcp { .. } => write!(f, "tcp://{}", self.authority()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub path: String,
    pub upstreams: Vec<Upstream>,
    pub require_subprotocol: bool,
    pub allowed_origins: Vec<String>,
    pub allowed_appids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_message_bytes: usize,
    pub upstream_connect_timeout: Duration,
    pub drain: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 50_000,
            // No cap per address by default: nginx has none, and a carrier-grade NAT (common
            // on Chinese mobile networks) puts thousands of Mini Programs behind one address.
            // `max_connections` and the handshake timeout bound what one address can take.
            max_connections_per_ip: 0,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            max_message_bytes: 1024 * 1024,
            upstream_connect_timeout: Duration::from_secs(5),
            drain: Duration::from_secs(10),
        }
    }
}

/// The certificate files of the listener (and of each SNI name), as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub sni: Vec<(String, PathBuf, PathBuf)>,
}

/// Everything `relay.toml` says, typed: what the console's Relay form edits and the backend
/// applies. TOML is only the file's form of it ([`RelaySettings::render_toml`],
/// [`RelayConfig::parse`]). [`RelaySettings::into_config`] loads the certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelaySettings {
    pub listen: SocketAddr,
    pub certs: CertFiles,
    pub routes: Vec<Route>,
    pub limits: Limits,
    pub healthz: bool,
    pub metrics: bool,
    /// Tell clients why they were refused in full (served paths, upstream addresses and
    /// errors), as the log always does. Off by default: that is the inside of a deployment.
    /// The sandbox turns it on for development.
    pub verbose_errors: bool,
}

/// A validated relay configuration, ready to serve: the settings and their loaded
/// certificates. Reads as its [`RelaySettings`] (`cfg.limits`, `cfg.routes`).
#[derive(Clone)]
pub struct RelayConfig {
    pub settings: RelaySettings,
    pub tls: Arc<rustls::ServerConfig>,
}

impl std::ops::Deref for RelayConfig {
    type Target = RelaySettings;
    fn deref(&self) -> &RelaySettings {
        &self.settings
    }
}

/// Changing the settings of a loaded configuration keeps its certificates as loaded; a new
/// certificate goes through [`RelaySettings::into_config`].
impl std::ops::DerefMut for RelayConfig {
    fn deref_mut(&mut self) -> &mut RelaySettings {
        &mut self.settings
    }
}

impl std::fmt::Debug for RelayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayConfig")
            .field("listen", &self.listen)
            .field("certs", &self.certs)
            .field("routes", &self.routes)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl RelaySettings {
    /// Checks what the file's parser checks (routes present, absolute and distinct paths, an
    /// upstream each) and loads the certificates.
    pub fn into_config(self) -> Result<RelayConfig, L10n> {
        if self.routes.is_empty() {
            return Err(L10n::new(
                "no route: add one, e.g. /mqtt to tcp://127.0.0.1:1883",
                "没有路由：请添加一条，例如 /mqtt 指向 tcp://127.0.0.1:1883",
            ));
        }
        for (i, r) in self.routes.iter().enumerate() {
            let p = &r.path;
            if !p.starts_with('/') || p.contains('?') || p.contains(' ') {
                return Err(L10n::new(
                    format!("route path \"{p}\": expected an absolute path such as /mqtt"),
                    format!("路由路径“{p}”：应为 /mqtt 这样的绝对路径"),
                ));
            }
            if self.routes[..i].iter().any(|x| x.path == *p) {
                return Err(L10n::new(
                    format!("route {p} is defined twice"),
                    format!("路由 {p} 定义了两次"),
                ));
            }
            if r.upstreams.is_empty() {
                return Err(L10n::new(
                    format!("route {p} has no upstream; list at least one broker"),
                    format!("路由 {p} 没有上游；请至少列出一个代理"),
                ));
            }
        }
        let load = |c: &Path, k: &Path| {
            tls::load_certified_key(c, k)
                .map_err(|e| L10n::new(e.to_string(), format!("证书或私钥无法使用（“{e}”）")))
        };
        let default_key = load(&self.certs.cert, &self.certs.key)?;
        let mut sni_keys = Vec::new();
        for (name, c, k) in &self.certs.sni {
            sni_keys.push((name.clone(), load(c, k)?));
        }
        let tls = tls::server_config(default_key, sni_keys)
            .map_err(|e| L10n::new(e.to_string(), format!("TLS 配置无法使用（“{e}”）")))?;
        Ok(RelayConfig {
            settings: self,
            tls,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: {error}")]
    Parse { file: String, error: ParseError },
    #[error("cannot read {file}: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Spanned<RawListen>,
    #[serde(default)]
    route: Vec<Spanned<RawRoute>>,
    #[serde(default)]
    limits: Option<Spanned<RawLimits>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListen {
    addr: Spanned<String>,
    cert: Spanned<String>,
    key: Spanned<String>,
    #[serde(default = "yes")]
    healthz: bool,
    #[serde(default)]
    metrics: bool,
    #[serde(default)]
    verbose_errors: bool,
    #[serde(default)]
    sni: Vec<Spanned<RawSni>>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSni {
    name: Spanned<String>,
    cert: Spanned<String>,
    key: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    path: Spanned<String>,
    upstream: Spanned<Vec<Spanned<String>>>,
    #[serde(default = "yes")]
    require_subprotocol: bool,
    #[serde(default)]
    allowed_origins: Vec<String>,
    #[serde(default)]
    allowed_appids: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_connections: Option<Spanned<i64>>,
    max_connections_per_ip: Option<Spanned<i64>>,
    handshake_timeout_secs: Option<Spanned<i64>>,
    idle_timeout_secs: Option<Spanned<i64>>,
    max_message_bytes: Option<Spanned<i64>>,
    upstream_connect_timeout_secs: Option<Spanned<i64>>,
    drain_secs: Option<Spanned<i64>>,
}

fn positive(
    text: &str,
    v: Option<Spanned<i64>>,
    key: &str,
    min: i64,
    max: i64,
) -> Result<Option<u64>, ParseError> {
    let Some(v) = v else { return Ok(None) };
    let n = *v.get_ref();
    if n < min || n > max {
        return Err(ParseError::at(
            text,
            Some(v.span()),
            format!("`{key}` is {n}; expected {min}–{max}"),
        ));
    }
    Ok(Some(n as u64))
}

impl RelayConfig {
    /// Reads and validates a config file. Relative certificate paths are relative to it.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        if meta.len() > 4 * 1024 * 1024 {
            return Err(ConfigError::Parse {
                file,
                error: ParseError::at(
                    "",
                    None,
                    "the file is too large to be a relay configuration",
                ),
            });
        }
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base).map_err(|error| ConfigError::Parse { file, error })
    }

    /// Parses TOML text; certificate paths are resolved against `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Self, ParseError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ParseError::from_toml(text, &e))?;
        let listen_span = raw.listen.span();
        let listen = raw.listen.into_inner();
        let addr: SocketAddr = listen.addr.get_ref().parse().map_err(|_| {
            ParseError::at(
                text,
                Some(listen.addr.span()),
                format!(
                    "`listen.addr` is \"{}\"; expected an IP address and port such as 0.0.0.0:443",
                    listen.addr.get_ref()
                ),
            )
        })?;
        let resolve = |p: &Spanned<String>| -> PathBuf {
            let p = PathBuf::from(p.get_ref());
            if p.is_absolute() { p } else { base.join(p) }
        };
        let tls_err = |span: std::ops::Range<usize>, e: TlsError| {
            ParseError::at(text, Some(span), e.to_string())
        };
        let cert = resolve(&listen.cert);
        let key = resolve(&listen.key);
        let default_key =
            tls::load_certified_key(&cert, &key).map_err(|e| tls_err(listen.cert.span(), e))?;
        let mut sni = Vec::new();
        let mut sni_keys = Vec::new();
        for s in listen.sni {
            let span = s.span();
            let s = s.into_inner();
            let name = s.name.get_ref().trim().to_ascii_lowercase();
            if name.is_empty() || name.contains(' ') {
                return Err(ParseError::at(
                    text,
                    Some(s.name.span()),
                    "`sni.name` must be a host name",
                ));
            }
            let (c, k) = (resolve(&s.cert), resolve(&s.key));
            let ck = tls::load_certified_key(&c, &k).map_err(|e| tls_err(span.clone(), e))?;
            sni_keys.push((name.clone(), ck));
            sni.push((name, c, k));
        }
        let tls = tls::server_config(default_key, sni_keys)
            .map_err(|e| tls_err(listen_span.clone(), e))?;

        if raw.route.is_empty() {
            return Err(ParseError::at(
                text,
                None,
                "no [[route]]: add one, e.g. path = \"/mqtt\" and upstream = [\"tcp://127.0.0.1:1883\"]",
            ));
        }
        let mut routes: Vec<Route> = Vec::new();
        for r in raw.route {
            let r = r.into_inner();
            let path = r.path.get_ref().clone();
            if !path.starts_with('/') || path.contains('?') || path.contains(' ') {
                return Err(ParseError::at(
                    text,
                    Some(r.path.span()),
                    format!("`route.path` is \"{path}\"; expected an absolute path such as /mqtt"),
                ));
            }
            if routes.iter().any(|x| x.path == path) {
                return Err(ParseError::at(
                    text,
                    Some(r.path.span()),
                    format!("route `{path}` is defined twice"),
                ));
            }
            let up_span = r.upstream.span();
            let mut upstreams = Vec::new();
            for u in r.upstream.into_inner() {
                upstreams.push(Upstream::parse(u.get_ref()).map_err(|e| {
                    ParseError::at(text, Some(u.span()), format!("`route.upstream` {e}"))
                })?);
            }
            if upstreams.is_empty() {
                return Err(ParseError::at(
                    text,
                    Some(up_span),
                    "`route.upstream` is empty; list at least one broker",
                ));
            }
            routes.push(Route {
                path,
                upstreams,
                require_subprotocol: r.require_subprotocol,
                allowed_origins: r.allowed_origins,
                allowed_appids: r.allowed_appids,
            });
        }

        let mut limits = Limits::default();
        if let Some(l) = raw.limits {
            let l = l.into_inner();
            let secs = Duration::from_secs;
            if let Some(v) = positive(text, l.max_connections, "max_connections", 1, 10_000_000)? {
                limits.max_connections = v as usize;
            }
            if let Some(v) = positive(
                text,
                l.max_connections_per_ip,
                "max_connections_per_ip",
                0,
                10_000_000,
            )? {
                limits.max_connections_per_ip = v as usize;
            }
            if let Some(v) = positive(
                text,
                l.handshake_timeout_secs,
                "handshake_timeout_secs",
                1,
                300,
            )? {
                limits.handshake_timeout = secs(v);
            }
            if let Some(v) = positive(text, l.idle_timeout_secs, "idle_timeout_secs", 1, 86_400)? {
                limits.idle_timeout = secs(v);
            }
            if let Some(v) = positive(
                text,
                l.max_message_bytes,
                "max_message_bytes",
                128,
                256 * 1024 * 1024,
            )? {
                limits.max_message_bytes = v as usize;
            }
            if let Some(v) = positive(
                text,
                l.upstream_connect_timeout_secs,
                "upstream_connect_timeout_secs",
                1,
                120,
            )? {
                limits.upstream_connect_timeout = secs(v);
            }
            if let Some(v) = positive(text, l.drain_secs, "drain_secs", 0, 3600)? {
                limits.drain = secs(v);
            }
        }
        Ok(Self {
            settings: RelaySettings {
                listen: addr,
                certs: CertFiles { cert, key, sni },
                routes,
                limits,
                healthz: listen.healthz,
                metrics: listen.metrics,
                verbose_errors: listen.verbose_errors,
            },
            tls,
        })
    }

    /// A config built in code (the sandbox): one route, default limits.
    pub fn simple(
        listen: SocketAddr,
        cert: &Path,
        key: &Path,
        path: &str,
        upstream: Upstream,
    ) -> Result<Self, TlsError> {
        let ck = tls::load_certified_key(cert, key)?;
        Ok(Self {
            settings: RelaySettings {
                listen,
                certs: CertFiles {
                    cert: cert.to_path_buf(),
                    key: key.to_path_buf(),
                    sni: Vec::new(),
                },
                routes: vec![Route {
                    path: path.to_owned(),
                    upstreams: vec![upstream],
                    require_subprotocol: true,
                    allowed_origins: Vec::new(),
                    allowed_appids: Vec::new(),
                }],
                limits: Limits::default(),
                healthz: true,
                metrics: true,
                verbose_errors: true,
            },
            tls: tls::server_config(ck, Vec::new())?,
        })
    }
}

impl RelaySettings {
    /// The TOML that [`RelayConfig::parse`] reads back into this configuration.
    pub fn render_toml(&self) -> String {
        use std::fmt::Write;
        let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
        let mut out = String::from("[listen]\n");
        let _ = writeln!(out, "addr = {}", q(&self.listen.to_string()));
        let _ = writeln!(out, "cert = {}", q(&self.certs.cert.display().to_string()));
        let _ = writeln!(out, "key = {}", q(&self.certs.key.display().to_string()));
        let _ = writeln!(
            out,
            "healthz = {}\nmetrics = {}",
            self.healthz, self.metrics
        );
        if self.verbose_errors {
            out.push_str("verbose_errors = true\n");
        }
        for (name, cert, key) in &self.certs.sni {
            let _ = writeln!(
                out,
                "\n[[listen.sni]]\nname = {}\ncert = {}\nkey = {}",
                q(name),
                q(&cert.display().to_string()),
                q(&key.display().to_string())
            );
        }
        for r in &self.routes {
            let ups: Vec<String> = r.upstreams.iter().map(|u| q(&u.to_string())).collect();
            let _ = writeln!(
                out,
                "\n[[route]]\npath = {}\nupstream = [{}]\nrequire_subprotocol = {}",
                q(&r.path),
                ups.join(", "),
                r.require_subprotocol
            );
            if !r.allowed_origins.is_empty() {
                let v: Vec<String> = r.allowed_origins.iter().map(|s| q(s)).collect();
                let _ = writeln!(out, "allowed_origins = [{}]", v.join(", "));
            }
            if !r.allowed_appids.is_empty() {
                let v: Vec<String> = r.allowed_appids.iter().map(|s| q(s)).collect();
                let _ = writeln!(out, "allowed_appids = [{}]", v.join(", "));
            }
        }
        let l = &self.limits;
        let _ = write!(
            out,
            "\n[limits]\nmax_connections = {}\nmax_connections_per_ip = {}\nhandshake_timeout_secs = {}\nidle_timeout_secs = {}\nmax_message_bytes = {}\nupstream_connect_timeout_secs = {}\ndrain_secs = {}\n",
            l.max_connections,
            l.max_connections_per_ip,
            l.handshake_timeout.as_secs(),
            l.idle_timeout.as_secs(),
            l.max_message_bytes,
            l.upstream_connect_timeout.as_secs(),
            l.drain.as_secs()
        );
        out
    }

    pub fn route(&self, path: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.path == path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let ca = crate::sandbox::devca::ensure(dir.path()).unwrap();
        let mut cfg = RelayConfig::simple(
            "127.0.0.1:8443".parse().unwrap(),
            &ca.leaf_chain,
            &ca.leaf_key,
            "/mqtt",
            Upstream::parse("ws://127.0.0.1:8083/mqtt").unwrap(),
        )
        .unwrap();
        cfg.routes[0].allowed_appids = vec!["wx1".into()];
        cfg.limits.idle_timeout = Duration::from_secs(77);
        let text = cfg.render_toml();
        let back = RelayConfig::parse(&text, dir.path()).unwrap();
        assert_eq!(back.routes, cfg.routes);
        assert_eq!(back.limits, cfg.limits);
        assert_eq!(back.listen, cfg.listen);
        assert_eq!(back.certs, cfg.certs);
        assert_eq!(back.render_toml(), text);
        let brief = super::super::tls::cert_brief(&ca.leaf_chain).unwrap();
        assert_eq!(brief.subject, "localhost");
        assert!(
            brief.names.contains(&"127.0.0.1".to_owned())
                && brief.names.contains(&"::1".to_owned()),
            "{brief:?}"
        );
        assert_eq!(brief.chain_len, 1, "the leaf alone: the root is not sent");
        assert!(brief.days_left > 390);
    }

    #[test]
    fn upstream_urls() {
        assert_eq!(
            Upstream::parse("ws://10.0.0.11:8083/mqtt").unwrap(),
            Upstream::Ws {
                host: "10.0.0.11".into(),
                port: 8083,
                path: "/mqtt".into()
            }
        );
        assert_eq!(
            Upstream::parse("tcp://127.0.0.1:1883").unwrap().to_string(),
            "tcp://127.0.0.1:1883"
        );
        assert_eq!(
            Upstream::parse("tcp://[::1]:1883").unwrap().authority(),
            "[::1]:1883"
        );
        assert!(
            Upstream::parse("wss://x:1/mqtt")
                .unwrap_err()
                .contains("TLS is terminated")
        );
        assert!(
            Upstream::parse("http://x:1/")
                .unwrap_err()
                .contains("unknown scheme")
        );
        assert!(
            Upstream::parse("tcp://x")
                .unwrap_err()
                .contains("host:port")
        );
        assert!(Upstream::parse("tcp://x:0").unwrap_err().contains("port"));
        assert!(Upstream::parse("x:1").unwrap_err().contains("scheme"));
    }
}
