//! Feeding the broker arbitrary packets: shared by the coverage-guided target
//! (`fuzz/fuzz_targets/broker_session.rs`) and the deterministic run in `cargo test`
//! (`tests/conformance.rs`). An input is one connection: a valid CONNECT (MQTT 3.1.1 or 5,
//! chosen by the first byte) so the bytes reach the session code our patches touch, then the
//! rest of the input as is.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Valid packets to start mutations from: CONNECT, SUBSCRIBE, PUBLISH (with MQTT 5 properties
/// and a topic alias), UNSUBSCRIBE, acknowledgements, PINGREQ, DISCONNECT.
pub fn seeds() -> Vec<Vec<u8>> {
    vec![
        // SUBSCRIBE a/# QoS 1 (3.1.1)
        vec![0x82, 0x08, 0, 1, 0, 3, b'a', b'/', b'#', 1],
        // SUBSCRIBE with a subscription identifier and options (5)
        vec![0x82, 0x0b, 0, 2, 2, 0x0b, 7, 0, 3, b'a', b'/', b'b', 0x2d],
        // PUBLISH QoS 1 with payload (3.1.1)
        vec![0x32, 0x09, 0, 3, b'a', b'/', b'b', 0, 9, b'h', b'i'],
        // PUBLISH QoS 2 with properties: alias 1, user property, content type (5)
        vec![
            0x34, 0x1a, 0, 3, b'a', b'/', b'b', 0, 10, 0x11, 0x23, 0, 1, 0x26, 0, 1, b'k', 0, 1,
            b'v', 0x03, 0, 4, b't', b'e', b'x', b't', b'x',
        ],
        // PUBLISH with an empty topic and alias 1 (5)
        vec![0x30, 0x07, 0, 0, 3, 0x23, 0, 1, b'z'],
        // retained PUBLISH QoS 0
        vec![0x31, 0x07, 0, 3, b'r', b'/', b'1', b'o', b'k'],
        // UNSUBSCRIBE a/#
        vec![0xa2, 0x07, 0, 4, 0, 3, b'a', b'/', b'#'],
        // PUBACK, PUBREC, PUBREL, PUBCOMP for id 9
        vec![0x40, 0x02, 0, 9],
        vec![0x50, 0x02, 0, 9],
        vec![0x62, 0x02, 0, 9],
        vec![0x70, 0x02, 0, 9],
        // PINGREQ, DISCONNECT (5, reason 0x04)
        vec![0xc0, 0x00],
        vec![0xe0, 0x01, 0x04],
    ]
}

/// xorshift64*: small and deterministic.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A few seed packets strung together and mutated (bytes changed, inserted, cut).
    pub fn input(&mut self, seeds: &[Vec<u8>]) -> Vec<u8> {
        let mut v = vec![(self.next_u64() % 2) as u8];
        for _ in 0..(1 + self.next_u64() % 4) {
            v.extend_from_slice(&seeds[(self.next_u64() as usize) % seeds.len()]);
        }
        for _ in 0..(self.next_u64() % 6) {
            let i = 1 + (self.next_u64() as usize) % (v.len() - 1).max(1);
            match self.next_u64() % 3 {
                0 if i < v.len() => v[i] = self.next_u64() as u8,
                1 => v.insert(i.min(v.len()), self.next_u64() as u8),
                _ => v.truncate(i.max(1)),
            }
        }
        v
    }
}

/// One input, one connection: CONNECT (3.1.1 when the first byte is even, else 5), the
/// rest of the input, then whatever the broker answers for up to `wait`.
pub fn feed(addr: SocketAddr, data: &[u8], wait: Duration) {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return;
    };
    s.set_nodelay(true).ok();
    s.set_read_timeout(Some(wait)).ok();
    let connect: &[u8] = if first % 2 == 0 {
        &[
            0x10, 0x0e, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 30, 0, 2, b'f', b'z',
        ]
    } else {
        // MQTT 5 with topic alias maximum 5 and a session expiry of 10 s.
        &[
            0x10, 0x17, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 30, 8, 0x22, 0, 5, 0x11, 0, 0, 0,
            10, 0, 2, b'f', b'5',
        ]
    };
    if s.write_all(connect).is_err() || s.write_all(rest).is_err() {
        return;
    }
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
    }
}

/// A broker in this process on a free loopback port (for the fuzzer; the console runs the
/// broker in its own process). Returns its MQTT address.
pub fn in_process() -> std::io::Result<SocketAddr> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    crate::spawn_named("fuzz-broker", move || {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(_) => return,
        };
        let opts = super::server::ServeOptions {
            tcp: SocketAddr::from(([127, 0, 0, 1], 0)),
            ws: None,
            store: None,
            max_packet_bytes: 1 << 20,
        };
        let ready = tx.clone();
        let r = rt.block_on(super::server::serve(opts, move |b| {
            ready.send(Ok(b.tcp)).ok();
        }));
        if let Err(e) = r {
            tx.send(Err(std::io::Error::other(e.to_string()))).ok();
        }
    })?;
    rx.recv().map_err(std::io::Error::other)?
}

/// Runs rmqtt's MQTT 3.1.1 and 5 decoders (the ones the broker reads sockets with) over
/// `data`, fed in two parts; every packet they accept is encoded again.
pub fn decode_all(data: &[u8]) {
    use tokio_util::codec::{Decoder, Encoder};
    let split = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    let mut v3 = rmqtt::codec::v3::Codec::new(1 << 20);
    let mut v5 = rmqtt::codec::v5::Codec::new(1 << 20, 1 << 20);
    let mut buf3 = bytes::BytesMut::new();
    let mut buf5 = bytes::BytesMut::new();
    for part in [&data[..split], &data[split..]] {
        buf3.extend_from_slice(part);
        buf5.extend_from_slice(part);
        while let Ok(Some((p, _))) = v3.decode(&mut buf3) {
            v3.encode(p, &mut bytes::BytesMut::new()).ok();
        }
        while let Ok(Some((p, _))) = v5.decode(&mut buf5) {
            v5.encode(p, &mut bytes::BytesMut::new()).ok();
        }
    }
}
