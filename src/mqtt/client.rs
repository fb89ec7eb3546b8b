//! One face for rumqttc's two clients: MQTT 3.1.1 (`rumqttc`) and MQTT 5 (`rumqttc::v5`).
//! The worker polls a [`Session`] and publishes through a [`Client`]; neither cares which
//! protocol is underneath.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rumqttc::QoS;
use rumqttc::v5::mqttbytes::QoS as QoS5;
use tokio_util::sync::CancellationToken;

use super::{MqttMessage, Props};
use crate::verdict::L10n;

/// rumqttc's options in the protocol the profile asks for.
#[derive(Clone)]
pub enum Mqtt {
    V4(Box<rumqttc::MqttOptions>),
    V5(Box<rumqttc::v5::MqttOptions>),
}

/// Ready-made options for one connection.
#[derive(Clone)]
pub struct BrokerOptions {
    pub mqtt: Mqtt,
    /// The loopback TLS forwarder of a server-name override, started with the connection.
    pub forward: Option<Arc<super::sni::Forward>>,
    /// How messages name the broker (rumqttc's own address is loopback when forwarding).
    pub display: Option<String>,
    /// For TLS connections: how to judge the broker's chain when it is refused.
    pub probe: Option<super::diagnose::TlsProbe>,
}

impl BrokerOptions {
    pub fn v4(o: rumqttc::MqttOptions) -> Self {
        BrokerOptions {
            mqtt: Mqtt::V4(Box::new(o)),
            forward: None,
            display: None,
            probe: None,
        }
    }

    pub fn client_id(&self) -> String {
        match &self.mqtt {
            Mqtt::V4(o) => o.client_id(),
            Mqtt::V5(o) => o.client_id(),
        }
    }

    /// `host:port`, or the URL for WebSocket transports: for messages.
    pub fn target(&self) -> String {
        if let Some(d) = &self.display {
            return d.clone();
        }
        let (h, p) = match &self.mqtt {
            Mqtt::V4(o) => o.broker_address(),
            Mqtt::V5(o) => o.broker_address(),
        };
        if h.contains("://") {
            h
        } else {
            format!("{h}:{p}")
        }
    }

    /// 4 (MQTT 3.1.1) or 5.
    pub fn protocol(&self) -> u8 {
        match self.mqtt {
            Mqtt::V4(_) => 4,
            Mqtt::V5(_) => 5,
        }
    }

    /// Starts the server-name forwarder, if any, until `cancel`.
    pub fn start_forward(&self, handle: &tokio::runtime::Handle, cancel: &CancellationToken) {
        if let Some(f) = &self.forward {
            f.start(handle, cancel);
        }
    }

    /// The MQTT 3.1.1 options with the forwarder started (second connections); `None` for
    /// an MQTT 5 profile.
    pub fn into_v4_started(
        self,
        handle: &tokio::runtime::Handle,
        cancel: &CancellationToken,
    ) -> Option<rumqttc::MqttOptions> {
        self.start_forward(handle, cancel);
        match self.mqtt {
            Mqtt::V4(o) => Some(*o),
            Mqtt::V5(_) => None,
        }
    }

    /// A client and the session it feeds (request queue of `cap`).
    pub fn into_client(self, cap: usize) -> (Client, Session) {
        match self.mqtt {
            Mqtt::V4(o) => {
                let (c, e) = rumqttc::AsyncClient::new(*o, cap);
                (Client::V4(c), Session::V4(Box::new(e)))
            }
            Mqtt::V5(o) => {
                let (c, e) = rumqttc::v5::AsyncClient::new(*o, cap);
                (Client::V5(c), Session::V5(Box::new(e)))
            }
        }
    }
}

fn qos5(q: QoS) -> QoS5 {
    match q {
        QoS::AtMostOnce => QoS5::AtMostOnce,
        QoS::AtLeastOnce => QoS5::AtLeastOnce,
        QoS::ExactlyOnce => QoS5::ExactlyOnce,
    }
}

/// Why a request could not be queued (rumqttc's error says only "failed to send"): the queue
/// also holds what waits for a broker that is away.
const QUEUE_FULL: &str =
    "the connection's request queue is full (256 requests are waiting for the broker)";
const V5_PROPS_ON_V4: &str = "MQTT 5 properties need an MQTT 5 connection (this one is 3.1.1)";

