//! A raw MQTT client over TCP for the conformance cases: every packet written and read as is
//! (rumqttc's own packet codecs for 3.1.1 and 5), so a case can send what a client library
//! never would and see exactly what the broker answers.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4;
use rumqttc::v5::mqttbytes::v5;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub use rumqttc::mqttbytes::QoS;
pub use rumqttc::v5::mqttbytes::QoS as QoS5;

/// A packet from the broker, 3.1.1 or 5.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // a test client: a few packets at a time
pub enum In {
    V4(v4::Packet),
    V5(v5::Packet),
}

/// Why `recv` returned no packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gone {
    /// The broker closed the connection (or reset it).
    Closed,
    /// Nothing arrived in time.
    Silent,
    /// Bytes arrived that are not MQTT.
    Garbage(String),
}

pub struct Raw {
    pub stream: TcpStream,
    buf: BytesMut,
    /// Packets `wait_for` read past while looking for another one, oldest first.
    backlog: std::collections::VecDeque<In>,
    pub v5: bool,
}

const MAX: usize = 300 * 1024 * 1024;

impl Raw {
    pub async fn tcp(addr: SocketAddr, v5: bool) -> Raw {
        let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
            .await
            .expect("connect in time")
            .expect("connect");
        stream.set_nodelay(true).ok();
        Raw {
            stream,
            buf: BytesMut::new(),
            backlog: Default::default(),
            v5,
        }
    }

    /// A connection made elsewhere (a socket with special options).
    pub fn from_stream(stream: TcpStream, v5: bool) -> Raw {
        stream.set_nodelay(true).ok();
        Raw {
            stream,
            buf: BytesMut::new(),
            backlog: Default::default(),
            v5,
        }
    }

    pub async fn bytes(&mut self, b: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(b)
            .await
            .map_err(|e| format!("write: {e}"))
    }

    pub async fn send4(&mut self, p: v4::Packet) -> Result<(), String> {
        let mut out = BytesMut::new();
        p.write(&mut out, MAX).map_err(|e| format!("encode: {e}"))?;
        self.bytes(&out).await
    }

    pub async fn send5(&mut self, p: v5::Packet) -> Result<(), String> {
        let mut out = BytesMut::new();
        p.write(&mut out, None)
            .map_err(|e| format!("encode: {e}"))?;
        self.bytes(&out).await
    }

    /// The next packet within `within` (first those `wait_for` put aside).
    pub async fn recv(&mut self, within: Duration) -> Result<In, Gone> {
        if let Some(p) = self.backlog.pop_front() {
            return Ok(p);
        }
        self.read_packet(within).await
    }

