//! Watching RFC 6455 frames inside a byte stream the relay copies without decoding: frame
//! headers are parsed across arbitrary chunk boundaries, payloads are unmasked on the fly
//! for the MQTT inspector, close frames are decoded for the connection record, and message
//! sizes are checked. The bytes themselves are forwarded untouched.

use super::inspect::PacketStream;

/// Something worth knowing that a chunk contained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// A close frame: code (if any) and reason.
    Close(Option<u16>, String),
    /// A message (all fragments together) is larger than the limit.
    TooBig(u64),
    /// The bytes are not valid WebSocket framing.
    Invalid(&'static str),
}

#[derive(Debug)]
enum State {
    Header,
    Payload { left: u64 },
}

/// Parses one direction of a WebSocket connection.
#[derive(Debug)]
pub struct FrameObserver {
    state: State,
    /// The frame header read so far (at most 14 bytes: 2, an extended length of 8, a mask of
    /// 4), and how many of its bytes are in.
    header: [u8; 14],
    header_in: usize,
    /// The current frame's opcode (a ping may sit between the fragments of a message).
    frame_opcode: u8,
    /// The opcode of the data message being received (continuations carry 0).
    data_opcode: u8,
    fin: bool,
    mask: Option<[u8; 4]>,
    /// Position in the current frame's payload (for unmasking).
    pos: u64,
    /// Bytes of the message so far (data frames across continuations).
    message: u64,
    max_message: u64,
    close_payload: Vec<u8>,
    /// MQTT packets carried by binary frames.
    pub mqtt: PacketStream,
    pub frames: u64,
    failed: bool,
    scratch: Vec<u8>,
}

impl FrameObserver {
    pub fn new(max_message: u64, mqtt: PacketStream) -> Self {
        Self {
            state: State::Header,
            header: [0; 14],
            header_in: 0,
            frame_opcode: 0,
            data_opcode: 0,
            fin: true,
            mask: None,
            pos: 0,
            message: 0,
            max_message,
            close_payload: Vec::new(),
            mqtt,
            frames: 0,
            failed: false,
            scratch: Vec::new(),
        }
    }

    /// Between frames (so a close frame can be injected without corrupting the stream).
    pub fn at_boundary(&self) -> bool {
        matches!(self.state, State::Header) && self.header_in == 0
    }

    /// Observes a chunk; `on_mqtt` gets the first MQTT packet's capture when it completes.
    pub fn feed(
        &mut self,
        mut data: &[u8],
        seen: &mut Vec<Seen>,
        on_mqtt: &mut dyn FnMut(super::inspect::Captured),
    ) {
        while !data.is_empty() && !self.failed {
            match self.state {
                State::Header => {
                    let Some(slot) = self.header.get_mut(self.header_in) else {
                        // Unreachable: a header is complete at 14 bytes at most.
                        self.failed = true;
                        seen.push(Seen::Invalid("frame header too long"));
                        return;
                    };
                    *slot = data[0];
                    self.header_in += 1;
                    data = &data[1..];
                    let h = &self.header[..self.header_in];
                    let Some(need) = header_len(h) else {
                        continue;
                    };
                    if h.len() < need {
                        continue;
                    }
                    let h = self.header;
                    self.header_in = 0;
                    let (fin, opcode, masked, len) = match parse_header(&h[..need]) {
                        Ok(x) => x,
                        Err(e) => {
                            self.failed = true;
                            seen.push(Seen::Invalid(e));
                            return;
                        }
                    };
                    self.fin = fin;
                    self.frames += 1;
                    self.mask = masked.then(|| {
                        let k = &h[need - 4..need];
                        [k[0], k[1], k[2], k[3]]
                    });
                    self.frame_opcode = opcode;
                    if opcode & 0x8 == 0 && opcode != 0 {
                        self.data_opcode = opcode;
                    }
                    if opcode & 0x8 == 0 {
                        // Data frame (text, binary, continuation).
                        if opcode != 0 {
                            self.message = 0;
                        }
                        self.message = self.message.saturating_add(len);
                        if self.message > self.max_message {
                            self.failed = true;
                            seen.push(Seen::TooBig(self.message));
                            return;
                        }
                    } else {
                        self.close_payload.clear();
                    }
                    self.pos = 0;
                    if len == 0 {
                        self.end_frame(seen);
                    } else {
                        self.state = State::Payload { left: len };
                    }
                }
                State::Payload { left } => {
                    let n = (left.min(data.len() as u64)) as usize;
                    let (chunk, rest) = data.split_at(n);
                    data = rest;
                    self.payload(chunk, on_mqtt);
                    let left = left - n as u64;
                    if left == 0 {
                        self.end_frame(seen);
                    } else {
                        self.state = State::Payload { left };
                    }
                }
            }
        }
    }

