//! The HTTP side of the relay: read a request head, decide what it gets (RFC 6455 upgrade,
//! health check, metrics, or a refusal with a status and one sentence), and write responses.
//! Pure functions over bytes, so they can be fuzzed and unit-tested.

use base64::Engine as _;
use sha1::{Digest, Sha1};

/// Largest request head accepted (nginx's default `large_client_header_buffers` is 8 KB × 4).
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;

/// Subprotocols the relay echoes, in no particular order: the client's order decides.
pub const SUBPROTOCOLS: [&str; 2] = ["mqtt", "mqttv3.1"];

/// What the relay learned from a request head.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    pub method: String,
    /// Path without the query string.
    pub path: String,
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    /// Bytes after the head (a client that did not wait for 101).
    pub head_len: usize,
}

impl Request {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every comma-separated token of every header with this name.
    pub fn tokens(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect()
    }

    fn has_token(&self, name: &str, token: &str) -> bool {
        self.tokens(name)
            .iter()
            .any(|t| t.eq_ignore_ascii_case(token))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("the request head is larger than {MAX_HEAD_BYTES} bytes")]
    TooLarge,
    #[error("not an HTTP/1.1 request: {0}")]
    Malformed(String),
}

/// Parses a complete request head from `buf`. `Ok(None)`: need more bytes.
pub fn parse_head(buf: &[u8]) -> Result<Option<Request>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Partial) => {
            if buf.len() >= MAX_HEAD_BYTES {
                Err(HeadError::TooLarge)
            } else {
                Ok(None)
            }
        }
        Ok(httparse::Status::Complete(n)) => {
            let target = req.path.unwrap_or("/");
            let (path, query) = match target.split_once('?') {
                Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
                None => (target.to_owned(), None),
            };
            Ok(Some(Request {
                method: req.method.unwrap_or("").to_owned(),
                path,
                query,
                headers: req
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_owned(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect(),
                head_len: n,
            }))
        }
        Err(e) => Err(HeadError::Malformed(e.to_string())),
    }
}

/// `Sec-WebSocket-Accept` for a key (RFC 6455 §4.2.2).
pub fn accept_key(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.trim().as_bytes());
    h.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// Why an upgrade request is refused (the status and a one-line body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub kind: super::RejectKind,
    pub status: u16,
    pub reason: String,
}

impl Refusal {
    pub fn new(kind: super::RejectKind, status: u16, reason: impl Into<String>) -> Self {
        Self {
            kind,
            status,
            reason: reason.into(),
        }
    }
}

/// A valid upgrade: the key to answer and the subprotocol to echo (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgrade {
    pub key: String,
    pub subprotocol: Option<String>,
    /// Everything the client offered, for the connection record.
    pub offered: Vec<String>,
}

/// Checks an RFC 6455 opening handshake on a configured path.
pub fn check_upgrade(req: &Request, require_subprotocol: bool) -> Result<Upgrade, Refusal> {
    let is_upgrade =
        req.has_token("Upgrade", "websocket") && req.has_token("Connection", "upgrade");
    if !is_upgrade {
        return Err(Refusal::new(
            super::RejectKind::NotWebSocket,
            426,
            format!(
                "{} is a WebSocket endpoint: send GET with Upgrade: websocket and Connection: Upgrade (an nginx in front needs proxy_http_version 1.1 and both headers)",
                req.path
            ),
        ));
    }
    if req.method != "GET" {
        return Err(Refusal::new(
            super::RejectKind::NotWebSocket,
            405,
            format!("a WebSocket upgrade must be GET, not {}", req.method),
        ));
    }
    if req.header("Sec-WebSocket-Version").map(str::trim) != Some("13") {
        return Err(Refusal::new(
            super::RejectKind::NotWebSocket,
            400,
            "Sec-WebSocket-Version must be 13 (RFC 6455)",
        ));
    }
    let key = req.header("Sec-WebSocket-Key").map(str::trim).unwrap_or("");
    let key_ok = base64::engine::general_purpose::STANDARD
        .decode(key)
        .is_ok_and(|k| k.len() == 16);
    if !key_ok {
        return Err(Refusal::new(
            super::RejectKind::NotWebSocket,
            400,
            "Sec-WebSocket-Key must be 16 random bytes in base64",
        ));
    }
    let offered = req.tokens("Sec-WebSocket-Protocol");
    let subprotocol = offered
        .iter()
        .find(|p| SUBPROTOCOLS.contains(&p.as_str()))
        .cloned();
    if subprotocol.is_none() {
        if !offered.is_empty() {
            return Err(Refusal::new(
                super::RejectKind::Subprotocol,
                400,
                format!(
                    "none of the offered subprotocols ({}) is supported; offer `mqtt`",
                    offered.join(", ")
                ),
            ));
        }
        if require_subprotocol {
            return Err(Refusal::new(
                super::RejectKind::Subprotocol,
                400,
                "no Sec-WebSocket-Protocol offered; MQTT over WebSocket needs `mqtt` (mqtt.js sends it; a raw wx.connectSocket needs protocols: ['mqtt'])",
            ));
        }
    }
    Ok(Upgrade {
        key: key.to_owned(),
        subprotocol,
        offered,
    })
}

/// A WeChat Mini Program's identity from its fixed Referer
/// `https://servicewechat.com/{appid}/{version}/page-frame.html`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MiniProgram {
    pub appid: String,
    /// `0`: development, trial or review build; `devtools`: the IDE; otherwise the release.
    pub version: String,
}

