//! The URL a Mini Program connects to, and the rules about it (MP-URL-*).

use std::net::IpAddr;

use crate::verdict::L10n;

use super::{Check, CheckStatus};
use crate::i18n::l;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// As written: `wxs`, `wss`, `ws`, `wx`.
    pub scheme: String,
    pub tls: bool,
    pub host: String,
    /// The port written in the URL, if any.
    pub explicit_port: Option<u16>,
    pub port: u16,
    /// Path and query, `/` when absent.
    pub path: String,
}

impl Target {
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// `host` or `host:port` for the Host header.
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match self.explicit_port {
            Some(p) if p != if self.tls { 443 } else { 80 } => format!("{host}:{p}"),
            _ => host,
        }
    }
}

pub use crate::config::secret::redact_url as redact;

/// Parses `wxs://host[:port]/path`, `wss://…`, `ws://…`, `wx://…`.
pub fn parse(url: &str) -> Result<Target, L10n> {
    let url = url.trim();
    let (scheme, rest) = url.split_once("://").ok_or_else(|| {
        l(
            format!("\"{url}\" is not a URL (expected wxs://host/path)"),
            format!("“{url}”不是网址（应为 wxs://主机/路径）"),
        )
    })?;
    let scheme = scheme.to_ascii_lowercase();
    let tls = match scheme.as_str() {
        "wxs" | "wss" => true,
        "ws" | "wx" => false,
        "https" | "http" | "mqtt" | "mqtts" | "tcp" | "ssl" => {
            return Err(l(
                format!(
                    "{scheme}:// is not a WebSocket URL: a Mini Program connects with wxs:// (mqtt.js) or wss:// (wx.connectSocket)"
                ),
                format!(
                    "{scheme}:// 不是 WebSocket 地址：小程序用 wxs://（mqtt.js）或 wss://（wx.connectSocket）连接"
                ),
            ));
        }
        other => {
            return Err(l(
                format!("unknown scheme {other}://"),
                format!("未知的协议 {other}://"),
            ));
        }
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], rest[i..].to_owned()),
        None => (rest, "/".to_owned()),
    };
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path
    };
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(|| {
            l(
                format!("bad IPv6 address in {url}"),
                format!("{url} 中的 IPv6 地址有误"),
            )
        })?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(
                p.parse::<u16>()
                    .map_err(|_| l(format!("bad port in {url}"), format!("{url} 中的端口有误")))?,
            ),
            None => None,
        };
        (h.to_owned(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (
                h.to_owned(),
                Some(p.parse::<u16>().map_err(|_| {
                    l(
                        format!("bad port \"{p}\" in {url}"),
                        format!("{url} 中的端口“{p}”有误"),
                    )
                })?),
            ),
            None => (authority.to_owned(), None),
        }
    };
    if host.is_empty() {
        return Err(l(
            format!("no host in {url}"),
            format!("{url} 中没有主机名"),
        ));
    }
    Ok(Target {
        tls,
        host: host.to_ascii_lowercase(),
        explicit_port: port,
        port: port.unwrap_or(if tls { 443 } else { 80 }),
        path,
        scheme,
    })
}

fn check(id: &'static str, status: CheckStatus, detail: L10n, remedy: L10n) -> Check {
    Check::new(id, status, detail, remedy)
}

pub fn scheme_check(t: &Target) -> Check {
    match t.scheme.as_str() {
        "wxs" => check(
            "MP-URL-SCHEME",
            CheckStatus::Pass,
            l(
                "wxs:// — mqtt.js's WeChat transport over TLS (wss on the wire).",
                "wxs:// —— mqtt.js 的微信传输层，走 TLS（线路上即 wss）。",
            ),
            L10n::default(),
        ),
        "wss" => check(
            "MP-URL-SCHEME",
            CheckStatus::Pass,
            l(
                "wss:// — right for wx.connectSocket. With mqtt.js write wxs:// instead: wss:// makes it pick its browser transport (\"WS is not a constructor\").",
                "wss:// —— 适用于 wx.connectSocket。使用 mqtt.js 时请写 wxs://：写 wss:// 会让它选用浏览器传输层（报错“WS is not a constructor”）。",
            ),
            L10n::default(),
        ),
        _ => check(
            "MP-URL-SCHEME",
            CheckStatus::Fail,
            l(
                format!(
                    "{}:// is plain WebSocket: phones refuse it; it works only in DevTools with \"do not verify domain names\" ticked.",
                    t.scheme
                ),
                format!(
                    "{}:// 是明文 WebSocket：真机会拒绝，只有在开发者工具勾选“不校验合法域名”时可用。",
                    t.scheme
                ),
            ),
            l(
                "Serve MQTT over WebSocket behind TLS (the mpbridge relay, or nginx with a certificate) and connect to wxs://host/mqtt.",
                "在 TLS 之后提供 MQTT over WebSocket（mpbridge 中继或带证书的 nginx），并连接 wxs://host/mqtt。",
            ),
        ),
    }
}

