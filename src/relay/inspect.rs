//! Watches the MQTT byte stream inside a relayed connection without changing it: splits it
//! into packets (a packet may span WebSocket frames, a frame may hold several packets),
//! counts them, and decodes the two packets the relay reports on: the client's CONNECT
//! (client id, username, protocol level, keep-alive; the password is skipped, never kept)
//! and the broker's CONNACK (return / reason code).
//!
//! Bounded: it keeps at most the first CONNECT's bytes (capped) and otherwise only counts.

/// Largest CONNECT the inspector buffers to decode; larger ones are counted, not decoded.
const MAX_CONNECT_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectInfo {
    /// "MQTT" (3.1.1 / 5) or "MQIsdp" (3.1).
    pub protocol_name: String,
    /// 3 = 3.1, 4 = 3.1.1, 5 = 5.0.
    pub protocol_level: u8,
    pub client_id: String,
    pub username: Option<String>,
    pub has_password: bool,
    pub keep_alive_secs: u16,
    pub clean_session: bool,
    pub will_topic: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InspectError {
    #[error("malformed MQTT remaining length")]
    BadLength,
    #[error("first packet is not CONNECT (type {0})")]
    NotConnect(u8),
    #[error("malformed CONNECT packet")]
    BadConnect,
}

/// Splits a byte stream into MQTT packets across arbitrary chunk boundaries.
#[derive(Debug, Default)]
pub struct PacketStream {
    /// Bytes of the current fixed header while it is incomplete (at most 5).
    header: Vec<u8>,
    /// Bytes still to skip of the current packet's body.
    remaining: usize,
    /// First byte (type and flags) of the packet in progress.
    current_first: u8,
    /// Body of the packet being captured (first packet only), when it is wanted.
    capture: Option<Vec<u8>>,
    want_first: bool,
    pub packets: u64,
    /// The type of the last complete packet (14: DISCONNECT).
    pub last_type: u8,
    pub error: Option<InspectError>,
}

/// A complete packet whose body was captured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    pub packet_type: u8,
    pub flags: u8,
    pub body: Vec<u8>,
}

impl PacketStream {
    /// A stream that captures the body of its first packet (CONNECT or CONNACK).
    pub fn capturing_first() -> Self {
        Self {
            want_first: true,
            ..Self::default()
        }
    }

    /// Bytes of the current packet body that can be skipped without looking at them (they
    /// are neither captured nor part of a header). The frame observer uses this to avoid
    /// unmasking payload nobody reads.
    pub fn skippable(&self) -> usize {
        if self.capture.is_none() && self.error.is_none() {
            self.remaining
        } else {
            0
        }
    }

    /// Skips `n` bytes (at most [`PacketStream::skippable`]) as if they had been fed.
    pub fn skip(&mut self, n: usize) {
        let n = n.min(self.skippable());
        self.remaining -= n;
        if n > 0 && self.remaining == 0 {
            self.packets += 1;
        }
    }

    /// Feeds bytes; returns the first packet when it completes (once).
    pub fn feed(&mut self, mut data: &[u8]) -> Option<Captured> {
        let mut out = None;
        while !data.is_empty() && self.error.is_none() {
            if self.remaining > 0 {
                let n = self.remaining.min(data.len());
                if let Some(buf) = self.capture.as_mut() {
                    buf.extend_from_slice(&data[..n]);
                }
                self.remaining -= n;
                data = &data[n..];
                if self.remaining == 0 {
                    let done = self.finish();
                    out = out.or(done);
                }
                continue;
            }
            // Reading a fixed header: type/flags byte then 1–4 length bytes.
            self.header.push(data[0]);
            data = &data[1..];
            if self.header.len() < 2 {
                continue;
            }
            let Some(last) = self.header.last().copied() else {
                continue;
            };
            if last & 0x80 != 0 {
                if self.header.len() >= 5 {
                    self.error = Some(InspectError::BadLength);
                }
                continue;
            }
            let mut len = 0usize;
            for (i, b) in self.header[1..].iter().enumerate() {
                len |= usize::from(b & 0x7f) << (7 * i);
            }
            let first_byte = self.header[0];
            self.header.clear();
            self.current_first = first_byte;
            self.remaining = len;
            if self.want_first && self.packets == 0 {
                self.capture = (len <= MAX_CONNECT_BYTES).then(|| Vec::with_capacity(len));
            }
            if len == 0 {
                let done = self.finish();
                out = out.or(done);
            }
        }
        out
    }