/// A [`Client::try_publish`] refusal in both languages, for the UI.
pub fn publish_refusal(e: String) -> L10n {
    let zh = match e.as_str() {
        QUEUE_FULL => "连接的请求队列已满（256 个请求正在等待代理）",
        V5_PROPS_ON_V4 => "MQTT 5 属性需要 MQTT 5 连接（此连接为 3.1.1）",
        _ => return L10n::same(e),
    };
    L10n::new(e, zh)
}

/// Sends requests to a connection's event loop; cheap to clone.
#[derive(Clone)]
pub enum Client {
    V4(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

impl Client {
    pub fn protocol(&self) -> u8 {
        match self {
            Client::V4(_) => 4,
            Client::V5(_) => 5,
        }
    }

    /// Queues a publish without waiting. MQTT 5 properties need an MQTT 5 connection.
    pub fn try_publish(
        &self,
        topic: &str,
        qos: QoS,
        retain: bool,
        payload: impl Into<Bytes>,
        props: Option<&Props>,
    ) -> Result<(), String> {
        let payload: Bytes = payload.into();
        match self {
            Client::V4(c) => {
                if props.is_some_and(|p| !p.is_empty()) {
                    return Err(V5_PROPS_ON_V4.into());
                }
                c.try_publish(topic, qos, retain, payload.to_vec())
                    .map_err(|_| QUEUE_FULL.to_owned())
            }
            Client::V5(c) => match props.filter(|p| !p.is_empty()) {
                Some(p) => c
                    .try_publish_with_properties(topic, qos5(qos), retain, payload, p.to_v5())
                    .map_err(|_| QUEUE_FULL.to_owned()),
                None => c
                    .try_publish(topic, qos5(qos), retain, payload)
                    .map_err(|_| QUEUE_FULL.to_owned()),
            },
        }
    }

    /// Publishes, waiting for room in the request queue (never drops).
    pub async fn publish(
        &self,
        topic: &str,
        qos: QoS,
        retain: bool,
        payload: impl Into<Bytes>,
    ) -> Result<(), String> {
        let payload: Bytes = payload.into();
        match self {
            Client::V4(c) => c
                .publish(topic, qos, retain, payload.to_vec())
                .await
                .map_err(|e| e.to_string()),
            Client::V5(c) => c
                .publish(topic, qos5(qos), retain, payload)
                .await
                .map_err(|e| e.to_string()),
        }
    }

    pub fn try_subscribe(&self, filter: &str, qos: QoS) -> Result<(), String> {
        match self {
            Client::V4(c) => c.try_subscribe(filter, qos).map_err(|e| e.to_string()),
            Client::V5(c) => c
                .try_subscribe(filter, qos5(qos))
                .map_err(|e| e.to_string()),
        }
    }

    pub fn try_unsubscribe(&self, filter: &str) -> Result<(), String> {
        match self {
            Client::V4(c) => c.try_unsubscribe(filter).map_err(|e| e.to_string()),
            Client::V5(c) => c.try_unsubscribe(filter).map_err(|e| e.to_string()),
        }
    }

    pub fn try_disconnect(&self) -> Result<(), String> {
        match self {
            Client::V4(c) => c.try_disconnect().map_err(|e| e.to_string()),
            Client::V5(c) => c.try_disconnect().map_err(|e| e.to_string()),
        }
    }
}

/// What one poll of a session brought, with the protocol details folded away.
pub enum Polled {
    ConnAck {
        session_present: bool,
    },
    Message(MqttMessage),
    /// A SUBSCRIBE went out with this packet id (requests go out in the order queued).
    SubscribeSent(u16),
    /// The SUBACK for packet `pkid`: `refused` says why the broker refused its filter.
    SubAck {
        pkid: u16,
        refused: Option<L10n>,
    },
    /// Our DISCONNECT went out.
    DisconnectSent,
    Other,
}

/// A lost or refused connection.
pub struct Failure {
    /// What happened, in both languages.
    pub words: L10n,
    /// The broker's certificate was refused (worth judging its chain).
    pub certificate: bool,
}

impl Failure {
    fn new(words: L10n, e: &(dyn std::error::Error + 'static)) -> Self {
        let certificate = crate::certs::tls_words::find_rustls(e)
            .is_some_and(|t| matches!(t, rustls::Error::InvalidCertificate(_)));
        Failure { words, certificate }
    }
}

/// A connection's event loop. Polling drives the network; an error means the connection is
/// gone (the next poll reconnects).
pub enum Session {
    V4(Box<rumqttc::EventLoop>),
    V5(Box<rumqttc::v5::EventLoop>),
}

impl Session {
    /// The next event, or the failure in plain words.
    pub async fn poll(&mut self, target: &str) -> Result<Polled, Failure> {
        match self {
            Session::V4(e) => {
                use rumqttc::{Event, Outgoing, Packet};
                match e.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(a))) => Ok(Polled::ConnAck {
                        session_present: a.session_present,
                    }),
                    Ok(Event::Incoming(Packet::Publish(p))) => Ok(Polled::Message(MqttMessage {
                        time: chrono::Local::now(),
                        topic: p.topic,
                        payload: p.payload,
                        qos: p.qos as u8,
                        retain: p.retain,
                        props: None,
                    })),
                    Ok(Event::Outgoing(Outgoing::Subscribe(pkid))) => {
                        Ok(Polled::SubscribeSent(pkid))
                    }
                    Ok(Event::Incoming(Packet::SubAck(a))) => Ok(Polled::SubAck {
                        pkid: a.pkid,
                        refused: a
                            .return_codes
                            .iter()
                            .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                            .then(suback_refused_v4),
                    }),
                    Ok(Event::Outgoing(Outgoing::Disconnect)) => Ok(Polled::DisconnectSent),
                    Ok(_) => Ok(Polled::Other),
                    Err(err) => Err(Failure::new(super::describe_error(target, &err), &err)),
                }
            }
            Session::V5(e) => {
                use rumqttc::Outgoing;
                use rumqttc::v5::Event;
                use rumqttc::v5::mqttbytes::v5::{Packet, SubscribeReasonCode};
                match e.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(a))) => Ok(Polled::ConnAck {
                        session_present: a.session_present,
                    }),
                    Ok(Event::Incoming(Packet::Publish(p))) => Ok(Polled::Message(MqttMessage {
                        time: chrono::Local::now(),
                        topic: String::from_utf8_lossy(&p.topic).into_owned(),
                        payload: p.payload,
                        qos: p.qos as u8,
                        retain: p.retain,
                        props: p
                            .properties
                            .map(Props::from)
                            .filter(|p| !p.is_empty())
                            .map(Arc::new),
                    })),
                    Ok(Event::Outgoing(Outgoing::Subscribe(pkid))) => {
                        Ok(Polled::SubscribeSent(pkid))
                    }
                    Ok(Event::Incoming(Packet::SubAck(a))) => {
                        let reason = a.properties.and_then(|p| p.reason_string);
                        let refused = a
                            .return_codes
                            .iter()
                            .find(|c| !matches!(c, SubscribeReasonCode::Success(_)))
                            .map(|c| suback_refused_v5(c, reason.as_deref()));
                        Ok(Polled::SubAck {
                            pkid: a.pkid,
                            refused,
                        })
                    }
                    Ok(Event::Outgoing(Outgoing::Disconnect)) => Ok(Polled::DisconnectSent),
                    Ok(_) => Ok(Polled::Other),
                    Err(err) => Err(Failure::new(describe_error_v5(target, &err), &err)),
                }
            }
        }
    }
}

