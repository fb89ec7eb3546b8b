//! The MQTT CONNECT / CONNACK inspector over arbitrary bytes, split at an arbitrary point.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mpbridge::relay::inspect::{PacketStream, parse_connack, parse_connect};

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    let mut ps = PacketStream::capturing_first();
    for part in [&data[..split], &data[split..]] {
        if let Some(cap) = ps.feed(part) {
            let _ = parse_connect(&cap);
            let _ = parse_connack(&cap);
        }
    }
});
