//! Deterministic random-input runs of every parser that touches network bytes, so plain
//! `cargo test` catches panics too (the coverage-guided versions live in `fuzz/`).

use super::frames::FrameObserver;
use super::handshake::{check_upgrade, mini_program, parse_head};
use super::inspect::{PacketStream, parse_connack, parse_connect};

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