    fn finish(&mut self) -> Option<Captured> {
        self.packets += 1;
        self.last_type = self.current_first >> 4;
        let body = self.capture.take()?;
        let first = self.current_first;
        Some(Captured {
            packet_type: first >> 4,
            flags: first & 0x0f,
            body,
        })
    }
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], InspectError> {
    if buf.len() < n {
        return Err(InspectError::BadConnect);
    }
    let (a, b) = buf.split_at(n);
    *buf = b;
    Ok(a)
}

fn u16_be(buf: &mut &[u8]) -> Result<u16, InspectError> {
    let b = take(buf, 2)?;
    Ok(u16::from_be_bytes([b[0], b[1]]))
}

fn string(buf: &mut &[u8]) -> Result<String, InspectError> {
    let n = usize::from(u16_be(buf)?);
    let b = take(buf, n)?;
    Ok(String::from_utf8_lossy(b).into_owned())
}

fn varint(buf: &mut &[u8]) -> Result<usize, InspectError> {
    let mut v = 0usize;
    for i in 0..4 {
        let b = take(buf, 1)?[0];
        v |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(InspectError::BadConnect)
}

/// Decodes a CONNECT body (MQTT 3.1, 3.1.1 and 5). The password is skipped.
pub fn parse_connect(c: &Captured) -> Result<ConnectInfo, InspectError> {
    if c.packet_type != 1 {
        return Err(InspectError::NotConnect(c.packet_type));
    }
    let mut b = &c.body[..];
    let protocol_name = string(&mut b)?;
    let level = take(&mut b, 1)?[0];
    let flags = take(&mut b, 1)?[0];
    let keep_alive = u16_be(&mut b)?;
    if level == 5 {
        let props = varint(&mut b)?;
        take(&mut b, props)?;
    }
    let client_id = string(&mut b)?;
    let mut will_topic = None;
    if flags & 0x04 != 0 {
        if level == 5 {
            let props = varint(&mut b)?;
            take(&mut b, props)?;
        }
        will_topic = Some(string(&mut b)?);
        let n = usize::from(u16_be(&mut b)?);
        take(&mut b, n)?;
    }
    let username = if flags & 0x80 != 0 {
        Some(string(&mut b)?)
    } else {
        None
    };
    Ok(ConnectInfo {
        protocol_name,
        protocol_level: level,
        client_id,
        username,
        has_password: flags & 0x40 != 0,
        keep_alive_secs: keep_alive,
        clean_session: flags & 0x02 != 0,
        will_topic,
    })
}

/// The CONNACK return code (3.1.1) or reason code (5); `None` if not a CONNACK.
pub fn parse_connack(c: &Captured) -> Option<u8> {
    (c.packet_type == 2)
        .then(|| c.body.get(1).copied())
        .flatten()
}

/// Words for a CONNACK code (3.1.1 return codes and MQTT 5 reason codes).
pub fn connack_text(code: u8) -> &'static str {
    match code {
        0 => "accepted",
        1 => "refused: unacceptable protocol version",
        2 => "refused: identifier rejected",
        3 => "refused: server unavailable",
        4 => "refused: bad user name or password",
        5 => "refused: not authorized",
        0x80 => "unspecified error",
        0x81 => "malformed packet",
        0x82 => "protocol error",
        0x84 => "unsupported protocol version",
        0x85 => "client identifier not valid",
        0x86 => "bad user name or password",
        0x87 => "not authorized",
        0x88 => "server unavailable",
        0x89 => "server busy",
        0x8a => "banned",
        0x8c => "bad authentication method",
        0x90 => "topic name invalid",
        0x95 => "packet too large",
        0x97 => "quota exceeded",
        0x9c => "use another server",
        0x9d => "server moved",
        0x9f => "connection rate exceeded",
        _ => "unknown code",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CONNECT 3.1.1, client id "c1", user "u", password "secret", keepalive 60, clean.
    fn connect_v4() -> Vec<u8> {
        let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0xc2, 0, 60];
        body.extend_from_slice(&[0, 2, b'c', b'1']);
        body.extend_from_slice(&[0, 1, b'u']);
        body.extend_from_slice(&[0, 6, b's', b'e', b'c', b'r', b'e', b't']);
        let mut p = vec![0x10, body.len() as u8];
        p.extend(body);
        p
    }

    #[test]
    fn connect_across_any_split() {
        let mut stream = connect_v4();
        stream.extend_from_slice(&[0xc0, 0x00]); // PINGREQ in the same chunk
        for split in 0..stream.len() {
            let mut ps = PacketStream::capturing_first();
            let a = ps.feed(&stream[..split]);
            let b = ps.feed(&stream[split..]);
            let cap = a.or(b).expect("captured");
            let info = parse_connect(&cap).unwrap();
            assert_eq!(info.client_id, "c1");
            assert_eq!(info.username.as_deref(), Some("u"));
            assert!(info.has_password);
            assert_eq!(info.keep_alive_secs, 60);
            assert_eq!(info.protocol_level, 4);
            assert!(
                !format!("{info:?}").contains("secret"),
                "password never kept"
            );
            assert_eq!(ps.packets, 2, "split at {split}");
        }
    }

    #[test]
    fn byte_by_byte_and_many_packets() {
        let mut stream = connect_v4();
        for _ in 0..10 {
            stream.extend_from_slice(&[0x30, 0x05, 0, 1, b't', b'h', b'i']); // PUBLISH qos0
        }
        let mut ps = PacketStream::capturing_first();
        let mut got = None;
        for b in &stream {
            got = got.or(ps.feed(std::slice::from_ref(b)));
        }
        assert!(got.is_some());
        assert_eq!(ps.packets, 11);
        assert!(ps.error.is_none());
    }

    #[test]
    fn connack_codes() {
        let mut ps = PacketStream::capturing_first();
        let cap = ps.feed(&[0x20, 0x02, 0x00, 0x05]).unwrap();
        assert_eq!(parse_connack(&cap), Some(5));
        assert_eq!(connack_text(5), "refused: not authorized");
    }

    #[test]
    fn v5_connect_with_properties_and_will() {
        let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 5, 0x06, 0, 30];
        body.extend_from_slice(&[3, 0x21, 0, 10]); // properties: receive maximum
        body.extend_from_slice(&[0, 3, b'd', b'e', b'v']);
        body.extend_from_slice(&[0]); // will properties
        body.extend_from_slice(&[0, 1, b'w']);
        body.extend_from_slice(&[0, 3, b'o', b'f', b'f']);
        let mut p = vec![0x10, body.len() as u8];
        p.extend(body);
        let mut ps = PacketStream::capturing_first();
        let info = parse_connect(&ps.feed(&p).unwrap()).unwrap();
        assert_eq!(info.protocol_level, 5);
        assert_eq!(info.client_id, "dev");
        assert_eq!(info.will_topic.as_deref(), Some("w"));
        assert_eq!(info.keep_alive_secs, 30);
    }

    #[test]
    fn garbage_never_panics() {
        let mut ps = PacketStream::capturing_first();
        assert!(ps.feed(&[0x10, 0xff, 0xff, 0xff, 0xff, 0xff]).is_none());
        assert_eq!(ps.error, Some(InspectError::BadLength));
        let cap = Captured {
            packet_type: 1,
            flags: 0,
            body: vec![0, 200, 1],
        };
        assert_eq!(parse_connect(&cap), Err(InspectError::BadConnect));
        let cap = Captured {
            packet_type: 3,
            flags: 0,
            body: vec![],
        };
        assert_eq!(parse_connect(&cap), Err(InspectError::NotConnect(3)));
    }
}