pub fn host_check(t: &Target) -> Check {
    let remedy = l(
        "Use a registered domain name (with ICP filing) and a certificate for it; point it at this server.",
        "使用已备案的注册域名并为其申请证书，将域名解析到此服务器。",
    );
    if t.host == "localhost" || t.host.ends_with(".localhost") {
        return check(
            "MP-URL-HOST",
            CheckStatus::Fail,
            l(
                "localhost exists only on this computer: a phone cannot reach it and WeChat refuses it. Fine for the sandbox and DevTools; production needs a registered domain.",
                "localhost 只存在于本机：手机无法访问，微信也会拒绝。沙盒和开发者工具中可用；生产环境需要注册域名。",
            ),
            remedy,
        );
    }
    match t.ip() {
        Some(ip) => {
            let lan = match ip {
                IpAddr::V4(v4) => v4.is_private() || v4.is_loopback(),
                IpAddr::V6(v6) => v6.is_loopback(),
            };
            check(
                "MP-URL-HOST",
                CheckStatus::Fail,
                l(
                    format!(
                        "{ip} is an IP address: it cannot be put on the socket whitelist{}.",
                        if lan {
                            " (LAN addresses are accepted only in development, base library ≥ 2.4.0)"
                        } else {
                            ""
                        }
                    ),
                    format!(
                        "{ip} 是 IP 地址：无法加入 socket 合法域名{}。",
                        if lan {
                            "（局域网地址仅在开发阶段、基础库 ≥ 2.4.0 时可用）"
                        } else {
                            ""
                        }
                    ),
                ),
                remedy,
            )
        }
        None => check(
            "MP-URL-HOST",
            CheckStatus::Pass,
            l(
                format!("{} is a domain name.", t.host),
                format!("{} 是域名。", t.host),
            ),
            L10n::default(),
        ),
    }
}

pub fn port_check(t: &Target) -> Check {
    if t.port == 443 && t.tls {
        return check(
            "MP-URL-PORT",
            CheckStatus::Pass,
            l("Port 443.", "443 端口。"),
            L10n::default(),
        );
    }
    check(
        "MP-URL-PORT",
        CheckStatus::Warn,
        l(
            format!(
                "Port {}: current WeChat allows any port for wss, but older Android WeChat failed on anything but 443.",
                t.port
            ),
            format!(
                "{} 端口：当前微信允许 wss 使用任意端口，但旧版安卓微信只有 443 端口可用。",
                t.port
            ),
        ),
        l(
            "Serve wss on 443 (mpbridge relay: listen.addr = \"0.0.0.0:443\"; or nginx on 443 with location /mqtt) and leave the port out of the URL.",
            "在 443 端口提供 wss（mpbridge 中继：listen.addr = \"0.0.0.0:443\"；或 nginx 监听 443 并配置 location /mqtt），URL 中不写端口。",
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = parse("wxs://mqtt.example.com/mqtt").unwrap();
        assert_eq!((t.tls, t.port, t.path.as_str()), (true, 443, "/mqtt"));
        assert_eq!(t.authority(), "mqtt.example.com");
        let t = parse("WSS://a.com:8443").unwrap();
        assert_eq!(
            (t.port, t.path.as_str(), t.explicit_port),
            (8443, "/", Some(8443))
        );
        assert_eq!(t.authority(), "a.com:8443");
        let t = parse("ws://[::1]:9/x?y=1").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("::1", 9, "/x?y=1")
        );
        assert!(!t.tls);
        assert!(
            parse("https://a.com")
                .unwrap_err()
                .en
                .contains("not a WebSocket URL")
        );
        assert!(parse("a.com/mqtt").is_err());
        assert!(parse("wss://a.com:x/").is_err());
        assert!(parse("wss:///mqtt").is_err());
        assert_eq!(redact("wxs://u:secret@a.com/mqtt"), "wxs://a.com/mqtt");
        assert_eq!(redact("wxs://a.com/p@x"), "wxs://a.com/p@x");
    }
}
