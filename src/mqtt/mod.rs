//! The console's MQTT client side: a worker task that owns a rumqttc event loop, and the
//! plain types it reports with. No egui here.

pub mod client;
pub mod diagnose;
pub mod profile;
pub mod props;
pub mod sni;
pub mod topic;
pub mod wire;
pub mod worker;

use std::time::Duration;

use std::sync::Arc;

use bytes::Bytes;

pub use props::Props;

use crate::verdict::L10n;

/// Largest packet the console accepts or sends. Well above the store's keep limit, so a big
/// message is stored truncated instead of dropping the connection (rumqttc disconnects on a
/// packet over its limit, and a retained one would then come back on every reconnect).
pub const MAX_PACKET_BYTES: usize = 64 * 1024 * 1024;

/// One message received from a broker.
#[derive(Debug, Clone)]
pub struct MqttMessage {
    pub time: chrono::DateTime<chrono::Local>,
    pub topic: String,
    pub payload: Bytes,
    pub qos: u8,
    pub retain: bool,
    /// MQTT 5 publish properties, when the message carried any.
    pub props: Option<Arc<Props>>,
}

/// A broker connection's state, published on a `watch` channel.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ConnState {
    #[default]
    Idle,
    Connecting {
        attempt: u32,
    },
    Connected {
        since: chrono::DateTime<chrono::Local>,
    },
    /// Lost or refused (in both languages); the worker retries after `retry_in`.
    Disconnected {
        error: L10n,
        retry_in: Duration,
    },
}

impl ConnState {
    pub fn is_connected(&self) -> bool {
        matches!(self, ConnState::Connected { .. })
    }
}

/// rumqttc's QoS for a number (2 and above: exactly once).
pub fn qos(q: u8) -> rumqttc::QoS {
    match q {
        0 => rumqttc::QoS::AtMostOnce,
        1 => rumqttc::QoS::AtLeastOnce,
        _ => rumqttc::QoS::ExactlyOnce,
    }
}

/// Reconnect delay: exponential from 250 ms to 10 s, with up to 25 % random jitter so that
/// many clients do not reconnect in lockstep.
pub fn backoff(attempt: u32) -> Duration {
    let base_ms = 250u64.saturating_mul(1u64 << attempt.min(6)).min(10_000);
    let jitter = rand::random_range(0..=base_ms / 4);
    Duration::from_millis(base_ms + jitter)
}

/// A TLS failure named after the certificate verdicts, pointing at the command that shows more.
pub fn tls_failure(target: &str, e: &rustls::Error) -> L10n {
    let why = crate::certs::tls_words::explain(e);
    L10n::new(
        format!(
            "{target}: the TLS handshake failed: {}; `mpbridge cert fetch HOST:PORT` shows the chain it serves",
            why.en
        ),
        format!(
            "{target}：TLS 握手失败：{}；`mpbridge cert fetch 主机:端口` 可查看服务器发送的证书链",
            why.zh
        ),
    )
}

/// The failures both protocol versions share, in both languages.
pub(crate) mod words {
    use crate::verdict::L10n;

    pub fn refused(target: &str, en: &str, zh: &str, code: &str) -> L10n {
        L10n::new(
            format!("{target} refused the connection: {en} ({code})"),
            format!("{target} 拒绝了连接：{zh}（{code}）"),
        )
    }

    pub fn nothing_listens(target: &str) -> L10n {
        L10n::new(
            format!("nothing accepts connections at {target}"),
            format!("{target} 上没有服务在接受连接"),
        )
    }

    pub fn unresolvable(target: &str, io: &std::io::Error) -> L10n {
        L10n::new(
            format!("cannot resolve the host of {target} ({io})"),
            format!("无法解析 {target} 的主机名"),
        )
    }

    pub fn timed_out(target: &str) -> L10n {
        L10n::new(
            format!("{target} did not answer in time"),
            format!("{target} 未能及时应答"),
        )
    }