    fn payload(&mut self, mut chunk: &[u8], on_mqtt: &mut dyn FnMut(super::inspect::Captured)) {
        let control = self.frame_opcode & 0x8 != 0;
        let wanted = if control {
            self.frame_opcode == 0x8
        } else {
            self.data_opcode == 0x2
        };
        if !wanted {
            self.pos += chunk.len() as u64;
            return;
        }
        while !chunk.is_empty() {
            // Packet bodies nobody reads are skipped without unmasking them.
            if !control {
                let skip = self.mqtt.skippable().min(chunk.len());
                if skip > 0 {
                    self.mqtt.skip(skip);
                    self.pos += skip as u64;
                    chunk = &chunk[skip..];
                    continue;
                }
            }
            // Otherwise unmask a small piece (a header, or the captured first packet).
            let take = if control {
                chunk.len()
            } else {
                chunk.len().min(64)
            };
            let (piece, rest) = chunk.split_at(take);
            chunk = rest;
            let bytes: &[u8] = match self.mask {
                Some(k) => {
                    self.scratch.clear();
                    self.scratch.extend(
                        piece
                            .iter()
                            .enumerate()
                            .map(|(i, b)| b ^ k[((self.pos + i as u64) % 4) as usize]),
                    );
                    &self.scratch
                }
                None => piece,
            };
            if control {
                if self.close_payload.len() < 125 {
                    let room = 125 - self.close_payload.len();
                    self.close_payload
                        .extend_from_slice(&bytes[..bytes.len().min(room)]);
                }
            } else if let Some(cap) = self.mqtt.feed(bytes) {
                on_mqtt(cap);
            }
            self.pos += piece.len() as u64;
        }
    }

    fn end_frame(&mut self, seen: &mut Vec<Seen>) {
        self.state = State::Header;
        if self.frame_opcode == 0x8 {
            let p = &self.close_payload;
            let code = (p.len() >= 2).then(|| u16::from_be_bytes([p[0], p[1]]));
            let reason = p
                .get(2..)
                .map(|r| String::from_utf8_lossy(r).into_owned())
                .unwrap_or_default();
            seen.push(Seen::Close(code, reason));
        }
    }
}

/// Total header length once enough bytes are known.
fn header_len(h: &[u8]) -> Option<usize> {
    if h.len() < 2 {
        return None;
    }
    let masked = h[1] & 0x80 != 0;
    let base = match h[1] & 0x7f {
        126 => 4,
        127 => 10,
        _ => 2,
    };
    Some(base + if masked { 4 } else { 0 })
}

fn parse_header(h: &[u8]) -> Result<(bool, u8, bool, u64), &'static str> {
    let fin = h[0] & 0x80 != 0;
    if h[0] & 0x70 != 0 {
        return Err("reserved bits set without a negotiated extension");
    }
    let opcode = h[0] & 0x0f;
    if !matches!(opcode, 0 | 1 | 2 | 8 | 9 | 10) {
        return Err("unknown opcode");
    }
    let masked = h[1] & 0x80 != 0;
    let len = match h[1] & 0x7f {
        126 => u64::from(u16::from_be_bytes([h[2], h[3]])),
        127 => u64::from_be_bytes([h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9]]),
        n => u64::from(n),
    };
    if opcode & 0x8 != 0 && (len > 125 || !fin) {
        return Err("control frame too long or fragmented");
    }
    Ok((fin, opcode, masked, len))
}

/// A close frame as a server sends it (unmasked).
pub fn server_close(code: u16, reason: &str) -> Vec<u8> {
    close_frame(code, reason, None)
}

/// A close frame as a client sends it (masked with `key`).
pub fn client_close(code: u16, reason: &str, key: [u8; 4]) -> Vec<u8> {
    close_frame(code, reason, Some(key))
}