    async fn read_packet(&mut self, within: Duration) -> Result<In, Gone> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if !self.buf.is_empty() {
                let parsed = if self.v5 {
                    match v5::Packet::read(&mut self.buf, None) {
                        Ok(p) => Ok(Some(In::V5(p))),
                        Err(rumqttc::v5::mqttbytes::Error::InsufficientBytes(_)) => Ok(None),
                        Err(e) => Err(e.to_string()),
                    }
                } else {
                    match v4::Packet::read(&mut self.buf, MAX) {
                        Ok(p) => Ok(Some(In::V4(p))),
                        Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => Ok(None),
                        Err(e) => Err(e.to_string()),
                    }
                };
                match parsed {
                    Ok(Some(p)) => return Ok(p),
                    Ok(None) => {}
                    Err(e) => return Err(Gone::Garbage(e)),
                }
            }
            self.buf.reserve(64 * 1024);
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Err(_) => return Err(Gone::Silent),
                Ok(Err(_)) | Ok(Ok(0)) => return Err(Gone::Closed),
                Ok(Ok(_)) => {}
            }
        }
    }

    /// Reads until the broker closes the connection; returns the packets seen before.
    /// `Err` when it is still open after `within`.
    pub async fn until_closed(&mut self, within: Duration) -> Result<Vec<In>, String> {
        let deadline = tokio::time::Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv(left).await {
                Ok(p) => seen.push(p),
                Err(Gone::Closed) | Err(Gone::Garbage(_)) => return Ok(seen),
                Err(Gone::Silent) => {
                    return Err(format!(
                        "still open after {:.1} s (saw {seen:?})",
                        within.as_secs_f64()
                    ));
                }
            }
        }
    }

    /// The first packet that `pick` accepts; the others stay for `recv`, in order.
    pub async fn wait_for<T>(
        &mut self,
        within: Duration,
        what: &str,
        mut pick: impl FnMut(&In) -> Option<T>,
    ) -> Result<T, String> {
        for i in 0..self.backlog.len() {
            if let Some(t) = pick(&self.backlog[i]) {
                self.backlog.remove(i);
                return Ok(t);
            }
        }
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.read_packet(left).await {
                Ok(p) => match pick(&p) {
                    Some(t) => return Ok(t),
                    None => self.backlog.push_back(p),
                },
                Err(g) => return Err(format!("{what}: {g:?}")),
            }
        }
    }

    // ---- MQTT 3.1.1 -----------------------------------------------------------------------

    /// CONNECT and CONNACK; returns (session present, return code).
    pub async fn connect4(&mut self, c: v4::Connect) -> Result<(bool, u8), String> {
        self.send4(v4::Packet::Connect(c)).await?;
        match self.recv(Duration::from_secs(5)).await {
            Ok(In::V4(v4::Packet::ConnAck(a))) => Ok((a.session_present, a.code as u8)),
            other => Err(format!("CONNACK expected, got {other:?}")),
        }
    }

    pub async fn subscribe4(
        &mut self,
        pkid: u16,
        filters: &[(&str, QoS)],
    ) -> Result<Vec<u8>, String> {
        let s = v4::Subscribe {
            pkid,
            filters: filters
                .iter()
                .map(|(f, q)| v4::SubscribeFilter::new((*f).to_owned(), *q))
                .collect(),
        };
        self.send4(v4::Packet::Subscribe(s)).await?;
        self.wait_for(Duration::from_secs(5), "SUBACK", |p| match p {
            In::V4(v4::Packet::SubAck(a)) if a.pkid == pkid => Some(
                a.return_codes
                    .iter()
                    .map(|c| match c {
                        v4::SubscribeReasonCode::Success(q) => *q as u8,
                        v4::SubscribeReasonCode::Failure => 0x80,
                    })
                    .collect(),
            ),
            _ => None,
        })
        .await
    }

    pub async fn publish4(
        &mut self,
        topic: &str,
        qos: QoS,
        retain: bool,
        pkid: u16,
        payload: impl Into<Bytes>,
    ) -> Result<(), String> {
        let mut p = v4::Publish::new(topic, qos, payload.into());
        p.retain = retain;
        p.pkid = pkid;
        self.send4(v4::Packet::Publish(p)).await?;
        match qos {
            QoS::AtMostOnce => Ok(()),
            QoS::AtLeastOnce => {
                self.wait_for(Duration::from_secs(5), "PUBACK", |p| match p {
                    In::V4(v4::Packet::PubAck(a)) if a.pkid == pkid => Some(()),
                    _ => None,
                })
                .await
            }
            QoS::ExactlyOnce => {
                self.wait_for(Duration::from_secs(5), "PUBREC", |p| match p {
                    In::V4(v4::Packet::PubRec(a)) if a.pkid == pkid => Some(()),
                    _ => None,
                })
                .await?;
                self.send4(v4::Packet::PubRel(v4::PubRel::new(pkid)))
                    .await?;
                self.wait_for(Duration::from_secs(5), "PUBCOMP", |p| match p {
                    In::V4(v4::Packet::PubComp(a)) if a.pkid == pkid => Some(()),
                    _ => None,
                })
                .await
            }
        }
    }

    /// The next PUBLISH (acknowledged as the protocol wants).
    pub async fn next_publish4(&mut self, within: Duration) -> Result<v4::Publish, String> {
        let p = self
            .wait_for(within, "PUBLISH", |p| match p {
                In::V4(v4::Packet::Publish(p)) => Some(p.clone()),
                _ => None,
            })
            .await?;
        self.ack4(&p).await?;
        Ok(p)
    }

    pub async fn ack4(&mut self, p: &v4::Publish) -> Result<(), String> {
        match p.qos {
            QoS::AtMostOnce => Ok(()),
            QoS::AtLeastOnce => {
                self.send4(v4::Packet::PubAck(v4::PubAck::new(p.pkid)))
                    .await
            }
            QoS::ExactlyOnce => {
                self.send4(v4::Packet::PubRec(v4::PubRec::new(p.pkid)))
                    .await?;
                let id = p.pkid;
                self.wait_for(Duration::from_secs(5), "PUBREL", |x| match x {
                    In::V4(v4::Packet::PubRel(r)) if r.pkid == id => Some(()),
                    _ => None,
                })
                .await?;
                self.send4(v4::Packet::PubComp(v4::PubComp::new(id))).await
            }
        }
    }

    /// Every PUBLISH that arrives within `within` (acknowledged).
    pub async fn drain4(&mut self, within: Duration) -> Vec<v4::Publish> {
        let deadline = tokio::time::Instant::now() + within;
        let mut got = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv(left).await {
                Ok(In::V4(v4::Packet::Publish(p))) => {
                    if self.ack4(&p).await.is_err() {
                        return got;
                    }
                    got.push(p);
                }
                Ok(_) => {}
                Err(_) => return got,
            }
        }
    }

    // ---- MQTT 5 ---------------------------------------------------------------------------

    pub async fn connect5(
        &mut self,
        c: v5::Connect,
        will: Option<v5::LastWill>,
    ) -> Result<v5::ConnAck, String> {
        self.send5(v5::Packet::Connect(c, will, None)).await?;
        match self.recv(Duration::from_secs(5)).await {
            Ok(In::V5(v5::Packet::ConnAck(a))) => Ok(a),
            other => Err(format!("CONNACK expected, got {other:?}")),
        }
    }

    pub async fn subscribe5(
        &mut self,
        pkid: u16,
        filters: Vec<v5::Filter>,
        id: Option<usize>,
    ) -> Result<v5::SubAck, String> {
        let s = v5::Subscribe {
            pkid,
            filters,
            properties: id.map(|id| v5::SubscribeProperties {
                id: Some(id),
                user_properties: vec![],
            }),
        };
        self.send5(v5::Packet::Subscribe(s)).await?;
        self.wait_for(Duration::from_secs(5), "SUBACK", |p| match p {
            In::V5(v5::Packet::SubAck(a)) if a.pkid == pkid => Some(a.clone()),
            _ => None,
        })
        .await
    }

    pub async fn publish5(&mut self, p: v5::Publish) -> Result<(), String> {
        let (qos, pkid) = (p.qos, p.pkid);
        self.send5(v5::Packet::Publish(p)).await?;
        match qos {
            QoS5::AtMostOnce => Ok(()),
            QoS5::AtLeastOnce => {
                self.wait_for(Duration::from_secs(5), "PUBACK", |p| match p {
                    In::V5(v5::Packet::PubAck(a)) if a.pkid == pkid => Some(()),
                    _ => None,
                })
                .await
            }
            QoS5::ExactlyOnce => {
                self.wait_for(Duration::from_secs(5), "PUBREC", |p| match p {
                    In::V5(v5::Packet::PubRec(a)) if a.pkid == pkid => Some(()),
                    _ => None,
                })
                .await?;
                self.send5(v5::Packet::PubRel(v5::PubRel::new(pkid, None)))
                    .await?;
                self.wait_for(Duration::from_secs(5), "PUBCOMP", |p| match p {
                    In::V5(v5::Packet::PubComp(a)) if a.pkid == pkid => Some(()),
                    _ => None,
                })
                .await
            }
        }
    }

    pub async fn ack5(&mut self, p: &v5::Publish) -> Result<(), String> {
        match p.qos {
            QoS5::AtMostOnce => Ok(()),
            QoS5::AtLeastOnce => {
                self.send5(v5::Packet::PubAck(v5::PubAck::new(p.pkid, None)))
                    .await
            }
            QoS5::ExactlyOnce => {
                self.send5(v5::Packet::PubRec(v5::PubRec::new(p.pkid, None)))
                    .await?;
                let id = p.pkid;
                self.wait_for(Duration::from_secs(5), "PUBREL", |x| match x {
                    In::V5(v5::Packet::PubRel(r)) if r.pkid == id => Some(()),
                    _ => None,
                })
                .await?;
                self.send5(v5::Packet::PubComp(v5::PubComp::new(id, None)))
                    .await
            }
        }
    }

    pub async fn next_publish5(&mut self, within: Duration) -> Result<v5::Publish, String> {
        let p = self
            .wait_for(within, "PUBLISH", |p| match p {
                In::V5(v5::Packet::Publish(p)) => Some(p.clone()),
                _ => None,
            })
            .await?;
        self.ack5(&p).await?;
        Ok(p)
    }

    pub async fn drain5(&mut self, within: Duration) -> Vec<v5::Publish> {
        let deadline = tokio::time::Instant::now() + within;
        let mut got = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv(left).await {
                Ok(In::V5(v5::Packet::Publish(p))) => {
                    if self.ack5(&p).await.is_err() {
                        return got;
                    }
                    got.push(p);
                }
                Ok(_) => {}
                Err(_) => return got,
            }
        }
    }
}