/// What a lost connection left unfinished: QoS 1 and 2 publishes the broker had not
/// acknowledged, and requests still queued when it went. rumqttc resends them only when the
/// broker kept the session and drops them when it starts a new one (a clean session, the
/// console's default); the worker takes them out before that and hands them back after the
/// CONNACK, so a publish is never lost to a reconnect.
#[derive(Default)]
pub struct Unfinished {
    v4: Vec<rumqttc::Request>,
    v5: Vec<rumqttc::v5::Request>,
}

impl Unfinished {
    pub fn len(&self) -> usize {
        self.v4.len() + self.v5.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The filters of the SUBSCRIBE requests among them (never sent: no packet id yet).
    pub fn subscribe_filters(&self) -> Vec<String> {
        let mut out = Vec::new();
        for r in &self.v4 {
            if let rumqttc::Request::Subscribe(s) = r {
                out.extend(s.filters.iter().map(|f| f.path.clone()));
            }
        }
        for r in &self.v5 {
            if let rumqttc::v5::Request::Subscribe(s) = r {
                out.extend(s.filters.iter().map(|f| f.path.clone()));
            }
        }
        out
    }
}

impl Session {
    /// Moves what the failed connection left unfinished into `into` (after an error).
    pub fn take_unfinished(&mut self, into: &mut Unfinished) {
        match self {
            Session::V4(e) => into.v4.extend(e.pending.drain(..)),
            Session::V5(e) => into.v5.extend(e.pending.drain(..)),
        }
    }