fn close_frame(code: u16, reason: &str, key: Option<[u8; 4]>) -> Vec<u8> {
    let mut r = reason.as_bytes().to_vec();
    r.truncate(123);
    // Do not cut a UTF-8 sequence in half.
    while std::str::from_utf8(&r).is_err() {
        r.pop();
    }
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(&r);
    let mut f = vec![
        0x88,
        payload.len() as u8 | if key.is_some() { 0x80 } else { 0 },
    ];
    match key {
        Some(k) => {
            f.extend_from_slice(&k);
            f.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
        }
        None => f.extend_from_slice(&payload),
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked_binary(payload: &[u8], key: [u8; 4]) -> Vec<u8> {
        let mut f = vec![0x82];
        match payload.len() {
            n if n < 126 => f.push(0x80 | n as u8),
            n if n < 65536 => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&key);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        f
    }

    #[test]
    fn connect_inside_masked_frames_any_split() {
        let connect = [
            0x10, 0x0e, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 2, b'i', b'd',
        ];
        let mut stream = masked_binary(&connect[..5], [1, 2, 3, 4]);
        stream.extend(masked_binary(&connect[5..], [9, 8, 7, 6]));
        stream.extend(client_close(1000, "bye", [5, 5, 5, 5]));
        for split in 0..stream.len() {
            let mut o = FrameObserver::new(1 << 20, PacketStream::capturing_first());
            let mut seen = Vec::new();
            let mut caps = Vec::new();
            o.feed(&stream[..split], &mut seen, &mut |c| caps.push(c));
            o.feed(&stream[split..], &mut seen, &mut |c| caps.push(c));
            let info = super::super::inspect::parse_connect(&caps[0]).unwrap();
            assert_eq!(info.client_id, "id", "split {split}");
            assert_eq!(
                seen,
                vec![Seen::Close(Some(1000), "bye".into())],
                "split {split}"
            );
            assert_eq!(o.frames, 3);
        }
    }

    #[test]
    fn packet_counts_with_skipped_payloads() {
        // CONNECT, then 50 PUBLISH packets of 300 bytes spread over frames of odd sizes.
        let connect = [
            0x10u8, 0x0e, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 2, b'i', b'd',
        ];
        let mut mqtt = connect.to_vec();
        for i in 0..50u8 {
            let mut body = vec![0, 1, b't'];
            body.extend(std::iter::repeat_n(i, 297));
            mqtt.extend_from_slice(&[0x30, 0xac, 0x02]); // remaining length 300
            mqtt.extend(body);
        }
        let mut stream = Vec::new();
        for (i, part) in mqtt.chunks(777).enumerate() {
            stream.extend(masked_binary(part, [i as u8, 7, 3, 9]));
        }
        for step in [1, 5, 64, 1000, stream.len()] {
            let mut o = FrameObserver::new(1 << 20, PacketStream::capturing_first());
            let mut caps = 0;
            for c in stream.chunks(step) {
                o.feed(c, &mut Vec::new(), &mut |_| caps += 1);
            }
            assert_eq!((o.mqtt.packets, caps), (51, 1), "step {step}");
        }
    }

    #[test]
    fn a_ping_between_fragments_keeps_the_mqtt_stream() {
        // CONNECT split over a binary fragment and a continuation, a ping in between, then
        // a PINGREQ in its own frame: both packets are counted, the CONNECT captured.
        let connect = [
            0x10u8, 0x0e, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 2, b'i', b'd',
        ];
        let mut first = masked_binary(&connect[..6], [1, 2, 3, 4]);
        first[0] = 0x02; // binary, not final
        let mut ping = vec![0x89, 0x82, 9, 9, 9, 9];
        ping.extend([b'h' ^ 9, b'i' ^ 9]);
        let mut cont = masked_binary(&connect[6..], [4, 3, 2, 1]);
        cont[0] = 0x80; // continuation, final
        let mut stream = first;
        stream.extend(ping);
        stream.extend(cont);
        stream.extend(masked_binary(&[0xc0, 0x00], [7, 7, 7, 7]));
        let mut o = FrameObserver::new(1 << 20, PacketStream::capturing_first());
        let mut caps = Vec::new();
        o.feed(&stream, &mut Vec::new(), &mut |c| caps.push(c));
        assert_eq!(o.mqtt.packets, 2);
        let info = super::super::inspect::parse_connect(&caps[0]).unwrap();
        assert_eq!(info.client_id, "id");
    }

    #[test]
    fn too_big_and_invalid() {
        let mut o = FrameObserver::new(100, PacketStream::default());
        let mut seen = Vec::new();
        o.feed(&masked_binary(&[0u8; 200], [0; 4]), &mut seen, &mut |_| {});
        assert_eq!(seen, vec![Seen::TooBig(200)]);
        let mut o = FrameObserver::new(100, PacketStream::default());
        let mut seen = Vec::new();
        o.feed(&[0xf2, 0x00], &mut seen, &mut |_| {});
        assert!(matches!(seen[0], Seen::Invalid(_)));
        // 64-bit length and garbage never panic.
        let mut o = FrameObserver::new(u64::MAX, PacketStream::default());
        o.feed(
            &[
                0x82, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5,
            ],
            &mut Vec::new(),
            &mut |_| {},
        );
    }

    /// Found by `cargo fuzz run ws_frames`: a continuation frame with a 64-bit length after a
    /// small first fragment overflowed the message size (and, wrapping in release builds,
    /// slipped under the limit).
    #[test]
    fn huge_continuation_does_not_wrap_the_message_size() {
        let mut o = FrameObserver::new(1 << 16, PacketStream::default());
        let mut seen = Vec::new();
        let mut data = vec![0x02, 0x02, 0, 0]; // binary, not final, 2 bytes
        data.extend_from_slice(&[0x80, 0x7f]); // continuation, final, 64-bit length
        data.extend_from_slice(&u64::MAX.to_be_bytes());
        o.feed(&data, &mut seen, &mut |_| {});
        assert!(matches!(seen[..], [Seen::TooBig(_)]), "{seen:?}");
    }

    #[test]
    fn close_frames_round_trip() {
        let mut o = FrameObserver::new(1000, PacketStream::default());
        let mut seen = Vec::new();
        o.feed(
            &server_close(1009, &"é".repeat(100)),
            &mut seen,
            &mut |_| {},
        );
        match &seen[0] {
            Seen::Close(Some(1009), r) => assert!(r.len() <= 123 && r.starts_with('é')),
            other => panic!("{other:?}"),
        }
    }
}
