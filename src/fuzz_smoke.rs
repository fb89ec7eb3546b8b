//! Deterministic random-input runs of every parser that touches network bytes (the relay's
//! handshake, frames and MQTT inspector, the compliance probe's TLS answer parser, the MQTT
//! packet splitter), so plain `cargo test` catches panics too; the coverage-guided versions
//! live in `fuzz/`.

use crate::checks::tls_probe::parse_answer;
use crate::mqtt::wire;
use crate::relay::frames::FrameObserver;
use crate::relay::handshake::{check_upgrade, mini_program, parse_head};
use crate::relay::inspect::{PacketStream, parse_connack, parse_connect};

/// xorshift64*: small, deterministic, good enough to shake parsers.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn bytes(&mut self, max: usize, seeds: &[&[u8]]) -> Vec<u8> {
        let len = (self.next() as usize) % max;
        // Start from a real message half of the time, then corrupt it.
        let mut v: Vec<u8> = if self.next().is_multiple_of(2) && !seeds.is_empty() {
            seeds[(self.next() as usize) % seeds.len()].to_vec()
        } else {
            (0..len).map(|_| self.next() as u8).collect()
        };
        for _ in 0..(self.next() % 8) {
            if v.is_empty() {
                break;
            }
            let i = (self.next() as usize) % v.len();
            v[i] = self.next() as u8;
        }
        if self.next().is_multiple_of(4) {
            v.truncate((self.next() as usize) % (v.len() + 1));
        }
        v
    }
}

#[test]
fn parsers_survive_random_input() {
    let connect = [
        0x10u8, 0x0e, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 2, b'i', b'd',
    ];
    let head = b"GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: mqtt\r\nReferer: https://servicewechat.com/wx1234567890abcdef/1/page-frame.html\r\n\r\n";
    let frame = [
        0x82u8, 0x90, 1, 2, 3, 4, 0x11, 0x0c, 3, 4, b'L', b'S', b'W', b'P', 5, 2, 3, 60, 1, 2,
        b'j', b'f',
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..20_000 {
        let data = rng.bytes(300, &[&connect, head, &frame]);
        let split = (rng.next() as usize) % (data.len() + 1);

        let mut ps = PacketStream::capturing_first();
        for part in [&data[..split], &data[split..]] {
            if let Some(cap) = ps.feed(part) {
                let _ = parse_connect(&cap);
                let _ = parse_connack(&cap);
            }
        }

        if let Ok(Some(req)) = parse_head(&data) {
            let _ = check_upgrade(&req, true);
            let _ = check_upgrade(&req, false);
            if let Some(r) = req.header("Referer") {
                let _ = mini_program(r);
            }
        }

        let mut obs = FrameObserver::new(1 << 12, PacketStream::capturing_first());
        let mut seen = Vec::new();
        let step = (rng.next() as usize) % 17 + 1;
        for chunk in data.chunks(step) {
            obs.feed(chunk, &mut seen, &mut |c| {
                let _ = parse_connect(&c);
            });
        }
    }
}

/// A TLS server's answer as the compliance probe reads it: ServerHello, Certificate and
/// ServerHelloDone in records, then corrupted, cut and split at random.
#[test]
fn tls_answer_parser_survives_random_input() {
    let mut hello = vec![2u8, 0, 0, 38, 3, 3];
    hello.extend([7u8; 32]);
    hello.extend([0, 0xc0, 0x2b, 0]);
    let cert = [0u8, 0, 9, 0, 0, 6, 0x30, 4, 1, 2, 3, 4];
    let mut cert_msg = vec![11u8, 0, 0, cert.len() as u8];
    cert_msg.extend(cert);
    let mut answer = Vec::new();
    for m in [hello, cert_msg, vec![14, 0, 0, 0]] {
        answer.extend([22, 3, 3, 0, m.len() as u8]);
        answer.extend(m);
    }
    let alert = [21u8, 3, 3, 0, 2, 2, 40];
    assert!(parse_answer(&answer).is_some(), "the seed is a real answer");
    let mut rng = Rng(0x7115_0a57_e2d0_0001);
    for _ in 0..50_000 {
        let data = rng.bytes(400, &[&answer, &alert]);
        // Read as the probe reads: the whole so far, after every chunk.
        let step = (rng.next() as usize) % 23 + 1;
        let mut so_far = Vec::new();
        for chunk in data.chunks(step) {
            so_far.extend_from_slice(chunk);
            let _ = parse_answer(&so_far);
        }
    }
}

/// MQTT packets split out of a byte stream (the bench client, the compliance probe, the
/// broker's health probe): every packet it returns is one the stream really held.
#[test]
fn mqtt_wire_reader_survives_random_input() {
    let seeds = [
        wire::connect("fuzz", 30),
        wire::subscribe(7, "a/#", 1),
        wire::publish("a/b", 1, 9, &[0x55; 300]),
        wire::puback(9),
        vec![0x20, 2, 0, 0],
    ];
    let seed_refs: Vec<&[u8]> = seeds.iter().map(Vec::as_slice).collect();
    let mut rng = Rng(0x5eed_00f0_5eed_0002);
    for _ in 0..50_000 {
        let data = rng.bytes(600, &seed_refs);
        let mut r = wire::Reader::default();
        let step = (rng.next() as usize) % 31 + 1;
        let mut out = 0usize;
        for chunk in data.chunks(step) {
            r.push(chunk);
            while let Some((_, body)) = r.next_packet() {
                out += body.len() + 2;
            }
        }
        assert!(out <= data.len(), "never more packet bytes than were fed");
    }
    // A stream of real packets comes back whole, however it is cut.
    let stream: Vec<u8> = seeds.concat();
    for step in 1..40 {
        let mut r = wire::Reader::default();
        let mut got = Vec::new();
        for chunk in stream.chunks(step) {
            r.push(chunk);
            while let Some(p) = r.next_packet() {
                got.push(p);
            }
        }
        assert_eq!(got.len(), seeds.len(), "cut every {step} bytes");
    }
}