    /// Hands the unfinished requests back after a CONNACK; returns how many publishes go out
    /// again. With the session kept they go as they were (same packet ids, as rumqttc does);
    /// with a new session the publishes go as new ones (at least once: one the broker had
    /// received just before the loss arrives twice) and what belonged to the old session
    /// (acknowledgements, pings, subscriptions the worker makes again) is left out.
    pub fn resume(&mut self, u: Unfinished, session_present: bool) -> usize {
        match self {
            Session::V4(e) => {
                use rumqttc::Request as R;
                let mut n = 0;
                for r in u.v4 {
                    match r {
                        R::Publish(mut p) => {
                            n += 1;
                            if !session_present {
                                p.pkid = 0;
                                p.dup = false;
                            }
                            e.pending.push_back(R::Publish(p));
                        }
                        R::Disconnect(d) => e.pending.push_back(R::Disconnect(d)),
                        other if session_present => e.pending.push_back(other),
                        _ => {}
                    }
                }
                n
            }
            Session::V5(e) => {
                use rumqttc::v5::Request as R;
                let mut n = 0;
                for r in u.v5 {
                    match r {
                        R::Publish(mut p) => {
                            n += 1;
                            if !session_present {
                                p.pkid = 0;
                                p.dup = false;
                            }
                            e.pending.push_back(R::Publish(p));
                        }
                        R::Disconnect => e.pending.push_back(R::Disconnect),
                        other if session_present => e.pending.push_back(other),
                        _ => {}
                    }
                }
                n
            }
        }
    }
}

/// A refused MQTT 3.1.1 subscription: the SUBACK says 0x80 and nothing more.
fn suback_refused_v4() -> L10n {
    L10n::new(
        "the broker refused it (SUBACK 0x80: its access rules do not allow this filter, or it does not accept the filter)",
        "代理拒绝了该订阅（SUBACK 0x80：其访问控制不允许该过滤器，或不接受该过滤器）",
    )
}

/// A refused MQTT 5 subscription, its reason code decoded (and the broker's reason string).
fn suback_refused_v5(
    c: &rumqttc::v5::mqttbytes::v5::SubscribeReasonCode,
    reason: Option<&str>,
) -> L10n {
    use rumqttc::v5::mqttbytes::v5::SubscribeReasonCode as R;
    let (n, en, zh) = match c {
        R::Success(_) => (0x00, "granted", "已授予"),
        R::Failure | R::Unspecified => (0x80, "unspecified error", "未指明的错误"),
        R::ImplementationSpecific => (0x83, "implementation-specific error", "实现相关的错误"),
        R::NotAuthorized => (0x87, "not authorized", "未授权"),
        R::TopicFilterInvalid => (0x8F, "topic filter invalid", "主题过滤器无效"),
        R::PkidInUse => (0x91, "packet identifier in use", "报文标识符已被占用"),
        R::QuotaExceeded => (0x97, "quota exceeded", "超出配额"),
        R::SharedSubscriptionsNotSupported => (
            0x9E,
            "shared subscriptions are not supported",
            "不支持共享订阅",
        ),
        R::SubscriptionIdNotSupported => (
            0xA1,
            "subscription identifiers are not supported",
            "不支持订阅标识符",
        ),
        R::WildcardSubscriptionsNotSupported => (
            0xA2,
            "wildcard subscriptions are not supported",
            "不支持通配符订阅",
        ),
    };
    let why = reason.map(|r| format!(" — {r}")).unwrap_or_default();
    // The broker's own reason string is quoted: it is in whatever language the broker speaks.
    let why_zh = reason.map(|r| format!("——“{r}”")).unwrap_or_default();
    L10n::new(
        format!("the broker refused it: {en} (SUBACK reason 0x{n:02X}){why}"),
        format!("代理拒绝了该订阅：{zh}（SUBACK 原因码 0x{n:02X}）{why_zh}"),
    )
}

/// An MQTT 5 DISCONNECT reason code in plain words, with its number.
pub fn disconnect_reason(c: rumqttc::v5::mqttbytes::v5::DisconnectReasonCode) -> L10n {
    use rumqttc::v5::mqttbytes::v5::DisconnectReasonCode as D;
    let (en, zh) = match c {
        D::NormalDisconnection => ("normal disconnection", "正常断开"),
        D::DisconnectWithWillMessage => ("disconnect with will message", "断开并发布遗嘱"),
        D::UnspecifiedError => ("unspecified error", "未指明的错误"),
        D::MalformedPacket => ("malformed packet", "报文格式错误"),
        D::ProtocolError => ("protocol error", "协议错误"),
        D::ImplementationSpecificError => ("implementation-specific error", "实现相关的错误"),
        D::NotAuthorized => ("not authorized", "未授权"),
        D::ServerBusy => ("server busy", "服务器繁忙"),
        D::ServerShuttingDown => ("server shutting down", "服务器正在关闭"),
        D::KeepAliveTimeout => (
            "keepalive timeout: nothing arrived within 1.5 × the keepalive",
            "保活超时：1.5 倍保活时间内未收到任何报文",
        ),
        D::SessionTakenOver => (
            "session taken over: another client connected with the same client id",
            "会话被接管：另一个客户端使用了相同的客户端 ID",
        ),
        D::TopicFilterInvalid => ("topic filter invalid", "主题过滤器无效"),
        D::TopicNameInvalid => ("topic name invalid", "主题名无效"),
        D::ReceiveMaximumExceeded => ("receive maximum exceeded", "超出接收最大值"),
        D::TopicAliasInvalid => ("topic alias invalid", "主题别名无效"),
        D::PacketTooLarge => ("packet too large", "报文过大"),
        D::MessageRateTooHigh => ("message rate too high", "消息速率过高"),
        D::QuotaExceeded => ("quota exceeded", "超出配额"),
        D::AdministrativeAction => ("administrative action", "管理操作"),
        D::PayloadFormatInvalid => ("payload format invalid", "载荷格式无效"),
        D::RetainNotSupported => ("retain not supported", "不支持保留消息"),
        D::QoSNotSupported => ("QoS not supported", "不支持该 QoS"),
        D::UseAnotherServer => ("use another server", "请使用其他服务器"),
        D::ServerMoved => ("server moved", "服务器已迁移"),
        D::SharedSubscriptionNotSupported => {
            ("shared subscriptions not supported", "不支持共享订阅")
        }
        D::ConnectionRateExceeded => ("connection rate exceeded", "连接频率超限"),
        D::MaximumConnectTime => ("maximum connect time reached", "已达最长连接时间"),
        D::SubscriptionIdentifiersNotSupported => {
            ("subscription identifiers not supported", "不支持订阅标识符")
        }
        D::WildcardSubscriptionsNotSupported => {
            ("wildcard subscriptions not supported", "不支持通配符订阅")
        }
    };
    let n = c as u8;
    L10n::new(
        format!("{en} (reason 0x{n:02X})"),
        format!("{zh}（原因码 0x{n:02X}）"),
    )
}

/// An MQTT 5 connection failure in plain words, in both languages: CONNACK and DISCONNECT
/// reason codes decoded.
pub fn describe_error_v5(target: &str, e: &rumqttc::v5::ConnectionError) -> L10n {
    use super::words;
    use rumqttc::v5::mqttbytes::v5::ConnectReturnCode as C;
    use rumqttc::v5::{ConnectionError as E, StateError as S};
    use std::io::ErrorKind;
    if let Some(t) = crate::certs::tls_words::find_rustls(e) {
        return super::tls_failure(target, t);
    }
    let code = |c: &C| -> (u8, &'static str, &'static str) {
        match c {
            C::Success => (0x00, "accepted", "已接受"),
            C::UnspecifiedError => (0x80, "unspecified error", "未指明的错误"),
            C::MalformedPacket => (0x81, "malformed packet", "报文格式错误"),
            C::ProtocolError => (0x82, "protocol error", "协议错误"),
            C::ImplementationSpecificError => {
                (0x83, "implementation-specific error", "实现相关的错误")
            }
            C::UnsupportedProtocolVersion | C::RefusedProtocolVersion => (
                0x84,
                "MQTT 5 is not supported by this broker; use MQTT 3.1.1",
                "该代理不支持 MQTT 5，请改用 MQTT 3.1.1",
            ),
            C::ClientIdentifierNotValid | C::BadClientId => {
                (0x85, "client id rejected", "客户端 ID 被拒绝")
            }
            C::BadUserNamePassword => (0x86, "bad user name or password", "用户名或密码错误"),
            C::NotAuthorized => (0x87, "not authorized", "未授权"),
            C::ServerUnavailable | C::ServiceUnavailable => {
                (0x88, "server unavailable", "服务不可用")
            }
            C::ServerBusy => (0x89, "server busy", "服务器繁忙"),
            C::Banned => (0x8A, "banned", "已被封禁"),
            C::BadAuthenticationMethod => (0x8C, "bad authentication method", "认证方法错误"),
            C::TopicNameInvalid => (0x90, "topic name invalid", "主题名无效"),
            C::PacketTooLarge => (0x95, "packet too large", "报文过大"),
            C::QuotaExceeded => (0x97, "quota exceeded", "超出配额"),
            C::PayloadFormatInvalid => (0x99, "payload format invalid", "载荷格式无效"),
            C::RetainNotSupported => (0x9A, "retain not supported", "不支持保留消息"),
            C::QoSNotSupported => (0x9B, "QoS not supported", "不支持该 QoS"),
            C::UseAnotherServer => (0x9C, "use another server", "请使用其他服务器"),
            C::ServerMoved => (0x9D, "server moved", "服务器已迁移"),
            C::ConnectionRateExceeded => (0x9F, "connection rate exceeded", "连接频率超限"),
        }
    };
    match e {
        E::ConnectionRefused(c) | E::MqttState(S::ConnFail { reason: c }) => {
            let (n, en, zh) = code(c);
            words::refused(target, en, zh, &format!("CONNACK reason 0x{n:02X}"))
        }
        E::MqttState(S::ServerDisconnect {
            reason_code,
            reason_string,
        }) => {
            let why = reason_string
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            let why_zh = reason_string
                .as_ref()
                .map(|r| format!("（“{r}”）"))
                .unwrap_or_default();
            let r = disconnect_reason(*reason_code);
            L10n::new(
                format!("{target} closed the connection: {}{why}", r.en),
                format!("{target} 断开了连接：{}{why_zh}", r.zh),
            )
        }
        E::Io(io) if io.kind() == ErrorKind::ConnectionRefused => words::nothing_listens(target),
        E::Io(io) if words::is_lookup(io) => words::unresolvable(target, io),
        E::Io(io) if io.kind() == ErrorKind::TimedOut => words::timed_out(target),
        E::Timeout(_) => words::timed_out(target),
        other => words::other(target, other),
    }
}

/// How long a stopping worker lets its DISCONNECT go out.
pub const DISCONNECT_GRACE: Duration = Duration::from_millis(500);

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::v5::mqttbytes::v5::DisconnectReasonCode as D;
    use rumqttc::v5::{ConnectionError, StateError};