pub fn mini_program(referer: &str) -> Option<MiniProgram> {
    let rest = referer
        .strip_prefix("https://servicewechat.com/")
        .or_else(|| referer.strip_prefix("http://servicewechat.com/"))?;
    let mut parts = rest.split('/');
    let appid = parts.next()?;
    let version = parts.next()?;
    let valid = appid.starts_with("wx")
        && appid.len() <= 32
        && appid.chars().all(|c| c.is_ascii_alphanumeric())
        && !version.is_empty()
        && version.len() <= 32;
    valid.then(|| MiniProgram {
        appid: appid.to_owned(),
        version: version.to_owned(),
    })
}

/// The `101 Switching Protocols` response.
pub fn switching_protocols(up: &Upgrade) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
        accept_key(&up.key)
    );
    if let Some(p) = &up.subprotocol {
        r.push_str(&format!("Sec-WebSocket-Protocol: {p}\r\n"));
    }
    r.push_str("\r\n");
    r.into_bytes()
}

/// What a 503 refusal asks the client to wait, in seconds.
pub const RETRY_AFTER_SECS: u32 = 5;

/// A plain response with a one-line text body; the connection closes after it.
pub fn plain_response(status: u16, body: &str, content_type: &str) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let body = if content_type.starts_with("text/plain") && !body.ends_with('\n') {
        format!("{body}\n")
    } else {
        body.to_owned()
    };
    let mut r = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if status == 426 {
        r.push_str("Upgrade: websocket\r\n");
    }
    if status == 503 {
        // A refusal at a limit: a client that honours it comes back later, not at once.
        r.push_str(&format!("Retry-After: {RETRY_AFTER_SECS}\r\n"));
    }
    r.push_str("\r\n");
    r.push_str(&body);
    r.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(extra: &str) -> Request {
        let text = format!(
            "GET /mqtt HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
        );
        parse_head(text.as_bytes()).unwrap().unwrap()
    }

    #[test]
    fn rfc6455_example_accept() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn echoes_first_supported_offer() {
        let up = check_upgrade(
            &req("Sec-WebSocket-Protocol: foo, mqttv3.1, mqtt\r\n"),
            true,
        )
        .unwrap();
        assert_eq!(up.subprotocol.as_deref(), Some("mqttv3.1"));
        let resp = String::from_utf8(switching_protocols(&up)).unwrap();
        assert!(resp.contains("Sec-WebSocket-Protocol: mqttv3.1\r\n"));
        assert!(resp.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    }

    #[test]
    fn missing_subprotocol_policy() {
        assert_eq!(check_upgrade(&req(""), true).unwrap_err().status, 400);
        let up = check_upgrade(&req(""), false).unwrap();
        assert_eq!(up.subprotocol, None);
        assert!(
            !String::from_utf8(switching_protocols(&up))
                .unwrap()
                .contains("Sec-WebSocket-Protocol")
        );
        assert_eq!(
            check_upgrade(&req("Sec-WebSocket-Protocol: chat\r\n"), false)
                .unwrap_err()
                .status,
            400
        );
    }

    #[test]
    fn not_an_upgrade_is_426_with_a_sentence() {
        let r = parse_head(b"GET /mqtt HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap()
            .unwrap();
        let e = check_upgrade(&r, true).unwrap_err();
        assert_eq!(e.status, 426);
        let resp = String::from_utf8(plain_response(e.status, &e.reason, "text/plain")).unwrap();
        assert!(
            resp.starts_with("HTTP/1.1 426 Upgrade Required\r\n"),
            "{resp}"
        );
        assert!(resp.contains("Upgrade: websocket"));
    }

    #[test]
    fn bad_version_and_key() {
        let r = req("")
            .headers
            .into_iter()
            .filter(|(k, _)| k != "Sec-WebSocket-Version");
        let r = Request {
            headers: r.collect(),
            method: "GET".into(),
            path: "/mqtt".into(),
            ..Default::default()
        };
        assert_eq!(check_upgrade(&r, false).unwrap_err().status, 400);
        let text = "GET /mqtt HTTP/1.1\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short\r\n\r\n";
        let r = parse_head(text.as_bytes()).unwrap().unwrap();
        assert!(
            check_upgrade(&r, false)
                .unwrap_err()
                .reason
                .contains("16 random bytes")
        );
    }

    #[test]
    fn partial_and_oversize_heads() {
        assert_eq!(parse_head(b"GET /mqtt HTTP/1.1\r\nHost: x\r\n"), Ok(None));
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(MAX_HEAD_BYTES));
        assert_eq!(parse_head(big.as_bytes()), Err(HeadError::TooLarge));
        assert!(matches!(
            parse_head(b"\x16\x03\x01\x00garbage\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
    }

    #[test]
    fn referer_to_mini_program() {
        assert_eq!(
            mini_program("https://servicewechat.com/wx1234567890abcdef/12/page-frame.html"),
            Some(MiniProgram {
                appid: "wx1234567890abcdef".into(),
                version: "12".into()
            })
        );
        assert_eq!(
            mini_program("https://servicewechat.com/wxabc/devtools/page-frame.html")
                .unwrap()
                .version,
            "devtools"
        );
        assert_eq!(
            mini_program("https://example.com/wx1/1/page-frame.html"),
            None
        );
        assert_eq!(
            mini_program("https://servicewechat.com/evil<script>/1/"),
            None
        );
    }
}
