//! MQTT 3.1.1 packets encoded by hand, and a splitter for the bytes that come back: what the
//! benchmark client and the compliance checks speak on a raw WebSocket.

fn remaining_length(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
}

fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut p = vec![first];
    remaining_length(body.len(), &mut p);
    p.extend_from_slice(body);
    p
}

fn mqtt_str(s: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// CONNECT, clean session, no will, no credentials.
pub fn connect(client_id: &str, keep_alive: u16) -> Vec<u8> {
    connect_with(client_id, keep_alive, None, None)
}

/// CONNECT, clean session, with optional user name and password.
pub fn connect_with(
    client_id: &str,
    keep_alive: u16,
    username: Option<&str>,
    password: Option<&str>,
) -> Vec<u8> {
    let mut flags = 0x02;
    if username.is_some() {
        flags |= 0x80;
    }
    if password.is_some() {
        flags |= 0x40;
    }
    let mut b = vec![0, 4, b'M', b'Q', b'T', b'T', 4, flags];
    b.extend_from_slice(&keep_alive.to_be_bytes());
    mqtt_str(client_id, &mut b);
    if let Some(u) = username {
        mqtt_str(u, &mut b);
    }
    if let Some(p) = password {
        mqtt_str(p, &mut b);
    }
    packet(0x10, &b)
}

pub fn pingreq() -> Vec<u8> {
    vec![0xc0, 0]
}

pub fn subscribe(id: u16, filter: &str, qos: u8) -> Vec<u8> {
    let mut b = id.to_be_bytes().to_vec();
    mqtt_str(filter, &mut b);
    b.push(qos);
    packet(0x82, &b)
}

pub fn publish(topic: &str, qos: u8, id: u16, payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(topic.len() + payload.len() + 4);
    mqtt_str(topic, &mut b);
    if qos > 0 {
        b.extend_from_slice(&id.to_be_bytes());
    }
    b.extend_from_slice(payload);
    packet(0x30 | (qos << 1), &b)
}

pub fn puback(id: u16) -> Vec<u8> {
    packet(0x40, &id.to_be_bytes())
}

/// Splits a byte stream into MQTT packets (first byte, body).
#[derive(Default)]
pub struct Reader {
    buf: Vec<u8>,
}

impl Reader {
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    pub fn next_packet(&mut self) -> Option<(u8, Vec<u8>)> {
        let mut len = 0usize;
        let mut i = 1;
        loop {
            let b = *self.buf.get(i)?;
            len |= usize::from(b & 0x7f) << (7 * (i - 1));
            i += 1;
            if b & 0x80 == 0 {
                break;
            }
            if i > 4 {
                self.buf.clear();
                return None;
            }
        }
        if self.buf.len() < i + len {
            return None;
        }
        let first = self.buf[0];
        let body = self.buf[i..i + len].to_vec();
        self.buf.drain(..i + len);
        Some((first, body))
    }
}