/// A 3.1.1 CONNECT.
pub fn connect4(id: &str, clean: bool, keep_alive: u16) -> v4::Connect {
    let mut c = v4::Connect::new(id);
    c.clean_session = clean;
    c.keep_alive = keep_alive;
    c
}

/// An MQTT 5 CONNECT.
pub fn connect5(
    id: &str,
    clean: bool,
    keep_alive: u16,
    session_expiry: Option<u32>,
) -> v5::Connect {
    v5::Connect {
        keep_alive,
        client_id: id.to_owned(),
        clean_start: clean,
        properties: Some(v5::ConnectProperties {
            session_expiry_interval: session_expiry,
            ..Default::default()
        }),
    }
}

pub fn filter5(path: &str, qos: QoS5) -> v5::Filter {
    v5::Filter::new(path, qos)
}

pub fn publish5(topic: &str, qos: QoS5, pkid: u16, payload: impl Into<Bytes>) -> v5::Publish {
    let mut p = v5::Publish::new(topic, qos, payload.into(), None);
    p.pkid = pkid;
    p
}

/// MQTT remaining-length encoding, for hand-made packets.
pub fn remaining_length(mut len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut b = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            b |= 0x80;
        }
        out.push(b);
        if len == 0 {
            return out;
        }
    }
}

/// A packet from its first byte and body.
pub fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut p = vec![first];
    p.extend(remaining_length(body.len()));
    p.extend_from_slice(body);
    p
}

/// An MQTT string.
pub fn mstr(s: &[u8]) -> Vec<u8> {
    let mut v = (s.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(s);
    v
}