    pub fn other(target: &str, e: &(dyn std::error::Error + 'static)) -> L10n {
        let d = crate::certs::tls_words::describe(e);
        L10n::new(format!("{target}: {}", d.en), format!("{target}：{}", d.zh))
    }

    pub fn is_lookup(io: &std::io::Error) -> bool {
        let s = io.to_string();
        s.contains("lookup") || s.contains("resolve")
    }
}

/// A connection failure in plain words, in both languages: CONNACK codes decoded, the host
/// named, TLS failures named after the certificate verdicts.
pub fn describe_error(target: &str, e: &rumqttc::ConnectionError) -> L10n {
    use rumqttc::{ConnectReturnCode as C, ConnectionError as E};
    use std::io::ErrorKind;
    if let Some(t) = crate::certs::tls_words::find_rustls(e) {
        return tls_failure(target, t);
    }
    match e {
        E::ConnectionRefused(code) => {
            let (n, en, zh) = match code {
                C::Success => (0, "accepted", "已接受"),
                C::RefusedProtocolVersion => {
                    (1, "unacceptable protocol version", "不支持该协议版本")
                }
                C::BadClientId => (2, "client id rejected", "客户端 ID 被拒绝"),
                C::ServiceUnavailable => (3, "server unavailable", "服务不可用"),
                C::BadUserNamePassword => (4, "bad user name or password", "用户名或密码错误"),
                C::NotAuthorized => (5, "not authorized", "未授权"),
            };
            words::refused(target, en, zh, &format!("CONNACK {n}"))
        }
        E::Io(io) if io.kind() == ErrorKind::ConnectionRefused => words::nothing_listens(target),
        E::Io(io) if words::is_lookup(io) => words::unresolvable(target, io),
        E::Io(io) if io.kind() == ErrorKind::TimedOut => words::timed_out(target),
        E::NetworkTimeout => words::timed_out(target),
        other => words::other(target, other),
    }
}

/// `mqtt://host:port`, `tcp://host:port` or `host:port` (port 1883 when left out).
pub fn broker_target(url: &str) -> Result<(String, u16), String> {
    let rest = url
        .trim()
        .strip_prefix("mqtt://")
        .or_else(|| url.trim().strip_prefix("tcp://"))
        .unwrap_or(url.trim());
    if url.contains("://") && !(url.starts_with("mqtt://") || url.starts_with("tcp://")) {
        return Err(format!(
            "{url}: the simulator speaks plain MQTT over TCP like PubSubClient (mqtt://HOST:PORT)"
        ));
    }
    let rest = rest.trim_end_matches('/');
    match rest.rsplit_once(':') {
        Some((h, p)) => Ok((
            h.trim_start_matches('[').trim_end_matches(']').to_owned(),
            p.parse().map_err(|_| format!("{url}: bad port {p}"))?,
        )),
        None if !rest.is_empty() => Ok((rest.to_owned(), 1883)),
        None => Err(format!("{url}: no host")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(
            backoff(0) >= Duration::from_millis(250) && backoff(0) <= Duration::from_millis(313)
        );
        assert!(backoff(3) >= Duration::from_millis(2000));
        for a in [6, 7, 20, u32::MAX] {
            let d = backoff(a);
            assert!(
                d >= Duration::from_secs(10) && d <= Duration::from_millis(12_500),
                "{d:?}"
            );
        }
    }

    /// Connection failures a user sees in the Broker panel read as Chinese in Chinese: the
    /// I/O, TLS and MQTT layers' own English stays out (or is quoted as the original).
    #[test]
    fn connection_failures_speak_chinese() {
        use crate::i18n::english_in_chinese;
        use std::io::{Error as Io, ErrorKind as K};
        let target = "mqtts://broker.lab:8883";
        let mut said = Vec::new();
        for kind in [
            K::ConnectionRefused,
            K::ConnectionReset,
            K::ConnectionAborted,
            K::TimedOut,
            K::UnexpectedEof,
            K::BrokenPipe,
            K::NotFound,
            K::PermissionDenied,
            K::AddrInUse,
            K::HostUnreachable,
            K::NetworkUnreachable,
            K::Other,
        ] {
            let e = rumqttc::ConnectionError::Io(Io::new(kind, "the thing failed badly"));
            said.push(super::describe_error(target, &e));
            said.push(crate::i18n::io_error(&Io::from(kind)));
        }
        said.push(super::describe_error(
            target,
            &rumqttc::ConnectionError::NetworkTimeout,
        ));
        said.push(super::describe_error(
            target,
            &rumqttc::ConnectionError::RequestsDone,
        ));
        for tls in [
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
            rustls::Error::InvalidCertificate(rustls::CertificateError::Expired),
            rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName),
            rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure),
            rustls::Error::AlertReceived(rustls::AlertDescription::ProtocolVersion),
            rustls::Error::NoCertificatesPresented,
            rustls::Error::General("something went quite wrong".into()),
        ] {
            let io = Io::new(K::InvalidData, tls);
            said.push(super::describe_error(
                target,
                &rumqttc::ConnectionError::Io(io),
            ));
        }
        for l in said {
            assert!(!l.en.is_empty() && !l.zh.is_empty());
            assert_eq!(english_in_chinese(&l.zh), None, "{}", l.zh);
        }
    }
}