    /// A broker's MQTT 5 DISCONNECT reads as words with its number, in both languages,
    /// never as a Rust enum name.
    #[test]
    fn disconnect_reasons_in_words() {
        let e = ConnectionError::MqttState(StateError::ServerDisconnect {
            reason_code: D::SessionTakenOver,
            reason_string: Some("kicked".into()),
        });
        let w = describe_error_v5("broker.lab:1883", &e);
        assert_eq!(
            w.en,
            "broker.lab:1883 closed the connection: session taken over: another client connected with the same client id (reason 0x8E) (kicked)"
        );
        assert!(
            w.zh.contains("会话被接管") && w.zh.contains("0x8E"),
            "{}",
            w.zh
        );
        let w = disconnect_reason(D::KeepAliveTimeout);
        assert!(w.en.starts_with("keepalive timeout") && w.en.ends_with("(reason 0x8D)"));
        for c in [
            D::ServerShuttingDown,
            D::QuotaExceeded,
            D::WildcardSubscriptionsNotSupported,
        ] {
            let w = disconnect_reason(c);
            assert!(!w.en.contains(&format!("{c:?}")), "{}", w.en);
            assert!(w.zh.contains("原因码 0x"), "{}", w.zh);
        }
    }

    #[test]
    fn refused_subscriptions_in_words() {
        use rumqttc::v5::mqttbytes::v5::SubscribeReasonCode as R;
        let w = suback_refused_v5(&R::NotAuthorized, Some("no ACL"));
        assert_eq!(
            w.en,
            "the broker refused it: not authorized (SUBACK reason 0x87) — no ACL"
        );
        assert!(w.zh.contains("未授权"));
        assert!(suback_refused_v4().en.contains("SUBACK 0x80"));
    }
}
