//! `mqtt::wire::Reader`, which splits a byte stream into MQTT packets for the bench client,
//! the compliance probe and the broker's health probe, fed in chunks of every size.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mpbridge::mqtt::wire::Reader;

fuzz_target!(|data: &[u8]| {
    let step = data.first().map_or(1, |b| usize::from(*b % 61) + 1);
    let mut r = Reader::default();
    let mut out = 0usize;
    for chunk in data.chunks(step) {
        r.push(chunk);
        while let Some((_, body)) = r.next_packet() {
            out += body.len() + 2;
        }
    }
    assert!(out <= data.len());
});
